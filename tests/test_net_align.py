"""Patuh's A* for nets with concurrency: pm4py's optimal costs, valid alignments, a fallback for unsafe nets."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pm4py
import pytest
from pm4py.objects.petri_net.obj import Marking, PetriNet
from pm4py.objects.petri_net.utils import petri_utils

from pipeline import pm4py_adapter
from pipeline.net_align import SKIP, NetAligner, NetTransition, NotSafe
from pipeline.pm4py_adapter import ProcessModel
from tests.engine_fixtures import perturbed_trace


def _net(spec: list[tuple[str, str | None, list[str], list[str]]], name: str) -> ProcessModel:
    """A net from (transition name, label, input places, output places); places 'i' and 'o' are the ends."""
    net = PetriNet(name)
    places: dict[str, PetriNet.Place] = {}

    def place(p: str) -> PetriNet.Place:
        if p not in places:
            places[p] = PetriNet.Place(p)
            net.places.add(places[p])
        return places[p]

    for t_name, label, ins, outs in spec:
        t = PetriNet.Transition(t_name, label)
        net.transitions.add(t)
        for p in ins:
            petri_utils.add_arc_from_to(place(p), t, net)
        for p in outs:
            petri_utils.add_arc_from_to(t, place(p), net)
    return ProcessModel(net, Marking({place("i"): 1}), Marking({place("o"): 1}), name)


# register a case; then, concurrently, check documents (optional, by a silent skip) and interview the
# family (possibly twice: a silent loop back); join; decide, with an XOR to "accept" or "refer"
CONCURRENT = [
    ("register", "register", ["i"], ["a"]),
    ("split", None, ["a"], ["b1", "c1"]),
    ("docs", "check_documents", ["b1"], ["b2"]),
    ("docs_skip", None, ["b1"], ["b2"]),
    ("interview", "interview", ["c1"], ["c2"]),
    ("again", None, ["c2"], ["c1"]),
    ("done", None, ["c2"], ["c3"]),
    ("join", None, ["b2", "c3"], ["d"]),
    ("decide", "decide", ["d"], ["e"]),
    ("accept", "accept", ["e"], ["o"]),
    ("refer", "refer", ["e"], ["o"]),
]
LABELS = ["register", "check_documents", "interview", "decide", "accept", "refer"]


def _perturbed(rng: random.Random, base: list[str]) -> tuple[str, ...]:
    return perturbed_trace(rng, base, [*LABELS, "lapor_polisi"], max_ops=4)


def _replays(model: ProcessModel, moves: list[tuple[str, str | None]], trace: tuple[str, ...]) -> bool:
    """The log side of the moves is the trace, and some firing of the model side reaches the final marking."""
    if [log for log, _ in moves if log != SKIP] != list(trace):
        return False
    marking = dict(model.initial)
    model_side = [m for _, m in moves if m != SKIP]
    # silent moves are (>>, None): fire any enabled silent transition that lets the sequence continue
    return _fire(model, marking, model_side, model.final)


def _fire(model: ProcessModel, marking: dict[PetriNet.Place, int], todo: list[str | None],
          final: Marking) -> bool:
    if not todo:
        return {p: n for p, n in marking.items() if n} == dict(final)
    head, rest = todo[0], todo[1:]
    for t in model.net.transitions:
        if t.label != head or any(marking.get(a.source, 0) < 1 for a in t.in_arcs):
            continue
        nxt = dict(marking)
        for a in t.in_arcs:
            nxt[a.source] -= 1
        for a in t.out_arcs:
            nxt[a.target] = nxt.get(a.target, 0) + 1
        if _fire(model, nxt, rest, final):
            return True
    return False


def test_concurrent_net_costs_and_fitness_equal_pm4py_and_moves_replay() -> None:
    model = _net(CONCURRENT, "concurrent")
    assert pm4py_adapter.as_state_machine(model) is None
    aligner = pm4py_adapter.as_net_aligner(model)
    assert aligner is not None
    rng = random.Random(11)
    bases = [["register", "check_documents", "interview", "decide", "accept"],
             ["register", "interview", "interview", "decide", "refer"],
             ["register", "interview", "check_documents", "decide", "accept"]]
    variants = sorted({_perturbed(rng, rng.choice(bases)) for _ in range(120)} | {()})
    theirs = pm4py_adapter.align_variants(model, variants)
    deviating = 0
    for trace, their in zip(variants, theirs, strict=True):
        mine = pm4py_adapter.align_net(aligner, model, trace)
        assert (mine.cost, mine.fitness) == (their.cost, pytest.approx(their.fitness, abs=1e-12)), trace
        assert _replays(model, mine.moves, trace), (trace, mine.moves)
        deviating += mine.cost >= pm4py_adapter.MOVE_COST
    assert deviating > 30  # the perturbations really produce deviations


def test_a_fitting_concurrent_trace_costs_only_its_silent_moves() -> None:
    aligner = pm4py_adapter.as_net_aligner(_net(CONCURRENT, "concurrent"))
    assert aligner is not None
    found = aligner.align(["register", "interview", "check_documents", "interview", "decide", "refer"])
    # split, again, done, join: four silent moves and nothing else
    assert found.cost == 4
    assert all(log == model for log, model in found.moves if log != SKIP)


def test_an_unsafe_net_is_handed_to_pm4py() -> None:
    # 'twice' puts two tokens into 'b' on the second round; safe-net bit sets cannot hold that
    spec = [("start", "start", ["i"], ["a", "b"]), ("twice", "twice", ["a"], ["b"]),
            ("eat", "eat", ["b"], ["c"]), ("eat2", "eat", ["c", "b"], ["o"])]
    model = _net(spec, "unsafe")
    aligner = pm4py_adapter.as_net_aligner(model)
    assert aligner is not None
    with pytest.raises(NotSafe):
        aligner.align(["start", "twice", "eat", "eat"])
    assert gc.isenabled()  # the search pauses the cyclic collector; an aborted search must switch it back on
    mine = pm4py_adapter.align_net(aligner, model, ("start", "twice", "eat", "eat"))
    assert mine.cost == pm4py_adapter.align_variants(model, [("start", "twice", "eat", "eat")])[0].cost == 0


def test_net_aligner_reports_a_model_without_a_path_to_its_end() -> None:
    aligner = NetAligner(3, [NetTransition("a", (0,), (1,))], (0,), (2,))
    with pytest.raises(ValueError, match="no path"):
        aligner.align(["a"])


def test_conform_reports_progress_and_one_row_per_case(tmp_path: Path) -> None:
    """`patuh conform` on a PNML with concurrency: every case gets a row, progress runs up to the variants."""
    import csv

    from pipeline.conform import conform_file

    model = _net(CONCURRENT, "concurrent")
    pnml = tmp_path / "concurrent.pnml"
    pm4py.write_pnml(model.net, model.initial, model.final, str(pnml))
    rng = random.Random(3)
    traces = [_perturbed(rng, ["register", "check_documents", "interview", "decide", "accept"]) or ("register",)
              for _ in range(40)]
    log = tmp_path / "log.csv"
    with log.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case:concept:name", "concept:name", "time:timestamp"])
        for c, trace in enumerate(traces):
            for k, label in enumerate(trace):
                writer.writerow([f"kasus-{c}", label, f"2026-03-02 08:{k:02d}:00"])
    calls: list[tuple[int, int]] = []
    out = tmp_path / "out.csv"
    n_cases, _ = conform_file(log, pnml, out, workers=1, progress=lambda done, total: calls.append((done, total)))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert n_cases == len(rows) == 40
    distinct = len(set(traces))
    assert calls[-1] == (distinct, distinct) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    aligner = pm4py_adapter.as_net_aligner(model)
    assert aligner is not None
    # rows come in pm4py's case order; each carries the log's own case id
    assert {r["case_id"]: int(r["cost"]) for r in rows} == {
        f"kasus-{c}": aligner.align(t).cost for c, t in enumerate(traces)}
