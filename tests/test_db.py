"""Database housekeeping (pipeline/db.py): deleted rows are packed away only once enough of them piled up."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.db import VACUUM_MIN_DEAD_ROWS, connect, transaction, vacuuming

GROUP = VACUUM_MIN_DEAD_ROWS  # one DuckDB row group


def _stored_and_live(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    stored = conn.execute("SELECT estimated_size FROM duckdb_tables() WHERE table_name = 't'").fetchall()[0][0]
    return int(stored), int(conn.execute("SELECT count(*) FROM t").fetchall()[0][0])


def _write(conn: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """One transaction writing ``t`` as a run does: it packs ``t`` when due. True when it did."""
    with vacuuming(conn, ["t"]) as packed, transaction(conn):
        conn.execute(sql)
    return packed


def test_deleted_rows_stay_stored_until_a_quarter_of_the_table_then_the_next_write_packs_them(
        tmp_path: Path) -> None:
    rows = 8 * GROUP
    conn = connect(tmp_path / "patuh.duckdb")
    conn.execute(f"CREATE TABLE t AS SELECT range AS i FROM range({rows})")
    conn.execute("CHECKPOINT")

    # half of the first two row groups deleted (an eighth of the table): DuckDB on its own would rewrite them as
    # one at this commit's checkpoint; Patuh's connection leaves them
    assert not _write(conn, f"DELETE FROM t WHERE i < {2 * GROUP} AND i % 2 = 0")
    conn.execute("CHECKPOINT")
    assert _stored_and_live(conn) == (rows, rows - GROUP)
    # as much again from the next four: the check came before the delete, so they stay too
    assert not _write(conn, f"DELETE FROM t WHERE i >= {2 * GROUP} AND i < {6 * GROUP} AND i % 2 = 0")
    conn.execute("CHECKPOINT")
    assert _stored_and_live(conn) == (rows, rows - 3 * GROUP)

    # over a quarter of the table is deleted rows: the next transaction that writes it packs them
    assert _write(conn, f"INSERT INTO t VALUES ({rows})")
    live = rows - 3 * GROUP + 1
    assert _stored_and_live(conn) == (live, live)
    assert not _write(conn, f"INSERT INTO t VALUES ({rows + 1})")
    conn.close()

    reopened = connect(tmp_path / "patuh.duckdb")
    assert _stored_and_live(reopened) == (live + 1, live + 1)
    assert reopened.execute(f"SELECT count(*) FILTER (WHERE i < {6 * GROUP} AND i % 2 = 0), sum(i) FROM t"
                            ).fetchall()[0] == (0, sum(i for i in range(rows + 2) if i >= 6 * GROUP or i % 2))
    reopened.close()


def _limit(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def test_duckdb_leaves_memory_for_the_arrays_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB alone would take 80% of the machine; Patuh's connections take 60%, or what PATUH_MEMORY_LIMIT says."""
    monkeypatch.delenv("PATUH_MEMORY_LIMIT", raising=False)
    plain = duckdb.connect()
    duckdb_default = _limit(plain)
    plain.execute("SET memory_limit = '60%'")
    share = _limit(plain)
    plain.execute("SET memory_limit = '1GB'")
    one_gb = _limit(plain)
    db = tmp_path / "patuh.duckdb"
    conn = connect(db)
    assert _limit(conn) == share != duckdb_default
    conn.close()
    monkeypatch.setenv("PATUH_MEMORY_LIMIT", "1GB")
    for read_only in (False, True):
        opened = connect(db, read_only=read_only)
        assert _limit(opened) == one_gb
        opened.close()


def test_an_unreadable_memory_limit_is_a_message_not_a_traceback(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli_process import patuh

    monkeypatch.setenv("PATUH_MEMORY_LIMIT", "banyak")
    db = str(tmp_path / "patuh.duckdb")
    for out in (patuh("run", "--db", db, secret="x" * 32),
                patuh("serve", "--db", db, "--port", "8159", secret="x" * 32)):
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        message = " ".join(out.stderr.split())
        assert "PATUH_MEMORY_LIMIT='banyak' is not a memory size" in message and "'4GB'" in message
