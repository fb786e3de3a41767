"""Control-flow conformance: variants, the alignment cache, and deviations derived from alignment moves.

Cases are grouped by (model, variant): a variant is the case's sequence of step ids (events ordered by
``ts_end``, then source row; an activity that is not a step of the SOP appears as ``?<activity>``). Each
distinct variant is aligned once and cached in ``alignment_cache`` by (model hash, variant hash), so a rerun
costs only new variants. SOP nets are state machines and are aligned by an exact Dijkstra search with
pm4py's standard costs (:func:`pipeline.pm4py_adapter.align_state_machine`); safe nets with concurrency by
the A* of :mod:`pipeline.net_align`; any other net goes to pm4py.

Deviation rule (from one optimal alignment's moves; silent moves are ignored):

* a label with both a log move and a visible model move is ``wrong_order`` of that step (once per step);
* every other visible model move is ``missing_step``;
* every other log move on a step that also has a synchronous move in the case is ``repeated_step``;
* every other log move is ``unexpected_step`` (``step_id`` is NULL when the activity is no step of the SOP).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import duckdb
import pandas as pd

from pipeline import pm4py_adapter
from pipeline.net_align import NetAligner
from pipeline.pm4py_adapter import SKIP, AlignmentResult, ProcessModel
from pipeline.public_texts import OTHER_ACTIVITY, rare_texts
from pipeline.sop import SopModel

ALIGNER_VERSION = "sm1"
UNKNOWN_PREFIX = "?"
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs a function over work items; a distributed engine (Ray, Dask) can implement the same.

    ``on_done(k)`` is called with the number of items finished so far, in order, as results arrive.
    """

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            on_done: Callable[[int], None] | None = None) -> list[R]: ...


def _collect(results: Iterable[R], on_done: Callable[[int], None] | None) -> list[R]:
    out: list[R] = []
    for result in results:
        out.append(result)
        if on_done is not None:
            on_done(len(out))
    return out


class SerialExecutor:
    def map(self, fn: Callable[[T], R], items: Sequence[T],
            on_done: Callable[[int], None] | None = None) -> list[R]:
        return _collect((fn(item) for item in items), on_done)


