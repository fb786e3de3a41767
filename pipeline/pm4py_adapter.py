"""The only module that imports pm4py.

It compiles SOP models to workflow nets, loads PNML and BPMN files as models, checks soundness, and
computes alignments. pm4py's own dataframe column names (``case:concept:name`` …) appear only here.

pm4py is imported on first use, not with this module: importing it takes about 2 s, and a compliance run
whose nets are all SOP state machines never calls it. :func:`compile_sop` therefore builds its net from
small classes shaped like pm4py's (``places``, ``transitions``, ``arcs``, ``in_arcs``/``out_arcs``, ``label``,
``weight``), which everything here reads the same way; a pm4py function gets a pm4py copy (:func:`to_pm4py`).
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
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


def compile_sop(model: SopModel, labels: Mapping[str, str] | None = None) -> ProcessModel:
    """Compile an SOP model to a workflow net whose visible transitions are labelled with step ids
    (or with ``labels[step_id]``: :func:`export_sop` labels them with the activity text logs record).

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
        transition = net.transition(f"t_{step_id}", labels.get(step_id, step_id) if labels else step_id)
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
            return compile_sop(load_sop_file(path))
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


def load_sop_file(path: Path) -> SopModel:
    """A valid procedure SOP from a YAML file (a :class:`UserError` naming every problem otherwise)."""
    from pipeline.sop import load_model_file

    if not path.exists():
        raise UserError(f"{path}: no such model file",
                        pesan=f"{path}: berkas model tidak ditemukan")
    loaded = load_model_file(path)
    if loaded.model is None:
        raise UserError("\n".join(p.render() for p in loaded.problems),
                        pesan="\n".join(p.render_pesan() for p in loaded.problems))
    return require_procedure(loaded.model, str(path))


def require_procedure(model: SopModel, where: str) -> SopModel:
    """``model`` when it is a procedure; a rules model has no steps, so no net: a :class:`UserError` naming
    procedure SOPs of the catalogue instead."""
    if model.kind != "rules":
        return model
    from pipeline.config import get_settings
    from pipeline.sop import load_catalogue

    root = get_settings().catalogue_dir
    catalogue = load_catalogue(root) if root.is_dir() else None
    usable = sorted(i for i, m in catalogue.models.items() if m.kind != "rules") if catalogue else []
    same = [i for i in usable if i.startswith(f"{model.institution}/")]
    examples = [f"{i} ({_shown(catalogue.files[i])})" for i in (same or usable)[:3]] if catalogue else []
    instead = (f"; use a procedure SOP instead, e.g. {', '.join(examples)}: {len(usable)} in {_shown(root)}, "
               "'patuh sop list' shows each SOP's kind") if examples else \
        "; use a procedure SOP instead (kind: procedure, with steps)"
    gantinya = (f"; gunakan SOP prosedur sebagai gantinya, misalnya {', '.join(examples)}: ada {len(usable)} di "
                f"{_shown(root)}, 'patuh sop list' menunjukkan jenis setiap SOP") if examples else \
        "; gunakan SOP prosedur sebagai gantinya (kind: procedure, dengan langkah)"
    which = where if where == model.id else f"{where}: {model.id}"
    raise UserError(f"{which} is a rules model (kind: rules): "
                    "its rules are checked on their inputs "
                    "(attendance, escalations, scores) by 'patuh run', and it has no process of steps to align a "
                    f"log with or to export as a net{instead}",
                    pesan=f"{which} adalah model aturan (kind: rules): aturannya diperiksa oleh 'patuh run' pada "
                          "masukannya (kehadiran, eskalasi, nilai), dan model ini tidak memiliki proses berlangkah "
                          f"untuk dicocokkan dengan log atau diekspor sebagai jaring{gantinya}")


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (as a user types it)."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def export_sop(model: SopModel, fmt: str, out: Path) -> Path:
    """Write the compiled net of ``model`` as PNML or BPMN 2.0, its visible transitions labelled with the
    activity text a log records for each step (:func:`pipeline.synth.activity_labels`), so other tools align
    the same logs against it. Returns ``out``."""
    from pipeline.synth import activity_labels

    model = require_procedure(model, model.id)
    compiled = compile_sop(model, dict(zip(model.step_ids, activity_labels(model), strict=True)))
    net, im, fm = to_pm4py(compiled)
    pm4py = _pm4py()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pnml":
        pm4py.write_pnml(net, im, fm, str(out))
    elif fmt == "bpmn":
        import shutil

        # the diagram layout needs Graphviz's dot; without it the BPMN has the process only (no drawing)
        pm4py.write_bpmn(pm4py.convert_to_bpmn(net, im, fm), str(out), auto_layout=shutil.which("dot") is not None)
    else:
        raise UserError(f"--format {fmt!r}: use pnml or bpmn",
                        pesan=f"--format {fmt!r}: gunakan pnml atau bpmn")
    return out


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


