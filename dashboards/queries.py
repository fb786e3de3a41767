"""All data access of the dashboard: DuckDB SQL aggregates on the published result file, read-only.

Access is enforced here: every public function takes the logged-in user's :class:`Grants` and filters by
them in SQL, so a crafted callback request for another institution gets nothing. Aggregates come from
``case_results``, ``deviations``, ``step_metrics`` and ``variants``; ``event_timing`` is read only
filtered (one case, one SOP's histogram bins). Nothing here returns more than a page of rows
(:data:`PAGE_SIZE`) of cases or deviations.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pandas as pd

from dashboards import i18n
from pipeline.bottlenecks import MIN_MEDIAN_VALUES
from pipeline.db import set_memory_limit
from pipeline.publish import CURRENT, current_published
from pipeline.timing import DEFAULT_STALL, standard_text

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
    """The first instant (naive, wall clock) of the month ``YYYY-MM``, or of the month after it."""
    if not text:
        return None
    try:
        day = dt.datetime.strptime(text[:7], "%Y-%m")
    except ValueError:
        return None
    if after:
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return day


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@functools.cache
def _fixed_offset_us(name: str) -> int | None:
    """The zone's UTC offset in microseconds when it has had one offset since 1970 (WIB, WITA, WIT: no summer
    time), else None: its local times are then computed per row with DuckDB's ``timezone()``."""
    zone = _zone(name)
    offsets = {dt.datetime(y, m, 1, tzinfo=zone).utcoffset() for y in range(1970, 2051) for m in (1, 4, 7, 10)}
    if len(offsets) != 1:
        return None
    (offset,) = offsets
    return None if offset is None else int(offset.total_seconds()) * 1_000_000


def _utc(local: dt.datetime | None, zone_name: str) -> dt.datetime | None:
    """A wall-clock time of a zone as an aware UTC datetime."""
    return None if local is None else local.replace(tzinfo=_zone(zone_name)).astimezone(dt.UTC)


@dataclass(frozen=True)
class LocalTime:
    """What local months need from the catalogue snapshot: each institution's time zone and the rules
    documents (their students belong to every period with input, as in the reports)."""

    zones: Mapping[str, str]
    rules: Mapping[str, str]  # sop_id -> institution_id of every SOP of kind 'rules'
    deviation_spans: bool = False  # deviations carry their case's opening and closing (case_opened_at)


NO_LOCAL = LocalTime({}, {})


