"""Parity with pm4py: per-case fitness and cost equal pm4py's conformance_diagnostics_alignments."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline import pm4py_adapter
from pipeline.conform import conform_file
from tests.engine_fixtures import perturbed_trace

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pm4py-tests"
PAIRS = [
    ("running-example.xes", "running-example.pnml"),
    ("roadtraffic100traces.xes", "roadtraffic.pnml"),
    ("a12f0n10.xes.gz", "a12.pnml"),
    ("running-example.xes", "running-example.bpmn"),
]


@pytest.mark.parametrize(("log_name", "model_name"), PAIRS)
def test_conform_equals_pm4py_case_by_case(log_name: str, model_name: str, tmp_path: Path) -> None:
    if not REFERENCE.exists():
        pytest.skip(f"reference data not found at {REFERENCE}")
    import pm4py  # after pipeline.pm4py_adapter, which silences its banner and progress bars
    out = tmp_path / "out.csv"
    n_cases, _ = conform_file(REFERENCE / log_name, REFERENCE / model_name, out)
    log = pm4py.read_xes(str(REFERENCE / log_name), return_legacy_log_object=True)
    if model_name.endswith(".pnml"):
        net, im, fm = pm4py.read_pnml(str(REFERENCE / model_name))
    else:
        net, im, fm = pm4py.convert_to_petri_net(pm4py.read_bpmn(str(REFERENCE / model_name)))
    theirs = pm4py.conformance_diagnostics_alignments(log, net, im, fm)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert n_cases == len(log) == len(rows)
    for trace, row, diag in zip(log, rows, theirs, strict=True):
        assert row["case_id"] == str(trace.attributes["concept:name"])
        assert int(row["cost"]) == diag["cost"], row["case_id"]
        assert float(row["fitness"]) == pytest.approx(diag["fitness"], abs=1e-12), row["case_id"]


def test_state_machine_search_equals_pm4py_on_sop_models(tmp_path: Path) -> None:
    """The exact search used for SOP nets gives pm4py's optimal cost and fitness on perturbed traces."""
    import random

    from pipeline.config import get_settings
    from pipeline.sop import load_catalogue

    catalogue = load_catalogue(get_settings().catalogue_dir)
    rng = random.Random(7)
    checked = 0
    for sop_id in ["smpn2-ngawi/bk001-prosedur", "smpn2-ngawi/bk001-alur", "bontang-bk/konseling-individu",
                   "ipdn-jatinangor/bk-praja"]:
        model = catalogue.get(sop_id)
        compiled = pm4py_adapter.compile_sop(model)
        machine = pm4py_adapter.as_state_machine(compiled)
        assert machine is not None
        variants = [perturbed_trace(rng, model.step_ids, [*model.step_ids, "?asing"], max_ops=3) for _ in range(40)]
        theirs = pm4py_adapter.align_variants(compiled, variants)
        for trace, their in zip(variants, theirs, strict=True):
            mine = pm4py_adapter.align_state_machine(machine, trace)
            assert (mine.cost, mine.fitness) == (their.cost, pytest.approx(their.fitness)), (sop_id, trace)
            checked += 1
    assert checked == 160
