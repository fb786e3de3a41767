"""The only module that imports pm4py.

It compiles SOP models to workflow nets, loads PNML and BPMN files as models, checks soundness, and
computes alignments. pm4py's own dataframe column names (``case:concept:name`` …) appear only here.

pm4py is imported on first use, not with this module: importing it takes about 2 s, and a compliance run
whose nets are all SOP state machines never calls it. :func:`compile_sop` therefore builds its net from
small classes shaped like pm4py's (``places``, ``transitions``, ``arcs``, ``in_arcs``/``out_arcs``, ``label``,
``weight``), which everything here reads the same way; a pm4py function gets a pm4py copy (:func:`to_pm4py`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# pm4py prints a licence banner on import and progress bars while aligning; Patuh shows its own progress.
sys._pm4py_welcome_shown = True  # type: ignore[attr-defined]
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore", module="pm4py")

from pipeline.errors import UserError  # noqa: E402
from pipeline.net_align import MOVE_COST as MOVE_COST  # noqa: E402  (re-exported: pm4py's standard costs)
from pipeline.net_align import SKIP as SKIP  # noqa: E402
from pipeline.net_align import TAU_COST as TAU_COST  # noqa: E402
from pipeline.net_align import NetAligner, NetTransition, NotSafe  # noqa: E402
from pipeline.sop import END, SopModel  # noqa: E402


def _pm4py() -> Any:
    """The pm4py module (imported on the first call)."""
    import pm4py

    return pm4py


CASE = "case:concept:name"
ACTIVITY = "concept:name"
TIMESTAMP = "time:timestamp"
RESOURCE = "org:resource"


class _Node:
    """A place or transition of a compiled SOP net (pm4py's attribute names; identity equality as pm4py's)."""

    __slots__ = ("in_arcs", "label", "name", "out_arcs")

    def __init__(self, name: str, label: str | None = None) -> None:
        self.name, self.label = name, label
        self.in_arcs: set[_Arc] = set()
        self.out_arcs: set[_Arc] = set()


class _Arc:
    __slots__ = ("source", "target", "weight")

    def __init__(self, source: _Node, target: _Node) -> None:
        self.source, self.target, self.weight = source, target, 1


class _Net:
    """A workflow net as compile_sop builds it (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.places: set[_Node] = set()
        self.transitions: set[_Node] = set()
        self.arcs: set[_Arc] = set()

    def place(self, name: str) -> _Node:
        node = _Node(name)
        self.places.add(node)
        return node

    def transition(self, name: str, label: str | None) -> _Node:
        node = _Node(name, label)
        self.transitions.add(node)
        return node

    def arc(self, source: _Node, target: _Node) -> None:
        arc = _Arc(source, target)
        self.arcs.add(arc)
        source.out_arcs.add(arc)
        target.in_arcs.add(arc)


@dataclass
class ProcessModel:
    """A workflow net with its markings; ``labels`` are the visible transition labels.

    ``net`` is a pm4py ``PetriNet`` (a PNML or BPMN file) or the same-shaped net of :func:`compile_sop`;
    the markings map its places to token counts.
    """

    net: Any
    initial: Any
    final: Any
    name: str
    _pm4py_copy: tuple[Any, Any, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def labels(self) -> set[str]:
        return {t.label for t in self.net.transitions if t.label is not None}


def compile_sop(model: SopModel) -> ProcessModel:
    """Compile an SOP model to a workflow net whose visible transitions are labelled with step ids.

    Construction (always a free-choice, sound net when every step can reach the end):
    one input place per step; a step's transition moves the token to its *exit*: the next step's input
    place, the sink, or (for a decision) a choice place with one silent transition per branch.
    ``optional`` adds a silent skip from the step's input to its exit; ``repeat`` routes the step through
    a place from which a silent transition goes back (again) or on (done).
    """
    net = _Net(model.id)
    source = net.place("source")
    sink = net.place("sink")
    entry = {step.id: net.place(f"p_{step.id}") for step in model.steps}

    def target_place(target: str) -> _Node:
        return sink if target == END else entry[target]

    def silent(name: str, src: _Node, dst: _Node) -> None:
        tau = net.transition(name, None)
        net.arc(src, tau)
        net.arc(tau, dst)

    first = model.steps[0].id
    silent("tau_start", source, entry[first])
    for step_id, targets in model.successors().items():
        step = model.step(step_id)
        if len(targets) == 1:
            exit_place = target_place(targets[0])
        else:
            exit_place = net.place(f"x_{step_id}")
            for target in targets:
                silent(f"tau_{step_id}_to_{target}", exit_place, target_place(target))
        transition = net.transition(f"t_{step_id}", step_id)
        net.arc(entry[step_id], transition)
        if step.repeat:
            again = net.place(f"r_{step_id}")
            net.arc(transition, again)
            silent(f"tau_{step_id}_again", again, entry[step_id])
            silent(f"tau_{step_id}_done", again, exit_place)
        else:
            net.arc(transition, exit_place)
        if step.optional:
            silent(f"tau_{step_id}_skip", entry[step_id], exit_place)
    return ProcessModel(net, {source: 1}, {sink: 1}, model.id)


def to_pm4py(model: ProcessModel) -> tuple[Any, Any, Any]:
    """``model`` as pm4py's (net, initial marking, final marking), converted once from a compiled SOP net."""
    if model._pm4py_copy is None:
        _pm4py()
        from pm4py.objects.petri_net.obj import Marking, PetriNet
        from pm4py.objects.petri_net.utils import petri_utils

        if isinstance(model.net, PetriNet):
            model._pm4py_copy = (model.net, model.initial, model.final)
        else:
            net = PetriNet(model.net.name)
            copies: dict[Any, Any] = {}
            for p in model.net.places:
                copies[p] = PetriNet.Place(p.name)
                net.places.add(copies[p])
            for t in model.net.transitions:
                copies[t] = PetriNet.Transition(t.name, t.label)
                net.transitions.add(copies[t])
            for a in model.net.arcs:
                petri_utils.add_arc_from_to(copies[a.source], copies[a.target], net, weight=a.weight)
            model._pm4py_copy = (net, Marking({copies[p]: n for p, n in model.initial.items()}),
                                 Marking({copies[p]: n for p, n in model.final.items()}))
    return model._pm4py_copy


def is_sound(model: ProcessModel) -> bool:
    """pm4py's soundness check (WOFLAN) of a workflow net."""
    result = _pm4py().check_soundness(*to_pm4py(model))
    return bool(result[0])


def load_model(path: Path) -> ProcessModel:
    """Load a PNML or BPMN 2.0 file (or an SOP YAML file) as a workflow net."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise UserError(f"{path}: no such model file",
                        pesan=f"{path}: berkas model tidak ditemukan")
    try:
        if suffix == ".pnml":
            net, im, fm = _pm4py().read_pnml(str(path))
        elif suffix == ".bpmn":
            pm4py = _pm4py()
            net, im, fm = pm4py.convert_to_petri_net(pm4py.read_bpmn(str(path)))
        elif suffix in {".yaml", ".yml"}:
            from pipeline.sop import load_model_file

            loaded = load_model_file(path)
            if loaded.model is None:
                raise UserError("\n".join(p.render() for p in loaded.problems),
                                pesan=f"{path}: model SOP ini tidak dapat dimuat; perbaiki masalah yang tercantum di "
                                      "bawah (periksa lagi dengan 'patuh sop validate')")
            return compile_sop(loaded.model)
        else:
            raise UserError(f"{path}: a model must be .pnml, .bpmn or an SOP .yaml file (got '{suffix}')",
                            pesan=f"{path}: model harus berupa berkas .pnml, .bpmn atau .yaml SOP (yang diberikan: "
                                  f"'{suffix}')")
    except UserError:
        raise
    except Exception as exc:  # pm4py raises many kinds on a malformed file
        raise UserError(f"{path}: cannot read the model ({exc.__class__.__name__}: {exc})",
                        pesan=f"{path}: model tidak dapat dibaca ({exc.__class__.__name__}: {exc})") from None
    return ProcessModel(net, im, fm, path.stem)


# ---------------------------------------------------------------------------------------------------
# Alignments
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignmentResult:
    """One variant's optimal alignment: (log label, model label) moves, ``>>`` for "no move"."""

    cost: int
    fitness: float
    moves: list[tuple[str, str | None]]


def align_variants(model: ProcessModel, variants: Sequence[Sequence[str]]) -> list[AlignmentResult]:
    """Exact optimal alignments of each variant (a trace of labels) with pm4py's standard cost function."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    base = pd.Timestamp("2000-01-01", tz="UTC")
    for i, trace in enumerate(variants):
        for j, label in enumerate(trace):
            rows.append({CASE: str(i), ACTIVITY: label, TIMESTAMP: base + pd.Timedelta(seconds=j)})
    frame = pd.DataFrame(rows, columns=[CASE, ACTIVITY, TIMESTAMP])
    pm4py = _pm4py()
    log = pm4py.convert_to_event_log(frame) if len(frame) else None
    out: list[AlignmentResult] = []
    if log is None:
        return [align_trace(model, []) for _ in variants]
    diagnostics = pm4py.conformance_diagnostics_alignments(log, *to_pm4py(model))
    by_case = {str(trace.attributes["concept:name"]): diag for trace, diag in zip(log, diagnostics, strict=True)}
    for i, trace in enumerate(variants):
        if not trace:
            out.append(align_trace(model, []))
            continue
        diag = by_case[str(i)]
        out.append(_result(diag))
    return out


def align_trace(model: ProcessModel, trace: Sequence[str]) -> AlignmentResult:
    """Align one trace (used for the empty trace, which pm4py's log APIs cannot express)."""
    _pm4py()
    from pm4py.algo.conformance.alignments.petri_net import algorithm as alignments
    from pm4py.objects.log.obj import Event, Trace

    pm_trace = Trace([Event({ACTIVITY: label}) for label in trace])
    diag = alignments.apply_trace(pm_trace, *to_pm4py(model))
    return _result(diag)


def _result(diag: dict[str, Any]) -> AlignmentResult:
    moves = [(str(log_move), None if model_move is None else str(model_move))
             for log_move, model_move in diag["alignment"]]
    return AlignmentResult(int(diag["cost"]), float(diag["fitness"]), moves)


# ---------------------------------------------------------------------------------------------------
# State-machine nets: exact alignments without pm4py's generic search
# ---------------------------------------------------------------------------------------------------


@dataclass
class StateMachine:
    """A workflow net in which every transition has one input and one output place (SOP nets are)."""

    source: str
    sink: str
    arcs: dict[str, list[tuple[str | None, str]]]  # place -> [(label or None for tau, next place)]
    best_worst_moves: int  # visible transitions on the cheapest path through the model alone


def as_state_machine(model: ProcessModel) -> StateMachine | None:
    """The net as a state machine, or None when it has concurrency (then pm4py aligns it)."""
    net = model.net
    if len(model.initial) != 1 or len(model.final) != 1 or sum(model.initial.values()) != 1:
        return None
    arcs: dict[str, list[tuple[str | None, str]]] = {p.name: [] for p in net.places}
    for t in sorted(net.transitions, key=lambda t: t.name):
        if len(t.in_arcs) != 1 or len(t.out_arcs) != 1:
            return None
        (a_in,) = t.in_arcs
        (a_out,) = t.out_arcs
        if a_in.weight != 1 or a_out.weight != 1:
            return None
        arcs[a_in.source.name].append((t.label, a_out.target.name))
    source = next(iter(model.initial)).name
    sink = next(iter(model.final)).name
    machine = StateMachine(source, sink, arcs, 0)
    cost = _model_only_cost(machine)
    if cost is None:
        return None
    machine.best_worst_moves = cost // MOVE_COST
    return machine


def _model_only_cost(machine: StateMachine) -> int | None:
    import heapq

    dist = {machine.source: 0}
    heap = [(0, machine.source)]
    while heap:
        d, place = heapq.heappop(heap)
        if place == machine.sink:
            return d
        if d > dist.get(place, 1 << 62):
            continue
        for label, nxt in machine.arcs[place]:
            nd = d + (TAU_COST if label is None else MOVE_COST)
            if nd < dist.get(nxt, 1 << 62):
                dist[nxt] = nd
                heapq.heappush(heap, (nd, nxt))
    return None


def align_state_machine(machine: StateMachine, trace: Sequence[str], *, prefix: bool = False) -> AlignmentResult:
    """Exact optimal alignment (Dijkstra over trace position x place) with pm4py's standard costs.

    The optimal *cost* equals pm4py's; among alignments of equal cost a synchronous move is preferred,
    then a model move before a log move, so deviations are reported where the trace leaves the model.
    With ``prefix`` (an open case) the alignment may stop in any place once the trace is consumed: the
    steps still to come are not missing yet.
    """
    import heapq

    n = len(trace)
    start = (0, machine.source)
    dist: dict[tuple[int, str], int] = {start: 0}
    back: dict[tuple[int, str], tuple[tuple[int, str], tuple[str, str | None]]] = {}
    counter = 0
    heap: list[tuple[int, int, int, int, str]] = [(0, 0, counter, 0, machine.source)]
    goal = (n, machine.sink)
    while heap:
        d, _, _, i, place = heapq.heappop(heap)
        state = (i, place)
        if d > dist.get(state, 1 << 62):
            continue
        if state == goal or (prefix and i == n):
            goal = state
            break
        candidates: list[tuple[int, int, tuple[int, str], tuple[str, str | None]]] = []
        for label, nxt in machine.arcs[place]:
            if label is None:
                candidates.append((TAU_COST, 1, (i, nxt), (SKIP, None)))
            else:
                if i < n and trace[i] == label:
                    candidates.append((0, 0, (i + 1, nxt), (label, label)))
                candidates.append((MOVE_COST, 2, (i, nxt), (SKIP, label)))
        if i < n:
            candidates.append((MOVE_COST, 3, (i + 1, place), (trace[i], SKIP)))
        for cost, pref, nstate, move in candidates:
            nd = d + cost
            if nd < dist.get(nstate, 1 << 62):
                dist[nstate] = nd
                back[nstate] = (state, move)
                counter += 1
                heapq.heappush(heap, (nd, pref, counter, nstate[0], nstate[1]))
    if goal not in dist:
        raise ValueError("the model has no path to its final marking")
    moves: list[tuple[str, str | None]] = []
    state = goal
    while state != start:
        prev, move = back[state]
        moves.append(move)
        state = prev
    moves.reverse()
    cost = dist[goal]
    denominator = n + machine.best_worst_moves
    fitness = 1 - (cost // MOVE_COST) / denominator if denominator > 0 else 0.0
    return AlignmentResult(cost, fitness, moves)


def as_net_aligner(model: ProcessModel) -> NetAligner | None:
    """The net for :class:`pipeline.net_align.NetAligner` (unit arcs, one token per marked place), or None."""
    places = sorted(model.net.places, key=lambda p: p.name)
    index = {p: k for k, p in enumerate(places)}
    if any(v != 1 for v in model.initial.values()) or any(v != 1 for v in model.final.values()):
        return None
    transitions: list[NetTransition] = []
    for t in sorted(model.net.transitions, key=lambda t: t.name):
        if any(a.weight != 1 for a in (*t.in_arcs, *t.out_arcs)):
            return None
        transitions.append(NetTransition(t.label, tuple(index[a.source] for a in t.in_arcs),
                                         tuple(index[a.target] for a in t.out_arcs)))
    return NetAligner(len(places), transitions, tuple(index[p] for p in model.initial),
                      tuple(index[p] for p in model.final))


def align_net(aligner: NetAligner, model: ProcessModel, trace: Sequence[str]) -> AlignmentResult:
    """Exact alignment by :class:`NetAligner`; pm4py's search when the net turns out not to be safe
    (or has no path to its final marking, which pm4py reports its own way)."""
    try:
        found = aligner.align(trace)
    except (NotSafe, ValueError):
        return align_variants(model, [trace])[0]
    return AlignmentResult(found.cost, aligner.fitness(len(trace), found.cost), found.moves)


def read_log(path: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    """Read an XES/.xes.gz or pm4py-style CSV log with pm4py: (case ids, traces of activity labels).

    Used by ``patuh conform`` so that the comparison with pm4py starts from the very same traces.
    """
    import pandas as pd

    name = path.name.lower()
    if not path.exists():
        raise UserError(f"{path}: no such log file",
                        pesan=f"{path}: berkas log tidak ditemukan")
    pm4py = _pm4py()
    try:
        if name.endswith((".xes", ".xes.gz")):
            frame = pm4py.read_xes(str(path))
            if not isinstance(frame, pd.DataFrame):
                frame = pm4py.convert_to_dataframe(frame)
        elif name.endswith(".csv"):
            raw = pd.read_csv(path, sep=None, engine="python")
            missing = {CASE, ACTIVITY, TIMESTAMP} - set(raw.columns)
            if missing:
                raise UserError(f"{path}: a CSV log for 'patuh conform' needs the columns {CASE}, {ACTIVITY}, "
                                f"{TIMESTAMP} (missing: {', '.join(sorted(missing))}); load other exports "
                                "with 'patuh ingest --mapping'",
                                pesan=f"{path}: log CSV untuk 'patuh conform' memerlukan kolom {CASE}, {ACTIVITY}, "
                                      f"{TIMESTAMP} (yang tidak ada: {', '.join(sorted(missing))}); muat ekspor lain "
                                      "dengan 'patuh ingest --mapping'")
            frame = pm4py.format_dataframe(raw, case_id=CASE, activity_key=ACTIVITY, timestamp_key=TIMESTAMP)
        else:
            raise UserError(f"{path}: a log must be .xes, .xes.gz or .csv",
                            pesan=f"{path}: log harus berupa berkas .xes, .xes.gz atau .csv")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: cannot read the log ({exc.__class__.__name__}: {exc})",
                        pesan=f"{path}: log tidak dapat dibaca ({exc.__class__.__name__}: {exc})") from None
    # pm4py's own trace order: stable sort by timestamp within each case, cases in order of appearance
    frame = frame.reset_index(drop=True)
    frame["_order"] = range(len(frame))
    keys = [CASE, TIMESTAMP, "_order"] if TIMESTAMP in frame.columns else [CASE, "_order"]
    frame = frame.sort_values(keys, kind="stable")
    grouped = frame.groupby(CASE, sort=False)[ACTIVITY].agg(tuple)
    first_seen = frame.sort_values("_order").drop_duplicates(CASE)[CASE].tolist()
    traces = [tuple(str(a) for a in grouped[c]) for c in first_seen]
    return [str(c) for c in first_seen], traces
