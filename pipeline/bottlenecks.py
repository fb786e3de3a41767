"""Bottleneck analytics: where cases wait, per step, role handover, week and month (SQL in DuckDB).

Everything starts from ``event_timing`` (one row per event mapped to a step, with ``wait_working`` = the
working minutes from the case's previous event to this one's start and ``proc_working`` = start to end).
:func:`compute_bottlenecks` writes, for one run, the ``bottleneck_*`` tables of schema.sql and the ranked
``bottlenecks`` table; :func:`rank_bottlenecks` ranks any :class:`Scope` (the reports use it for the cases
opened in a period).

Ranking rule: a step's *score* is the working time it costs the cases that pass it, in working minutes:
the total waiting time before the step (sum of ``wait_working``) plus the total time its executions ran
over the step's standard (``duration_std - standard_max`` for executions over the standard, converted to
working minutes: working days times the institution's working-day length, elapsed minutes times the share
of a calendar week that is working time). Steps are ranked by score (highest first), ties by the share of
cases over the standard and then by the step's position in the SOP; steps with a score of 0 are no
bottleneck and are left out. A step's role is the role most of its events name (ties: the first by name).

Percentiles are exact, with ``quantile_cont``'s linear interpolation (numpy's default), read from how often
each working-time value occurs per group (:data:`STATE_TABLES`): a run keeps those counts, and an incremental
run updates them from its changed cases instead of reading every event again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pipeline.calendars import WorkingCalendar

TOP_N = 10
# The kept sums' appended changes are added up once they grew the tables by this share. At 10M events a run
# with 1% new events appends 10% more rows, and adding them up takes 0.44 s: once in about 9 such runs.
COMPACT_GROWTH = 1.0
DEFAULT_WORKDAY_MINUTES = 420.0  # 7 hours, when an institution's calendar is unknown
DEFAULT_WORKDAYS_PER_WEEK = 5.0
TABLES = ("bottleneck_calendars", "bottleneck_step_month", "bottleneck_handovers", "bottleneck_wip",
          "bottleneck_rework", "bottleneck_role_resources", "bottleneck_role_load", "bottlenecks")


# ---------------------------------------------------------------------------------------------------
# Scope: which events are analysed
# ---------------------------------------------------------------------------------------------------


# Columns timing.py precomputes per event. Rows written without them (hand-made tests, files of older
# versions) get them from windows over the scope, which costs a sort of the whole scope.
_TZ = "coalesce(i.timezone, 'UTC')"
_CASE = "PARTITION BY t.institution_id, t.sop_id, t.case_id"
_CASE_STEP = "PARTITION BY t.institution_id, t.sop_id, t.case_id, t.step_id"
_DERIVED = {
    "local_start": f"timezone({_TZ}, t.ts_start)",
    "local_end": f"timezone({_TZ}, t.ts_end)",
    "local_prev_end": f"lag({{local_end}}) OVER ({_CASE} ORDER BY t.ts_end, t.ts_start)",
    "step_visit": f"row_number() OVER ({_CASE_STEP} ORDER BY t.ts_end, t.ts_start)",
    "step_visits": f"count(*) OVER ({_CASE_STEP})",
}
COMPLETE, PARTIAL, MISSING = "complete", "partial", "missing"


def stored_columns(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """For each precomputed column of ``event_timing``: complete, partial or missing.

    timing.py writes them all and ``step_visits`` is never NULL then; a row with it NULL was written
    otherwise, and every column is derived for it (a stored NULL ``local_prev_end`` is a first event).
    """
    present = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'event_timing' "
        "AND table_schema = 'main' AND table_catalog = current_database()").fetchall()}
    if set(_DERIVED) <= present and not conn.execute(
            "SELECT count(*) FROM event_timing WHERE step_visits IS NULL").fetchall()[0][0]:
        return dict.fromkeys(_DERIVED, COMPLETE)
    return {c: PARTIAL if c in present else MISSING for c in _DERIVED}


@dataclass(frozen=True)
class Scope:
    """One run's events, optionally only one institution's cases opened in ``[start, end)`` (local time)."""

    run_id: str
    institution_id: str | None = None
    start: dt.datetime | None = None  # naive local time
    end: dt.datetime | None = None
    table: str | None = None  # a temp table already holding this scope's rows (see compute_bottlenecks)

    def sql(self, stored: Mapping[str, str] | None = None) -> str:
        """A SELECT over ``event_timing`` with every column of ``_DERIVED`` (``stored``: see stored_columns)."""
        if self.table is not None:
            return f"SELECT * FROM {self.table}"
        # event_timing holds the current rows of every case (each tagged with the run that checked it)
        stored = stored or dict.fromkeys(_DERIVED, PARTIAL)
        local_end = "t.local_end" if stored["local_end"] == COMPLETE else (
            f"coalesce(t.local_end, {_DERIVED['local_end']})" if stored["local_end"] == PARTIAL
            else _DERIVED["local_end"])
        replace, add = [], []
        for column, expr in _DERIVED.items():
            expr = expr.replace("{local_end}", local_end)
            if stored[column] == PARTIAL:
                replace.append(f"coalesce(t.{column}, {expr}) AS {column}")
            elif stored[column] == MISSING:
                add.append(f"{expr} AS {column}")
        needs_tz = bool(replace or add) or (self.start is not None and self.end is not None)
        sql = "SELECT t.*" + (f" REPLACE ({', '.join(replace)})" if replace else "")
        sql += "".join(f", {a}" for a in add) + " FROM event_timing t"
        if needs_tz:
            sql += " LEFT JOIN institutions i ON i.institution_id = t.institution_id"
        sql += " WHERE TRUE"
        if self.institution_id is not None:
            sql += " AND t.institution_id = $institution_id"
        if self.start is not None and self.end is not None:
            sql += (" AND EXISTS (SELECT 1 FROM case_results c WHERE TRUE"
                    " AND c.institution_id = t.institution_id AND c.sop_id = t.sop_id"
                    " AND c.case_id = t.case_id"
                    f" AND timezone({_TZ}, c.opened_at) >= $start"
                    f" AND timezone({_TZ}, c.opened_at) < $end)")
        return sql

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"run_id": self.run_id}
        if self.institution_id is not None:
            params["institution_id"] = self.institution_id
        if self.start is not None and self.end is not None:
            params["start"] = self.start
            params["end"] = self.end
        return params


# excess over the standard in working minutes (see the module docstring); needs `cal` joined
_DAY, _WEEK = DEFAULT_WORKDAY_MINUTES, DEFAULT_WORKDAYS_PER_WEEK
_EXCESS = f"""CASE WHEN et.over_standard THEN greatest(et.duration_std - et.standard_max, 0) *
    CASE et.standard_measure
        WHEN 'working_minutes' THEN 1.0
        WHEN 'working_days' THEN coalesce(cal.workday_minutes, {_DAY})
        ELSE coalesce(cal.workday_minutes, {_DAY}) * coalesce(cal.workdays_per_week, {_WEEK}) / 10080.0
    END ELSE 0.0 END"""

_CAL = ("cal AS (SELECT institution_id, workday_minutes, workdays_per_week FROM bottleneck_calendars "
        "WHERE run_id = $run_id)")
_EVENTS = f"""et AS ({{scope}}),
{_CAL},
ev AS (SELECT et.*, coalesce(cal.workday_minutes, {DEFAULT_WORKDAY_MINUTES}) AS day_min,
              {_EXCESS} AS excess,
              date_trunc('month', et.local_end)::DATE AS month
       FROM et LEFT JOIN cal ON cal.institution_id = et.institution_id)"""

# Distinct cases without a distinct count over every row (DuckDB runs a query with a DISTINCT aggregate
# several times slower): a case's first execution of a step (step_visit = 1) counts it once; per month,
# executions of steps the case ran once (step_visits = 1) count as they are and only the few repeated ones
# get a distinct count, in a separate small aggregate.


@dataclass(frozen=True)
class _StateTable:
    """A sum over cases kept for every current ``event_timing`` row (``select`` reads the CTE ``ev``).

    Each case adds to its groups' counts, so an incremental run adds its changed cases' new rows and
    subtracts their old ones instead of reading every event again. ``counts[0]`` is 0 only for a group
    with no row left.
    """

    name: str
    keys: tuple[str, ...]
    counts: tuple[str, ...]
    select: str
    # its groups (the keys but ``value``) are numbered in ``{name}_groups`` and each row carries its group's
    # ``gid``: the percentiles then sort one integer per row instead of joining and sorting text keys
    numbered: bool = False

    @property
    def groups(self) -> str:
        return ", ".join(k for k in self.keys if k != "value")


def _value_counts(group: str) -> str:
    """How often each waiting and processing time occurs per ``group`` (columns of ``ev``)."""
    return "\n        UNION ALL ".join(
        f"SELECT {group}, '{measure}' AS measure, {column} AS value, count(*) AS n "
        f"FROM ev WHERE {column} IS NOT NULL GROUP BY ALL"
        for measure, column in (("wait", "wait_working"), ("proc", "proc_working")))


_STEP = ("institution_id", "sop_id", "step_id")
STATE_TABLES = (
    # working minutes per step and month, counted by value: exact percentiles without reading the events
    _StateTable("bottleneck_state_values", (*_STEP, "month", "measure", "value"), ("n",),
                _value_counts("institution_id, sop_id, step_id, month"), numbered=True),
    # the same per step over all months: the ranking's percentiles read 6x fewer rows than from the above
    _StateTable("bottleneck_state_step_values", (*_STEP, "measure", "value"), ("n",),
                _value_counts("institution_id, sop_id, step_id"), numbered=True),
    _StateTable("bottleneck_state_step_month", (*_STEP, "month"), ("n", "n_cases", "n_std", "n_over", "excess"), """
        SELECT a.* EXCLUDE (n_single), a.n_single + coalesce(r.n_repeated, 0) AS n_cases
        FROM (SELECT institution_id, sop_id, step_id, month, count(*) AS n,
                     count(*) FILTER (WHERE step_visits = 1) AS n_single, count(over_standard) AS n_std,
                     count(*) FILTER (WHERE over_standard) AS n_over, sum(excess) AS excess
              FROM ev GROUP BY ALL) a
        LEFT JOIN (SELECT institution_id, sop_id, step_id, month, count(DISTINCT case_id) AS n_repeated
                   FROM ev WHERE step_visits > 1 GROUP BY ALL) r USING (institution_id, sop_id, step_id, month)"""),
    _StateTable("bottleneck_state_steps", _STEP, ("n_cases", "n_std_cases", "n_over_cases"), """
        SELECT a.*, coalesce(o.n_over_cases, 0) AS n_over_cases
        FROM (SELECT institution_id, sop_id, step_id, count(*) FILTER (WHERE step_visit = 1) AS n_cases,
                     count(*) FILTER (WHERE step_visit = 1 AND over_standard IS NOT NULL) AS n_std_cases
              FROM ev GROUP BY ALL) a
        LEFT JOIN (SELECT institution_id, sop_id, step_id, count(DISTINCT case_id) AS n_over_cases
                   FROM ev WHERE over_standard GROUP BY ALL) o USING (institution_id, sop_id, step_id)"""),
    _StateTable("bottleneck_state_roles", (*_STEP, "role"), ("n",), """
        SELECT institution_id, sop_id, step_id, role, count(*) AS n FROM ev WHERE role IS NOT NULL GROUP BY ALL"""),
    # waits at a handover between two roles, counted by value (a NULL value: a handover without a wait)
    _StateTable("bottleneck_state_handovers", ("institution_id", "sop_id", "prev_role", "role", "value"), ("n",), """
        SELECT institution_id, sop_id, prev_role, role, wait_working AS value, count(*) AS n
        FROM ev WHERE prev_role IS NOT NULL AND role IS NOT NULL AND prev_role <> role GROUP BY ALL""", numbered=True),
)


_STATE_BY_NAME = {t.name: t for t in STATE_TABLES}


def _kept(name: str, where: str = "TRUE") -> str:
    """The kept sums of state table ``name``: its rows added up per group (an incremental run appends its
    changes as rows of their own), groups that came to nothing left out; ``where``: a condition on its rows
    ``k`` (applied before they are added up)."""
    table = _STATE_BY_NAME[name]
    sums = ", ".join(f"sum({c}) AS {c}" for c in table.counts)
    keys = ", ".join((*table.keys, "gid") if table.numbered else table.keys)
    return f"(SELECT {keys}, {sums} FROM {name} k WHERE {where} GROUP BY ALL HAVING sum({table.counts[0]}) <> 0)"


def _percentiles_sql(keys: str, source: str) -> str:
    """p50, p90 (``quantile_cont``'s linear interpolation), the sum of ``value`` (never NULL) and how many
    values they come from (``n_values``) per ``keys`` from a SELECT of ``keys``, ``value`` and ``n`` (how
    often the value occurs); NULL values are left out.

    A value may come in several rows, some with negative ``n`` (a state table with an incremental run's
    changes appended): they need not be added up first. Within a value the window takes the subtractions
    first, so the running count never passes a rank before the value's net count does; groups that come
    to nothing are left out. Each group is numbered first: the window then sorts by one integer instead
    of the text keys. A report's scope is ranked with it; the kept counts use :func:`percentiles_frame`.
    """
    rank = {p: f"(c.total - 1)::DOUBLE * {p}::DOUBLE" for p in ("0.5", "0.9")}
    at = ", ".join(f"min(c.value) FILTER (WHERE c.cum > floor({r})) AS lo{p[2]}, "
                   f"min(c.value) FILTER (WHERE c.cum > ceil({r})) AS hi{p[2]}, "
                   f"any_value({r} - floor({r})) AS d{p[2]}" for p, r in rank.items())
    return f"""
        WITH src AS (SELECT * FROM ({source}) s WHERE value IS NOT NULL),
        grp AS (SELECT row_number() OVER ()::INTEGER AS gid, *
                FROM (SELECT {keys}, sum(n) AS total FROM src GROUP BY ALL HAVING sum(n) > 0)),
        c AS (SELECT g.gid, g.total, s.value, s.n,
                     sum(s.n) OVER (PARTITION BY g.gid ORDER BY s.value, s.n ROWS UNBOUNDED PRECEDING) AS cum
              FROM src s JOIN grp g USING ({keys}))
        SELECT {keys}, lo5 + (hi5 - lo5) * d5 AS p50, lo9 + (hi9 - lo9) * d9 AS p90, value_sum,
               total AS n_values
        FROM (SELECT c.gid, {at}, sum(c.value * c.n) AS value_sum FROM c GROUP BY c.gid) JOIN grp USING (gid)"""


def percentiles_frame(conn: duckdb.DuckDBPyConnection, source: str) -> pd.DataFrame:
    """What :func:`_percentiles_sql` computes, per numbered group (``gid``, see ``_StateTable.numbered``), in
    numpy: from a SELECT of ``gid``, ``value`` and ``n``, the rows sorted once by DuckDB instead of a window per
    group (at 10M events, 0.1 s instead of 0.2 s for the per-month groups). Same values, bit for bit: the same
    interpolation in doubles, and whole-minute sums are exact.

    Sorted by group, value and count, the running count over all rows never passes a group's rank before
    that group's (a value's subtractions come first, and every value's net count is positive), so one
    ``searchsorted`` over its running maximum finds each group's ranks.
    """
    rows = conn.execute(f"SELECT gid, value, n FROM ({source}) s WHERE value IS NOT NULL ORDER BY gid, value, n"
                        ).fetchnumpy()
    gid = np.asarray(rows["gid"], dtype=np.int64)
    value = np.asarray(rows["value"], dtype=np.float64)
    n = np.asarray(rows["n"], dtype=np.int64)
    if not len(gid):
        return pd.DataFrame({"gid": pd.Series(dtype="int64"), "p50": pd.Series(dtype="float64"),
                             "p90": pd.Series(dtype="float64"), "value_sum": pd.Series(dtype="float64"),
                             "n_values": pd.Series(dtype="int64")})
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
    ends = np.r_[starts[1:], len(gid)]
    cum = np.cumsum(n)
    before = np.r_[0, cum[ends[:-1] - 1]]  # the running count before each group
    total = cum[ends - 1] - before
    reached = np.maximum.accumulate(cum)
    out: dict[str, np.ndarray] = {"gid": gid[starts]}
    for p, name in ((0.5, "p50"), (0.9, "p90")):
        rank = (total - 1).astype(np.float64) * p
        lo = value[np.searchsorted(reached, before + np.floor(rank), side="right")]
        hi = value[np.searchsorted(reached, before + np.ceil(rank), side="right")]
        out[name] = lo + (hi - lo) * (rank - np.floor(rank))
    out["value_sum"] = np.add.reduceat(value * n, starts)
    out["n_values"] = total
    frame: pd.DataFrame = pd.DataFrame(out).loc[total > 0]
    return frame


_MONTH_KEYS = "institution_id, sop_id, step_id, month"

# the frames with the kept values' percentiles per numbered group (percentiles_frame; compute_bottlenecks)
_PERCENTILES = {"bottleneck_state_values": "bottleneck_month_pct",
                "bottleneck_state_step_values": "bottleneck_step_pct",
                "bottleneck_state_handovers": "bottleneck_handover_pct"}


def _percentiles_of(table: str) -> str:
    return f"SELECT * FROM {_PERCENTILES[table]} JOIN {table}_groups USING (gid)"


# {touched}: a condition on the step and month `k` (all of them, or the ones a run's changed cases touch)
_STEP_MONTH_SQL = f"""
INSERT INTO bottleneck_step_month
WITH pct AS ({_percentiles_of("bottleneck_state_values")})
SELECT $run_id, s.institution_id, s.sop_id, s.step_id, strftime(s.month, '%Y-%m'), s.n, s.n_cases,
       w.p50, w.p90, p.p50, p.p90, w.value_sum / nullif(coalesce(w.value_sum, 0) + coalesce(p.value_sum, 0), 0),
       s.n_std, s.n_over, s.n_over / nullif(s.n_std, 0), s.excess, coalesce(w.n_values, 0), coalesce(p.n_values, 0)
FROM {_kept("bottleneck_state_step_month", "{touched}")} s
LEFT JOIN (SELECT * FROM pct WHERE measure = 'wait') w USING ({_MONTH_KEYS})
LEFT JOIN (SELECT * FROM pct WHERE measure = 'proc') p USING ({_MONTH_KEYS})
"""
_TOUCHED = ("EXISTS (SELECT 1 FROM bottleneck_touched t WHERE t.institution_id = k.institution_id "
            "AND t.sop_id = k.sop_id AND t.step_id = k.step_id AND t.month = k.month)")
_TOUCHED_GROUPS = ("k.gid IN (SELECT gid FROM bottleneck_state_values_groups "
                   "SEMI JOIN bottleneck_touched USING (institution_id, sop_id, step_id, month))")

_HANDOVER_KEYS = "institution_id, sop_id, prev_role, role"
_HANDOVER_SQL = f"""
INSERT INTO bottleneck_handovers
SELECT $run_id, {_HANDOVER_KEYS}, h.n, q.p50, q.p90, q.value_sum
FROM (SELECT {_HANDOVER_KEYS}, sum(n) AS n FROM {_kept("bottleneck_state_handovers")} GROUP BY ALL) h
LEFT JOIN ({_percentiles_of("bottleneck_state_handovers")}) q
    USING ({_HANDOVER_KEYS})
"""

# the ranking from the per-step sums ({step_month}, {steps}, {step_values}, {roles}: tables or CTEs); needs `cal`
_STEP_KEYS = "institution_id, sop_id, step_id"
_RANK_BODY = f"""
month_totals AS (SELECT {_STEP_KEYS}, sum(n) AS n, sum(excess) AS excess_total FROM {{step_month}} GROUP BY ALL),
pct AS ({{pct}}),
agg AS (
    SELECT m.*, s.n_cases, s.n_std_cases, s.n_over_cases, r.role,
           [w.p50, w.p90] AS wq, [p.p50, p.p90] AS pq, coalesce(w.value_sum, 0) AS wait_total,
           coalesce(w.n_values, 0) AS n_wait, coalesce(p.n_values, 0) AS n_proc,
           coalesce(cal.workday_minutes, {DEFAULT_WORKDAY_MINUTES}) AS day_min
    FROM month_totals m
    JOIN {{steps}} s USING ({_STEP_KEYS})
    LEFT JOIN (SELECT {_STEP_KEYS}, first(role ORDER BY n DESC, role) AS role FROM {{roles}} GROUP BY ALL) r
        USING ({_STEP_KEYS})
    LEFT JOIN (SELECT * FROM pct WHERE measure = 'wait') w USING ({_STEP_KEYS})
    LEFT JOIN (SELECT * FROM pct WHERE measure = 'proc') p USING ({_STEP_KEYS})
    LEFT JOIN cal ON cal.institution_id = m.institution_id),
scored AS (
    SELECT a.*, st.no AS step_no, st.activity, st.time_raw AS standard, st.ord,
           a.n_over_cases / nullif(a.n_std_cases, 0) AS share_cases_over,
           a.wait_total + a.excess_total AS score
    FROM agg a
    LEFT JOIN sop_steps st ON st.sop_id = a.sop_id AND st.step_id = a.step_id
    WHERE a.n_cases >= $min_cases AND a.wait_total + a.excess_total > 0)
SELECT row_number() OVER (PARTITION BY institution_id, sop_id
                          ORDER BY score DESC, share_cases_over DESC NULLS LAST, ord NULLS LAST, step_id)
           AS rank,
       institution_id, sop_id, step_id, step_no, activity, role, n, n_cases,
       wq[1] AS wait_p50, wq[2] AS wait_p90, pq[1] AS proc_p50, pq[2] AS proc_p90, standard, share_cases_over,
       wait_total, excess_total, score, day_min, n_wait, n_proc, n_over_cases
FROM scored
QUALIFY rank <= $top
ORDER BY institution_id, sop_id, rank
"""
_RANK_PARTS = ("step_month", "steps", "step_values", "roles")


def _rank_sql(scope_sql: str | None) -> str:
    """The ranking over the kept sums (``scope_sql`` None) or over the sums of a scope's events."""
    body = _RANK_BODY
    keys = _STEP_KEYS + ", measure"
    if scope_sql is None:
        for part in _RANK_PARTS:
            if part != "step_values":  # the percentiles need no adding up first (percentiles_frame)
                body = body.replace(f"{{{part}}}", _kept(f"bottleneck_state_{part}"))
        body = body.replace("{pct}", _percentiles_of("bottleneck_state_step_values"))
        return f"WITH {_CAL},\n{body}"
    sums = []
    for part in _RANK_PARTS:
        table = _STATE_BY_NAME[f"bottleneck_state_{part}"]
        sums.append(f"scope_{part} AS ({table.select})")
        body = body.replace(f"{{{part}}}", f"scope_{part}")
    body = body.replace("{pct}", _percentiles_sql(keys, "SELECT * FROM scope_step_values"))
    return f"WITH {_EVENTS.replace('{scope}', scope_sql)},\n{', '.join(sums)},\n{body}"


# The aggregates below are sums over cases (a case adds 1 to each week it was at a step, ...): an incremental
# run updates them with its changed cases alone, old rows subtracted and new rows added (see _delta_sql).

# A case waits for a step from its previous event's end to this event's start and is at the step until
# this event's end; a week counts every case whose interval touches it.
_WIP_SELECT = """
WITH et AS ({scope}),
loc AS (
    SELECT institution_id, sop_id, step_id, case_id, step_visits,
           date_trunc('week', coalesce(local_prev_end, local_start, local_end))::DATE AS w0,
           date_trunc('week', coalesce(local_start, local_end))::DATE AS w_start,
           date_trunc('week', local_end)::DATE AS w1,
           local_prev_end IS NOT NULL AND local_prev_end < coalesce(local_start, local_end) AS waits
    FROM et),
weeks AS (
    SELECT *, unnest(generate_series(w0, w1, INTERVAL 7 DAY))::DATE AS week FROM loc),
agg AS (
    SELECT institution_id, sop_id, step_id, week,
           count(*) FILTER (WHERE step_visits = 1 AND waits AND week <= w_start) AS waiting,
           count(*) FILTER (WHERE step_visits = 1) AS at_step
    FROM weeks GROUP BY ALL),
repeated AS (
    SELECT institution_id, sop_id, step_id, week,
           count(DISTINCT case_id) FILTER (WHERE waits AND week <= w_start) AS waiting,
           count(DISTINCT case_id) AS at_step
    FROM weeks WHERE step_visits > 1 GROUP BY ALL)
SELECT institution_id, sop_id, step_id, week, a.waiting + coalesce(r.waiting, 0) AS waiting,
       a.at_step + coalesce(r.at_step, 0) AS at_step
FROM agg a LEFT JOIN repeated r USING (institution_id, sop_id, step_id, week)
"""

_REWORK_SELECT = """
WITH et AS ({scope})
SELECT institution_id, sop_id, step_id, count(*) FILTER (WHERE step_visit = 1) AS n_cases,
       count(*) FILTER (WHERE step_visit = 2) AS n_rework, count(*) FILTER (WHERE step_visit > 1) AS extra
FROM et GROUP BY ALL
"""

# a case counts once per role and month however many of its events the role handled
_ROLE_CASES_SELECT = """
WITH et AS ({scope})
SELECT institution_id, month, role, count(*) AS n_cases
FROM (SELECT DISTINCT institution_id, strftime(local_end, '%Y-%m') AS month, role, sop_id, case_id
      FROM et WHERE role IS NOT NULL)
GROUP BY ALL
"""

_WIP_SQL = """
INSERT INTO bottleneck_wip
SELECT $run_id, institution_id, sop_id, step_id, week, waiting, at_step FROM ({wip})
WHERE at_step > 0
"""

_REWORK_SQL = """
INSERT INTO bottleneck_rework
SELECT $run_id, r.institution_id, r.sop_id, r.step_id, n_cases, n_rework, n_rework / n_cases, extra, s.repeat
FROM ({rework}) r LEFT JOIN sop_steps s ON s.sop_id = r.sop_id AND s.step_id = r.step_id
WHERE n_cases > 0
"""

_ROLE_RESOURCES_SELECT = """
WITH et AS ({scope})
SELECT institution_id, strftime(local_end, '%Y-%m') AS month, role, resource, count(*) AS n,
       sum(proc_working) AS proc, count(proc_working) AS n_proc, sum(wait_working) AS wait,
       count(wait_working) AS n_wait
FROM et WHERE role IS NOT NULL
GROUP BY ALL
"""

_ROLE_RESOURCES_SQL = """
INSERT INTO bottleneck_role_resources
SELECT $run_id, institution_id, month, role, resource, n, CASE WHEN n_proc > 0 THEN proc END, n_proc,
       CASE WHEN n_wait > 0 THEN wait END, n_wait
FROM ({resources}) WHERE n > 0
"""

# distinct resources per role and month: one row per resource (a NULL resource row stands for events without)
_ROLE_LOAD_SQL = """
INSERT INTO bottleneck_role_load
SELECT $run_id, r.institution_id, r.period, r.role, sum(r.n_events), coalesce(any_value(c.n_cases), 0),
       sum(r.proc_minutes), sum(r.wait_minutes), nullif(count(r.resource), 0)
FROM bottleneck_role_resources r
LEFT JOIN ({role_cases}) c ON c.institution_id = r.institution_id AND c.month = r.period AND c.role = r.role
WHERE r.run_id = $run_id
GROUP BY r.institution_id, r.period, r.role
"""


def _delta_sql(select: str, previous: str, keys: str, values: list[str], new_rows: str, old_rows: str) -> str:
    """``select`` (a per-case sum over ``{scope}``) for all cases: the previous run's rows (``previous``, a
    SELECT of ``keys`` and ``values``), plus the changed cases' new rows, minus their old rows."""
    minus = ", ".join(f"-{v} AS {v}" for v in values)
    columns = ", ".join(f"sum({v}) AS {v}" for v in values)
    return (f"SELECT {keys}, {columns} FROM ({previous} "
            f"UNION ALL BY NAME ({select.replace('{scope}', new_rows)}) "
            f"UNION ALL BY NAME (SELECT * REPLACE ({minus}) FROM ({select.replace('{scope}', old_rows)}))) "
            f"GROUP BY {keys}")


# ---------------------------------------------------------------------------------------------------
# Numbers and durations in words (Indonesian: decimal comma, thousands dot)
# ---------------------------------------------------------------------------------------------------


# no median is told from fewer values than this (a first step's "median wait" of one child; DESIGN section 9)
MIN_MEDIAN_VALUES = 5


def fmt_number(value: float, lang: str = "id", digits: int = 0) -> str:
    """``1234.5`` -> ``1.234,5`` (id) or ``1,234.5`` (en); a trailing ``,0`` is dropped."""
    text = f"{value:,.{digits}f}"
    if digits:
        text = text.rstrip("0").rstrip(".")
    if lang == "id":
        text = text.translate(str.maketrans(",.", ".,"))
    return text


def fmt_percent(share: float, lang: str = "id", digits: int = 0) -> str:
    return f"{fmt_number(100.0 * share, lang, digits)}%"


def fmt_duration(minutes: float | None, lang: str = "id",
                 workday_minutes: float = DEFAULT_WORKDAY_MINUTES, *, short: bool = False) -> str:
    """Working minutes in words: minutes below an hour, working hours below a working day, else days.

    ``short`` drops "kerja"/"working" (for table cells whose header says the times are working time).
    """
    if minutes is None or (isinstance(minutes, float) and math.isnan(minutes)):
        return "–"
    id_ = lang == "id"
    if minutes < 1:
        return "< 1 menit" if id_ else "< 1 min"
    if minutes < 59.5:
        n = round(minutes)
        if short or id_:
            return f"{n} menit" if id_ else f"{n} min"
        return f"{n} minute{'s' if n != 1 else ''}"
    if minutes < workday_minutes:
        hours = fmt_number(minutes / 60.0, lang, 1)
        if short:
            return f"{hours} jam" if id_ else f"{hours} h"
        return f"{hours} jam kerja" if id_ else f"{hours} working hour{'s' if hours != '1' else ''}"
    days = fmt_number(minutes / workday_minutes, lang, 1)
    if short:
        return f"{days} hari" if id_ else f"{days} d"
    return f"{days} hari kerja" if id_ else f"{days} working day{'s' if days != '1' else ''}"


def _short(text: str | None, limit: int = 70) -> str:
    if not text:
        return ""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def explain(row: Mapping[str, Any], lang: str = "id") -> str:
    """One sentence on a ranked step, e.g. ``Langkah 3 (Guru BK memanggil siswa): median waktu tunggu
    2,5 hari kerja, median waktu proses 20 menit; 64% kasus melebihi standar 15 Menit.`` A median from fewer
    than :data:`MIN_MEDIAN_VALUES` values (``n_wait``, ``n_proc`` when the row has them) is left out."""
    day = float(row.get("day_min") or DEFAULT_WORKDAY_MINUTES)
    no = str(row.get("step_no") or row.get("step_id")).rstrip(".")
    label = _short(row.get("activity")) or str(row.get("step_id"))
    def median(measure: str) -> Any:
        n = row.get(f"n_{measure}")
        return None if n is not None and n < MIN_MEDIAN_VALUES else row.get(f"{measure}_p50")

    wait, proc = median("wait"), median("proc")
    share, standard = row.get("share_cases_over"), str(row.get("standard") or "").rstrip(". ") or None
    id_ = lang == "id"
    parts = []
    if wait is not None:
        parts.append(("median waktu tunggu " if id_ else "median wait ") + fmt_duration(wait, lang, day))
    if proc is not None:
        parts.append(("median waktu proses " if id_ else "median processing ")
                     + fmt_duration(proc, lang, day))
    medians = f"{', '.join(parts)}; " if parts else ""
    head = f"{'Langkah' if id_ else 'Step'} {no} ({label}): {medians}"
    if standard and share is not None:
        pct = fmt_percent(share, lang)
        tail = (f"{pct} kasus melebihi standar {standard}" if id_
                else f"{pct} of cases exceed the standard of {standard}")
    elif standard:
        tail = f"standar {standard}" if id_ else f"standard {standard}"
    else:
        tail = "langkah ini tidak memiliki standar waktu" if id_ else "the step has no time standard"
    return f"{head}{tail}."


# ---------------------------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------------------------


def rank_bottlenecks(conn: duckdb.DuckDBPyConnection, scope: Scope, *, top: int = TOP_N,
                     min_cases: int = 1, stored: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The top steps per institution x SOP by score (module docstring), with sentences in both languages.

    Needs ``bottleneck_calendars`` rows for the run (else a 7-hour working day is assumed). ``stored``: what
    :func:`stored_columns` says (looked up when not given and the scope is not a materialised table).
    """
    if stored is None and scope.table is None:
        stored = stored_columns(conn)
    return _ranked(conn, _rank_sql(scope.sql(stored)), {**scope.params(), "top": top, "min_cases": min_cases})


def _ranked(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = _execute(conn, sql, params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["explanation_id"] = explain(row, "id")
        row["explanation_en"] = explain(row, "en")
    return rows


def _workday(cal: WorkingCalendar) -> tuple[float, float]:
    minutes = [float(m) for m in cal.day_minutes if m > 0]
    if not minutes:
        return DEFAULT_WORKDAY_MINUTES, DEFAULT_WORKDAYS_PER_WEEK
    minutes.sort()
    mid = len(minutes) // 2
    median = minutes[mid] if len(minutes) % 2 else (minutes[mid - 1] + minutes[mid]) / 2
    return median, float(len(minutes))


def _load_calendars() -> Mapping[str, WorkingCalendar]:
    from pipeline.calendars import load_calendars
    from pipeline.config import get_settings

    path: Path = get_settings().institutions_file
    if not path.exists():
        return {}
    return load_calendars(path)


def _execute(conn: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` with the named parameters it uses (DuckDB refuses unused ones)."""
    return conn.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})