class _Where:
    """Builds a WHERE clause and its parameters; the grants clause is always first."""

    def __init__(self, grants: Grants, f: Filters, alias: str = "") -> None:
        self.p = alias + "." if alias else ""
        self.parts: list[str] = []
        self.params: list[Any] = []
        allowed: list[str] | None = None if grants.all_institutions else sorted(grants.institutions)
        if f.inst:
            allowed = [f.inst] if allowed is None or f.inst in allowed else []
        self.allowed = allowed
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

    def _zone_groups(self, local: LocalTime) -> dict[str, list[str]]:
        """The institutions in view by time zone (institutions missing from the snapshot count as UTC)."""
        insts = sorted(local.zones) if self.allowed is None else self.allowed
        groups: dict[str, list[str]] = {}
        for inst in insts:
            groups.setdefault(local.zones.get(inst) or "UTC", []).append(inst)
        return groups or {"UTC": []}

    def _per_zone(self, local: LocalTime, build: Any) -> _Where:
        """One condition per time zone in view, ``build(zone) -> (sql, params)``; OR-ed, each narrowed to its
        institutions when more than one zone is in view (one zone: a plain range the zone maps can prune)."""
        groups = self._zone_groups(local)
        parts: list[str] = []
        params: list[Any] = []
        for zone, insts in sorted(groups.items()):
            sql, values = build(zone)
            if len(groups) > 1:
                sql = f"{self.p}institution_id IN ({', '.join('?' * len(insts))}) AND {sql}"
                values = [*insts, *values]
            parts.append(f"({sql})")
            params.extend(values)
        self.parts.append("(" + " OR ".join(parts) + ")")
        self.params.extend(params)
        return self

    def local_period(self, column: str, f: Filters, local: LocalTime) -> _Where:
        """``column`` (TIMESTAMPTZ) within the months ``f.start``..``f.end`` of each institution's local time."""
        lo, hi = _month_start(f.start), _month_start(f.end, after=True)
        if lo is None and hi is None:
            return self

        def build(zone: str) -> tuple[str, list[Any]]:
            conds, values = [], []
            if lo is not None:
                conds.append(f"{self.p}{column} >= ?")
                values.append(_utc(lo, zone))
            if hi is not None:
                conds.append(f"{self.p}{column} < ?")
                values.append(_utc(hi, zone))
            return " AND ".join(conds), values

        return self._per_zone(local, build)

    def case_period(self, f: Filters, local: LocalTime, *, opened: str = "opened_at",
                    closed: str = "closed_at") -> _Where:
        """Cases (``case_results``) of the period, the reports' rule (pipeline/report.py ``_PERIOD_CASES``): a
        case belongs to the month it was opened in, in its institution's local time; a student under a rules
        document to every month from opening to closing (the month of the last input). ``opened`` and
        ``closed``: the columns with the case's opening and closing."""
        lo, hi = _month_start(f.start), _month_start(f.end, after=True)
        if lo is None and hi is None:
            return self
        insts = None if self.allowed is None else set(self.allowed)
        rules = sorted(s for s, i in local.rules.items() if (insts is None or i in insts)
                       and (f.sop is None or f.sop == s))
        p = self.p

        def build(zone: str) -> tuple[str, list[Any]]:
            lo_utc, hi_utc = _utc(lo, zone), _utc(hi, zone)
            opened_in = [f"{p}{opened} >= ?"] * (lo is not None) + [f"{p}{opened} < ?"] * (hi is not None)
            opened_params = [v for v in (lo_utc, hi_utc) if v is not None]
            if not rules:
                return " AND ".join(opened_in), opened_params
            span = [f"{p}{opened} < ?"] * (hi is not None) + \
                [f"coalesce({p}{closed}, {p}{opened}) >= ?"] * (lo is not None)
            span_params = [v for v in (hi_utc, lo_utc) if v is not None]
            return (f"CASE WHEN {p}sop_id IN ({', '.join('?' * len(rules))}) THEN {' AND '.join(span)} "
                    f"ELSE {' AND '.join(opened_in)} END", [*rules, *span_params, *opened_params])

        return self._per_zone(local, build)

    def of_period_cases(self, grants: Grants, f: Filters, local: LocalTime, table: str = "deviations") -> _Where:
        """Rows (deviations, events) of the cases of the period (:meth:`case_period`): they count with their case,
        as in the reports, whenever they happened. Deviations that carry their case's opening and closing need
        no join with the case results (at 10M events the join cost a period's deviations 45-85 ms)."""
        if _month_start(f.start) is None and _month_start(f.end) is None:
            return self
        if table == "deviations" and local.deviation_spans:
            return self.case_period(f, local, opened="case_opened_at", closed="case_closed_at")
        wc = _Where(grants, f, "r").eq("sop_id", f.sop).eq("case_id", f.case).case_period(f, local)
        p = self.p
        return self.add(f"({p}institution_id, {p}sop_id, {p}case_id) IN (SELECT (r.institution_id, r.sop_id, "
                        f"r.case_id) FROM case_results r WHERE {wc.sql})", *wc.params)

    def local_epoch_us(self, column: str, local: LocalTime) -> tuple[str, list[Any]]:
        """SQL for ``column``'s local wall-clock time as epoch microseconds, per institution: integer arithmetic
        for zones with one UTC offset (5x cheaper than calendar functions on TIMESTAMPTZ), ``timezone()`` else."""
        col = f"{self.p}{column}"
        branches: list[tuple[list[str], str, list[Any]]] = []
        by_offset: dict[int, list[str]] = {}
        for zone, insts in self._zone_groups(local).items():
            offset = _fixed_offset_us(zone)
            if offset is None:
                branches.append((insts, f"epoch_us(timezone(?, {col}))", [zone]))
            else:
                by_offset.setdefault(offset, []).extend(insts)
        branches += [(insts, f"epoch_us({col}) + ?", [off]) for off, insts in sorted(by_offset.items())]
        if len(branches) == 1:
            return branches[0][1], branches[0][2]
        sql, params = "CASE", []
        for insts, expr, values in branches:
            sql += f" WHEN {self.p}institution_id IN ({', '.join('?' * len(insts))}) THEN {expr}"
            params += [*insts, *values]
        return sql + f" ELSE epoch_us({col}) END", params

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


