"""The SOP compiler (pipeline.pm4py_adapter.compile_sop) on small hand-made models, and PNML/BPMN loading.

A trace is accepted when its optimal alignment has no log or model move on a visible step (cost below one
move; silent transitions cost 1 each in pm4py's standard cost function) and fitness 1. Acceptance is
checked twice: with our state-machine aligner and with pm4py's own alignments, which must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline import pm4py_adapter as pa
from pipeline.errors import UserError
from pipeline.sop import SopModel

REFERENCE = Path("/work/shared/reference/pm4py-tests")
pm4py = pytest.importorskip("pm4py")  # imported after pipeline.pm4py_adapter, which silences its banner


def sop(steps: list[dict[str, Any]], flow: list[dict[str, Any]] | None = None) -> SopModel:
    return SopModel.model_validate({
        "id": "test/model", "institution": "test", "title": "Test",
        "source": {"file": "test.txt"}, "steps": [{"activity": s["id"].upper(), **s} for s in steps],
        "flow": flow or [],
    })


SEQUENCE = sop([{"id": "a"}, {"id": "b"}, {"id": "c"}])
OPTIONAL = sop([{"id": "a"}, {"id": "b", "optional": True}, {"id": "c"}])
REPEAT = sop([{"id": "a"}, {"id": "b", "repeat": True}, {"id": "c"}])
DECISION = sop([{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}],
               [{"from": "a", "to": ["b", "c"], "condition": "Apakah ...?"}, {"from": "b", "to": "d"}])
EARLY_END = sop([{"id": "a"}, {"id": "b"}, {"id": "c"}], [{"from": "a", "to": ["b", "end"]}])
JUMP_BACK = sop([{"id": "a"}, {"id": "b"}, {"id": "c"}], [{"from": "c", "to": ["b", "end"]}])
OPTIONAL_REPEAT_LAST = sop([{"id": "a"}, {"id": "b", "optional": True, "repeat": True}])

Case = tuple[str, pa.ProcessModel, list[list[str]], list[list[str]]]  # name, net, accepted, rejected
# model -> (accepted traces, rejected traces)
CASES: dict[str, tuple[SopModel, list[list[str]], list[list[str]]]] = {
    "sequence": (SEQUENCE, [["a", "b", "c"]],
                 [[], ["a"], ["a", "b"], ["a", "c"], ["b", "a", "c"], ["a", "b", "c", "c"],
                  ["a", "b", "x", "c"]]),
    "optional": (OPTIONAL, [["a", "b", "c"], ["a", "c"]], [["a", "b", "b", "c"], ["a", "b"], ["b", "c"]]),
    "repeat": (REPEAT, [["a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "b", "b", "b", "c"]],
               [["a", "c"], ["a", "b", "c", "b"], ["a", "b", "c", "c"]]),
    "decision": (DECISION, [["a", "b", "d"], ["a", "c", "d"]],
                 [["a", "b", "c", "d"], ["a", "d"], ["a", "c", "b", "d"], ["a", "b"]]),
    "early_end": (EARLY_END, [["a"], ["a", "b", "c"]], [["a", "b"], ["a", "c"]]),
    "jump_back": (JUMP_BACK, [["a", "b", "c"], ["a", "b", "c", "b", "c"]],
                  [["a", "b", "c", "c"], ["a", "c"]]),
    "optional_repeat_last": (OPTIONAL_REPEAT_LAST, [["a"], ["a", "b"], ["a", "b", "b"]], [["b"], ["a", "a"]]),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, pa.ProcessModel, list[list[str]], list[list[str]]]:
    model, accepted, rejected = CASES[request.param]
    return request.param, pa.compile_sop(model), accepted, rejected


def test_sound_and_labelled_with_step_ids(case: Case) -> None:
    name, net, _, _ = case
    model = CASES[name][0]
    assert pa.is_sound(net), name
    assert net.labels == set(model.step_ids)
    visible = [t.label for t in net.net.transitions if t.label is not None]
    assert len(visible) == len(model.steps)  # one visible transition per step
    assert sum(net.initial.values()) == 1 and sum(net.final.values()) == 1


def test_acceptance_by_both_aligners(case: Case) -> None:
    name, net, accepted, rejected = case
    machine = pa.as_state_machine(net)
    assert machine is not None, f"{name}: an SOP net is a state machine"
    traces = accepted + rejected
    ours = [pa.align_state_machine(machine, t) for t in traces]
    theirs = pa.align_variants(net, traces)
    for trace, mine, pm in zip(traces, ours, theirs, strict=True):
        assert mine.cost == pm.cost, f"{name} {trace}: our cost {mine.cost}, pm4py {pm.cost}"
        assert mine.fitness == pytest.approx(pm.fitness), f"{name} {trace}"
    for trace, result in zip(traces, ours, strict=True):
        fits = trace in accepted
        verdict = "accepted" if fits else "rejected"
        assert (result.cost < pa.MOVE_COST) is fits, f"{name}: {trace} should be {verdict}"
        assert (result.fitness == 1.0) is fits, f"{name} {trace}: fitness {result.fitness}"
        if fits:  # every move is synchronous or silent
            assert all(log == model for log, model in result.moves if model is not None and log != pa.SKIP)
            assert [m for _, m in result.moves if m is not None] == trace


def test_deviation_costs_count_the_moves() -> None:
    """A skipped required step is one model move; an extra activity is one log move."""
    machine = pa.as_state_machine(pa.compile_sop(SEQUENCE))
    assert machine is not None
    assert pa.align_state_machine(machine, ["a", "c"]).cost // pa.MOVE_COST == 1
    assert pa.align_state_machine(machine, ["a", "x", "b", "c"]).cost // pa.MOVE_COST == 1
    assert pa.align_state_machine(machine, ["c", "b", "a"]).cost // pa.MOVE_COST == 4


def test_seed_model_with_decision_and_repeat() -> None:
    """smpn2-ngawi/bk001-prosedur: s3 decides between s4 (parents involved) and s6; s5 repeats."""
    from pipeline.sop import load_model_file

    root = Path(__file__).resolve().parents[1] / "sop_models"
    loaded = load_model_file(root / "smpn2-ngawi" / "bk001-prosedur.yaml")
    assert loaded.model is not None
    machine = pa.as_state_machine(pa.compile_sop(loaded.model))
    assert machine is not None
    for trace, ok in [(["s1", "s2", "s3", "s6"], True), (["s1", "s2", "s3", "s4", "s5", "s5", "s6"], True),
                      (["s1", "s2", "s3", "s4", "s6"], False), (["s1", "s2", "s4", "s5", "s6"], False)]:
        assert (pa.align_state_machine(machine, trace).cost < pa.MOVE_COST) is ok, trace


# ---------------------------------------------------------------------------------------------------
# PNML and BPMN files
# ---------------------------------------------------------------------------------------------------

RUNNING_EXAMPLE = {"register request", "examine thoroughly", "examine casually", "check ticket", "decide",
                   "reinitiate request", "pay compensation", "reject request"}
ROAD_TRAFFIC = {"Create Fine", "Send Fine", "Insert Fine Notification", "Add penalty", "Payment",
                "Send for Credit Collection", "Insert Date Appeal to Prefecture", "Send Appeal to Prefecture",
                "Receive Result Appeal from Prefecture", "Notify Result Appeal to Offender",
                "Appeal to Judge"}


def pm4py_labels(path: Path) -> set[str]:
    if path.suffix == ".pnml":
        net, _, _ = pm4py.read_pnml(str(path))
    else:
        net, _, _ = pm4py.convert_to_petri_net(pm4py.read_bpmn(str(path)))
    return {t.label for t in net.transitions if t.label is not None}


@pytest.mark.parametrize("name, expected", [
    ("running-example.pnml", RUNNING_EXAMPLE),
    ("running-example.bpmn", RUNNING_EXAMPLE),
    ("receipt.bpmn", None),
    ("roadtraffic.pnml", ROAD_TRAFFIC),
])
def test_load_reference_models(name: str, expected: set[str] | None) -> None:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    model = pa.load_model(path)
    assert model.labels == pm4py_labels(path)
    if expected is not None:
        assert model.labels == expected
    else:  # receipt: the confirmation and tasks T02-T20
        assert "Confirmation of receipt" in model.labels and len(model.labels) == 27
    assert len(model.initial) >= 1 and len(model.final) >= 1


def test_running_example_fits_a_known_trace() -> None:
    path = REFERENCE / "running-example.pnml"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    model = pa.load_model(path)
    fit, unfit = pa.align_variants(model, [
        ["register request", "examine casually", "check ticket", "decide", "reject request"],
        ["register request", "decide", "reject request"],
    ])
    assert fit.fitness == 1.0 and fit.cost < pa.MOVE_COST
    assert unfit.fitness < 1.0 and unfit.cost >= 2 * pa.MOVE_COST  # examine + check ticket are missing


def test_load_sop_yaml_as_model() -> None:
    path = Path(__file__).resolve().parents[1] / "sop_models" / "smpn2-ngawi" / "bk001-alur.yaml"
    model = pa.load_model(path)
    assert model.labels == {f"s{i}" for i in range(1, 11)}
    assert pa.is_sound(model)


@pytest.mark.parametrize("name, content, fragment", [
    ("broken.pnml", "this is not XML <<<", "cannot read the model"),
    ("broken.bpmn", "<definitions><unclosed>", "cannot read the model"),
    ("model.txt", "<pnml/>", "must be .pnml, .bpmn"),
    ("missing.pnml", None, "no such model file"),
])
def test_bad_model_file_is_a_user_error_naming_the_file(tmp_path: Path, name: str, content: str | None,
                                                          fragment: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as info:
        pa.load_model(path)
    assert name in str(info.value)
    assert fragment in str(info.value)