def _sums(table: _StateTable, scope_sql: str) -> str:
    return f"(WITH {_EVENTS.replace('{scope}', scope_sql)} {table.select})"


def _append_counts(conn: duckdb.DuckDBPyConnection, table: _StateTable, counts: str, params: dict[str, Any]) -> None:
    """Append the rows of ``counts`` (a SELECT of the table's keys and counts) to ``table``; the groups of a
    numbered table that are new get the next numbers first."""
    if not table.numbered:
        _execute(conn, f"INSERT INTO {table.name} BY NAME {counts}", params)
        return
    groups = f"{table.name}_groups"
    _execute(conn, f"CREATE OR REPLACE TEMP TABLE bottleneck_counts AS {counts}", params)
    conn.execute(f"INSERT INTO {groups} SELECT (SELECT coalesce(max(gid), 0) FROM {groups}) "
                 f"+ row_number() OVER ()::INTEGER, * FROM (SELECT DISTINCT {table.groups} FROM bottleneck_counts "
                 f"EXCEPT SELECT {table.groups} FROM {groups})")
    conn.execute(f"INSERT INTO {table.name} BY NAME SELECT c.*, g.gid FROM bottleneck_counts c "
                 f"JOIN {groups} g USING ({table.groups})")
    conn.execute("DROP TABLE bottleneck_counts")


