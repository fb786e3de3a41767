"""Rule models on their inputs (SMK N 1 Petasia): attendance, escalations, scores; quarantine; breaches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import lxml.html
import pandas as pd
import pytest

from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings
from pipeline.db import connect
from pipeline.errors import UserError
from pipeline.ingest import pseudonym
from pipeline.rule_inputs import load_rule_input
from pipeline.run import run_compliance
from pipeline.sop import load_catalogue
from tests.cli_process import patuh

KEY = b"attendance-test-secret-not-a-real-key"


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("NIS,Tanggal,Status\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows), encoding="utf-8")
    return path


def test_attendance_rules_report_each_breach(tmp_path: Path) -> None:
    settings = get_settings()
    calendar = load_calendars(settings.institutions_file)["smkn1-petasia"]
    candidates = pd.date_range("2025-08-01", periods=120, freq="D")
    days = list(candidates[calendar.is_working_day(candidates)][:60].date)
    assert len(days) == 60
    rows = []
    for i, day in enumerate(days):
        stamp = day.strftime("%d/%m/%Y")
        rows.append(("RAJIN", stamp, "H"))
        rows.append(("SAKIT", stamp, "S" if i < 8 else "H"))        # 8 sick days > 6
        rows.append(("BOLOS", stamp, "A" if i % 4 == 0 else "H"))   # 25% alpa: < 80% present, > 15% alpa
    rows.append(("", "01/08/2025", "H"))                            # no student id
    rows.append(("RAJIN", "31/02/2025", "H"))                       # no such date
    rows.append(("RAJIN", "04/08/2025", "terlambat"))               # unknown status
    conn = connect(tmp_path / "patuh.duckdb")
    res = load_rule_input(conn, _write(tmp_path / "absen.csv", rows), input_name="attendance_daily",
                          institution_id="smkn1-petasia", key=KEY)
    assert (res.rows_in, res.rows_loaded, res.rows_quarantined) == (183, 180, 3)
    reasons = sorted(r for (r,) in conn.execute("SELECT reason FROM quarantine").fetchall())
    assert reasons == ["bad_date", "bad_status", "missing_student_id"]
    again = load_rule_input(conn, tmp_path / "absen.csv", input_name="attendance_daily",
                            institution_id="smkn1-petasia", key=KEY)
    assert again.skipped and again.batch_id == res.batch_id  # which batch it is, to unload it if need be
    assert (again.rows_in, again.rows_loaded, again.rows_quarantined) == (183, 180, 3)
    catalogue = load_catalogue(settings.catalogue_dir)
    summary = run_compliance(conn, catalogue, load_institutions(settings.institutions_file),
                             load_calendars(settings.institutions_file), institution="smkn1-petasia",
                             as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    found = {(c, s) for c, s in conn.execute(
        "SELECT case_id, step_id FROM latest_deviations WHERE kind = 'rule_breach'").fetchall()}
    sick, truant = pseudonym("SAKIT", KEY), pseudonym("BOLOS", KEY)
    assert found == {(sick, "sakit_maks_6_hari"), (truant, "kehadiran_min_80"), (truant, "alpa_maks_15_persen")}
    assert summary.cases == 3 and summary.compliant == 1
    # a student's breaches carry the student's span (first and last input), as their result row does
    assert conn.execute("""SELECT count(*) FROM latest_deviations d JOIN latest_case_results r
                           USING (institution_id, sop_id, case_id)
                           WHERE d.kind = 'rule_breach' AND d.case_opened_at = r.opened_at
                             AND d.case_closed_at IS NOT DISTINCT FROM r.closed_at""").fetchall()[0][0] == 3
    # the summary says which rules had no input to check (only attendance was loaded here)
    assert summary.rules_checked == 5
    assert summary.rules_without_input == ["layanan_berjenjang (escalation_events)", "remedial_di_bawah_kkm (scores)"]
    assert conn.execute("SELECT count(*) FROM latest_case_results WHERE sop_id LIKE 'smkn1-petasia/%'"
                        ).fetchall()[0][0] == 3
    raw = (tmp_path / "patuh.duckdb").read_bytes()
    conn.close()
    assert b"BOLOS" not in raw and b"SAKIT" not in raw


def _run(conn: duckdb.DuckDBPyConnection) -> set[tuple[str, str, str]]:
    settings = get_settings()
    run_compliance(conn, load_catalogue(settings.catalogue_dir), load_institutions(settings.institutions_file),
                   load_calendars(settings.institutions_file), institution="smkn1-petasia",
                   as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return {(c, s, o) for c, s, o in conn.execute(
        "SELECT case_id, step_id, observed FROM latest_deviations WHERE kind = 'rule_breach'").fetchall()}


def test_escalation_goes_guru_mapel_then_wali_kelas_then_guru_bk(tmp_path: Path) -> None:
    rows = [
        ("K1", "ANI", "kehadiran", "Guru Mapel", "01/09/2025 08:00"),   # by the book, one level after another
        ("K1", "ANI", "kehadiran", "Wali Kelas", "02/09/2025 09:00"),
        ("K1", "ANI", "kehadiran", "Guru BK", "03/09/2025 10:00"),
        ("K2", "BUDI", "akhlak", "guru bk", "01/09/2025 08:00"),       # started at the guru BK
        ("K3", "CICI", "kepribadian", "Guru Mapel", "01/09/2025 08:00"),  # wali kelas skipped
        ("K3", "CICI", "kepribadian", "BK", "01/09/2025 10:00"),
        ("K4", "DEDI", "keamanan", "Wali Kelas", "2025-09-02 08:00"),  # starts at wali kelas: above the first
        ("K5", "EKA", "kehadiran", "Guru Mapel", "05/09/2025 08:00"),
        ("K5", "EKA", "kehadiran", "Wali Kelas", "06/09/2025 08:00"),
        ("K5", "EKA", "kehadiran", "Guru Mapel", "07/09/2025 08:00"),  # back down
        ("K6", "FAJAR", "kehadiran", "Kepala Sekolah", "05/09/2025 08:00"),  # unknown level: quarantined
        ("", "GITA", "kehadiran", "Guru Mapel", "05/09/2025 08:00"),       # no case number
        ("K8", "HANA", "kehadiran", "Guru Mapel", "kemarin"),              # no date
    ]
    path = tmp_path / "layanan.csv"
    path.write_text("No Kasus,NIS,Topik,Ditangani Oleh,Waktu\n" + "".join(",".join(r) + "\n" for r in rows),
                    encoding="utf-8")
    conn = connect(tmp_path / "patuh.duckdb")
    res = load_rule_input(conn, path, input_name="escalation_events", institution_id="smkn1-petasia", key=KEY)
    assert (res.rows_in, res.rows_loaded, res.rows_quarantined) == (13, 10, 3)
    messages = dict(conn.execute("SELECT reason, message FROM quarantine").fetchall())
    assert set(messages) == {"bad_role", "missing_case_id", "bad_ts"}
    assert messages["bad_role"] == ("layanan.csv, line 12, column 'Ditangani Oleh': Kepala Sekolah is not guru mapel, "
                                    "wali kelas or guru BK; correct it")
    breaches = {(c, o) for c, s, o in _run(conn) if s == "layanan_berjenjang"}
    assert breaches == {(pseudonym("BUDI", KEY), "guru_bk"), (pseudonym("CICI", KEY), "guru_mapel -> guru_bk"),
                        (pseudonym("DEDI", KEY), "wali_kelas"),
                        (pseudonym("EKA", KEY), "guru_mapel -> wali_kelas -> guru_mapel")}
    raw = (tmp_path / "patuh.duckdb").read_bytes()
    conn.close()
    assert b"BUDI" not in raw and b"GITA" not in raw


def test_scores_below_the_kkm_need_a_remedial_in_time(tmp_path: Path) -> None:
    header = "NIS,Mapel,Penilaian,KD,Nilai,KKM,Tanggal,Tanggal Remedial,Susulan,Tanggal UAS\n"
    rows = [
        "ANI,Matematika,UH,KD 3.1,80,75,01/09/2025,,tidak,01/12/2025",          # passed
        "BUDI,Matematika,UH,KD 3.1,60,75,01/09/2025,08/09/2025,tidak,01/12/2025",  # remedial in time
        "CICI,Matematika,UH,KD 3.2,\"70,5\",75,01/10/2025,,tidak,01/12/2025",    # no remedial (decimal comma)
        "DEDI,Fisika,UTS,,50,75,15/10/2025,28/11/2025,tidak,01/12/2025",       # after the deadline (1 week)
        "EKA,Fisika,UAS,,40,75,01/12/2025,,tidak,01/12/2025",                 # final exam: no remedial rule
        "FAJAR,Fisika,UTS,,50,75,15/10/2025,,ya,01/12/2025",                  # tolerated absence: susulan
        "GITA,Fisika,UTS,,lima puluh,75,15/10/2025,,tidak,01/12/2025",         # not a number: quarantined
        "HANA,Fisika,UH,KD 3.3,60,75,15/12/2025,,tidak,01/03/2026",            # not due yet on 1 January
    ]
    path = tmp_path / "nilai.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    conn = connect(tmp_path / "patuh.duckdb")
    res = load_rule_input(conn, path, input_name="scores", institution_id="smkn1-petasia", key=KEY)
    assert (res.rows_in, res.rows_loaded, res.rows_quarantined) == (8, 7, 1)
    assert conn.execute("SELECT reason FROM quarantine").fetchall() == [("bad_score",)]
    breaches = {(c, o) for c, s, o in _run(conn) if s == "remedial_di_bawah_kkm"}
    assert breaches == {(pseudonym("CICI", KEY), "70.5 < 75.0"), (pseudonym("DEDI", KEY), "50.0 < 75.0")}
    conn.close()


def test_a_rule_input_without_its_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nilai.csv"
    path.write_text("NIS,Nilai\nANI,80\n", encoding="utf-8")
    conn = connect(tmp_path / "patuh.duckdb")
    with pytest.raises(UserError, match="no column for subject"):
        load_rule_input(conn, path, input_name="scores", institution_id="smkn1-petasia", key=KEY)
    assert conn.execute("SELECT count(*) FROM batches").fetchall()[0][0] == 0


def test_spreadsheet_date_cells_and_indonesian_month_names_are_dates(tmp_path: Path) -> None:
    """An XLSX with real date cells (read back as '2025-09-01 00:00:00') and a CSV with '16 Januari 2025'."""
    frame = pd.DataFrame({"NIS": ["A1", "A2"], "Tanggal": [dt.datetime(2025, 9, 1), dt.datetime(2025, 9, 2)],
                          "Status": ["H", "S"]})
    frame.to_excel(tmp_path / "absen.xlsx", index=False)
    (tmp_path / "absen.csv").write_text("NIS,Tanggal,Status\nB1,16 Januari 2025,hadir\n", encoding="utf-8")
    # an old spreadsheet export in Windows-1252 (a note column the loader never reads, with an en dash)
    (tmp_path / "absen-lama.csv").write_bytes("NIS;Tanggal;Status;Catatan\nB2;17/01/2025;S;demam \u2013 surat dokter\n"
                                             .encode("cp1252"))
    conn = connect(tmp_path / "patuh.duckdb")
    for name in ("absen.xlsx", "absen.csv", "absen-lama.csv"):
        res = load_rule_input(conn, tmp_path / name, input_name="attendance_daily", institution_id="smkn1-petasia",
                              key=KEY)
        assert res.rows_quarantined == 0, name
    days = [d for (d,) in conn.execute("SELECT day FROM attendance ORDER BY day").fetchall()]
    assert days == [dt.date(2025, 1, 16), dt.date(2025, 1, 17), dt.date(2025, 9, 1), dt.date(2025, 9, 2)]
    conn.close()
    assert b"demam" not in (tmp_path / "patuh.duckdb").read_bytes()  # a free-text column is never stored


def test_a_refused_row_is_named_where_the_user_finds_it(tmp_path: Path) -> None:
    """XLSX: the sheet row (the header is row 1); CSV: the line in the file (a blank line counts)."""
    pd.DataFrame({"NIS": ["A1", "A2", "A3"], "Tanggal": ["01/09/2025", "02/09/2025", "03/09/2025"],
                  "Status": ["H", "X", "S"]}).to_excel(tmp_path / "absen.xlsx", index=False)
    (tmp_path / "absen.csv").write_text("NIS,Tanggal,Status\nB1,01/09/2025,H\n\nB2,02/09/2025,X\n"
                                        "B3,03/09/2025,H,terlambat\nB4,04/09/2025,H\n", encoding="utf-8")
    conn = connect(tmp_path / "patuh.duckdb")
    results = [load_rule_input(conn, tmp_path / name, input_name="attendance_daily", institution_id="smkn1-petasia",
                               key=KEY) for name in ("absen.xlsx", "absen.csv")]
    messages = sorted(m for (m,) in conn.execute("SELECT message FROM quarantine").fetchall())
    assert [m.split(", column")[0] for m in messages if ", column" in m] == ["absen.csv, line 4", "absen.xlsx, row 3"]
    # a ragged line is quarantined with its line and the rest of the file loads (before, the whole file was refused)
    assert next(m for m in messages if ", column" not in m).startswith("absen.csv: line 5: too many columns")
    assert [(r.rows_in, r.rows_loaded, r.rows_quarantined) for r in results] == [(3, 2, 1), (4, 2, 2)]


def test_students_under_the_rules_belong_to_every_period_with_their_input(tmp_path: Path) -> None:
    """A periodic report of a rules document counts the students with input in the period, not only those
    whose first school day fell in it (a student's attendance spans the whole semester)."""
    from pipeline.publish import current_published
    from pipeline.report import write_reports

    days = pd.bdate_range("2025-08-04", "2025-11-28")
    rows = [(f"S{i}", d.strftime("%d/%m/%Y"), "H") for i in range(6) for d in days]
    conn = connect(tmp_path / "patuh.duckdb")
    load_rule_input(conn, _write(tmp_path / "absen.csv", rows), input_name="attendance_daily",
                    institution_id="smkn1-petasia", key=KEY)
    settings = get_settings()
    run_compliance(conn, load_catalogue(settings.catalogue_dir), load_institutions(settings.institutions_file),
                   load_calendars(settings.institutions_file), institution="smkn1-petasia",
                   as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), published_dir=tmp_path / "published")
    conn.close()
    published = current_published(tmp_path / "published")
    assert published is not None
    counts = {}
    for period in ("2025-10", "2025-12"):
        (html,) = [p for p in write_reports(published, period=period, institutions=["smkn1-petasia"],
                                            formats={"html"}, out_dir=tmp_path / "reports")
                   if p.name.startswith("smkn1-petasia")]
        doc = lxml.html.parse(str(html)).getroot()
        counts[period] = doc.xpath("//*[@data-key='n_cases']")[0].get("data-value")
    assert counts == {"2025-10": "6.0", "2025-12": "0.0"}


