"""All data access of the dashboard: DuckDB SQL aggregates on the published result file, read-only.

Access is enforced here: every public function takes the logged-in user's :class:`Grants` and filters by
them in SQL, so a crafted callback request for another institution gets nothing. Aggregates come from
``case_results``, ``deviations``, ``step_metrics`` and ``variants``; ``event_timing`` is read only
filtered (one case, one SOP's histogram bins). Nothing here returns more than a page of rows
(:data:`PAGE_SIZE`) of cases or deviations.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.db import set_memory_limit
from pipeline.publish import CURRENT, current_published

PAGE_SIZE = 100
DEVIATION_KINDS = (
    "missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step",
    "case_sla_breach", "wrong_role", "missing_document", "stalled_case", "rule_breach",
)
SEVERITIES = ("high", "medium", "low")
FLOW_KINDS = ("missing_step", "unexpected_step", "wrong_order", "repeated_step")


# ------------------------------------------------------------------------------------------ grants


@dataclass(frozen=True)
class Grants:
    """The institutions a user may see; ``all_institutions`` for QA."""

    all_institutions: bool = False
    institutions: frozenset[str] = frozenset()

    @classmethod
    def only(cls, ids: Sequence[str]) -> Grants:
        return cls(False, frozenset(ids))

    def allows(self, institution_id: str | None) -> bool:
        return institution_id is not None and (self.all_institutions or institution_id in self.institutions)


ALL = Grants(True)
NONE = Grants(False)


@dataclass(frozen=True)
class Filters:
    """What the URL asks for. Every field is untrusted input: it only ever narrows what grants allow."""

    inst: str | None = None
    sop: str | None = None
    start: str | None = None  # first month, YYYY-MM
    end: str | None = None  # last month, YYYY-MM
    kind: str | None = None
    step: str | None = None
    role: str | None = None
    sev: str | None = None
    case: str | None = None
    variant: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Filters:
        data = data or {}
        values: dict[str, str | None] = {}
        for f in fields(cls):
            value = data.get(f.name)
            values[f.name] = str(value)[:200] if value not in (None, "", []) else None
        return cls(**values)

    def as_dict(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def with_(self, **changes: str | None) -> Filters:
        return replace(self, **changes)


def _month_start(text: str | None, *, after: bool = False) -> dt.datetime | None:
    if not text:
        return None
    try:
        day = dt.datetime.strptime(text[:7], "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    if after:
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return day


class _Where:
    """Builds a WHERE clause and its parameters; the grants clause is always first."""

    def __init__(self, grants: Grants, f: Filters, alias: str = "") -> None:
        self.p = alias + "." if alias else ""
        self.parts: list[str] = []
        self.params: list[Any] = []
        allowed: list[str] | None = None if grants.all_institutions else sorted(grants.institutions)
        if f.inst:
            allowed = [f.inst] if allowed is None or f.inst in allowed else []
        if allowed is not None:
            if not allowed:
                self.parts.append("FALSE")
            else:
                self.parts.append(f"{self.p}institution_id IN ({', '.join('?' * len(allowed))})")
                self.params.extend(allowed)

    def eq(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.parts.append(f"{self.p}{column} = ?")
            self.params.append(value)
        return self

    def period(self, column: str, f: Filters) -> _Where:
        lo, hi = _month_start(f.start), _month_start(f.end, after=True)
        if lo is not None:
            self.parts.append(f"{self.p}{column} >= ?")
            self.params.append(lo)
        if hi is not None:
            self.parts.append(f"{self.p}{column} < ?")
            self.params.append(hi)
        return self

    def month_period(self, column: str, f: Filters) -> _Where:
        """For text periods ('YYYY-MM', step_metrics)."""
        if f.start and _month_start(f.start):
            self.parts.append(f"{self.p}{column} >= ?")
            self.params.append(f.start[:7])
        if f.end and _month_start(f.end):
            self.parts.append(f"{self.p}{column} <= ?")
            self.params.append(f.end[:7])
        return self

    def add(self, sql: str, *params: Any) -> _Where:
        self.parts.append(sql)
        self.params.extend(params)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "TRUE"


# -------------------------------------------------------------------------------------- connections


class _Generation:
    """One open published file; closed when retired and no query is using it any more."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = duckdb.connect(str(path), read_only=True)
        set_memory_limit(self.conn)
        self.conn.execute("SET TimeZone = 'UTC'")
        self.tables = {r[0] for r in self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        self.active = 0
        self.retired = False

    def close_if_idle(self) -> None:
        if self.retired and self.active == 0:
            self.conn.close()


class Source:
    """The published folder; reopens when ``CURRENT`` changes (checked with one ``stat`` per query, and
    every ``WATCH_SECONDS`` by a background thread once a file is open).

    The watch lets go of a superseded file even when nobody uses the dashboard: the run after next writes
    into that file instead of copying the current one (pipeline/publish.py), and cannot while it is open.
    """

    WATCH_SECONDS = 5.0

    def __init__(self, published_dir: Path) -> None:
        self.published_dir = published_dir
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._gen: _Generation | None = None
        self._watching = False

    def _look(self) -> None:
        try:
            gen = self._acquire(reopen=False)
        except (duckdb.Error, OSError):  # a file gone between CURRENT and opening: the next look retries
            return
        if gen is not None:
            self._release(gen)

    @staticmethod
    def _watch(ref: weakref.ref[Source]) -> None:
        # holds the source only while it looks: a source nobody keeps ends its watch, and no open file
        # outlives the interpreter in this daemon thread
        while (source := ref()) is not None:
            interval = source.WATCH_SECONDS
            del source
            time.sleep(interval)
            if (source := ref()) is not None:
                source._look()
            del source

    def _acquire(self, *, reopen: bool = True) -> _Generation | None:
        """The current file's generation, switching when ``CURRENT`` changed; with ``reopen`` False
        (the watch) nothing is opened when no file is open (before the first query, after close())."""
        try:
            st = os.stat(self.published_dir / CURRENT)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if self._gen is None and not reopen:
                return None
            if stamp != self._stamp or self._gen is None:
                path = current_published(self.published_dir)
                if self._gen is not None and path != self._gen.path:
                    # DuckDB caches database instances per path: close every old connection first
                    self._gen.retired = True
                    self._gen.close_if_idle()
                    self._gen = None
                if path is not None and self._gen is None:
                    self._gen = _Generation(path)
                    if not self._watching:
                        self._watching = True
                        threading.Thread(target=self._watch, args=(weakref.ref(self),), name="patuh-published-watch",
                                         daemon=True).start()
                self._stamp = stamp
            gen = self._gen
            if gen is not None:
                gen.active += 1
            return gen

    def _release(self, gen: _Generation) -> None:
        with self._lock:
            gen.active -= 1
            gen.close_if_idle()

    @contextmanager
    def cursor(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, set[str]] | None]:
        """A cursor on the current file and its table names, or None before the first run."""
        gen = self._acquire()
        if gen is None:
            yield None
            return
        try:
            cur = gen.conn.cursor()
            try:
                cur.execute("SET TimeZone = 'UTC'")
                yield cur, gen.tables
            finally:
                cur.close()
        finally:
            self._release(gen)

    @property
    def current_path(self) -> Path | None:
        return current_published(self.published_dir)

    def close(self) -> None:
        with self._lock:
            if self._gen is not None:
                self._gen.retired = True
                self._gen.close_if_idle()
                self._gen = None
            self._stamp = None