def _build_state(conn: duckdb.DuckDBPyConnection, scope_sql: str, params: dict[str, Any]) -> None:
    """The kept sums from every current event (``scope_sql``: all of ``event_timing``)."""
    for table in STATE_TABLES:
        conn.execute(f"DELETE FROM {table.name}")
        if table.numbered:
            conn.execute(f"DELETE FROM {table.name}_groups")
        _append_counts(conn, table, f"SELECT * FROM {_sums(table, scope_sql)}", params)


def _update_state(conn: duckdb.DuckDBPyConnection, new_rows: str, old_rows: str, params: dict[str, Any]) -> None:
    """Append the changed cases' new rows (``new_rows``) to the kept sums, and their old ones subtracted.

    Appended, not merged: updating counts in place made the commit rewrite every row group of the kept
    counts (0.15 s at 10M events, beside 0.25 s for the merges); readers add the rows up (:func:`_kept`)
    and :func:`_compact` adds them up for good once the appended rows doubled the tables.
    """
    for table in STATE_TABLES:
        keys, counts = ", ".join(table.keys), table.counts
        minus = ", ".join(f"-{c} AS {c}" for c in counts)
        _append_counts(conn, table, f"SELECT {keys}, {', '.join(f'sum({c}) AS {c}' for c in counts)} "
                       f"FROM ({_sums(table, new_rows)} UNION ALL BY NAME "
                       f"SELECT * REPLACE ({minus}) FROM {_sums(table, old_rows)}) "
                       f"GROUP BY ALL HAVING {' OR '.join(f'sum({c}) <> 0' for c in counts)}", params)


