"""Synthetic event logs with ground truth (issue 6; DESIGN sections 3, 4 and 6).

Each case walks its SOP model (:meth:`pipeline.sop.SopModel.successors`, optional steps, ``repeat``
loops, decisions with plausible branch probabilities); every event gets a performer (a small staff per
role and institution, Zipf-weighted so that the first person of a role is overloaded and waits pile up
there), and a start and an end in working time on the institution's calendar. Time is simulated on the
calendar's working-minute clock ``W`` (waits and durations simply add up there) and turned into instants
with one ``from_clock`` call per batch; instants are floored to whole minutes, so every output format
(including dd/mm/yyyy HH:MM exports) carries exactly the instants the labels were measured on.

Same seed, same bytes: numpy ``Generator(PCG64)`` streams seeded from (seed, SOP id, chunk), sorted
iteration everywhere, no clock in any file.

Ground truth (``ground_truth.csv``: institution_id, sop_id, case_id, kind, step_id, alt_step_ids,
activity, injected) is what a perfect checker reports under these rules, which the compliance engine
implements:

* **Control flow** (``missing_step``, ``unexpected_step``, ``wrong_order``, ``repeated_step``): the
  case's sequence of step ids (events ordered by ``ts_end`` then source row; an activity that is no step
  is ``?<activity>``) is aligned optimally against :func:`pipeline.pm4py_adapter.compile_sop` (log move 1,
  visible model move 1, tau 0). From the moves: a label with both a log move and a model move is
  ``wrong_order`` of that step (once per step); any other visible model move is ``missing_step``; a log
  move on a step that also has a synchronous move is ``repeated_step``; any other log move is
  ``unexpected_step`` (``step_id`` empty and ``activity`` = the raw label when it is no step). Open cases
  are aligned as prefixes (the alignment may stop anywhere once the trace is consumed), so the steps an
  open case has not reached yet are not missing (ties broken like :func:`pm4py_adapter.align_state_machine`).
  Injections happen only in cases that end before ``as_of``, and are kept only when *every* optimal
  alignment gives the injected labels (checked by enumerating all optimal alignments, and against pm4py
  with :func:`pm4py_adapter.align_variants`): a dropped required step (cost 1), a foreign activity (1),
  two adjacent distinct steps swapped (2; labelled ``wrong_order`` of one, the other in
  ``alt_step_ids``: a checker may name either), a non-repeat step done twice in a row (1).
* ``overdue_step``: per event of a step with a standard, ``ts_end - ts_start`` in the standard's measure
  (working minutes or working days on the calendar, or elapsed minutes) ``> maximum`` (+1e-9).
* ``case_sla_breach``: ``case_time`` from the first event's start to the last event's end, and each
  ``slas`` entry from the earliest start of ``from`` to the earliest end of ``to`` (when both occurred),
  for open and closed cases alike; ``step_id`` is the SLA id (empty for ``case_time``).
* ``wrong_role``: the event's role is neither the step's role nor one of its ``co_roles`` (per event).
* ``missing_document``: the step lists documents and the event's recorded ``documents`` (``"; "``
  separated, case-insensitive exact names) lack one of them (per event).
* ``stalled_case``: an open case whose last step event ended before ``as_of`` by more than the
  threshold of its last step: the largest standard of the next possible steps (successors without
  ``end``, plus the step itself when it repeats; elapsed standards rank above working ones), 5 working
  days when none has a standard; a step that can only be followed by ``end`` is never stalled.
  ``step_id`` is the last step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipeline.calendars import ORIGIN, WorkingCalendar, load_calendars
from pipeline.config import Settings, get_settings
from pipeline.errors import UserError
from pipeline.sop import END, SopModel, TimeStandard, load_catalogue, parse_time

KINDS = ("missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step",
         "case_sla_breach", "wrong_role", "missing_document", "stalled_case")
CONTROL_FLOW = ("missing_step", "unexpected_step", "wrong_order", "repeated_step")
Format = Literal["csv", "parquet", "xlsx", "xes"]
DEMO_INSTITUTIONS = ("smpn2-ngawi", "bontang-bk", "rppsa-mataram", "ipdn-jatinangor")
COLUMNS = ["case_id", "activity", "ts_start", "ts_end", "role", "resource", "documents", "status"]
TRUTH_COLUMNS = ["institution_id", "sop_id", "case_id", "kind", "step_id", "alt_step_ids", "activity", "injected"]
SKIP = ">>"
UNKNOWN = "?"
CHUNK_CASES = 50_000
DEFAULT_STALL = TimeStandard("5 hari", "working_days", None, 5.0, "day")
OFFSETS = {"Asia/Jakarta": "+07:00", "Asia/Makassar": "+08:00", "Asia/Jayapura": "+09:00"}
# fewer cases in the school holidays (June-July, late December) and around Lebaran (March 2026)
MONTH_WEIGHT = {1: 1.0, 2: 1.05, 3: 0.85, 4: 0.95, 5: 1.0, 6: 0.55, 7: 0.7, 8: 1.1, 9: 1.1, 10: 1.1,
                11: 1.05, 12: 0.6}
INSTITUTION_SHARE = {"smpn2-ngawi": 0.40, "bontang-bk": 0.27, "ipdn-jatinangor": 0.25, "rppsa-mataram": 0.08}
FOREIGN_ACTIVITIES = (
    "Input data ke aplikasi", "Rapat koordinasi internal", "Menunggu tanda tangan pimpinan",
    "Konfirmasi ulang via WhatsApp", "Fotokopi berkas", "Verifikasi ulang data", "Istirahat / ditunda",
    "Konsultasi informal",
)
Label = tuple[str, str, str]  # (kind, step_id, activity)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthFile:
    institution_id: str
    sop_id: str
    path: Path
    cases: int
    events: int
    open_cases: int


@dataclass
class SynthResult:
    out_dir: Path
    files: list[SynthFile]
    ground_truth: Path
    meta: Path
    as_of: dt.datetime
    counts: dict[str, dict[str, int]]  # kind -> {asked, injected, natural}
    mapping: Path | None = None
    expected: Path | None = None
    extra_files: list[Path] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(f.cases for f in self.files)

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)


# ---------------------------------------------------------------------------------------------------
# Control-flow labels: the rule, exact alignments on the SOP's state machine, and tie checks
# ---------------------------------------------------------------------------------------------------


def labels_from_moves(moves: Sequence[tuple[str, str | None]], step_ids: set[str]) -> list[Label]:
    """The control-flow rule of the module docstring, on one alignment's (log, model) moves."""
    log_moves = [lg for lg, md in moves if lg != SKIP and md == SKIP]
    model_moves = [md for lg, md in moves if lg == SKIP and md is not None and md != SKIP]
    synced = {lg for lg, md in moves if lg != SKIP and md is not None and md != SKIP}
    both = set(log_moves) & set(model_moves)
    out: list[Label] = [("wrong_order", s, "") for s in sorted(both)]
    out += [("missing_step", m, "") for m in model_moves if m not in both]
    for lg in log_moves:
        if lg in both:
            continue
        if lg in synced:
            out.append(("repeated_step", lg, ""))
        elif lg in step_ids:
            out.append(("unexpected_step", lg, ""))
        else:
            out.append(("unexpected_step", "", lg.removeprefix(UNKNOWN)))
    return sorted(out)


class _TooMany(Exception):
    pass


