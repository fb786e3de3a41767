"""``patuh conform``: any log against any model, without a database, one CSV row per case.

The log's own case ids are kept (nothing is stored), so results can be compared with pm4py's
``conformance_diagnostics_alignments`` or any other tool case by case.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from pipeline import pm4py_adapter
from pipeline.conformance import PoolExecutor, align_all, deviations_from_moves, variant_hash
from pipeline.errors import UserError
from pipeline.ingest import normalise_label, step_labels
from pipeline.sop import load_model_file


def conform_file(log: Path, model_path: Path, out: Path, *, workers: int = 2,
                 progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Align every case of ``log`` with ``model_path``; returns (cases, fitting cases).

    ``progress(done, total)`` is called as distinct variants finish aligning.
    """
    model = pm4py_adapter.load_model(model_path)
    case_ids, traces = pm4py_adapter.read_log(log)
    if model_path.suffix.lower() in {".yaml", ".yml"}:
        loaded = load_model_file(model_path)
        if loaded.model is None:
            raise UserError("\n".join(p.render() for p in loaded.problems),
                            pesan=f"{model_path}: model SOP ini tidak dapat dimuat; perbaiki masalah yang tercantum di "
                                  "bawah (periksa lagi dengan 'patuh sop validate')")
        labels = step_labels(loaded.model, None)  # the same label matching as ingest
        step_ids = loaded.model.step_ids
        traces = [tuple(labels.get(normalise_label(a), "?" + a) for a in t) for t in traces]
    else:
        step_ids = sorted(model.labels)
    distinct = sorted(set(traces))
    on_done = (lambda k: progress(k, len(distinct))) if progress is not None else None
    aligned = align_all(f"conform:{model_path}", model, distinct, PoolExecutor(workers), on_done=on_done)
    results = dict(zip(distinct, aligned, strict=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    fitting = 0
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "fitness", "cost", "deviation_moves", "deviations", "variant"])
        for case_id, trace in zip(case_ids, traces, strict=True):
            res = results[trace]
            devs = deviations_from_moves(res.moves, step_ids)
            fitting += res.cost < pm4py_adapter.MOVE_COST
            writer.writerow([case_id, repr(res.fitness), res.cost, res.cost // pm4py_adapter.MOVE_COST,
                             ";".join(f"{d.kind}:{d.step_id or d.activity}" for d in devs), variant_hash(trace)])
    return len(case_ids), fitting
