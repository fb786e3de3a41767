"""A 10M-event *published* file built by replicating a real published run in SQL.

Generating 10M events with the synthesizer takes too long, so the dashboard benchmark of issue 9 runs on
a replica: every per-case table (``case_results``, ``deviations``, ``event_timing``, ``cases``) is copied
N times with new case pseudonyms and every timestamp shifted back by k years (copy k = 0..N-1); monthly
aggregates (``step_metrics``, ``bottleneck_step_month``, ``bottleneck_role_load``, ``bottleneck_role_resources``)
are copied with their period shifted the same way, ``bottleneck_wip`` with its week; ``variants`` keep their rows with
``n_cases`` multiplied by N; the catalogue tables, ``runs`` and the other aggregates are kept as they are.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from pipeline.db import schema_sql
from pipeline.publish import CURRENT, current_published

CASE_TABLES = ("case_results", "deviations", "event_timing", "cases")
PERIOD_TABLES = ("step_metrics", "bottleneck_step_month", "bottleneck_role_load", "bottleneck_role_resources")


def build(src_published: Path, target_events: int, out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/<run_id>-x<N>.duckdb`` and point ``out_dir/CURRENT`` at it; cached by name."""
    src = current_published(src_published)
    if src is None:
        raise RuntimeError(f"nothing published in {src_published}")
    probe = duckdb.connect(str(src), read_only=True)
    events = int(probe.execute("SELECT count(*) FROM event_timing").fetchall()[0][0])
    probe.close()
    copies = max(1, math.ceil(target_events / max(events, 1)))
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{src.stem}-x{copies}.duckdb"
    t0 = time.perf_counter()
    if not final.exists():
        tmp = final.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conn = duckdb.connect(str(tmp))
        try:
            conn.execute("SET preserve_insertion_order = false")
            conn.execute(schema_sql())
            conn.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src' "
                "AND table_type = 'BASE TABLE'").fetchall()]
            for table in tables:
                cols = conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = 'src' "
                    "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
                conn.execute(f"INSERT INTO main.{table} BY NAME {_select(table, cols, copies)}")
            conn.execute("CHECKPOINT")
        finally:
            conn.close()
        os.replace(tmp, final)
    pointer = out_dir / f".{CURRENT}.tmp"
    pointer.write_text(final.name, encoding="utf-8")
    os.replace(pointer, out_dir / CURRENT)
    conn = duckdb.connect(str(final), read_only=True)
    counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in CASE_TABLES}
    conn.close()
    return {"source": str(src), "source_events": events, "copies": copies, "events": counts["event_timing"],
            "cases": counts["case_results"], "deviations": counts["deviations"], "path": str(final),
            "build_s": round(time.perf_counter() - t0, 1), "file_mib": round(final.stat().st_size / 2**20),
            "replicated": True}


def _select(table: str, cols: list[tuple[str, str]], copies: int) -> str:
    names = {c for c, _ in cols}
    if table in CASE_TABLES or table in PERIOD_TABLES or table == "bottleneck_wip":
        exprs = []
        for name, dtype in cols:
            if name == "case_id":
                # a new pseudonym per copy, the same length and alphabet as the original
                exprs.append("CASE WHEN k = 0 THEN case_id ELSE substr(sha256(case_id || ':' || k), 1, "
                             "length(case_id)) END AS case_id")
            elif dtype.startswith("TIMESTAMP"):
                exprs.append(f"{name} - to_years(CAST(k AS INTEGER)) AS {name}")
            elif name == "period":
                exprs.append("CAST(CAST(substr(period, 1, 4) AS INTEGER) - k AS VARCHAR) || substr(period, 5) "
                             "AS period")
            elif name == "week" and table == "bottleneck_wip":
                exprs.append("CAST(date_trunc('week', week - to_years(CAST(k AS INTEGER))) AS DATE) AS week")
            else:
                exprs.append(name)
        return f"SELECT {', '.join(exprs)} FROM src.{table}, range({copies}) r(k)"
    if table == "variants" and "n_cases" in names:
        return f"SELECT * REPLACE (n_cases * {copies} AS n_cases) FROM src.variants"
    return f"SELECT * FROM src.{table}"
