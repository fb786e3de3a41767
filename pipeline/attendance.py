"""Daily attendance: the input of the rule models (SMK N 1 Petasia academic rules, docs/rules-input.md).

``load_attendance`` reads a CSV/XLSX/Parquet export (one row per student per school day) into the
``attendance`` table in one transaction: student ids are pseudonymised like case ids, statuses are
normalised (H/hadir, S/sakit, I/izin, A/alpa/tanpa keterangan), the semester is derived from the date when
the export has none (July-December: ``<year>-1`` ganjil; January-June: ``<year-1>-2`` genap), and rows
that cannot be read go to ``quarantine`` with a message. ``generate_attendance`` writes a seeded demo file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.calendars import WorkingCalendar
from pipeline.errors import UserError

STUDENT_COLUMNS = ("student_id", "nis", "nisn", "id_siswa", "no_induk", "siswa")
DATE_COLUMNS = ("day", "date", "tanggal", "tgl")
STATUS_COLUMNS = ("status", "kehadiran", "absensi", "keterangan")
STATUS_WORDS = {
    "hadir": "hadir", "h": "hadir", "present": "hadir", "dispensasi": "hadir",
    "sakit": "sakit", "s": "sakit", "sick": "sakit",
    "izin": "izin", "ijin": "izin", "i": "izin", "leave": "izin",
    "alpa": "alpa", "alpha": "alpa", "alfa": "alpa", "a": "alpa", "tanpa keterangan": "alpa", "absent": "alpa",
}


@dataclass
class AttendanceResult:
    file: str
    batch_id: int | None
    skipped: bool
    rows_in: int
    rows_loaded: int
    rows_quarantined: int


def _pick(columns: list[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    lowered = {c.strip().lower().replace(" ", "_"): c for c in columns}
    for name in wanted:
        if name in lowered:
            return lowered[name]
    raise UserError(f"{path}: no {what} column (expected one of: {', '.join(wanted)}; found: "
                    f"{', '.join(columns)}); rename the column in the export")


def load_attendance(
    conn: duckdb.DuckDBPyConnection, path: Path, *, institution_id: str, key: bytes
) -> AttendanceResult:
    """Load one attendance export as one batch (a file already loaded is a no-op)."""
    from pipeline.ingest import file_sha256, pseudonym_sql

    if not path.exists():
        raise UserError(f"{path}: no such file")
    sha = file_sha256(path)
    if conn.execute("SELECT count(*) FROM batches WHERE sha256 = ?", [sha]).fetchall()[0][0]:
        return AttendanceResult(path.name, None, True, 0, 0, 0)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = conn.execute("SELECT * FROM read_csv(?, all_varchar = true, header = true)", [str(path)]).df()
    elif suffix == ".parquet":
        frame = conn.execute("SELECT * FROM read_parquet(?)", [str(path)]).df().astype(str)
    elif suffix == ".xlsx":
        frame = pd.read_excel(path, dtype=str, engine="calamine")
    else:
        raise UserError(f"{path}: attendance must be .csv, .xlsx or .parquet")
    columns = [str(c) for c in frame.columns]
    student = _pick(columns, STUDENT_COLUMNS, path, "student id")
    day = _pick(columns, DATE_COLUMNS, path, "date")
    status = _pick(columns, STATUS_COLUMNS, path, "status")
    semester = next((c for c in columns if c.strip().lower() == "semester"), None)
    staged = pd.DataFrame({
        "source_row": np.arange(1, len(frame) + 1, dtype=np.int64),
        "student_raw": frame[student].astype("string"),
        "day_raw": frame[day].astype("string"),
        "status_raw": frame[status].astype("string"),
        "semester_raw": frame[semester].astype("string") if semester else pd.Series(pd.NA, index=frame.index,
                                                                                    dtype="string"),
    })
    words = pd.DataFrame(list(STATUS_WORDS.items()), columns=["word", "status"])
    conn.execute("BEGIN TRANSACTION")
    try:
        batch_id = int(conn.execute("SELECT nextval('batch_seq')").fetchall()[0][0])
        conn.register("att_raw", staged)
        conn.register("att_words", words)
        conn.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE att_typed AS
            SELECT r.source_row, nullif(trim(r.student_raw), '') AS student,
                   coalesce(try_strptime(trim(r.day_raw), '%Y-%m-%d'), try_strptime(trim(r.day_raw), '%d/%m/%Y'),
                            try_strptime(trim(r.day_raw), '%d-%m-%Y'))::DATE AS day,
                   w.status, r.semester_raw, r.day_raw, r.status_raw,
                   {pseudonym_sql("trim(r.student_raw)", key)} AS student_id
            FROM att_raw r LEFT JOIN att_words w ON w.word = lower(trim(r.status_raw))
            """
        )
        conn.execute(
            """
            INSERT INTO quarantine
            SELECT $batch, source_row,
                   CASE WHEN student IS NULL THEN 'missing_student_id' WHEN day IS NULL THEN 'bad_date'
                        ELSE 'bad_status' END,
                   $file || ', row ' || source_row || ': ' ||
                   CASE WHEN student IS NULL THEN 'no student id; fill the student number'
                        WHEN day IS NULL THEN 'date ' || coalesce(day_raw, '(empty)') ||
                             ' is not a date; write 2026-08-17 or 17/08/2026'
                        ELSE 'status ' || coalesce(status_raw, '(empty)') ||
                             ' is not hadir/sakit/izin/alpa (H/S/I/A)' END,
                   json_object('student_id', student_id, 'day', day_raw, 'status', status_raw)
            FROM att_typed WHERE student IS NULL OR day IS NULL OR status IS NULL
            """,
            {"batch": batch_id, "file": path.name},
        )
        conn.execute(
            """
            INSERT INTO attendance
            SELECT $inst, student_id, day, status,
                   coalesce(nullif(trim(semester_raw), ''),
                            CASE WHEN month(day) >= 7 THEN year(day) || '-1' ELSE (year(day) - 1) || '-2' END),
                   $batch, source_row
            FROM att_typed WHERE student IS NOT NULL AND day IS NOT NULL AND status IS NOT NULL
            """,
            {"inst": institution_id, "batch": batch_id},
        )
        loaded = int(conn.execute("SELECT count(*) FROM attendance WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
        rows_in = len(staged)
        conn.execute(
            "INSERT INTO batches (batch_id, source_file, sha256, institution_id, sop_id, format, loaded_at, rows_in,"
            " rows_loaded, rows_quarantined) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            [batch_id, path.name, sha, institution_id, f"attendance-{suffix.lstrip('.')}", dt.datetime.now(dt.UTC),
             rows_in, loaded, rows_in - loaded],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        for name in ("att_raw", "att_words"):
            conn.unregister(name)
    return AttendanceResult(path.name, batch_id, False, rows_in, loaded, rows_in - loaded)


def generate_attendance(out: Path, *, calendar: WorkingCalendar, students: int, start: dt.date, months: int,
                        seed: int) -> Path:
    """A seeded daily attendance CSV on the institution's school days: most students attend well, a few
    are often sick, on leave or absent without notice (so every attendance rule has breaches)."""
    rng = np.random.default_rng(seed)
    end = (pd.Timestamp(start) + pd.DateOffset(months=months)).date()
    days = pd.date_range(start, end - dt.timedelta(days=1), freq="D")
    days = days[calendar.is_working_day(days)]
    profile = rng.choice(4, size=students, p=[0.85, 0.06, 0.05, 0.04])  # good, sickly, often izin, truant
    p_table = np.array([[0.96, 0.02, 0.01, 0.01], [0.85, 0.12, 0.02, 0.01],
                        [0.86, 0.02, 0.10, 0.02], [0.72, 0.03, 0.03, 0.22]])
    probs = p_table[profile]
    draws = rng.random((students, len(days)))
    status_index = (draws[:, :, None] > np.cumsum(probs, axis=1)[:, None, :]).sum(axis=2)
    labels = np.array(["H", "S", "I", "A"])
    ids = np.array([f"NIS{hashlib.sha1(f'{seed}-{i}'.encode()).hexdigest()[:6].upper()}" for i in range(students)])
    frame = pd.DataFrame({
        "nis": np.repeat(ids, len(days)),
        "tanggal": np.tile(days.strftime("%d/%m/%Y"), students),
        "status": labels[status_index.ravel()],
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out