_SOURCES: dict[Path, Source] = {}
_SOURCES_LOCK = threading.Lock()


def source(published_dir: Path) -> Source:
    """The cached :class:`Source` for a published folder."""
    key = published_dir.resolve()
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = Source(key)
        return _SOURCES[key]


def _df(src: Source, sql: str, params: Sequence[Any] = (), *, needs: str | None = None) -> pd.DataFrame:
    with src.cursor() as handle:
        if handle is None or (needs is not None and needs not in handle[1]):
            return pd.DataFrame()
        cur, _ = handle
        return cur.execute(sql, list(params)).df()


def current_published_path(published_dir: Path) -> Path | None:
    return current_published(published_dir)


def has_table(src: Source, name: str) -> bool:
    with src.cursor() as handle:
        return handle is not None and name in handle[1]


# ---------------------------------------------------------------------------------------- catalogue


def run_info(src: Source) -> dict[str, Any] | None:
    df = _df(src, "SELECT run_id, finished_at FROM runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1")
    return None if df.empty else {str(k): v for k, v in df.iloc[0].to_dict().items()}


def institutions(src: Source, grants: Grants) -> pd.DataFrame:
    w = _Where(grants, Filters())
    return _df(src, f"SELECT institution_id, name, timezone FROM institutions WHERE {w.sql} ORDER BY name",
               w.params)


