"""Time: step durations against their standards, whole-case standards and stalled open cases.

Rules (DESIGN section 3 semantics; measures from :func:`pipeline.sop.parse_time`):

* a step's **duration** is ``ts_end - ts_start``; in a log with one timestamp per event it is the time from
  the previous event's end to this event's end (the first event of such a case has none);
* **waiting** is the previous event's end to this event's start (working minutes);
* ``overdue_step``: the duration, in the standard's measure (working minutes or working days on the
  institution's calendar, or elapsed minutes for ``N x 24 jam``, weeks and months) exceeds its maximum;
* ``case_sla_breach``: the model's ``case_time`` from the first event's start to the last event's end, and
  each ``slas`` entry from the earliest start of step A to the earliest end of step B (when both happened);
* ``stalled_case``: an open case whose last event ended longer before ``as_of`` than the largest standard
  of the next possible steps (the successors, plus the step itself when it repeats; elapsed standards rank
  above working ones; :data:`DEFAULT_STALL` when none has a standard), measured in that standard's unit.
  The deviation's step is the last step done; its detail names the next step whose standard was applied
  (``next_step``, null for the default).
  A step that only the end can follow is never stalled: the case awaits closure, not a step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from pipeline.calendars import WorkingCalendar
from pipeline.public_texts import OTHER_ROLE, rare_texts
from pipeline.sop import END, SopModel, TimeStandard, parse_time

DEFAULT_STALL = TimeStandard("5 hari kerja (bawaan / default)", "working_days", None, 5.0, "day")
# what the stored (bilingual) default reads as in each language; an SOP's own standards are quoted as written
DEFAULT_STALL_TEXT = {"id": "5 hari kerja (bawaan)", "en": "5 working days (default)"}


def standard_text(raw: str | None, lang: str) -> str | None:
    """A deviation's stored standard (``expected``) as ``lang`` shows it: the engine's default in that language,
    any other text as the SOP writes it."""
    return DEFAULT_STALL_TEXT.get(lang, DEFAULT_STALL_TEXT["id"]) if raw == DEFAULT_STALL.raw else raw


@dataclass
class TimingStats:
    events: int = 0
    overdue: int = 0
    sla_breaches: int = 0
    stalled: int = 0


def _standards_frame(models: dict[str, SopModel]) -> pd.DataFrame:
    rows = []
    for sop_id, model in models.items():
        for step in model.steps:
            std = parse_time(step.time, model.clock)
            rows.append((sop_id, step.id, None if std is None else std.measure,
                         None if std is None else std.maximum))
    return pd.DataFrame(rows, columns=["sop_id", "step_id", "standard_measure", "standard_max"])


MEASURE_CODES = {1: "working_minutes", 2: "working_days", 3: "elapsed_minutes"}


def _measure_code_sql(column: str) -> str:
    """SQL turning a standard's measure name in ``column`` into its ``MEASURE_CODES`` code (0: none)."""
    return (f"CASE {column} " + " ".join(f"WHEN '{kind}' THEN {code}" for code, kind in MEASURE_CODES.items())
            + " ELSE 0 END")


def _measure(cal: WorkingCalendar, codes: np.ndarray, start: pd.Series, end: pd.Series) -> np.ndarray:
    """Durations in each row's own measure (``MEASURE_CODES``; 0 = no standard gives NaN)."""
    out = np.full(len(start), np.nan)
    for code, kind in MEASURE_CODES.items():
        sel = codes == code
        if sel.any():
            out[sel] = cal.measure(kind, start[sel], end[sel])
    return out