@dataclass(frozen=True)
class Names:
    """What the pages show instead of ids: institution names, SOP labels (number · title, no two alike),
    each SOP's kind, and readable labels of the ids a deviation carries as its step that are no step
    (a rule's id in a rules document, a between-steps limit's id); read from the small catalogue tables
    once per published file (:class:`_Generation`)."""

    institutions: Mapping[str, str]
    sops: Mapping[str, str]
    kinds: Mapping[str, str]
    steps: Mapping[tuple[str, str], str]

    def inst(self, institution_id: Any) -> str:
        return self.institutions.get(str(institution_id), str(institution_id)) if institution_id else "-"

    def sop(self, sop_id: Any) -> str:
        return self.sops.get(str(sop_id), str(sop_id)) if sop_id else "-"

    def step(self, sop_id: Any, step_id: Any) -> Any:
        return self.steps.get((str(sop_id), str(step_id)), step_id)


NO_NAMES = Names({}, {}, {}, {})


def _names(insts: pd.DataFrame, sop_rows: pd.DataFrame) -> Names:
    """:class:`Names` from the rows of ``institutions`` and ``sops`` (with the model as JSON text)."""
    inst_names = {str(i): str(n) for i, n in zip(insts.get("institution_id", []), insts.get("name", []),
                                                  strict=True) if n is not None and not pd.isna(n)}
    labels = {str(r["sop_id"]): i18n.sop_label(r["number"], r["title"]) or str(r["sop_id"])
              for r in sop_rows.to_dict("records")}
    steps: dict[tuple[str, str], str] = {}
    kinds: dict[str, str] = {}
    for r in sop_rows.to_dict("records"):
        sop_id = str(r["sop_id"])
        kinds[sop_id] = str(r["kind"])
        try:
            model = json.loads(r["model"]) if isinstance(r["model"], str) else {}
        except ValueError:
            model = {}
        for rule in model.get("rules") or []:
            if isinstance(rule, dict) and rule.get("id") and rule.get("text"):
                steps[(sop_id, str(rule["id"]))] = i18n.short(" ".join(str(rule["text"]).split()), 60)
        for sla in model.get("slas") or []:
            if isinstance(sla, dict) and sla.get("id") and sla.get("from") and sla.get("to"):
                steps[(sop_id, str(sla["id"]))] = f"{sla['from']} \u2192 {sla['to']}"
    return Names(inst_names, i18n.unique_labels(labels), kinds, steps)


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
        # columns newer versions added, as 'table.column' beside the table names (a file published before has none)
        self.tables |= {r[0] for r in self.conn.execute(
            "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'main' "
            "AND table_name || '.' || column_name IN ('step_metrics.n_wait', 'deviations.case_opened_at')"
        ).fetchall()}
        # the catalogue snapshot, read once per file: time zones and rules documents, and the names pages show
        insts = self.conn.execute("SELECT institution_id, name, timezone FROM institutions").df() \
            if "institutions" in self.tables else pd.DataFrame()
        sops = self.conn.execute("SELECT sop_id, institution_id, number, title, kind, CAST(model AS VARCHAR) "
                                 "AS model FROM sops").df() if "sops" in self.tables else pd.DataFrame()
        zones = dict(zip(insts.get("institution_id", []), insts.get("timezone", []), strict=True))
        rules = {} if sops.empty else dict(sops.loc[sops["kind"] == "rules", ["sop_id", "institution_id"]].values)
        self.local = LocalTime(zones, rules, "deviations.case_opened_at" in self.tables)
        self.names = _names(insts, sops)
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

    def _catalogue(self) -> tuple[LocalTime, Names]:
        """What the current file's catalogue snapshot gave when it was opened (plain values, kept after release)."""
        gen = self._acquire()
        if gen is None:
            return NO_LOCAL, NO_NAMES
        self._release(gen)
        return gen.local, gen.names

    def local_time(self) -> LocalTime:
        """Time zones and rules documents of the current file (read once per file)."""
        return self._catalogue()[0]

    def names(self) -> Names:
        """The :class:`Names` of the current file (read once per file)."""
        return self._catalogue()[1]

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


