"""The workloads; each runs in its own subprocess: ``python -m bench.workloads TASK '{json args}'``.

Each task prints one JSON line (timings in seconds, plus the process's peak RSS).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys._pm4py_welcome_shown = True  # type: ignore[attr-defined]
os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")

from bench.common import DEMO_INSTITUTIONS, SECRET, peak_rss_mib, size_label, summarize, synth_log  # noqa: E402

ORIGIN = {"Origin": "http://localhost"}


def _context() -> tuple[Any, Any, Any]:
    from pipeline.calendars import load_calendars, load_institutions
    from pipeline.config import get_settings
    from pipeline.sop import load_catalogue

    settings = get_settings()
    return (load_catalogue(settings.catalogue_dir), load_institutions(settings.institutions_file),
            load_calendars(settings.institutions_file))


def _key(size: int, seed: int, institutions: list[str]) -> str:
    """Cache key of an ingested DB and its kept run: a schema change makes every cached DB stale."""
    import hashlib

    from pipeline.db import schema_sql

    schema = hashlib.sha1(schema_sql().encode("utf-8")).hexdigest()[:8]
    return f"{size_label(size)}-s{seed}-{len(institutions)}inst-{schema}"


def _as_of(text: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(text)


# ---------------------------------------------------------------------------------------- preparation


def prepare(size: int, seed: int, institutions: list[str], cache: str) -> dict[str, Any]:
    """Generate (cached) the synthetic log and its +1% increment, and ingest the log into a cached DB."""
    from pipeline.db import connect
    from pipeline.ingest import ingest_file

    root = Path(cache)
    inst = tuple(institutions)
    base = synth_log(root, size, seed, inst)
    extra = synth_log(root, max(1, size // 100), seed + 1, inst, tag="-inc", case_suffix="-inc")
    db = root / "db" / f"{_key(size, seed, institutions)}.duckdb"
    marker = db.with_suffix(".json")
    ingest_s = None
    if not marker.exists():
        catalogue, insts, _ = _context()
        db.parent.mkdir(parents=True, exist_ok=True)
        db.unlink(missing_ok=True)
        conn = connect(db)
        t0 = time.perf_counter()
        for f in base["files"]:
            ingest_file(conn, Path(f["path"]), institution_id=f["institution_id"], sop_id=f["sop_id"],
                        catalogue=catalogue, calendars=insts)
        ingest_s = time.perf_counter() - t0
        events = conn.execute("SELECT count(*) FROM events").fetchall()[0][0]
        conn.close()
        marker.write_text(json.dumps({"events": events, "ingest_s": round(ingest_s, 2)}))
    info = json.loads(marker.read_text())
    return {"db": str(db), "events_generated": base["events"], "events_loaded": info["events"],
            "cases": base["cases"], "as_of": base["as_of"], "generate_s": base["generate_s"],
            "ingest_all_files_s": info["ingest_s"], "increment_events": extra["events"],
            "increment_cases": extra["cases"], "files": len(base["files"])}


# --------------------------------------------------------------------------------------------- ingest


def _ingest_files(cache: Path, size: int) -> dict[str, Path]:
    from bench import bench_ingest

    folder = cache / "ingest" / size_label(size)
    marker = folder / "done"
    if not marker.exists():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        bench_ingest.make_log(folder, size)
        marker.write_text("ok")
    paths = {"csv": folder / "log.csv", "parquet": folder / "log.parquet", "xes": folder / "log.xes"}
    return {k: p for k, p in paths.items() if p.exists()}


def ingest(size: int, fmt: str, side: str, reps: int, cache: str) -> dict[str, Any]:
    """Patuh's ``ingest_file`` or the plain-pm4py reader on bench_ingest's log of ``size`` events."""
    from bench import bench_ingest

    paths = _ingest_files(Path(cache), size)
    if fmt not in paths:
        return {"skipped": f"no {fmt} file at this size"}
    path = paths[fmt]
    samples: list[float] = []
    extra: dict[str, Any] = {"file_mib": round(path.stat().st_size / 2**20, 1)}
    for _ in range(reps):
        if side == "patuh":
            with tempfile.TemporaryDirectory(prefix="patuh-bench-") as tmp:
                seconds, loaded = bench_ingest._patuh(path, Path(tmp) / "ingest.duckdb")
        elif side == "pm4py" and fmt == "xes":
            seconds, loaded, variant = bench_ingest._pm4py_xes(path)
            extra["variant"] = _pm4py_xes_backend() or variant
        elif side == "pm4py":
            reader: Callable[[Path], tuple[float, int]] = (
                bench_ingest._pm4py_csv if fmt == "csv" else bench_ingest._pm4py_parquet)
            seconds, loaded = reader(path)
            extra["variant"] = "pandas.read_csv + pm4py.format_dataframe" if fmt == "csv" else \
                "pandas.read_parquet + pm4py.format_dataframe"
        elif side.startswith("pm4py-"):  # an explicit read_xes variant, e.g. pm4py-iterparse
            import pm4py

            variant = side.removeprefix("pm4py-")
            t0 = time.perf_counter()
            loaded = len(pm4py.read_xes(str(path), variant=variant))
            seconds = time.perf_counter() - t0
            extra["variant"] = variant
        else:
            raise ValueError(f"unknown side {side!r}")
        samples.append(seconds)
        extra["rows"] = int(loaded)
    stats = summarize(samples)
    return {"events": size, **extra, **stats, "events_per_s": round(size / stats["median_s"])}


def _pm4py_xes_backend() -> str | None:
    try:
        from pm4py.util.rustxes_utils import get_rustxes_backend_name
    except ImportError:
        return None
    name = get_rustxes_backend_name()
    return f"{name} (pm4py default)" if name else "chunk_regex (pm4py default)"


# ----------------------------------------------------------------------------------- compliance runs


def _copy_db(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dst.with_name(dst.name + ".wal"))


SETTLE_SECONDS = 30.0  # for logs of 1M events and more (their copies are 0.2-2 GB)


def _settle(size: int) -> None:
    """Let the set-up copies reach the disk before timed runs, as an installation's files have long before a
    run. A copy leaves 1-2 GB dirty at 10M events: the first fsync of a run right after it wrote part of the
    copy back (0.3 s of an incremental run), and even after os.sync() the VM's disk stayed busy for a while
    (writing 10 MB into the published file then took 1.2 s instead of 0.18 s); after half a minute neither."""
    os.sync()
    if size >= 1_000_000:
        time.sleep(SETTLE_SECONDS)


def _with_median_run(samples: list[float], details: list[dict[str, Any]]) -> dict[str, Any]:
    """The timings' summary and the details of the repetition whose time is the (upper) median."""
    return {**summarize(samples), **details[samples.index(sorted(samples)[len(samples) // 2])]}


def _log_files(log: dict[str, Any]) -> list[tuple[Path, str, str]]:
    """A synthetic log's files as (path, institution, SOP)."""
    return [(Path(f["path"]), f["institution_id"], f["sop_id"]) for f in log["files"]]


def run_full(size: int, seed: int, institutions: list[str], cache: str, reps: int) -> dict[str, Any]:
    """Full compliance runs (ingest excluded, publish included) on copies of the ingested DB."""
    from pipeline.conformance import PoolExecutor
    from pipeline.db import connect
    from pipeline.run import run_compliance

    root = Path(cache)
    prep = prepare(size, seed, institutions, cache)
    catalogue, insts, cals = _context()
    keep = root / "runs" / _key(size, seed, institutions)
    samples: list[float] = []
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        tmp = Path(tempfile.mkdtemp(prefix="patuh-bench-run-"))
        try:
            db = tmp / "work.duckdb"
            _copy_db(Path(prep["db"]), db)
            _settle(size)
            conn = connect(db)
            t0 = time.perf_counter()
            summary = run_compliance(conn, catalogue, insts, cals, as_of=_as_of(prep["as_of"]), full=True,
                                     executor=PoolExecutor(2), published_dir=tmp / "published")
            conn.close()  # as `patuh run` does: its last checkpoint is part of the run
            samples.append(time.perf_counter() - t0)
            runs.append({"stage_s": summary.stage_seconds, "cases": summary.cases, "variants": summary.variants,
                         "aligned": summary.aligned, "from_cache": summary.from_cache, "mode": summary.mode})
            if rep == reps - 1:
                if keep.exists():
                    shutil.rmtree(keep)
                shutil.copytree(tmp, keep)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    stats = _with_median_run(samples, runs)
    return {"events": prep["events_loaded"], "cases": prep["cases"], **stats,
            "events_per_s": round(prep["events_loaded"] / stats["median_s"]), "kept": str(keep)}


def _last_month_cases(path: Path) -> tuple[Path, int, int]:
    """The cases of the log at ``path`` that open in its last 30 days (a monthly export): a file beside it
    (made once), its events and its cases."""
    import pandas as pd

    out = path.with_name(path.stem + "-last-month.parquet")
    if not out.exists():
        frame = pd.read_parquet(path)
        ends = pd.to_datetime(frame["ts_end"], utc=True)
        opened = ends.groupby(frame["case_id"]).transform("min")
        frame[opened >= ends.max() - pd.Timedelta(days=30)].to_parquet(out)
    month = pd.read_parquet(out, columns=["case_id"])["case_id"]
    return out, len(month), month.nunique()


def run_incremental(size: int, seed: int, institutions: list[str], cache: str, reps: int,
                    last_month: bool = False, nothing_new: bool = False) -> dict[str, Any]:
    """After a full run: load +1% events (new cases, a new batch) and time the incremental run; then load
    another +1% (other new cases) and time the run after it (``next_*``: an incremental run after an
    incremental one, which publishes onto the older file instead of the full run's spare copy).

    ``last_month``: load only the cases of those that open in the log's last 30 days, as an institution's
    monthly export would bring them (the +1% cases fall in every month of the log); no second load.
    ``nothing_new``: no load at all, the run right after the full run: what every run costs whatever it checks
    (connecting, the statements, the commits, the published copy).
    """
    from pipeline.conformance import PoolExecutor
    from pipeline.db import connect
    from pipeline.ingest import ingest_file
    from pipeline.run import run_compliance

    root = Path(cache)
    prep = prepare(size, seed, institutions, cache)
    extra = synth_log(root, max(1, size // 100), seed + 1, tuple(institutions), tag="-inc", case_suffix="-inc")
    kept = root / "runs" / _key(size, seed, institutions)
    catalogue, insts, cals = _context()
    files = _log_files(extra)
    added_events, added_cases = extra["events"], extra["cases"]
    then = [] if last_month or nothing_new else _log_files(synth_log(
        root, max(1, size // 100), seed + 2, tuple(institutions), tag="-inc2", case_suffix="-inc2"))
    if last_month:
        months = [_last_month_cases(path) for path, _, _ in files]
        files = [(month[0], inst, sop) for month, (_, inst, sop) in zip(months, files, strict=True)]
        added_events, added_cases = sum(m[1] for m in months), sum(m[2] for m in months)
    if nothing_new:
        files, added_events, added_cases = [], 0, 0
    samples: list[float] = []
    runs: list[dict[str, Any]] = []
    next_samples: list[float] = []
    next_runs: list[dict[str, Any]] = []
    for _ in range(reps):
        tmp = Path(tempfile.mkdtemp(prefix="patuh-bench-inc-"))
        try:
            db = tmp / "work.duckdb"
            _copy_db(kept / "work.duckdb", db)
            # as in an installation: the full run's published files are there, so publishing is incremental
            if (kept / "published").exists():
                shutil.copytree(kept / "published", tmp / "published")
            _settle(size)
            for load, times, details in [(files, samples, runs), *([(then, next_samples, next_runs)] if then else [])]:
                conn = connect(db)
                for path, institution_id, sop_id in load:
                    ingest_file(conn, path, institution_id=institution_id, sop_id=sop_id, catalogue=catalogue,
                                calendars=insts)
                conn.close()  # `patuh ingest` and `patuh run` are separate commands: ingest checkpoints its batch
                conn = connect(db)
                t0 = time.perf_counter()
                summary = run_compliance(conn, catalogue, insts, cals, as_of=_as_of(prep["as_of"]),
                                         executor=PoolExecutor(2), published_dir=tmp / "published")
                conn.close()  # as `patuh run` does: its last checkpoint is part of the run
                times.append(time.perf_counter() - t0)
                details.append({"stage_s": summary.stage_seconds, "mode": summary.mode, "cases": summary.cases,
                                "cases_checked": summary.cases_checked, "aligned": summary.aligned,
                                "from_cache": summary.from_cache})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {"added_events": added_events, "added_cases": added_cases, **_with_median_run(samples, runs)}
    if next_samples:
        out["next"] = _with_median_run(next_samples, next_runs)
    return out


# ------------------------------------------------------------------------------------- plain pm4py


def _traces(db: Path) -> Any:
    """Every case's trace exactly as Patuh's conformance stage builds it, with Patuh's cost and status."""
    import duckdb

    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute("""
            WITH t AS (
                SELECT institution_id, sop_id, case_id,
                       list(coalesce(step_id, '?' || activity) ORDER BY ts_end, source_row) AS trace
                FROM events GROUP BY ALL)
            SELECT t.sop_id, t.case_id, t.trace, c.status, r.alignment_cost
            FROM t JOIN cases c USING (institution_id, sop_id, case_id)
            JOIN case_results r USING (institution_id, sop_id, case_id)
            WHERE r.run_id = (SELECT run_id FROM runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1)
            ORDER BY t.sop_id, t.case_id
        """).df()
    finally:
        conn.close()


def _event_log(traces: list[tuple[str, list[str]]]) -> Any:
    from pm4py.objects.log.obj import Event, EventLog, Trace

    log = EventLog()
    for case_id, labels in traces:
        trace = Trace([Event({"concept:name": a}) for a in labels])
        trace.attributes["concept:name"] = case_id
        log.append(trace)
    return log


def pm4py_align(size: int, seed: int, institutions: list[str], cache: str, reps: int, budget_s: float,
                sample: int) -> dict[str, Any]:
    """Plain pm4py alignments on the same traces against the compiled SOP nets.

    * ``case_by_case``: one ``pm4py.conformance_diagnostics_alignments`` call per case (a random sample is
      timed first; the whole log is run only when the extrapolation fits ``budget_s``).
    * ``per_sop_log``: one call per SOP with the whole log (pm4py groups variants itself).
    Costs are compared case by case with Patuh's ``case_results.alignment_cost`` (closed cases: Patuh
    aligns open cases as prefixes, which pm4py cannot).
    """
    import pm4py

    from pipeline.pm4py_adapter import compile_sop, to_pm4py

    kept = Path(cache) / "runs" / _key(size, seed, institutions)
    frame = _traces(kept / "work.duckdb")
    catalogue, _, _ = _context()
    nets = {sop: compile_sop(catalogue.get(sop)) for sop in sorted(set(frame["sop_id"]))}
    pm_nets = {sop: to_pm4py(model) for sop, model in nets.items()}  # pm4py's own objects, built before timing
    rows = [(str(s), str(c), list(t), str(st), int(cost)) for s, c, t, st, cost in frame.itertuples(index=False)]
    n_cases = len(rows)
    rng = random.Random(seed)
    picked = rng.sample(rows, min(sample, n_cases))

    def align_one(row: tuple[str, str, list[str], str, int]) -> int:
        log = _event_log([(row[1], row[2])])
        diag = pm4py.conformance_diagnostics_alignments(log, *pm_nets[row[0]])
        return int(diag[0]["cost"])

    per_case: list[float] = []
    mismatches: list[dict[str, Any]] = []
    compared = 0
    for row in picked:
        t0 = time.perf_counter()
        cost = align_one(row)
        per_case.append(time.perf_counter() - t0)
        if row[3] == "closed":
            compared += 1
            if cost != row[4]:
                mismatches.append({"sop_id": row[0], "trace": row[2], "pm4py": cost, "patuh": row[4]})
    mean = sum(per_case) / len(per_case) if per_case else 0.0
    estimate = mean * n_cases
    out: dict[str, Any] = {"cases": n_cases, "sample_cases": len(picked), "sample_mean_ms": round(mean * 1000, 3),
                           "costs_compared_closed_cases": compared, "cost_mismatches": len(mismatches),
                           "mismatch_examples": mismatches[:5], "budget_s": budget_s}
    if not picked:
        out["case_by_case"] = {"skipped": "no cases"}
    elif estimate <= budget_s and len(picked) < n_cases:
        t0 = time.perf_counter()
        for row in rows:
            align_one(row)
        out["case_by_case"] = {**summarize([time.perf_counter() - t0]), "extrapolated": False}
    elif len(picked) == n_cases:
        out["case_by_case"] = {**summarize([sum(per_case)]), "extrapolated": False}
    else:
        out["case_by_case"] = {**summarize([estimate]), "extrapolated": True,
                               "how": f"mean of {len(picked)} random cases x {n_cases} cases"}

    # pm4py's own log-level call per SOP (variants grouped by pm4py)
    by_sop: dict[str, list[tuple[str, str, list[str], str, int]]] = {}
    for row in rows:
        by_sop.setdefault(row[0], []).append(row)
    n_variants = len({(r[0], tuple(r[2])) for r in rows})
    estimate_v = mean * n_variants
    if estimate_v > budget_s:
        out["per_sop_log"] = {**summarize([estimate_v]), "extrapolated": True, "variants": n_variants,
                              "how": f"mean of {len(picked)} random cases x {n_variants} variants"}
        return out
    logs = {sop: _event_log([(r[1], r[2]) for r in part]) for sop, part in by_sop.items()}
    samples: list[float] = []
    full_mismatch = 0
    full_compared = 0
    for rep in range(max(1, reps if estimate_v * reps <= budget_s else 1)):
        t0 = time.perf_counter()
        results = {sop: pm4py.conformance_diagnostics_alignments(log, *pm_nets[sop]) for sop, log in logs.items()}
        samples.append(time.perf_counter() - t0)
        if rep == 0:
            for sop, diags in results.items():
                for row, diag in zip(by_sop[sop], diags, strict=True):
                    if row[3] == "closed":
                        full_compared += 1
                        full_mismatch += int(diag["cost"]) != row[4]
    out["per_sop_log"] = {**summarize(samples), "extrapolated": False, "variants": n_variants,
                          "costs_compared_closed_cases": full_compared, "cost_mismatches": full_mismatch}
    return out


# ------------------------------------------------------------------------------------------- a42


def a42(files: dict[str, str], sample: int, seed: int, reps: int) -> dict[str, Any]:
    """Patuh's ``conform_file`` vs ``pm4py.conformance_diagnostics_alignments`` on a sample of one log."""
    import csv

    import pm4py

    from pipeline import pm4py_adapter
    from pipeline.conform import conform_file

    log_path, model_path = Path(files["log"]), Path(files["model"])
    net, im, fm = pm4py.read_pnml(str(model_path))
    model = pm4py_adapter.ProcessModel(net, im, fm, "a42")
    machine = pm4py_adapter.as_state_machine(model)
    engine = ("exact state-machine search" if machine else
              "Patuh's A* (net_align.NetAligner)" if pm4py_adapter.as_net_aligner(model) else "pm4py alignments")
    full = pm4py.read_xes(str(log_path), return_legacy_log_object=True)
    n_traces = len(full)
    rng = random.Random(seed)
    idx = sorted(rng.sample(range(n_traces), min(sample, n_traces)))
    from pm4py.objects.log.obj import EventLog

    sub = EventLog([full[i] for i in idx], attributes=full.attributes)
    sub_path = log_path.with_name(f"{log_path.name.split('.')[0]}-sample{len(idx)}-s{seed}.xes")
    if not sub_path.exists():
        pm4py.write_xes(sub, str(sub_path))
    sub = pm4py.read_xes(str(sub_path), return_legacy_log_object=True)
    pm_s: list[float] = []
    patuh_s: list[float] = []
    theirs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        for _ in range(reps):
            t0 = time.perf_counter()
            theirs = pm4py.conformance_diagnostics_alignments(sub, net, im, fm)
            pm_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            conform_file(sub_path, model_path, out)
            patuh_s.append(time.perf_counter() - t0)
        mine = list(csv.DictReader(out.open(encoding="utf-8")))
    mism = sum(int(r["cost"]) != int(d["cost"]) for r, d in zip(mine, theirs, strict=True))
    scale = n_traces / len(idx)
    pm, pa = summarize(pm_s), summarize(patuh_s)
    return {"log": log_path.name, "traces": n_traces, "sample_traces": len(idx),
            "variants_in_sample": len({tuple(e["concept:name"] for e in t) for t in sub}),
            "state_machine": machine is not None,
            "engine": engine,
            "pm4py": pm, "patuh": pa, "ratio": round(pm["median_s"] / pa["median_s"], 2),
            "pm4py_full_log_s_extrapolated": round(pm["median_s"] * scale, 1),
            "patuh_full_log_s_extrapolated": round(pa["median_s"] * scale, 1),
            "extrapolated": len(idx) < n_traces, "cases_compared": len(mine), "cost_mismatches": mism}


# -------------------------------------------------------------------------------------- dashboard


def dashboard(published_dir: str, calls: int, seed: int, label: str) -> dict[str, Any]:
    from bench.dash_bench import measure

    return {"label": label, **measure(Path(published_dir), calls=calls, seed=seed)}


def replicate(src_published: str, target_events: int, out_dir: str) -> dict[str, Any]:
    from bench.replicate import build

    return build(Path(src_published), target_events, Path(out_dir))


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "prepare": prepare, "ingest": ingest, "run_full": run_full, "run_incremental": run_incremental,
    "pm4py_align": pm4py_align, "a42": a42, "dashboard": dashboard, "replicate": replicate,
}


def main() -> None:
    task, args = sys.argv[1], json.loads(sys.argv[2])
    os.environ.setdefault("PATUH_SECRET", SECRET)
    result = TASKS[task](**args)
    result.update(peak_rss_mib())
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()

__all__ = ["DEMO_INSTITUTIONS", "TASKS"]
