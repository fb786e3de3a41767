"""Rule models on daily attendance (SMK N 1 Petasia): load, quarantine, breaches per rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from pipeline.attendance import load_attendance
from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings
from pipeline.db import connect
from pipeline.run import run_compliance
from pipeline.sop import load_catalogue

KEY = b"attendance-test"


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
    res = load_attendance(conn, _write(tmp_path / "absen.csv", rows), institution_id="smkn1-petasia", key=KEY)
    assert (res.rows_in, res.rows_loaded, res.rows_quarantined) == (183, 180, 3)
    reasons = sorted(r for (r,) in conn.execute("SELECT reason FROM quarantine").fetchall())
    assert reasons == ["bad_date", "bad_status", "missing_student_id"]
    again = load_attendance(conn, tmp_path / "absen.csv", institution_id="smkn1-petasia", key=KEY)
    assert again.skipped
    catalogue = load_catalogue(settings.catalogue_dir)
    summary = run_compliance(conn, catalogue, load_institutions(settings.institutions_file),
                             load_calendars(settings.institutions_file), institution="smkn1-petasia",
                             as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    from pipeline.ingest import pseudonym

    found = {(c, s) for c, s in conn.execute(
        "SELECT case_id, step_id FROM latest_deviations WHERE kind = 'rule_breach'").fetchall()}
    sick, truant = pseudonym("SAKIT", KEY), pseudonym("BOLOS", KEY)
    assert found == {(sick, "sakit_maks_6_hari"), (truant, "kehadiran_min_80"), (truant, "alpa_maks_15_persen")}
    assert summary.cases == 3 and summary.compliant == 1
    assert conn.execute("SELECT count(*) FROM latest_case_results WHERE sop_id LIKE 'smkn1-petasia/%'"
                        ).fetchall()[0][0] == 3
    raw = (tmp_path / "patuh.duckdb").read_bytes()
    conn.close()
    assert b"BOLOS" not in raw and b"SAKIT" not in raw
