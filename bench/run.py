"""``make bench``: Patuh against plain pm4py, side by side, in the same run.

    python -m bench.run [--quick] [--sizes 10k,100k,1M] [--out DIR]

Workloads per size (each in a fresh subprocess, repeated; median, spread and peak RSS): ingest CSV,
Parquet and XES (``bench/bench_ingest.py``'s log) vs pandas + ``pm4py.format_dataframe`` and
``pm4py.read_xes``; a full compliance run on synthetic logs of the seed SOPs vs pm4py's alignments (per
SOP log, and case by case: a random sample timed and extrapolated when the whole would exceed the budget);
an incremental run after +1% events; dashboard latency. Then (full mode) the 10M-event dashboard
benchmark on a replicated published file, and pm4py's a42 logs when a pm4py checkout is at hand.
Writes ``<out>/<date>-<host>.json`` and ``.md`` and ``<out>/scaling.png``; with the default ``--out`` also
the README's "Performance" section. Generated logs are cached in ``bench/.cache/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    DEFAULT_CACHE,
    DEMO_INSTITUTIONS,
    RESULTS,
    WorkerError,
    machine_info,
    parse_size,
    run_worker,
    size_label,
)

A42_LOGS = ("a42f0n00", "a42f0n10", "a42f0n50")
A42_WHOLE = ("a42f0n00", "a42f0n10")  # plain pm4py aligns these in 2-3 minutes (a42f0n50: over an hour)
A42_TRACES = 1000  # traces in each a42 log
MIRRORS = (Path("/work/.mirror/process-intelligence-solutions+pm4py/repo"),
           Path("/work/.mirror/pm4py+pm4py-core/repo"))
A42_DIR = "tests/input_data/synthetic_logs/a42"


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _a42_files(cache: Path) -> tuple[list[dict[str, str]], str | None]:
    """The a42 model and logs under the cache, copied from a pm4py checkout's git objects when needed."""
    folder = cache / "a42"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["a42.pnml", *(f"{n}.xes.gz" for n in A42_LOGS)]
    missing = [n for n in names if not (folder / n).exists()]
    source = None
    if missing:
        for mirror in MIRRORS:
            if not mirror.exists():
                continue
            try:
                for name in missing:
                    blob = subprocess.run(["git", "--git-dir", str(mirror), "show", f"HEAD:{A42_DIR}/{name}"],
                                          capture_output=True, check=True).stdout
                    (folder / name).write_bytes(blob)
                source = str(mirror)
                break
            except (OSError, subprocess.CalledProcessError):
                continue
        if any(not (folder / n).exists() for n in names):
            return [], ("pm4py's a42 logs are not in ../shared/reference and no pm4py checkout was found "
                        f"(looked in {', '.join(str(m) for m in MIRRORS)}); put a42.pnml and a42f0n*.xes.gz in "
                        f"{folder} to include them")
    note = f"copied from {source}" if source else None
    return [{"log": str(folder / f"{n}.xes.gz"), "model": str(folder / "a42.pnml")} for n in A42_LOGS], note