def _state_rows(conn: duckdb.DuckDBPyConnection) -> int:
    return int(conn.execute("SELECT " + " + ".join(f"(SELECT count(*) FROM {t.name})" for t in STATE_TABLES))
               .fetchall()[0][0])


def _compact(conn: duckdb.DuckDBPyConnection) -> None:
    """Each group's rows of the kept sums added up into one."""
    for table in STATE_TABLES:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE bottleneck_compact AS SELECT * FROM {_kept(table.name)}")
        conn.execute(f"DELETE FROM {table.name}")
        conn.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM bottleneck_compact")
    conn.execute("DROP TABLE bottleneck_compact")


def compute_bottlenecks(conn: duckdb.DuckDBPyConnection, run_id: str, *,
                        calendars: Mapping[str, WorkingCalendar] | None = None, top: int = TOP_N,
                        previous_run: str | None = None, old_rows: str | None = None,
                        new_rows_from: int = 0) -> None:
    """Write the ``bottleneck_*`` tables and the ranked ``bottlenecks`` of ``run_id`` (replacing old rows).

    Called by run.py inside the run's transaction, after ``event_timing``, ``case_results`` and
    ``deviations`` are written. ``calendars`` default to those of the configured institutions.yaml.
    The per-month step rows, the handovers and the ranking come from the kept sums (:data:`STATE_TABLES`).
    With ``previous_run`` and ``old_rows`` (a table with the ``event_timing`` rows this run replaced), the
    kept sums, when they are ``previous_run``'s, get this run's rows added and the old ones subtracted, and
    the per-case sums of the other tables (weekly work in progress, rework, cases, events, working times and
    resources per role) are the previous run's rows plus this run's minus the old ones: the cost follows the
    change. Otherwise everything is computed from every event. ``new_rows_from``: a rowid of ``event_timing``
    at or below the first row this run wrote (the rows before it are read no more).
    """
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    cals = _load_calendars() if calendars is None else calendars
    present = [r[0] for r in conn.execute("SELECT DISTINCT institution_id FROM event_timing").fetchall()]
    cal_rows = [(run_id, iid, *_workday(cals[iid])) for iid in present if iid in cals]
    if cal_rows:
        conn.executemany("INSERT INTO bottleneck_calendars VALUES (?, ?, ?, ?)", cal_rows)
    stored = stored_columns(conn)
    params: dict[str, Any] = {"run_id": run_id, "previous": previous_run}
    delta = (previous_run is not None and old_rows is not None and all(v == COMPLETE for v in stored.values())
             and not conn.execute(f"SELECT count(*) FROM {old_rows} WHERE step_visits IS NULL").fetchall()[0][0]
             # the previous run's per-resource rows (a run of an older version wrote none)
             and conn.execute("SELECT (SELECT count(*) FROM bottleneck_role_resources WHERE run_id = $previous) > 0 "
                              "OR (SELECT count(*) FROM bottleneck_role_load WHERE run_id = $previous) = 0",
                              {"previous": previous_run}).fetchall()[0][0])
    only_touched = False  # the per-month rows: only those of the steps and months in bottleneck_touched
    if delta:
        new_rows = f"SELECT * FROM event_timing WHERE rowid >= {int(new_rows_from)} AND run_id = $run_id"
        old = f"SELECT * FROM {old_rows}"
        # kept counts of an older version have no group numbers: built again
        unnumbered = " + ".join(f"(SELECT count(*) FROM {t.name} WHERE gid IS NULL)"
                                for t in STATE_TABLES if t.numbered)
        kept = conn.execute("SELECT any_value(state_run), count(*), coalesce(any_value(compacted_rows), 0), "
                            f"{unnumbered} FROM bottleneck_state_run").fetchall()[0]
        if kept[:2] == (previous_run, 1) and not kept[3]:
            _update_state(conn, new_rows, old, params)
            # the steps and months whose counts changed: only their rows are computed again (a monthly load
            # touches a month or two; the previous run's rows of the others still hold)
            _execute(conn, "CREATE OR REPLACE TEMP TABLE bottleneck_touched AS "
                     "SELECT DISTINCT institution_id, sop_id, step_id, date_trunc('month', local_end)::DATE AS month "
                     f"FROM ({new_rows} UNION ALL BY NAME {old})", params)
            only_touched = True
            compacted = int(kept[2])
            if _state_rows(conn) > (1 + COMPACT_GROWTH) * compacted:
                _compact(conn)
                compacted = _state_rows(conn)
        else:
            _build_state(conn, Scope(run_id).sql(stored), params)
            compacted = _state_rows(conn)
        wip = _delta_sql(_WIP_SELECT, "SELECT institution_id, sop_id, step_id, week, cases_waiting AS waiting, "
                         "cases_at_step AS at_step FROM bottleneck_wip WHERE run_id = $previous",
                         "institution_id, sop_id, step_id, week", ["waiting", "at_step"], new_rows, old)
        rework = _delta_sql(_REWORK_SELECT, "SELECT institution_id, sop_id, step_id, n_cases, n_cases_repeated "
                            "AS n_rework, extra_executions AS extra FROM bottleneck_rework WHERE run_id = $previous",
                            "institution_id, sop_id, step_id", ["n_cases", "n_rework", "extra"], new_rows, old)
        role_cases = _delta_sql(_ROLE_CASES_SELECT, "SELECT institution_id, period AS month, role, n_cases "
                                "FROM bottleneck_role_load WHERE run_id = $previous",
                                "institution_id, month, role", ["n_cases"], new_rows, old)
        resources = _delta_sql(_ROLE_RESOURCES_SELECT, "SELECT institution_id, period AS month, role, resource, "
                               "n_events AS n, proc_minutes AS proc, n_proc, wait_minutes AS wait, n_wait "
                               "FROM bottleneck_role_resources WHERE run_id = $previous",
                               "institution_id, month, role, resource", ["n", "proc", "n_proc", "wait", "n_wait"],
                               new_rows, old)
    else:
        scope = Scope(run_id)
        if any(state != COMPLETE for state in stored.values()):
            # windows derive what timing.py did not store: materialise the scope once instead of per statement
            conn.execute(f"CREATE OR REPLACE TEMP TABLE bottleneck_scope AS {scope.sql(stored)}")
            scope = Scope(run_id, table="bottleneck_scope")
        _build_state(conn, scope.sql(stored), params)
        compacted = _state_rows(conn)
        wip, rework, role_cases, resources = (q.replace("{scope}", scope.sql(stored)) for q in (
            _WIP_SELECT, _REWORK_SELECT, _ROLE_CASES_SELECT, _ROLE_RESOURCES_SELECT))
    conn.execute("DELETE FROM bottleneck_state_run")
    conn.execute("INSERT INTO bottleneck_state_run VALUES (?, ?)", [run_id, compacted])
    if only_touched:
        _execute(conn, "INSERT INTO bottleneck_step_month SELECT * REPLACE ($run_id AS run_id) "
                 "FROM bottleneck_step_month p WHERE run_id = $previous AND NOT EXISTS (SELECT 1 FROM "
                 "bottleneck_touched t WHERE t.institution_id = p.institution_id AND t.sop_id = p.sop_id "
                 "AND t.step_id = p.step_id AND strftime(t.month, '%Y-%m') = p.period)", params)
    for table, name in _PERCENTILES.items():  # the per-month ones only of the steps and months touched
        where = _TOUCHED_GROUPS if only_touched and table == "bottleneck_state_values" else "TRUE"
        conn.register(name, percentiles_frame(conn, f"SELECT gid, value, n FROM {table} k WHERE {where}"))
    step_month = _STEP_MONTH_SQL.replace("{touched}", _TOUCHED if only_touched else "TRUE")
    for sql in (step_month, _HANDOVER_SQL, _WIP_SQL.replace("{wip}", wip),
                _REWORK_SQL.replace("{rework}", rework), _ROLE_RESOURCES_SQL.replace("{resources}", resources),
                _ROLE_LOAD_SQL.replace("{role_cases}", role_cases)):
        _execute(conn, sql, params)
    ranked = _ranked(conn, _rank_sql(None), {"run_id": run_id, "top": top, "min_cases": 1})
    for name in _PERCENTILES.values():
        conn.unregister(name)
    if ranked:  # one bulk insert (executemany costs milliseconds per row in DuckDB)
        columns = ["institution_id", "sop_id", "rank", "step_id", "step_no", "activity", "role", "n", "n_cases",
                   "wait_p50", "wait_p90", "proc_p50", "proc_p90", "standard", "share_cases_over", "wait_total",
                   "excess_total", "score", "explanation_id", "explanation_en", "n_wait", "n_proc"]
        frame = pd.DataFrame([[r[c] for c in columns] for r in ranked], columns=columns)
        frame.insert(0, "run_id", run_id)
        conn.register("ranked_df", frame)
        conn.execute("INSERT INTO bottlenecks SELECT * FROM ranked_df")
        conn.unregister("ranked_df")