def sops(src: Source, grants: Grants, f: Filters) -> pd.DataFrame:
    w = _Where(grants, f)
    return _df(src, f"SELECT sop_id, institution_id, number, title, kind, n_steps FROM sops WHERE {w.sql} "
                    "ORDER BY institution_id, sop_id", w.params)


def periods(src: Source, grants: Grants, f: Filters) -> list[str]:
    # step_metrics is small (institution x SOP x step x month): its months stand for the cases' months
    w = _Where(grants, f.with_(start=None, end=None, sop=None))
    df = _df(src, f"SELECT DISTINCT period AS m FROM step_metrics WHERE {w.sql} ORDER BY 1", w.params)
    return [] if df.empty else [str(m) for m in df["m"]]


def sop_steps(src: Source, grants: Grants, sop_id: str) -> pd.DataFrame:
    w = _Where(grants, Filters(), "s").eq("sop_id", sop_id)
    return _df(src, f"""
        SELECT st.* FROM sop_steps st JOIN sops s USING (sop_id) WHERE {w.sql} ORDER BY st.ord
    """, w.params)


def sop_model_json(src: Source, grants: Grants, sop_id: str) -> str | None:
    w = _Where(grants, Filters()).eq("sop_id", sop_id)
    df = _df(src, f"SELECT CAST(model AS VARCHAR) AS model FROM sops WHERE {w.sql}", w.params)
    return None if df.empty else str(df["model"].iloc[0])


# ----------------------------------------------------------------------------------------- overview


def overview(src: Source, grants: Grants, f: Filters) -> dict[str, pd.DataFrame]:
    """Compliance by institution, SOP, month and in total, and deviations by kind.

    One scan groups the cases by (institution, SOP, UTC day), a few thousand rows; the roll-ups are sums
    of those. The day is integer arithmetic on the epoch: calendar functions on TIMESTAMPTZ (strftime,
    date_trunc) cost 5x more per row, and GROUPING SETS several scans.
    """
    w = _Where(grants, f, "r").eq("sop_id", f.sop).period("opened_at", f)
    fine = _df(src, f"""
        SELECT r.institution_id, r.sop_id, epoch_us(r.opened_at) // 86400000000 AS day, count(*) AS cases,
               count(*) FILTER (WHERE r.compliant) AS compliant, sum(r.n_deviations) AS deviations,
               count(*) FILTER (WHERE r.status = 'open') AS open_cases
        FROM case_results r WHERE {w.sql} GROUP BY ALL
    """, w.params)
    if not fine.empty:
        fine["month"] = pd.to_datetime(fine["day"].astype("float64") * 86400, unit="s").dt.strftime("%Y-%m")
    if fine.empty or int(fine["cases"].sum()) == 0:
        empty = pd.DataFrame(columns=["cases", "compliant", "deviations", "open_cases", "lead_p50"])
        return {"total": empty, "institution": empty, "sop": empty, "month": empty, "kind": pd.DataFrame()}
    measures = ["cases", "compliant", "deviations", "open_cases"]

    def roll(keys: list[str]) -> pd.DataFrame:
        out = fine.groupby(keys, dropna=True)[measures].sum().reset_index() if keys else \
            fine[measures].sum().to_frame().T.reset_index(drop=True)
        out["rate"] = out["compliant"] / out["cases"].where(out["cases"] > 0)
        return out

    lead = _df(src, f"SELECT median(r.lead_time_working) AS p50 FROM case_results r WHERE {w.sql} "
                    "AND r.status = 'closed'", w.params)
    total = roll([])
    total["lead_p50"] = lead["p50"].iloc[0] if not lead.empty else None
    wd = _Where(grants, f, "d").eq("sop_id", f.sop).period("occurred_at", f)
    # one scan: deviations per kind, and the stalled cases (one stalled_case deviation per open case)
    kinds = _df(src, f"SELECT d.kind, count(*) AS n FROM deviations d WHERE {wd.sql} GROUP BY d.kind "
                     "ORDER BY n DESC, d.kind", wd.params)
    stalled = kinds.loc[kinds["kind"] == "stalled_case", "n"] if not kinds.empty else kinds
    total["stalled"] = int(stalled.to_numpy()[0]) if len(stalled) else 0
    return {"total": total, "institution": roll(["institution_id"]).sort_values("institution_id"),
            "sop": roll(["institution_id", "sop_id"]).sort_values("sop_id"),
            "month": roll(["month"]).sort_values("month").reset_index(drop=True), "kind": kinds}


