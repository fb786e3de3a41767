"""Ingest: messy exports, pm4py parity, idempotence, atomicity, privacy and the CLI (real DuckDB files)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

from pipeline.config import get_settings
from pipeline.db import connect
from pipeline.errors import UserError
from pipeline.ingest import ingest_file, pseudonym
from tests.cli_process import patuh

MESSY = Path(__file__).parent / "fixtures" / "messy"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((MESSY / "expected.yaml").read_text(encoding="utf-8"))
REFERENCE = Path("/work/shared/reference/pm4py-tests")
KEY = b"test-secret-for-ingest-not-a-real-key"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATUH_SECRET", KEY.decode())


def _counts(conn: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
    return tuple(conn.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM cases), (SELECT count(*) FROM quarantine), "
        "(SELECT count(*) FROM batches)").fetchall()[0])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_messy_export(name: str, tmp_path: Path) -> None:
    exp = EXPECTED[name]
    conn = connect(tmp_path / "t.duckdb")
    kwargs: dict[str, Any] = {"institution_id": exp.get("institution", "smpn2-ngawi"), "sop_id": exp.get("sop")}
    if "mapping" in exp:
        kwargs["mapping"] = MESSY / exp["mapping"]
    if "error" in exp:
        with pytest.raises(UserError, match=exp["error"]):
            ingest_file(conn, MESSY / name, **kwargs)
        assert _counts(conn) == (0, 0, 0, 0)
        return
    r = ingest_file(conn, MESSY / name, **kwargs)
    assert (r.rows_in, r.rows_loaded, r.rows_duplicate) == (exp["rows_in"], exp["loaded"], exp["duplicate"])
    assert r.quarantined_by_reason == exp["quarantined"]
    assert r.rows_in == r.rows_loaded + r.rows_quarantined + r.rows_duplicate + r.rows_lifecycle
    assert r.rows_unknown_activity == exp.get("unknown_activity", 0)
    events, cases, quarantined, batches = _counts(conn)
    assert (events, cases, quarantined, batches) == (exp["loaded"], exp["cases"], r.rows_quarantined, 1)
    n_open = conn.execute("SELECT count(*) FROM cases WHERE status = 'open' AND closed_at IS NULL").fetchall()[0][0]
    assert n_open == exp["open_cases"]
    row = conn.execute("SELECT rows_in, rows_loaded, rows_quarantined, rows_duplicate FROM batches").fetchall()[0]
    assert row == (r.rows_in, r.rows_loaded, r.rows_quarantined, r.rows_duplicate)
    for message, in conn.execute("SELECT message FROM quarantine").fetchall():
        assert message.startswith(name) and ("row" in message or "line" in message)


def test_messy_dates_steps_roles_documents(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, MESSY / "kasus_bk.csv", institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur",
                mapping=MESSY / "kasus_bk.mapping.yaml")
    rows = conn.execute("SELECT source_row, step_id, role, documents, strftime(ts_end AT TIME ZONE 'Asia/Jakarta', "
                        "'%Y-%m-%d %H:%M') FROM events ORDER BY source_row").fetchall()
    by_row = {r[0]: r[1:] for r in rows}
    assert by_row[1] == ("s1", "piket", ["Laporan"], "2020-01-16 08:30")        # dd/mm/yyyy HH:MM, WIB
    assert by_row[2] == ("s2", "wali_kelas", ["Koordinasi ke BK"], "2020-01-16 09:15")  # 16 Januari 2020
    assert by_row[6][1:] == ("piket", [], "2021-08-03 07:45")                   # "3 Agu 2021", alias role
    assert by_row[13][3] == "2021-12-10 00:00"                                  # Excel serial date
    assert by_row[12][0] is None                                                # not a step: kept, NULL


def test_pm4py_reference_logs_match_pm4py_counts(tmp_path: Path) -> None:
    sys._pm4py_welcome_shown = True  # type: ignore[attr-defined]
    import pandas as pd
    import pm4py

    for i, name in enumerate(["running-example.xes", "roadtraffic100traces.xes", "a12f0n00.xes.gz",
                              "a12f0n10.xes.gz", "running-example.csv", "receipt.csv"]):
        path = REFERENCE / name
        if name.endswith(".csv"):
            df = pm4py.format_dataframe(pd.read_csv(path), case_id="case:concept:name",
                                        activity_key="concept:name", timestamp_key="time:timestamp")
        else:
            df = pm4py.read_xes(str(path))
        conn = connect(tmp_path / f"{i}.duckdb")
        r = ingest_file(conn, path, institution_id="smpn2-ngawi")
        events, cases, quarantined, _ = _counts(conn)
        assert (events, cases, quarantined) == (len(df), df["case:concept:name"].nunique(), 0), name
        assert r.rows_in == len(df)
        conn.close()


def test_same_file_twice_is_a_no_op(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.duckdb")
    first = ingest_file(conn, REFERENCE / "running-example.xes", institution_id="smpn2-ngawi")
    before = _counts(conn)
    again = ingest_file(conn, REFERENCE / "running-example.xes", institution_id="smpn2-ngawi")
    assert again.skipped and again.batch_id == first.batch_id and again.rows_loaded == first.rows_loaded
    assert _counts(conn) == before and before[3] == 1


def test_a_second_batch_updates_its_cases(tmp_path: Path) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text("case_id,activity,timestamp\nA,s1,2024-03-04 08:00\nA,s2,2024-03-04 09:00\nB,s1,2024-03-05 08:00\n")
    two.write_text("case_id,activity,timestamp,status\nA,s3,2024-03-06 08:00,\nA,s6,2024-03-07 08:00,\n"
                   "B,s2,2024-03-06 10:00,selesai\nA,s2,2024-03-04 09:00,\n")
    conn = connect(tmp_path / "t.duckdb")
    sop = "smpn2-ngawi/bk001-prosedur"
    r1 = ingest_file(conn, one, institution_id="smpn2-ngawi", sop_id=sop)
    assert (r1.cases_new, r1.cases_open) == (2, 2)  # open cases are kept
    r2 = ingest_file(conn, two, institution_id="smpn2-ngawi", sop_id=sop)
    assert (r2.cases_new, r2.cases_updated, r2.rows_duplicate) == (0, 2, 1)  # A,s2 was already loaded
    status = sorted(conn.execute("SELECT case_id, status || ':' || n_events FROM cases").fetchall())
    assert status == sorted([(pseudonym("A", KEY), "closed:4"), (pseudonym("B", KEY), "closed:2")])  # one row each


def test_each_case_keeps_its_last_event_for_the_stall_check(tmp_path: Path) -> None:
    """The run judges open cases stalled from the step of their last mapped event and the end of their last
    event; ingest keeps both per case, and a later batch moves them."""
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text("case_id,activity,timestamp\nA,s1,2024-03-04 08:00\nA,s2,2024-03-04 09:00\n"
                   "A,Rapat dengan komite,2024-03-04 10:00\nB,s1,2024-03-05 08:00\n")
    two.write_text("case_id,activity,timestamp\nA,s3,2024-03-06 08:00\n")
    conn = connect(tmp_path / "t.duckdb")
    sop = "smpn2-ngawi/bk001-prosedur"

    def last() -> list[tuple[str, str, str]]:
        return sorted(conn.execute("""SELECT case_id, last_step_id, strftime(timezone('Asia/Jakarta', last_at),
                                      '%Y-%m-%d %H:%M') FROM cases""").fetchall())

    ingest_file(conn, one, institution_id="smpn2-ngawi", sop_id=sop)
    a, b = pseudonym("A", KEY), pseudonym("B", KEY)
    # A's last event is no SOP step: its step is the one before, its time its own
    assert last() == sorted([(a, "s2", "2024-03-04 10:00"), (b, "s1", "2024-03-05 08:00")])
    ingest_file(conn, two, institution_id="smpn2-ngawi", sop_id=sop)
    assert last() == sorted([(a, "s3", "2024-03-06 08:00"), (b, "s1", "2024-03-05 08:00")])


@pytest.mark.parametrize("long_row", [3, 30_000])  # inside DuckDB's sniffing sample, and far after it
def test_a_multi_megabyte_cell_is_read_not_refused(tmp_path: Path, long_row: int) -> None:
    """A case note pasted whole (3 MB in one cell) is longer than DuckDB's default CSV line limit."""
    path = tmp_path / "notes.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("case_id,activity,timestamp,catatan\n")
        for i in range(1, 40_001):
            note = "kronologi " * 300_000 if i == long_row else "ok"
            fh.write(f"K{i // 4},s{i % 4 + 1},2024-03-04 08:{i % 60:02d},\"{note}\"\n")
        fh.write("K1,s1\n")  # a ragged line is still quarantined after the wider read
    conn = connect(tmp_path / "t.duckdb")
    result = ingest_file(conn, path, institution_id="smpn2-ngawi")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (40_001, 40_000, 1)
    assert result.quarantined_by_reason == {"ragged_line": 1}
    assert _counts(conn) == (40_000, 10_001, 1, 1)