def compute_timing(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    models: dict[str, SopModel],
    calendars: dict[str, WorkingCalendar],
    *,
    as_of: dt.datetime,
    case_filter: str = "TRUE",
    stall_filter: str | None = None,
    events: str = "events",
) -> TimingStats:
    """Write ``event_timing`` for ``run_id`` and the time deviations into ``run_deviations``.

    ``case_filter`` selects the cases to time from the table ``events``; ``stall_filter`` (default: the same)
    the open cases whose stall status is judged at ``as_of`` (from their last event as ``cases`` keeps it, or
    read from ``events``, the whole table, for case rows an older version wrote).
    """
    stats = TimingStats()
    # strings stay in DuckDB; only timestamps and measure codes travel to numpy and back (by the temp table's
    # rowid: numbering the rows with row_number() OVER () would run single-threaded, 0.35 s per 1M events)
    conn.register("standards_df", _standards_frame(models))
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE timing_src AS
        SELECT x.*, s.standard_measure, s.standard_max, {_measure_code_sql("s.standard_measure")} AS measure_code
        FROM (SELECT institution_id, sop_id, case_id, step_id, role, resource, ts_start, ts_end, source_row,
                     lag(ts_end) OVER w AS prev_end, lag(role) OVER w AS prev_role,
                     -- per case and step: distinct-case counts become plain sums in bottlenecks.py. Sorted
                     -- here, with the events' few columns: sorting the rows written below took 16.6 s at 10M
                     row_number() OVER visits AS step_visit, count(*) OVER visits AS step_visits
              FROM {events} e
              WHERE sop_id IN (SELECT sop_id FROM run_models) AND {case_filter}
              WINDOW w AS (PARTITION BY institution_id, sop_id, case_id ORDER BY ts_end, source_row),
                     visits AS (PARTITION BY institution_id, sop_id, case_id, step_id
                                ORDER BY ts_end, source_row, batch_id
                                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x
        LEFT JOIN standards_df s USING (sop_id, step_id)
        WHERE x.step_id IS NOT NULL
        """
    )
    conn.unregister("standards_df")
    frames = []
    for (inst,) in conn.execute("SELECT DISTINCT institution_id FROM timing_src ORDER BY 1").fetchall():
        cal = calendars[str(inst)]
        part = conn.execute("SELECT rowid AS rid, ts_start, ts_end, prev_end, measure_code FROM timing_src "
                            "WHERE institution_id = ?", [inst]).df()
        has_start = part["ts_start"].notna().to_numpy()
        begin = part["ts_start"].where(has_start, part["prev_end"])
        out = pd.DataFrame({"rid": part["rid"]})
        out["wait_working"] = np.where(has_start, cal.working_minutes(part["prev_end"], part["ts_start"]), np.nan)
        out["proc_working"] = np.where(has_start, cal.working_minutes(part["ts_start"], part["ts_end"]), np.nan)
        out["duration_std"] = _measure(cal, part["measure_code"].to_numpy(), begin, part["ts_end"])
        for column, source in (("local_start", "ts_start"), ("local_end", "ts_end"), ("local_prev_end", "prev_end")):
            out[column] = pd.to_datetime(part[source], utc=True).dt.tz_convert(cal.timezone).dt.tz_localize(None)
        frames.append(out)
    stats.events = sum(len(f) for f in frames)
    if frames:
        conn.register("timed_df", pd.concat(frames, ignore_index=True))
        conn.execute(
            """
            INSERT INTO event_timing BY NAME
            SELECT ? AS run_id, t.institution_id, t.sop_id, t.case_id, t.step_id, t.role, t.prev_role,
                   t.ts_start, t.ts_end, n.wait_working, n.proc_working, n.duration_std, t.standard_max,
                   t.standard_measure,
                   coalesce(t.standard_max IS NOT NULL AND n.duration_std > t.standard_max + 1e-9, FALSE)
                       AS over_standard,
                   t.resource, n.local_start, n.local_end, n.local_prev_end, t.step_visit, t.step_visits
            FROM timing_src t JOIN timed_df n ON n.rid = t.rowid
            """,
            [run_id],
        )
        conn.unregister("timed_df")
        _mask_rare_roles(conn, run_id)
    conn.execute(
        """
        INSERT INTO run_deviations
        SELECT t.institution_id, t.sop_id, t.case_id, 'overdue_step', t.step_id, s.activity,
               s.time_raw, printf('%.1f', t.duration_std), t.ts_end,
               json_object('duration', t.duration_std, 'maximum', t.standard_max, 'measure', t.standard_measure)
        FROM event_timing t JOIN run_steps s USING (sop_id, step_id)
        WHERE t.run_id = ? AND t.over_standard
        """,
        [run_id],
    )
    stats.overdue = int(conn.execute("SELECT count(*) FROM event_timing WHERE run_id = ? AND over_standard",
                                     [run_id]).fetchall()[0][0])
    stats.sla_breaches = _case_standards(conn, models, calendars, case_filter, events)
    stats.stalled = _stalled(conn, models, calendars, as_of, case_filter if stall_filter is None else stall_filter,
                             events if stall_filter is None else "events")
    return stats


def _mask_rare_roles(conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """The role texts of this run's event_timing rows that may be notes about a person (public_texts.py) become
    ``OTHER_ROLE``: the bottleneck tables group by role and are published."""
    if rare_texts(conn, "role", "SELECT DISTINCT institution_id, role AS text FROM timing_src UNION "
                                "SELECT DISTINCT institution_id, prev_role FROM timing_src"):
        for column in ("role", "prev_role"):
            conn.execute(
                f"""UPDATE event_timing t SET {column} = ? FROM run_rare_texts r
                    WHERE t.run_id = ? AND t.institution_id = r.institution_id AND t.{column} = r.text""",
                [OTHER_ROLE, run_id])


def _case_standards(conn: duckdb.DuckDBPyConnection, models: dict[str, SopModel],
                    calendars: dict[str, WorkingCalendar], case_filter: str, events: str) -> int:
    """``case_sla_breach`` for case_time and for each between-step SLA."""
    checks: list[tuple[str, str | None, str | None, str | None, TimeStandard, str | None]] = []
    for sop_id, model in models.items():
        case_std = parse_time(model.case_time, model.clock)
        if case_std is not None:
            checks.append((sop_id, None, None, None, case_std, model.case_time))
        for sla in model.slas:
            std = parse_time(sla.time, model.clock)
            if std is not None:
                checks.append((sop_id, sla.id, sla.from_, sla.to, std, sla.time))
    found = 0
    for sop_id, sla_id, step_a, step_b, std, text in checks:
        if step_a is None:
            spans = conn.execute(
                f"""SELECT institution_id, case_id, min(coalesce(ts_start, ts_end)) AS a, max(ts_end) AS b
                    FROM {events} e WHERE sop_id = ? AND {case_filter} GROUP BY ALL""", [sop_id]).df()
        else:
            spans = conn.execute(
                f"""SELECT institution_id, case_id,
                           min(coalesce(ts_start, ts_end)) FILTER (WHERE step_id = ?) AS a,
                           min(ts_end) FILTER (WHERE step_id = ?) AS b
                    FROM {events} e WHERE sop_id = ? AND {case_filter} GROUP BY ALL
                    HAVING a IS NOT NULL AND b IS NOT NULL""", [step_a, step_b, sop_id]).df()
        if spans.empty:
            continue
        breach_parts = []
        for inst, part in spans.groupby("institution_id", sort=True):
            value = calendars[str(inst)].measure(std.measure, part["a"], part["b"])
            over = value > std.maximum + 1e-9
            if over.any():
                breach_parts.append(part[over].assign(value=value[over]))
        if not breach_parts:
            continue
        breaches = pd.concat(breach_parts, ignore_index=True)
        breaches["sop_id"] = sop_id
        breaches["step_id"] = sla_id
        breaches["expected"] = text
        breaches["maximum"] = std.maximum
        breaches["measure"] = std.measure
        conn.register("breach_df", breaches)
        conn.execute(
            """INSERT INTO run_deviations
               SELECT institution_id, sop_id, case_id, 'case_sla_breach', step_id, NULL, expected,
                      printf('%.1f', value), b,
                      json_object('duration', value, 'maximum', maximum, 'measure', measure, 'from', a, 'to', b)
               FROM breach_df"""
        )
        conn.unregister("breach_df")
        found += len(breaches)
    return found


def _stalled(conn: duckdb.DuckDBPyConnection, models: dict[str, SopModel],
             calendars: dict[str, WorkingCalendar], as_of: dt.datetime, case_filter: str, events: str) -> int:
    """``stalled_case`` for open cases, measured against the next steps' largest standard."""
    thresholds = []
    for sop_id, model in models.items():
        succ = model.successors()
        for step in model.steps:
            nexts = [(n, parse_time(model.step(n).time, model.clock)) for n in succ[step.id] if n != END]
            if step.repeat:
                nexts.append((step.id, parse_time(step.time, model.clock)))
            elif not nexts:
                continue  # only the end can follow: an open case waiting here awaits closure, not a step
            timed = [(n, s) for n, s in nexts if s is not None]
            # the step whose standard counts is named in the deviation, so that it can be explained
            next_step, std = (max(timed, key=lambda t: (t[1].measure == "elapsed_minutes", t[1].maximum))
                              if timed else (None, DEFAULT_STALL))
            thresholds.append((sop_id, step.id, std.measure, std.maximum, std.raw, next_step))
    if not thresholds:
        return 0
    conn.register("stall_df", pd.DataFrame(
        thresholds, columns=["sop_id", "step_id", "measure", "maximum", "raw", "next_step"]))
    # the last event's end, and the step of the last one mapped to a step (by time, batch and row)
    if not conn.execute("SELECT count(*) FROM cases WHERE status = 'open' AND last_at IS NULL").fetchall()[0][0]:
        # ingest keeps them per case: the events need no reading (at 10M events that read took 0.25-0.9 s)
        last_sql = f"""
            SELECT e.institution_id, e.sop_id, e.case_id, e.last_step_id AS step_id, e.last_at AS ts_end,
                   s.measure, s.maximum, s.raw, s.next_step
            FROM cases e JOIN stall_df s ON s.sop_id = e.sop_id AND s.step_id = e.last_step_id
            WHERE e.status = 'open' AND e.sop_id IN (SELECT sop_id FROM run_models) AND {case_filter}"""
    else:  # rows an older version wrote
        last_sql = f"""
            SELECT c.institution_id, c.sop_id, c.case_id, l.step_id, l.ts_end, s.measure, s.maximum, s.raw,
                   s.next_step
            FROM cases c
            JOIN (SELECT institution_id, sop_id, case_id, max(ts_end) AS ts_end,
                         arg_max(step_id, (ts_end, batch_id, source_row)) AS step_id
                  FROM {events} e WHERE sop_id IN (SELECT sop_id FROM run_models) AND {case_filter}
                  GROUP BY ALL) l USING (institution_id, sop_id, case_id)
            JOIN stall_df s ON s.sop_id = l.sop_id AND s.step_id = l.step_id
            WHERE c.status = 'open'"""
    # strings stay in DuckDB; only the last event's time and the standard travel to numpy (as in compute_timing)
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE stall_src AS
                     SELECT *, {_measure_code_sql("measure")} AS measure_code FROM ({last_sql})""")
    conn.unregister("stall_df")
    parts = []
    for (inst,) in conn.execute("SELECT DISTINCT institution_id FROM stall_src ORDER BY 1").fetchall():
        part = conn.execute("SELECT rowid AS rid, ts_end, measure_code, maximum FROM stall_src "
                            "WHERE institution_id = ?", [inst]).df()
        now = pd.Series(pd.Timestamp(as_of), index=part.index)
        value = _measure(calendars[str(inst)], part["measure_code"].to_numpy(), part["ts_end"], now)
        over = value > part["maximum"].to_numpy() + 1e-9
        if over.any():
            parts.append(pd.DataFrame({"rid": part["rid"].to_numpy()[over], "value": value[over]}))
    if not parts:
        return 0
    stalled = pd.concat(parts, ignore_index=True)
    conn.register("stalled_df", stalled)
    conn.execute(
        """INSERT INTO run_deviations
           SELECT s.institution_id, s.sop_id, s.case_id, 'stalled_case', s.step_id, NULL, s.raw,
                  printf('%.1f', v.value), $as_of,
                  json_object('idle', v.value, 'maximum', s.maximum, 'measure', s.measure, 'last_event', s.ts_end,
                              'next_step', s.next_step)
           FROM stall_src s JOIN stalled_df v ON v.rid = s.rowid""",
        {"as_of": as_of},
    )
    conn.unregister("stalled_df")
    return len(stalled)