class PoolExecutor:
    """A local process pool; small batches stay in-process (a pool costs ~0.3 s to start)."""

    def __init__(self, workers: int = 2, min_items: int = 400) -> None:
        self.workers = workers
        self.min_items = min_items

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            on_done: Callable[[int], None] | None = None) -> list[R]:
        if self.workers <= 1 or len(items) < self.min_items:
            return SerialExecutor().map(fn, items, on_done)
        chunk = max(1, len(items) // (self.workers * 8))
        with ProcessPoolExecutor(self.workers) as pool:
            return _collect(pool.map(fn, items, chunksize=chunk), on_done)


@dataclass(frozen=True)
class Deviation:
    kind: str
    step_id: str | None
    activity: str | None
    expected: str | None
    observed: str | None
    position: int  # 0-based index into the trace (the event it is attached to; len(trace) = case end)


def variant_hash(trace: Sequence[str]) -> str:
    return hashlib.sha1("\x1f".join(trace).encode("utf-8")).hexdigest()[:16]


def model_hash(model: SopModel) -> str:
    return f"{ALIGNER_VERSION}:{model.content_hash()}"


def deviations_from_moves(moves: Sequence[tuple[str, str | None]], step_ids: Iterable[str]) -> list[Deviation]:
    """Apply the module's deviation rule to one alignment."""
    steps = set(step_ids)
    log_moves: list[tuple[int, str]] = []
    model_moves: list[tuple[int, str]] = []
    synced: set[str] = set()
    position = 0
    for log_label, model_label in moves:
        if log_label != SKIP and model_label is not None and model_label != SKIP:
            synced.add(log_label)
            position += 1
        elif log_label != SKIP:
            log_moves.append((position, log_label))
            position += 1
        elif model_label is not None:
            model_moves.append((position, model_label))
    moved = {label for _, label in log_moves} & {label for _, label in model_moves}
    out: list[Deviation] = []
    for label in sorted(moved):
        pos = next(p for p, lab in log_moves if lab == label)
        out.append(Deviation("wrong_order", label, label, "urutan SOP", "di luar urutan", pos))
    for pos, label in model_moves:
        if label not in moved:
            out.append(Deviation("missing_step", label, label, label, None, pos))
    for pos, label in log_moves:
        if label in moved:
            continue
        if label in synced:
            out.append(Deviation("repeated_step", label, label, label, f"{label} (ulang)", pos))
        elif label in steps:
            out.append(Deviation("unexpected_step", label, label, None, label, pos))
        else:
            activity = label[len(UNKNOWN_PREFIX):] if label.startswith(UNKNOWN_PREFIX) else label
            out.append(Deviation("unexpected_step", None, activity, None, activity, pos))
    return out


# ---------------------------------------------------------------------------------------------------
# Aligning distinct variants
# ---------------------------------------------------------------------------------------------------

# per process: the aligner of each model key (None: pm4py aligns that model)
_WORKER_MODELS: dict[str, pm4py_adapter.StateMachine | NetAligner | None] = {}


def _aligner(key: str, model: ProcessModel) -> pm4py_adapter.StateMachine | NetAligner | None:
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = pm4py_adapter.as_state_machine(model) or pm4py_adapter.as_net_aligner(model)
    return _WORKER_MODELS[key]


def _align_job(job: tuple[str, ProcessModel, tuple[str, ...], bool]) -> AlignmentResult:
    key, model, trace, is_open = job
    aligner = _aligner(key, model)
    if isinstance(aligner, pm4py_adapter.StateMachine):
        return pm4py_adapter.align_state_machine(aligner, trace, prefix=is_open)
    if aligner is not None:
        return pm4py_adapter.align_net(aligner, model, trace)
    return pm4py_adapter.align_variants(model, [trace])[0]


def align_all(key: str, model: ProcessModel, variants: Sequence[tuple[str, ...]],
              executor: Executor | None = None, open_flags: Sequence[bool] | None = None,
              on_done: Callable[[int], None] | None = None) -> list[AlignmentResult]:
    """Align variants of one model: state machines by a Dijkstra search, safe nets by
    :class:`pipeline.net_align.NetAligner` (both in the executor), any other net by pm4py in one call.

    ``open_flags`` marks variants of open cases, aligned as prefixes (state machines only; the A* and
    pm4py's alignments have no prefix mode, so other nets align open cases as complete).
    """
    aligner = _aligner(key, model)
    if aligner is None:
        results = pm4py_adapter.align_variants(model, variants)
        if on_done is not None:
            on_done(len(results))
        return results
    if isinstance(aligner, NetAligner) and isinstance(executor, PoolExecutor):
        # an A* alignment costs milliseconds, not microseconds: a pool pays off from a few dozen variants
        executor = PoolExecutor(executor.workers, min_items=32)
    flags = list(open_flags) if open_flags is not None else [False] * len(variants)
    jobs = [(key, model, tuple(v), f) for v, f in zip(variants, flags, strict=True)]
    return (executor or SerialExecutor()).map(_align_job, jobs, on_done)


# ---------------------------------------------------------------------------------------------------
# The run stage
# ---------------------------------------------------------------------------------------------------


@dataclass
class ConformanceStats:
    cases: int = 0
    variants: int = 0
    aligned: int = 0
    from_cache: int = 0
    fitting_variants: int = 0


def check_conformance(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    models: dict[str, SopModel],
    *,
    case_filter: str = "TRUE",
    executor: Executor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    events: str = "events",
) -> ConformanceStats:
    """Align every case's variant; write the control-flow deviations into ``run_deviations``.

    ``events``: the table the cases' events are read from (an incremental run passes its changed cases' events).

    Leaves temp tables ``run_variants`` (variant -> steps, fitness, cost) and ``run_case_variants``
    (case -> variant, fitness, cost) for the later stages.
    """
    stats = ConformanceStats()
    # an activity outside the SOP that may be a note about a person is not named (public_texts.py)
    rare = rare_texts(conn, "activity", f"SELECT institution_id, activity AS text FROM {events} e "
                                        f"WHERE step_id IS NULL AND sop_id IN (SELECT sop_id FROM run_models) "
                                        f"AND {case_filter}")
    # one statement: the traces are not stored on their own (a temp table of lists costs its writing).
    # An open case is aligned as a prefix, so it is a different variant from the same closed sequence.
    # Every activity outside the model is a log move whatever its label, so replacing a rare label changes
    # no alignment cost.
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE run_trace_variants AS
        SELECT t.*, coalesce(c.status = 'open', FALSE) AS is_open,
               substr(sha1(array_to_string(t.trace, chr(31))
                           || CASE WHEN c.status = 'open' THEN chr(30) || 'open' ELSE '' END), 1, 16) AS variant_hash
        FROM (SELECT institution_id, sop_id, case_id,
                     list(CASE WHEN step_id IS NOT NULL THEN step_id
                               WHEN list_contains($rare, institution_id || chr(31) || activity)
                               THEN '{UNKNOWN_PREFIX}{OTHER_ACTIVITY}'
                               ELSE '{UNKNOWN_PREFIX}' || activity END ORDER BY ts_end, source_row) AS trace,
                     list(ts_end ORDER BY ts_end, source_row) AS times
              FROM {events} e
              WHERE sop_id IN (SELECT sop_id FROM run_models) AND {case_filter}
              GROUP BY ALL) t
        LEFT JOIN cases c USING (institution_id, sop_id, case_id)
        """, {"rare": rare}
    )
    distinct = conn.execute(
        "SELECT v.sop_id, m.model_hash, v.variant_hash, any_value(v.trace) AS trace, count(*) AS n, "
        "any_value(v.is_open) AS is_open "
        "FROM run_trace_variants v JOIN run_models m USING (sop_id) "
        "GROUP BY ALL ORDER BY v.sop_id, v.variant_hash"
    ).df()
    stats.cases = int(distinct["n"].sum()) if len(distinct) else 0
    stats.variants = len(distinct)
    cached = conn.execute(
        "SELECT c.model_hash, c.variant_hash, c.cost, c.fitness, c.moves FROM alignment_cache c "
        "JOIN (SELECT DISTINCT m.model_hash, v.variant_hash FROM run_trace_variants v JOIN run_models m "
        "USING (sop_id)) k USING (model_hash, variant_hash)"
    ).fetchall()
    results: dict[tuple[str, str], AlignmentResult] = {
        (mh, vh): AlignmentResult(int(cost), float(fit), [tuple(m) for m in json.loads(moves)])
        for mh, vh, cost, fit, moves in cached
    }
    stats.from_cache = len(results)
    pending = [(mh, vh) not in results for mh, vh in zip(distinct["model_hash"], distinct["variant_hash"],
                                                         strict=True)]
    todo = distinct[pd.Series(pending, index=distinct.index, dtype=bool)]
    done = 0
    new_rows: list[tuple[str, str, int, float, str]] = []
    for sop_id, group in todo.groupby("sop_id", sort=True):
        model = models[str(sop_id)]
        traces = [tuple(t) for t in group["trace"]]
        compiled = pm4py_adapter.compile_sop(model)
        aligned = align_all(model_hash(model), compiled, traces, executor, list(group["is_open"]))
        for mh, vh, res in zip(group["model_hash"], group["variant_hash"], aligned, strict=True):
            results[(mh, vh)] = res
            new_rows.append((mh, vh, res.cost, res.fitness, json.dumps(res.moves)))
        done += len(group)
        if on_progress:
            on_progress(done, len(todo))
    stats.aligned = len(new_rows)
    if new_rows:  # one bulk insert: executemany costs milliseconds per row in DuckDB
        conn.register("cache_df", pd.DataFrame(new_rows, columns=["model_hash", "variant_hash", "cost", "fitness",
                                                                  "moves"]))
        conn.execute("INSERT OR IGNORE INTO alignment_cache SELECT * FROM cache_df")
        conn.unregister("cache_df")

    variant_rows = []
    deviation_rows = []
    for sop_id, mh, vh, trace, n, _ in distinct.itertuples(index=False):
        res = results[(mh, vh)]
        variant_rows.append((run_id, str(sop_id), vh, list(trace), int(n), res.fitness, res.cost))
        if res.cost < pm4py_adapter.MOVE_COST:
            stats.fitting_variants += 1
            continue
        for dev in deviations_from_moves(res.moves, models[str(sop_id)].step_ids):
            deviation_rows.append((str(sop_id), vh, dev.kind, dev.step_id, dev.activity, dev.expected,
                                   dev.observed, dev.position))
    variants_df = pd.DataFrame(variant_rows, columns=["run_id", "sop_id", "variant_hash", "steps", "n_cases",
                                                      "fitness", "cost"])
    devs_df = pd.DataFrame(deviation_rows, columns=["sop_id", "variant_hash", "kind", "step_id", "activity",
                                                    "expected", "observed", "position"])
    conn.register("variants_df", variants_df)
    conn.register("variant_devs_df", devs_df)
    conn.execute("CREATE OR REPLACE TEMP TABLE run_variants AS SELECT * FROM variants_df")
    conn.execute("CREATE OR REPLACE TEMP TABLE run_variant_devs AS SELECT * FROM variant_devs_df")
    conn.unregister("variants_df")
    conn.unregister("variant_devs_df")
    conn.execute(
        """
        CREATE OR REPLACE TEMP TABLE run_case_variants AS
        SELECT t.institution_id, t.sop_id, t.case_id, t.variant_hash, v.fitness, v.cost, len(t.trace) AS n_events
        FROM run_trace_variants t JOIN run_variants v USING (sop_id, variant_hash)
        """
    )
    conn.execute(
        """
        INSERT INTO run_deviations
        SELECT t.institution_id, t.sop_id, t.case_id, d.kind, d.step_id, d.activity, d.expected, d.observed,
               t.times[least(d.position + 1, len(t.times))] AS occurred_at,
               json_object('position', d.position + 1, 'variant', d.variant_hash) AS detail
        FROM run_trace_variants t JOIN run_variant_devs d USING (sop_id, variant_hash)
        """
    )
    return stats

