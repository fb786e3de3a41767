"""Publishing: what the dashboard and the reports read (DESIGN section 5).

DuckDB allows one writer process *or* many readers on a file. The working database is only opened by the
CLI; a successful run copies its results, the catalogue snapshot and the case table into a new file
``published/<run_id>.duckdb`` and points ``published/CURRENT`` at it with an atomic ``os.replace``.
Readers open the current file read-only and never wait for a writer.

An incremental run does not write a whole new file. It takes a file no reader uses and brings it up to
date: the spare copy a full run leaves beside its file (its own changes), or else the file of the run
before the previous one (both runs' changes). Only when a reader still holds that file does it copy the
current file. A full run writes everything anyway; its spare copy moves that copy out of the next run.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from pipeline.db import schema_sql, transaction, vacuuming

CURRENT = "CURRENT"
GRACE_SECONDS = 3600  # old published files stay this long for readers that still hold them
KEEP = 3
# tables copied whole (no run_id); inputs stay out except the case list (pseudonymised)
WHOLE_TABLES = ("institutions", "sops", "sop_steps", "sop_edges", "cases")
# per-case result tables: an incremental publish rewrites only the changed cases' rows of these
CASE_TABLES = ("case_results", "deviations", "event_timing")


def _result_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns "
        "WHERE column_name = 'run_id' AND table_schema = 'main' AND table_catalog = current_database() "
        "AND table_name NOT LIKE 'latest_%' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class Changes:
    """Temp tables of case keys an incremental run changed (see run.py)."""

    dirty: str  # cases with new events: every row checked again
    dirty_known: str  # the dirty cases with events loaded before (only they have rows to replace)
    restated: str  # open cases without new events: stall deviation judged again
    rejudged: str  # the restated cases whose case result changed with it


# The kinds of change a run records for the next publish to replay (run.py, run_changes). Not the restated
# open cases: each of the base run's is restated again by the next run, or has new events there and is one
# of its dirty known cases, whose rows are replaced whole.
RECORDED = ("dirty", "dirty_known", "rejudged")


def publish(conn: duckdb.DuckDBPyConnection, run_id: str, published_dir: Path, *, base_run: str | None = None,
            changes: Changes | None = None) -> Path:
    """Write ``<run_id>.duckdb`` with that run's results and switch ``CURRENT`` to it atomically.

    With ``base_run`` (the run an incremental run started from) and its ``changes``, and when ``CURRENT``
    still is ``base_run``'s file, only the rows the run replaced and the aggregates are rewritten, in the
    file of ``base_run``'s own base run (both runs' changes) or else in a copy of ``CURRENT``: the cost
    follows the change, not the data.
    """
    published_dir.mkdir(parents=True, exist_ok=True)
    final = published_dir / f"{run_id}.duckdb"
    tmp = published_dir / f".{run_id}.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    result_tables = _result_tables(conn)
    home = conn.execute("SELECT current_database()").fetchall()[0][0]
    current = current_published(published_dir)
    incremental = base_run is not None and changes is not None and current is not None and current.stem == base_run
    replayed = [run_id]  # the runs whose per-case rows the published file takes
    standby = _standby(conn, published_dir, base_run, current) if incremental and base_run and current else None
    if standby is not None and _attach_standby(conn, standby[0], tmp):
        replayed = [*standby[1], run_id]
        if standby[1] and changes is not None:
            changes = _replayed_changes(conn, home, standby[1][0], changes)
    else:
        if incremental and current is not None:
            shutil.copyfile(current, tmp)
        _attach(conn, tmp)
    try:
        conn.execute("USE pub")
        conn.execute(schema_sql())
        # an incremental publish deletes rows in the per-case tables and cases: packed when enough piled up
        # one commit: no WAL flush and automatic checkpoint per statement
        with vacuuming(conn, (*CASE_TABLES, "cases"), "pub"), transaction(conn):
            if incremental and changes is not None:
                _replace_changed_cases(conn, home, replayed, changes)
            for table in result_tables:
                if incremental and table in CASE_TABLES:
                    continue
                if incremental:
                    conn.execute(f"DELETE FROM pub.{table}")
                if table in CASE_TABLES:  # current rows of every case (each carries the run that wrote it)
                    conn.execute(f'INSERT INTO pub.{table} BY NAME SELECT * FROM "{home}".{table}')
                else:
                    conn.execute(f'INSERT INTO pub.{table} BY NAME SELECT * FROM "{home}".{table} WHERE run_id = ?',
                                 [run_id])
            for table in WHOLE_TABLES:
                # incremental: the catalogue is the base run's (same setup hash, run.py) and _replace_changed_cases
                # rewrote the changed cases
                if not incremental:
                    conn.execute(f'INSERT INTO pub.{table} BY NAME SELECT * FROM "{home}".{table}')
        conn.execute("CHECKPOINT pub")
    finally:
        conn.execute(f'USE "{home}"')
        conn.execute("DETACH pub")
    if not incremental:
        spare = _spare(published_dir, run_id)
        shutil.copyfile(tmp, spare.with_name(spare.name + ".tmp"))
        os.replace(spare.with_name(spare.name + ".tmp"), spare)
    os.replace(tmp, final)
    pointer_tmp = published_dir / f".{CURRENT}.tmp"
    pointer_tmp.write_text(final.name, encoding="utf-8")
    os.replace(pointer_tmp, published_dir / CURRENT)
    prune(published_dir)
    return final


def _spare(published_dir: Path, run_id: str) -> Path:
    """The copy of a full run's published file that the next incremental run writes into."""
    return published_dir / f".{run_id}.spare"