def test_a_line_over_ten_megabytes_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("case_id,activity,timestamp,catatan\n" + "K1,s1,2024-03-04 08:00,ok\n" * 30_000
                    + "K2,s1,2024-03-04 09:00,\"" + "x" * 11_000_000 + "\"\n", encoding="utf-8")
    conn = connect(tmp_path / "t.duckdb")
    result = ingest_file(conn, path, institution_id="smpn2-ngawi")
    counts = (result.rows_in, result.rows_loaded, result.rows_duplicate, result.rows_quarantined)
    assert counts == (30_001, 1, 29_999, 1)
    message = conn.execute("SELECT message FROM quarantine").fetchall()[0][0]
    assert message.startswith("notes.csv: line 30002: ") and "at most 10 MB" in message


def test_a_refused_csv_row_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    """The line a user finds in an editor or a spreadsheet: the header, a cell spanning two lines, a blank line
    and a ragged line before the refused row all count."""
    path = tmp_path / "kasus.csv"
    path.write_text('case_id,activity,timestamp,catatan\nA,s1,2024-03-04 08:00,"dua\nbaris"\n\n'
                    "B,s1,2024-03-04 08:30,x,lebih\n,s1,2024-03-04 09:00,ok\nC,s1,kemarin,ok\n", encoding="utf-8")
    conn = connect(tmp_path / "t.duckdb")
    result = ingest_file(conn, path, institution_id="smpn2-ngawi")
    assert result.quarantined_by_reason == {"missing_case_id": 1, "bad_timestamp": 1, "ragged_line": 1}
    rows = dict(conn.execute("SELECT reason, source_row FROM quarantine").fetchall())
    assert rows == {"ragged_line": 5, "missing_case_id": 6, "bad_timestamp": 7}
    messages = [m for (m,) in conn.execute("SELECT message FROM quarantine ORDER BY source_row").fetchall()]
    assert messages[1].startswith("kasus.csv: line 6: column 'case_id'")
    assert messages[2].startswith("kasus.csv: line 7: column 'timestamp': 'kemarin' is not a date")


def test_an_error_mid_batch_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("case_id,activity,timestamp\nA,x,2024-03-04 08:00\n")
    conn = connect(tmp_path / "t.duckdb")
    conn.execute("CREATE TABLE block AS SELECT 1")
    # make the batches insert fail after events were written: a conflicting batch row with another sha
    next_id = conn.execute("SELECT nextval('batch_seq') + 1").fetchall()[0][0]
    conn.execute("INSERT INTO batches (batch_id, source_file, sha256, institution_id, format, loaded_at, rows_in, "
                 "rows_loaded, rows_quarantined) VALUES (?, 'x', 'other', 'smpn2-ngawi', 'csv', now(), 0, 0, 0)",
                 [next_id])
    with pytest.raises(duckdb.Error):
        ingest_file(conn, path, institution_id="smpn2-ngawi")
    assert _counts(conn) == (0, 0, 0, 1)