@dataclass
class LogTraces:
    """A log as ``patuh conform`` reads it: case ids and their traces in pm4py's order, and what was left out."""

    case_ids: list[str]
    traces: list[tuple[str, ...]]
    left_out: list[str] = field(default_factory=list)  # one message per file that lost rows, for the user


def read_log(path: Path) -> LogTraces:
    """Read an XES/.xes.gz or CSV log with pm4py: (case ids, traces of activity labels, rows left out).

    Used by ``patuh conform`` so that the comparison with pm4py starts from the very same traces. The file is
    checked first with ingest's checks (:mod:`pipeline.readers`): its content matches its name, an XES file
    is complete and declares no DTD or entities. A CSV's columns are found by ingest's names
    (:data:`pipeline.mapping.CANONICAL`); rows without a case, an activity or a readable timestamp are left
    out and counted.
    """
    kind = _check_log_file(path)
    if kind == "csv":
        frame, left_out = _read_csv_log(path)
    else:
        frame, left_out = _read_xes_log(path), []
    # pm4py's own trace order: stable sort by timestamp within each case, cases in order of appearance
    frame = frame.reset_index(drop=True)
    frame["_order"] = range(len(frame))
    keys = [CASE, TIMESTAMP, "_order"] if TIMESTAMP in frame.columns else [CASE, "_order"]
    frame = frame.sort_values(keys, kind="stable")
    grouped = frame.groupby(CASE, sort=False)[ACTIVITY].agg(tuple)
    first_seen = frame.sort_values("_order").drop_duplicates(CASE)[CASE].tolist()
    traces = [tuple(str(a) for a in grouped[c]) for c in first_seen]
    if not traces:
        raise UserError(f"{path}: the log has no events; export it again with its events",
                        pesan=f"{path}: log ini tidak berisi peristiwa; ekspor ulang beserta peristiwanya")
    return LogTraces([str(c) for c in first_seen], traces, left_out)


def _check_log_file(path: Path) -> str:
    """csv | xes | xes.gz: the file's kind by its name, after ingest's check that the content is that kind."""
    from pipeline.readers import sniff_format

    if not path.exists():
        raise UserError(f"{path}: no such log file",
                        pesan=f"{path}: berkas log tidak ditemukan")
    name = path.name.lower()
    kind = next((k for k in ("xes.gz", "xes", "csv") if name.endswith("." + k)), None)
    if kind is None:
        raise UserError(f"{path}: a log must be .xes, .xes.gz or .csv (got '{path.suffix}'); export it as one of "
                        "these (from a spreadsheet: save as CSV)",
                        pesan=f"{path}: log harus berupa berkas .xes, .xes.gz atau .csv (yang diberikan: "
                              f"'{path.suffix}'); ekspor dalam salah satu jenis ini (dari spreadsheet: simpan "
                              "sebagai CSV)")
    found = sniff_format(path)  # an empty or binary file, gzip or not as the name says: ingest's messages
    if found != kind:
        how, caranya = ((f"rename it to .{found}", f"ganti akhiran namanya menjadi .{found}")
                        if found in ("csv", "xes", "xes.gz") else
                        ("save the log as CSV (UTF-8)", "simpan log sebagai CSV (UTF-8)"))
        raise UserError(f"{path.name}: not a .{kind} file, whatever its name says (the content is {found.upper()}): "
                        f"{how} for 'patuh conform'",
                        pesan=f"{path.name}: bukan berkas .{kind}, meskipun namanya berakhiran .{kind} (isinya "
                              f"{found.upper()}): {caranya} untuk 'patuh conform'")
    return kind