def _standby(conn: duckdb.DuckDBPyConnection, published_dir: Path, base_run: str,
             current: Path) -> tuple[Path, list[str]] | None:
    """A published file no reader uses to bring up to date, and the earlier runs whose changes it lacks.

    That is ``base_run``'s spare copy (no earlier run), or the file of the run ``base_run`` started from when
    ``base_run`` was incremental (``base_run``: it recorded its changes in ``run_changes``). Either holds
    exactly that run's state: published files are only ever renamed into place whole.
    """
    spare = _spare(published_dir, base_run)
    if spare.exists():
        return spare, []
    rows = conn.execute("SELECT json_extract_string(params, '$.base_run') FROM runs WHERE run_id = ?",
                        [base_run]).fetchall()
    if not rows or rows[0][0] is None:
        return None
    path = published_dir / f"{rows[0][0]}.duckdb"
    return (path, [base_run]) if path.exists() and path != current else None


def _attach(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    conn.execute(f"ATTACH '{path}' AS pub")


def _attach_standby(conn: duckdb.DuckDBPyConnection, standby: Path, tmp: Path) -> bool:
    """Move ``standby`` to ``tmp`` and attach it as ``pub``; False (and put back) when a reader holds it."""
    os.replace(standby, tmp)  # a crash from here on leaves a temporary file, never a half-written published one
    try:
        _attach(conn, tmp)
    except duckdb.Error:  # a dashboard or report still reads it: DuckDB's file lock
        os.replace(tmp, standby)
        return False
    return True


def _replayed_changes(conn: duckdb.DuckDBPyConnection, home: str, base_run: str, changes: Changes) -> Changes:
    """Temp tables of the case keys ``base_run`` or this run changed, one per kind of change recorded
    (``RECORDED``); the restated cases are this run's alone."""
    for change in RECORDED:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE publish_{change} AS "
            f"SELECT institution_id, sop_id, case_id FROM {getattr(changes, change)} UNION "
            f'SELECT institution_id, sop_id, case_id FROM "{home}".run_changes WHERE changed_in = ? AND change = ?',
            [base_run, change])
    return replace(changes, **{change: f"publish_{change}" for change in RECORDED})


def _replace_changed_cases(conn: duckdb.DuckDBPyConnection, home: str, run_ids: list[str], changes: Changes) -> None:
    """In the published file, do what the runs ``run_ids`` did to the per-case tables and to ``cases``.

    A run replaced every row of its dirty cases and of the rule models, the stall deviation of the
    restated open cases and the result of those rejudged, and ingest rewrote the dirty cases' ``cases``
    rows. Every row a run wrote carries its ``run_id``. Deletes of results probe small key tables (empty
    when every dirty case is new).
    Two runs' changes are replayed as one: the second run's deletes were made in the working database
    too, so what is left there of the first run's rows is exactly what the published file must gain.
    """
    rules = f"sop_id IN (SELECT sop_id FROM \"{home}\".sops WHERE kind = 'rules')"
    known, restated = _changed_case(changes.dirty_known), _changed_case(changes.restated)
    deletes = {
        "case_results": [rules, known, _changed_case(changes.rejudged)],
        "deviations": [rules, known, f"kind = 'stalled_case' AND {restated}"],
        "event_timing": [rules, known],
    }
    for table, conditions in deletes.items():
        for condition in conditions:  # one statement each: an OR of subqueries scans as a mark join
            conn.execute(f"DELETE FROM pub.{table} t WHERE {condition}")
        conn.execute(f'INSERT INTO pub.{table} BY NAME SELECT * FROM "{home}".{table} '
                     f'WHERE run_id IN ({", ".join("?" for _ in run_ids)})', run_ids)
    # every dirty case, also one that no run checked (a log without an SOP model: a row in cases, none in
    # case_results); only the known ones (events loaded before) have a row to replace
    conn.execute(f"DELETE FROM pub.cases t WHERE {known}")
    conn.execute(f'INSERT INTO pub.cases BY NAME SELECT * FROM "{home}".cases t WHERE {_changed_case(changes.dirty)}')


def _changed_case(changed: str) -> str:
    return (f"EXISTS (SELECT 1 FROM {changed} d WHERE d.institution_id = t.institution_id "
            "AND d.sop_id = t.sop_id AND d.case_id = t.case_id)")


def current_published(published_dir: Path) -> Path | None:
    """The published file the dashboard and reports should read now, or None before the first run."""
    pointer = published_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    path = published_dir / name
    return path if path.exists() else None


def prune(published_dir: Path, *, keep: int = KEEP, grace_seconds: float = GRACE_SECONDS) -> list[Path]:
    """Remove published files older than the grace period, always keeping the newest ``keep`` and CURRENT."""
    current = current_published(published_dir)
    files = sorted(published_dir.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    removed = []
    for path in files[keep:]:
        if path != current and now - path.stat().st_mtime > grace_seconds:
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in published_dir.glob(".*.tmp*"):  # left by a publish that crashed (and its WAL)
        if now - path.stat().st_mtime > grace_seconds:
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in published_dir.glob(".*.spare"):  # only the current run's spare can serve the next run
        if current is None or path != _spare(published_dir, current.stem):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