def test_a_killed_load_leaves_no_half_batch(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    duckdb.execute("COPY (SELECT 'C' || (i // 10) AS case_id, 'step ' || (i % 10) AS activity, "
                   f"TIMESTAMP '2024-01-01' + to_seconds(i) AS timestamp FROM range(1000000) t(i)) TO '{big}'")
    db = tmp_path / "t.duckdb"
    connect(db).close()
    code = ("import os, sys; os.environ['PATUH_SECRET']='k' * 32; from pipeline.db import connect; "
            "from pipeline.ingest import ingest_file; c = connect(sys.argv[1]); "
            "ingest_file(c, sys.argv[2], institution_id='smpn2-ngawi', "
            "progress=lambda stage, frac: print(stage, flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(big)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    for line in proc.stdout:  # kill inside the transaction, while events are being written
        if line.startswith(b"menulis"):
            time.sleep(0.2)
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    conn = connect(db)
    assert _counts(conn) == (0, 0, 0, 0), "a half batch survived the kill"


def test_no_raw_identifier_or_name_in_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    conn = connect(db)
    ingest_file(conn, MESSY / "kasus_bk.csv", institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur",
                mapping=MESSY / "kasus_bk.mapping.yaml")
    conn.execute("CHECKPOINT")
    conn.close()
    data = db.read_bytes()
    for secret in ["K-001", "K-002", "K-003", "Budi Santoso", "Ani Wijaya", "Rudi Hartono", "Siti Aminah",
                   "Rahmat Hidayat", "Dewi Lestari", "terlambat", "orang tua, dipanggil", "Masa Depan"]:
        assert secret.encode() not in data, secret
    wal = db.with_suffix(".duckdb.wal")
    assert not wal.exists() or b"Budi" not in wal.read_bytes()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return patuh(*args, secret=KEY.decode())


def _suggested(export: Path, sop: str, mapping: Path) -> str:
    """``patuh map suggest EXPORT --sop SOP``, saved as ``mapping`` as a user keeps it; the suggestion's text."""
    suggested = _cli("map", "suggest", str(export), "--sop", sop)
    assert suggested.returncode == 0, suggested.stderr
    mapping.write_text(suggested.stdout, encoding="utf-8")
    return suggested.stdout


def _ingest_mapped(export: Path, institution: str, sop: str, mapping: Path, db: Path) -> None:
    """``patuh ingest EXPORT --mapping MAPPING`` into ``db``, which must succeed."""
    loaded = _cli("ingest", str(export), "--institution", institution, "--sop", sop, "--mapping", str(mapping),
                  "--db", str(db))
    assert loaded.returncode == 0, loaded.stderr


def test_cli_ingest_prints_a_summary_and_refuses_a_bad_file(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    ok = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
              "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    assert "kasus_bk.csv" in ok.stdout and "out_of_range 2" in ok.stdout
    bad = _cli("ingest", str(MESSY / "truncated.xes"), "--institution", "smpn2-ngawi", "--db", str(db))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and "not a complete XES file" in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if line.strip()]) <= 3  # one message (may wrap)


def test_cli_ingest_loads_every_export_in_a_folder(tmp_path: Path) -> None:
    """A monthly export folder loads file by file; notes, hidden files and Excel lock files are left alone."""
    exports = tmp_path / "ekspor"
    exports.mkdir()
    header = "case:concept:name,concept:name,time:timestamp\n"
    (exports / "2024-03.csv").write_text(header + "K-1,s1,2024-03-04 08:00\nK-1,s2,2024-03-05 09:00\n")
    (exports / "2024-04.csv").write_text(header + "K-2,s1,2024-04-01 08:00\n")
    (exports / "catatan.docx").write_bytes(b"PK\x03\x04 not an export")
    (exports / "~$2024-05.xlsx").write_bytes(b"lock")
    (exports / ".2024-05.csv.swp").write_text("swap")
    db = tmp_path / "t.duckdb"
    ok = _cli("ingest", str(exports), "--institution", "smpn2-ngawi", "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    conn = duckdb.connect(str(db), read_only=True)
    batches = conn.execute("SELECT source_file, rows_loaded FROM batches ORDER BY batch_id").fetchall()
    conn.close()
    assert batches == [("2024-03.csv", 2), ("2024-04.csv", 1)]
    empty = tmp_path / "kosong"
    empty.mkdir()
    refused = _cli("ingest", str(empty), "--institution", "smpn2-ngawi", "--db", str(db))
    assert refused.returncode == 1 and "a folder without exports" in refused.stderr
    missing = _cli("ingest", str(tmp_path / "nope.csv"), "--institution", "smpn2-ngawi", "--db", str(db))
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
    assert "Traceback" not in refused.stderr + missing.stderr


def test_cli_output_reads_whole_in_an_80_column_terminal(tmp_path: Path) -> None:
    """In a default 80-column terminal the ingest summary and the batch list give every file name, SOP id and
    count whole (one record per file), and no line is cut; a wide terminal gets the same numbers as a table.
    Rich's tables squeezed eleven columns to a few letters each ("kas…", "smpn…") before."""
    export = tmp_path / "kasus-bimbingan-konseling-semester-ganjil-2025.csv"
    export.write_bytes((MESSY / "kasus_bk.csv").read_bytes())
    db = tmp_path / "t.duckdb"
    loaded = patuh("ingest", str(export), "--institution", "smpn2-ngawi", "--sop", "smpn2-ngawi/bk001-prosedur",
                   "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db), secret=KEY.decode(), columns=80)
    listed = patuh("batches", "--db", str(db), secret=KEY.decode(), columns=80)
    assert loaded.returncode == 0 and listed.returncode == 0, loaded.stderr + listed.stderr
    for out in (loaded.stdout, listed.stdout):
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
        assert export.name in out and "dimuat / loaded: 8" in out and "karantina / quarantined: 4" in out
    assert "alasan / reasons: out_of_range 2, bad_timestamp 1, missing_case_id 1" in loaded.stdout
    assert "batch 1  " + export.name in listed.stdout and "SOP: smpn2-ngawi/bk001-prosedur" in listed.stdout
    wide = patuh("batches", "--db", str(db), secret=KEY.decode(), columns=200)
    row = next(line for line in wide.stdout.splitlines() if export.name in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][2:4] == ["smpn2-ngawi", "smpn2-ngawi/bk001-prosedur"]
    assert [cell.strip() for cell in row.strip("│ ").split("│")][-4:] == ["13", "8", "4", "1"]


def test_quarantined_rows_are_shown_without_sql(tmp_path: Path) -> None:
    """After loading, the user reads what to fix in each refused row: in the ingest output, on screen and as CSV."""
    db = tmp_path / "t.duckdb"
    ok = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
              "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    assert "4 baris dikarantina / rows quarantined (batch 1)" in ok.stdout
    assert "kasus_bk.csv: line 12: column 'No Kasus': every event needs its case number" in ok.stdout
    assert "patuh quarantine --batch 1" in ok.stdout and "SELECT" not in ok.stdout
    listed = _cli("batches", "--db", str(db))
    assert listed.returncode == 0 and "kasus_bk.csv" in listed.stdout and "smpn2-ngawi" in listed.stdout
    shown = _cli("quarantine", "--batch", "1", "--limit", "2", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert "missing_case_id" in shown.stdout and "2 lagi / more" in shown.stdout
    csv = tmp_path / "karantina.csv"
    written = _cli("quarantine", "--batch", "1", "--out", str(csv), "--db", str(db))
    assert written.returncode == 0 and "(4 baris / rows)" in written.stdout
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    assert list(frame.columns) == ["batch_id", "source_file", "source_row", "reason", "pesan", "message", "raw"]
    assert sorted(frame["reason"]) == ["bad_timestamp", "missing_case_id", "out_of_range", "out_of_range"]
    assert not any(name in csv.read_text(encoding="utf-8-sig") for name in ("K-001", "Budi Santoso"))
    unknown = _cli("quarantine", "--batch", "9", "--db", str(db))
    assert unknown.returncode == 1 and "no batch 9 (batches are 1..1)" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_map_suggest_reads_indonesian_headers(tmp_path: Path) -> None:
    out = _cli("map", "suggest", str(MESSY / "kasus_bk.csv"), "--sop", "smpn2-ngawi/bk001-prosedur")
    assert out.returncode == 0, out.stderr
    suggestion = yaml.safe_load(out.stdout)
    assert suggestion["columns"]["case_id"] == "No Kasus"
    assert suggestion["columns"]["activity"] == "Kegiatan"
    assert suggestion["columns"]["timestamp"] == "Tanggal"
    assert set(suggestion["drop"]) == {"Nama Siswa", "Catatan"}
    assert suggestion["activities"]["Lapor Kepala Sekolah"] == "s6"
    mapping = tmp_path / "map.yaml"
    mapping.write_text(out.stdout)
    from pipeline.mapping import load_mapping

    load_mapping(mapping)  # the suggestion is a valid mapping file


def test_map_suggest_lists_role_texts_the_sop_does_not_name_and_the_mapping_loads(tmp_path: Path) -> None:
    """An export's own role words: the ones the SOP names (key, label, a part of it, an alias) need no line; a
    near spelling is suggested, the rest are left for the user, except a value of 1-4 rows that matches nothing
    (it may be a person's name typed into the column: counted, not copied into the kept file); an all-commented
    table still loads."""
    export = tmp_path / "ekspor.csv"
    export.write_text("No Registrasi,Kegiatan,Waktu Selesai,Jabatan\n"
                      "K1,Penggalian data,03/10/2025 08:00,Petugas Lain\n"
                      "K1,Wali kelas berkoordinasi,03/10/2025 09:00,Walikelas\n"
                      + "".join(f"K{k},Konseling,03/10/2025 10:00,Satpam\n" for k in range(5))
                      + "K9,Konseling dgn Siti Zqx,03/10/2025 11:00,Bu Ani Zqx\n", encoding="utf-8")
    out = _cli("map", "suggest", str(export), "--sop", "smpn2-ngawi/bk001-prosedur")
    assert out.returncode == 0, out.stderr
    suggestion = yaml.safe_load(out.stdout)
    assert suggestion["columns"]["case_id"] == "No Registrasi" and suggestion["columns"]["role"] == "Jabatan"
    assert suggestion["roles"] == {"Walikelas": "wali_kelas"}
    assert "# Satpam: ???" in out.stdout and "Petugas Lain" not in out.stdout.split("roles:")[1]
    assert "Zqx" not in out.stdout and "1 role value(s) in fewer than 5 rows" in out.stdout
    mapping = tmp_path / "map.yaml"
    mapping.write_text(out.stdout.replace("  Walikelas: wali_kelas\n", ""), encoding="utf-8")
    from pipeline.mapping import load_mapping

    assert load_mapping(mapping).roles == {}


_XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
<trace><string key="concept:name" value="K-1"/><string key="status" value="selesai"/>
<event><string key="concept:name" value="s1"/><string key="org:resource" value="Bu Ani"/>
<date key="start_timestamp" value="2024-03-04T07:30:00.000+07:00"/>
<date key="time:timestamp" value="2024-03-04T08:00:00.000+07:00"/>
<string key="documents" value="Laporan; Surat (asli, salinan)"/></event>
<event><string key="concept:name" value="s2"/><date key="time:timestamp" value="2024-03-05T09:00:00.000+08:00"/>
<string key="lifecycle:transition" value="complete"/></event>
</trace>
<trace><string key="concept:name" value="K-2"/>
<event><string key="concept:name" value="s1"/><date key="time:timestamp" value="2024-03-06T10:00:00Z"/></event>
</trace>
</log>
"""


def _events(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT case_id, activity, resource, documents, ts_start, ts_end, source_row, status "
                        "FROM events ORDER BY source_row").fetchall()


def test_xes_fast_reader_matches_lxml_and_reads_case_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import readers

    path = tmp_path / "log.xes"
    path.write_text(_XES, encoding="utf-8")
    used: list[bool] = []
    rust = readers._xes_rust

    def spy(*args: Any, **kwargs: Any) -> Any:
        src = rust(*args, **kwargs)
        used.append(src is not None)
        return src

    monkeypatch.setattr(readers, "_xes_rust", spy)
    fast = connect(tmp_path / "fast.duckdb")
    ingest_file(fast, path, institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur")
    assert used == [True]
    monkeypatch.setattr(readers, "_xes_rust", lambda *a, **k: None)
    slow = connect(tmp_path / "slow.duckdb")
    ingest_file(slow, path, institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur")
    rows = _events(fast)
    assert rows == _events(slow)
    first = rows[0]
    assert first[3] == ["Laporan", "Surat (asli, salinan)"] and first[7] == "closed"
    assert (first[5] - first[4]).total_seconds() == 1800  # start_timestamp is read as the start
    assert rows[1][5].isoformat() == "2024-03-05T01:00:00+00:00"
    statuses = dict(fast.execute("SELECT case_id, status FROM cases").fetchall())
    assert statuses[pseudonym("K-1", KEY)] == "closed"  # the trace's status wins over the step rule


def _long_xes(traces: int, bad_date_in_trace: int | None = None) -> str:
    """A log whose second half records a role the first half never does, so its parts differ in columns."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">\n'
           '<global scope="trace"><string key="concept:name" value="name"/></global>\n']
    for t in range(traces):
        role = '<string key="org:role" value="Guru BK"/>' if t >= traces // 2 else ""
        out.append(f'<trace>\n<string key="concept:name" value="K-{t}"/>\n')
        for e in range(3):
            day = "kemarin" if t == bad_date_in_trace and e == 1 else f"2024-03-{e + 4:02d}T08:{t % 60:02d}:00+07:00"
            out.append(f'<event><string key="concept:name" value="s{e + 1}"/>{role}'
                       f'<date key="time:timestamp" value="{day}"/></event>\n')
        out.append("</trace>\n")
    out.append("</log>\n")
    return "".join(out)


@pytest.mark.parametrize("cores, part_bytes, bad_date", [(2, None, None), (3, None, None), (2, 4096, None),
                                                      (2, None, 150), (2, 4096, 150)],
                         ids=["2-cores", "3-cores", "more-parts-than-cores", "bad-date-in-a-child-part",
                              "bad-date-in-one-of-many-parts"])
def test_a_large_xes_read_in_parts_loads_what_one_read_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, part_bytes: int | None,
        bad_date: int | None) -> None:
    """Large plain XES files are parsed in parts, one per core, or more parts when the file is larger than
    ``XES_PART_BYTES`` (rustxes peaks at about six times the bytes it parses); all but the first by child
    processes, ``cores`` at a time. Same events, same order, same quarantine as one parse; a date rustxes
    cannot read in a child's part still ends in quarantine with a message (the slower reader explains it)."""
    from pipeline import readers

    if part_bytes is not None:
        monkeypatch.setattr(readers, "XES_PART_BYTES", part_bytes)

    path = tmp_path / "log.xes"
    path.write_text(_long_xes(200, bad_date), encoding="utf-8")
    read_in_parts: list[int] = []
    split = readers._rustxes_parts

    def spy(*args: Any) -> Any:
        frames = split(*args)
        read_in_parts.append(0 if frames is None else len(frames))
        return frames

    monkeypatch.setattr(readers, "_rustxes_parts", spy)
    monkeypatch.setattr(readers, "xes_parts", lambda: cores)
    started: list[subprocess.Popen[bytes]] = []
    busy: list[int] = []  # parsers already running when one more starts (this process parses a part too)

    class CountedPopen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            busy.append(1 + sum(p.poll() is None for p in started))
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(readers.subprocess, "Popen", CountedPopen)
    loaded = []
    shown: list[float] = []
    for threshold in (0, 1 << 40):
        monkeypatch.setattr(readers, "XES_SPLIT_BYTES", threshold)
        conn = connect(tmp_path / f"t{threshold}.duckdb")
        result = ingest_file(conn, path, institution_id="smpn2-ngawi", key=KEY,
                             progress=lambda stage, share: shown.append(share) if stage == "XES" else None)
        if threshold == 0 and bad_date is None:  # the bar moves as parts are done, not only at the end
            assert shown == sorted(shown) and len(set(shown)) == 2 + read_in_parts[0], shown
        rows = conn.execute("SELECT case_id, activity, role, ts_end, source_row FROM events ORDER BY source_row")
        loaded.append((result.rows_loaded, result.rows_quarantined, rows.fetchall(),
                       conn.execute("SELECT source_row, reason, message FROM quarantine").fetchall()))
    assert len(read_in_parts) == 1  # the split ran once (the second load reads the file whole)
    if bad_date is not None:
        assert read_in_parts == [0]  # it gave up on the unreadable date
    elif part_bytes is None:
        assert read_in_parts == [cores]
    else:
        assert read_in_parts[0] > 10  # a part per 4 KB of a 60 KB file (cuts land on <trace> tags)
    assert busy and max(busy) <= cores  # never more parsers at once than cores
    assert loaded[0] == loaded[1]
    n_loaded, n_quarantined, rows, quarantined = loaded[0]
    assert (n_loaded, n_quarantined) == ((600, 0) if bad_date is None else (599, 1))
    assert rows[0][0] == pseudonym("K-0", KEY) and rows[-1][0] == pseudonym("K-199", KEY)  # the file's order
    assert rows[0][2] is None and rows[-1][2] == "guru bk"  # a column only the later part has
    if bad_date is not None:
        assert quarantined[0][0] == 3 * bad_date + 2 and "kemarin" in quarantined[0][2]


def test_a_large_xes_gz_is_inflated_once_and_read_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large .xes.gz is inflated to a temp file while it is checked, then read in parts like a plain XES
    (rustxes would otherwise hold about six times the inflated log in memory): same events as the plain
    file, and no temp file left."""
    import gzip
    import tempfile

    from pipeline import readers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    text = _long_xes(200)
    plain, packed = tmp_path / "log.xes", tmp_path / "log.xes.gz"
    plain.write_text(text, encoding="utf-8")
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    split = readers._rustxes_parts
    read_in_parts: list[int] = []

    def spy(*args: Any) -> Any:
        frames = split(*args)
        read_in_parts.append(0 if frames is None else len(frames))
        return frames

    monkeypatch.setattr(readers, "_rustxes_parts", spy)
    monkeypatch.setattr(readers, "xes_parts", lambda: 2)
    monkeypatch.setattr(readers, "XES_SPLIT_BYTES", 0)
    monkeypatch.setattr(readers, "XES_GZ_INFLATE_BYTES", 0)
    loaded = []
    for path in (packed, plain):
        conn = connect(tmp_path / f"{path.name}.duckdb")
        result = ingest_file(conn, path, institution_id="smpn2-ngawi", key=KEY)
        loaded.append((result.rows_loaded, result.rows_quarantined, conn.execute(
            "SELECT case_id, activity, role, ts_end, source_row FROM events ORDER BY source_row").fetchall()))
    assert read_in_parts == [2, 2] and loaded[0] == loaded[1] and loaded[0][:2] == (600, 0)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_part_files_of_a_killed_ingest_are_removed_by_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed ingest cannot delete its XES part files (as large as the XES); the next split removes the
    folders of processes that are gone, and never those of a live one."""
    import tempfile

    from pipeline import readers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(readers, "XES_SPLIT_BYTES", 0)
    monkeypatch.setattr(readers, "xes_parts", lambda: 2)
    dead, alive = tmp_path / "patuh-xes-999999999-x1", tmp_path / f"patuh-xes-{os.getppid()}-x2"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "part1.xes").write_text("<log>", encoding="utf-8")
    path = tmp_path / "log.xes"
    path.write_text(_long_xes(20), encoding="utf-8")
    result = ingest_file(connect(tmp_path / "t.duckdb"), path, institution_id="smpn2-ngawi", key=KEY)
    assert result.rows_loaded == 60
    assert sorted(p.name for p in tmp_path.glob("patuh-xes-*")) == [alive.name]


def test_a_broken_xes_never_shows_a_rust_panic(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.xes"
    broken.write_text(_XES.replace('<event><string key="concept:name" value="s2"/>', '<event><string key="c'),
                      encoding="utf-8")
    conn = connect(tmp_path / "t.duckdb")
    with pytest.raises(UserError, match="not a complete XES file"):
        ingest_file(conn, broken, institution_id="smpn2-ngawi")
    out = capfd.readouterr()
    assert "panicked" not in out.err + out.out and "backtrace" not in out.err + out.out
    assert _counts(conn) == (0, 0, 0, 0)


def test_dates_fast_and_slow_forms_agree(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("case_id,activity,timestamp\nA,s1,2024-03-04 08:00:00\nA,s2,2024-03-04T09:00:00+08:00\n"
                    "A,s3,2024-03-04 10:00 WITA\nA,s4,04/03/2024 11:00\nA,s5, 2024-03-04 12:00 \nA,s6,2024-03-04\n")
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, path, institution_id="smpn2-ngawi")  # Asia/Jakarta (UTC+7)
    got = [r[0] for r in conn.execute(
        "SELECT strftime(ts_end, '%Y-%m-%d %H:%M') FROM events ORDER BY source_row").fetchall()]
    assert got == ["2024-03-04 01:00", "2024-03-04 01:00", "2024-03-04 02:00", "2024-03-04 04:00",
                   "2024-03-04 05:00", "2024-03-03 17:00"]


def test_unix_time_from_application_exports_is_read_as_utc(tmp_path: Path) -> None:
    """10 digits are seconds and 13 milliseconds since 1970 (UTC, whatever the institution's zone); as text in
    a CSV or as integers in Parquet. Before, every such row was quarantined as bad_timestamp."""
    csv = tmp_path / "app.csv"
    csv.write_text("case_id,activity,timestamp\nA,s1,1709539200\nA,s2,1709542800000\n", encoding="utf-8")
    parquet = tmp_path / "app.parquet"
    pd.DataFrame({"case_id": ["B", "B"], "activity": ["s1", "s2"],
                  "timestamp": [1709539200, 1709542800]}).to_parquet(parquet)
    conn = connect(tmp_path / "t.duckdb")
    for path in (csv, parquet):
        assert ingest_file(conn, path, institution_id="smpn2-ngawi").rows_quarantined == 0
    got = conn.execute("SELECT batch_id, strftime(ts_end, '%Y-%m-%d %H:%M') FROM events ORDER BY ALL").fetchall()
    assert got == [(1, "2024-03-04 08:00"), (1, "2024-03-04 09:00"), (2, "2024-03-04 08:00"),
                   (2, "2024-03-04 09:00")]


def test_a_log_without_sop_joins_its_cases(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, REFERENCE / "running-example.csv", institution_id="smpn2-ngawi")
    n_events, joined, sops = conn.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events JOIN cases "
        "USING (institution_id, sop_id, case_id)), (SELECT list(DISTINCT sop_id) FROM events)").fetchall()[0]
    assert n_events == joined == 42 and sops == [""]


def _mapping_refused(path: Path, text: str, message: str) -> None:
    """A mapping file with ``text`` is refused with a message matching ``message``."""
    from pipeline.mapping import load_mapping

    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_mapping(path)


def test_a_bad_mapping_file_names_the_line_and_every_wrong_field(tmp_path: Path) -> None:
    from pipeline.mapping import load_mapping

    _mapping_refused(tmp_path / "kutip.yaml", 'columns:\n  case_id: "No Kasus\n  activity: Kegiatan\n',
                     r"kutip.yaml, line 4: not valid YAML \(found unexpected end of stream, "
                     r"while scanning a quoted scalar that starts on line 2\)")
    _mapping_refused(tmp_path / "indent.yaml", "columns:\n  case_id: No Kasus\n activity: Kegiatan\n",
                     r"indent.yaml, line 3: not valid YAML")
    typo = tmp_path / "typo.yaml"
    typo.write_text("columns:\n  case_id: No Kasus\n  activty: Kegiatan\n  timestamp: Tanggal\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_mapping(typo)
    message = str(caught.value)
    assert "columns.activity: Field required" in message
    assert "columns.activty: Extra inputs are not permitted (remove it or correct its spelling)" in message
    _mapping_refused(tmp_path / "format.yaml", "columns:\n  case_id: No Kasus\n  activity: Kegiatan\n"
                     "  timestamp: Tanggal\ndate_formats: ['%Q']\n",
                     r"format.yaml: date format '%Q' is not a date format")
    # the export itself given as --mapping by mistake (a Latin-1 CSV): said so, not a UnicodeDecodeError
    with pytest.raises(UserError, match=r"latin1.csv: not a UTF-8 text file; is it the mapping file\?"):
        load_mapping(MESSY / "latin1.csv")


def test_a_parse_that_duckdb_refuses_leaves_the_connection_usable(tmp_path: Path) -> None:
    """A mapping built in code skips load_mapping's checks: DuckDB then refuses the format inside the load's
    transaction. The user gets the UserError (before: a TransactionException from resetting a setting in the
    aborted transaction) and the next load on the same connection works."""
    from pipeline.mapping import Mapping

    conn = connect(tmp_path / "t.duckdb")
    unchecked = Mapping.model_validate({"columns": {"case_id": "No Kasus", "activity": "Kegiatan",
                                                    "timestamp": "Tanggal"}, "date_formats": ["%Q"]})
    with pytest.raises(UserError, match=r"kasus_bk\.csv: cannot read the file"):
        ingest_file(conn, MESSY / "kasus_bk.csv", institution_id="smpn2-ngawi", mapping=unchecked)
    assert ingest_file(conn, MESSY / "latin1.csv", institution_id="smpn2-ngawi").rows_loaded == 3
    assert conn.execute("SELECT count(*) FROM batches").fetchall() == [(1,)]


@pytest.mark.parametrize("name", ["log.xes.gz", "log.parquet", "log.xlsx"])
def test_a_text_file_named_for_a_binary_format_is_refused_by_that_name(tmp_path: Path, name: str) -> None:
    """A CSV saved as .xes.gz (or .parquet, .xlsx) is a mix-up: said so, instead of "cannot read it as CSV"."""
    export = tmp_path / name
    export.write_text("case_id,activity,timestamp\nA,x,2025-01-02 08:00\n", encoding="utf-8")
    kind = name.rsplit(".", 1)[1]
    with pytest.raises(UserError, match=rf"{name}: not a {kind} file, whatever its name says"):
        ingest_file(connect(tmp_path / "t.duckdb"), export, institution_id="smpn2-ngawi")


def test_a_repeated_header_is_named_in_a_note(tmp_path: Path) -> None:
    """Two 'case_id' columns (a spreadsheet pasted together): the first is used, and the note says so."""
    export = tmp_path / "dua.csv"
    export.write_text("case_id,activity,case_id,timestamp\nA,x,B,2025-01-02 08:00\n", encoding="utf-8")
    result = ingest_file(connect(tmp_path / "t.duckdb"), export, institution_id="smpn2-ngawi")
    assert result.rows_loaded == 1
    assert "the header has 'case_id' twice (the second read as 'case_id_<n>'): the first is used" \
        in " ".join(result.notes)


def test_an_export_with_only_its_header_says_nothing_was_loaded(tmp_path: Path) -> None:
    export = tmp_path / "kosong.csv"
    export.write_text("case_id,activity,timestamp\n", encoding="utf-8")
    result = ingest_file(connect(tmp_path / "t.duckdb"), export, institution_id="smpn2-ngawi")
    assert (result.rows_in, result.rows_loaded) == (0, 0)
    assert "the file has its header but no rows: nothing loaded" in " ".join(result.notes)


def test_a_file_loaded_under_the_wrong_sop_says_how_to_move_it(tmp_path: Path) -> None:
    """The same export again with another --sop is not loaded twice; the note names where it is and how to
    move it, and --replace moves its events and cases to the SOP asked for."""
    db = tmp_path / "t.duckdb"
    wrong, right = "smpn2-ngawi/bk001-alur", "smpn2-ngawi/bk001-prosedur"
    mapping = str(MESSY / "kasus_bk.mapping.yaml")
    for sop in (wrong, right):
        out = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop", sop,
                   "--mapping", mapping, "--db", str(db))
        assert out.returncode == 0, out.stderr
    note = " ".join(out.stdout.split())
    assert re.search(rf"already loaded as batch 1 \(same sha256\) for smpn2-ngawi, SOP {wrong}, on "
                     rf"\d{{4}}-\d\d-\d\d \d\d:\d\d UTC, not for smpn2-ngawi, SOP {right}", note)
    assert "--replace" in note
    moved = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop", right,
                 "--mapping", mapping, "--db", str(db), "--replace")
    assert moved.returncode == 0, moved.stderr
    conn = duckdb.connect(str(db), read_only=True)
    try:
        assert conn.execute("SELECT DISTINCT sop_id FROM events").fetchall() == [(right,)]
        assert conn.execute("SELECT sop_id, count(*) FROM cases GROUP BY ALL").fetchall() == [(right, 3)]
    finally:
        conn.close()


