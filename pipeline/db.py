"""DuckDB connections and the schema (pipeline/schema.sql)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import duckdb

from pipeline.errors import UserError


def sql_literal(text: str) -> str:
    """A SQL string literal (single quotes doubled), for identifiers of our own built into statements."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction around the block: committed at its end, rolled back when anything in it (or the commit)
    fails, and the error raised again."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# DuckDB vacuums deletes at every checkpoint: it packs the row groups around any deleted rows anew, up to four
# full ones per stretch (at 10M events, deleting the 21k restated stall deviations cost the checkpoint
# 0.3-0.7 s instead of 0.03 s). Patuh's connections leave deleted rows in place, and a transaction packs the
# tables it writes (`vacuuming`) once one of them holds a row group's worth of deleted rows and a quarter of
# its rows: that run pays once for the runs before it. Row groups left with no row at all are dropped anyway.
# DuckDB vacuums only tables a checkpoint writes: deleted rows already checkpointed stay until the table
# changes again, so the decision comes before the transaction that changes it, not after.
VACUUM_DEAD_SHARE = 0.25
VACUUM_MIN_DEAD_ROWS = 122_880  # one DuckDB row group
_DUCKDB_VACUUM_TASKS = 100  # DuckDB's default max_vacuum_tasks


def vacuum_due(conn: duckdb.DuckDBPyConnection, tables: Iterable[str], database: str) -> bool:
    """True when one of ``tables`` in ``database`` holds enough deleted rows to pack (``VACUUM_DEAD_SHARE``)."""
    names = list(tables)
    stored = conn.execute(
        "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = ? AND NOT temporary "
        "AND estimated_size >= ? AND list_contains(?, table_name)",
        [database, VACUUM_MIN_DEAD_ROWS, names]).fetchall()
    if not stored:
        return False
    # estimated_size counts the rows stored, deleted ones included
    live = conn.execute(" UNION ALL ".join(
        f'SELECT {i} AS i, count(*) AS n FROM "{database}".main."{name}"'
        for i, (name, _) in enumerate(stored))).fetchall()
    return any(stored[i][1] - n >= max(VACUUM_MIN_DEAD_ROWS, VACUUM_DEAD_SHARE * stored[i][1]) for i, n in live)


@contextmanager
def vacuuming(conn: duckdb.DuckDBPyConnection, tables: Iterable[str], database: str | None = None
              ) -> Iterator[bool]:
    """Around a transaction that writes ``tables``: when they hold enough deleted rows (:func:`vacuum_due`),
    its commit and a checkpoint right after pack them. Yields whether they do."""
    database = database or conn.execute("SELECT current_database()").fetchall()[0][0]
    if not vacuum_due(conn, tables, database):
        yield False
        return
    conn.execute(f"SET max_vacuum_tasks = {_DUCKDB_VACUUM_TASKS}")
    try:
        yield True
        conn.execute(f'CHECKPOINT "{database}"')  # when the commit itself did not checkpoint
    finally:
        conn.execute("SET max_vacuum_tasks = 0")


# DuckDB takes 80% of the machine's memory by default, but a run also holds numpy arrays of the events it times
# beside it: a full run at 10M events peaked at 4.5 GiB with DuckDB capped at 2.7 GiB. With 60%, a 10M-event
# run on an 8 GB machine peaks at 5.8 GiB instead of 7.0 GiB, in the same time (measured with the caps DuckDB
# would set there). PATUH_MEMORY_LIMIT overrides it: a size ('4GB') or a share ('50%').
DEFAULT_MEMORY_LIMIT = "60%"
MEMORY_LIMIT_VARIABLE = "PATUH_MEMORY_LIMIT"


def set_memory_limit(conn: duckdb.DuckDBPyConnection) -> None:
    """Cap DuckDB's memory at ``PATUH_MEMORY_LIMIT`` or :data:`DEFAULT_MEMORY_LIMIT` of the memory DuckDB
    detects; an unreadable value is a user-facing message."""
    limit = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip() or DEFAULT_MEMORY_LIMIT
    try:
        conn.execute(f"SET memory_limit = {sql_literal(limit)}")
    except duckdb.Error as exc:
        conn.close()
        raise UserError(f"{MEMORY_LIMIT_VARIABLE}={limit!r} is not a memory size: expected e.g. '4GB' or a share "
                        f"of the machine's memory such as '50%' ({exc})",
                        pesan=f"{MEMORY_LIMIT_VARIABLE}={limit!r} bukan ukuran memori: tulis misalnya '4GB', atau "
                              f"bagian dari memori mesin seperti '50%' ({exc})") from None


def check_memory_limit() -> None:
    """The message of :func:`set_memory_limit` now, for a process that opens its databases later (the dashboard)."""
    probe = duckdb.connect()
    set_memory_limit(probe)
    probe.close()


def schema_sql() -> str:
    return files("pipeline").joinpath("schema.sql").read_text(encoding="utf-8")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and, read-write, create or upgrade) a Patuh database.

    A lock held by another process is a user-facing message, not a traceback.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise UserError(f"{path}: no such database; run 'patuh demo' or 'patuh ingest' first",
                        pesan=f"{path}: basis data ini tidak ada; jalankan dulu 'patuh demo' atau 'patuh ingest'")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise UserError(f"{path}: the database is in use by another Patuh process; wait for it to finish "
                            "(the dashboard reads the published copy, not this file)",
                            pesan=f"{path}: basis data sedang dipakai oleh proses Patuh lain; tunggu sampai proses itu "
                                  "selesai (dasbor membaca salinan terbitan, bukan berkas ini)") from None
        raise UserError(f"{path}: cannot open the database ({exc})",
                        pesan=f"{path}: basis data tidak dapat dibuka ({exc})") from None
    set_memory_limit(conn)
    if not read_only:
        conn.execute(schema_sql())
    conn.execute("SET TimeZone = 'UTC'")
    if not read_only:
        conn.execute("SET max_vacuum_tasks = 0")  # `vacuuming` decides when
    return conn