class _Aligner:
    """Alignments of one SOP's variants: the engine's choice, all optimal ones, and pm4py's."""

    def __init__(self, model: SopModel) -> None:
        from pipeline import pm4py_adapter

        self.compiled = pm4py_adapter.compile_sop(model)
        machine = pm4py_adapter.as_state_machine(self.compiled)
        if machine is None:
            raise UserError(f"{model.id}: the compiled net is not a state machine; synth cannot simulate it",
                            pesan=f"{model.id}: jaring hasil kompilasi bukan mesin keadaan (state machine); "
                                  "synth tidak dapat menyimulasikannya")
        self.machine = machine
        self.step_ids = set(model.step_ids)
        self._engine: dict[tuple[str, ...], tuple[int, list[Label]]] = {}
        self._all: dict[tuple[str, ...], tuple[int, set[tuple[Label, ...]]] | None] = {}

    def engine(self, trace: tuple[str, ...], prefix: bool = False) -> tuple[int, list[Label]]:
        """(cost in moves, labels) of the alignment the engine's exact search picks (``prefix``: open case)."""
        key = (*trace, "\x1eopen") if prefix else trace
        hit = self._engine.get(key)
        if hit is None:
            from pipeline import pm4py_adapter

            res = pm4py_adapter.align_state_machine(self.machine, trace, prefix=prefix)
            hit = (res.cost // pm4py_adapter.MOVE_COST, labels_from_moves(res.moves, self.step_ids))
            self._engine[key] = hit
        return hit

    def all_optimal(self, trace: tuple[str, ...], limit: int = 48) -> tuple[int, set[tuple[Label, ...]]] | None:
        """(cost, every label set an optimal alignment can give), or None when there are too many."""
        if trace in self._all:
            return self._all[trace]
        try:
            out: tuple[int, set[tuple[Label, ...]]] | None = self._enumerate(trace, limit)
        except _TooMany:
            out = None
        self._all[trace] = out
        return out

    def _enumerate(self, trace: tuple[str, ...], limit: int) -> tuple[int, set[tuple[Label, ...]]]:
        import heapq

        arcs = self.machine.arcs
        n = len(trace)
        State = tuple[int, str]
        Move = tuple[str, str | None]

        def edges(state: State) -> Iterator[tuple[int, State, Move | None]]:
            i, place = state
            for label, nxt in arcs[place]:
                if label is None:
                    yield 0, (i, nxt), None
                else:
                    if i < n and trace[i] == label:
                        yield 0, (i + 1, nxt), (label, label)
                    yield 1, (i, nxt), (SKIP, label)
            if i < n:
                yield 1, (i + 1, place), (trace[i], SKIP)

        start: State = (0, self.machine.source)
        goal: State = (n, self.machine.sink)
        fwd: dict[State, int] = {start: 0}
        rev: dict[State, list[tuple[int, State]]] = {}
        heap: list[tuple[int, State]] = [(0, start)]
        seen: set[State] = set()
        while heap:
            d, u = heapq.heappop(heap)
            if u in seen:
                continue
            seen.add(u)
            for c, v, _ in edges(u):
                rev.setdefault(v, []).append((c, u))
                if d + c < fwd.get(v, 1 << 30):
                    fwd[v] = d + c
                    heapq.heappush(heap, (d + c, v))
        opt = fwd[goal]
        bwd: dict[State, int] = {goal: 0}
        heap = [(0, goal)]
        done: set[State] = set()
        while heap:
            d, v = heapq.heappop(heap)
            if v in done:
                continue
            done.add(v)
            for c, u in rev.get(v, []):
                if d + c < bwd.get(u, 1 << 30):
                    bwd[u] = d + c
                    heapq.heappush(heap, (d + c, u))
        memo: dict[State, set[tuple[Move, ...]]] = {}
        on_stack: set[State] = set()

        def walk(u: State) -> set[tuple[Move, ...]]:
            if u == goal:
                return {()}
            if u in memo:
                return memo[u]
            on_stack.add(u)
            found: set[tuple[Move, ...]] = set()
            for c, v, move in edges(u):
                if v in on_stack or fwd.get(u, 1 << 30) + c + bwd.get(v, 1 << 30) != opt:
                    continue
                for rest in walk(v):
                    found.add(rest if move is None else (move, *rest))
                if len(found) > limit:
                    raise _TooMany
            on_stack.discard(u)
            memo[u] = found
            return found

        sets = {tuple(labels_from_moves(list(moves), self.step_ids)) for moves in walk(start)}
        return opt, sets

    def pm4py_check(self, traces: Sequence[tuple[str, ...]]) -> list[tuple[int, list[Label]]]:
        """pm4py's own optimal alignments (cost, labels) for each trace, in one call."""
        from pipeline import pm4py_adapter

        if not traces:
            return []
        results = pm4py_adapter.align_variants(self.compiled, [list(t) for t in traces])
        return [(r.cost // pm4py_adapter.MOVE_COST, labels_from_moves(r.moves, self.step_ids)) for r in results]


# ---------------------------------------------------------------------------------------------------
# Per-SOP simulation plan
# ---------------------------------------------------------------------------------------------------


def _stable_int(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def _staff_size(role: str) -> int:
    key = role.lower()
    if any(w in key for w in ("siswa", "pemohon", "pelapor", "praja", "kelayan", "ortu", "orang_tua", "pegawai")):
        return 60  # clients, not staff: many different people
    if any(w in key for w in ("kepala", "rektor", "kadis", "direktur", "biro", "kasubbag")):
        return 1
    if "wali" in key:
        return 12
    if "piket" in key:
        return 6
    if "peksos" in key:
        return 4
    return 3


@dataclass(frozen=True)
class _Staff:
    labels: list[str]
    probs: FloatArray
    wait_factor: FloatArray  # per person: waits grow with the person's load (the bottleneck)
    work_factor: FloatArray  # per person: overloaded people are a little slower


def _staff(institution: str, role: str) -> _Staff:
    k = _staff_size(role)
    rng = np.random.Generator(np.random.PCG64(_stable_int("staff", institution, role)))
    weights = 1.0 / np.arange(1, k + 1) ** 1.1
    weights = weights[rng.permutation(k)] if k > 3 else weights
    probs = weights / weights.sum()
    load = probs * k
    return _Staff([f"{role}-{j + 1:02d}" for j in range(k)], probs, load**1.5, load**0.25)


@dataclass
class _Plan:
    """Everything about one SOP that does not change from case to case."""

    model: SopModel
    cal: WorkingCalendar
    aligner: _Aligner
    ids: list[str]
    succ: list[list[int]]  # successors by index; -1 = END
    std: list[TimeStandard | None]
    dur_median: FloatArray  # working minutes
    dur_sigma: FloatArray
    wait_median: FloatArray
    roles: list[str]  # role per step ("" when the model names none)
    role_pool: list[str]  # every role of the institution (for wrong_role)
    docs: list[list[str]]
    day_max: float  # longest working day, minutes
    elapsed_ratio: float  # working minutes per elapsed minute, on average
    foreign: list[str]

    def to_w(self, std: TimeStandard, value: float, safe: bool = False) -> float:
        """A standard's value as working minutes; ``safe`` gives a W span sure to measure above it."""
        if std.measure == "working_minutes":
            return value
        if std.measure == "working_days":
            return value * self.day_max if safe else value * self.day_max * 0.85
        return value if safe else value * self.elapsed_ratio


def _plan(model: SopModel, cal: WorkingCalendar, role_pool: list[str]) -> _Plan:
    ids = model.step_ids
    index = {s: i for i, s in enumerate(ids)}
    succ_map = model.successors()
    succ = [[-1 if t == END else index[t] for t in succ_map[s]] for s in ids]
    full = cal.profile[:, 1440]
    day_max = float(full.max())
    elapsed_ratio = float(full.sum() / 10080.0)
    std = [parse_time(s.time, model.clock) for s in model.steps]
    med = np.empty(len(ids))
    sig = np.empty(len(ids))
    wait = np.empty(len(ids))
    plan = _Plan(model, cal, _Aligner(model), ids, succ, std, med, sig, wait,
                 [s.role or "" for s in model.steps], role_pool, [list(s.documents) for s in model.steps],
                 day_max, elapsed_ratio, [])
    for i, (step, st) in enumerate(zip(model.steps, std, strict=True)):
        if st is None:
            terminal = step.symbol == "terminator" or (step.time or "").strip() == "0"
            med[i], sig[i] = (3.0, 0.5) if terminal else (20.0, 0.6)
        else:
            hi = plan.to_w(st, st.maximum)
            mid = plan.to_w(st, st.minimum + 0.4 * (st.maximum - st.minimum)) if st.minimum else 0.5 * hi
            med[i] = max(mid, 1.0)
            # about 3% of natural durations run over the standard
            sig[i] = max(math.log(max(hi / med[i], 1.05)) / 1.9, 0.05)
        wait[i] = 15.0 + min(0.3 * med[i], 900.0)
    taken = {s.activity.lower() for s in model.steps} | {a.lower() for s in model.steps for a in s.aliases}
    plan.foreign = [a for a in FOREIGN_ACTIVITIES if a.lower() not in taken]
    return plan


def _branch_probs(i: int, targets: list[int], loops: int) -> FloatArray:
    w = np.empty(len(targets))
    forward = sorted(t for t in targets if t > i)
    for k, t in enumerate(targets):
        if t == -1:
            w[k] = 0.15
        elif t <= i:
            w[k] = 0.25 if loops < 3 else 0.0
        else:
            w[k] = 0.35 if t == forward[0] and len(forward) > 1 else 0.65 / max(len(forward) - 1, 1)
    if w.sum() <= 0:
        w[:] = [0.0 if (t != -1 and t <= i) else 1.0 for t in targets]
    out: FloatArray = w / w.sum()
    return out


def _walk(plan: _Plan, rng: np.random.Generator) -> list[int]:
    """One case's path of step indexes through the model."""
    steps = plan.model.steps
    path: list[int] = []
    cur, loops = 0, 0
    while cur != -1 and len(path) < 100:
        step = steps[cur]
        if not (step.optional and rng.random() < 0.6):
            path.append(cur)
            reps = 0
            while step.repeat and reps < 4 and rng.random() < 0.35:
                path.append(cur)
                reps += 1
        targets = plan.succ[cur]
        if len(targets) == 1:
            nxt = targets[0]
        else:
            nxt = targets[int(rng.choice(len(targets), p=_branch_probs(cur, targets, loops)))]
        if nxt != -1 and nxt <= cur:
            loops += 1
        cur = nxt
    return path


# ---------------------------------------------------------------------------------------------------
# One chunk of cases of one SOP
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Case:
    """A case's events while injections edit it (only injected cases become objects)."""

    steps: list[int]  # -1 = a foreign activity (label in foreign)
    wait: list[float]
    dur: list[float]
    role: list[str]
    resource: list[str]
    dropped_doc: list[int]  # index of a document left out, or -1
    foreign: list[str]
    flag: list[str]  # per event: the injected per-event kind or ""


@dataclass
class _Chunk:
    frame: pd.DataFrame  # canonical columns plus step (str), status, case_no
    truth: list[tuple[str, str, str, str, str, bool]]  # case_id, kind, step_id, alt, activity, injected
    asked: Counter[str]
    cases: int
    open_cases: int


def _case_ids(plan: _Plan, numbers: IntArray) -> npt.NDArray[np.object_]:
    name = plan.model.id.split("/", 1)[1].upper()
    return np.array([f"{name}-{n + 1:06d}" for n in numbers], dtype=object)


def _simulate_chunk(plan: _Plan, n: int, first_no: int, rng: np.random.Generator, start: dt.date,
                    end: dt.date, as_of: pd.Timestamp, rate: float, verify: bool) -> _Chunk:
    cal = plan.cal
    model = plan.model
    inst = model.institution
    paths = [_walk(plan, rng) for _ in range(n)]
    lengths = np.array([len(p) for p in paths], dtype=np.int64)
    case = np.repeat(np.arange(n), lengths)
    step = np.concatenate([np.array(p, dtype=np.int64) for p in paths]) if n else np.zeros(0, np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, np.int64)
    m = len(step)

    # performers: one person per role and case; sometimes a co-role performs (allowed)
    role = np.array([plan.roles[s] for s in step], dtype=object)
    for i, st in enumerate(model.steps):
        if st.co_roles:
            sel = np.flatnonzero((step == i) & (rng.random(m) < 0.05))
            role[sel] = np.array(st.co_roles, dtype=object)[rng.integers(0, len(st.co_roles), len(sel))]
    resource = np.empty(m, dtype=object)
    wait_factor = np.ones(m)
    work_factor = np.ones(m)
    staffs: dict[str, _Staff] = {}
    for r in sorted(set(role.tolist())):
        sel = np.flatnonzero(role == r)
        if not r:
            resource[sel] = ""
            continue
        staff = staffs.setdefault(r, _staff(inst, r))
        person = rng.choice(len(staff.labels), size=n, p=staff.probs)[case[sel]]
        resource[sel] = np.array(staff.labels, dtype=object)[person]
        wait_factor[sel] = staff.wait_factor[person]
        work_factor[sel] = staff.work_factor[person]

    dur = np.maximum(plan.dur_median[step] * work_factor * np.exp(plan.dur_sigma[step] * rng.standard_normal(m)),
                     1.0)
    wait = plan.wait_median[step] * wait_factor * np.exp(0.9 * rng.standard_normal(m))
    wait[first] = 0.0

    # arrivals: working days weighted by season, uniform in the day's working minutes
    days = np.arange((start - ORIGIN).days, (end - ORIGIN).days)
    dates = pd.to_datetime(ORIGIN) + pd.to_timedelta(days, unit="D")
    weekday = (days + ORIGIN.weekday()) % 7
    minutes = cal.profile[weekday, 1440] * cal.day_is_working[days]
    weight = minutes * np.array([MONTH_WEIGHT[mo] for mo in dates.month])
    if weight.sum() <= 0:
        raise UserError(f"{inst}: no working day between {start} and {end}; check institutions.yaml",
                        pesan=f"{inst}: tidak ada hari kerja antara {start} dan {end}; periksa institutions.yaml")
    day = rng.choice(len(days), size=n, p=weight / weight.sum())
    arrival = cal.day_cum[days[day]] + rng.random(n) * minutes[day] * 0.9
    order = np.argsort(arrival, kind="stable")  # case numbers follow arrival order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    asof_w = float(cal.clock(pd.DatetimeIndex([as_of]))[0])

    # injections, on per-case copies
    offsets = np.concatenate([[0], np.cumsum(wait + dur)]) if m else np.zeros(1)
    natural_end = arrival + (offsets[first + lengths] - offsets[first] if n else np.zeros(0))
    kinds = _applicable(plan)
    n_dev = round(rate * n)
    asked: Counter[str] = Counter()
    if kinds and n_dev:
        base, extra = divmod(n_dev, len(kinds))
        for k, kind in enumerate(rng.permutation(len(kinds))):
            asked[kinds[kind]] = base + (1 if k < extra else 0)
    edited: dict[int, _Case] = {}
    injected_labels: dict[int, tuple[str, str, str, str]] = {}  # case -> (kind, step, alt, activity)
    pool = [int(c) for c in rng.permutation(n)]
    cursor = 0
    for kind in KINDS:
        need = asked.get(kind, 0)
        tries = 0
        while need > 0 and cursor < len(pool) and tries < 20 * need + 200:
            c = pool[cursor]
            cursor += 1
            tries += 1
            sl = slice(int(first[c]), int(first[c] + lengths[c]))
            cs = _Case(step[sl].tolist(), wait[sl].tolist(), dur[sl].tolist(), role[sl].tolist(),
                       resource[sl].tolist(), [-1] * int(lengths[c]), [""] * int(lengths[c]),
                       [""] * int(lengths[c]))
            got = _inject(plan, kind, cs, float(arrival[c]), float(natural_end[c]), asof_w, rng, staffs)
            if got is None:
                continue
            edited[c] = cs
            injected_labels[c] = got
            need -= 1
        if need > 0:
            cursor = 0  # out of fresh cases: nothing more of this kind
            pool = [c for c in pool if c not in edited]

    if verify:
        _verify_pm4py(plan, edited, injected_labels)

    # assemble the final event arrays
    keep = np.ones(m, dtype=bool)
    for c in edited:
        keep[int(first[c]):int(first[c] + lengths[c])] = False
    parts_case = [case[keep]]
    parts_seq = [np.arange(m)[keep] - first[case[keep]]]
    parts_step = [step[keep]]
    parts_wait = [wait[keep]]
    parts_dur = [dur[keep]]
    parts_role = [role[keep]]
    parts_res = [resource[keep]]
    parts_drop = [np.full(int(keep.sum()), -1)]
    parts_foreign = [np.full(int(keep.sum()), "", dtype=object)]
    parts_flag = [np.full(int(keep.sum()), "", dtype=object)]
    for c in sorted(edited):
        cs = edited[c]
        k = len(cs.steps)
        parts_case.append(np.full(k, c))
        parts_seq.append(np.arange(k))
        parts_step.append(np.array(cs.steps, dtype=np.int64))
        parts_wait.append(np.array(cs.wait))
        parts_dur.append(np.array(cs.dur))
        parts_role.append(np.array(cs.role, dtype=object))
        parts_res.append(np.array(cs.resource, dtype=object))
        parts_drop.append(np.array(cs.dropped_doc))
        parts_foreign.append(np.array(cs.foreign, dtype=object))
        parts_flag.append(np.array(cs.flag, dtype=object))
    e_case = np.concatenate(parts_case)
    e_seq = np.concatenate(parts_seq)
    srt = np.lexsort((e_seq, rank[e_case]))
    e_case = e_case[srt]
    e_step = np.concatenate(parts_step)[srt]
    e_wait = np.concatenate(parts_wait)[srt]
    e_dur = np.concatenate(parts_dur)[srt]
    e_role = np.concatenate(parts_role)[srt]
    e_res = np.concatenate(parts_res)[srt]
    e_drop = np.concatenate(parts_drop)[srt]
    e_foreign = np.concatenate(parts_foreign)[srt]
    e_flag = np.concatenate(parts_flag)[srt]

    # working-minute clock -> instants (one calendar call each), floored to whole minutes
    new_case = np.r_[True, e_case[1:] != e_case[:-1]] if len(e_case) else np.zeros(0, bool)
    seg = np.cumsum(new_case) - 1
    inc = e_wait + e_dur
    csum = np.cumsum(inc)
    before = (csum - inc)[new_case][seg]
    w_end = arrival[e_case] + csum - before
    w_start = w_end - e_dur
    ts_start = cal.from_clock(w_start).floor("min")
    ts_end = cal.from_clock(w_end).floor("min")

    # the export date cuts running cases; a stalled injection ends its case early on purpose
    visible = np.asarray(ts_end <= as_of)
    case_open = np.zeros(n, dtype=bool)
    case_open[e_case[~visible]] = True
    case_open[[c for c, lab in injected_labels.items() if lab[0] == "stalled_case"]] = True
    has_event = np.zeros(n, dtype=bool)
    has_event[e_case[visible]] = True
    sel = np.flatnonzero(visible)

    frame = pd.DataFrame({
        "case_no": rank[e_case[sel]],
        "case": e_case[sel],
        "step_idx": e_step[sel],
        "ts_start": ts_start[sel],
        "ts_end": ts_end[sel],
        "role": e_role[sel],
        "resource": e_res[sel],
        "drop": e_drop[sel],
        "foreign": e_foreign[sel],
        "flag": e_flag[sel],
    })
    frame["case_id"] = _case_ids(plan, frame["case_no"].to_numpy() + first_no)
    ids = np.array([*plan.ids, ""], dtype=object)
    frame["step"] = ids[frame["step_idx"].to_numpy()]
    acts = np.array([*activity_labels(model), ""], dtype=object)
    frame["activity"] = np.where(frame["step_idx"] >= 0, acts[frame["step_idx"].to_numpy()], frame["foreign"])
    frame["documents"] = _documents(plan, frame["step_idx"].to_numpy(), frame["drop"].to_numpy())
    frame["status"] = np.where(case_open[frame["case"].to_numpy()], "open", "closed")
    truth = _labels(plan, frame, case_open, injected_labels, as_of)
    n_cases = int(has_event.sum())
    return _Chunk(frame, truth, asked, n_cases, int((case_open & has_event).sum()))


def activity_labels(model: SopModel) -> list[str]:
    """The activity text written for each step; a step whose text repeats an earlier step's (IPDN terapi
    rows 8 and 9) is written as its step id, which the loader maps too, so the log stays unambiguous."""
    seen: set[str] = set()
    out = []
    for step in model.steps:
        key = " ".join(step.activity.lower().split())
        out.append(step.id if key in seen else step.activity)
        seen.add(key)
    return out


def _applicable(plan: _Plan) -> list[str]:
    model = plan.model
    kinds = ["missing_step", "unexpected_step", "wrong_order", "repeated_step"]
    if any(s is not None for s in plan.std):
        kinds.append("overdue_step")
    if model.case_time or model.slas:
        kinds.append("case_sla_breach")
    kinds.append("wrong_role")
    if any(plan.docs):
        kinds.append("missing_document")
    kinds.append("stalled_case")
    return kinds


def _documents(plan: _Plan, step: IntArray, drop: IntArray) -> npt.NDArray[np.object_]:
    joined = np.array(["; ".join(d) for d in plan.docs] + [""], dtype=object)
    out = joined[step]
    for i in np.flatnonzero(drop >= 0):
        docs = plan.docs[int(step[i])]
        out[i] = "; ".join(d for j, d in enumerate(docs) if j != int(drop[i]))
    return out


# ---------------------------------------------------------------------------------------------------
# Injections
# ---------------------------------------------------------------------------------------------------


def _trace(plan: _Plan, cs: _Case) -> tuple[str, ...]:
    return tuple(plan.ids[s] if s >= 0 else UNKNOWN + f for s, f in zip(cs.steps, cs.foreign, strict=True))


def _end_w(cs: _Case, arrival: float) -> float:
    return arrival + float(sum(cs.wait) + sum(cs.dur))


def _cf_ok(plan: _Plan, trace: tuple[str, ...], cost: int, expected: list[Label],
           swap: tuple[str, str] | None = None) -> bool:
    """Every optimal alignment has ``cost`` and gives ``expected`` (a swap: wrong_order of either step)."""
    found = plan.aligner.all_optimal(trace)
    if found is None or found[0] != cost:
        return False
    if swap is None:
        return found[1] == {tuple(expected)}
    ok = {(("wrong_order", swap[0], ""),), (("wrong_order", swap[1], ""),)}
    return found[1] <= ok


def _inject(plan: _Plan, kind: str, cs: _Case, arrival: float, natural_end: float, asof_w: float,
            rng: np.random.Generator, staffs: dict[str, _Staff]) -> tuple[str, str, str, str] | None:
    """Edit ``cs`` to carry one deviation of ``kind``; the label, or None when this case cannot."""
    k = len(cs.steps)
    steps = plan.model.steps
    margin = 1.0
    if kind != "stalled_case" and natural_end + 3 * plan.day_max >= asof_w:
        return None  # keep injected cases well inside the period: they must be closed at as_of
    if kind == "missing_step":
        counts = Counter(cs.steps)
        for j in rng.permutation(k).tolist():
            s = cs.steps[j]
            if steps[s].optional or counts[s] != 1 or k < 2:
                continue
            trial = _without(cs, j)
            if _cf_ok(plan, _trace(plan, trial), 1, [("missing_step", plan.ids[s], "")]):
                _replace(cs, trial)
                return ("missing_step", plan.ids[s], "", "")
        return None
    if kind == "unexpected_step":
        if not plan.foreign:
            return None
        label = plan.foreign[int(rng.integers(len(plan.foreign)))]
        j = int(rng.integers(0, k + 1))
        near = cs.role[min(j, k - 1)]
        trial = _copy(cs)
        trial.steps.insert(j, -1)
        trial.foreign.insert(j, label)
        trial.wait.insert(j, 0.0 if j == 0 else float(rng.uniform(5, 60)))
        if j == 0 and k:
            trial.wait[1] = float(rng.uniform(5, 60))
        trial.dur.insert(j, float(rng.uniform(5, 40)))
        trial.role.insert(j, near)
        trial.resource.insert(j, cs.resource[min(j, k - 1)])
        trial.dropped_doc.insert(j, -1)
        trial.flag.insert(j, "")
        if _cf_ok(plan, _trace(plan, trial), 1, [("unexpected_step", "", label)]) and \
                _end_w(trial, arrival) < asof_w - margin:
            _replace(cs, trial)
            return ("unexpected_step", "", "", label)
        return None
    if kind == "wrong_order":
        for j in rng.permutation(max(k - 1, 0)).tolist():
            a, b = cs.steps[j], cs.steps[j + 1]
            if a == b:
                continue
            trial = _copy(cs)
            for attr in ("steps", "dur", "role", "resource", "dropped_doc", "foreign", "flag"):
                seq = getattr(trial, attr)
                seq[j], seq[j + 1] = seq[j + 1], seq[j]
            if _cf_ok(plan, _trace(plan, trial), 2, [], swap=(plan.ids[a], plan.ids[b])):
                _replace(cs, trial)
                return ("wrong_order", plan.ids[a], plan.ids[b], "")
        return None
    if kind == "repeated_step":
        for j in rng.permutation(k).tolist():
            s = cs.steps[j]
            if steps[s].repeat:
                continue
            trial = _copy(cs)
            for attr in ("steps", "role", "resource", "dropped_doc", "foreign", "flag"):
                seq = getattr(trial, attr)
                seq.insert(j + 1, seq[j])
            trial.flag[j + 1] = ""
            trial.wait.insert(j + 1, float(rng.uniform(5, 90)))
            trial.dur.insert(j + 1, float(plan.dur_median[s] * math.exp(plan.dur_sigma[s] * rng.standard_normal())))
            trial.dur[j + 1] = max(trial.dur[j + 1], 1.0)
            if _cf_ok(plan, _trace(plan, trial), 1, [("repeated_step", plan.ids[s], "")]) and \
                    _end_w(trial, arrival) < asof_w - margin:
                _replace(cs, trial)
                return ("repeated_step", plan.ids[s], "", "")
        return None
    if kind == "overdue_step":
        cands = [j for j in range(k) if plan.std[cs.steps[j]] is not None]
        if not cands:
            return None
        j = cands[int(rng.integers(len(cands)))]
        st = plan.std[cs.steps[j]]
        assert st is not None
        new = plan.to_w(st, st.maximum, safe=True) * float(rng.uniform(1.25, 2.0)) + 2.0
        if _end_w(cs, arrival) + new - cs.dur[j] >= asof_w - margin:
            return None
        cs.dur[j] = new
        cs.flag[j] = "overdue_step"
        return ("overdue_step", plan.ids[cs.steps[j]], "", "")
    if kind == "case_sla_breach":
        return _inject_sla(plan, cs, arrival, asof_w, rng)
    if kind == "wrong_role":
        cands = [j for j in range(k) if plan.roles[cs.steps[j]]]
        if not cands:
            return None
        j = cands[int(rng.integers(len(cands)))]
        step_def = steps[cs.steps[j]]
        allowed = {step_def.role, *step_def.co_roles}
        others = [r for r in plan.role_pool if r not in allowed] or ["staf_tu"]
        r = others[int(rng.integers(len(others)))]
        staff = staffs.setdefault(r, _staff(plan.model.institution, r))
        cs.role[j] = r
        cs.resource[j] = staff.labels[int(rng.choice(len(staff.labels), p=staff.probs))]
        cs.flag[j] = "wrong_role"
        return ("wrong_role", plan.ids[cs.steps[j]], "", "")
    if kind == "missing_document":
        cands = [j for j in range(k) if plan.docs[cs.steps[j]]]
        if not cands:
            return None
        j = cands[int(rng.integers(len(cands)))]
        cs.dropped_doc[j] = int(rng.integers(len(plan.docs[cs.steps[j]])))
        cs.flag[j] = "missing_document"
        return ("missing_document", plan.ids[cs.steps[j]], "", "")
    if kind == "stalled_case":
        return _inject_stall(plan, cs, arrival, asof_w, rng)
    raise ValueError(kind)


def _stall_standard(plan: _Plan, s: int) -> TimeStandard | None:
    """The stalled-case threshold after step ``s`` (None: a case may end here, never stalled)."""
    nexts = [t for t in plan.succ[s] if t != -1]
    if not nexts and not plan.model.steps[s].repeat:
        return None
    stds = [plan.std[t] for t in nexts]
    if plan.model.steps[s].repeat:
        stds.append(plan.std[s])
    found = [x for x in stds if x is not None]
    return max(found, key=lambda x: (x.measure == "elapsed_minutes", x.maximum)) if found else DEFAULT_STALL


def _inject_stall(plan: _Plan, cs: _Case, arrival: float, asof_w: float,
                  rng: np.random.Generator) -> tuple[str, str, str, str] | None:
    k = len(cs.steps)
    for cut in rng.permutation(np.arange(1, k)).tolist() if k > 1 else []:
        last = cs.steps[cut - 1]
        std = _stall_standard(plan, last)
        if std is None:
            continue
        end = arrival + sum(cs.wait[:cut]) + sum(cs.dur[:cut])
        if end + 1.5 * plan.to_w(std, std.maximum, safe=True) + 2 * plan.day_max < asof_w:
            for attr in ("steps", "wait", "dur", "role", "resource", "dropped_doc", "foreign", "flag"):
                del getattr(cs, attr)[cut:]
            return ("stalled_case", plan.ids[last], "", "")
    return None


def _inject_sla(plan: _Plan, cs: _Case, arrival: float, asof_w: float,
                rng: np.random.Generator) -> tuple[str, str, str, str] | None:
    model = plan.model
    checks: list[tuple[str, TimeStandard, int]] = []  # (sla id, standard, event index to delay)
    k = len(cs.steps)
    case_std = parse_time(model.case_time, model.clock)
    if case_std is not None and k >= 2:
        checks.append(("", case_std, k - 1))
    for sla in model.slas:
        std = parse_time(sla.time, model.clock)
        a, b = plan.ids.index(sla.from_), plan.ids.index(sla.to)
        if std is None or a not in cs.steps or b not in cs.steps:
            continue
        first_b = cs.steps.index(b)
        if first_b > cs.steps.index(a):
            checks.append((sla.id, std, first_b))
    if not checks:
        return None
    sla_id, std, j = checks[int(rng.integers(len(checks)))]
    extra = plan.to_w(std, std.maximum, safe=True) * float(rng.uniform(1.2, 1.8)) + 2.0
    if _end_w(cs, arrival) + extra >= asof_w - 1.0:
        return None
    cs.wait[j] += extra
    return ("case_sla_breach", sla_id, "", "")


def _copy(cs: _Case) -> _Case:
    return _Case(*(list(getattr(cs, a)) for a in
                   ("steps", "wait", "dur", "role", "resource", "dropped_doc", "foreign", "flag")))


def _replace(cs: _Case, new: _Case) -> None:
    for attr in ("steps", "wait", "dur", "role", "resource", "dropped_doc", "foreign", "flag"):
        setattr(cs, attr, getattr(new, attr))


def _without(cs: _Case, j: int) -> _Case:
    new = _copy(cs)
    wait_j = new.wait[j]
    for attr in ("steps", "wait", "dur", "role", "resource", "dropped_doc", "foreign", "flag"):
        del getattr(new, attr)[j]
    if j == 0 and new.wait:
        new.wait[0] = 0.0
    elif j < len(new.wait):
        new.wait[j] = max(new.wait[j], wait_j)
    return new


def _verify_pm4py(plan: _Plan, edited: dict[int, _Case], labels: dict[int, tuple[str, str, str, str]]) -> None:
    """pm4py's alignments of the injected control-flow variants must agree; otherwise drop the case's edit."""
    traces = sorted({_trace(plan, edited[c]) for c, lab in labels.items() if lab[0] in CONTROL_FLOW})
    results = dict(zip(traces, plan.aligner.pm4py_check(traces), strict=True))
    for c in sorted(labels):
        kind, step, alt, activity = labels[c]
        if kind not in CONTROL_FLOW:
            continue
        cost, got = results[_trace(plan, edited[c])]
        want_cost = 2 if kind == "wrong_order" else 1
        ok = cost == want_cost and (
            got in ([("wrong_order", step, "")], [("wrong_order", alt, "")]) if kind == "wrong_order"
            else got == [(kind, step, activity)])
        if not ok:  # pragma: no cover - all_optimal already rules this out
            raise AssertionError(f"{plan.model.id}: pm4py labels {got} (cost {cost}) for injected {kind}")


# ---------------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------------


def _labels(plan: _Plan, frame: pd.DataFrame, case_open: npt.NDArray[np.bool_],
            injected: dict[int, tuple[str, str, str, str]], as_of: pd.Timestamp,
            ) -> list[tuple[str, str, str, str, str, bool]]:
    cal = plan.cal
    model = plan.model
    out: list[tuple[str, str, str, str, str, bool]] = []
    if frame.empty:
        return out
    case_of = frame["case"].to_numpy()
    cid = frame["case_id"].to_numpy()
    case_ids = pd.Series(cid, index=case_of).groupby(level=0).first()
    inj_of = {c: lab for c, lab in injected.items()}

    # control flow: one alignment per distinct variant
    names = np.where(frame["step_idx"].to_numpy() >= 0, frame["step"].to_numpy(),
                     UNKNOWN + frame["foreign"].to_numpy().astype(str)).tolist()
    bounds = np.flatnonzero(np.r_[True, case_of[1:] != case_of[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        c = int(case_of[a])
        lab = inj_of.get(c)
        _cost, labels = plan.aligner.engine(tuple(names[a:b]), prefix=bool(case_open[c]))
        for kind, step, activity in labels:
            alt = ""
            is_inj = lab is not None and lab[0] == kind
            if is_inj and kind == "wrong_order":
                assert lab is not None
                alt = lab[2] if step == lab[1] else lab[1]
            out.append((case_ids[c], kind, step, alt, activity, is_inj))

    # per event: overdue, wrong role, missing document
    step_idx = frame["step_idx"].to_numpy()
    flags = frame["flag"].to_numpy()
    for i, st in enumerate(plan.std):
        if st is None:
            continue
        sel = np.flatnonzero(step_idx == i)
        if not len(sel):
            continue
        over = cal.exceeds(st, frame["ts_start"].iloc[sel], frame["ts_end"].iloc[sel])
        for e in sel[over]:
            out.append((cid[e], "overdue_step", plan.ids[i], "", "", flags[e] == "overdue_step"))
    roles = frame["role"]
    for i, step_def in enumerate(model.steps):
        if not step_def.role:
            continue
        sel = np.flatnonzero((step_idx == i) & ~roles.isin([step_def.role, *step_def.co_roles]).to_numpy())
        out += [(cid[e], "wrong_role", step_def.id, "", "", flags[e] == "wrong_role") for e in sel]
    for e in np.flatnonzero(frame["drop"].to_numpy() >= 0):
        out.append((cid[e], "missing_document", plan.ids[step_idx[e]], "", "", flags[e] == "missing_document"))

    # whole-case standards
    checks: list[tuple[str, TimeStandard, pd.Series, pd.Series]] = []
    case_std = parse_time(model.case_time, model.clock)
    grouped = frame.groupby("case", sort=True)
    if case_std is not None:
        checks.append(("", case_std, grouped["ts_start"].min(), grouped["ts_end"].max()))
    for sla in model.slas:
        std = parse_time(sla.time, model.clock)
        if std is None:
            continue
        a = frame[frame["step"] == sla.from_].groupby("case")["ts_start"].min()
        b = frame[frame["step"] == sla.to].groupby("case")["ts_end"].min()
        both = a.index.intersection(b.index)
        checks.append((sla.id, std, a.loc[both], b.loc[both]))
    for sla_id, std, a, b in checks:
        if not len(a):
            continue
        over = cal.exceeds(std, pd.DatetimeIndex(a), pd.DatetimeIndex(b))
        for c in a.index[over]:
            lab = inj_of.get(int(c))
            is_inj = lab is not None and lab[0] == "case_sla_breach" and lab[1] == sla_id
            out.append((case_ids[int(c)], "case_sla_breach", sla_id, "", "", is_inj))

    # stalled open cases
    stepped = frame[frame["step_idx"] >= 0]
    last = stepped.groupby("case", sort=True).tail(1)
    last = last[case_open[last["case"].to_numpy()]]
    by_std: dict[int, list[int]] = {}
    for pos, s in enumerate(last["step_idx"].to_numpy()):
        by_std.setdefault(int(s), []).append(pos)
    last_end = frame.groupby("case", sort=True)["ts_end"].max()
    for s, positions in sorted(by_std.items()):
        std = _stall_standard(plan, s)
        if std is None:
            continue
        rows = last.iloc[positions]
        ends = pd.DatetimeIndex(last_end.loc[rows["case"].to_numpy()])
        now = pd.DatetimeIndex([as_of] * len(rows))
        over = cal.exceeds(std, ends, now)
        for c in rows["case"].to_numpy()[over]:
            lab = inj_of.get(int(c))
            out.append((case_ids[int(c)], "stalled_case", plan.ids[s], "", "",
                        lab is not None and lab[0] == "stalled_case"))
    return out


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def _iso(ts: pd.Series, tz: str) -> npt.NDArray[np.str_]:
    local = pd.DatetimeIndex(ts).tz_convert(tz).tz_localize(None)
    return np.char.add(np.datetime_as_string(local.values.astype("datetime64[s]"), unit="s"), OFFSETS[tz])


def _canonical(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    return pd.DataFrame({
        "case_id": frame["case_id"].astype(str),
        "activity": frame["activity"].astype(str),
        "ts_start": _iso(frame["ts_start"], tz),
        "ts_end": _iso(frame["ts_end"], tz),
        "role": frame["role"].astype(str),
        "resource": frame["resource"].astype(str),
        "documents": frame["documents"].astype(str),
        "status": frame["status"].astype(str),
    })


class _Writer:
    """Writes one (institution, SOP) log chunk by chunk in the requested format."""

    def __init__(self, path: Path, fmt: Format, tz: str) -> None:
        self.path = path
        self.fmt = fmt
        self.tz = tz
        self.parts: list[pd.DataFrame] = []
        self._parquet: Any = None
        self._csv_started = False
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()

    def add(self, frame: pd.DataFrame) -> None:
        canon = _canonical(frame, self.tz)
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(canon, preserve_index=False)
            for col in ("ts_start", "ts_end"):
                idx = table.schema.get_field_index(col)
                ts = pd.DatetimeIndex(frame[col]).tz_convert(self.tz)
                table = table.set_column(idx, pa.field(col, pa.timestamp("us", tz=self.tz)),
                                         pa.array(ts, type=pa.timestamp("us", tz=self.tz)))
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._parquet.write_table(table)
        elif self.fmt == "csv":
            canon.to_csv(self.path, mode="a", header=not self._csv_started, index=False, lineterminator="\n")
            self._csv_started = True
        else:
            self.parts.append(canon)

    def close(self) -> None:
        if self.fmt == "parquet" and self._parquet is not None:
            self._parquet.close()
        elif self.fmt == "csv" and not self._csv_started:
            pd.DataFrame(columns=COLUMNS).to_csv(self.path, index=False)
        elif self.fmt == "xlsx":
            frame = pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=COLUMNS)
            _write_xlsx(self.path, frame, "log")
        elif self.fmt == "xes":
            frame = pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=COLUMNS)
            _write_xes(self.path, frame)


def _write_xlsx(path: Path, frame: pd.DataFrame, sheet: str) -> None:
    """A deterministic XLSX (fixed document timestamps, so the same seed gives the same bytes)."""
    import zipfile

    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    fixed = dt.datetime(2020, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    ws = wb.create_sheet(sheet)
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append(["" if v is None else v for v in row])
    wb.save(path)
    # zip entries carry the current time: rewrite them with a fixed one
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps 'modified' with the clock on save
                data = re.sub(rb"<dcterms:modified([^>]*)>[^<]*</dcterms:modified>",
                              rb"<dcterms:modified\1>2020-01-01T00:00:00Z</dcterms:modified>", data)
            new = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            new.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(new, data)
    tmp.replace(path)


def _write_xes(path: Path, frame: pd.DataFrame) -> None:
    from xml.sax.saxutils import quoteattr

    def attr(kind: str, key: str, value: str) -> str:
        return f'<{kind} key={quoteattr(key)} value={quoteattr(value)}/>'

    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<log xes.version="1.0" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">',
             '<extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>',
             '<extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>',
             '<extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>',
             '<extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>']
    for case_id, group in frame.groupby("case_id", sort=False):
        lines.append("<trace>")
        lines.append(attr("string", "concept:name", str(case_id)))
        lines.append(attr("string", "status", str(group["status"].iloc[0])))
        cols = [[str(v) for v in group[c].tolist()]
                for c in ("activity", "ts_start", "ts_end", "resource", "role", "documents")]
        for activity, ts_start, ts_end, resource, role, documents in zip(*cols, strict=True):
            lines.append("<event>")
            lines.append(attr("string", "concept:name", activity))
            lines.append(attr("date", "time:timestamp", ts_end.replace("+", ".000+")))
            lines.append(attr("date", "start_timestamp", ts_start.replace("+", ".000+")))
            lines.append(attr("string", "org:resource", resource))
            lines.append(attr("string", "org:role", role))
            lines.append(attr("string", "lifecycle:transition", "complete"))
            lines.append(attr("string", "documents", documents))
            lines.append("</event>")
        lines.append("</trace>")
    lines.append("</log>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` cases by weight (deterministic, sorted ties)."""
    keys = sorted(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    raw = total * w / w.sum()
    base = np.floor(raw).astype(int)
    rest = total - int(base.sum())
    order = sorted(range(len(keys)), key=lambda i: (-(raw[i] - base[i]), keys[i]))
    for i in order[:rest]:
        base[i] += 1
    return {k: int(b) for k, b in zip(keys, base, strict=True)}


def _sop_weight(model: SopModel) -> float:
    text = (model.id + " " + model.title).lower()
    if any(w in text for w in ("pengaduan", "terapi", "pegawai", "referal", "advokasi")):
        return 0.35
    return 1.0


def default_weights(models: Sequence[SopModel]) -> dict[str, float]:
    """Plausible shares of cases: by institution (schools and IPDN are busy, the care home small), then SOP."""
    by_inst: dict[str, list[SopModel]] = {}
    for m in models:
        by_inst.setdefault(m.institution, []).append(m)
    out: dict[str, float] = {}
    for inst, group in sorted(by_inst.items()):
        share = INSTITUTION_SHARE.get(inst, 0.2)
        total = sum(_sop_weight(m) for m in group)
        for m in group:
            out[m.id] = share * _sop_weight(m) / total
    return out


def generate(
    out_dir: Path,
    *,
    institutions: Sequence[str] = (),
    sops: Sequence[str] = (),
    cases: int = 1000,
    start: dt.date = dt.date(2025, 11, 1),
    months: int = 12,
    deviation_rate: float = 0.1,
    seed: int = 20261123,
    fmt: Format = "parquet",
    messy: bool = False,
    weights: dict[str, float] | None = None,
    verify: bool = True,
    settings: Settings | None = None,
) -> SynthResult:
    """Generate logs for the chosen institutions/SOPs, the ground truth and ``meta.json`` in ``out_dir``."""
    settings = settings or get_settings()
    if cases < 1:
        raise UserError(f"--cases must be at least 1 (got {cases})",
                        pesan=f"--cases minimal 1 (yang diberikan: {cases})")
    if not 0 <= deviation_rate <= 1:
        raise UserError(f"--deviation-rate must be between 0 and 1 (got {deviation_rate})",
                        pesan=f"--deviation-rate harus antara 0 dan 1 (yang diberikan: {deviation_rate})")
    if months < 1:
        raise UserError(f"--months must be at least 1 (got {months})",
                        pesan=f"--months minimal 1 (yang diberikan: {months})")
    catalogue = load_catalogue(settings.catalogue_dir)
    calendars = load_calendars(settings.institutions_file)
    chosen: dict[str, SopModel] = {}
    for sop_id in sops:
        if sop_id not in catalogue.models:
            raise UserError(f"no SOP model '{sop_id}' in {settings.catalogue_dir}; see 'patuh sop list'",
                            pesan=f"model SOP '{sop_id}' tidak ada di {settings.catalogue_dir}; lihat 'patuh sop list'")
        chosen[sop_id] = catalogue.models[sop_id]
    for inst in institutions:
        found = [m for m in catalogue.for_institution(inst) if m.kind == "procedure"]
        if inst not in calendars:
            raise UserError(f"institution '{inst}' is not in {settings.institutions_file}",
                            pesan=f"lembaga '{inst}' tidak ada di {settings.institutions_file}")
        if not found:
            raise UserError(f"institution '{inst}' has no procedure SOP in {settings.catalogue_dir}",
                            pesan=f"lembaga '{inst}' tidak memiliki SOP prosedur di {settings.catalogue_dir}")
        if not sops:
            chosen.update({m.id: m for m in found})
    if not chosen:
        raise UserError("choose at least one --institution or --sop",
                        pesan="pilih minimal satu --institution atau --sop")
    for sop_id, model in chosen.items():
        if model.kind != "procedure":
            raise UserError(f"'{sop_id}' is a rules document, not a step procedure; synth simulates procedures",
                            pesan=f"'{sop_id}' adalah dokumen aturan, bukan prosedur berlangkah; synth hanya "
                                  "menyimulasikan prosedur")
        if model.institution not in calendars:
            raise UserError(f"'{sop_id}': institution '{model.institution}' is not in institutions.yaml",
                            pesan=f"'{sop_id}': lembaga '{model.institution}' tidak ada di institutions.yaml")
    models = [chosen[k] for k in sorted(chosen)]
    split = _split(cases, weights or default_weights(models))
    end = _add_months(start, months)
    as_of = pd.Timestamp(dt.datetime.combine(end, dt.time()), tz="Asia/Jakarta")
    out_dir.mkdir(parents=True, exist_ok=True)
    roles_by_inst: dict[str, list[str]] = {}
    for m in catalogue.models.values():
        roles_by_inst.setdefault(m.institution, [])
        roles_by_inst[m.institution] = sorted(set(roles_by_inst[m.institution]) | set(m.roles))

    files: list[SynthFile] = []
    truth_rows: list[tuple[str, ...]] = []
    asked: Counter[str] = Counter()
    messy_frames: list[tuple[SopModel, str, pd.DataFrame]] = []
    for model in models:
        n = split.get(model.id, 0)
        if n == 0:
            continue
        cal = calendars[model.institution]
        plan = _plan(model, cal, roles_by_inst.get(model.institution, []))
        name = model.id.split("/", 1)[1]
        path = out_dir / model.institution / f"{name}.{fmt}"
        writer = _Writer(path, fmt, cal.timezone)
        n_cases = n_events = n_open = 0
        for chunk_no, first_no in enumerate(range(0, n, CHUNK_CASES)):
            size = min(CHUNK_CASES, n - first_no)
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
                [seed, _stable_int(model.id) % (1 << 32), chunk_no])))
            chunk = _simulate_chunk(plan, size, first_no, rng, start, end, as_of, deviation_rate, verify)
            writer.add(chunk.frame)
            if messy:
                messy_frames.append((model, cal.timezone, chunk.frame))
            truth_rows += [(model.institution, model.id, *t[:5], "true" if t[5] else "false") for t in chunk.truth]
            asked.update(chunk.asked)
            n_cases += chunk.cases
            n_events += len(chunk.frame)
            n_open += chunk.open_cases
        writer.close()
        files.append(SynthFile(model.institution, model.id, path, n_cases, n_events, n_open))

    truth = pd.DataFrame(truth_rows, columns=TRUTH_COLUMNS).sort_values(
        TRUTH_COLUMNS, kind="stable").reset_index(drop=True)
    truth_path = out_dir / "ground_truth.csv"
    truth.to_csv(truth_path, index=False, lineterminator="\n")
    counts: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        sub = truth[truth["kind"] == kind]
        counts[kind] = {"asked": int(asked.get(kind, 0)), "injected": int((sub["injected"] == "true").sum()),
                        "natural": int((sub["injected"] == "false").sum())}
    result = SynthResult(out_dir, files, truth_path, out_dir / "meta.json", as_of.to_pydatetime(), counts)
    if messy:
        _write_messy(result, messy_frames, seed)
    meta = {
        "generator": "patuh synth",
        "seed": seed,
        "start": start.isoformat(),
        "months": months,
        "as_of": as_of.isoformat(),
        "deviation_rate": deviation_rate,
        "cases": result.cases,
        "events": result.events,
        "format": fmt,
        "messy": messy,
        "files": [{"institution_id": f.institution_id, "sop_id": f.sop_id,
                   "path": str(f.path.relative_to(out_dir)), "cases": f.cases, "events": f.events,
                   "open_cases": f.open_cases} for f in files],
        "ground_truth": truth_path.name,
        "labels": counts,
    }
    result.meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result


# ---------------------------------------------------------------------------------------------------
# Messy exports
# ---------------------------------------------------------------------------------------------------

_BULAN = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember"]
_FIRST = ["Adi", "Ayu", "Bagus", "Citra", "Dewi", "Eko", "Fitri", "Gilang", "Hendra", "Indah", "José", "Kurnia",
          "Lestari", "Made", "Nurul", "Putri", "Rizky", "Sékar", "Taufik", "Wahyu", "Yusuf", "Zahra"]
_LAST = ["Pratama", "Saputra", "Wulandari", "Hidayat", "Nugroho", "Kusuma", "Siregar", "Lubis", "Ramadhan",
         "Setiawan", "Rahmawati", "Panjaitan", "Handayani", "Sinaga"]
_NOTES = ["sudah dihubungi", "orang tua tidak hadir", "dijadwalkan ulang", "siswa terlambat datang",
          "berkas menyusul", "perlu tindak lanjut", "catatan: lihat buku BK"]
MESSY_HEADERS = ["No Kasus", "Kegiatan", "Tanggal Mulai", "Tanggal Selesai", "Petugas", "Peran", "Kelengkapan",
                 "Status", "Nama Siswa", "Catatan"]


def _typo(text: str, rng: np.random.Generator) -> str:
    """A small typo: two neighbouring letters swapped or one dropped, inside a word."""
    spots = [i for i in range(1, len(text) - 2) if text[i].isalpha() and text[i + 1].isalpha()]
    if not spots:
        return text.upper()
    i = spots[int(rng.integers(len(spots)))]
    if rng.random() < 0.5:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + text[i + 1:]


def _local_text(ts: pd.Series, tz: str, style: str) -> list[str]:
    local = pd.DatetimeIndex(ts).tz_convert(tz).tz_localize(None)
    if style == "dmy":
        return list(local.strftime("%d/%m/%Y %H:%M"))
    return [f"{d.day} {_BULAN[d.month - 1]} {d.year} {d.hour:02d}:{d.minute:02d}" for d in local]


def _write_messy(result: SynthResult, frames: list[tuple[SopModel, str, pd.DataFrame]], seed: int) -> None:
    """Messy exports of the same events: an XLSX (first half of the cases, Indonesian headers, dd/mm/yyyy) and
    a Latin-1 ``;`` CSV (the rest, '16 Januari 2020' dates), with typos, duplicates, blank lines and impossible
    rows, a mapping YAML per SOP and ``expected.json`` (rows loaded / duplicates / quarantined per file)."""
    import yaml

    base = result.out_dir / "messy"
    by_model: dict[str, tuple[SopModel, str, list[pd.DataFrame]]] = {}
    for model, zone, frame in frames:
        by_model.setdefault(model.id, (model, zone, []))[2].append(frame)
    expected: dict[str, dict[str, Any]] = {}
    for sop_id in sorted(by_model):
        model, tz, parts = by_model[sop_id]
        frame = pd.concat(parts, ignore_index=True)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [seed, _stable_int("messy", sop_id) % (1 << 32)])))
        name = sop_id.split("/", 1)[1]
        folder = base / model.institution
        folder.mkdir(parents=True, exist_ok=True)
        # activity labels as people type them
        acts = frame["activity"].to_numpy().astype(object)
        is_step = frame["step_idx"].to_numpy() >= 0
        roll = rng.random(len(frame))
        variants = acts.copy()
        for i in np.flatnonzero(is_step & (roll < 0.06)):
            variants[i] = str(acts[i]).upper()
        for i in np.flatnonzero(is_step & (roll >= 0.06) & (roll < 0.12)):
            variants[i] = str(acts[i]).lower()
        for i in np.flatnonzero(is_step & (roll >= 0.12) & (roll < 0.18)):
            variants[i] = _typo(str(acts[i]), rng)
        latin = np.array([str(v).encode("latin-1", "replace").decode("latin-1") for v in variants], dtype=object)
        mapping_acts = {str(v): str(s) for v, s, ok in zip(variants, frame["step"], is_step, strict=True) if ok}
        mapping_acts.update({str(v): str(s) for v, s, ok in zip(latin, frame["step"], is_step, strict=True) if ok})
        role_label = {k: r.label for k, r in model.roles.items()}
        roles_out = np.array([role_label.get(r, r) for r in frame["role"]], dtype=object)
        cases = frame["case_id"].drop_duplicates().tolist()
        names = {c: f"{_FIRST[int(rng.integers(len(_FIRST)))]} {_LAST[int(rng.integers(len(_LAST)))]}" for c in cases}
        notes = np.where(rng.random(len(frame)) < 0.2,
                         np.array(_NOTES, dtype=object)[rng.integers(0, len(_NOTES), len(frame))], "")
        half = set(cases[: (len(cases) + 1) // 2])
        first = frame["case_id"].isin(half).to_numpy()
        mapping = {
            "columns": {"case_id": "No Kasus", "activity": "Kegiatan", "start": "Tanggal Mulai",
                        "end": "Tanggal Selesai", "resource": "Petugas", "role": "Peran",
                        "documents": "Kelengkapan", "status": "Status"},
            "drop": ["Nama Siswa", "Catatan"],
            "date_formats": ["dd/mm/yyyy HH:MM"],  # '16 Januari 2020 07:35' is understood as it is
            "timezone": tz,
            "activities": dict(sorted(mapping_acts.items())),
            "roles": {label: key for key, label in sorted(role_label.items())},
        }
        map_path = folder / f"{name}.mapping.yaml"
        map_path.write_text("# Patuh column mapping for the messy synthetic exports of " + sop_id + "\n"
                            + yaml.safe_dump(mapping, allow_unicode=True, sort_keys=False, width=1000),
                            encoding="utf-8")
        result.extra_files.append(map_path)
        for part, style, ext in ((first, "dmy", "xlsx"), (~first, "long", "csv")):
            sub = frame[part]
            rows = pd.DataFrame({
                "No Kasus": sub["case_id"].to_numpy(), "Kegiatan": variants[part],
                "Tanggal Mulai": _local_text(sub["ts_start"], tz, style),
                "Tanggal Selesai": _local_text(sub["ts_end"], tz, style),
                "Petugas": sub["resource"].to_numpy(), "Peran": roles_out[part],
                "Kelengkapan": sub["documents"].to_numpy(), "Status": sub["status"].to_numpy(),
                "Nama Siswa": [names[c] for c in sub["case_id"]], "Catatan": notes[part],
            })
            n_real = len(rows)
            n_dup = max(1, n_real // 100) if n_real else 0
            dups = rows.iloc[np.sort(rng.choice(n_real, n_dup, replace=False))] if n_dup else rows.iloc[:0]
            bad = rows.iloc[np.sort(rng.choice(n_real, min(n_real, max(1, n_real // 300)), replace=False))].copy() \
                if n_real else rows.iloc[:0].copy()
            no_case = bad.copy()
            no_case["No Kasus"] = ""
            backwards = bad.copy()
            backwards["Kegiatan"] = "Koreksi data"
            backwards["Tanggal Mulai"], backwards["Tanggal Selesai"] = bad["Tanggal Selesai"], bad["Tanggal Mulai"]
            backwards = backwards[backwards["Tanggal Mulai"] != backwards["Tanggal Selesai"]]
            out = pd.concat([rows, dups, no_case, backwards])
            out = out.iloc[np.argsort(rng.random(len(out)), kind="stable")].reset_index(drop=True)
            n_blank = max(1, len(out) // 200) if len(out) else 0
            blank_at = np.sort(rng.choice(len(out) + 1, n_blank, replace=True)) if n_blank else np.zeros(0, int)
            path = folder / (f"{name}.xlsx" if ext == "xlsx" else f"{name}-latin1.csv")
            pieces = np.split(out.to_numpy(dtype=object), blank_at)
            if ext == "xlsx":
                blank = [None] * len(MESSY_HEADERS)
                body: list[list[Any]] = []
                for k, piece in enumerate(pieces):
                    if k:
                        body.append(blank)
                    body += piece.tolist()
                _write_xlsx(path, pd.DataFrame(body, columns=MESSY_HEADERS), "Kasus")
            else:
                import csv
                import io

                buf = io.StringIO()
                writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
                writer.writerow(MESSY_HEADERS)
                for k, piece in enumerate(pieces):
                    if k:
                        buf.write("\r\n")
                    writer.writerows(piece.tolist())
                path.write_bytes(buf.getvalue().encode("latin-1", errors="replace"))
            result.extra_files.append(path)
            expected[str(path.relative_to(result.out_dir))] = {
                "institution_id": model.institution, "sop_id": sop_id,
                "mapping": str(map_path.relative_to(result.out_dir)),
                "data_rows": len(out), "blank_lines": int(n_blank), "loaded": n_real, "duplicates": len(dups),
                "quarantined": len(no_case) + len(backwards),
                "quarantine_reasons": {"missing_case_id": len(no_case), "end_before_start": len(backwards)},
                "encoding": "utf-8" if ext == "xlsx" else "latin-1",
            }
    exp_path = base / "expected.json"
    exp_path.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    result.expected = exp_path


def generate_demo(out_dir: Path, *, cases: int = 20000, seed: int = 20261123,
                  start: dt.date = dt.date(2025, 11, 1), months: int = 12) -> SynthResult:
    """The demo dataset: every procedure SOP of the seed institutions, canonical Parquet files."""
    return generate(out_dir, institutions=DEMO_INSTITUTIONS, cases=cases, seed=seed, start=start,
                    months=months, deviation_rate=0.12, fmt="parquet")


def _add_months(day: dt.date, months: int) -> dt.date:
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return dt.date(year, month, min(day.day, 28))