def test_a_wrong_load_is_taken_out_or_loaded_again(tmp_path: Path) -> None:
    """A file loaded by mistake comes out again (events, quarantine, its cases recomputed, the next run full);
    a file loaded with a wrong mapping loads again with --replace instead of 'already loaded'."""
    import datetime as dt

    from pipeline.calendars import load_calendars, load_institutions
    from pipeline.config import get_settings
    from pipeline.ingest import remove_batch
    from pipeline.run import run_compliance
    from pipeline.sop import load_catalogue

    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_dir)
    sop = "smpn2-ngawi/bk001-prosedur"
    first, second = tmp_path / "maret.csv", tmp_path / "april.csv"
    first.write_text("case_id,activity,timestamp\nK-1,s1,2026-03-02 08:00\nK-2,s1,2026-03-02 09:00\n"
                     "K-2,s2,2026-03-03 09:00\nK-3,s1,bukan tanggal\n", encoding="utf-8")
    second.write_text("case_id,activity,timestamp\nK-1,s2,2026-03-04 08:00\n", encoding="utf-8")
    conn = connect(tmp_path / "patuh.duckdb")

    def load(path: Path, **kw: Any) -> Any:
        return ingest_file(conn, path, institution_id="smpn2-ngawi", sop_id=sop, catalogue=catalogue, key=KEY, **kw)

    def run() -> Any:
        return run_compliance(conn, catalogue, load_institutions(settings.institutions_file),
                              load_calendars(settings.institutions_file),
                              as_of=dt.datetime(2026, 3, 20, tzinfo=dt.UTC))

    a, b = load(first), load(second)
    assert (a.rows_loaded, a.rows_quarantined, b.rows_loaded) == (3, 1, 1)
    run()
    k1, k2 = pseudonym("K-1", KEY), pseudonym("K-2", KEY)
    removed = remove_batch(conn, a.batch_id, catalogue=catalogue)
    assert (removed.events, removed.quarantined, removed.cases_rebuilt, removed.cases_removed) == (3, 1, 1, 1)
    assert conn.execute("SELECT case_id, n_events FROM cases").fetchall() == [(k1, 1)]
    assert conn.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0
    assert conn.execute("SELECT source_file FROM batch_removals").fetchall() == [("maret.csv",)]
    again = run()
    assert again.mode == "full"  # an incremental run would keep K-2's results
    assert [r[0] for r in conn.execute("SELECT case_id FROM latest_case_results").fetchall()] == [k1]
    assert run().mode == "incremental"
    reloaded = load(first)
    assert not reloaded.skipped and reloaded.rows_loaded == 3
    with pytest.raises(UserError, match="no batch 99"):
        remove_batch(conn, 99)
    replaced = load(first, replace=True)
    assert not replaced.skipped and replaced.batch_id != reloaded.batch_id and replaced.rows_duplicate == 0
    assert f"batch {reloaded.batch_id} (the same file) was removed" in " ".join(replaced.notes)
    assert conn.execute("SELECT count(*) FROM events").fetchall()[0][0] == 4
    assert sorted(conn.execute("SELECT case_id, n_events FROM cases").fetchall()) == sorted([(k1, 2), (k2, 2)])
    conn.close()