def held_institutions(src: Source, grants: Grants, f: Filters) -> pd.DataFrame:
    """The institutions in view that the latest run left out because their SOP files had errors (run.py keeps
    their earlier results): name, files, the as_of of the run that last checked them."""
    w = _Where(grants, f, "i")
    return _df(src, f"""
        WITH latest AS (SELECT params->'held' AS h FROM runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1),
        held AS (SELECT institution_id, h->institution_id AS info
                 FROM (SELECT h, unnest(json_keys(h)) AS institution_id FROM latest))
        SELECT i.institution_id, i.name, i.timezone,
               array_to_string(from_json(info->'files', '["VARCHAR"]'), ', ') AS files,
               TRY_CAST(info->>'checked_as_of' AS TIMESTAMPTZ) AS checked_as_of
        FROM held JOIN institutions i USING (institution_id) WHERE {w.sql} ORDER BY i.name""", w.params)


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
    """Compliance by institution, SOP and month, in total, and the deviations by kind, of one set of cases.

    A period means the reports' rule (:meth:`_Where.case_period`): the cases opened in its months, in each
    institution's local time, and their deviations whenever they happened; so the KPIs, the trend, the kind
    bars and the Penyimpangan page agree with each other and with ``patuh report``.

    One scan groups the cases by (institution, SOP, local day), a few thousand rows; the roll-ups are sums
    of those. The day is integer arithmetic on the epoch (:meth:`_Where.local_epoch_us`): calendar functions
    on TIMESTAMPTZ (strftime, date_trunc, timezone) cost 2-5x more per row, and GROUPING SETS several scans.
    """
    local = src.local_time()
    w = _Where(grants, f, "r").eq("sop_id", f.sop).case_period(f, local)
    day_sql, day_params = w.local_epoch_us("opened_at", local)
    fine = _df(src, f"""
        SELECT r.institution_id, r.sop_id, ({day_sql}) // 86400000000 AS day, count(*) AS cases,
               count(*) FILTER (WHERE r.compliant) AS compliant, sum(r.n_deviations) AS deviations,
               count(*) FILTER (WHERE r.status = 'open') AS open_cases
        FROM case_results r WHERE {w.sql} GROUP BY ALL
    """, [*day_params, *w.params])
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
    wd = _Where(grants, f, "d").eq("sop_id", f.sop).of_period_cases(grants, f, local)
    # one scan: deviations per kind, and the stalled cases (the engine writes one stalled_case deviation
    # per stalled case, and only for open ones)
    kinds = _df(src, f"""
        SELECT d.kind, count(*) AS n FROM deviations d WHERE {wd.sql} GROUP BY d.kind ORDER BY n DESC, d.kind
    """, wd.params)
    stalled = kinds.loc[kinds["kind"] == "stalled_case", "n"] if not kinds.empty else kinds
    total["stalled"] = int(stalled.to_numpy()[0]) if len(stalled) else 0
    return {"total": total, "institution": roll(["institution_id"]).sort_values("institution_id"),
            "sop": roll(["institution_id", "sop_id"]).sort_values("sop_id"),
            "month": roll(["month"]).sort_values("month").reset_index(drop=True),
            "kind": kinds}


# ------------------------------------------------------------------------------------------ process


