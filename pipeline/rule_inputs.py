"""Inputs of the rule models (SMK N 1 Petasia academic rules, docs/rules-input.md).

Three inputs, one table each: daily attendance (``attendance``), the levels that handled a student's
"layanan khusus" case (``escalations``) and assessment scores with their remedials (``scores``).
:func:`load_rule_input` reads a CSV/XLSX/Parquet export of one of them as one batch in one transaction:
columns are found by their Indonesian or English names, student and case ids are pseudonymised like case
ids of event logs, words are normalised (H/hadir, S/sakit, ...), and a row that cannot be read goes to
``quarantine`` with a message naming the file, row, column, the value and the form expected. The
``generate_*`` functions write seeded demo files in which every rule has breaches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from pipeline.calendars import WorkingCalendar
from pipeline.config import Secret
from pipeline.db import sql_literal, transaction
from pipeline.errors import UserError
from pipeline.readers import Reject, quarantine_rejects
from pipeline.sop import SopModel

STATUS_WORDS = {
    "hadir": "hadir", "h": "hadir", "present": "hadir", "dispensasi": "hadir",
    "sakit": "sakit", "s": "sakit", "sick": "sakit",
    "izin": "izin", "ijin": "izin", "i": "izin", "leave": "izin",
    "alpa": "alpa", "alpha": "alpa", "alfa": "alpa", "a": "alpa", "tanpa keterangan": "alpa", "absent": "alpa",
}
LEVEL_WORDS = {
    "guru_mapel": "guru_mapel", "guru mapel": "guru_mapel", "guru mata pelajaran": "guru_mapel",
    "subject teacher": "guru_mapel",
    "wali_kelas": "wali_kelas", "wali kelas": "wali_kelas", "walas": "wali_kelas", "homeroom teacher": "wali_kelas",
    "guru_bk": "guru_bk", "guru bk": "guru_bk", "bk": "guru_bk", "konselor": "guru_bk", "counsellor": "guru_bk",
    "counselor": "guru_bk",
}
ASSESSMENT_WORDS = {
    "ulangan_harian": "ulangan_harian", "ulangan harian": "ulangan_harian", "uh": "ulangan_harian",
    "daily test": "ulangan_harian",
    "uts": "uts", "pts": "uts", "ujian tengah semester": "uts", "midterm": "uts",
    "uas": "uas", "pas": "uas", "ujian akhir semester": "uas", "final": "uas",
    "tugas": "tugas", "assignment": "tugas",
}
FLAG_WORDS = {"1": "true", "true": "true", "ya": "true", "y": "true", "yes": "true", "benar": "true",
              "0": "false", "false": "false", "tidak": "false", "t": "false", "no": "false", "n": "false"}
STUDENT = ("student_id", "nis", "nisn", "id_siswa", "no_induk", "siswa")


@dataclass(frozen=True)
class Column:
    """One column of an input: the names it may have in an export and how its text is read."""

    name: str  # the column of the table
    aliases: tuple[str, ...]
    kind: str  # pseudonym | date | timestamp | word | text | number | flag
    required: bool = True
    words: Mapping[str, str] = field(default_factory=dict)  # kind word/flag: accepted spellings -> value
    expected: str = ""  # what a valid value looks like (messages)
    bad_reason: str | None = None  # quarantine reason for an unreadable value (default bad_<name>)


@dataclass(frozen=True)
class InputSpec:
    name: str  # the rules' `input`
    table: str
    columns: tuple[Column, ...]
    derived: Mapping[str, str] = field(default_factory=dict)  # table column -> SQL over the read columns


INPUTS = {
    "attendance_daily": InputSpec("attendance_daily", "attendance", (
        Column("student_id", STUDENT, "pseudonym", expected="a student number"),
        Column("day", ("day", "date", "tanggal", "tgl"), "date", expected="a date such as 2026-08-17 or 17/08/2026",
               bad_reason="bad_date"),
        Column("status", ("status", "kehadiran", "absensi", "keterangan"), "word", words=STATUS_WORDS,
               expected="hadir/sakit/izin/alpa (H/S/I/A)"),
        Column("semester", ("semester",), "text", required=False),
    ), derived={"semester": "coalesce(semester, CASE WHEN month(day) >= 7 THEN year(day) || '-1' "
                            "ELSE (year(day) - 1) || '-2' END)"}),
    "escalation_events": InputSpec("escalation_events", "escalations", (
        Column("case_id", ("case_id", "id_kasus", "no_kasus", "kasus", "id_layanan"), "pseudonym",
               expected="a case number"),
        Column("student_id", STUDENT, "pseudonym", expected="a student number"),
        Column("topic", ("topic", "topik", "jenis_layanan", "masalah", "bidang"), "text", required=False),
        Column("role", ("role", "level", "jenjang", "penangan", "ditangani_oleh", "petugas"), "word",
               words=LEVEL_WORDS, expected="guru mapel, wali kelas or guru BK"),
        Column("ts", ("ts", "timestamp", "waktu", "tanggal", "tgl", "date"), "timestamp",
               expected="a date and time such as 2026-08-17 09:30 or 17/08/2026 09:30"),
    )),
    "scores": InputSpec("scores", "scores", (
        Column("student_id", STUDENT, "pseudonym", expected="a student number"),
        Column("subject", ("subject", "mapel", "mata_pelajaran", "pelajaran"), "text", expected="a subject name"),
        Column("assessment", ("assessment", "penilaian", "jenis_penilaian", "ujian", "jenis"), "word",
               words=ASSESSMENT_WORDS, expected="ulangan harian, UTS, UAS or tugas"),
        Column("kd", ("kd", "kompetensi_dasar"), "text", required=False),
        Column("score", ("score", "nilai", "skor"), "number", expected="a number such as 72 or 72,5"),
        Column("kkm", ("kkm", "pass_mark", "ketuntasan"), "number", expected="a number such as 75"),
        Column("assessed_on", ("assessed_on", "tanggal", "tgl", "tanggal_penilaian", "date"), "date",
               expected="a date such as 2026-08-17 or 17/08/2026"),
        Column("remedial_on", ("remedial_on", "tanggal_remedial", "remedial", "tgl_remedial"), "date",
               required=False, expected="a date such as 2026-08-24, or empty when there was none"),
        Column("absence_excused", ("absence_excused", "susulan", "izin_sakit", "absen_dimaafkan"), "flag",
               required=False, words=FLAG_WORDS, expected="ya/tidak (yes/no)"),
        Column("final_exam_on", ("final_exam_on", "tanggal_uas", "ujian_akhir", "tanggal_ujian_akhir"), "date",
               required=False, expected="a date such as 2026-12-01"),
    )),
}

# the inputs' ``expected`` texts in Indonesian, for the quarantine's pesan (a text not here is shown as it is)
EXPECTED_ID = {
    "a student number": "nomor induk siswa (NIS)",
    "a case number": "nomor kasus",
    "a date such as 2026-08-17 or 17/08/2026": "tanggal seperti 2026-08-17 atau 17/08/2026",
    "hadir/sakit/izin/alpa (H/S/I/A)": "hadir/sakit/izin/alpa (H/S/I/A)",
    "guru mapel, wali kelas or guru BK": "guru mapel, wali kelas atau guru BK",
    "a date and time such as 2026-08-17 09:30 or 17/08/2026 09:30":
        "tanggal dan waktu seperti 2026-08-17 09:30 atau 17/08/2026 09:30",
    "a subject name": "nama mata pelajaran",
    "ulangan harian, UTS, UAS or tugas": "ulangan harian, UTS, UAS atau tugas",
    "a number such as 72 or 72,5": "angka seperti 72 atau 72,5",
    "a number such as 75": "angka seperti 75",
    "a date such as 2026-08-24, or empty when there was none": "tanggal seperti 2026-08-24, atau kosong bila tidak ada",
    "ya/tidak (yes/no)": "ya/tidak",
    "a date such as 2026-12-01": "tanggal seperti 2026-12-01",
}


@dataclass
class RuleInputResult:
    file: str
    input: str
    batch_id: int | None
    skipped: bool
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    origin: str = ""  # a file loaded before: where and when (see pipeline.ingest.batch_origin)


@dataclass
class _Rows:
    """A rule-input file as read: its rows, where a user finds each ("line" N of a CSV, sheet "row" N of an
    XLSX with the header as row 1, "row" N of a Parquet file) and the CSV lines that could not be split."""

    frame: pd.DataFrame
    shown: npt.NDArray[np.int64]
    word: str
    rejects: list[Reject] = field(default_factory=list)


def models_reading(models: Iterable[SopModel], input_name: str) -> dict[str, list[str]]:
    """Institution -> ids of its rule models with a rule that reads ``input_name`` (which institutions'
    rows of that input something checks)."""
    out: dict[str, list[str]] = {}
    for model in models:
        if any(rule.input == input_name for rule in model.rules):
            out.setdefault(model.institution, []).append(model.id)
    return out


def unchecked_warning(models: Iterable[SopModel], input_name: str, institution_id: str) -> str | None:
    """The warning for loading ``input_name`` rows of an institution that no rule model checks; None when one does."""
    readers = models_reading(models, input_name)
    if institution_id in readers:
        return None
    elsewhere = "; ".join(f"{inst}: {', '.join(ids)}" for inst, ids in sorted(readers.items()))
    return (f"{institution_id} has no rule model that reads {input_name}" + (f" (models that do: {elsewhere})"
                                                                             if elsewhere else "")
            + ": the rows are loaded, but nothing will check them; check --institution, or add a rules model "
            "for it to the catalogue (docs/rules-input.md)")


def _read(conn: duckdb.DuckDBPyConnection, path: Path) -> _Rows:
    from pipeline.readers import csv_record_lines, detect_encoding, read_rejects, transcode

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":  # UTF-8 (with or without BOM), UTF-16 or Latin-1/CP1252, as event logs
            encoding = detect_encoding(path)
            read_path = path if encoding == "utf-8" else transcode(path, encoding)
            tag = os.urandom(4).hex()
            rejects_table, scans = f"_patuh_rrej_{tag}", f"_patuh_rscan_{tag}"
            try:
                frame = conn.execute(
                    "SELECT * FROM read_csv(?, all_varchar = true, header = true, store_rejects = true, "
                    f"rejects_table = '{rejects_table}', rejects_scan = '{scans}')", [str(read_path)]).df()
                rejects = read_rejects(conn, rejects_table)
                positions = range(1, len(frame) + 1)
                lines, reject_lines = csv_record_lines(read_path, [str(c) for c in frame.columns], positions,
                                                       [r.line for r in rejects])
                for r in rejects:
                    r.line = reject_lines.get(r.line, r.line)
                return _Rows(frame, np.array([lines.get(i, i) for i in positions], dtype=np.int64), "line", rejects)
            finally:
                for table in (rejects_table, scans):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                if read_path != path:
                    read_path.unlink(missing_ok=True)
        if suffix == ".parquet":
            frame = conn.execute("SELECT * FROM read_parquet(?)", [str(path)]).df().astype("string")
            return _Rows(frame, np.arange(1, len(frame) + 1, dtype=np.int64), "row")
        if suffix == ".xlsx":
            frame = pd.read_excel(path, dtype=str, engine="calamine")  # keeps blank rows: index + 2 is the sheet row
            return _Rows(frame, np.arange(2, len(frame) + 2, dtype=np.int64), "row")
    except (duckdb.Error, ValueError, OSError) as exc:
        raise UserError(f"{path}: cannot be read as {suffix.lstrip('.')} ({str(exc).splitlines()[0]})",
                        pesan=f"{path}: tidak dapat dibaca sebagai {suffix.lstrip('.')} "
                              f"({str(exc).splitlines()[0]})") from None
    raise UserError(f"{path.name}: unsupported file type {suffix or '(none)'}; a rule input is read from .csv, .xlsx "
                    "or .parquet: export it in one of these",
                    pesan=f"{path.name}: jenis berkas {suffix or '(tanpa akhiran)'} tidak didukung; masukan aturan "
                          "dibaca dari .csv, .xlsx atau .parquet: ekspor dalam salah satu jenis ini")


def _find(headers: list[str], column: Column) -> str | None:
    lowered = {h.strip().lower().replace(" ", "_"): h for h in headers}
    return next((lowered[a] for a in column.aliases if a in lowered), None)


def _value_sql(column: Column, raw: str, key: bytes, tz: str) -> str:
    """SQL reading text ``raw`` as ``column``'s value (NULL when empty or unreadable)."""
    from pipeline.ingest import naive_sql, norm_sql, pseudonym_sql, timestamp_sql

    text = f"nullif(trim({raw}), '')"
    if column.kind == "pseudonym":
        return f"CASE WHEN {text} IS NOT NULL THEN {pseudonym_sql(f'trim({raw})', key)} END"
    if column.kind == "date":  # every form event logs may use (a spreadsheet's date cell reads as ISO)
        return f"({naive_sql(text, [])})::DATE"
    if column.kind == "timestamp":
        return timestamp_sql(raw, None, tz, [])
    if column.kind == "number":
        return f"TRY_CAST(replace({text}, ',', '.') AS DOUBLE)"
    if column.kind in ("word", "flag"):
        cases = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in column.words.items())
        value = f"CASE {norm_sql(text)} {cases} END"
        return f"({value})::BOOLEAN" if column.kind == "flag" else value
    return text