def test_cli_unload(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    ok = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
              "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db))
    assert ok.returncode == 0, ok.stderr
    again = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
                 "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db),
                 "--replace")
    assert again.returncode == 0 and "batch 1 (the same file) was removed" in again.stdout
    out = _cli("unload", "--batch", "2", "--yes", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "batch 2 (kasus_bk.csv) dihapus / removed" in out.stdout and "checks every case again" in out.stdout
    loaded = _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
                  "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db))
    assert loaded.returncode == 0 and "already loaded" not in loaded.stdout  # batch 3
    unknown = _cli("unload", "--batch", "2", "--yes", "--db", str(db))
    assert unknown.returncode == 1 and "no batch 2 (batches are 3..3)" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    asked = subprocess.run([sys.executable, "-m", "pipeline.cli", "unload", "--batch", "3", "--db", str(db)],
                           input="n\n", capture_output=True, text=True, env={**os.environ, "PATUH_SECRET": "x" * 32},
                           cwd=Path(__file__).parent.parent, check=False)
    assert asked.returncode == 1 and "batch 3: kasus_bk.csv" in asked.stdout
    assert "kasus_bk.csv" in _cli("batches", "--db", str(db)).stdout  # answered no: still loaded


def test_spreadsheet_text_cells_read_in_one_pass_give_what_each_cell_gives() -> None:
    """XLSX text columns are trimmed and emptied to NULL by pyarrow in one pass; the result must be the
    text each cell gives alone (str.strip's whitespace, Unicode included), or rows would change with the
    column they sit in."""
    import datetime as dt

    from pipeline.readers import PY_WHITESPACE, _cell, cell_column

    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == PY_WHITESPACE
    text = [None, "", "  ", " Bu Ani ", "\xa0K-1\u3000", "\x1cs1\x1f", "Surat;\tLaporan\n", "é", "a b"]
    mixed = [*text, 3.0, 2.5, dt.datetime(2024, 3, 4, 8, 0), True]
    for column in (text, mixed):
        assert cell_column(column).to_pylist() == [_cell(v) for v in column]


# the common "Tanggal + Jam mulai / Jam selesai" export layout (QA finding 9)
_DATE_TIME_CSV = ("No Kasus,Nama Siswa,Kegiatan,Tanggal,Mulai,Selesai,Pelaksana,Catatan\n"
                  "K-1,Budi Santoso,Konseling,05/10/2026,08:00,08:10,Guru BK,terlambat\n"
                  "K-1,Budi Santoso,Konseling,6 Oktober 2026,13.30,14:05 WITA,Guru BK,\n"
                  "K-2,Ani Wijaya,Konseling,2026-10-07,08:00,jam delapan,Guru BK,\n"
                  "K-2,Ani Wijaya,Konseling,35/10/2026,08:00,08:10,Guru BK,\n")


def test_map_suggest_joins_a_date_column_with_time_columns_and_the_mapping_loads(tmp_path: Path) -> None:
    """Tanggal + Mulai/Selesai: the suggestion maps the date column as 'date' and the two time columns, and
    loading with it gives each event its day and times in the institution's time zone (bontang-bk: WITA);
    an unreadable time or day is quarantined naming its column, what was expected and the fix."""
    export = tmp_path / "id.csv"
    export.write_text(_DATE_TIME_CSV, encoding="utf-8")
    mapping = tmp_path / "id.yaml"
    suggested = _suggested(export, "bontang-bk/konseling-individu", mapping)
    columns = yaml.safe_load(suggested)["columns"]
    assert (columns["date"], columns["start"], columns["end"]) == ("Tanggal", "Mulai", "Selesai")
    assert "timestamp" not in columns and "not mapped, so not stored" not in suggested
    db = tmp_path / "t.duckdb"
    _ingest_mapped(export, "bontang-bk", "bontang-bk/konseling-individu", mapping, db)
    conn = duckdb.connect(str(db), read_only=True)
    try:
        times = conn.execute("SELECT strftime(ts_start AT TIME ZONE 'Asia/Makassar', '%Y-%m-%d %H:%M'), "
                             "strftime(ts_end AT TIME ZONE 'Asia/Makassar', '%Y-%m-%d %H:%M') FROM events "
                             "ORDER BY source_row").fetchall()
        messages = [m for m, in conn.execute("SELECT message FROM quarantine ORDER BY source_row").fetchall()]
    finally:
        conn.close()
    assert times == [("2026-10-05 08:00", "2026-10-05 08:10"), ("2026-10-06 13:30", "2026-10-06 14:05")]
    assert messages == [
        "id.csv: line 4: column 'Selesai': 'jam delapan' is not a time of day; the mapping takes the day from column "
        "'Tanggal', so this column holds the time only (e.g. 08:30, 08.30, 14:05:00, 08:30 WITA); fix the cell, or, "
        "if the column holds the date and the time, remove 'date' from the mapping",
        "id.csv: line 5: column 'Tanggal': '35/10/2026' is not a date; expected e.g. 2020-01-16, 16/01/2020, "
        "16-01-2020, 16 Januari 2020 (or set date_formats in the mapping file); fix the cell"]


def test_spreadsheet_date_and_time_cells_join_into_one_time(tmp_path: Path) -> None:
    """In an XLSX the day is a date cell (read with a midnight time) and the times are time cells, or a time
    typed as text; a time of day given with no date column mapped is quarantined asking for the date column."""
    import datetime as dt

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kasus", "kegiatan", "tanggal", "jam"])
    sheet.append(["K-1", "s1", dt.datetime(2026, 10, 5), dt.time(8, 0)])
    sheet.append(["K-1", "s2", dt.date(2026, 10, 6), "pukul 09.15"])
    export = tmp_path / "rekap.xlsx"
    book.save(export)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns: {case_id: kasus, activity: kegiatan, date: tanggal, timestamp: jam}\n")
    conn = connect(tmp_path / "t.duckdb")
    result = ingest_file(conn, export, institution_id="smpn2-ngawi", mapping=mapping, key=KEY)
    assert (result.rows_loaded, result.rows_quarantined) == (2, 0)
    assert conn.execute("SELECT strftime(ts_end AT TIME ZONE 'Asia/Jakarta', '%Y-%m-%d %H:%M') FROM events "
                        "ORDER BY source_row").fetchall() == [("2026-10-05 08:00",), ("2026-10-06 09:15",)]
    no_date = tmp_path / "no-date.yaml"
    no_date.write_text("columns: {case_id: kasus, activity: kegiatan, timestamp: jam}\n")
    again = ingest_file(conn, export, institution_id="smpn2-ngawi", mapping=no_date, key=KEY, replace=True)
    assert (again.rows_loaded, again.quarantined_by_reason) == (0, {"bad_timestamp": 2})
    message = conn.execute("SELECT message FROM quarantine ORDER BY source_row LIMIT 1").fetchall()[0][0]
    assert message == ("rekap.xlsx: sheet 'Sheet' row 2: column 'jam': '08:00:00' is a time of day without a date; "
                       "map the column with the day too: add 'date: tanggal' under columns in the mapping file "
                       "(patuh map suggest FILE writes one), then load the file again with --replace")


def test_map_suggest_knows_kasus_and_jam_and_says_when_no_time_column_is_found(tmp_path: Path) -> None:
    """'kasus' is the case number and 'jam' the time; a time column without a date column, or no time column
    at all, is said in the YAML and on the terminal (not just left out)."""
    jam = tmp_path / "jam.csv"
    jam.write_text("kasus,kegiatan,jam\nK-1,Konseling,08:00\n", encoding="utf-8")
    out = _cli("map", "suggest", str(jam))
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["columns"] == {"case_id": "kasus", "activity": "kegiatan", "timestamp": "jam"}
    assert "column 'jam' holds the time of day only and no date column was found" in out.stdout
    assert "column 'jam' holds the time of day only" in " ".join(out.stderr.split())
    both = tmp_path / "tanggal-jam.csv"
    both.write_text("Nomor Kasus,Kegiatan,Tanggal,Waktu\nK-1,Konseling,05/10/2026,08.00\n", encoding="utf-8")
    columns = yaml.safe_load(_cli("map", "suggest", str(both)).stdout)["columns"]
    assert columns == {"case_id": "Nomor Kasus", "activity": "Kegiatan", "date": "Tanggal", "timestamp": "Waktu"}
    none = tmp_path / "none.csv"
    none.write_text("No Kasus,Kegiatan\nK-1,Konseling\n", encoding="utf-8")
    out = _cli("map", "suggest", str(none))
    assert out.returncode == 0, out.stderr
    assert "  timestamp: ???   # no date/time column found" in out.stdout
    assert "no date/time column found" in " ".join(out.stderr.split())
    full = tmp_path / "full.csv"  # start and end with their own dates: the date column stays unmapped
    full.write_text("No Kasus,Kegiatan,Tanggal,Mulai,Selesai\nK-1,x,05/10/2026,05/10/2026 08:00,05/10/2026 09:00\n")
    columns = yaml.safe_load(_cli("map", "suggest", str(full)).stdout)["columns"]
    assert "date" not in columns and (columns["start"], columns["end"]) == ("Mulai", "Selesai")


def test_a_date_column_needs_a_time_column_in_the_mapping(tmp_path: Path) -> None:
    _mapping_refused(tmp_path / "alone.yaml", "columns: {case_id: No Kasus, activity: Kegiatan, date: Tanggal}\n",
                     r"alone.yaml: columns has 'date: Tanggal' but no time column; add the column "
                     r"with the time of day as 'timestamp'.*write 'timestamp: Tanggal' instead")
    _mapping_refused(tmp_path / "twice.yaml",
                     "columns: {case_id: No Kasus, activity: Kegiatan, date: Tanggal, timestamp: Tanggal}\n",
                     r"columns maps 'Tanggal' as both 'date' and 'timestamp'")


def test_a_file_of_another_type_is_refused_by_its_extension(tmp_path: Path) -> None:
    """A .docx given to ingest (or map suggest) is an unsupported type, said before anything is loaded; it was read
    as a CSV before ("no case_id or activity column found (columns: 'hi')")."""
    good, doc = tmp_path / "ok.csv", tmp_path / "a.docx"
    good.write_text("case_id,activity,timestamp\nK-1,s1,2024-03-04 08:00\n", encoding="utf-8")
    doc.write_text("hi\n", encoding="utf-8")
    db = tmp_path / "t.duckdb"
    out = _cli("ingest", str(good), str(doc), "--institution", "smpn2-ngawi", "--db", str(db))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert ("a.docx: unsupported file type .docx; expected .csv, .tsv, .txt, .xlsx, .xes, .xes.gz or .parquet"
            in " ".join(out.stderr.split()))
    assert not db.exists()  # refused before the database was opened: ok.csv is not loaded either
    suggested = _cli("map", "suggest", str(doc))
    assert suggested.returncode == 1 and "unsupported file type .docx" in suggested.stderr


def test_a_file_loaded_before_says_where_and_when(tmp_path: Path) -> None:
    """Loading the same file again names the batch, institution, SOP and the day it was loaded."""
    db = tmp_path / "t.duckdb"
    args = ("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
            "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"), "--db", str(db))
    assert _cli(*args).returncode == 0
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    conn = duckdb.connect(str(db), read_only=True)
    (loaded_at,), = conn.execute("SELECT loaded_at FROM batches").fetchall()
    conn.close()
    assert (f"already loaded as batch 1 (same sha256) for smpn2-ngawi, SOP smpn2-ngawi/bk001-prosedur, on "
            f"{loaded_at:%Y-%m-%d %H:%M} UTC: nothing to do" in " ".join(again.stdout.split()))


