"""One compliance run: every case against its SOP, in one transaction, then published.

Stages: catalogue snapshot -> conformance (alignments per variant, cached) -> timing (steps, case standards,
stalled cases) -> roles and documents -> rule models -> deviations with severity -> case results -> bottlenecks
and step metrics. A failure anywhere rolls the whole run back; the previous results stay as they were.

Incremental runs: when the catalogue, the institutions and their calendars, the engine version and the run's
scope are unchanged since the last successful run (``runs.catalogue_hash``), only *dirty* cases (with events
from batches loaded since that run) are checked again, their events read once into ``run_events``; every other
open case is only judged again for stalling (that moves with ``as_of``); the rows of all other cases stay as
they were, each tagged with the run that wrote it. Aggregates: per-case sums, and the counts of working-time
values that the percentiles are read from, are updated from the dirty cases alone (bottlenecks.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline import __version__
from pipeline.calendars import Institution, WorkingCalendar
from pipeline.conformance import Executor, check_conformance, model_hash
from pipeline.db import sql_literal, transaction, vacuuming
from pipeline.errors import UserError
from pipeline.ingest import role_labels
from pipeline.publish import CASE_TABLES, RECORDED, Changes, publish
from pipeline.rules import check_roles_and_documents, check_rule_models
from pipeline.sop import Catalogue, SopModel, parse_time
from pipeline.timing import compute_timing

# the temp tables of the case keys an incremental run changes (made in run_compliance)
# Raised when what a run keeps for the next incremental one changes meaning (run_changes, the kept bottleneck
# sums): the first run after such an upgrade is full instead of building on what an older version kept.
# 2: run_dirty_known holds every dirty case with events loaded before, also those no run checked.
# 3: the per-month step rows carry how many values their percentiles come from (n_wait, n_proc).
# 4: an event's role text is matched again at run time with the SOP's role names (kept wrong_role rows are stale).
# 5: rare texts outside the SOPs are not named in results (public_texts.py): kept rows may still name them.
STATE_REVISION = 5
RUN_CHANGES = Changes(dirty="run_dirty", dirty_known="run_dirty_known", restated="run_open",
                      rejudged="run_rejudged")
# the tables whose rows a run deletes in part: its commit packs them when enough piled up (db.vacuuming)
VACUUMED_TABLES = (*CASE_TABLES, "run_changes")
# Documented default severity per deviation kind; a step's or model's `severity` overrides it.
DEFAULT_SEVERITY = {
    "missing_step": "high",
    "unexpected_step": "medium",
    "wrong_order": "medium",
    "repeated_step": "low",
    "overdue_step": "medium",
    "case_sla_breach": "high",
    "wrong_role": "medium",
    "missing_document": "medium",
    "stalled_case": "high",
    "rule_breach": "medium",
}


@dataclass
class RunSummary:
    run_id: str
    mode: str  # full | incremental
    cases: int = 0
    cases_checked: int = 0
    open_restated: int = 0  # open cases without new events whose stall status was judged again
    compliant: int = 0
    compliance_rate: float | None = None
    deviations: dict[str, int] = field(default_factory=dict)
    variants: int = 0
    aligned: int = 0
    from_cache: int = 0
    documents_recorded: bool = False
    rules_checked: int = 0
    rules_without_input: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    published: str | None = None
    vacuumed: bool = False  # deleted rows were packed away at this run's commit (db.vacuuming)
    # institutions not checked because their SOP files have errors -> those files; their results stay as they were
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


@contextmanager
def _stage(summary: RunSummary, name: str, progress: Callable[[str], None] | None) -> Iterator[None]:
    if progress:
        progress(name)
    start = time.perf_counter()
    yield
    summary.stage_seconds[name] = round(time.perf_counter() - start, 3)
    _test_pause(name)


def _test_pause(stage: str) -> None:
    """Test hook: ``PATUH_TEST_PAUSE=<stage>:<marker file>`` parks the run after that stage (kill tests)."""
    spec = os.environ.get("PATUH_TEST_PAUSE", "")
    if spec.partition(":")[0] == stage:
        Path(spec.partition(":")[2]).write_text(stage, encoding="utf-8")
        time.sleep(120)



def snapshot_catalogue(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue,
                       institutions: dict[str, Institution], *, held: Set[str] = frozenset()) -> None:
    """Refresh the catalogue tables the dashboard and reports read.

    The institutions in ``held`` have SOP files with errors: their SOPs keep the rows of the last snapshot,
    which their results (kept as they were) refer to; their models that do load are not taken either, so
    the snapshot of an institution is always one whole catalogue folder."""
    conn.execute("DELETE FROM institutions")
    for table in ("sops", "sop_steps", "sop_edges"):
        conn.execute(f"DELETE FROM {table} WHERE NOT list_contains(?, split_part(sop_id, '/', 1))", [sorted(held)])
    frames = {
        "institutions": pd.DataFrame([(i.id, i.name, i.kind, i.region, i.timezone) for i in institutions.values()]),
    }
    sops, steps, edges = [], [], []
    for sop_id, model in sorted(catalogue.models.items()):
        if model.institution in held:
            continue
        sops.append((sop_id, model.institution, model.number, model.title, model.kind,
                     len(model.steps) or len(model.rules), model.case_time, model_hash(model),
                     model.model_dump_json(by_alias=True)))
        for i, step in enumerate(model.steps):
            std = parse_time(step.time, model.clock)
            label = model.roles[step.role].label if step.role else None
            steps.append((sop_id, step.id, i, step.no, step.activity, step.role, label, step.documents,
                          step.time, None if std is None else std.measure, None if std is None else std.minimum,
                          None if std is None else std.maximum, step.optional, step.repeat))
        if model.steps:
            edges.append((sop_id, "start", model.steps[0].id))
            for src, targets in model.successors().items():
                edges.extend((sop_id, src, dst) for dst in targets)
                if model.step(src).repeat:
                    edges.append((sop_id, src, src))
    frames["sops"] = pd.DataFrame(sops)
    frames["sop_steps"] = pd.DataFrame(steps)
    frames["sop_edges"] = pd.DataFrame(edges)
    for table, frame in frames.items():
        if frame.empty:
            continue
        conn.register("snapshot_df", frame)
        conn.execute(f"INSERT INTO {table} SELECT * FROM snapshot_df")
        conn.unregister("snapshot_df")


def _prepare_temp_tables(conn: duckdb.DuckDBPyConnection, models: dict[str, SopModel]) -> None:
    conn.execute("CREATE OR REPLACE TEMP TABLE run_models (sop_id VARCHAR, model_hash VARCHAR)")
    procedures = pd.DataFrame([(sid, model_hash(m)) for sid, m in models.items() if m.kind == "procedure"],
                              columns=["sop_id", "model_hash"])
    rows = []
    for sop_id, model in models.items():
        names = role_labels(model, None)
        for step in model.steps:
            allowed = [r for r in [step.role, *step.co_roles] if r]
            # what an event's role may read: a key, or a text ingest did not know that names an allowed role
            accepted = sorted({*allowed, *(text for text, key in names.items() if key in allowed)})
            rows.append((sop_id, step.id, step.activity, step.role, allowed,
                         [model.roles[r].label for r in allowed], accepted, step.documents, step.time,
                         step.severity or model.severity))
    steps = pd.DataFrame(rows, columns=["sop_id", "step_id", "activity", "role", "allowed_roles", "allowed_labels",
                                        "accepted_roles", "documents", "time_raw", "severity"])
    # role texts that name a role of one of the institution's SOPs: results may always name them (public_texts.py)
    known_roles = pd.DataFrame(sorted({(m.institution, text) for m in models.values()
                                       for text in [*m.roles, *role_labels(m, None)]}),
                               columns=["institution_id", "text"])
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE run_steps (sop_id VARCHAR, step_id VARCHAR, activity VARCHAR, role VARCHAR,"
        " allowed_roles VARCHAR[], allowed_labels VARCHAR[], accepted_roles VARCHAR[], documents VARCHAR[],"
        " time_raw VARCHAR, severity VARCHAR)"
    )
    conn.execute("CREATE OR REPLACE TEMP TABLE run_known_roles (institution_id VARCHAR, text VARCHAR)")
    for table, frame in (("run_models", procedures), ("run_steps", steps), ("run_known_roles", known_roles)):
        if len(frame):
            conn.register("prep_df", frame)
            conn.execute(f"INSERT INTO {table} SELECT * FROM prep_df")
            conn.unregister("prep_df")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE run_rule_cases (institution_id VARCHAR, sop_id VARCHAR, case_id VARCHAR,"
        " opened_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, n_events BIGINT)"
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE run_deviations (institution_id VARCHAR, sop_id VARCHAR, case_id VARCHAR,"
        " kind VARCHAR, step_id VARCHAR, activity VARCHAR, expected VARCHAR, observed VARCHAR,"
        " occurred_at TIMESTAMPTZ, detail JSON)"
    )


def _held_institutions(catalogue: Catalogue, institution: str | None, sop: str | None,
                       institutions: dict[str, Institution]) -> dict[str, list[str]]:
    """The institutions whose catalogue folder has SOP files with errors -> those files.

    A run leaves them out and keeps their results as they were: a new SOP with a mistake, written for one
    school, must not stop every other school's run. An error outside the folders (institutions.yaml) stops
    every run, and so does one in the folder of the institution or SOP the run is asked for, or in every
    institution's folder."""
    held: dict[str, list[str]] = {}
    blocking = []
    for problem in catalogue.errors:
        parts = Path(problem.file).parts
        if len(parts) > 1:
            held.setdefault(parts[0], [])
            if problem.file not in held[parts[0]]:
                held[parts[0]].append(problem.file)
        else:
            blocking.append(problem)
    wanted = institution or (sop.partition("/")[0] if sop else None)
    if wanted is not None:
        blocking += [p for p in catalogue.errors if Path(p.file).parts[0] == wanted]
    elif held and not set(institutions) - set(held):
        blocking = catalogue.errors
    if blocking:
        where = f" in {wanted}'s models" if wanted and not any(len(Path(p.file).parts) == 1 for p in blocking) else ""
        di = f" pada model {wanted}" if where else ""
        raise UserError(f"the SOP catalogue has {len(blocking)} error(s){where}; run 'patuh sop validate'",
                        pesan=f"katalog SOP berisi {len(blocking)} galat{di}; jalankan 'patuh sop validate'")
    return held