# ------------------------------------------------------------------------------------------ process


def process_map(src: Source, grants: Grants, f: Filters, sop_id: str) -> dict[str, pd.DataFrame]:
    """Steps with their time metrics, modelled and observed transitions, and the top variants."""
    empty = {"steps": pd.DataFrame(), "edges": pd.DataFrame(), "variants": pd.DataFrame()}
    steps = sop_steps(src, grants, sop_id)
    if steps.empty:
        return empty
    wm = _Where(grants, f, "m").eq("sop_id", sop_id).month_period("period", f)
    metrics = _df(src, f"""
        SELECT m.step_id, sum(m.n) AS n,
               sum(m.share_over_standard * m.n) / nullif(sum(m.n) FILTER (WHERE m.share_over_standard
                   IS NOT NULL), 0) AS share_over,
               sum(m.wait_p50 * m.n) / nullif(sum(m.n), 0) AS wait_p50,
               sum(m.proc_p50 * m.n) / nullif(sum(m.n), 0) AS proc_p50
        FROM step_metrics m WHERE {wm.sql} GROUP BY m.step_id
    """, wm.params)
    wd = _Where(grants, f, "d").eq("sop_id", sop_id).period("occurred_at", f)
    devs = _df(src, f"""
        SELECT d.step_id, count(*) AS n_dev,
               count(*) FILTER (WHERE d.kind IN ('missing_step', 'wrong_order', 'repeated_step')) AS n_flow_dev
        FROM deviations d WHERE {wd.sql} AND d.step_id IS NOT NULL GROUP BY d.step_id
    """, wd.params)
    steps = steps.merge(metrics, on="step_id", how="left").merge(devs, on="step_id", how="left")
    steps[["n_dev", "n_flow_dev"]] = steps[["n_dev", "n_flow_dev"]].fillna(0)
    wc = _Where(grants, f, "r").eq("sop_id", sop_id).period("opened_at", f)
    n_cases = _df(src, f"SELECT count(*) AS n FROM case_results r WHERE {wc.sql}", wc.params)
    total = int(n_cases["n"].iloc[0]) if not n_cases.empty else 0
    variants = top_variants(src, grants, f, sop_id)
    edges = _df(src, "SELECT src, dst FROM sop_edges WHERE sop_id = ?", [sop_id])
    observed = _transitions(src, grants, f, sop_id)
    if not edges.empty:
        edges["modelled"] = True
    if not observed.empty:
        edges = edges.merge(observed, on=["src", "dst"], how="outer") if not edges.empty else observed
        edges["modelled"] = edges["modelled"].astype("boolean").fillna(False).astype(bool)
    edges["n"] = edges["n"].fillna(0) if "n" in edges else 0
    flow_dev = dict(zip(steps["step_id"], steps["n_flow_dev"], strict=True))
    edges["dev_rate"] = [flow_dev.get(d, 0) / total if total else 0.0 for d in edges["dst"]]
    steps.attrs["cases"] = total
    return {"steps": steps, "edges": edges, "variants": variants}