def test_an_xlsx_loaded_again_with_replace(tmp_path: Path) -> None:
    """--replace on an XLSX read it into an open result of the 'already loaded' look-up: DuckDB refused the
    sheet (a traceback); it loads again like a CSV."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["case_id", "activity", "timestamp"])
    sheet.append(["K-1", "s1", "2024-03-04 08:00"])
    export = tmp_path / "rekap.xlsx"
    book.save(export)
    db = tmp_path / "t.duckdb"
    for extra in ((), ("--replace",)):
        out = _cli("ingest", str(export), "--institution", "smpn2-ngawi", "--db", str(db), *extra)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "batch 1 (the same file) was removed" in out.stdout


def test_an_xlsx_with_a_title_above_its_header_loads(tmp_path: Path) -> None:
    """School spreadsheets put a title block above the header ("REKAP ...", merged across the columns, the
    school year, a blank row): the header is found below it, with or without a mapping, and a bad row is
    named by its row in the sheet."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Kasus"
    sheet.append(["REKAP PENANGANAN SISWA SMP NEGERI 2 NGAWI"])
    sheet.merge_cells("A1:E1")
    sheet.append(["Tahun Pelajaran 2025/2026"])
    sheet.append([])
    sheet.append(["No Kasus", "Kegiatan", "Waktu Selesai", "Pelaksana", "Nama Siswa"])
    sheet.append(["K-1", "s1", "03/10/2025 08:00", "Guru Piket", "Budi"])
    sheet.append(["K-1", "s2", "bukan tanggal", "Wali Kelas", "Budi"])
    export = tmp_path / "rekap.xlsx"
    book.save(export)
    mapping = tmp_path / "map.yaml"
    suggested = _suggested(export, "smpn2-ngawi/bk001-prosedur", mapping)
    assert yaml.safe_load(suggested)["columns"]["case_id"] == "No Kasus"
    assert "the header is row 4" in suggested
    db = tmp_path / "t.duckdb"
    _ingest_mapped(export, "smpn2-ngawi", "smpn2-ngawi/bk001-prosedur", mapping, db)
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT rows_loaded, rows_quarantined FROM batches").fetchall() == [(1, 1)]
        (message,) = conn.execute("SELECT message FROM quarantine").fetchone() or ("",)
    assert "sheet 'Kasus' row 6" in message and "Waktu Selesai" in message