def test_cli_rule_input_loads_and_refuses_a_wrong_input_name(tmp_path: Path) -> None:
    path = tmp_path / "layanan.csv"
    path.write_text("No Kasus,NIS,Ditangani Oleh,Waktu\nK1,ANI,Guru Mapel,01/09/2025 08:00\n"
                    "K2,BUDI,Kepala Sekolah,02/09/2025 08:00\n", encoding="utf-8")
    db = tmp_path / "patuh.duckdb"
    ok = patuh("rule-input", str(path), "--input", "escalation_events", "--institution", "smkn1-petasia",
               "--db", str(db), secret=KEY.decode())
    assert ok.returncode == 0, ok.stderr
    assert "1 dimuat/loaded, 1 karantina/quarantined" in ok.stdout
    # the refused row's message, not only a count
    assert "layanan.csv, line 3, column 'Ditangani Oleh': Kepala Sekolah is not guru mapel" in ok.stdout
    assert "patuh quarantine --batch 1" in ok.stdout
    bad = patuh("rule-input", str(path), "--input", "nilai", "--institution", "smkn1-petasia", "--db", str(db),
                secret=KEY.decode())
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "unknown rule input 'nilai'" in bad.stderr and "scores" in bad.stderr


def test_attendance_for_an_institution_without_a_rules_model_warns_and_loads(tmp_path: Path) -> None:
    """smpn2-ngawi has no rules model: the rows load, but the user is told nothing will check them; the same file
    again says where and when it was loaded; a .docx is an unsupported type."""
    path = _write(tmp_path / "presensi.csv", [("NIS1", "01/09/2025", "H")])
    db = tmp_path / "patuh.duckdb"
    out = patuh("attendance", str(path), "--institution", "smpn2-ngawi", "--db", str(db), secret=KEY.decode())
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stderr.split())
    assert ("Warning: smpn2-ngawi has no rule model that reads attendance_daily (models that do: smkn1-petasia: "
            "smkn1-petasia/peraturan-akademik): the rows are loaded, but nothing will check them") in said
    assert "1 dimuat/loaded" in out.stdout
    checked = patuh("attendance", str(_write(tmp_path / "b.csv", [("NIS1", "02/09/2025", "H")])), "--institution",
                    "smkn1-petasia", "--db", str(db), secret=KEY.decode())
    assert checked.returncode == 0 and "Warning" not in checked.stderr, checked.stderr
    again = patuh("attendance", str(path), "--institution", "smkn1-petasia", "--db", str(db), secret=KEY.decode())
    conn = duckdb.connect(str(db), read_only=True)
    (loaded_at,), = conn.execute("SELECT loaded_at FROM batches WHERE batch_id = 1").fetchall()
    conn.close()
    assert again.returncode == 0, again.stderr
    assert (f"already loaded as batch 1 (same sha256) for smpn2-ngawi, rule input attendance, on "
            f"{loaded_at:%Y-%m-%d %H:%M} UTC: nothing loaded" in " ".join(again.stdout.split()))
    doc = tmp_path / "presensi.docx"
    doc.write_text("x", encoding="utf-8")
    refused = patuh("attendance", str(doc), "--institution", "smkn1-petasia", "--db", str(db), secret=KEY.decode())
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "presensi.docx: unsupported file type .docx" in refused.stderr