def top_variants(src: Source, grants: Grants, f: Filters, sop_id: str, limit: int = 8) -> pd.DataFrame:
    """The most frequent paths (step sequences) of one SOP's cases."""
    wc = _Where(grants, f, "r").eq("sop_id", sop_id).period("opened_at", f)
    with src.cursor() as handle:
        if handle is None:
            return pd.DataFrame()
        cur, tables = handle
        if "variants" in tables and not (f.start or f.end):
            wv = _Where(grants, f, "v").eq("sop_id", sop_id)
            return cur.execute(f"""
                SELECT v.variant_hash, any_value(v.steps) AS steps, sum(v.n_cases) AS n_cases,
                       sum(v.fitness * v.n_cases) / sum(v.n_cases) AS fitness
                FROM variants v WHERE {wv.sql} GROUP BY v.variant_hash ORDER BY n_cases DESC, 1 LIMIT {limit}
            """, wv.params).df()
        if "variants" in tables:  # a period: count the period's cases, take each path from `variants`
            return cur.execute(f"""
                WITH top AS (
                    SELECT r.variant_hash, count(*) AS n_cases, avg(r.fitness) AS fitness
                    FROM case_results r WHERE {wc.sql} AND r.variant_hash IS NOT NULL
                    GROUP BY r.variant_hash ORDER BY n_cases DESC, 1 LIMIT {limit}
                ), paths AS (
                    SELECT variant_hash, any_value(steps) AS steps FROM variants
                    WHERE sop_id = ? AND variant_hash IN (SELECT variant_hash FROM top) GROUP BY 1
                )
                SELECT top.variant_hash, paths.steps, top.n_cases, top.fitness
                FROM top LEFT JOIN paths USING (variant_hash) ORDER BY n_cases DESC, 1
            """, [*wc.params, sop_id]).df()
        top = cur.execute(f"""
            SELECT r.variant_hash, count(*) AS n_cases, avg(r.fitness) AS fitness, min(r.case_id) AS sample
            FROM case_results r WHERE {wc.sql} AND r.variant_hash IS NOT NULL
            GROUP BY r.variant_hash ORDER BY n_cases DESC, 1 LIMIT {limit}
        """, wc.params).df()
        if top.empty:
            return top
        samples = list(top["sample"])
        paths = cur.execute(f"""
            SELECT case_id AS sample, list(step_id ORDER BY ts_end, ts_start) AS steps FROM event_timing
            WHERE sop_id = ? AND case_id IN ({', '.join('?' * len(samples))}) GROUP BY case_id
        """, [sop_id, *samples]).df()
        return top.merge(paths, on="sample", how="left").drop(columns=["sample"])


def _transitions(src: Source, grants: Grants, f: Filters, sop_id: str) -> pd.DataFrame:
    """Observed directly-follows counts (start and end included)."""
    with src.cursor() as handle:
        if handle is None:
            return pd.DataFrame(columns=["src", "dst", "n"])
        cur, tables = handle
        if "variants" in tables and not (f.start or f.end):
            wv = _Where(grants, f, "v").eq("sop_id", sop_id)
            return cur.execute(f"""
                WITH seq AS (SELECT ['start'] || v.steps || ['end'] AS s, v.n_cases FROM variants v
                             WHERE {wv.sql})
                SELECT s[i] AS src, s[i + 1] AS dst, sum(n_cases) AS n
                FROM seq, range(1, len(s)) t(i) GROUP BY ALL
            """, wv.params).df()
        if "variants" in tables:  # a period: the period's cases per path, paths from `variants`
            wc = _Where(grants, f, "r").eq("sop_id", sop_id).period("opened_at", f)
            return cur.execute(f"""
                WITH counts AS (
                    SELECT r.variant_hash, count(*) AS n_cases FROM case_results r
                    WHERE {wc.sql} AND r.variant_hash IS NOT NULL GROUP BY 1
                ), seq AS (
                    SELECT ['start'] || p.steps || ['end'] AS s, counts.n_cases
                    FROM counts JOIN (SELECT variant_hash, any_value(steps) AS steps FROM variants
                                      WHERE sop_id = ? GROUP BY 1) p USING (variant_hash)
                )
                SELECT s[i] AS src, s[i + 1] AS dst, sum(n_cases) AS n
                FROM seq, range(1, len(s)) t(i) GROUP BY ALL
            """, [*wc.params, sop_id]).df()
        we = _Where(grants, f, "e").eq("sop_id", sop_id).period("ts_end", f)
        return cur.execute(f"""
            WITH ev AS (
                SELECT e.step_id, lag(e.step_id, 1, 'start') OVER w AS prev,
                       lead(e.step_id, 1, 'end') OVER w AS nxt
                FROM event_timing e WHERE {we.sql}
                WINDOW w AS (PARTITION BY e.case_id ORDER BY e.ts_end, e.ts_start)
            )
            SELECT prev AS src, step_id AS dst, count(*) AS n FROM ev GROUP BY ALL
            UNION ALL
            SELECT step_id, 'end', count(*) FROM ev WHERE nxt = 'end' GROUP BY ALL
        """, we.params).df()


