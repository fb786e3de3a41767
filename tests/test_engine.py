"""The compliance engine on hand-made cases: deviation rules, open cases, severity, rollback, incremental."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings
from pipeline.db import connect
from pipeline.errors import UserError
from pipeline.ingest import ingest_file
from pipeline.public_texts import OTHER_ROLE
from pipeline.run import run_compliance
from pipeline.sop import Catalogue, load_catalogue
from tests.engine_fixtures import BASE, NGAWI, PROSEDUR, add_batch, add_case, new_db

AS_OF = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
COMPARED = ("case_results", "deviations", "event_timing", "variants", "step_metrics", "bottleneck_step_month",
            "bottleneck_handovers", "bottleneck_wip", "bottleneck_rework", "bottleneck_role_resources",
            "bottleneck_role_load", "bottlenecks",
            "bottleneck_calendars")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(get_settings().catalogue_dir)


def _run(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, *, as_of: dt.datetime = AS_OF,  # type: ignore[no-untyped-def]
         **kwargs: object):
    settings = get_settings()
    return run_compliance(conn, catalogue, load_institutions(settings.institutions_file),
                          load_calendars(settings.institutions_file), as_of=as_of, **kwargs)  # type: ignore[arg-type]


def _deviations(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str | None]]]:
    rows = conn.execute(
        "SELECT case_id, kind, step_id FROM latest_deviations ORDER BY case_id, kind, step_id").fetchall()
    out: dict[str, list[tuple[str, str | None]]] = {}
    for case_id, kind, step_id in rows:
        out.setdefault(case_id, []).append((kind, step_id))
    return out


@pytest.fixture()
def hand_made(tmp_path: Path, catalogue: Catalogue) -> duckdb.DuckDBPyConnection:
    conn = new_db(tmp_path / "patuh.duckdb")
    add_batch(conn, 1, BASE)
    add_case(conn, catalogue, "fits", ["s1", "s2", "s3", "s6"])
    add_case(conn, catalogue, "loop", ["s1", "s2", "s3", "s4", "s5", "s5", "s6"])
    add_case(conn, catalogue, "swap", ["s1", "s3", "s2", "s6"])
    add_case(conn, catalogue, "open", ["s1", "s2", "s3", "s4", "s5"], status="open")
    add_case(conn, catalogue, "foreign", ["s1", "s2", "s3", "Rapat dengan komite", "s6"], role="guru_bk")
    add_case(conn, catalogue, "twice", ["s1", "s2", "s3", "s3", "s6"])
    add_case(conn, catalogue, "skipped", ["s1", "s2", "s6"])
    add_case(conn, catalogue, "slow", ["s1", "s2", "s3", "s6"], minutes=45)
    add_case(conn, catalogue, "docs", ["s1", "s2", "s3", "s6"], documents=True)
    add_case(conn, catalogue, "nodoc", ["s1", "s2", "s3", "s6"], documents=True)
    conn.execute("UPDATE events SET documents = [] WHERE case_id = 'nodoc' AND step_id = 's1'")
    return conn


def test_each_deviation_rule_on_hand_made_cases(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    summary = _run(hand_made, catalogue)
    devs = _deviations(hand_made)
    assert "fits" not in devs and "loop" not in devs and "docs" not in devs
    assert len(devs["swap"]) == 1 and devs["swap"][0][0] == "wrong_order" and devs["swap"][0][1] in {"s2", "s3"}
    # an open case is aligned as a prefix: the steps still to come are not missing, but it is stalled
    assert devs["open"] == [("stalled_case", "s5")]
    # idle since s5, which repeats: the standard applied is the longer of s5's own (30 Menit) and s6's (15 Menit),
    # and the deviation names that step, for its explanation
    assert hand_made.execute("SELECT expected, detail->>'next_step' FROM deviations WHERE case_id = 'open'"
                             ).fetchall() == [("30 Menit", "s5")]
    assert devs["foreign"] == [("unexpected_step", None), ("wrong_role", "s1"), ("wrong_role", "s2")]
    assert devs["twice"] == [("repeated_step", "s3")]
    assert devs["skipped"] == [("missing_step", "s3")]
    assert devs["slow"] == [("overdue_step", "s1"), ("overdue_step", "s2"), ("overdue_step", "s3"),
                            ("overdue_step", "s6")]
    assert devs["nodoc"] == [("missing_document", "s1")]
    assert summary.documents_recorded
    assert summary.cases == 10 and summary.compliant == 3
    assert summary.compliance_rate == pytest.approx(0.3)


def test_case_results_trace_to_deviations(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    _run(hand_made, catalogue)
    mismatched = hand_made.execute(
        """SELECT r.case_id FROM latest_case_results r
           LEFT JOIN (SELECT case_id, count(*) AS n FROM latest_deviations GROUP BY 1) d USING (case_id)
           WHERE r.n_deviations != coalesce(d.n, 0) OR r.compliant != (coalesce(d.n, 0) = 0)"""
    ).fetchall()
    assert mismatched == []
    # each deviation carries its case's opening and closing (a period selects deviations by their case)
    spans = hand_made.execute(
        """SELECT count(*), count(*) FILTER (WHERE d.case_opened_at IS DISTINCT FROM r.opened_at
                                            OR d.case_closed_at IS DISTINCT FROM r.closed_at)
           FROM latest_deviations d JOIN latest_case_results r USING (institution_id, sop_id, case_id)""").fetchall()
    assert spans[0][0] == hand_made.execute("SELECT count(*) FROM latest_deviations").fetchall()[0][0] > 0
    assert spans[0][1] == 0
    fitness = dict(hand_made.execute("SELECT case_id, fitness FROM latest_case_results").fetchall())
    assert fitness["fits"] == 1.0 and fitness["loop"] == 1.0 and fitness["open"] == 1.0
    assert fitness["skipped"] < 1.0
    severity = dict(hand_made.execute(
        "SELECT kind, any_value(severity) FROM latest_deviations GROUP BY kind").fetchall())
    assert severity["missing_step"] == "high" and severity["repeated_step"] == "low"
    # the lead time is in working time: 4 steps of 10 minutes with 10-minute gaps on a Monday morning
    lead = hand_made.execute("SELECT lead_time_working FROM latest_case_results WHERE case_id = 'fits'").fetchall()
    assert lead[0][0] == pytest.approx(70.0)


def test_failed_run_leaves_previous_results(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    first = _run(hand_made, catalogue)
    before = hand_made.execute("SELECT count(*) FROM latest_deviations").fetchall()
    add_case(hand_made, catalogue, "later", ["s1", "s6"])
    with pytest.raises(RuntimeError):
        _run(hand_made, catalogue, full=True, fail_after_stage="conformance")
    assert hand_made.execute("SELECT run_id FROM latest_run").fetchall() == [(first.run_id,)]
    assert hand_made.execute("SELECT count(*) FROM latest_deviations").fetchall() == before
    assert hand_made.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]


def test_incremental_run_checks_only_new_and_open_cases(hand_made: duckdb.DuckDBPyConnection,
                                                        catalogue: Catalogue) -> None:
    first = _run(hand_made, catalogue)
    again = _run(hand_made, catalogue)
    assert again.mode == "incremental"
    assert again.aligned == 0 and again.from_cache == again.variants
    assert again.cases_checked == 0  # nothing new: only the open case's stall status is judged again
    assert again.open_restated == 1
    assert again.cases == first.cases and again.deviations == first.deviations
    add_batch(hand_made, 2)
    add_case(hand_made, catalogue, "new", ["s1", "s2", "s6"], batch_id=2)
    third = _run(hand_made, catalogue)
    assert third.cases_checked == 1 and third.open_restated == 1 and third.cases == first.cases + 1
    assert third.deviations["missing_step"] == first.deviations["missing_step"] + 1
    full = _run(hand_made, catalogue, full=True)
    assert full.mode == "full" and full.deviations == third.deviations


def test_a_scoped_run_checks_only_its_sop(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    """``patuh run --sop``: cases of other SOPs are neither checked nor judged stalled, full or incremental."""
    other = "smpn2-ngawi/bk001-alur"

    def add_other(case_id: str, batch_id: int) -> None:
        add_case(hand_made, catalogue, case_id, ["s1"], batch_id=batch_id, status="open")
        for table in ("events", "cases"):
            hand_made.execute(f"UPDATE {table} SET sop_id = ? WHERE case_id = ?", [other, case_id])

    add_other("other-1", 1)
    n_prosedur = hand_made.execute("SELECT count(*) FROM cases WHERE sop_id = ?", [PROSEDUR]).fetchall()[0][0]
    first = _run(hand_made, catalogue, sop=PROSEDUR)
    assert first.mode == "full" and first.cases_checked == n_prosedur
    add_batch(hand_made, 2)
    add_case(hand_made, catalogue, "new", ["s1", "s2", "s6"], batch_id=2)
    add_other("other-2", 2)
    second = _run(hand_made, catalogue, sop=PROSEDUR)
    assert second.mode == "incremental" and second.cases_checked == 1 and second.open_restated == 1
    checked = {r[0] for r in hand_made.execute("SELECT DISTINCT sop_id FROM case_results").fetchall()}
    assert checked == {PROSEDUR}
    everything = _run(hand_made, catalogue)  # another scope: a full run over every SOP
    assert everything.mode == "full" and everything.cases_checked == n_prosedur + 3
    # the summary of a scoped run counts its scope, not the whole database (QA: the other SOPs' figures)
    scoped = _run(hand_made, catalogue, sop=PROSEDUR)
    own = dict(hand_made.execute("SELECT kind, count(*) FROM deviations WHERE sop_id = ? GROUP BY kind",
                                 [PROSEDUR]).fetchall())
    assert scoped.cases == n_prosedur + 1 < everything.cases and scoped.deviations == own


def test_run_is_published_atomically(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue,
                                     tmp_path: Path) -> None:
    from pipeline.publish import current_published

    summary = _run(hand_made, catalogue, published_dir=tmp_path / "published")
    path = current_published(tmp_path / "published")
    assert path is not None and summary.run_id in path.name
    reader = duckdb.connect(str(path), read_only=True)
    try:
        n = reader.execute("SELECT count(*) FROM latest_case_results").fetchall()[0][0]
        kinds = Counter(k for (k,) in reader.execute("SELECT kind FROM latest_deviations").fetchall())
    finally:
        reader.close()
    assert n == summary.cases and dict(kinds) == summary.deviations


def test_sigkill_mid_run_keeps_previous_results(tmp_path: Path, catalogue: Catalogue) -> None:
    db = tmp_path / "patuh.duckdb"
    conn = new_db(db)
    add_batch(conn, 1, BASE)
    add_case(conn, catalogue, "a", ["s1", "s2", "s3", "s6"])
    add_case(conn, catalogue, "b", ["s1", "s2", "s6"])
    first = _run(conn, catalogue, published_dir=tmp_path / "published")
    add_batch(conn, 2)
    add_case(conn, catalogue, "c", ["s1", "s6"], batch_id=2)
    conn.close()
    marker = tmp_path / "paused"
    env = {**os.environ, "PATUH_TEST_PAUSE": f"timing:{marker}"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--db", str(db), "--full",
                             "--as-of", AS_OF.isoformat()], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the run never reached the pause point"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = duckdb.connect(str(db))
    try:
        assert conn.execute("SELECT run_id FROM latest_run").fetchall() == [(first.run_id,)]
        assert conn.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM latest_case_results").fetchall() == [(2,)]
    finally:
        conn.close()
    from pipeline.publish import current_published

    assert current_published(tmp_path / "published") == Path(first.published or "")


@pytest.mark.parametrize("previous", ["kept", "kept-compacted", "kept-unnumbered", "stale-kept-sums", "older-version"])
def test_incremental_publish_equals_a_full_publish(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   previous: str) -> None:
    """Every way an incremental run can compute the bottleneck aggregates gives a full run's rows: from the
    previous run's sums (kept, with the changes appended, or added up at once), building the kept sums again
    when they are not the previous run's or an older version kept them without group numbers, or computing
    everything again when the previous run wrote no per-resource rows (an older version)."""
    from pipeline import bottlenecks

    monkeypatch.setattr(bottlenecks, "COMPACT_GROWTH", 0.0 if previous == "kept-compacted" else 100.0)

    def published_rows() -> dict[str, list[tuple[object, ...]]]:
        return _published_rows(tmp_path / "published", ids="SELECT DISTINCT run_id FROM case_results UNION "
                                                           "SELECT DISTINCT run_id FROM event_timing")

    # a second SOP whose cases do not change: its aggregates are carried over (or recomputed) unchanged
    alur = "smpn2-ngawi/bk001-alur"
    hand_made.execute("INSERT INTO events SELECT * REPLACE (? AS sop_id, source_row + 1000 AS source_row) "
                      "FROM events WHERE case_id IN ('fits', 'slow', 'twice')", [alur])
    hand_made.execute("INSERT INTO cases SELECT * REPLACE (? AS sop_id) FROM cases "
                      "WHERE case_id IN ('fits', 'slow', 'twice')", [alur])
    first = _run(hand_made, catalogue, published_dir=tmp_path / "published")
    assert hand_made.execute("SELECT count(*) FROM bottleneck_step_month WHERE sop_id = ?", [alur]).fetchall()[0][0]
    add_batch(hand_made, 2)
    add_case(hand_made, catalogue, "new", ["s1", "s2", "s6"], batch_id=2)
    # an existing case grows (s5 again, then the end): its old rows leave the per-case sums, its new ones enter
    add_case(hand_made, catalogue, "open", ["s5", "s6"], batch_id=2, start=BASE + dt.timedelta(hours=3))
    # an institution and SOP with no case before: its first aggregates, and the per-role load of a new institution
    bontang = ("bontang-bk", "bontang-bk/konseling-individu")
    hand_made.execute("INSERT INTO events SELECT * REPLACE (?::VARCHAR AS institution_id, ?::VARCHAR AS sop_id, "
                      "'first-b' AS case_id, 2 AS batch_id, source_row + 2000 AS source_row) FROM events "
                      "WHERE case_id = 'fits' AND sop_id = ? AND step_id IN ('s1', 's2', 's3', 's4')",
                      [*bontang, PROSEDUR])  # steps s1..s4 exist in both models
    hand_made.execute("INSERT INTO cases SELECT * REPLACE (?::VARCHAR AS institution_id, ?::VARCHAR AS sop_id, "
                      "'first-b' AS case_id, 4 AS n_events) FROM cases WHERE case_id = 'fits' AND sop_id = ?",
                      [*bontang, PROSEDUR])
    if previous in ("stale-kept-sums", "older-version"):  # sums that no longer match the events, no run to vouch
        hand_made.execute("DELETE FROM bottleneck_state_run")
        hand_made.execute("DELETE FROM bottleneck_state_values WHERE n % 2 = 1")
    if previous == "older-version":
        hand_made.execute("DELETE FROM bottleneck_role_resources")
    if previous == "kept-unnumbered":
        hand_made.execute("UPDATE bottleneck_state_handovers SET gid = NULL")
        hand_made.execute("DELETE FROM bottleneck_state_handovers_groups")
    incremental = _run(hand_made, catalogue, published_dir=tmp_path / "published")
    assert incremental.mode == "incremental"
    # the changes were appended to the kept counts, or added up into one row per value
    groups, rows = hand_made.execute("SELECT count(DISTINCT (institution_id, sop_id, step_id, month, measure, value)), "
                                     "count(*) FROM bottleneck_state_values").fetchall()[0]
    assert (rows > groups) == (previous == "kept")
    after_incremental = published_rows()
    assert any(row[0] == "bontang-bk" for row in after_incremental["bottleneck_step_month"])
    assert any(row[2] == "first-b" for row in after_incremental["case_results"])
    # unchanged cases keep the run that checked them; the new and the open case carry the new run
    assert sorted(after_incremental["ids"]) == sorted([(first.run_id,), (incremental.run_id,)])
    full = _run(hand_made, catalogue, full=True, published_dir=tmp_path / "published")
    after_full = published_rows()
    assert after_full["ids"] == [(full.run_id,)]
    for table in COMPARED:
        assert after_incremental[table] == after_full[table], table


def _published_rows(published_dir: Path, **queries: str) -> dict[str, list[tuple[object, ...]]]:
    """The current published file's COMPARED tables (without run ids), its cases, and ``queries``' rows."""
    from pipeline.publish import current_published

    path = current_published(published_dir)
    assert path is not None
    reader = duckdb.connect(str(path), read_only=True)
    try:
        return {table: reader.execute(f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY ALL").fetchall()
                for table in COMPARED} | {"cases": reader.execute("SELECT * FROM cases ORDER BY ALL").fetchall()} \
            | {name: reader.execute(sql).fetchall() for name, sql in queries.items()}
    finally:
        reader.close()


@pytest.mark.parametrize("reader", ["none", "holds-the-older-file"])
def test_publishing_two_incremental_runs_onto_the_older_file_equals_a_full_publish(
        hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue, tmp_path: Path, reader: str) -> None:
    """No incremental run copies a whole published file. The first after a full run writes into the full
    run's spare copy; the next one rewrites the file published two runs before (both runs' changes), or
    copies the current file when a dashboard still reads that one. Either way the published tables equal
    a full run's, and a reader of the older file keeps reading it."""
    published = tmp_path / "published"
    full = _run(hand_made, catalogue, published_dir=published)
    spare = published / f".{full.run_id}.spare"
    spare_inode = spare.stat().st_ino
    add_batch(hand_made, 2)
    add_case(hand_made, catalogue, "new", ["s1", "s2"], batch_id=2, status="open")
    add_case(hand_made, catalogue, "open", ["s5", "s6"], batch_id=2, start=BASE + dt.timedelta(hours=3))
    first = _run(hand_made, catalogue, published_dir=published)
    assert not spare.exists() and (published / f"{first.run_id}.duckdb").stat().st_ino == spare_inode
    add_batch(hand_made, 3)
    # a case the first incremental run added grows; another is new; the other open cases are judged again
    add_case(hand_made, catalogue, "new", ["s3", "s6"], batch_id=3, start=BASE + dt.timedelta(hours=2))
    add_case(hand_made, catalogue, "newer", ["s1", "s3", "s2", "s6"], batch_id=3)
    older = published / f"{full.run_id}.duckdb"
    inode = older.stat().st_ino
    holder = None
    if reader != "none":  # a dashboard in another process, as DuckDB's file lock sees it
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
             "print('ready', flush=True); sys.stdin.readline(); "
             "print(c.execute('SELECT count(*) FROM case_results').fetchall()[0][0], flush=True)", str(older)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
    try:
        second = _run(hand_made, catalogue, published_dir=published)
    finally:
        if holder is not None:
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            read_by_holder = holder.stdout.readline().strip()
            holder.wait(30)
    assert first.mode == second.mode == "incremental"
    new_file = published / f"{second.run_id}.duckdb"
    if holder is None:  # the older file became the new one (same inode, not a copy)
        assert not older.exists() and new_file.stat().st_ino == inode
    else:
        assert older.exists() and new_file.stat().st_ino != inode
        assert read_by_holder == "10"  # the full run's cases, read from the file it held
    assert (published / f"{first.run_id}.duckdb").exists()  # the next run's older file
    after_incremental = _published_rows(published)
    assert any(row[2] == "newer" for row in after_incremental["case_results"])
    _run(hand_made, catalogue, full=True, published_dir=published)
    after_full = _published_rows(published)
    for table in (*COMPARED, "cases"):
        assert after_incremental[table] == after_full[table], table