def _last_checked(conn: duckdb.DuckDBPyConnection, institution: str) -> str | None:
    """The ``as_of`` of the last successful run that checked ``institution`` (ISO), or None."""
    row = conn.execute(
        """SELECT params->>'as_of' FROM runs
           WHERE status = 'ok' AND coalesce(params->'scope'->>'institution', $i) = $i
             AND coalesce(split_part(params->'scope'->>'sop', '/', 1), $i) = $i
             AND NOT coalesce(list_contains(from_json(params->'scope'->'skipped', '["VARCHAR"]'), $i), FALSE)
           ORDER BY finished_at DESC LIMIT 1""", {"i": institution}).fetchone()
    return None if row is None else str(row[0])


def _previous_run(conn: duckdb.DuckDBPyConnection) -> tuple[str, dt.datetime, str, Any] | None:
    rows = conn.execute(
        "SELECT run_id, started_at, catalogue_hash, params FROM runs WHERE status = 'ok' "
        "ORDER BY finished_at DESC LIMIT 1").fetchall()
    return None if not rows else (rows[0][0], rows[0][1], rows[0][2], rows[0][3])


def run_compliance(
    conn: duckdb.DuckDBPyConnection,
    catalogue: Catalogue,
    institutions: dict[str, Institution],
    calendars: dict[str, WorkingCalendar],
    *,
    institution: str | None = None,
    sop: str | None = None,
    as_of: dt.datetime | None = None,
    full: bool = False,
    executor: Executor | None = None,
    progress: Callable[[str], None] | None = None,
    published_dir: Path | None = None,
    fail_after_stage: str | None = None,
) -> RunSummary:
    """Check every case (or the dirty ones) and write one run's results in one transaction."""
    held = _held_institutions(catalogue, institution, sop, institutions)
    if institution and institution not in institutions:
        raise UserError(f"unknown institution '{institution}'; known: {', '.join(sorted(institutions))}",
                        pesan=f"lembaga '{institution}' tidak dikenal; yang dikenal: {', '.join(sorted(institutions))}")
    if sop and sop not in catalogue.models:
        raise UserError(f"unknown SOP '{sop}'; see 'patuh sop list'",
                        pesan=f"SOP '{sop}' tidak dikenal; lihat 'patuh sop list'")
    as_of = as_of or dt.datetime.now(dt.UTC)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    models = {sid: m for sid, m in catalogue.models.items()
              if (sop is None or sid == sop) and (institution is None or m.institution == institution)
              and m.institution not in held}
    missing_cal = {m.institution for m in models.values()} - set(calendars)
    if missing_cal:
        raise UserError(f"institution(s) {', '.join(sorted(missing_cal))} have SOP models but no calendar in "
                        "institutions.yaml",
                        pesan=f"lembaga {', '.join(sorted(missing_cal))} memiliki model SOP tetapi tidak memiliki "
                              "kalender di institutions.yaml")
    # what the results mean: the SOP models, the institutions and their working-time calendars (a new holiday
    # changes durations) and the engine's version (its rules) and kept state; a change in any makes the run full
    setup_hash = hashlib.sha256(
        (f"{__version__}|{STATE_REVISION}|{catalogue.content_hash()}"
         + "".join(f"|{k}:{institutions[k].model_dump_json()}" for k in sorted(institutions))
         + "".join(f"|{k}:{calendars[k].content_hash()}" for k in sorted(calendars))).encode()).hexdigest()[:16]
    run_id = new_run_id()
    params: dict[str, Any] = {"institution": institution, "sop": sop, "as_of": as_of.isoformat()}
    scope_params: dict[str, Any] = {"institution": institution, "sop": sop}
    skipped = sorted(held) if institution is None else []  # a scoped run never checks other institutions
    if skipped:
        scope_params["skipped"] = skipped
        # what the reports of a skipped institution say: which files, and when it was last checked
        params["held"] = {i: {"files": held[i], "checked_as_of": _last_checked(conn, i)} for i in skipped}
    previous = _previous_run(conn)
    incremental = (
        not full and previous is not None and previous[2] == setup_hash
        and json.loads(previous[3] or "{}").get("scope") == scope_params
        # a batch taken out since (patuh unload): an incremental run only sees what was added
        and not conn.execute("SELECT count(*) FROM batch_removals WHERE removed_at >= ?",
                             [previous[1]]).fetchall()[0][0]
    )
    summary = RunSummary(run_id, "incremental" if incremental else "full",
                         skipped={i: held[i] for i in skipped})
    started = dt.datetime.now(dt.UTC)

    with vacuuming(conn, VACUUMED_TABLES) as summary.vacuumed, transaction(conn):
        base_run = previous[0] if incremental and previous else None  # the run this one starts from
        conn.execute("INSERT INTO runs VALUES (?, ?, NULL, 'running', ?, ?, ?, NULL)",
                     [run_id, started, setup_hash,
                      json.dumps({**params, "scope": scope_params, "base_run": base_run}), __version__])
        with _stage(summary, "catalogue", progress):
            if not incremental:  # same setup hash: the snapshot tables already hold this catalogue
                snapshot_catalogue(conn, catalogue, institutions, held=set(held))
            _prepare_temp_tables(conn, models)
        scope_filter = _scope_sql("e", institution, sop, skipped)
        case_filter = stall_filter = scope_filter
        events = "events"  # where the checked cases' events are read from
        if incremental and previous is not None:
            with _stage(summary, "dirty", progress):
                _changed_events(conn, previous[1], scope_filter)
                # open cases without new events: only their stall status moves (with as_of)
                conn.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE run_open AS
                    SELECT c.institution_id, c.sop_id, c.case_id FROM cases c
                    WHERE c.status = 'open' AND {_scope_sql("c", institution, sop, skipped)}
                      AND NOT EXISTS (SELECT 1 FROM run_dirty d WHERE d.institution_id = c.institution_id
                                      AND d.sop_id = c.sop_id AND d.case_id = c.case_id)
                    """
                )
                conn.execute("CREATE OR REPLACE TEMP TABLE run_touched AS "
                             "SELECT * FROM run_dirty UNION ALL SELECT * FROM run_open")
                events, case_filter = "run_events", "TRUE"
                stall_filter = scope_filter + _in_table("run_touched")
        with _stage(summary, "scope", progress):
            _clear_checked_rows(conn, incremental, scope_filter, models)
            if not incremental:  # counted again: an unloaded batch may have made a common text rare
                conn.execute(f"DELETE FROM public_texts e WHERE {_scope_sql('e', institution, None, skipped)}")
        with _stage(summary, "conformance", progress):
            conf = check_conformance(conn, run_id, models, case_filter=case_filter, executor=executor,
                                     events=events)
            summary.variants, summary.aligned, summary.from_cache = conf.variants, conf.aligned, conf.from_cache
            summary.cases_checked = conf.cases
        if fail_after_stage == "conformance":
            raise RuntimeError("injected failure (test)")
        with _stage(summary, "timing", progress):
            # this run's event_timing rows are appended after every row there now: a rowid bound finds them
            # without comparing the run id of every row (run ids of one day share the prefix zone maps keep)
            new_timing_from = int(conn.execute(
                "SELECT coalesce(max(rowid) + 1, 0) FROM event_timing").fetchall()[0][0])
            compute_timing(conn, run_id, models, calendars, as_of=as_of, case_filter=case_filter,
                           stall_filter=stall_filter, events=events)
        with _stage(summary, "rules", progress):
            role_stats = check_roles_and_documents(conn, case_filter=case_filter, events=events)
            summary.documents_recorded = role_stats.documents_recorded
            rule_stats = check_rule_models(conn, models, as_of=as_of.date())
            summary.rules_checked = rule_stats.rules_checked
            summary.rules_without_input = rule_stats.rules_without_input
        with _stage(summary, "results", progress):
            _write_deviations(conn, run_id)
            _write_case_results(conn, run_id, calendars, events, "run_dirty_cases" if incremental else "cases")
            if incremental:
                _restate_open_cases(conn, run_id)
                summary.open_restated = int(conn.execute("SELECT count(*) FROM run_open").fetchall()[0][0])
            _record_changes(conn, run_id, base_run)
            _write_variants(conn, run_id)
        with _stage(summary, "bottlenecks", progress):
            _bottlenecks(conn, run_id, calendars, base_run, new_timing_from)
            _drop_older_aggregates(conn, run_id)
        # the run's scope: `patuh run --institution X` reports X's cases, not the whole database's
        totals = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE compliant) FROM case_results e WHERE {scope_filter}"
        ).fetchall()[0]
        summary.cases, summary.compliant = int(totals[0]), int(totals[1])
        summary.compliance_rate = summary.compliant / summary.cases if summary.cases else None
        summary.deviations = dict(conn.execute(
            f"SELECT kind, count(*) FROM deviations e WHERE {scope_filter} GROUP BY kind ORDER BY kind").fetchall())
        conn.execute("UPDATE runs SET status = 'ok', finished_at = ?, summary = ? WHERE run_id = ?",
                     [dt.datetime.now(dt.UTC), summary.as_json(), run_id])
    if published_dir is not None:
        with _stage(summary, "publish", progress):
            summary.published = str(publish(conn, run_id, published_dir, base_run=base_run,
                                            changes=RUN_CHANGES if incremental else None))
        conn.execute("UPDATE runs SET summary = ? WHERE run_id = ?", [summary.as_json(), run_id])
    return summary


def _record_changes(conn: duckdb.DuckDBPyConnection, run_id: str, base_run: str | None) -> None:
    """Keep an incremental run's changed case keys beside its base run's (publish.py replays both)."""
    conn.execute("DELETE FROM run_changes WHERE changed_in IS DISTINCT FROM ?", [base_run])
    if base_run is not None:
        conn.execute("INSERT INTO run_changes " + " UNION ALL ".join(
            f"SELECT $run_id, '{change}', institution_id, sop_id, case_id FROM {getattr(RUN_CHANGES, change)}"
            for change in RECORDED), {"run_id": run_id})


def _write_deviations(conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """The run's deviations, each with its case's opening and closing (a student's first and last rule input):
    the dashboard selects a period's deviations by their case, as the reports count them, with a range on
    these instead of a join with every case result."""
    severity_case = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in DEFAULT_SEVERITY.items())
    conn.execute(
        f"""
        INSERT INTO deviations
        WITH keys AS (SELECT DISTINCT institution_id, sop_id, case_id FROM run_deviations),
        spans AS (
            SELECT institution_id, sop_id, case_id, min(opened_at) AS opened_at, max(closed_at) AS closed_at
            FROM (SELECT institution_id, sop_id, case_id, opened_at, closed_at FROM cases SEMI JOIN keys
                      USING (institution_id, sop_id, case_id)
                  UNION ALL
                  SELECT institution_id, sop_id, case_id, opened_at, closed_at FROM run_rule_cases)
            GROUP BY ALL)
        SELECT ?, d.institution_id, d.sop_id, d.case_id, d.kind, d.step_id, coalesce(s.activity, d.activity),
               d.expected, d.observed,
               coalesce(s.severity, CASE d.kind {severity_case} ELSE 'medium' END),
               d.occurred_at, d.detail, k.opened_at, k.closed_at
        FROM run_deviations d LEFT JOIN run_steps s USING (sop_id, step_id)
        LEFT JOIN spans k USING (institution_id, sop_id, case_id)
        ORDER BY d.kind = 'stalled_case'
        """,
        [run_id],
    )


def _write_case_results(conn: duckdb.DuckDBPyConnection, run_id: str,
                        calendars: dict[str, WorkingCalendar], events: str, cases: str) -> None:
    """One result row per checked case. Open cases are written last, and stall deviations after the others
    (:func:`_write_deviations`): every incremental run rewrites exactly these rows, and rows kept together
    in the last row groups make its deletes and updates, and the checkpoint after them, touch only those
    groups instead of every one (measured at 10M events: the checkpoint of the published copy took 1.0 s)."""
    frame = conn.execute(
        """
        SELECT v.institution_id, v.sop_id, v.case_id, c.opened_at, c.closed_at, v.fitness, v.cost, c.status,
               v.variant_hash, coalesce(n.n, 0) AS n_deviations,
               t.first_ts, t.last_ts
        FROM run_case_variants v
        JOIN (SELECT * FROM {cases} WHERE status IS NOT NULL) c USING (institution_id, sop_id, case_id)
        LEFT JOIN (SELECT institution_id, sop_id, case_id, count(*) AS n FROM run_deviations GROUP BY ALL) n
            USING (institution_id, sop_id, case_id)
        LEFT JOIN (SELECT institution_id, sop_id, case_id, min(coalesce(ts_start, ts_end)) AS first_ts,
                          max(ts_end) AS last_ts FROM {events} e WHERE TRUE{checked} GROUP BY ALL) t
            USING (institution_id, sop_id, case_id)
        """.replace("{checked}", _in_table("run_case_variants")).replace("{events}", events).replace("{cases}", cases)
    ).df()
    frame["lead_time_working"] = float("nan")
    for inst, part in frame.groupby("institution_id", sort=True):
        frame.loc[part.index, "lead_time_working"] = calendars[str(inst)].working_minutes(
            part["first_ts"], part["last_ts"])
    frame["lead_time_elapsed"] = (frame["last_ts"] - frame["first_ts"]).dt.total_seconds() / 60.0
    frame["run_id"] = run_id
    frame["compliant"] = frame["n_deviations"] == 0
    conn.register("case_df", frame)
    conn.execute(
        """
        INSERT INTO case_results
        SELECT run_id, institution_id, sop_id, case_id, opened_at, closed_at, fitness, cost, compliant,
               n_deviations, lead_time_working, lead_time_elapsed, status, variant_hash
        FROM case_df
        ORDER BY status = 'open'
        """
    )
    conn.unregister("case_df")
    # students checked against a rules model: one result row each, compliant without a breach
    conn.execute(
        """
        INSERT INTO case_results
        SELECT ?, r.institution_id, r.sop_id, r.case_id, r.opened_at, r.closed_at, NULL, NULL,
               coalesce(n.n, 0) = 0, coalesce(n.n, 0), NULL, NULL, 'closed', NULL
        FROM run_rule_cases r
        LEFT JOIN (SELECT institution_id, sop_id, case_id, count(*) AS n FROM run_deviations
                   WHERE kind = 'rule_breach' GROUP BY ALL) n USING (institution_id, sop_id, case_id)
        """,
        [run_id],
    )


def _changed_events(conn: duckdb.DuckDBPyConnection, since: dt.datetime, scope_filter: str) -> None:
    """``run_dirty``: the cases in scope with events loaded ``since``; ``run_events``: every event of them;
    ``run_dirty_cases``: their ``cases`` rows and how many of their events are new; ``run_dirty_known``: the
    dirty cases with events loaded before too (only they have rows to replace, in results and published cases).

    Each stage then reads these few rows instead of filtering the whole ``events`` or ``cases`` table again.
    The new batches' rows lie together at the table's end (batch ids grow with loading), so the scan skips the
    older row groups; older events are looked up only for cases that have some (``cases.n_events``).
    """
    new_batches = [int(r[0]) for r in conn.execute(
        "SELECT batch_id FROM batches WHERE loaded_at >= ? ORDER BY 1", [since]).fetchall()]
    in_new = (f"e.batch_id BETWEEN {new_batches[0]} AND {new_batches[-1]} AND e.batch_id IN "
              f"({', '.join(map(str, new_batches))})") if new_batches else "FALSE"
    conn.execute(f"CREATE OR REPLACE TEMP TABLE run_events AS SELECT * FROM events e WHERE {in_new} AND {scope_filter}")
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE run_dirty_cases AS
        SELECT r.institution_id, r.sop_id, r.case_id, r.n AS n_new, c.n_events, c.opened_at, c.closed_at, c.status
        FROM (SELECT institution_id, sop_id, case_id, count(*) AS n FROM run_events GROUP BY ALL) r
        LEFT JOIN cases c ON c.institution_id = r.institution_id AND c.sop_id = coalesce(r.sop_id, '')
            AND c.case_id = r.case_id""")
    conn.execute("CREATE OR REPLACE TEMP TABLE run_dirty AS "
                 "SELECT institution_id, sop_id, case_id FROM run_dirty_cases")
    conn.execute("CREATE OR REPLACE TEMP TABLE run_dirty_known AS SELECT institution_id, sop_id, case_id "
                 "FROM run_dirty_cases WHERE n_events IS DISTINCT FROM n_new")
    if conn.execute("SELECT count(*) FROM run_dirty_known").fetchall()[0][0]:
        conn.execute(f"INSERT INTO run_events SELECT * FROM events e WHERE NOT ({in_new}) AND {scope_filter}"
                     + _in_table("run_dirty_known"))