# --------------------------------------------------------------------------------------- deviations

_SORTABLE = {
    "occurred_at": "d.occurred_at", "institution_id": "d.institution_id", "sop_id": "d.sop_id",
    "case_id": "d.case_id", "kind": "d.kind", "step_id": "d.step_id",
    "severity": "CASE d.severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END",
}


def _deviation_where(grants: Grants, f: Filters) -> _Where:
    w = _Where(grants, f, "d").eq("sop_id", f.sop).eq("kind", f.kind).eq("step_id", f.step)
    w.eq("severity", f.sev).eq("case_id", f.case).period("occurred_at", f)
    if f.role:
        w.add("EXISTS (SELECT 1 FROM sop_steps st WHERE st.sop_id = d.sop_id AND st.step_id = d.step_id "
              "AND st.role = ?)", f.role)
    if f.variant:
        w.add("EXISTS (SELECT 1 FROM case_results r WHERE r.institution_id = d.institution_id AND "
              "r.sop_id = d.sop_id AND r.case_id = d.case_id AND r.variant_hash = ?)", f.variant)
    return w


_DEV_COLUMNS = """d.occurred_at, d.institution_id, d.sop_id, d.case_id, d.kind, d.step_id,
    d.activity, d.expected, d.observed, d.severity, CAST(d.detail AS VARCHAR) AS detail,
    (SELECT st.role_label FROM sop_steps st WHERE st.sop_id = d.sop_id AND st.step_id = d.step_id) AS role"""


def deviation_page(src: Source, grants: Grants, f: Filters, start: int, end: int,
                   sort_model: Sequence[Mapping[str, Any]] | None = None) -> tuple[pd.DataFrame, int]:
    """Rows ``start:end`` (at most :data:`PAGE_SIZE`) of the filtered deviations and the total count."""
    start = max(0, int(start))
    limit = max(0, min(PAGE_SIZE, int(end) - start))
    order = []
    for item in sort_model or []:
        column = _SORTABLE.get(str(item.get("colId")))
        if column:
            order.append(f"{column} {'ASC' if item.get('sort') == 'asc' else 'DESC'}")
    order_sql = ", ".join([*order, "d.occurred_at DESC", "d.case_id", "d.kind"])
    w = _deviation_where(grants, f)
    with src.cursor() as handle:
        if handle is None:
            return pd.DataFrame(), 0
        cur, _ = handle
        total_row = cur.execute(f"SELECT count(*) FROM deviations d WHERE {w.sql}", w.params).fetchone()
        total = int(total_row[0]) if total_row else 0
        rows = cur.execute(f"""
            SELECT {_DEV_COLUMNS} FROM deviations d WHERE {w.sql}
            ORDER BY {order_sql} LIMIT {limit} OFFSET {start}
        """, w.params).df()
    return rows, total


def export_deviations_csv(src: Source, grants: Grants, f: Filters, out: Path) -> int:
    """Write the whole filtered set as CSV with DuckDB's COPY; returns the number of rows."""
    w = _deviation_where(grants, f)
    with src.cursor() as handle:
        if handle is None:
            out.write_text("", encoding="utf-8")
            return 0
        cur, _ = handle
        cur.execute(f"""
            COPY (SELECT strftime(d.occurred_at, '%Y-%m-%d %H:%M:%S') AS occurred_at_utc,
                         d.institution_id, d.sop_id, d.case_id, d.kind, d.step_id, d.activity, d.expected,
                         d.observed, d.severity
                  FROM deviations d WHERE {w.sql} ORDER BY d.occurred_at DESC, d.case_id, d.kind)
            TO '{str(out).replace("'", "''")}' (HEADER, DELIMITER ',')
        """, w.params)
        row = cur.execute(f"SELECT count(*) FROM deviations d WHERE {w.sql}", w.params).fetchone()
    return int(row[0]) if row else 0


