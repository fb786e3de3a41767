"""``patuh conform``: any log against any model, without a database, one CSV row per case.

The log's own case ids are kept (nothing is stored), so results can be compared with pm4py's
``conformance_diagnostics_alignments`` or any other tool case by case.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline import pm4py_adapter
from pipeline.conformance import PoolExecutor, align_all, deviations_from_moves, variant_hash
from pipeline.errors import UserError
from pipeline.ingest import normalise_label, step_labels


def conform_file(log: Path, model_path: Path, out: Path, *, workers: int = 2,
                 progress: Callable[[int, int], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> tuple[int, int]:
    """Align every case of ``log`` with ``model_path``; returns (cases, fitting cases).

    ``progress(done, total)`` is called as distinct variants finish aligning; ``warn(message)`` hears of log
    rows left out (no case, activity or date). When no activity of the log is a label of the model, ``out``
    is written all the same and a :class:`UserError` says so (almost always the wrong pair of files).
    """
    _refuse_overwrite(out, {"--log": log, "--model": model_path})
    is_sop = model_path.suffix.lower() in {".yaml", ".yml"}
    sop = pm4py_adapter.load_sop_file(model_path) if is_sop else None
    model = pm4py_adapter.compile_sop(sop) if sop is not None else pm4py_adapter.load_model(model_path)
    read = pm4py_adapter.read_log(log)
    for note in read.left_out:
        if warn is not None:
            warn(note)
    case_ids, traces = read.case_ids, read.traces
    if sop is not None:
        labels = step_labels(sop, None)  # the same label matching as ingest
        step_ids = sop.step_ids
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
    if not model.labels & {a for t in distinct for a in t}:
        model_labels = [s.activity for s in sop.steps] if sop is not None else sorted(model.labels)
        message, pesan = _nothing_in_common(log, model_path, out, read.traces, model_labels, is_sop)
        raise UserError(message, pesan=pesan)
    return len(case_ids), fitting


def _refuse_overwrite(out: Path, inputs: dict[str, Path]) -> None:
    """A :class:`UserError` when ``out`` is one of the input files (writing it would destroy the input)."""
    for option, given in inputs.items():
        same = out.resolve() == given.resolve() or (out.exists() and given.exists() and out.samefile(given))
        if same:
            raise UserError(f"{out}: --out is the file given as {option}; writing the results there would "
                            "overwrite it: give --out another file, e.g. --out hasil.csv",
                            pesan=f"{out}: --out adalah berkas yang sama dengan {option}; menulis hasil ke sana akan "
                                  "menimpanya: berikan berkas lain untuk --out, misalnya --out hasil.csv")


def _nothing_in_common(log: Path, model_path: Path, out: Path, traces: Iterable[tuple[str, ...]],
                       model_labels: list[str], is_sop: bool) -> tuple[str, str]:
    """The message (English, Indonesian) for a log none of whose activities the model knows, naming a few of
    each."""
    activities = sorted({a for t in traces for a in t})

    def some(labels: list[str], more: str = "and {} more") -> str:
        short = [repr(x if len(x) <= 50 else x[:49] + "…") for x in labels[:4]]
        return ", ".join(short) + (" " + more.format(len(labels) - 4) if len(labels) > 4 else "")

    def beberapa(labels: list[str]) -> str:
        return some(labels, "dan {} lainnya")

    how = ("an SOP step matches its id, its activity text or an alias, in any case and spacing"
           if is_sop else "a label must be written exactly as in the log")
    caranya = ("langkah SOP cocok dengan id-nya, teks kegiatannya atau aliasnya, tanpa memandang huruf besar/kecil "
               "dan spasi" if is_sop else "label harus ditulis persis seperti di log")
    return (f"no activity of {log.name} ({len(activities)} distinct) is {'a step' if is_sop else 'a label'} of "
            f"the model {model_path.name}: the log has {some(activities)}; the model has {some(model_labels)} "
            f"({how}). Check that --log and --model belong together. The results were written to {out} all the "
            "same (every event a deviation)",
            f"tidak ada kegiatan di {log.name} ({len(activities)} kegiatan berbeda) yang merupakan "
            f"{'langkah' if is_sop else 'label'} dari model {model_path.name}: log berisi {beberapa(activities)}; "
            f"model berisi {beberapa(model_labels)} ({caranya}). Periksa apakah --log dan --model memang "
            f"berpasangan. Hasilnya tetap ditulis ke {out} (setiap peristiwa dihitung sebagai penyimpangan)")
