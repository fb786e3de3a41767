"""Shared pieces of the benchmark harness: sizes, statistics, the worker subprocess, the log cache.

Every measurement runs in a fresh ``python -m bench.workloads`` subprocess so its peak RSS is its own;
the worker reports its ``ru_maxrss`` (and its pool children's) with the timings.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DEFAULT_CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
SECRET = "patuh-bench-not-a-real-secret-synthetic-data-only"  # pseudonyms of synthetic data only (>= 32 bytes)
DEMO_INSTITUTIONS = ("smpn2-ngawi", "bontang-bk", "rppsa-mataram", "ipdn-jatinangor")
EVENTS_PER_CASE = 7.2  # the seed SOPs' synthetic cases, measured; used only to size generated logs


def parse_size(text: str) -> int:
    """``10k`` -> 10_000, ``1M`` -> 1_000_000, ``2500`` -> 2500."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 10k, 100k, 1M)")
    factor = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median and spread ((max - min) / median) of repeated timings, in seconds."""
    med = statistics.median(samples)
    return {"median_s": round(med, 4), "min_s": round(min(samples), 4), "max_s": round(max(samples), 4),
            "spread": round((max(samples) - min(samples)) / med, 3) if med > 0 else 0.0, "n": len(samples),
            "samples_s": [round(s, 4) for s in samples]}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def peak_rss_mib() -> dict[str, float]:
    """This process's peak RSS and the largest of its waited-for children (pool workers), in MiB."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": round(own, 1), "peak_rss_children_mib": round(children, 1)}


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PATUH_SECRET", SECRET)
    env["PM4PY_SHOW_PROGRESS_BAR"] = "False"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class WorkerError(RuntimeError):
    pass


def run_worker(task: str, args: dict[str, Any], *, timeout: float = 3600, in_process: bool = False) -> dict[str, Any]:
    """Run one workload in a fresh subprocess and return its JSON result (with peak RSS)."""
    if in_process:
        from bench import workloads

        os.environ.setdefault("PATUH_SECRET", SECRET)
        local = workloads.TASKS[task](**args)
        local.update(peak_rss_mib())
        local["rss_note"] = "in-process (cumulative, not per workload)"
        return local
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.workloads", task, json.dumps(args)], cwd=ROOT,
                          env=bench_env(), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise WorkerError(f"{task} failed (exit {proc.returncode}):\n{tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise WorkerError(f"{task}: no result on stdout")
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    from importlib import metadata

    for pkg in ("duckdb", "pm4py", "pandas", "numpy", "pyarrow", "rustxes", "lxml", "dash", "plotly", "kaleido"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "missing"
    commit = None
    dirty = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"host": platform.node(), "cpu_model": cpu, "cpu_count": os.cpu_count(), "memory_gib": mem_gib,
            "os": platform.platform(), "versions": versions, "git_commit": commit, "git_dirty": dirty,
            "load_avg_at_start": [round(x, 2) for x in load]}


# ------------------------------------------------------------------------------------------ log cache


def synth_dir(cache: Path, events: int, seed: int, institutions: tuple[str, ...], tag: str = "") -> Path:
    key = f"{size_label(events)}-s{seed}-{'+'.join(sorted(institutions))}{tag}"
    return cache / "synth" / re.sub(r"[^A-Za-z0-9_.+-]", "_", key)


def synth_log(cache: Path, events: int, seed: int, institutions: tuple[str, ...], *, tag: str = "",
              case_suffix: str | None = None) -> dict[str, Any]:
    """A cached synthetic log of about ``events`` events (parquet, one file per SOP) and its meta.

    ``case_suffix`` renames every case id (for "new cases in a new batch", generated with another seed).
    """
    folder = synth_dir(cache, events, seed, institutions, tag)
    done = folder / "bench-meta.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    from pipeline.synth import generate

    if folder.exists():
        shutil.rmtree(folder)
    cases = max(1, round(events / EVENTS_PER_CASE))
    t0 = time.perf_counter()
    result = generate(folder, institutions=list(institutions), cases=cases, seed=seed, fmt="parquet")
    if case_suffix:
        import duckdb

        conn = duckdb.connect()
        for f in result.files:
            tmp = f.path.with_suffix(".tmp.parquet")
            conn.execute(f"COPY (SELECT * REPLACE (case_id || '{case_suffix}' AS case_id) FROM "
                         f"read_parquet('{f.path}')) TO '{tmp}' (FORMAT parquet)")
            os.replace(tmp, f.path)
        conn.close()
    meta = {"events": result.events, "cases": result.cases, "as_of": result.as_of.isoformat(),
            "generate_s": round(time.perf_counter() - t0, 2),
            "files": [{"institution_id": f.institution_id, "sop_id": f.sop_id, "path": str(f.path),
                       "cases": f.cases, "events": f.events} for f in result.files]}
    done.write_text(json.dumps(meta, indent=1))
    return meta