def test_bottlenecks_from_stored_visits_equal_those_derived_by_windows(hand_made: duckdb.DuckDBPyConnection,
                                                                       catalogue: Catalogue) -> None:
    """timing.py's per-event columns (visit numbers, previous end) and the windows that replace them for rows
    written without them (older files, hand-made rows) give the same bottleneck tables, repeats included."""
    from pipeline.bottlenecks import TABLES, compute_bottlenecks

    summary = _run(hand_made, catalogue)
    tables = [t for t in TABLES if t != "bottleneck_calendars"]

    def rows() -> dict[str, list[tuple[object, ...]]]:
        return {t: [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in
                    hand_made.execute(f"SELECT * EXCLUDE (run_id) FROM {t} ORDER BY ALL").fetchall()]
                for t in tables}

    stored = rows()
    repeated = hand_made.execute("SELECT step_id, n_cases_repeated FROM bottleneck_rework "
                                 "WHERE n_cases_repeated > 0 ORDER BY ALL").fetchall()
    assert repeated == [("s3", 1), ("s5", 1)]  # 'twice' and 'loop'
    hand_made.execute("UPDATE event_timing SET step_visit = NULL, step_visits = NULL, local_prev_end = NULL")
    compute_bottlenecks(hand_made, summary.run_id, calendars=load_calendars(get_settings().institutions_file))
    assert rows() == stored