def _read_xes_log(path: Path) -> Any:
    """pm4py's dataframe of a checked XES file.

    ingest's pre-scan refuses DTDs and entities (XML bombs); a file it does not pass as complete is parsed by
    ingest's streaming reader first, which names a truncated file, instead of pm4py's Rust reader, which
    panics on it (a pyo3 ``PanicException``, a BaseException, after printing its backtrace). The panic is
    also caught, with the Rust side's output kept off the terminal, in case a file passes the pre-scan."""
    import pandas as pd

    from pipeline.readers import _quiet_fds, _xes_prescan

    if not _xes_prescan(path):  # incomplete, or dates without a UTC offset (those read fine)
        _xes_streaming_check(path)
    pm4py = _pm4py()
    try:
        with _quiet_fds():
            frame = pm4py.read_xes(str(path))
        if not isinstance(frame, pd.DataFrame):
            frame = pm4py.convert_to_dataframe(frame)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic is a BaseException
        _xes_streaming_check(path)  # names the line when the XML is broken
        what = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0].rsplit("value: ", 1)[-1]
        raise UserError(f"{path.name}: pm4py cannot read the XES file ({what}); it may be damaged: "
                        "export it again",
                        pesan=f"{path.name}: pm4py tidak dapat membaca berkas XES ini ({what}); mungkin berkasnya "
                              "rusak: ekspor ulang") from None
    if frame.empty:
        raise UserError(f"{path.name}: the XES file has no events; export the log again with its events",
                        pesan=f"{path.name}: berkas XES ini tidak berisi peristiwa; ekspor ulang log beserta "
                              "peristiwanya")
    missing = [k for k in (CASE, ACTIVITY) if k not in frame.columns]
    if missing:
        raise UserError(f"{path.name}: the XES file has no {' or '.join(missing)} attribute (a trace needs "
                        "its case id as concept:name, an event its activity as concept:name); export it again",
                        pesan=f"{path.name}: berkas XES ini tidak memiliki atribut {' atau '.join(missing)} (sebuah "
                              "trace memerlukan id kasusnya sebagai concept:name, sebuah peristiwa kegiatannya "
                              "sebagai concept:name); ekspor ulang")
    return frame


def _xes_streaming_check(path: Path) -> None:
    """Parse ``path`` with ingest's streaming XES reader: a :class:`UserError` naming what is wrong (a
    truncated file, no events, no <log> root), nothing for a readable file."""
    import duckdb

    from pipeline.readers import _xes_lxml

    conn = duckdb.connect()
    try:
        _xes_lxml(conn, path, set(), None)
    finally:
        conn.close()


def _read_csv_log(path: Path) -> tuple[Any, list[str]]:
    """pm4py's dataframe of a CSV log whose columns ingest recognises, and a note on the rows left out."""
    import pandas as pd

    from pipeline.mapping import resolve_canonical_quiet

    try:
        raw = pd.read_csv(path, sep=None, engine="python")
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path.name}: cannot read the CSV ({exc}); export it again as UTF-8 CSV "
                        "with a header row",
                        pesan=f"{path.name}: CSV ini tidak dapat dibaca ({exc}); ekspor ulang sebagai CSV UTF-8 "
                              "dengan baris judul kolom") from None
    raw.columns = [str(c) for c in raw.columns]
    cols = resolve_canonical_quiet(list(raw.columns))
    time_col = cols.get("timestamp") or cols.get("end")
    if "case_id" not in cols or "activity" not in cols or time_col is None:
        message, pesan = _csv_columns_message(path, list(raw.columns))
        raise UserError(message, pesan=pesan)
    if raw.empty:
        raise UserError(f"{path.name}: the CSV has a header but no rows (no events); export the log again "
                        "with its events",
                        pesan=f"{path.name}: CSV ini memiliki baris judul kolom tetapi tidak ada baris data (tidak "
                              "ada peristiwa); ekspor ulang log beserta peristiwanya")
    stamps = raw[time_col]
    reasons = pd.Series("", index=raw.index)
    for reason, col in (("no timestamp", time_col), ("no activity", cols["activity"]),
                        ("no case id", cols["case_id"])):  # a row missing several: the first of case, activity, time
        cells = raw[col]
        reasons[cells.isna() | cells.astype("string").str.strip().eq("")] = reason
    if stamps.dtype == object or pd.api.types.is_string_dtype(stamps.dtype):
        # text: parsed as pm4py parses it (format 'mixed', UTC); not a date: left out
        parsed = pd.to_datetime(stamps.where(reasons == ""), format="mixed", utc=True, errors="coerce")
        reasons[(reasons == "") & parsed.isna()] = "a timestamp that is not a date"
        raw[time_col] = parsed  # pm4py would parse the same text again
    kept = raw[reasons == ""].copy()
    why, sebabnya = _left_out(path, list(raw.columns), reasons, stamps)
    if kept.empty:
        raise UserError(f"{path.name}: none of the {len(raw)} rows can be used: {why}; fill them in and run again",
                        pesan=f"{path.name}: tidak ada satu pun dari {len(raw)} baris yang dapat dipakai: {sebabnya}; "
                              "lengkapi isinya lalu jalankan lagi")
    try:
        frame = _pm4py().format_dataframe(kept, case_id=cols["case_id"], activity_key=cols["activity"],
                                          timestamp_key=time_col)
    except Exception as exc:  # pm4py raises many kinds on data it cannot use
        raise UserError(f"{path.name}: pm4py cannot read the CSV ({exc.__class__.__name__}: {exc}); "
                        "export it again",
                        pesan=f"{path.name}: pm4py tidak dapat membaca CSV ini ({exc.__class__.__name__}: {exc}); "
                              "ekspor ulang") from None
    left_out = [f"{path.name}: left out {len(raw) - len(kept)} of {len(raw)} rows: {why}; fill them in (or fix "
                "the dates) and run again to check them too"] if why else []
    return frame, left_out


