"""``patuh demo``: the main job on the embedded default.

Synthetic logs of the seed institutions (seeded, identical on every machine) -> ingest into the default
DuckDB file -> one compliance run (published) -> the periodic reports -> the dashboard.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Protocol

from rich.console import Console

from pipeline.config import get_settings, load_key
from pipeline.errors import UserError
from pipeline.tables import Column, print_table


def _previous_month(day: dt.date) -> str:
    first = day.replace(day=1) - dt.timedelta(days=1)
    return first.strftime("%Y-%m")


def _quarter(day: dt.date) -> str:
    """The last complete quarter before ``day``."""
    q = (day.month - 1) // 3  # quarters completed this year
    return f"{day.year}-Q{q}" if q else f"{day.year - 1}-Q4"


class _Loaded(Protocol):
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    skipped: bool


def _tally(totals: dict[str, list[int]], institution_id: str, result: _Loaded) -> None:
    """Add one loaded file to its institution's row: files, rows in, loaded, quarantined, already loaded."""
    row = totals.setdefault(institution_id, [0, 0, 0, 0, 0])
    for i, value in enumerate((1, result.rows_in, result.rows_loaded, result.rows_quarantined, int(result.skipped))):
        row[i] += value


def run_demo(db: Path, *, cases: int, seed: int, console: Console, serve: bool = True,
             host: str = "127.0.0.1", port: int = 8050) -> None:
    """Generate, load, check, report and (optionally) serve."""
    from pipeline.calendars import load_institutions
    from pipeline.cli import _print_run_summary, run_for_db
    from pipeline.db import connect
    from pipeline.ingest import ingest_file
    from pipeline.sop import load_catalogue
    from pipeline.synth import generate_demo

    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_dir)
    if catalogue.errors:
        raise UserError(f"the SOP catalogue has {len(catalogue.errors)} error(s); run 'patuh sop validate'",
                        pesan=f"katalog SOP berisi {len(catalogue.errors)} galat; jalankan 'patuh sop validate'")
    institutions = load_institutions(settings.institutions_file)
    key = load_key()  # a key that is refused is said now, not after a minute of work
    out_dir = db.parent / "demo"
    if serve:  # a port in use is said now, not after a minute of work
        import importlib

        importlib.import_module("dashboards.serve").check_port(host, port)

    started = time.perf_counter()
    console.rule("[bold]1. Log sintetis / synthetic logs")
    synth = generate_demo(out_dir, cases=cases, seed=seed)
    console.print(f"{synth.cases} kasus/cases, {synth.events} peristiwa/events in {len(synth.files)} file(s) "
                  f"under {out_dir} (as of {synth.as_of:%Y-%m-%d %H:%M %Z})")

    console.rule("[bold]2. Muat / ingest")
    conn = connect(db)
    totals: dict[str, list[int]] = {}
    try:
        for f in synth.files:
            _tally(totals, f.institution_id, ingest_file(conn, f.path, institution_id=f.institution_id,
                                                         sop_id=f.sop_id, catalogue=catalogue, calendars=institutions,
                                                         key=key))
        from pipeline.calendars import load_calendars
        from pipeline.rule_inputs import generate_attendance, generate_escalations, generate_scores, load_rule_input

        petasia = "smkn1-petasia"
        students = max(30, cases // 100)
        # the school year up to the demo's as-of date (July to the month before), so the latest reports show it
        as_of_day = synth.as_of.date()
        year_start = as_of_day.replace(day=1, month=7, year=as_of_day.year - (as_of_day.month < 7))
        months = max(1, (as_of_day.year - year_start.year) * 12 + as_of_day.month - year_start.month)
        folder = out_dir / petasia
        inputs = [
            ("attendance_daily", generate_attendance(
                folder / "kehadiran.csv", calendar=load_calendars(settings.institutions_file)[petasia],
                students=students, start=year_start, months=months, seed=seed)),
            ("escalation_events", generate_escalations(folder / "layanan-khusus.csv", students=students,
                                                       cases=students * 2, start=year_start, end=as_of_day,
                                                       seed=seed)),
            # scores of the last semester (its remedial deadlines have passed) and of the current one
            ("scores", generate_scores(folder / "nilai-semester-lalu.csv", students=students, subjects=4,
                                       start=year_start.replace(month=1), end=year_start, seed=seed)),
            ("scores", generate_scores(folder / "nilai.csv", students=students, subjects=4, start=year_start,
                                       end=as_of_day, seed=seed)),
        ]
        for input_name, path in inputs:
            _tally(totals, petasia, load_rule_input(conn, path, input_name=input_name, institution_id=petasia,
                                                    key=key, timezone=institutions[petasia].timezone))
    finally:
        conn.close()
    print_table(console, [Column("instansi", "institution"), Column("berkas", "files", number=True),
                          Column("baris", "rows", number=True), Column("dimuat", "loaded", number=True),
                          Column("karantina", "quarantined", number=True),
                          Column("sudah dimuat", "already loaded", number=True)],
                [(inst, *map(str, counts)) for inst, counts in sorted(totals.items())])

    console.rule("[bold]3. Pemeriksaan kepatuhan / compliance run")
    summary = run_for_db(db, as_of=synth.as_of, future_as_of=True)
    _print_run_summary(summary)

    console.rule("[bold]4. Laporan / reports")
    from pipeline.publish import current_published
    from pipeline.report import write_reports

    published = current_published(db.parent / "published")
    if published is None:
        raise UserError("the run published nothing; see the messages above",
                        pesan="pemeriksaan (run) tidak menerbitkan hasil apa pun; lihat pesan di atas")
    reports_dir = db.parent / "reports"
    as_of_day = synth.as_of.date()
    written: list[Path] = []
    for period in (_quarter(as_of_day), _previous_month(as_of_day)):  # index.html: the latest month
        written += write_reports(published, period=period, institutions=None, formats={"html", "pdf"},
                                 out_dir=reports_dir)
    console.print(f"{len(written)} file(s) in {reports_dir}; index: {reports_dir / 'index.html'}")
    (db.parent / "demo-summary.json").write_text(json.dumps({
        "cases": synth.cases, "events": synth.events, "run": json.loads(summary.as_json()),
        "reports": [str(p) for p in written], "seconds": round(time.perf_counter() - started, 1),
    }, indent=2), encoding="utf-8")
    console.print(f"Selesai dalam / done in {time.perf_counter() - started:.1f} s")

    if serve:
        console.rule("[bold]5. Dasbor / dashboard")
        serve_module = importlib.import_module("dashboards.serve")
        serve_module.serve(db, host=host, port=port, console=console)
