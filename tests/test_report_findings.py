"""QA pass 3 on the periodic reports (findings 5, 7, 9, 10, 11, 16, 17, 18), on the shared fixture published file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import lxml.html
import pytest

from pipeline.bottlenecks import compute_bottlenecks
from pipeline.report import _Charts, institution_report, parse_period, rate_cell, write_reports
from tests.fixtures_published import RUN_ID, build_published_db

INST = "smpn2-ngawi"
MONTHS = ["2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_published_db(tmp_path_factory.mktemp("pub") / "published" / f"{RUN_ID}.duckdb")


def _copy(published: Path, tmp_path: Path) -> Path:
    """A copy of the published file (with its CURRENT) to change for one test."""
    copy = tmp_path / "published" / published.name
    copy.parent.mkdir(parents=True)
    shutil.copy(published, copy)
    (copy.parent / "CURRENT").write_text(copy.name, encoding="utf-8")
    return copy


def _doc(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.parse(str(path)).getroot()


def _text(el: lxml.html.HtmlElement) -> str:
    return " ".join(el.text_content().split())


def _report(db: Path, inst: str, period: str, lang: str = "id") -> dict[str, Any]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return institution_report(conn, inst, parse_period(period), lang)


def _set_as_of(db: Path, params: dict[str, Any]) -> None:
    with duckdb.connect(str(db)) as conn:
        conn.execute("UPDATE runs SET params = ?", [json.dumps(params)])


# --- finding 5: secondary disclosure -------------------------------------------------------------------


def test_a_rate_never_tells_a_count_of_1_to_4() -> None:
    assert rate_cell(4, 6, "id").value is None and "< 5 kasus" in rate_cell(4, 6, "id").text.replace("\xa0", " ")
    assert rate_cell(5, 6, "id").text.replace("\xa0", " ") == "semua kecuali < 5 kasus"
    assert rate_cell(5, 6, "en").text.replace("\xa0", " ") == "all but < 5 cases"
    assert rate_cell(4, 9, "id").suppressed and rate_cell(0, 9, "id").value == 0.0
    assert rate_cell(9, 9, "id").value == 1.0 and rate_cell(5, 10, "id").value == 0.5
    assert rate_cell(2, 4, "id").text.replace("\xa0", " ") == "n < 5"


def _truth(conn: duckdb.DuckDBPyConnection, inst: str, period: str) -> dict[str, tuple[int, int, int]]:
    p = parse_period(period)
    rows = conn.execute("""
        SELECT r.sop_id, count(*), count(*) FILTER (WHERE compliant), count(*) FILTER (WHERE status = 'open')
        FROM case_results r JOIN institutions i USING (institution_id)
        WHERE r.institution_id = ? AND timezone(i.timezone, r.opened_at) >= ? AND timezone(i.timezone, r.opened_at) < ?
        GROUP BY 1""", [inst, p.start, p.end]).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_rates_and_totals_do_not_give_back_a_suppressed_count(published: Path) -> None:
    """QA: "5 | 80%" told 1 non-compliant case; "27 kasus terbuka" beside rows of 26 and "< 5" told 1."""
    hidden_rates = secondary = 0
    with duckdb.connect(str(published), read_only=True) as conn:
        for inst in ("smpn2-ngawi", "bontang-bk", "rppsa-mataram"):
            for period in [*MONTHS, "2025-Q4", "2025"]:
                r = institution_report(conn, inst, parse_period(period), "id")
                truth = _truth(conn, inst, period)
                s = r["summary"]
                for b in r["sops"]:
                    n, k, _ = truth.get(b["sop_id"], (0, 0, 0))
                    if b["rate"].value is not None:  # a shown rate of n cases: neither k nor n - k is 1-4
                        assert n >= 5 and not 0 < k < 5 and not 0 < n - k < 5, (inst, period, b["sop_id"])
                    hidden_rates += b["rate"].suppressed and n >= 5
                    for st in b["steps"]:  # shown step counts do not fall 1-4 short of the SOP's cases
                        if st["n_cases"].value is not None:
                            assert not 0 < n - st["n_cases"].value < 5
                # the summary's compliant count beside its total is the rate's numerator: the same rule
                n_all = sum(t[0] for t in truth.values())
                k_all = sum(t[1] for t in truth.values())
                if s["n_compliant"].value is not None and s["n_cases"].value is not None:
                    assert not 0 < n_all - k_all < 5
                # complementary suppression: a total shown exactly never has exactly one hidden part
                for total, part, col in (("n_cases", "n_cases", 0), ("n_open", "n_open", 2),
                                         ("n_compliant", "rate", 1)):
                    if s[total].value is None or len(r["sops"]) < 2:
                        continue
                    hidden = [b for b in r["sops"] if b[part].suppressed
                              and truth.get(b["sop_id"], (0, 0, 0))[col] > 0]
                    assert len(hidden) != 1, (inst, period, total)
                    secondary += sum(b[part].secondary for b in r["sops"])
    assert hidden_rates > 0 and secondary > 0  # the fixture exercises both rules


def test_a_total_with_one_small_part_reads_as_the_parts_plus_less_than_5(published: Path, tmp_path: Path) -> None:
    db = _copy(published, tmp_path)
    with duckdb.connect(str(db)) as conn:  # bk001-alur keeps 3 of its October cases
        conn.execute("""
            DELETE FROM case_results WHERE sop_id = 'smpn2-ngawi/bk001-alur'
              AND opened_at >= TIMESTAMPTZ '2025-10-01 00:00+07' AND opened_at < TIMESTAMPTZ '2025-11-01 00:00+07'
              AND case_id NOT IN (SELECT case_id FROM case_results WHERE sop_id = 'smpn2-ngawi/bk001-alur'
                  AND opened_at >= TIMESTAMPTZ '2025-10-01 00:00+07'
                  AND opened_at < TIMESTAMPTZ '2025-11-01 00:00+07' ORDER BY case_id LIMIT 3)""")
        truth = _truth(conn, INST, "2025-10")
    (path,) = write_reports(db, period="2025-10", institutions=[INST], formats={"html"}, out_dir=tmp_path / "o")
    doc = _doc(path)
    big = truth["smpn2-ngawi/bk001-prosedur"][0]
    tile = doc.xpath("//*[@data-key='n_cases']")[0]
    assert tile.get("data-value") == "suppressed" and _text(tile) == f"{big} + < 5"
    assert "\xa0" in tile.text_content()  # no line break inside
    # the compliant count, which with the rate would give the total back, is left out of the sentence
    assert doc.xpath("//*[@data-key='n_compliant']") == []
    assert _text(doc.xpath("//*[@data-key='cover_n_cases']")[0]) == f"{big} + < 5"


# --- finding 7: a previous period only partly covered ------------------------------------------------------


def test_the_trend_says_when_the_previous_period_is_only_partly_covered(published: Path) -> None:
    with duckdb.connect(str(published), read_only=True) as conn:
        first = conn.execute("SELECT min(timezone('Asia/Jakarta', opened_at))::DATE FROM case_results "
                             "WHERE institution_id = ?", [INST]).fetchone()
    assert first is not None and (first[0].year, first[0].month) == (2025, 8)
    day = f"{first[0].day} Agu 2025"
    q4 = _report(published, INST, "2025-Q4")  # against Q3 2025, whose data begin in August
    assert q4["prev_note"] == f"data mulai {day}"
    assert q4["summary"]["trend"].value is not None  # kept: a rate is comparable, the count is annotated
    assert _report(published, INST, "2025-10")["prev_note"] == ""  # September is covered
    assert _report(published, INST, "2025-Q3", "en")["run_notes"]["coverage"] == (
        f"Data start {first[0].day} Aug 2025: this period is only partly covered.")


# --- finding 9: the as-of on the cover ----------------------------------------------------------------------


def test_the_cover_dates_open_and_stalled_counts(published: Path, tmp_path: Path) -> None:
    db = _copy(published, tmp_path)
    _set_as_of(db, {"as_of": "2025-11-01T00:00:00+07:00"})
    notes = _report(db, INST, "2025-10")["run_notes"]
    assert notes["as_of"] == ("Data per 1 November 2025 pukul 00.00 WIB (kasus terbuka dan macet dinilai pada saat "
                              "itu).")
    assert "period" not in notes  # October is over at midnight of 1 November
    assert _report(db, INST, "2025-10", "en")["run_notes"]["as_of"] == (
        "Data as of 1 November 2025, 00:00 WIB (open and stalled cases are judged at that time).")
    # an as-of at local midnight includes the day before, not that day
    assert _report(db, INST, "2025-Q4")["run_notes"]["period"] == (
        "Periode ini belum selesai: data sampai dengan 31 Okt 2025; angka dapat berubah sampai periode berakhir.")
    assert _report(db, INST, "2025-11")["run_notes"]["period"].startswith(
        "Periode ini belum dimulai saat analisis (data sampai dengan 31 Okt 2025)")
    # an institution held back: its as-of is the earlier run's, and its note keeps its key
    _set_as_of(db, {"as_of": "2026-01-15T00:00:00+07:00", "held": {INST: {
        "files": ["smpn2-ngawi/x.yaml"], "checked_as_of": "2025-12-01T00:00:00+07:00"}}})
    notes = _report(db, INST, "2025-10")["run_notes"]
    assert list(notes)[:2] == ["held", "as_of"]
    assert "data sampai dengan 30 Nov 2025" in notes["held"] and "1 Desember 2025" in notes["as_of"]


# --- finding 10: a between-steps or whole-case limit has a label --------------------------------------------


def test_a_limit_breach_names_its_limit(published: Path, tmp_path: Path) -> None:
    db = _copy(published, tmp_path)
    with duckdb.connect(str(db)) as conn:  # as the engine writes them: a between-steps SLA's id as step_id
        conn.execute("UPDATE deviations SET step_id = 'penjadwalan', expected = '1×24 jam' "
                     "WHERE sop_id = 'bontang-bk/konseling-individu' AND kind = 'case_sla_breach'")
        # at SMP N 2 the whole-case limits (step_id NULL) are made the top deviation of bk001-prosedur
        conn.execute("DELETE FROM deviations WHERE sop_id = 'smpn2-ngawi/bk001-prosedur' AND kind <> 'case_sla_breach'")
    for lang, between, whole in [
        ("id", "Proses penjadwalan dapat diselesaikan dalam 1×24 jam setelah permintaan diterima (langkah 1 → 3)",
         "Seluruh kasus (1 x 24 jam)"),
        ("en", "Proses penjadwalan dapat diselesaikan dalam 1×24 jam setelah permintaan diterima (steps 1 → 3)",
         "Whole case (1 x 24 jam)")]:
        out = tmp_path / lang
        (bontang,) = write_reports(db, period="2025", institutions=["bontang-bk"], formats={"html"}, out_dir=out,
                                   lang=lang)
        rows = _doc(bontang).xpath("//tr[@data-kind='case_sla_breach']")
        assert rows and {_text(r.xpath("./td[2]")[0]) for r in rows} == {between}
        (ngawi,) = write_reports(db, period="2025", institutions=[INST], formats={"html"}, out_dir=out, lang=lang)
        rows = _doc(ngawi).xpath("//tr[@data-kind='case_sla_breach']")  # the fixture's whole-case limit
        assert rows and {_text(r.xpath("./td[2]")[0]) for r in rows} == {whole}


# --- finding 11: no "0%" for a step without a standard -------------------------------------------------------


def test_a_step_without_a_standard_shows_a_dash_over_the_standard(published: Path, tmp_path: Path) -> None:
    db = _copy(published, tmp_path)
    with duckdb.connect(str(db)) as conn:  # as the engine writes it: FALSE, not NULL, without a standard
        conn.execute("UPDATE event_timing SET over_standard = FALSE WHERE over_standard IS NULL")
        compute_bottlenecks(conn, RUN_ID)
        none = {tuple(r) for r in conn.execute(
            "SELECT sop_id, step_id FROM sop_steps WHERE standard_max IS NULL").fetchall()}
    assert none
    (path,) = write_reports(db, period="2025", institutions=["bontang-bk"], formats={"html"}, out_dir=tmp_path / "o")
    doc = _doc(path)
    seen = 0
    for table, key in (("steps", "step_share_over"), ("bottlenecks", "bn_share_over")):
        for row in doc.xpath(f"//table[@class='{table}']//tr[@data-step]"):
            sop_id = row.xpath("ancestor::section/@data-sop")[0]
            if (sop_id, row.get("data-step")) in none:
                seen += 1
                assert _text(row.xpath(f".//*[@data-key='{key}']")[0]) == "–"
    assert seen


# --- finding 16: a period before the first data ------------------------------------------------------------


def test_a_period_before_the_data_says_so_and_the_cli_warns(published: Path, tmp_path: Path) -> None:
    db = _copy(published, tmp_path)
    notes = _report(db, INST, "2024-05")["run_notes"]
    assert notes["no_data"].startswith("Belum ada data untuk periode ini (data mulai ")
    assert "no_data" not in _report(db, INST, "2025-10")["run_notes"]
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--institution", INST, "--period",
                             "2024-05", "--format", "html", "--db", str(db.parent.parent / "patuh.duckdb"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    err = " ".join(result.stderr.split())
    assert "Peringatan / Warning" in err and "belum ada data untuk periode ini" in err and "no data for this" in err
    assert (tmp_path / "out" / f"{INST}_2024-05.html").exists()


# --- finding 17: the index keeps earlier periods -------------------------------------------------------------


def test_the_index_lists_every_report_in_the_folder_by_period(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    write_reports(published, period="2025-Q4", institutions=None, formats={"html"}, out_dir=out)
    write_reports(published, period="2025-10", institutions=None, formats={"html"}, out_dir=out)
    doc = _doc(out / "index.html")
    links = set(doc.xpath("//a/@href"))
    assert links == {p.name for p in out.iterdir() if p.name != "index.html"}
    assert [g.get("data-period") for g in doc.xpath("//section[@class='period-group']")] == ["2025-Q4", "2025-10"]
    # the period just written keeps its figures
    assert doc.xpath("//section[@data-period='2025-10']//*[@data-key='compliance_rate']")


# --- finding 18: typography ------------------------------------------------------------------------------------


class _KeepFigures(_Charts):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[Any] = []

    def svg(self, fig: Any, width: int, height: int) -> str | None:
        self.figures.append(fig)
        return "data:image/svg+xml;base64,"


def test_typography(published: Path, tmp_path: Path) -> None:
    r = _report(published, INST, "2025-Q4")
    assert r["prev_title"] == "Triwulan III 2025, Juli–September" and "(" not in r["period_title"]
    charts = _KeepFigures()
    with duckdb.connect(str(published), read_only=True) as conn:
        institution_report(conn, INST, parse_period("2025-Q4"), "id", charts=charts)
    trend = next(f for f in charts.figures if len(f.data) == 1)
    assert list(trend.data[0].x)[:2] == ["Agu 2025", "Sep 2025"]  # not "Agu 25", read as the 25th
    (path,) = write_reports(published, period="2025-Q4", institutions=[INST], formats={"html"}, out_dir=tmp_path)
    html = path.read_text(encoding="utf-8")
    assert 'sebagai "&lt;&nbsp;5"' in html  # the PDF's introduction no longer breaks between "<" and "5"
    for el in _doc(path).xpath("//*[@data-value='suppressed']"):
        assert "< 5" not in el.text_content()  # always "<\xa05"


def test_a_rules_document_counts_the_breaches_of_its_period(published: Path, tmp_path: Path) -> None:
    """QA 12: a rules document's report (SMK N 1 Petasia) counted every breach so far in every period, so February
    listed October's breaches and each month read the same. A breach now belongs to the period it happened in;
    the process sections (bottlenecks, step times) are left out for rules."""
    copy = _copy(published, tmp_path)
    conn = duckdb.connect(str(copy))
    conn.execute("INSERT INTO institutions VALUES ('smkn1-petasia', 'SMK Negeri 1 Petasia', 'school', "
                 "'Morowali Utara', 'Asia/Makassar')")
    conn.execute("INSERT INTO sops VALUES ('smkn1-petasia/aturan', 'smkn1-petasia', NULL, 'Peraturan Akademik', "
                 "'rules', 2, NULL, 'h', '{}')")
    for k in range(8):  # students with input from January to June
        conn.execute("INSERT INTO case_results (run_id, institution_id, sop_id, case_id, opened_at, closed_at, "
                     "compliant, n_deviations, status) VALUES (?, 'smkn1-petasia', 'smkn1-petasia/aturan', ?, "
                     "'2026-01-05 01:00+00', '2026-06-26 01:00+00', ?, ?, 'closed')",
                     [RUN_ID, f"siswa-{k}", k >= 6, 0 if k >= 6 else 1])
    for k in range(6):  # one breach each: five in February, one in May
        conn.execute("INSERT INTO deviations (run_id, institution_id, sop_id, case_id, kind, step_id, activity, "
                     "expected, observed, severity, occurred_at) VALUES (?, 'smkn1-petasia', 'smkn1-petasia/aturan', "
                     "?, 'rule_breach', 'hadir', 'Kehadiran', 'Pasal 5', '70%', 'medium', ?)",
                     [RUN_ID, f"siswa-{k}", "2026-05-20 02:00+00" if k == 5 else "2026-02-10 02:00+00"])
    conn.close()
    pub = duckdb.connect(str(copy), read_only=True)
    february = institution_report(pub, "smkn1-petasia", parse_period("2026-02"), "id")
    may = institution_report(pub, "smkn1-petasia", parse_period("2026-05"), "id")
    half = institution_report(pub, "smkn1-petasia", parse_period("2026-S1"), "id")
    pub.close()
    assert february["summary"]["n_cases"].value == may["summary"]["n_cases"].value == 8
    assert february["summary"]["n_deviations"].value == 5  # May's breach is not February's
    assert may["summary"]["n_deviations"].text == "<\u00a05" and half["summary"]["n_deviations"].value == 6
    (sop,) = february["sops"]
    assert [(d["n_cases"].value, d["kind"]) for d in sop["deviations"]] == [(5, "Pelanggaran aturan")]
    out = tmp_path / "reports"
    write_reports(copy, period="2026-02", institutions=["smkn1-petasia"], formats={"html"}, out_dir=out)
    text = _text(_doc(out / "smkn1-petasia_2026-02.html"))
    assert "Hambatan utama" not in text and "pelanggaran dihitung menurut tanggal terjadinya" in text
