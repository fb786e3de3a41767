"""Exact optimal alignments for safe Petri nets with concurrency, faster than pm4py's A*.

The search is A* over (trace position, marking) of the synchronous product, with pm4py's standard costs
(synchronous move 0, log or visible model move 10000, silent move 1), so the optimal cost is the same as
pm4py's. What makes it fast:

* markings are Python ints (one bit per place: the net must be safe; a second token in a place raises
  :class:`NotSafe` and the caller falls back to pm4py);
* the heuristic is the marking equation of the synchronous product (the same LP pm4py solves), written
  compactly: one column per model transition and one per synchronous use of a visible transition, with the
  trace entering only as the multiset of its remaining labels. The LP has the same size for every trace
  and every state; HiGHS re-solves it warm-started after changing only the row bounds;
* a state's heuristic is *exact* without an LP when its parent's LP solution used the move (as in pm4py),
  and otherwise a lower bound from the parent's dual solution: ``h(parent) - cost(move) + reduced cost``.
  That bound is consistent (dual feasibility) and much tighter than pm4py's ``h - cost``, so states behind
  a costly move are not popped just to solve their LP;
* a silent transition that is the only consumer of each of its input places (none in the final marking)
  is fired alone as soon as it is enabled: in a safe net it commutes to the front of every completion, so
  the other interleavings need not be searched;
* ties on f go to states with an exact heuristic, then to the deeper state (smaller h), then to the newest
  (pm4py's order, plus last-in-first-out);
* the moves a marking enables are worked out once and kept across trace positions and traces, and Python's
  cyclic garbage collector is paused during a search (it makes no cycles; the collector only walked the
  heap's tuples). On pm4py's a42f0n00 sample these two took the search from 1.0 s to 0.58 s.
"""

from __future__ import annotations

import gc
import heapq
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

MOVE_COST = 10000  # pm4py's STD_MODEL_LOG_MOVE_COST; a silent move costs 1, a synchronous move 0
TAU_COST = 1
SKIP = ">>"
_EPS = 1e-6

FloatArray = npt.NDArray[np.float64]
Move = tuple[str, str | None]
_Candidate = tuple[int, int, int, Move]  # (cost, trace positions consumed, LP column, move)
# (next marking, label, the candidate moves, the same plus the synchronous move when the label is the next event)
_Successor = tuple[int, str | None, tuple[_Candidate, ...], tuple[_Candidate, ...]]
_SUCCESSORS_KEPT = 50_000  # markings whose moves are kept across traces (up to about 1 kB each)


class NotSafe(Exception):
    """This search cannot guarantee an optimal alignment here (the net put a second token in a place, or the
    LP solver did not finish): use pm4py's generic alignments instead."""


@dataclass(frozen=True)
class NetTransition:
    label: str | None  # None for a silent transition
    inputs: tuple[int, ...]  # place indices (arc weight 1)
    outputs: tuple[int, ...]


@dataclass
class _Exact:
    """The LP at one state: exact heuristic value, primal solution, reduced costs, label-row duals."""

    h: float
    x: list[float]
    reduced: list[float]
    label_dual: list[float]


