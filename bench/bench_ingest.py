"""Ingest benchmark: Patuh's ingest into ``events`` vs plain pm4py.

    uv run python -m bench.bench_ingest --events 1000000 [--quick]

CSV and Parquet: ``ingest_file`` (parse, validate, dedupe, pseudonymise, insert, cases) against
``pandas.read_csv`` + ``pm4py.format_dataframe``. XES: ``ingest_file`` (lxml iterparse) against
``pm4py.read_xes`` (the variant it picked is reported: rustxes when installed, else lxml iterparse).
Results go to ``bench/results/ingest-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

RESULTS = Path(__file__).parent / "results"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_log(folder: Path, n: int) -> dict[str, Path]:
    """A simple event log of ``n`` events (10 per case, a case starting every minute from 2020: all dates stay
    in the past up to ~30M events), as CSV and Parquet (and XES for small n)."""
    conn = duckdb.connect()
    conn.execute(f"""CREATE TABLE log AS SELECT 'C' || lpad(CAST(i // 10 AS VARCHAR), 8, '0') AS case_id,
        's' || (i % 10 + 1) AS activity,
        strftime(TIMESTAMP '2020-01-02 07:00' + to_seconds(i // 10 * 60 + i % 10 * 5), '%Y-%m-%d %H:%M:%S')
            AS timestamp, 'R' || (i % 37) AS resource FROM range({n}) t(i)""")
    paths = {"csv": folder / "log.csv", "parquet": folder / "log.parquet"}
    conn.execute(f"COPY log TO '{paths['csv']}' (HEADER)")
    conn.execute(f"COPY log TO '{paths['parquet']}' (FORMAT parquet)")
    if n <= 2_000_000:
        paths["xes"] = folder / "log.xes"
        _write_xes(conn, paths["xes"])
    conn.close()
    return paths


def _write_xes(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    rows = conn.execute("SELECT case_id, activity, replace(timestamp, ' ', 'T') || '.000+07:00', resource "
                        "FROM log ORDER BY case_id, timestamp").fetchall()
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">\n')
        current = None
        for case, act, ts, res in rows:
            if case != current:
                if current is not None:
                    out.write("</trace>\n")
                out.write(f'<trace><string key="concept:name" value="{case}"/>\n')
                current = case
            out.write(f'<event><string key="concept:name" value="{act}"/><date key="time:timestamp" value="{ts}"/>'
                      f'<string key="org:resource" value="{res}"/></event>\n')
        out.write("</trace>\n</log>\n")


def _patuh(path: Path, db: Path) -> tuple[float, int]:
    from pipeline.calendars import load_institutions
    from pipeline.config import get_settings
    from pipeline.db import connect
    from pipeline.ingest import ingest_file

    calendars = load_institutions(get_settings().institutions_file)
    db.unlink(missing_ok=True)
    conn = connect(db)
    t0 = time.perf_counter()
    result = ingest_file(conn, path, institution_id="smpn2-ngawi", calendars=calendars, key=b"bench")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds, result.rows_loaded


def _pm4py_csv(path: Path) -> tuple[float, int]:
    import pandas as pd
    import pm4py

    t0 = time.perf_counter()
    df = pm4py.format_dataframe(pd.read_csv(path), case_id="case_id", activity_key="activity",
                                timestamp_key="timestamp")
    return time.perf_counter() - t0, len(df)


def _pm4py_parquet(path: Path) -> tuple[float, int]:
    import pandas as pd
    import pm4py

    t0 = time.perf_counter()
    df = pm4py.format_dataframe(pd.read_parquet(path), case_id="case_id", activity_key="activity",
                                timestamp_key="timestamp")
    return time.perf_counter() - t0, len(df)


def _pm4py_xes(path: Path) -> tuple[float, int, str]:
    import importlib.util

    import pm4py

    variant = "rustxes" if importlib.util.find_spec("rustxes") else "iterparse (lxml)"
    t0 = time.perf_counter()
    df = pm4py.read_xes(str(path))
    return time.perf_counter() - t0, len(df), variant


def run(sizes: list[int], quick: bool = False) -> dict[str, Any]:
    """Run the benchmark for each size; returns (and writes) the results as a dict."""
    sys._pm4py_welcome_shown = True  # type: ignore[attr-defined]
    os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "runs": []}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="patuh-bench-") as tmp:
            folder = Path(tmp)
            paths = make_log(folder, n)
            for fmt, path in paths.items():
                seconds, loaded = _patuh(path, folder / f"{fmt}.duckdb")
                row: dict[str, Any] = {"format": fmt, "events": n, "loaded": loaded, "patuh_s": round(seconds, 3),
                                       "patuh_events_per_s": round(n / seconds)}
                if not quick or n <= 200_000:
                    if fmt == "xes":
                        pm_s, pm_n, variant = _pm4py_xes(path)
                        row["pm4py_variant"] = variant
                    else:
                        pm_s, pm_n = (_pm4py_csv if fmt == "csv" else _pm4py_parquet)(path)
                    row.update(pm4py_s=round(pm_s, 3), pm4py_events=pm_n, speedup=round(pm_s / seconds, 2))
                row["peak_rss_mib"] = round(_peak_rss_mib())
                out["runs"].append(row)
                print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"ingest-{stamp}.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--quick", action="store_true", help="skip the pm4py side above 200k events")
    args = parser.parse_args()
    run(args.events, args.quick)


if __name__ == "__main__":
    main()