def test_a_csv_with_mixed_line_endings_loads(tmp_path: Path) -> None:
    """A Windows export edited by hand elsewhere ends some lines with CRLF, others with LF (and a blank LF
    line): DuckDB's sniffer refused it ("export it again with a header row", though it had one)."""
    export = tmp_path / "ekspor.csv"
    export.write_bytes(b"case_id,activity,timestamp\r\nK1,s1,2025-10-03 08:00\r\n\nK1,s2,2025-10-03 09:00\n"
                       b"K2,s1,bukan tanggal\r\nK2,s2,2025-10-03 11:00\r\n")
    db = tmp_path / "t.duckdb"
    out = _cli("ingest", str(export), "--institution", "smpn2-ngawi", "--sop", "smpn2-ngawi/bk001-prosedur",
               "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "a mix of CRLF and LF" in " ".join(out.stdout.split())
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT rows_loaded, rows_quarantined FROM batches").fetchall() == [(3, 1)]
        (message,) = conn.execute("SELECT message FROM quarantine").fetchone() or ("",)
        assert conn.execute("SELECT count(*) FROM events WHERE activity LIKE '%\r%' OR case_id LIKE '%\r%'"
                            ).fetchall() == [(0,)]
    assert "line 5" in message  # the blank line counts, as an editor shows it


def test_run_warns_when_an_institutions_zone_changed_after_loading(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: a school loaded with the wrong zone, then corrected in institutions.yaml: every time stayed an hour
    off and nothing said that the files must be loaded again."""
    catalogue = tmp_path / "sop_models"
    shutil.copytree(get_settings().catalogue_dir, catalogue)
    monkeypatch.setenv("PATUH_SOP_DIR", str(catalogue))
    db = tmp_path / "t.duckdb"
    assert _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
                "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"),
                "--db", str(db)).returncode == 0
    first = _cli("run", "--institution", "smpn2-ngawi", "--db", str(db))
    assert first.returncode == 0 and "Asia/Jakarta" not in first.stderr, first.stderr
    institutions = catalogue / "institutions.yaml"
    text = institutions.read_text(encoding="utf-8")
    institutions.write_text(text.replace("region: Ngawi, Jawa Timur\n    timezone: Asia/Jakarta",
                                         "region: Ngawi, Jawa Timur\n    timezone: Asia/Makassar"), encoding="utf-8")
    after = _cli("run", "--institution", "smpn2-ngawi", "--db", str(db))
    said = " ".join(after.stderr.split())
    assert after.returncode == 0, after.stderr
    assert ("smpn2-ngawi: 1 loaded file(s) (batches 1) were read with times in Asia/Jakarta, but institutions.yaml "
            "now gives Asia/Makassar") in said and "patuh ingest FILE --replace" in said


def test_a_date_out_of_range_is_quoted_in_its_own_column(tmp_path: Path) -> None:
    """QA: an out-of-range date was not quoted (unlike an unreadable one) and always blamed on the end column."""
    export = tmp_path / "ekspor.csv"
    export.write_text("case_id,activity,ts_start,ts_end\nK1,s1,2025-10-03 08:00,2205-10-03 09:00\n"
                      "K2,s1,1999-10-03 08:00,2025-10-03 09:00\n", encoding="utf-8")
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, export, institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur", key=KEY)
    messages = [m for (m,) in conn.execute("SELECT message FROM quarantine ORDER BY source_row").fetchall()]
    conn.close()
    assert messages[0].startswith("ekspor.csv: line 2: column 'ts_end': 2205-10-03 09:00: the date is before 2000")
    assert messages[1].startswith("ekspor.csv: line 3: column 'ts_start': 1999-10-03 08:00: the date is before 2000")


def test_steps_over_several_days_with_an_end_date_column(tmp_path: Path) -> None:
    """Tanggal Mulai + Jam Mulai + Tanggal Selesai + Jam Selesai: a step that ends on a later day (QA: the day
    and time-of-day layout could not give one, and such rows were quarantined as ending before they start)."""
    export = tmp_path / "ekspor.csv"
    export.write_text("No Kasus,Kegiatan,Tanggal Mulai,Jam Mulai,Tanggal Selesai,Jam Selesai,Nama Siswa\n"
                      "K1,s1,03/10/2025,08:00,,08:30,Budi\n"
                      "K1,s2,03/10/2025,13:00,06/10/2025,09:00,Budi\n"
                      "K2,s1,03/10/2025,08:00,bukan,09:00,Sita\n"
                      "K3,s1,03/10/2025,15:00,03/10/2025,08:00,Sita\n", encoding="utf-8")
    mapping = tmp_path / "map.yaml"
    columns = yaml.safe_load(_suggested(export, "smpn2-ngawi/bk001-prosedur", mapping))["columns"]
    assert (columns["date"], columns["end_date"], columns["start"], columns["end"]) == (
        "Tanggal Mulai", "Tanggal Selesai", "Jam Mulai", "Jam Selesai")
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, export, institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur", mapping=mapping,
                key=KEY)
    wib = "Asia/Jakarta"
    spans = conn.execute(f"SELECT activity, strftime(timezone('{wib}', ts_start), '%d %H:%M'), "
                         f"strftime(timezone('{wib}', ts_end), '%d %H:%M') FROM events ORDER BY source_row").fetchall()
    messages = [m for (m,) in conn.execute("SELECT message FROM quarantine ORDER BY source_row").fetchall()]
    conn.close()
    assert spans == [("s1", "03 08:00", "03 08:30"), ("s2", "03 13:00", "06 09:00")]  # blank end day: the same day
    assert "column 'Tanggal Selesai': 'bukan' is not a date" in messages[0]
    assert "column 'Jam Selesai': the end is before the start" in messages[1]
    lone = tmp_path / "lone.yaml"
    lone.write_text("columns: {case_id: No Kasus, activity: Kegiatan, timestamp: Jam Selesai, "
                    "end_date: Tanggal Selesai}\n", encoding="utf-8")
    from pipeline.mapping import load_mapping

    with pytest.raises(UserError, match="end_date is the day an event ended, beside date"):
        load_mapping(lone)


def test_run_warns_when_as_of_is_before_the_events(tmp_path: Path) -> None:
    """An --as-of before the events of the scope is said, in Indonesian then English (stalls would be judged
    before anything happened); one after them is not. Without an offset it is the institution's local time (a
    date alone: the end of that day); across zones it needs one; one in the future is refused."""
    db = tmp_path / "t.duckdb"
    assert _cli("ingest", str(MESSY / "kasus_bk.csv"), "--institution", "smpn2-ngawi", "--sop",
                "smpn2-ngawi/bk001-prosedur", "--mapping", str(MESSY / "kasus_bk.mapping.yaml"),
                "--db", str(db)).returncode == 0
    early = _cli("run", "--as-of", "2019-01-01", "--institution", "smpn2-ngawi", "--db", str(db))
    assert early.returncode == 0, early.stderr
    said = " ".join(early.stderr.split())
    # the end of 1 January in Ngawi (WIB): 17:00 UTC
    assert ("Warning: --as-of 2019-01-01 17:00 UTC is before every event of smpn2-ngawi (8 events, "
            "2020-01-16 01:30 to 2021-12-10 04:00 UTC)") in said
    assert said.index("Peringatan: --as-of 2019-01-01 17:00 UTC lebih awal daripada semua peristiwa") < said.index(
        "Warning: --as-of")
    middle = _cli("run", "--as-of", "2021-01-01T07:00+07:00", "--db", str(db))
    assert "4 of 8 events of the database are after --as-of 2021-01-01 00:00 UTC" in " ".join(middle.stderr.split())
    several = _cli("run", "--as-of", "2021-01-01T07:00", "--db", str(db))
    assert several.returncode == 1 and "has no time zone" in " ".join(several.stderr.split())
    future = _cli("run", "--as-of", "2099-01-01", "--institution", "smpn2-ngawi", "--db", str(db))
    assert future.returncode == 1 and "is in the future" in " ".join(future.stderr.split())
    late = _cli("run", "--as-of", "2026-01-01", "--institution", "smpn2-ngawi", "--db", str(db))
    assert late.returncode == 0 and "Warning" not in late.stderr, late.stderr


def test_a_case_whose_last_sop_step_ends_it_is_closed_whatever_follows_outside_the_sop(tmp_path: Path) -> None:
    """QA: without a status column, a case that reached its SOP's last step and then had an activity outside
    the SOP (a follow-up) stayed open for ever, and was never judged stalled either (it waited for nothing but
    closure). A case whose last step is not an end stays open."""
    export = tmp_path / "ekspor.csv"
    export.write_text(
        "case_id,activity,timestamp\n"
        "A,s1,2026-03-02 08:00\nA,s2,2026-03-02 09:00\nA,s3,2026-03-02 10:00\nA,s6,2026-03-02 11:00\n"
        "A,Rapat koordinasi,2026-03-02 12:00\n"
        "B,s1,2026-03-02 08:00\nB,s2,2026-03-02 09:00\nB,Rapat koordinasi,2026-03-02 12:00\n", encoding="utf-8")
    conn = connect(tmp_path / "t.duckdb")
    ingest_file(conn, export, institution_id="smpn2-ngawi", sop_id="smpn2-ngawi/bk001-prosedur")
    rows = conn.execute("SELECT case_id, status, last_step_id, closed_at IS NOT NULL FROM cases ORDER BY opened_at, "
                        "last_step_id DESC").fetchall()
    assert sorted(r[1:] for r in rows) == [("closed", "s6", True), ("open", "s2", False)]
    conn.close()