def load_rule_input(conn: duckdb.DuckDBPyConnection, path: Path, *, input_name: str, institution_id: str,
                    key: bytes | Secret | None = None, timezone: str = "Asia/Jakarta") -> RuleInputResult:
    """Load one export of ``input_name`` (see :data:`INPUTS`) as one batch; a file already loaded is a no-op.
    ``key`` (the installation's when None) must be the key the database was loaded with before."""
    from pipeline.ingest import batch_origin, check_key, file_sha256, resolve_key

    if input_name not in INPUTS:
        raise UserError(f"unknown rule input '{input_name}'; known: {', '.join(INPUTS)}",
                        pesan=f"masukan aturan '{input_name}' tidak dikenal; yang dikenal: {', '.join(INPUTS)}")
    spec = INPUTS[input_name]
    if not path.exists():
        raise UserError(f"{path}: no such file",
                        pesan=f"{path}: berkas tidak ditemukan")
    if path.suffix.lower() not in (".csv", ".xlsx", ".parquet"):
        _read(conn, path)  # says which types are read, before anything is looked up
    sha = file_sha256(path)
    done = conn.execute("SELECT batch_id, rows_in, rows_loaded, rows_quarantined, institution_id, sop_id, format, "
                        "loaded_at FROM batches WHERE sha256 = ?", [sha]).fetchall()
    if done:  # the batch it is loaded as (an event log or another input, for whichever institution)
        batch_id, rows_in, rows_loaded, rows_quarantined, inst, sop_id, fmt, loaded_at = done[0]
        return RuleInputResult(path.name, input_name, int(batch_id), True, int(rows_in), int(rows_loaded),
                               int(rows_quarantined), batch_origin(str(inst), sop_id, str(fmt), loaded_at))
    secret = resolve_key(key)
    check_key(conn, secret)  # before the file is read
    key = secret.key
    read = _read(conn, path)
    frame = read.frame
    headers = [str(c) for c in frame.columns]
    found = {c.name: _find(headers, c) for c in spec.columns}
    missing = [c for c in spec.columns if c.required and found[c.name] is None]
    if missing:
        wanted = "; ".join(f"{c.name}: one of {', '.join(c.aliases)}" for c in missing)
        dicari = "; ".join(f"{c.name}: salah satu dari {', '.join(c.aliases)}" for c in missing)
        raise UserError(f"{path}: no column for {wanted} (found: {', '.join(headers)}); rename the column in the "
                        "export",
                        pesan=f"{path}: tidak ada kolom untuk {dicari} (kolom yang ada: {', '.join(headers)}); "
                              "ganti nama kolomnya di ekspor")
    staged = pd.DataFrame({"source_row": read.shown})
    for name, header in found.items():
        staged[f"{name}_raw"] = frame[header].astype("string") if header else pd.Series(
            pd.NA, index=frame.index, dtype="string")
    values = ", ".join(f"{_value_sql(c, f'{c.name}_raw', key, timezone)} AS {c.name}" for c in spec.columns)
    # the first unreadable required (or filled optional) column of a row names its quarantine reason; its
    # message in English and (pesan) in Indonesian
    checks, pesan_checks = [], []
    for c in spec.columns:
        raw, header = f"nullif(trim({c.name}_raw), '')", f"column '{found[c.name] or c.name}'"
        kolom, harapan = f"kolom '{found[c.name] or c.name}'", EXPECTED_ID.get(c.expected, c.expected)
        if c.required:
            checks.append((f"{raw} IS NULL", f"missing_{c.name}",
                           sql_literal(f"{header}: empty; fill in {c.expected}")))
            pesan_checks.append(sql_literal(f"{kolom}: kosong; isi dengan {harapan}"))
        checks.append((f"{raw} IS NOT NULL AND {c.name} IS NULL", c.bad_reason or f"bad_{c.name}",
                       f"{sql_literal(header + ': ')} || {raw} || {sql_literal(f' is not {c.expected}; correct it')}"))
        pesan_checks.append(f"{sql_literal(kolom + ': ')} || {raw} || "
                            f"{sql_literal(f' bukan {harapan}; perbaiki nilainya')}")
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {sql_literal(r)}" for cond, r, _ in checks) + " END"
    message = "CASE " + " ".join(f"WHEN {cond} THEN {text}" for cond, _, text in checks) + " END"
    pesan = "CASE " + " ".join(f"WHEN {cond} THEN {text}"
                               for (cond, _, _), text in zip(checks, pesan_checks, strict=True)) + " END"
    raw_json = ", ".join(
        f"{sql_literal(c.name)}, {c.name if c.kind == 'pseudonym' else f'{c.name}_raw'}" for c in spec.columns)
    columns = [c.name for c in spec.columns]
    out = ", ".join(spec.derived.get(name, name) for name in columns)
    try:
        with transaction(conn):
            check_key(conn, secret, record=True)
            batch_id = int(conn.execute("SELECT nextval('batch_seq')").fetchall()[0][0])
            conn.register("rule_input_raw", staged)
            conn.execute(f"CREATE OR REPLACE TEMP TABLE rule_input_typed AS SELECT *, {values} FROM rule_input_raw")
            conn.execute(f"CREATE OR REPLACE TEMP TABLE rule_input_checked AS SELECT *, {reason} AS reason, "
                         f"{message} AS message, {pesan} AS pesan FROM rule_input_typed")
            conn.execute(
                f"""
                INSERT INTO quarantine (batch_id, source_row, reason, message, pesan, raw)
                SELECT $batch, source_row, reason, $file || ', ' || $word || ' ' || source_row || ', ' || message,
                       $file || ', baris ' || source_row || ', ' || pesan, json_object({raw_json})
                FROM rule_input_checked WHERE reason IS NOT NULL
                """,
                {"batch": batch_id, "file": path.name, "word": read.word},
            )
            # ragged CSV lines: quarantined with their line, the rest of the file loads
            quarantine_rejects(conn, batch_id, path.name, read.rejects)
            loaded = int(conn.execute(
                f"INSERT INTO {spec.table} ({', '.join(['institution_id', *columns, 'batch_id', 'source_row'])}) "
                f"SELECT $inst, {out}, $batch, source_row FROM rule_input_checked WHERE reason IS NULL",
                {"inst": institution_id, "batch": batch_id},
            ).fetchall()[0][0])
            rows_in = len(staged) + len(read.rejects)
            conn.execute(
                "INSERT INTO batches (batch_id, source_file, sha256, institution_id, sop_id, format, loaded_at, "
                "rows_in, rows_loaded, rows_quarantined) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                [batch_id, path.name, sha, institution_id, f"{spec.table}-{path.suffix.lower().lstrip('.')}",
                 dt.datetime.now(dt.UTC), rows_in, loaded, rows_in - loaded],
            )
    finally:
        conn.unregister("rule_input_raw")
        for table in ("rule_input_typed", "rule_input_checked"):  # they hold the raw student numbers
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return RuleInputResult(path.name, input_name, batch_id, False, rows_in, loaded, rows_in - loaded)