def deviation_facets(src: Source, grants: Grants, f: Filters) -> dict[str, pd.DataFrame]:
    """Choices for the deviation filters: steps and roles of the SOPs in view."""
    w = _Where(grants, f, "s").eq("sop_id", f.sop)
    steps = _df(src, f"""
        SELECT DISTINCT st.step_id, min(st.ord) AS ord, any_value(st.activity) AS activity,
               count(DISTINCT st.sop_id) AS n_sops
        FROM sop_steps st JOIN sops s USING (sop_id) WHERE {w.sql} GROUP BY st.step_id ORDER BY ord, step_id
    """, w.params)
    roles = _df(src, f"""
        SELECT st.role, any_value(st.role_label) AS role_label FROM sop_steps st JOIN sops s USING (sop_id)
        WHERE {w.sql} AND st.role IS NOT NULL GROUP BY st.role ORDER BY role_label
    """, w.params)
    return {"steps": steps, "roles": roles}


# -------------------------------------------------------------------------------------------- cases


def case_detail(src: Source, grants: Grants, case_id: str, f: Filters | None = None) -> dict[str, Any] | None:
    """One case: its result row, its events against the standards and its deviations; None if not granted."""
    f = (f or Filters()).with_(start=None, end=None)
    w = _Where(grants, f, "r").eq("sop_id", f.sop).eq("case_id", case_id)
    with src.cursor() as handle:
        if handle is None:
            return None
        cur, _ = handle
        head = cur.execute(f"""
            SELECT r.*, s.title AS sop_title, i.name AS institution_name, i.timezone
            FROM case_results r LEFT JOIN sops s ON s.sop_id = r.sop_id
                 LEFT JOIN institutions i ON i.institution_id = r.institution_id
            WHERE {w.sql} ORDER BY r.sop_id LIMIT 1
        """, w.params).df()
        if head.empty:
            return None
        row = {str(k): v for k, v in head.iloc[0].to_dict().items()}
        key = [row["institution_id"], row["sop_id"], case_id]
        events = cur.execute("""
            SELECT e.step_id, st.activity, st.no, st.role_label, e.role, st.role AS lane,
                   e.ts_start, e.ts_end, e.wait_working, e.proc_working, e.duration_std, e.standard_max,
                   e.standard_measure, e.over_standard, st.time_raw
            FROM event_timing e LEFT JOIN sop_steps st USING (sop_id, step_id)
            WHERE e.institution_id = ? AND e.sop_id = ? AND e.case_id = ?
            ORDER BY e.ts_end, e.ts_start LIMIT 500
        """, key).df()
        devs = cur.execute("""
            SELECT kind, step_id, activity, expected, observed, severity, occurred_at,
                   CAST(detail AS VARCHAR) AS detail
            FROM deviations WHERE institution_id = ? AND sop_id = ? AND case_id = ?
            ORDER BY occurred_at, kind LIMIT 200
        """, key).df()
    return {"case": row, "events": events, "deviations": devs}


def attention_cases(src: Source, grants: Grants, f: Filters, limit: int = 20) -> pd.DataFrame:
    """The most recent non-compliant cases (most deviations first within a day), at most a page."""
    w = _Where(grants, f, "r").eq("sop_id", f.sop).period("opened_at", f).add("NOT r.compliant")
    return _df(src, f"""
        SELECT r.case_id, r.institution_id, r.sop_id, r.opened_at, r.status, r.n_deviations, r.fitness
        FROM case_results r WHERE {w.sql}
        ORDER BY r.opened_at DESC, r.n_deviations DESC, r.case_id LIMIT {min(limit, PAGE_SIZE)}
    """, w.params)