def _scope_sql(alias: str, institution: str | None, sop: str | None, skipped: Sequence[str] = ()) -> str:
    """SQL: the row aliased ``alias`` (events or cases) is in the run's scope (``--institution``, ``--sop``,
    not an institution skipped for its models' errors)."""
    sql = "TRUE"
    if skipped:
        sql += f" AND {alias}.institution_id NOT IN ({', '.join(sql_literal(i) for i in skipped)})"
    if institution:
        sql += f" AND {alias}.institution_id = {sql_literal(institution)}"
    if sop:
        sql += f" AND {alias}.sop_id = {sql_literal(sop)}"
    return sql


def _in_table(table: str, op: str = "AND") -> str:
    """SQL: the event or row aliased ``e`` belongs to a case listed in ``table``."""
    return (f" {op} EXISTS (SELECT 1 FROM {table} d WHERE d.institution_id = e.institution_id "
            "AND d.sop_id = e.sop_id AND d.case_id = e.case_id)")


def _restate_open_cases(conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Open cases without new events: recount their deviations (their stall status was judged again).

    Only their stall deviations changed: the ones this run wrote against those it deleted
    (``run_old_stalls``, :func:`_clear_checked_rows`) give each case's change in count. Only the results
    whose count changed are rewritten (``run_rejudged``, they then carry this run): at most a few cases
    cross the stall limit between runs, while every open case would be rewritten, in both files, if all were.
    """
    conn.execute(
        """
        CREATE OR REPLACE TEMP TABLE run_rejudged AS
        SELECT institution_id, sop_id, case_id, sum(change) AS change
        FROM (SELECT institution_id, sop_id, case_id, -1 AS change FROM run_old_stalls
              UNION ALL
              SELECT d.institution_id, d.sop_id, d.case_id, 1 FROM run_deviations d
              SEMI JOIN run_open USING (institution_id, sop_id, case_id) WHERE d.kind = 'stalled_case')
        GROUP BY ALL HAVING sum(change) <> 0
        """
    )
    conn.execute(
        """
        UPDATE case_results r SET n_deviations = r.n_deviations + j.change,
                                  compliant = r.n_deviations + j.change = 0, run_id = ?
        FROM run_rejudged j
        WHERE r.institution_id = j.institution_id AND r.sop_id = j.sop_id AND r.case_id = j.case_id
        """,
        [run_id],
    )


def _clear_checked_rows(conn: duckdb.DuckDBPyConnection, incremental: bool, scope_filter: str,
                        models: dict[str, SopModel]) -> None:
    """Delete the per-case results this run is about to write again (the rest stays current).

    Per-case tables hold one current row set per case: a full run replaces its scope, an incremental run
    only its dirty cases; rule models are always checked again. Everything happens inside the run's
    transaction, so a failed run leaves the previous rows untouched.
    """
    rule_sops = [sid for sid, m in models.items() if m.kind == "rules"]
    rule_list = ", ".join(sql_literal(s) for s in rule_sops) or "NULL"
    if incremental:  # the rows replaced: bottlenecks.py subtracts them from the previous run's sums
        conn.execute("CREATE OR REPLACE TEMP TABLE run_old_timing AS SELECT * FROM event_timing e WHERE TRUE"
                     + _in_table("run_dirty_known"))
    for table in CASE_TABLES:
        if incremental:  # two statements: an OR with a subquery would scan the table as a mark join
            conn.execute(f"DELETE FROM {table} e WHERE sop_id IN ({rule_list})")
            conn.execute(f"DELETE FROM {table} e WHERE TRUE" + _in_table("run_dirty_known"))
        else:
            conn.execute(f"DELETE FROM {table} e WHERE {scope_filter}")
    if incremental:  # the stall status of every other open case is judged again at this as_of
        # the deleted rows' keys: _restate_open_cases compares them with the new ones
        conn.register("old_stalls_df", conn.sql(
            f"DELETE FROM deviations e WHERE kind = 'stalled_case' {_in_table('run_open')} "
            "RETURNING institution_id, sop_id, case_id").to_arrow_table())
        conn.execute("CREATE OR REPLACE TEMP TABLE run_old_stalls AS SELECT * FROM old_stalls_df")
        conn.unregister("old_stalls_df")


def _drop_older_aggregates(conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Aggregates (step metrics, variants, bottlenecks) of earlier runs are superseded by this run's."""
    tables = [r[0] for r in conn.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = 'run_id' "
        "AND table_schema = 'main' AND table_catalog = current_database() AND table_name NOT LIKE 'latest_%' "
        "AND table_name <> 'runs'").fetchall()]
    for table in tables:
        if table not in CASE_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE run_id <> ?", [run_id])