def _csv_columns_message(path: Path, headers: list[str]) -> tuple[str, str]:
    """What ``patuh conform`` needs of a CSV's header: the names ingest recognises without a mapping (in
    English and in Indonesian)."""
    from pipeline.mapping import CANONICAL

    def names(*roles: str) -> str:
        return ", ".join(n for role in roles for n in CANONICAL[role])

    found = ", ".join(map(repr, headers[:12]))
    return (f"{path.name}: a CSV log for 'patuh conform' needs a case, an activity and a timestamp column "
            f"(the file has {found}); it accepts, in any case, for the case "
            f"{names('case_id')}; for the activity {names('activity')}; for the time {names('timestamp', 'end')} "
            f"(or {names('start')} when there is no end). Rename the columns in the header row and run again",
            f"{path.name}: log CSV untuk 'patuh conform' memerlukan kolom kasus, kolom kegiatan dan kolom waktu "
            f"(kolom di berkas: {found}); nama yang diterima, tanpa memandang huruf besar/kecil, untuk kasus: "
            f"{names('case_id')}; untuk kegiatan: {names('activity')}; untuk waktu: {names('timestamp', 'end')} "
            f"(atau {names('start')} bila tidak ada waktu selesai). Ganti nama kolomnya di baris judul kolom, lalu "
            "jalankan lagi")


# the reasons a CSV log's row is left out, in Indonesian
_LEFT_OUT_ID = {"no timestamp": "tanpa waktu", "no activity": "tanpa kegiatan", "no case id": "tanpa id kasus",
                "a timestamp that is not a date": "berisi waktu yang bukan tanggal"}


def _left_out(path: Path, headers: list[str], reasons: Any, stamps: Any) -> tuple[str, str]:
    """'1 with no activity (line 5); 2 with a timestamp that is not a date (line 9: 'kemarin', ...)': the rows
    with a reason, by the file lines an editor shows (ingest's :func:`pipeline.readers.csv_record_lines`); the
    same in Indonesian beside it."""
    from pipeline.readers import csv_record_lines

    bad = reasons[reasons != ""]
    if bad.empty:
        return "", ""
    by_reason: dict[str, list[int]] = {}
    for i, reason in bad.items():
        by_reason.setdefault(str(reason), []).append(int(i))
    shown = [i for rows in by_reason.values() for i in rows[:5]]
    lines, _ = csv_record_lines(path, headers, [i + 1 for i in shown])  # 1-based data records
    parts, bagian = [], []
    for reason, rows in by_reason.items():
        where = [f"line {lines[i + 1]}" if i + 1 in lines else f"data row {i + 1}" for i in rows[:5]]
        di = [f"baris {lines[i + 1]}" if i + 1 in lines else f"baris data ke-{i + 1}" for i in rows[:5]]
        if reason.startswith("a timestamp"):
            where = [f"{w}: {stamps.at[i]!r}" for w, i in zip(where, rows, strict=False)]
            di = [f"{w}: {stamps.at[i]!r}" for w, i in zip(di, rows, strict=False)]
        more = f", {len(rows) - 5} more" if len(rows) > 5 else ""
        lagi = f", {len(rows) - 5} lainnya" if len(rows) > 5 else ""
        parts.append(f"{len(rows)} with {reason} ({', '.join(where)}{more})")
        bagian.append(f"{len(rows)} baris {_LEFT_OUT_ID.get(reason, reason)} ({', '.join(di)}{lagi})")
    return "; ".join(parts), "; ".join(bagian)
