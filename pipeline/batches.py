"""What was loaded and what was refused: the batches and their quarantined rows, for the people who fix exports.

Every ``patuh ingest`` / ``patuh rule-input`` file is one batch; a row that could not be loaded is kept in
``quarantine`` with a message naming the file, the row, the column, what was expected and how to fix it.
These readers let a user see those messages without SQL (``patuh batches``, ``patuh quarantine``).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from pipeline.errors import UserError

BATCH_COLUMNS = ["batch_id", "source_file", "institution_id", "sop_id", "format", "loaded_at", "rows_in",
                 "rows_loaded", "rows_quarantined", "rows_duplicate"]
# pesan: the message in Indonesian, shown first; message: the same in English
QUARANTINE_COLUMNS = ["batch_id", "source_file", "source_row", "reason", "pesan", "message", "raw"]


def list_batches(conn: duckdb.DuckDBPyConnection, *, institution_id: str | None = None) -> pd.DataFrame:
    """One row per loaded file, oldest first (``BATCH_COLUMNS``)."""
    return conn.execute(
        f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches "
        "WHERE $institution IS NULL OR institution_id = $institution ORDER BY batch_id",
        {"institution": institution_id}).df()


def quarantined_rows(conn: duckdb.DuckDBPyConnection, *, batch_id: int | None = None,
                     institution_id: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """The quarantined rows (``QUARANTINE_COLUMNS``), by batch and row, the first ``limit`` of them; ``raw``
    holds the mapped columns only, identifiers pseudonymised; ``pesan`` is the Indonesian message (the English
    one for rows quarantined before there was one, or in a database opened read-only before its upgrade). An
    unknown ``batch_id`` is a :class:`UserError`."""
    if batch_id is not None:
        require_batch(conn, batch_id)
    has_pesan = conn.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'quarantine' "
                             "AND column_name = 'pesan'").fetchall()[0][0]
    select = {"source_file": "b.source_file",
              "pesan": "coalesce(q.pesan, q.message) AS pesan" if has_pesan else "q.message AS pesan"}
    return conn.execute(
        f"SELECT {', '.join(select.get(c, 'q.' + c) for c in QUARANTINE_COLUMNS)} "
        "FROM quarantine q JOIN batches b USING (batch_id) "
        "WHERE ($batch IS NULL OR q.batch_id = $batch) AND ($institution IS NULL OR b.institution_id = $institution) "
        "ORDER BY q.batch_id, q.source_row" + ("" if limit is None else f" LIMIT {int(limit)}"),
        {"batch": batch_id, "institution": institution_id}).df()


def require_batch(conn: duckdb.DuckDBPyConnection, batch_id: int) -> None:
    """A :class:`UserError` naming the loaded batch ids when ``batch_id`` is not one of them."""
    if not conn.execute("SELECT count(*) FROM batches WHERE batch_id = ?", [batch_id]).fetchall()[0][0]:
        known = conn.execute("SELECT min(batch_id), max(batch_id) FROM batches").fetchall()[0]
        hint, petunjuk = ((f"batches are {known[0]}..{known[1]}", f"batch yang ada: {known[0]}..{known[1]}")
                          if known[0] is not None else ("nothing is loaded yet", "belum ada berkas yang dimuat"))
        raise UserError(f"no batch {batch_id} ({hint}); 'patuh batches' lists them",
                        pesan=f"batch {batch_id} tidak ada ({petunjuk}); daftarnya ada di 'patuh batches'")


def zone_changes(conn: duckdb.DuckDBPyConnection, zones: dict[str, str]) -> list[tuple[str, str]]:
    """Warnings (Indonesian, English) for batches read in an institution's time zone that institutions.yaml no
    longer gives it (the zone was corrected after loading): their events stay where the old zone put them until
    loaded again."""
    rows = conn.execute(
        "SELECT institution_id, mapping->>'timezone' AS zone, list(batch_id ORDER BY batch_id) FROM batches "
        "WHERE mapping->>'timezone' IS NOT NULL AND coalesce(mapping->>'timezone_of', 'institution') = 'institution' "
        "GROUP BY ALL ORDER BY ALL").fetchall()
    out = []
    for institution, zone, batch_ids in rows:
        now = zones.get(institution)
        if now is not None and now != zone:
            shown = ", ".join(map(str, batch_ids[:10])) + (", ..." if len(batch_ids) > 10 else "")
            out.append((f"{institution}: {len(batch_ids)} berkas yang dimuat (batch {shown}) dibaca dengan waktu "
                        f"{zone}, tetapi institutions.yaml sekarang menyebut {now}: waktunya tetap seperti dibaca "
                        f"dengan {zone}. Jika zona waktunya diperbaiki, muat berkas itu lagi "
                        "(patuh ingest BERKAS --replace)",
                        f"{institution}: {len(batch_ids)} loaded file(s) (batches {shown}) were read with times in "
                        f"{zone}, but institutions.yaml now gives {now}: their times stay as {zone} read them. If the "
                        "zone was corrected, load those files again (patuh ingest FILE --replace)"))
    return out