def _write_variants(conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Variants over every current case (steps from this run's or the earlier variant rows)."""
    conn.execute(
        """
        CREATE OR REPLACE TEMP TABLE run_all_variant_steps AS
        SELECT sop_id, variant_hash, any_value(steps) AS steps, any_value(fitness) AS fitness
        FROM (SELECT sop_id, variant_hash, steps, fitness FROM run_variants
              UNION ALL SELECT sop_id, variant_hash, steps, fitness FROM variants)
        GROUP BY ALL
        """
    )
    conn.execute("DELETE FROM variants")
    conn.execute(
        """
        INSERT INTO variants
        SELECT ?, r.institution_id, r.sop_id, r.variant_hash, s.steps, r.n, s.fitness
        FROM (SELECT institution_id, sop_id, variant_hash, count(*) AS n FROM case_results GROUP BY ALL) r
        JOIN run_all_variant_steps s USING (sop_id, variant_hash)
        """,
        [run_id],
    )


def _bottlenecks(conn: duckdb.DuckDBPyConnection, run_id: str, calendars: dict[str, WorkingCalendar],
                 base_run: str | None, new_timing_from: int) -> None:
    from pipeline.bottlenecks import compute_bottlenecks

    compute_bottlenecks(conn, run_id, calendars=calendars, previous_run=base_run,
                        old_rows="run_old_timing" if base_run else None, new_rows_from=new_timing_from)
    # step metrics are the per-month bottleneck rows seen from the SOP table (share over: steps with a standard)
    conn.execute(
        """
        INSERT INTO step_metrics
        SELECT b.run_id, b.institution_id, b.sop_id, b.step_id, b.period, b.n, b.wait_p50, b.wait_p90,
               b.proc_p50, b.proc_p90, s.time_raw,
               CASE WHEN s.standard_max IS NOT NULL THEN b.n_over / b.n END, b.n_wait, b.n_proc
        FROM bottleneck_step_month b LEFT JOIN sop_steps s USING (sop_id, step_id)
        WHERE b.run_id = ?
        """,
        [run_id],
    )