def _medians_sql(src: Source) -> str:
    """SQL (over ``step_metrics m`` grouped by step): the months' median waiting and processing times, each
    weighted by the values it comes from (a first step waits in almost none of its executions), and none
    from fewer than :data:`MIN_MEDIAN_VALUES` values. Files published before the counts weigh by executions."""
    counted = has_table(src, "step_metrics.n_wait")
    out = []
    for measure in ("wait", "proc"):
        weight = f"coalesce(m.n_{measure}, m.n)" if counted else "m.n"
        values = f"sum({weight}) FILTER (WHERE m.{measure}_p50 IS NOT NULL)"
        out.append(f"CASE WHEN {values} >= {MIN_MEDIAN_VALUES} THEN sum(m.{measure}_p50 * {weight}) / {values} "
                   f"END AS {measure}_p50")
    return ", ".join(out)


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
               {_medians_sql(src)}
        FROM step_metrics m WHERE {wm.sql} GROUP BY m.step_id
    """, wm.params)
    local = src.local_time()
    wd = _Where(grants, f, "d").eq("sop_id", sop_id).of_period_cases(grants, f.with_(sop=sop_id), local)
    devs = _df(src, f"""
        SELECT d.step_id, count(*) AS n_dev,
               count(*) FILTER (WHERE d.kind IN ('missing_step', 'wrong_order', 'repeated_step')) AS n_flow_dev
        FROM deviations d WHERE {wd.sql} AND d.step_id IS NOT NULL GROUP BY d.step_id
    """, wd.params)
    steps = steps.merge(metrics, on="step_id", how="left").merge(devs, on="step_id", how="left")
    steps[["n_dev", "n_flow_dev"]] = steps[["n_dev", "n_flow_dev"]].fillna(0)
    wc = _Where(grants, f, "r").eq("sop_id", sop_id).case_period(f.with_(sop=sop_id), local)
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
    wc = _Where(grants, f, "r").eq("sop_id", sop_id).case_period(f.with_(sop=sop_id), src.local_time())
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
    local = src.local_time()
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
            wc = _Where(grants, f, "r").eq("sop_id", sop_id).case_period(f.with_(sop=sop_id), local)
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
        we = _Where(grants, f, "e").eq("sop_id", sop_id).of_period_cases(grants, f.with_(sop=sop_id), local,
                                                                          "events")
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


def _deviation_where(src: Source, grants: Grants, f: Filters) -> _Where:
    """The deviations the filters ask for; a period selects the deviations of the cases opened in it (the same
    rule as the overview and the reports), not the deviations that happened in it."""
    w = _Where(grants, f, "d").eq("sop_id", f.sop).eq("kind", f.kind).eq("step_id", f.step)
    w.eq("severity", f.sev).eq("case_id", f.case).of_period_cases(grants, f, src.local_time())
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
    w = _deviation_where(src, grants, f)
    with src.cursor() as handle:
        if handle is None:
            return pd.DataFrame(), 0
        cur, _ = handle
        # one pass over the filtered set for the page and the count (a period's filter is a semi-join on the
        # cases: evaluating it twice cost 2x): the selected rows' sort keys, then the page's rows by rowid
        rows = cur.execute(f"""
            WITH sel AS MATERIALIZED (
                SELECT d.rowid AS rid, d.occurred_at, d.institution_id, d.sop_id, d.case_id, d.kind, d.step_id,
                       d.severity FROM deviations d WHERE {w.sql}),
            pg AS (SELECT d.rid FROM sel d ORDER BY {order_sql} LIMIT {limit} OFFSET {start})
            SELECT {_DEV_COLUMNS}, (SELECT count(*) FROM sel) AS total
            FROM deviations d SEMI JOIN pg ON d.rowid = pg.rid ORDER BY {order_sql}
        """, w.params).df()
        if rows.empty:  # a page past the end: the count alone
            total_row = cur.execute(f"SELECT count(*) FROM deviations d WHERE {w.sql}", w.params).fetchone()
            return rows.drop(columns=["total"], errors="ignore"), int(total_row[0]) if total_row else 0
    return rows.drop(columns=["total"]), int(rows["total"].iloc[0])


def _label_case(expr: str, labels: Mapping[str, str]) -> tuple[str, list[Any]]:
    """SQL mapping the codes of ``expr`` to labels (unknown codes stay as they are), with its parameters."""
    if not labels:
        return expr, []
    params: list[Any] = []
    for code, label in labels.items():
        params += [code, label]
    return f"CASE {expr} {' '.join('WHEN ? THEN ?' for _ in labels)} ELSE {expr} END", params


def _export_select(lang: str) -> tuple[str, list[Any]]:
    """The export's columns in ``lang``: the measured value with its unit (a separate number and unit, and
    the text the table shows: ``157,7 hari kerja``), kinds, severities and rule texts as the dashboard says
    them (i18n.observed_text, in SQL: no per-row Python)."""
    comma = i18n.norm_lang(lang) == "id"

    def num(expr: str, digits: int) -> str:
        text = f"printf('%.{digits}f', {expr})"
        return f"replace({text}, '.', ',')" if comma else text

    unit_labels = {m: i18n.t(f"unit.{m}", lang) for m in ("working_minutes", "working_days", "elapsed_minutes")}
    kind_sql, kind_params = _label_case("d.kind", {k: i18n.kind_label(k, lang) for k in DEVIATION_KINDS})
    sev_sql, sev_params = _label_case("d.severity", {s: i18n.sev_label(s, lang) for s in SEVERITIES})
    unit_sql, unit_params = _label_case("measure", unit_labels)
    level_sql, level_params = _label_case("x", i18n.LEVEL_LABELS)
    problem_sql, problem_params = _label_case("d.detail->>'problem'", {
        p: i18n.t(f"rule.{p}", lang) for p in ("no_remedial", "remedial_too_late")})
    t_ = i18n.t
    duration_text = f"""CASE
        WHEN measure = 'working_days' THEN {num("value", 1)} || ' ' || ?
        WHEN measure = 'elapsed_minutes' AND value >= 2880 THEN {num("value / 1440", 1)} || ' ' || ?
        WHEN measure = 'elapsed_minutes' AND value >= 120 THEN {num("value / 60", 1)} || ' ' || ?
        WHEN measure = 'elapsed_minutes' THEN printf('%d', round(value)::BIGINT) || ' ' || ?
        WHEN value >= 120 THEN {num("value / 60", 1)} || ' ' || ?
        ELSE printf('%d', round(value)::BIGINT) || ' ' || ? END"""
    duration_params = [t_("unit.working_days", lang), t_("unit.elapsed_days", lang), t_("unit.elapsed_hours", lang),
                       t_("unit.elapsed_minutes", lang), t_("unit.hours", lang), t_("unit.working_minutes", lang)]
    score = "TRY_CAST(d.detail->>'score' AS DOUBLE)"
    pass_mark = "TRY_CAST(d.detail->>'pass_mark' AS DOUBLE)"
    sql = f"""
        strftime(d.occurred_at, '%Y-%m-%d %H:%M:%S') AS occurred_at_utc,
        strftime(timezone(coalesce(i.timezone, 'UTC'), d.occurred_at), '%Y-%m-%d %H:%M') AS occurred_at_local,
        d.institution_id, d.sop_id, d.case_id, d.kind, {kind_sql} AS kind_label, d.step_id, d.activity,
        CASE d.expected WHEN ? THEN ? ELSE d.expected END AS expected,
        CASE WHEN measure IS NOT NULL AND value IS NOT NULL THEN {duration_text}
             WHEN json_type(d.detail->'path') = 'ARRAY' THEN array_to_string(
                 list_transform(from_json(d.detail->'path', '["VARCHAR"]'), lambda x: {level_sql}), ' \u2192 ')
             WHEN {score} IS NOT NULL AND {pass_mark} IS NOT NULL THEN {num(score, 1)} || ' < KKM '
                 || {num(pass_mark, 1)} || coalesce(' (' || ({problem_sql}) || ')', '')
             ELSE d.observed END AS observed,
        CASE WHEN measure IS NOT NULL THEN round(value, 2) END AS observed_value,
        CASE WHEN value IS NOT NULL THEN {unit_sql} END AS observed_unit,
        d.severity, {sev_sql} AS severity_label"""
    default_std = [DEFAULT_STALL.raw, standard_text(DEFAULT_STALL.raw, i18n.norm_lang(lang))]
    params = [*kind_params, *default_std, *duration_params, *level_params, *problem_params, *unit_params, *sev_params]
    return sql, params


def export_deviations_csv(src: Source, grants: Grants, f: Filters, out: Path, lang: str = i18n.DEFAULT) -> int:
    """Write the whole filtered set as CSV for Excel (UTF-8 with a byte order mark, as ``patuh quarantine
    --out``) with DuckDB's COPY; labels and units in ``lang``. Returns the number of rows."""
    w = _deviation_where(src, grants, f)
    select, select_params = _export_select(lang)
    part = out.with_name(out.name + ".part")
    with src.cursor() as handle:
        if handle is None:
            out.write_text("", encoding="utf-8")
            return 0
        cur, _ = handle
        row = cur.execute(f"""
            COPY (SELECT {select}
                  FROM (SELECT d.*, d.detail->>'measure' AS measure,
                               TRY_CAST(coalesce(d.detail->>'duration', d.detail->>'idle') AS DOUBLE) AS value
                        FROM deviations d WHERE {w.sql}) d
                       LEFT JOIN institutions i ON i.institution_id = d.institution_id
                  ORDER BY d.occurred_at DESC, d.case_id, d.kind)
            TO '{str(part).replace("'", "''")}' (HEADER, DELIMITER ',')
        """, [*select_params, *w.params]).fetchone()
    with out.open("wb") as dst, part.open("rb") as src_file:
        dst.write(b"\xef\xbb\xbf")  # Excel reads the file as UTF-8 only with a BOM
        shutil.copyfileobj(src_file, dst)
    part.unlink(missing_ok=True)
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