def _report_only(path: Path, *, readme: bool) -> int:
    res = json.loads(path.read_text(encoding="utf-8"))
    res["goals"] = report.evaluate(res)
    path.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    table = report.markdown(res)
    path.with_suffix(".md").write_text(table, encoding="utf-8")
    report.scaling_png(res, path.parent / "scaling.png")
    if readme and path.parent.resolve() == RESULTS.resolve():
        report.update_readme(table)
    _say(f"rewrote {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--quick", action="store_true", help="10k events, 1 repetition, no 10M dashboard DB, a42 sample")
    ap.add_argument("--sizes", help="event counts, e.g. 10k,100k,1M (default: 10k,100k,1M; QUICK: 10k)")
    ap.add_argument("--reps", type=int, help="repetitions per workload (default 3; QUICK 1)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder (default bench/results)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generated logs (default bench/.cache)")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--institutions", default=",".join(DEMO_INSTITUTIONS))
    ap.add_argument("--pm4py-budget", type=float, help="seconds plain pm4py may take per workload before it "
                    "is sampled and extrapolated (default 600; QUICK 60)")
    ap.add_argument("--sample", type=int, default=200, help="cases timed one by one with pm4py (default 200)")
    ap.add_argument("--calls", type=int, default=30, help="dashboard calls per page (default 30)")
    ap.add_argument("--no-pm4py-sample", action="store_true", help="skip the pm4py alignment comparison and a42")
    ap.add_argument("--skip", default="", help="comma list of: ingest, run, incremental, pm4py, dashboard, 10m, a42")
    ap.add_argument("--dash-events", type=int, default=10_000_000, help="events in the replicated dashboard DB")
    ap.add_argument("--in-process", action="store_true", help="no subprocesses (tests; RSS is then cumulative)")
    ap.add_argument("--no-readme", action="store_true",
                    help="do not update README.md (QUICK runs never do: it shows the latest full run)")
    ap.add_argument("--no-plot", action="store_true", help="do not draw scaling.png")
    ap.add_argument("--report-only", type=Path, help="rewrite the table, plot and README from this results JSON")
    args = ap.parse_args(argv)
    if args.report_only:
        return _report_only(args.report_only, readme=not args.no_readme)

    quick = args.quick
    sizes = [parse_size(s) for s in (args.sizes or ("10k" if quick else "10k,100k,1M")).split(",") if s.strip()]
    reps = args.reps or (1 if quick else 3)
    budget = args.pm4py_budget or (60.0 if quick else 600.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.no_pm4py_sample:
        skip |= {"pm4py", "a42"}
    if quick:
        skip.add("10m")
    institutions = [s.strip() for s in args.institutions.split(",") if s.strip()]
    cache = args.cache.resolve()
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    today = dt.date.today().isoformat()
    res: dict[str, Any] = {
        "date": today, "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"quick": quick, "sizes": sizes, "reps": reps, "pm4py_budget_s": budget, "sample": args.sample,
                   "calls": args.calls, "seed": args.seed, "institutions": institutions, "skip": sorted(skip),
                   "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])},
        "ingest": [], "compliance": [], "dashboard": [], "dashboard_10m": {}, "a42": [], "errors": [],
    }
    common = {"in_process": args.in_process}

    def work(task: str, wargs: dict[str, Any], what: str, timeout: float = 7200) -> dict[str, Any] | None:
        _say(what)
        try:
            result = run_worker(task, wargs, timeout=timeout, **common)
        except (WorkerError, subprocess.TimeoutExpired) as exc:
            res["errors"].append(f"{what}: {exc}")
            _say(f"  FAILED: {str(exc).splitlines()[0]}")
            return None
        _say("  " + json.dumps({k: v for k, v in result.items()
                                if k in ("median_s", "spread", "events_per_s", "peak_rss_mib", "ratio", "mode",
                                         "events", "cases")}))
        return result

    c = str(cache)
    for n in sizes:
        label = size_label(n)
        if "ingest" not in skip:
            for fmt in ("csv", "parquet", "xes"):
                pa = work("ingest", {"size": n, "fmt": fmt, "side": "patuh", "reps": reps, "cache": c},
                          f"ingest {fmt} {label}: Patuh")
                if pa is None or "skipped" in pa:
                    continue
                row: dict[str, Any] = {"events": n, "format": fmt, "patuh": pa}
                pm = work("ingest", {"size": n, "fmt": fmt, "side": "pm4py", "reps": reps, "cache": c},
                          f"ingest {fmt} {label}: pm4py")
                if pm is not None:
                    row["pm4py"] = pm
                    row["ratio"] = report.ratio(pm["median_s"], pa["median_s"])
                if fmt == "xes":
                    row["pm4py_alternatives"] = []
                    for variant in ("iterparse", "chunk_regex"):
                        alt = work("ingest", {"size": n, "fmt": fmt, "side": f"pm4py-{variant}",
                                              "reps": reps if n <= 100_000 else 1, "cache": c},
                                   f"ingest xes {label}: pm4py.read_xes(variant={variant!r})")
                        if alt is not None:
                            row["pm4py_alternatives"].append(alt)
                res["ingest"].append(row)
        if not skip >= {"run", "incremental", "pm4py", "dashboard"}:
            prep = work("prepare", {"size": n, "seed": args.seed, "institutions": institutions, "cache": c},
                        f"prepare {label}: synthetic logs (cached) and ingest")
            if prep is None:
                continue
            entry: dict[str, Any] = {"size": n, "events": prep["events_loaded"], "cases": prep["cases"],
                                     "prepare": prep}
            res["compliance"].append(entry)
            if "run" in skip:
                continue
            full = work("run_full", {"size": n, "seed": args.seed, "institutions": institutions, "cache": c,
                                     "reps": reps}, f"compliance run {label}: Patuh full")
            if full is None:
                entry["error"] = "full run failed"
                continue
            entry["patuh"] = full
            if "incremental" not in skip:
                inc = work("run_incremental", {"size": n, "seed": args.seed, "institutions": institutions,
                                               "cache": c, "reps": reps}, f"compliance run {label}: incremental +1%")
                if inc is not None:
                    inc["share_of_full"] = round(inc["median_s"] / full["median_s"], 4)
                    if inc.get("next"):
                        inc["next"]["share_of_full"] = round(inc["next"]["median_s"] / full["median_s"], 4)
                    entry["incremental"] = inc
                for key, flag, what in (("incremental_month", "last_month", "the last month's new cases"),
                                        ("incremental_nothing_new", "nothing_new", "no new events")):
                    other = work("run_incremental", {"size": n, "seed": args.seed, "institutions": institutions,
                                                     "cache": c, "reps": reps, flag: True},
                                 f"compliance run {label}: incremental, {what}")
                    if other is not None:
                        other["share_of_full"] = round(other["median_s"] / full["median_s"], 4)
                        entry[key] = other
            if "pm4py" not in skip:
                pm = work("pm4py_align", {"size": n, "seed": args.seed, "institutions": institutions, "cache": c,
                                          "reps": reps, "budget_s": budget, "sample": args.sample},
                          f"compliance {label}: plain pm4py alignments", timeout=budget * 4 + 600)
                if pm is not None:
                    entry["pm4py"] = pm
            if "dashboard" not in skip:
                d = work("dashboard", {"published_dir": str(Path(full["kept"]) / "published"), "calls": args.calls,
                                       "seed": args.seed, "label": f"synthetic {label}"}, f"dashboard {label}")
                if d is not None:
                    res["dashboard"].append(d)

    if "10m" not in skip:
        ran = [e for e in res["compliance"] if "patuh" in e]
        if not ran:
            res["dashboard_10m"] = {"skipped": "no published run to replicate"}
        else:
            src = max(ran, key=lambda e: e["events"])
            target = args.dash_events
            rep = work("replicate", {"src_published": str(Path(src["patuh"]["kept"]) / "published"),
                                     "target_events": target,
                                     "out_dir": str(cache / "dash10m" / f"{size_label(src['size'])}-s{args.seed}")},
                       f"replicate the {size_label(src['size'])} published run to {target:,} events")
            if rep is not None:
                d = work("dashboard", {"published_dir": str(Path(rep["path"]).parent), "calls": args.calls,
                                       "seed": args.seed, "label": f"{size_label(target)} replicated"},
                         "dashboard on the replicated 10M-event DB")
                if d is not None:
                    res["dashboard_10m"] = {**d, "replica": rep}
    else:
        res["dashboard_10m"] = {"skipped": "QUICK mode (the 10M replicated DB runs with `make bench`)"
                                if quick else "skipped (--skip 10m)"}

    if "a42" not in skip:
        files, note = _a42_files(cache)
        if not files:
            res["a42_note"] = note
        else:
            res["a42_source"] = note or f"cached in {cache / 'a42'}"
            # a random sample of every log; the whole log too where plain pm4py takes minutes, not an hour
            whole = () if quick else A42_WHOLE
            runs = [(f, 10 if quick else 60) for f in (files[:1] if quick else files)]
            runs += [(f, A42_TRACES) for f in files if Path(f["log"]).name.split(".")[0] in whole]
            for f, sample in runs:
                label = "the whole log" if sample >= A42_TRACES else f"{sample} random traces"
                a = work("a42", {"files": f, "sample": sample, "seed": args.seed, "reps": 1},
                         f"a42: {Path(f['log']).name} ({label})", timeout=1500)
                res["a42"].append(a if a is not None else {"log": Path(f["log"]).name, "error": "failed"})

    res["seconds"] = round(time.perf_counter() - started, 1)
    res["goals"] = report.evaluate(res)
    stem = f"{today}-{platform.node() or 'host'}" + ("-quick" if quick else "")
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    table = report.markdown(res)
    (out_dir / f"{stem}.md").write_text(table, encoding="utf-8")
    png_error = None if args.no_plot else report.scaling_png(res, out_dir / "scaling.png")
    if png_error:
        res["errors"].append(f"scaling.png: {png_error}")
        json_path.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    # the README shows the latest full run: a QUICK check does not replace it
    if not args.no_readme and not args.quick and out_dir == RESULTS.resolve():
        report.update_readme(table)
    _say(f"done in {res['seconds']} s: {json_path}, {out_dir / (stem + '.md')}, {out_dir / 'scaling.png'}")
    for g in res["goals"]:
        _say(f"  {g['status']:>12}  {g['text']}: {g['figure']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