def find_cases(src: Source, grants: Grants, f: Filters, prefix: str, limit: int = 10) -> pd.DataFrame:
    """Cases whose pseudonym starts with ``prefix`` (at least 4 characters)."""
    prefix = prefix.strip()
    if len(prefix) < 4:
        return pd.DataFrame()
    w = _Where(grants, f.with_(start=None, end=None), "r").eq("sop_id", f.sop)
    w.add("starts_with(r.case_id, ?)", prefix)
    return _df(src, f"""
        SELECT r.case_id, r.institution_id, r.sop_id, r.opened_at, r.status, r.n_deviations
        FROM case_results r WHERE {w.sql} ORDER BY r.case_id LIMIT {min(limit, PAGE_SIZE)}
    """, w.params)


# ---------------------------------------------------------------------------------------- step times

HIST_BINS = 24


def step_histograms(src: Source, grants: Grants, f: Filters, sop_id: str) -> dict[str, pd.DataFrame]:
    """Per step: duration histogram bins (computed in SQL), the standard and the monthly metrics."""
    steps = sop_steps(src, grants, sop_id)
    if steps.empty:
        return {"steps": steps, "bins": pd.DataFrame(), "metrics": pd.DataFrame()}
    we = _Where(grants, f, "e").eq("sop_id", sop_id).period("ts_end", f)
    x = "coalesce(e.duration_std, e.proc_working)"
    # The range per step comes from the small tables, so the events are scanned once: twice the standard
    # (the line sits mid-axis; longer runs gather in the last bin), or 1.5 x the slowest monthly p90 of
    # processing time (working minutes) for a step without a standard.
    wm = _Where(grants, f, "m").eq("sop_id", sop_id).month_period("period", f)
    p90 = _df(src, f"SELECT m.step_id, max(m.proc_p90) AS p90 FROM step_metrics m WHERE {wm.sql} "
                   "GROUP BY m.step_id", wm.params)
    ranges = steps[["step_id", "standard_measure", "standard_max"]].rename(
        columns={"standard_measure": "measure", "standard_max": "std"})
    ranges = ranges.merge(p90, on="step_id", how="left") if not p90.empty else ranges.assign(p90=None)
    ranges["measure"] = ranges["measure"].fillna("working_minutes")
    hi = ranges["std"].astype("float64") * 2
    hi = hi.fillna(ranges["p90"].astype("float64") * 1.5).fillna(60.0).clip(lower=1e-6)
    ranges["width"] = hi / HIST_BINS
    ranges = ranges.drop(columns=["p90"]).drop_duplicates("step_id")
    cases = " ".join("WHEN ? THEN ?" for _ in range(len(ranges)))
    case_params: list[Any] = []
    for step_id, width in zip(ranges["step_id"], ranges["width"], strict=True):
        case_params += [step_id, float(width)]
    counts = _df(src, f"""
        SELECT e.step_id, least(floor({x} / (CASE e.step_id {cases} END)), {HIST_BINS - 1}) AS b,
               count(*) AS cnt, count(*) FILTER (WHERE e.over_standard) AS over
        FROM event_timing e WHERE {we.sql} AND {x} IS NOT NULL GROUP BY ALL
    """, [*case_params, *we.params])
    if counts.empty:
        return {"steps": steps, "bins": pd.DataFrame(), "metrics": pd.DataFrame()}
    n = counts.groupby("step_id")["cnt"].sum().rename("n").reset_index()
    bins = counts.merge(ranges, on="step_id").merge(n, on="step_id").sort_values(["step_id", "b"])
    bins = bins.reset_index(drop=True)
    metrics = _df(src, f"""
        SELECT m.step_id, sum(m.n) AS n, sum(m.wait_p50 * m.n) / nullif(sum(m.n), 0) AS wait_p50,
               max(m.wait_p90) AS wait_p90_max, sum(m.proc_p50 * m.n) / nullif(sum(m.n), 0) AS proc_p50,
               sum(m.share_over_standard * m.n) / nullif(sum(m.n) FILTER (WHERE m.share_over_standard
                   IS NOT NULL), 0) AS share_over
        FROM step_metrics m WHERE {wm.sql} GROUP BY m.step_id
    """, wm.params)
    return {"steps": steps, "bins": bins, "metrics": metrics}