def test_stalled_cases_from_kept_last_events_equal_those_read_from_the_events(
        hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    """Ingest keeps each case's last event; case rows an older version wrote lack it, and the run reads the
    events instead: both judge the same open cases stalled, at the same step, for the same idle time."""
    # an open case whose last event is no SOP step: it waits after its last mapped step, since its last event
    add_case(hand_made, catalogue, "open-meeting", ["s1", "s2", "Rapat dengan komite"], status="open")

    def stalled() -> list[tuple[object, ...]]:
        return hand_made.execute("SELECT case_id, step_id, observed, detail FROM deviations "
                                 "WHERE kind = 'stalled_case' ORDER BY case_id").fetchall()

    _run(hand_made, catalogue)
    kept = stalled()
    assert [(r[0], r[1]) for r in kept] == [("open", "s5"), ("open-meeting", "s2")]
    hand_made.execute("UPDATE cases SET last_at = NULL, last_step_id = NULL")
    _run(hand_made, catalogue, full=True)
    assert stalled() == kept


def test_a_changed_calendar_makes_the_next_run_full(hand_made: duckdb.DuckDBPyConnection, catalogue: Catalogue,
                                                    tmp_path: Path) -> None:
    """Working-time durations depend on the calendar: a new school holiday must re-time every case."""
    import yaml

    from pipeline.calendars import load_calendars, load_institutions

    settings = get_settings()
    assert _run(hand_made, catalogue).mode == "full"
    assert _run(hand_made, catalogue).mode == "incremental"
    raw = yaml.safe_load(settings.institutions_file.read_text(encoding="utf-8"))
    # the day of the hand-made cases becomes a school holiday: their working durations change
    entry = next(i for i in raw["institutions"] if i["id"] == "smpn2-ngawi")
    entry["non_working"].append(BASE.date().isoformat())
    changed = tmp_path / "institutions.yaml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    summary = run_compliance(hand_made, catalogue, load_institutions(changed), load_calendars(changed), as_of=AS_OF)
    assert summary.mode == "full"


def test_an_upgrade_that_changes_the_kept_state_makes_the_next_run_full(hand_made: duckdb.DuckDBPyConnection,
                                                                        catalogue: Catalogue,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a run keeps for the next one (changed case keys, bottleneck sums) may mean something else after
    an upgrade: the first run of the new version checks everything again."""
    from pipeline import run

    assert _run(hand_made, catalogue).mode == "full"
    assert _run(hand_made, catalogue).mode == "incremental"
    monkeypatch.setattr(run, "STATE_REVISION", run.STATE_REVISION + 1)
    assert _run(hand_made, catalogue).mode == "full"


def test_a_run_with_nothing_loaded_says_what_to_do(tmp_path: Path) -> None:
    """`patuh run` on a new database: exit 0, published, and a hint to load logs (no empty table, no
    claim that the logs record no documents)."""
    from tests.cli_process import patuh

    db = tmp_path / "patuh.duckdb"
    out = patuh("run", "--db", str(db), secret="k" * 32)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "no cases to check: load logs with 'patuh ingest' first" in text
    assert "missing_document not checked" not in text and "penyimpangan / deviation" not in text
    assert (tmp_path / "published" / "CURRENT").exists()


def test_a_log_without_sop_grows_and_the_next_run_publishes_it(tmp_path: Path) -> None:
    """A third-party log loaded without --sop in two exports, the second adding an event to a case of the
    first: the incremental run publishes that case once, with all its events. Before, its publish failed on a
    duplicate key (the case had no result to replace), with a traceback, and the dashboard kept old counts."""
    from pipeline.publish import current_published
    from tests.cli_process import patuh

    first, second, db = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "patuh.duckdb"
    first.write_text("case_id,activity,timestamp\nA,x,2025-01-02 08:00\nA,y,2025-01-02 09:00\n", encoding="utf-8")
    second.write_text("case_id,activity,timestamp\nA,z,2025-01-03 08:00\nB,x,2025-01-03 09:00\n", encoding="utf-8")
    for export in (first, second):
        loaded = patuh("ingest", str(export), "--institution", "smpn2-ngawi", "--db", str(db), secret="k" * 32)
        ran = patuh("run", "--db", str(db), secret="k" * 32)
        assert loaded.returncode == 0 and ran.returncode == 0, loaded.stderr + ran.stderr
    assert "(incremental)" in ran.stdout
    published = current_published(tmp_path / "published")
    assert published is not None
    reader = duckdb.connect(str(published), read_only=True)
    try:
        assert sorted(r[0] for r in reader.execute("SELECT n_events FROM cases").fetchall()) == [1, 3]
    finally:
        reader.close()


def test_an_open_case_that_stalls_between_runs_is_rejudged_alone(hand_made: duckdb.DuckDBPyConnection,
                                                                  catalogue: Catalogue, tmp_path: Path) -> None:
    """A run without new events, later: the open case that has waited too long since gets a stall deviation
    and a non-compliant result carrying the new run; the other results keep theirs. A run later still (the
    idle time grows) publishes onto the full run's file, replaying both runs. The published tables equal a
    full run's at that time."""
    published = tmp_path / "published"
    # an open case stalled from the start: its stall deviation is rewritten by every run (the idle time grows)
    add_case(hand_made, catalogue, "idle", ["s1", "s2"], status="open", start=BASE - dt.timedelta(days=40))
    last_event = hand_made.execute("SELECT max(ts_end) FROM events WHERE case_id = 'open'").fetchall()[0][0]
    first = _run(hand_made, catalogue, published_dir=published, as_of=last_event + dt.timedelta(minutes=1))
    assert "open" not in _deviations(hand_made) and _deviations(hand_made)["idle"] == [("stalled_case", "s2")]
    later = _run(hand_made, catalogue, published_dir=published, as_of=AS_OF)
    assert later.mode == "incremental" and later.open_restated == 2
    assert _deviations(hand_made)["open"] == [("stalled_case", "s5")]
    assert hand_made.execute("SELECT case_id, run_id = ?, compliant FROM case_results WHERE run_id = ? "
                             "OR case_id = 'open' ORDER BY ALL", [later.run_id, later.run_id]).fetchall() == [
        ("open", True, False)]
    assert hand_made.execute("SELECT count(*) FROM case_results WHERE run_id = ?", [first.run_id]).fetchall() == [(10,)]
    idle = "SELECT observed FROM deviations WHERE kind = 'stalled_case' ORDER BY case_id"
    before = hand_made.execute(idle).fetchall()
    inode = (published / f"{first.run_id}.duckdb").stat().st_ino
    latest = _run(hand_made, catalogue, published_dir=published, as_of=AS_OF + dt.timedelta(days=10))
    assert hand_made.execute(idle).fetchall() != before
    assert (published / f"{latest.run_id}.duckdb").stat().st_ino == inode
    after_incremental = _published_rows(published)
    _run(hand_made, catalogue, published_dir=published, as_of=AS_OF + dt.timedelta(days=10), full=True)
    after_full = _published_rows(published)
    for table in (*COMPARED, "cases"):
        assert after_incremental[table] == after_full[table], table


def test_prune_keeps_current_and_the_newest_files_and_clears_what_crashed_publishes_left(tmp_path: Path) -> None:
    from pipeline.publish import CURRENT, prune

    two_hours_ago = time.time() - 2 * 3600
    names = [f"2026010{i}T000000Z-aaaa" for i in range(1, 6)]
    for i, name in enumerate(names):
        (tmp_path / f"{name}.duckdb").write_bytes(b"")
        os.utime(tmp_path / f"{name}.duckdb", (two_hours_ago + i, two_hours_ago + i))
    (tmp_path / CURRENT).write_text(f"{names[0]}.duckdb")  # the oldest file is still the current one
    leftovers = {".20260106T000000Z-aaaa.duckdb.tmp": two_hours_ago, ".20260107T000000Z-aaaa.spare.tmp": two_hours_ago,
                 ".20260108T000000Z-aaaa.duckdb.tmp": time.time(),  # a publish under way
                 f".{names[1]}.spare": time.time(), f".{names[0]}.spare": time.time()}
    for name, stamp in leftovers.items():
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (stamp, stamp))
    prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        CURRENT, f"{names[0]}.duckdb", f"{names[2]}.duckdb", f"{names[3]}.duckdb", f"{names[4]}.duckdb",
        ".20260108T000000Z-aaaa.duckdb.tmp", f".{names[0]}.spare"])