_SLA_JSON = '[{"id": "VARCHAR", "from": "VARCHAR", "to": "VARCHAR", "time": "VARCHAR", "text": "VARCHAR"}]'


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
        # what the explanations name: a stalled case's next step (its standard is the deviation's expected;
        # the deviation's step is the last one done), and a between-steps limit's steps and wording (its
        # step_id is the SLA's id in the SOP model)
        devs = cur.execute(f"""
            WITH sla AS (
                SELECT unnest(from_json(s.model->'slas', '{_SLA_JSON}')) AS sla
                FROM sops s WHERE s.sop_id = ? AND json_type(s.model->'slas') = 'ARRAY')
            SELECT d.kind, d.step_id, coalesce(d.activity, st.activity) AS activity, d.expected, d.observed,
                   d.severity, d.occurred_at, CAST(d.detail AS VARCHAR) AS detail,
                   d.detail->>'next_step' AS next_step, nx.activity AS next_activity,
                   sla.sla['from'] AS sla_from, sla.sla['to'] AS sla_to, sla.sla['text'] AS sla_text,
                   d.detail->>'from' IS NOT NULL AS between_steps
            FROM deviations d
                 LEFT JOIN sop_steps st ON st.sop_id = d.sop_id AND st.step_id = d.step_id
                 LEFT JOIN sop_steps nx ON nx.sop_id = d.sop_id AND nx.step_id = d.detail->>'next_step'
                 LEFT JOIN sla ON d.kind = 'case_sla_breach' AND sla.sla['id'] = d.step_id
            WHERE d.institution_id = ? AND d.sop_id = ? AND d.case_id = ?
            ORDER BY d.occurred_at, d.kind LIMIT 200
        """, [row["sop_id"], *key]).df()
    return {"case": row, "events": events, "deviations": devs}


