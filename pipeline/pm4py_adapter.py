"""The only module that imports pm4py.

It compiles SOP models to workflow nets, loads PNML and BPMN files as models, checks soundness, and
computes alignments. pm4py's own dataframe column names (``case:concept:name`` …) appear only here.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pm4py prints a licence banner on import and progress bars while aligning; Patuh shows its own progress.
sys._pm4py_welcome_shown = True  # type: ignore[attr-defined]
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore", module="pm4py")

import pm4py  # noqa: E402
from pm4py.objects.petri_net.obj import Marking, PetriNet  # noqa: E402
from pm4py.objects.petri_net.utils import petri_utils  # noqa: E402

from pipeline.errors import UserError  # noqa: E402
from pipeline.sop import END, SopModel  # noqa: E402

CASE = "case:concept:name"
ACTIVITY = "concept:name"
TIMESTAMP = "time:timestamp"
RESOURCE = "org:resource"


@dataclass
class ProcessModel:
    """A workflow net with its markings; ``labels`` are the visible transition labels."""

    net: PetriNet
    initial: Marking
    final: Marking
    name: str

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
    net = PetriNet(model.id)
    source = PetriNet.Place("source")
    sink = PetriNet.Place("sink")
    net.places.update({source, sink})
    entry: dict[str, PetriNet.Place] = {}
    for step in model.steps:
        place = PetriNet.Place(f"p_{step.id}")
        net.places.add(place)
        entry[step.id] = place

    def target_place(target: str) -> PetriNet.Place:
        return sink if target == END else entry[target]

    def silent(name: str, src: PetriNet.Place, dst: PetriNet.Place) -> None:
        tau = PetriNet.Transition(name, None)
        net.transitions.add(tau)
        petri_utils.add_arc_from_to(src, tau, net)
        petri_utils.add_arc_from_to(tau, dst, net)

    first = model.steps[0].id
    silent("tau_start", source, entry[first])
    for step_id, targets in model.successors().items():
        step = model.step(step_id)
        if len(targets) == 1:
            exit_place = target_place(targets[0])
        else:
            exit_place = PetriNet.Place(f"x_{step_id}")
            net.places.add(exit_place)
            for target in targets:
                silent(f"tau_{step_id}_to_{target}", exit_place, target_place(target))
        transition = PetriNet.Transition(f"t_{step_id}", step_id)
        net.transitions.add(transition)
        petri_utils.add_arc_from_to(entry[step_id], transition, net)
        if step.repeat:
            again = PetriNet.Place(f"r_{step_id}")
            net.places.add(again)
            petri_utils.add_arc_from_to(transition, again, net)
            silent(f"tau_{step_id}_again", again, entry[step_id])
            silent(f"tau_{step_id}_done", again, exit_place)
        else:
            petri_utils.add_arc_from_to(transition, exit_place, net)
        if step.optional:
            silent(f"tau_{step_id}_skip", entry[step_id], exit_place)
    return ProcessModel(net, Marking({source: 1}), Marking({sink: 1}), model.id)


def is_sound(model: ProcessModel) -> bool:
    """pm4py's soundness check (WOFLAN) of a workflow net."""
    result = pm4py.check_soundness(model.net, model.initial, model.final)
    return bool(result[0])


def load_model(path: Path) -> ProcessModel:
    """Load a PNML or BPMN 2.0 file (or an SOP YAML file) as a workflow net."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    try:
        if suffix == ".pnml":
            net, im, fm = pm4py.read_pnml(str(path))
        elif suffix == ".bpmn":
            net, im, fm = pm4py.convert_to_petri_net(pm4py.read_bpmn(str(path)))
        elif suffix in {".yaml", ".yml"}:
            from pipeline.sop import load_model_file

            loaded = load_model_file(path)
            if loaded.model is None:
                raise UserError("\n".join(p.render() for p in loaded.problems))
            return compile_sop(loaded.model)
        else:
            raise UserError(f"{path}: a model must be .pnml, .bpmn or an SOP .yaml file (got '{suffix}')")
    except UserError:
        raise
    except Exception as exc:  # pm4py raises many kinds on a malformed file
        raise UserError(f"{path}: cannot read the model ({exc.__class__.__name__}: {exc})") from None
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
    log = pm4py.convert_to_event_log(frame) if len(frame) else None
    out: list[AlignmentResult] = []
    if log is None:
        return [align_trace(model, []) for _ in variants]
    diagnostics = pm4py.conformance_diagnostics_alignments(log, model.net, model.initial, model.final)
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
    from pm4py.algo.conformance.alignments.petri_net import algorithm as alignments
    from pm4py.objects.log.obj import Event, Trace

    pm_trace = Trace([Event({ACTIVITY: label}) for label in trace])
    diag = alignments.apply_trace(pm_trace, model.net, model.initial, model.final)
    return _result(diag)


def _result(diag: dict[str, Any]) -> AlignmentResult:
    moves = [(str(log_move), None if model_move is None else str(model_move))
             for log_move, model_move in diag["alignment"]]
    return AlignmentResult(int(diag["cost"]), float(diag["fitness"]), moves)
