"""Hand-made event logs written straight into a real Patuh database, and perturbed traces (for engine tests)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.db import connect
from pipeline.sop import Catalogue

NGAWI = "smpn2-ngawi"
PROSEDUR = "smpn2-ngawi/bk001-prosedur"
# Monday 2 March 2026, 08:00 WIB
BASE = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def new_db(path: Path) -> duckdb.DuckDBPyConnection:
    return connect(path)


def add_batch(conn: duckdb.DuckDBPyConnection, batch_id: int, loaded_at: dt.datetime | None = None) -> None:
    conn.execute(
        "INSERT INTO batches (batch_id, source_file, sha256, institution_id, sop_id, format, loaded_at, rows_in, "
        "rows_loaded, rows_quarantined) VALUES (?, 'hand-made.csv', ?, ?, ?, 'csv', ?, 0, 0, 0)",
        [batch_id, f"sha-{batch_id}", NGAWI, PROSEDUR, loaded_at or dt.datetime.now(dt.UTC)],
    )


def add_case(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, case_id: str, steps: list[str], *,
             batch_id: int = 1, status: str = "closed", role: str | None = None, minutes: int = 10,
             gap: int = 10, start: dt.datetime = BASE, documents: bool = False) -> None:
    """Events of ``steps`` (step ids, or free labels for foreign activities), each ``minutes`` long."""
    model = catalogue.get(PROSEDUR)
    t = start
    rows = []
    offset = int(conn.execute("SELECT count(*) FROM events").fetchall()[0][0])
    for i, label in enumerate(steps):
        step = model.step(label) if label in model.step_ids else None
        docs = (step.documents if step else []) if documents else None
        rows.append((NGAWI, PROSEDUR, case_id, step.activity if step else label, label if step else None,
                     role or (step.role if step else None), "staff-1", docs, t, t + dt.timedelta(minutes=minutes),
                     batch_id, offset + i + 1))
        t += dt.timedelta(minutes=minutes + gap)
    conn.executemany(
        "INSERT INTO events (institution_id, sop_id, case_id, activity, step_id, role, resource, documents, "
        "ts_start, ts_end, batch_id, source_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("DELETE FROM cases WHERE case_id = ?", [case_id])
    conn.execute(
        "INSERT INTO cases SELECT institution_id, sop_id, case_id, min(coalesce(ts_start, ts_end)), "
        "CASE WHEN ? = 'open' THEN NULL ELSE max(ts_end) END, ?, count(*), max(ts_end), "
        "arg_max(step_id, (ts_end, batch_id, source_row)) FROM events WHERE case_id = ? GROUP BY ALL",
        [status, status, case_id],
    )


def perturbed_trace(rng: random.Random, base: Sequence[str], inserts: Sequence[str], max_ops: int) -> tuple[str, ...]:
    """``base`` with 0..``max_ops`` random edits: drop, swap neighbours, repeat, or insert one of ``inserts``."""
    trace = list(base)
    for _ in range(rng.randint(0, max_ops)):
        op = rng.choice("dsri")
        if op == "d" and trace:
            trace.pop(rng.randrange(len(trace)))
        elif op == "s" and len(trace) > 1:
            i = rng.randrange(len(trace) - 1)
            trace[i], trace[i + 1] = trace[i + 1], trace[i]
        elif op == "r" and trace:
            i = rng.randrange(len(trace))
            trace.insert(i, trace[i])
        else:
            trace.insert(rng.randrange(len(trace) + 1), rng.choice(list(inserts)))
    return tuple(trace)