def attention_cases(src: Source, grants: Grants, f: Filters, limit: int = 20) -> pd.DataFrame:
    """The most recent non-compliant cases (most deviations first within a day), at most a page."""
    w = _Where(grants, f, "r").eq("sop_id", f.sop).case_period(f, src.local_time()).add("NOT r.compliant")
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
    # the executions that ended in the months asked for, local time: the months of step_metrics
    we = _Where(grants, f, "e").eq("sop_id", sop_id).local_period("ts_end", f, src.local_time())
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
        SELECT m.step_id, sum(m.n) AS n, max(m.wait_p90) AS wait_p90_max, {_medians_sql(src)},
               sum(m.share_over_standard * m.n) / nullif(sum(m.n) FILTER (WHERE m.share_over_standard
                   IS NOT NULL), 0) AS share_over
        FROM step_metrics m WHERE {wm.sql} GROUP BY m.step_id
    """, wm.params)
    return {"steps": steps, "bins": bins, "metrics": metrics}


def open_cases(src: Source, grants: Grants, f: Filters, limit: int = PAGE_SIZE) -> tuple[pd.DataFrame, int]:
    """The open cases the overview's "Kasus terbuka" counts (same period rule), most recent first: at most a
    page of them, and how many there are."""
    w = _Where(grants, f, "r").eq("sop_id", f.sop).case_period(f, src.local_time()).add("r.status = 'open'")
    df = _df(src, f"""
        SELECT r.case_id, r.institution_id, r.sop_id, r.opened_at, r.status, r.n_deviations,
               count(*) OVER () AS total
        FROM case_results r WHERE {w.sql}
        ORDER BY r.opened_at DESC, r.case_id LIMIT {min(limit, PAGE_SIZE)}
    """, w.params)
    total = int(df["total"].iloc[0]) if not df.empty else 0
    return df.drop(columns=["total"], errors="ignore"), total