# ---------------------------------------------------------------------------------------------------
# Seeded demo files
# ---------------------------------------------------------------------------------------------------


def _student_ids(seed: int, students: int) -> np.ndarray:
    return np.array([f"NIS{hashlib.sha1(f'{seed}-{i}'.encode()).hexdigest()[:6].upper()}"
                     for i in range(students)])


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
    ids = _student_ids(seed, students)
    frame = pd.DataFrame({
        "nis": np.repeat(ids, len(days)),
        "tanggal": np.tile(days.strftime("%d/%m/%Y"), students),
        "status": labels[status_index.ravel()],
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def generate_escalations(out: Path, *, students: int, cases: int, start: dt.date, end: dt.date, seed: int) -> Path:
    """Seeded "layanan khusus" cases from ``start`` to ``end``: most go guru mapel -> wali kelas -> guru BK as
    far as needed; about one in eight starts too high, skips the wali kelas or goes back down."""
    rng = np.random.default_rng(seed + 1)
    ids = _student_ids(seed, students)
    levels = ["Guru Mapel", "Wali Kelas", "Guru BK"]
    topics = ["kehadiran", "kepribadian", "akhlak", "keamanan"]
    rows = []
    for i in range(cases):
        depth = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
        path = list(range(depth))
        kind = rng.random()
        if kind < 0.04:
            path = [2]  # straight to the guru BK
        elif kind < 0.08:
            path = [0, 2]  # the wali kelas skipped
        elif kind < 0.12:
            path = [0, 1, 0]  # back down
        span = max(1, (end - start).days - 10)  # room for the last levels before ``end``
        when = pd.Timestamp(start) + pd.Timedelta(days=int(rng.integers(0, span)), hours=7)
        student, topic = ids[rng.integers(0, students)], topics[rng.integers(0, len(topics))]
        for level in path:
            when += pd.Timedelta(hours=int(rng.integers(2, 72)))
            rows.append((f"LK-{seed}-{i:05d}", student, topic, levels[level], when.strftime("%d/%m/%Y %H:%M")))
    frame = pd.DataFrame(rows, columns=["no_kasus", "nis", "topik", "ditangani_oleh", "waktu"])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def generate_scores(out: Path, *, students: int, subjects: int, start: dt.date, end: dt.date, seed: int) -> Path:
    """Seeded scores of the semester starting at ``start`` (assessments up to ``end``): per student and subject
    four ulangan harian, a UTS and a UAS; most scores below the KKM get a remedial within two weeks, some get
    none or get it after the final exam's deadline."""
    rng = np.random.default_rng(seed + 2)
    ids = _student_ids(seed, students)
    names = ["Matematika", "Bahasa Indonesia", "Bahasa Inggris", "Produktif TKJ", "PPKn", "Fisika"][:subjects]
    final_exam = pd.Timestamp(start) + pd.Timedelta(days=150)
    rows = []
    for student in ids:
        ability = rng.normal(80, 7)
        for subject in names:
            kkm = 75
            for n, (assessment, kd, day) in enumerate(
                    [("UH", f"KD 3.{k}", 20 + 25 * k) for k in range(1, 5)] + [("UTS", "", 70), ("UAS", "", 150)]):
                score = float(np.clip(round(rng.normal(ability, 8)), 0, 100))
                assessed = pd.Timestamp(start) + pd.Timedelta(days=day + n)
                if assessed.date() >= end:
                    continue
                remedial = ""
                if score < kkm and assessment != "UAS":
                    fate = rng.random()
                    remedial_on = assessed + pd.Timedelta(days=int(rng.integers(3, 14)))
                    if fate < 0.85 and remedial_on.date() < end:
                        remedial = remedial_on.strftime("%d/%m/%Y")
                    elif fate < 0.92 and (final_exam + pd.Timedelta(days=2)).date() < end:
                        remedial = (final_exam + pd.Timedelta(days=2)).strftime("%d/%m/%Y")  # too late
                rows.append((student, subject, assessment, kd, str(score).replace(".", ","), kkm,
                             assessed.strftime("%d/%m/%Y"), remedial, "tidak", final_exam.strftime("%d/%m/%Y")))
    frame = pd.DataFrame(rows, columns=["nis", "mapel", "penilaian", "kd", "nilai", "kkm", "tanggal",
                                        "tanggal_remedial", "susulan", "tanggal_uas"])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out