def test_incremental_runs_over_a_synthetic_log_loaded_in_three_exports_equal_a_full_run(
        tmp_path: Path, catalogue: Catalogue) -> None:
    """A synthetic log arrives as three exports cut by time, as an institution's monthly exports would: cases
    still running at a cut come back with more events, new cases appear, open cases stall or close, and each
    run is judged at its export's date. After the third incremental run every published table equals a full
    run's at the same date."""
    import pandas as pd

    from pipeline.ingest import ingest_file
    from pipeline.synth import generate

    result = generate(tmp_path / "log", institutions=["smpn2-ngawi", "bontang-bk"], cases=500,
                      deviation_rate=0.3, months=2, seed=7, verify=False)
    frames = {f.sop_id: (f, pd.read_parquet(f.path)) for f in result.files}
    ends = pd.concat([pd.to_datetime(frame["ts_end"], utc=True) for _, frame in frames.values()]).sort_values()
    cuts: list[pd.Timestamp | None] = [ends.iloc[len(ends) // 2], ends.iloc[len(ends) * 4 // 5], None]
    settings = get_settings()
    institutions = load_institutions(settings.institutions_file)
    conn = new_db(tmp_path / "patuh.duckdb")
    published = tmp_path / "published"
    summaries = []
    lower: pd.Timestamp | None = None
    for k, cut in enumerate(cuts):
        for sop_id, (file, frame) in frames.items():
            end = pd.to_datetime(frame["ts_end"], utc=True)
            keep = pd.Series(True, index=frame.index)
            if lower is not None:
                keep &= end > lower
            if cut is not None:
                keep &= end <= cut
            part = frame[keep]
            if cut is not None:  # a case with events after the cut is still open in this export
                later = frame.loc[end > cut, "case_id"].unique()
                part = part.assign(status=part["status"].where(~part["case_id"].isin(later), "open"))
            path = tmp_path / f"export-{k}-{file.institution_id}.parquet"
            part.to_parquet(path)
            ingest_file(conn, path, institution_id=file.institution_id, sop_id=sop_id, catalogue=catalogue,
                        calendars=institutions)
        as_of = result.as_of if cut is None else cut.to_pydatetime()
        summaries.append(_run(conn, catalogue, as_of=as_of, published_dir=published))
        lower = cut
    assert [s.mode for s in summaries] == ["full", "incremental", "incremental"]
    later_runs = summaries[1:]
    # the cuts really exercise the incremental paths: cases that grew, open cases judged again, new stalls
    grown = conn.execute("SELECT count(*) FROM (SELECT institution_id, sop_id, case_id FROM events GROUP BY ALL "
                         "HAVING count(DISTINCT batch_id) > 1)").fetchall()[0][0]
    assert grown >= 10 and all(s.open_restated > 0 for s in later_runs)
    assert all(s.deviations.get("stalled_case", 0) > 0 for s in summaries)
    assert all(0 < s.cases_checked < s.cases for s in later_runs)
    after_incremental = _published_rows(published)
    full = _run(conn, catalogue, as_of=result.as_of, full=True, published_dir=published)
    assert full.deviations == summaries[-1].deviations and full.cases == summaries[-1].cases
    after_full = _published_rows(published)
    for table in (*COMPARED, "cases"):
        assert after_incremental[table] == after_full[table], table


def test_role_texts_of_an_export_are_named_at_ingest_and_an_alias_added_later_counts(tmp_path: Path) -> None:
    """An export names roles its own way ("Orang Tua", "Petugas Lain", "Satpam"): the ones the SOP's keys,
    labels or label parts name are its roles; ingest names the others, and an alias added to the SOP afterwards
    counts at the next run without loading the file again (QA: every case was wrong_role, and the alias did not
    help, since roles were only resolved when the file was loaded)."""
    catalogue_dir = tmp_path / "sop_models"
    shutil.copytree(get_settings().catalogue_dir, catalogue_dir)
    export = tmp_path / "ekspor.csv"
    rows = ["case_id,activity,timestamp,role"]
    for k in range(9):  # "Petugas Lain": a part of piket's label; "Bu Ani Zqx": a name typed into one row
        performer = "Satpam" if k < 5 else "Bu Ani Zqx" if k == 8 else "Petugas Lain"
        rows += [f"K{k},s1,2026-03-02 08:{10 + k}:00,{performer}", f"K{k},s2,2026-03-02 09:{10 + k}:00,wali kelas"]
    export.write_text("\n".join(rows) + "\n", encoding="utf-8")

    def run(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
        catalogue = load_catalogue(catalogue_dir)
        insts = load_institutions(catalogue_dir / "institutions.yaml")
        run_compliance(conn, catalogue, insts, load_calendars(catalogue_dir / "institutions.yaml"),
                       as_of=dt.datetime(2026, 3, 3, tzinfo=dt.UTC), institution=NGAWI, sop=PROSEDUR)
        return conn.execute("SELECT kind, step_id, observed FROM deviations WHERE kind = 'wrong_role' "
                            "ORDER BY ALL").fetchall()

    conn = connect(tmp_path / "patuh.duckdb")
    catalogue = load_catalogue(catalogue_dir)
    loaded = ingest_file(conn, export, institution_id=NGAWI, sop_id=PROSEDUR, catalogue=catalogue,
                         calendars=load_institutions(catalogue_dir / "institutions.yaml"), key=b"k" * 32)
    (note,) = [n for n in loaded.notes if n.startswith("role values")]
    assert "'satpam' (5 rows)" in note and "aliases" in note and "petugas lain" not in note
    assert "1 text(s) in fewer than 5 rows" in note and "zqx" not in note.lower()  # it may be a name
    assert run(conn) == [("wrong_role", "s1", OTHER_ROLE)] + [("wrong_role", "s1", "satpam")] * 5
    model = catalogue_dir / "smpn2-ngawi" / "bk001-prosedur.yaml"
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("aliases: [guru piket,", "aliases: [satpam, guru piket,"), encoding="utf-8")
    assert run(conn) == [("wrong_role", "s1", OTHER_ROLE)]
    conn.close()


def test_an_institution_with_a_broken_sop_file_keeps_its_results_while_the_others_are_checked(
        tmp_path: Path) -> None:
    """QA: a new SOP with a mistake, written for one school, stopped every school's run; and a run of another
    school dropped the broken school's SOP from the published catalogue, so its kept results lost their SOP.
    Now every run leaves that school out, keeps its results and SOPs as they were and says so (the report's
    cover, the dashboard); a run of that school, or an error outside the schools' folders, still stops."""
    import pandas as pd

    from dashboards import queries
    from pipeline.report import institution_report, parse_period
    from pipeline.synth import generate

    catalogue_dir = tmp_path / "sop_models"
    shutil.copytree(get_settings().catalogue_dir, catalogue_dir)
    insts = load_institutions(catalogue_dir / "institutions.yaml")
    cals = load_calendars(catalogue_dir / "institutions.yaml")
    good = load_catalogue(catalogue_dir)
    result = generate(tmp_path / "log", institutions=[NGAWI, "bontang-bk"], cases=120, months=2, seed=3,
                      verify=False)
    conn = connect(tmp_path / "patuh.duckdb")
    for file in result.files:
        ingest_file(conn, file.path, institution_id=file.institution_id, sop_id=file.sop_id, catalogue=good,
                    calendars=insts)
    published = tmp_path / "published"
    first = run_compliance(conn, good, insts, cals, as_of=result.as_of, published_dir=published)
    assert not first.skipped

    def published_rows(sql: str) -> list[tuple[object, ...]]:
        pub = duckdb.connect(str(published / (published / "CURRENT").read_text().strip()), read_only=True)
        try:
            return pub.execute(sql).fetchall()
        finally:
            pub.close()

    bontang_sql = ("SELECT (SELECT count(*) FROM sops WHERE institution_id = 'bontang-bk'), "
                   "(SELECT count(*) FROM sop_steps WHERE sop_id LIKE 'bontang-bk/%'), "
                   "(SELECT list(DISTINCT run_id) FROM case_results WHERE institution_id = 'bontang-bk'), "
                   "(SELECT count(*) FROM case_results WHERE institution_id = 'bontang-bk')")
    before = published_rows(bontang_sql)[0]
    assert before[0] == 2 and before[1] > 0 and before[2] == [first.run_id] and before[3] > 0
    model_file = catalogue_dir / "bontang-bk" / "konseling-individu.yaml"
    model_file.write_text(model_file.read_text(encoding="utf-8") + "\nsteps: [oops\n", encoding="utf-8")
    broken = load_catalogue(catalogue_dir)
    assert broken.errors and "bontang-bk/konseling-individu" not in broken.models

    scoped = run_compliance(conn, broken, insts, cals, institution=NGAWI, as_of=result.as_of,
                            published_dir=published)
    assert scoped.skipped == {}  # a scoped run checks its institution only: nothing was left out
    assert published_rows(bontang_sql)[0] == before
    every = run_compliance(conn, broken, insts, cals, as_of=result.as_of, published_dir=published, full=True)
    assert every.skipped == {"bontang-bk": ["bontang-bk/konseling-individu.yaml"]}
    assert published_rows(bontang_sql)[0] == before  # kept whole: its SOPs, steps and results
    assert published_rows(f"SELECT DISTINCT run_id FROM case_results WHERE institution_id = '{NGAWI}'") == [
        (every.run_id,)]
    assert every.cases == published_rows(
        f"SELECT count(*) FROM case_results WHERE institution_id = '{NGAWI}'")[0][0]

    pub = duckdb.connect(str(published / (published / "CURRENT").read_text().strip()), read_only=True)
    last_month = pd.Timestamp(result.as_of).strftime("%Y-%m")
    report = institution_report(pub, "bontang-bk", parse_period(last_month), "id")
    assert "tidak diperiksa" in report["run_notes"]["held"] and "konseling-individu.yaml" in report["run_notes"][
        "held"]
    assert "held" not in institution_report(pub, NGAWI, parse_period(last_month), "id")["run_notes"]
    pub.close()
    src = queries.source(published)
    assert list(queries.held_institutions(src, queries.ALL, queries.Filters())["institution_id"]) == ["bontang-bk"]
    assert queries.held_institutions(src, queries.Grants.only([NGAWI]), queries.Filters()).empty
    # every page says so, to the users who may see that institution
    from dashboards import auth
    from dashboards.app import create_app
    from tests.test_dashboard import login, post_callback

    users = tmp_path / "users.yaml"
    auth.ensure_demo_users(users)
    app = create_app(published, users, secret_key=b"k" * 32)
    for user, sees in (("pengawas", True), ("kepala-rppsa", False)):
        client = app.server.test_client()
        login(client, user)
        page = json.dumps(post_callback(client, app, ["app-root"], [
            {"id": "url", "property": "pathname", "value": "/penyimpangan"},
            {"id": "url", "property": "search", "value": ""}]).get_json())
        assert ("tidak diperiksa pada analisis terakhir" in page and "konseling-individu.yaml" in page) is sees, user

    with pytest.raises(UserError, match="in bontang-bk's models"):
        run_compliance(conn, broken, insts, cals, institution="bontang-bk")
    with pytest.raises(UserError, match="in bontang-bk's models"):
        run_compliance(conn, broken, insts, cals, sop="bontang-bk/pengaduan")
    only_bontang = {k: v for k, v in insts.items() if k == "bontang-bk"}
    with pytest.raises(UserError, match=r"error\(s\); run 'patuh sop validate'"):  # nothing left to check
        run_compliance(conn, broken, only_bontang, cals)
    conn.close()
    # the command publishes the others' results, says which institution it left out, and exits 1 for scripts
    env = {**os.environ, "PATUH_SOP_DIR": str(catalogue_dir), "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--db", str(tmp_path / "patuh.duckdb")],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())
    assert said.index("Peringatan: lembaga bontang-bk tidak diperiksa") < said.index(
        "Warning: institution bontang-bk was not checked") and "Traceback" not in said
    assert "Diterbitkan / published" in done.stdout


def test_rare_texts_outside_the_sop_are_not_copied_into_results(tmp_path: Path, catalogue: Catalogue) -> None:
    """QA (privacy): a note typed into the activity, role or documents column ("Konseling lanjutan dgn <a
    child's name> (hamil)") was published in deviations and variants and printed in the report. A text outside
    the SOP is written into results only when at least 5 cases of the institution use it (then it names a
    kind of work); a rarer one, or a recorded document that is no kelengkapan, is replaced."""
    from pipeline.public_texts import OTHER_ACTIVITY, OTHER_DOCUMENT

    conn = new_db(tmp_path / "patuh.duckdb")
    add_batch(conn, 1, BASE)
    note = "Konseling lanjutan dgn Siti Zqx (hamil)"
    for i in range(5):
        add_case(conn, catalogue, f"rapat-{i}", ["s1", "s2", "s3", "Rapat koordinasi", "s6"])
    for i in range(2):
        add_case(conn, catalogue, f"note-{i}", ["s1", "s2", "s3", note, "s6"])
    add_case(conn, catalogue, "role", ["s1", "s2", "s3", "s6"], role="bu rahayu zqx (guru bk)")
    add_case(conn, catalogue, "siswa", ["s1", "s2", "s3", "s6"], role="siswa")
    add_case(conn, catalogue, "docs", ["s1", "s2", "s3", "s6"], documents=True)
    conn.execute("UPDATE events SET documents = ['Laporan dr ortu Siti Zqx'] WHERE case_id = 'docs' AND step_id = 's1'")
    published = tmp_path / "published"
    _run(conn, catalogue, published_dir=published)
    rows = conn.execute("SELECT case_id, kind, activity, observed, detail->>'role' FROM deviations "
                        "WHERE kind IN ('unexpected_step', 'wrong_role', 'missing_document') "
                        "ORDER BY case_id, kind").fetchall()
    by_case = {(r[0], r[1]): r[2:] for r in rows}
    assert by_case[("rapat-0", "unexpected_step")][:2] == ("Rapat koordinasi", "Rapat koordinasi")
    assert by_case[("note-0", "unexpected_step")][:2] == (OTHER_ACTIVITY, OTHER_ACTIVITY)
    assert by_case[("role", "wrong_role")][1:] == (OTHER_ROLE, OTHER_ROLE)
    assert by_case[("siswa", "wrong_role")][1] == "siswa"  # another role of the SOP is named
    assert by_case[("docs", "missing_document")][1] == OTHER_DOCUMENT
    steps = {tuple(r[0]) for r in conn.execute("SELECT steps FROM variants").fetchall()}
    assert ("s1", "s2", "s3", "?" + OTHER_ACTIVITY, "s6") in steps
    assert ("s1", "s2", "s3", "?Rapat koordinasi", "s6") in steps
    # a label used by a fifth case, loaded later, is named from then on; counted once, then kept as common
    for i in range(4):
        add_case(conn, catalogue, f"wali-{i}", ["s1", "s2", "s3", "Rapat wali murid", "s6"])
    later = dt.datetime.now(dt.UTC)
    _run(conn, catalogue, published_dir=published, full=True)
    add_batch(conn, 2, later + dt.timedelta(seconds=1))
    add_case(conn, catalogue, "wali-4", ["s1", "s2", "s3", "Rapat wali murid", "s6"], batch_id=2)
    conn.execute("UPDATE batches SET loaded_at = ? WHERE batch_id = 2", [later + dt.timedelta(seconds=1)])
    assert _run(conn, catalogue, published_dir=published).mode == "incremental"
    named = dict(conn.execute("SELECT case_id, activity FROM deviations WHERE case_id LIKE 'wali-%' "
                              "AND kind = 'unexpected_step'").fetchall())
    assert named["wali-4"] == "Rapat wali murid" and named["wali-0"] == OTHER_ACTIVITY  # kept until a full run
    assert conn.execute("SELECT count(*) FROM public_texts WHERE text = 'Rapat wali murid'").fetchall() == [(1,)]
    conn.close()
    for path in [*published.glob("*.duckdb"), *published.glob(".*spare")]:
        assert b"Zqx" not in path.read_bytes() and b"zqx" not in path.read_bytes(), path