@dataclass
class NetAligner:
    """A safe net with unit arc weights, ready to align traces of visible labels."""

    places: int
    transitions: Sequence[NetTransition]
    initial: tuple[int, ...]
    final: tuple[int, ...]
    lp_solved: int = 0
    _highs: Any = field(default=None, init=False, repr=False)
    _highs_pid: int = field(default=0, init=False, repr=False)
    _best_worst: int | None = field(default=None, init=False, repr=False)
    _succ: dict[int, list[_Successor]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        t_count = len(self.transitions)
        self._pre = [_mask(t.inputs) for t in self.transitions]
        self._post = [_mask(t.outputs) for t in self.transitions]
        self._labels = [t.label for t in self.transitions]
        self._init = _mask(self.initial)
        self._final = _mask(self.final)
        self._final_vec = _vector(self._final, self.places)
        visible = [j for j, t in enumerate(self.transitions) if t.label is not None]
        self._visible = visible
        labels = sorted({t.label for t in self.transitions if t.label is not None})
        self._label_index = {lbl: k for k, lbl in enumerate(labels)}
        self._sync_col = {j: t_count + k for k, j in enumerate(visible)}
        self._by_label: list[list[int]] = [[] for _ in self._label_index]
        for j in visible:
            self._by_label[self._label_index[str(self._labels[j])]].append(self._sync_col[j])
        # transitions listed under their lowest input place: a marking enables only those under its places
        self._by_place: list[list[tuple[int, int]]] = [[] for _ in range(self.places)]
        self._always: list[int] = []
        consumers = [[j for j, t in enumerate(self.transitions) if p in t.inputs] for p in range(self.places)]
        self._forced = {j for j, t in enumerate(self.transitions)
                        if t.label is None and t.inputs and not set(t.inputs) & set(self.final)
                        and all(consumers[p] == [j] for p in t.inputs)}
        for j, pre in enumerate(self._pre):
            if pre:
                self._by_place[(pre & -pre).bit_length() - 1].append((j, pre))
            else:
                self._always.append(j)

    @property
    def best_worst_cost(self) -> int:
        """Cost of aligning the empty trace (the cheapest run of the model alone)."""
        if self._best_worst is None:
            self._best_worst = self.align([]).cost
        return self._best_worst

    def _build_lp(self) -> Any:
        visible = self._visible
        t_count, places, labels = len(self.transitions), self.places, len(self._label_index)
        incidence = np.zeros((places, t_count))
        for j, t in enumerate(self.transitions):
            for p in t.inputs:
                incidence[p, j] -= 1
            for p in t.outputs:
                incidence[p, j] += 1
        label_rows = np.zeros((labels, len(visible)))
        for k, j in enumerate(visible):
            label_rows[self._label_index[str(self._labels[j])], k] = 1
        matrix = sp.csc_matrix(np.block([[incidence, incidence[:, visible]],
                                          [np.zeros((labels, t_count)), label_rows]]))
        cost = np.concatenate([[TAU_COST if lbl is None else MOVE_COST for lbl in self._labels],
                               np.full(len(visible), -MOVE_COST)]).astype(float)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.col_cost_ = cost
        lp.col_lower_ = np.zeros(matrix.shape[1])
        lp.col_upper_ = np.full(matrix.shape[1], highspy.kHighsInf)
        lp.row_lower_ = np.zeros(matrix.shape[0])
        lp.row_upper_ = np.zeros(matrix.shape[0])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        highs = _quiet_highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("threads", 1)
        highs.passModel(lp)
        self._rows = np.arange(matrix.shape[0], dtype=np.int32)
        self._no_lower = np.full(labels, -highspy.kHighsInf)
        return highs

    def _solve(self, marking: int, remaining: FloatArray, events_left: int) -> _Exact | None:
        """Marking equation at a state: None when the final marking cannot be reached."""
        self.lp_solved += 1
        if self._highs is None or self._highs_pid != os.getpid():  # a forked worker builds its own solver
            self._highs, self._highs_pid = self._build_lp(), os.getpid()
        rhs = self._final_vec - _vector(marking, self.places)
        self._highs.changeRowsBounds(len(self._rows), self._rows, np.concatenate([rhs, self._no_lower]),
                                     np.concatenate([rhs, remaining]))
        self._highs.run()
        status = self._highs.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None
        if status != highspy.HighsModelStatus.kOptimal:  # never seen; pruning on it could cost optimality
            raise NotSafe(f"the heuristic's LP ended with status {status}")
        solution = self._highs.getSolution()
        value = self._highs.getInfo().objective_function_value
        duals = np.asarray(solution.row_dual)
        return _Exact(MOVE_COST * events_left + value, list(solution.col_value),
                      np.maximum(np.asarray(solution.col_dual), 0.0).tolist(),
                      np.maximum(-duals[self.places:], 0.0).tolist())

    def _successors(self, marking: int) -> list[_Successor]:
        """The model's moves from ``marking``, kept per marking (markings recur at every trace position and
        in every trace). Only the first forced silent transition when one is enabled."""
        known = self._succ.get(marking)
        if known is not None:
            return known
        enabled = list(self._always)
        rest = marking
        while rest:
            low = rest & -rest
            rest ^= low
            enabled.extend(j for j, pre in self._by_place[low.bit_length() - 1] if marking & pre == pre)
        forced = [j for j in enabled if j in self._forced]
        cached: list[_Successor] = []
        for j in forced[:1] or enabled:
            left = marking & ~self._pre[j]
            if left & self._post[j]:
                raise NotSafe("a transition put a second token into a place")
            label = self._labels[j]
            if label is None:
                moves: tuple[_Candidate, ...] = ((TAU_COST, 0, j, (SKIP, None)),)
                cached.append((left | self._post[j], None, moves, moves))
            else:
                model_move: _Candidate = (MOVE_COST, 0, j, (SKIP, label))
                cached.append((left | self._post[j], label, (model_move,),
                               (model_move, (0, 1, self._sync_col[j], (label, label)))))
        if len(self._succ) >= _SUCCESSORS_KEPT:
            self._succ.clear()
        self._succ[marking] = cached
        return cached

    def align(self, trace: Sequence[str]) -> _Alignment:
        """One optimal alignment of ``trace`` from the initial to the final marking."""
        # The search allocates a few hundred thousand tuples and makes no reference cycles: Python's cyclic
        # collector would only walk them, again and again (40% of the time on pm4py's a42 logs).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._search(trace)
        finally:
            if collecting:
                gc.enable()

    def _search(self, trace: Sequence[str]) -> _Alignment:
        n = len(trace)
        label_of = [self._label_index.get(a, -1) for a in trace]
        remaining = [[0] * len(self._label_index) for _ in range(n + 1)]
        for i in range(n - 1, -1, -1):
            remaining[i] = list(remaining[i + 1])
            if label_of[i] >= 0:
                remaining[i][label_of[i]] += 1
        memo: dict[tuple[int, int], _Exact | None] = {}

        def exact(i: int, marking: int) -> _Exact | None:
            key = (i, marking)
            if key not in memo:
                memo[key] = self._solve(marking, np.asarray(remaining[i], dtype=float), n - i)
            return memo[key]

        first = exact(0, self._init)
        if first is None:
            raise ValueError("the model has no path to its final marking")
        start = (0, self._init)
        best: dict[tuple[int, int], int] = {start: 0}
        back: dict[tuple[int, int], tuple[tuple[int, int], Move]] = {}
        closed: set[tuple[int, int]] = set()
        h0 = _ceil(first.h)
        # (f, untrusted, h, -counter, g, state, bound, primal or None, dual)
        heap: list[tuple[Any, ...]] = [(h0, False, h0, 0, 0, start, first.h, first.x, first)]
        counter = 0
        push, pop, ceil = heapq.heappush, heapq.heappop, math.ceil
        successors, best_get, almost_one = self._successors, best.get, 1 - _EPS
        unreached = 1 << 62
        while heap:
            _, _, h, _, g, state, bound, x, dual = pop(heap)
            if g > best[state] or state in closed:
                continue
            i, marking = state
            if x is None:
                solved = exact(i, marking)
                if solved is None:
                    closed.add(state)
                    continue
                bound, x, dual = solved.h, solved.x, solved
                if _ceil(bound) > h:
                    counter += 1
                    h = _ceil(bound)
                    push(heap, (g + h, False, h, -counter, g, state, bound, x, dual))
                    continue
            if i == n and marking == self._final:
                return _Alignment(g, _moves(back, state, start))
            closed.add(state)
            reduced = dual.reduced
            observed = trace[i] if i < n else None
            for nxt, label, model_only, with_sync in successors(marking):
                for cost, step, col, move in with_sync if label == observed else model_only:
                    child = (i + step, nxt)
                    g2 = g + cost
                    if g2 >= best_get(child, unreached) or child in closed:
                        continue
                    best[child] = g2
                    back[child] = (state, move)
                    child_x = None
                    if x[col] >= almost_one:
                        child_x = x.copy()
                        child_x[col] -= 1
                    b2 = bound - cost + reduced[col]
                    h2 = ceil(b2 - _EPS)
                    if h2 < 0:
                        h2 = 0
                    counter += 1
                    push(heap, (g2 + h2, child_x is None, h2, -counter, g2, child, b2, child_x, dual))
            if i < n:  # log move
                child = (i + 1, marking)
                g2 = g + MOVE_COST
                if g2 < best_get(child, unreached) and child not in closed:
                    best[child] = g2
                    back[child] = (state, (trace[i], SKIP))
                    k = label_of[i]
                    if k < 0:  # a label the model does not have: always a log move, the LP is unchanged
                        b2, child_x = bound - MOVE_COST, x
                    else:
                        b2 = bound - MOVE_COST + dual.label_dual[k]
                        used = sum(x[c] for c in self._by_label[k])
                        child_x = x if remaining[i][k] - used >= 1 - _EPS else None
                    h2 = max(0, ceil(b2 - _EPS))
                    counter += 1
                    push(heap, (g2 + h2, child_x is None, h2, -counter, g2, child, b2, child_x, dual))
        raise ValueError("the model has no path to its final marking")

    def fitness(self, trace_length: int, cost: int) -> float:
        """pm4py's fitness: 1 - (deviation moves) / (trace length + moves of the cheapest model run)."""
        denominator = (trace_length * MOVE_COST + self.best_worst_cost) // MOVE_COST
        return 1 - (cost // MOVE_COST) / denominator if denominator > 0 else 0.0


@dataclass(frozen=True)
class _Alignment:
    cost: int
    moves: list[Move]


def _moves(back: dict[tuple[int, int], tuple[tuple[int, int], Move]], goal: tuple[int, int],
           start: tuple[int, int]) -> list[Move]:
    out: list[Move] = []
    state = goal
    while state != start:
        state, move = back[state][0], back[state][1]
        out.append(move)
    out.reverse()
    return out


def _quiet_highs() -> Any:
    """A HiGHS instance without its banner (printed by the C++ constructor straight to file descriptor 1)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highs = highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return highs


def _mask(places: Sequence[int]) -> int:
    out = 0
    for p in places:
        out |= 1 << p
    return out


def _vector(marking: int, places: int) -> FloatArray:
    """The marking as a 0/1 vector over the places."""
    packed = np.frombuffer(marking.to_bytes((places + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(packed, count=places, bitorder="little").astype(np.float64)


def _ceil(value: float) -> int:
    return max(0, math.ceil(value - _EPS))
