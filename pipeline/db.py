"""DuckDB connections and the schema (pipeline/schema.sql)."""

from __future__ import annotations

from collections.abc import Iterator
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


def schema_sql() -> str:
    return files("pipeline").joinpath("schema.sql").read_text(encoding="utf-8")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and, read-write, create or upgrade) a Patuh database.

    A lock held by another process is a user-facing message, not a traceback.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise UserError(f"{path}: no such database; run 'patuh demo' or 'patuh ingest' first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise UserError(f"{path}: the database is in use by another Patuh process; wait for it to finish "
                            "(the dashboard reads the published copy, not this file)") from None
        raise UserError(f"{path}: cannot open the database ({exc})") from None
    if not read_only:
        conn.execute(schema_sql())
    conn.execute("SET TimeZone = 'UTC'")
    return conn
