"""Load case event logs into DuckDB: mapping, validation with quarantine, pseudonymisation, batches.

One file is one batch, loaded in one transaction (an error or a kill leaves nothing of it) and
identified by the file's sha256 (loading it again is a no-op). The work is set-based DuckDB SQL:

1. the reader exposes the file to DuckDB (:mod:`pipeline.readers`): text columns for CSV and XLSX,
   typed columns where the file has types (Parquet, XES dates);
2. one parallel pass parses the mapped columns (timestamps: ISO first, many other forms only for the
   rows ISO misses, see :func:`timestamp_sql`), gives every bad row a reason and every row a 64-bit
   hash; bad rows go to ``quarantine`` with a message and the mapped columns only;
3. lifecycle pairs fold into one event (XES ``start`` + ``complete``, see :func:`ingest_file`);
4. exact duplicates fold into one row: within the file (rows sharing a hash, then compared column by
   column) and against events already loaded for the same cases (skipped when every case is new);
5. case ids and resources become HMAC-SHA256 pseudonyms, computed once per distinct value;
6. activities map to SOP step ids, roles to SOP role keys (once per distinct label); ``cases`` rows
   are recomputed from all their events.

A log loaded without ``--sop`` has ``sop_id = ''`` in ``events`` and in ``cases`` (not NULL, which ``=`` never
matches), so the two tables join on ``(institution_id, sop_id, case_id)``.

Accounting, per batch: ``rows_in = rows_loaded + rows_quarantined + rows_duplicate + rows_lifecycle``
(DESIGN writes ``rows_in = rows_loaded + rows_quarantined``; folded rows are neither lost nor errors,
so they have their own counts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.calendars import ZONE_WORDS
from pipeline.config import PUBLIC_LABEL_CASES, Secret, load_key
from pipeline.db import sql_literal, transaction, vacuuming
from pipeline.errors import UserError
from pipeline.mapping import TIME_OF_DAY, Mapping, load_mapping, resolve_columns
from pipeline.readers import (
    EXPORT_SUFFIXES,
    Source,
    check_file_type,
    csv_record_lines,
    open_source,
    quarantine_rejects,
)
from pipeline.sop import END, SopModel

Progress = Callable[[str, float], None]

# the tables whose rows a load (or an unload) deletes in part: its commit packs them when enough piled up
INGEST_TABLES = ("events", "cases", "quarantine")
CLOSED_WORDS = ("closed", "close", "selesai", "done", "tutup", "ditutup", "complete", "completed", "finished",
                "tuntas", "beres", "resolved", "terselesaikan", "final", "diselesaikan")
OPEN_WORDS = ("open", "buka", "dibuka", "proses", "diproses", "dalam proses", "berjalan", "sedang berjalan",
              "pending", "menunggu", "in progress", "ongoing", "baru", "new", "aktif", "active")

_MONTHS = {
    "01": "januari|january|jan", "02": "februari|pebruari|february|feb|peb", "03": "maret|march|mar",
    "04": "april|apr", "05": "mei|may", "06": "juni|june|jun", "07": "juli|july|jul",
    "08": "agustus|august|agu|agt|ags|aug", "09": "september|sept|sep", "10": "oktober|october|okt|oct",
    "11": "november|nopember|nov|nop", "12": "desember|december|des|dec",
}
_DAYS = "senin|selasa|rabu|kamis|jum.?at|sabtu|minggu|ahad|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
DEFAULT_FORMATS = [
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H.%M", "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d-%m-%Y %H.%M", "%d-%m-%Y",
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
    "%d/%m/%y %H:%M", "%d/%m/%y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y-%m-%d %H.%M",
]
_MONTH_FORMATS = ["%d %m %Y %H:%M:%S", "%d %m %Y %H:%M", "%d %m %Y %H.%M", "%d %m %Y", "%d %m %y %H:%M", "%d %m %y"]
_OFFSET_RE = r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"
# a cell's zone word, the longest first (a cell ending in "wita" is not read as one ending in "wit")
_ZONES = tuple(sorted(((word.lower(), zone) for word, zone in ZONE_WORDS.items()), key=lambda wz: -len(wz[0])))
FIXED_OFFSETS = {"Asia/Jakarta": 7, "Asia/Pontianak": 7, "Asia/Makassar": 8, "Asia/Jayapura": 9, "UTC": 0,
                 "Etc/UTC": 0}
# what makes two rows exact duplicates (the raw case id and resource: pseudonyms come later)
ROW_HASH = "hash(case_raw, activity, ts_start, ts_end, resource_raw, role_raw, documents, status)"
EXPECTED_DATES = "e.g. 2020-01-16 08:30, 16/01/2020 08:30, 16-01-2020 08:30, 16 Januari 2020 08:30"


class _ReadAgain(Exception):
    """The scan failed on a too-long CSV line; the batch was rolled back and is read again, wider."""


@dataclass
class IngestResult:
    """What one file did to the database (also what ``patuh ingest`` prints)."""

    file: str
    sha256: str
    format: str
    batch_id: int | None
    skipped: bool = False
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    rows_lifecycle: int = 0
    rows_unknown_activity: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    cases_new: int = 0
    cases_updated: int = 0
    cases_open: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------
# Pseudonyms
# ---------------------------------------------------------------------------------------------------


@dataclass
class RemovedBatch:
    """What taking one batch out did (``patuh unload``)."""

    batch_id: int
    source_file: str
    institution_id: str
    sop_id: str | None
    events: int
    quarantined: int
    rule_rows: int
    cases_rebuilt: int
    cases_removed: int


def pseudonym(raw: str, key: bytes) -> str:
    """HMAC-SHA256 of an identifier, 16 hex characters (64 bits: no collisions at school scale)."""
    return hmac.new(key, raw.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


# HMAC(key, KEY_CHECK): the key's fingerprint kept in the database (key_check). It tells whether a later load uses
# the same key and reveals nothing of the key or of any identifier.
KEY_CHECK = b"patuh-key-check"


def key_fingerprint(key: bytes) -> str:
    return hmac.new(key, KEY_CHECK, hashlib.sha256).hexdigest()


def resolve_key(key: bytes | Secret | None) -> Secret:
    """The key to pseudonymise with: the installation's (:func:`pipeline.config.load_key`) when None."""
    if key is None:
        return load_key()
    if isinstance(key, Secret):
        return key
    return Secret(key, "the key given by the caller", "kunci yang diberikan pemanggil")


def check_key(conn: duckdb.DuckDBPyConnection, secret: Secret, *, record: bool = False) -> None:
    """Refuse ``secret`` when the database's identifiers were pseudonymised with another key: the same students
    and cases would get new pseudonyms and every case would be split in two. With ``record`` (inside the
    transaction of a load), a database without a fingerprint gets this key's."""
    fingerprint = key_fingerprint(secret.key)
    known = [str(r[0]) for r in conn.execute("SELECT fingerprint FROM key_check").fetchall()]
    if any(f != fingerprint for f in known):
        where = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                             ).fetchall()[0][0] or "the database"
        made, dibuat = "", ""
        if secret.created:  # e.g. another Unix user's first load: its own new key file
            made = (f", which did not exist and was made just now with a new key (delete {secret.key_file} once the "
                    "key of the earlier loads is given)")
            dibuat = (f", yang belum ada dan baru saja dibuat dengan kunci baru (hapus {secret.key_file} setelah kunci "
                      "pemuatan sebelumnya diberikan)")
        raise UserError(
            f"{where}: the data in this database was pseudonymised with another key than the one from "
            f"{secret.source}{made}: loading with it would give the same students and cases new pseudonyms and "
            "split every case in two. Nothing was loaded. Give the key used before: PATUH_SECRET=<that key>, or "
            "PATUH_KEY_FILE=<the file holding it> (by default ~/.config/patuh/secret.key of the user who loaded "
            "the earlier files)",
            pesan=f"{where}: data di basis data ini dipseudonimkan dengan kunci lain, bukan kunci dari "
                  f"{secret.sumber}{dibuat}: memuat dengan kunci ini akan memberi siswa dan kasus yang sama "
                  "pseudonim baru dan memecah setiap kasus menjadi dua. Tidak ada yang dimuat. Berikan kunci yang "
                  "dipakai sebelumnya: PATUH_SECRET=<kunci itu>, atau PATUH_KEY_FILE=<berkas yang memuatnya> "
                  "(bawaan ~/.config/patuh/secret.key milik pengguna yang memuat berkas sebelumnya)")
    if record and not known:
        conn.execute("INSERT INTO key_check VALUES (?, now())", [fingerprint])


def pseudonym_sql(expr: str, key: bytes) -> str:
    """SQL computing :func:`pseudonym` of a VARCHAR expression (RFC 2104 HMAC with DuckDB's sha256)."""
    block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in block).hex()
    opad = bytes(b ^ 0x5C for b in block).hex()
    return f"left(sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || encode({expr})))), 16)"


# ---------------------------------------------------------------------------------------------------
# SQL builders
# ---------------------------------------------------------------------------------------------------



def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(items: list[str]) -> str:
    return "[" + ", ".join(sql_literal(i) for i in items) + "]"


def naive_sql(x: str, formats: list[str]) -> str:
    """A naive TIMESTAMP from text ``x`` (SQL): user formats, ISO, day-first forms, month names, Excel."""
    month = f"lower({x})"
    month = f"regexp_replace({month}, '\\b({_DAYS})\\b,?', ' ', 'g')"
    month = f"regexp_replace({month}, '\\b(pukul|pkl|jam)\\b\\.?', ' ', 'g')"
    for num, names in _MONTHS.items():
        month = f"regexp_replace({month}, '\\b({names})\\b\\.?', ' {num} ', 'g')"
    month = f"trim(regexp_replace({month}, '[\\s,/-]+', ' ', 'g'))"
    parts = []
    if formats:
        parts.append(f"try_strptime({x}, {_list(formats)})")
    parts += [
        f"TRY_CAST({x} AS TIMESTAMP)",
        f"try_strptime({x}, {_list(DEFAULT_FORMATS)})",
        f"CASE WHEN regexp_matches({x}, '[A-Za-z]{{3}}') THEN try_strptime({month}, {_list(_MONTH_FORMATS)}) END",
        f"CASE WHEN regexp_full_match({x}, '\\d{{5}}(\\.\\d+)?') THEN TIMESTAMP '1899-12-30' + "
        f"to_microseconds(CAST(round(CAST({x} AS DOUBLE) * 86400000000) AS BIGINT)) END",
    ]
    return "coalesce(" + ", ".join(parts) + ")"


def local_sql(naive: str, tz: str) -> str:
    """A naive local TIMESTAMP (SQL) in zone ``tz`` as TIMESTAMPTZ. Indonesia's zones have fixed offsets
    (no daylight saving since 1964): plain arithmetic, 2x faster than an ICU lookup per row."""
    offset = FIXED_OFFSETS.get(tz)
    if offset is None:
        return f"timezone({sql_literal(tz)}, {naive})"
    return f"make_timestamptz(epoch_us({naive}) - {offset * 3_600_000_000})"


# Cheap first tries (a full match each, so a zone word or an offset never matches a naive form): most
# exports use one ISO form throughout, and only the rows these miss go through the slow forms below.
FAST_NAIVE = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S.%f",
              "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"]
FAST_OFFSET = ["%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S.%f%z"]


def timestamp_sql(col: str, col_type: str | None, tz: str, formats: list[str]) -> str:
    """SQL for a TIMESTAMPTZ from column ``col``: an explicit offset wins; a zone word (WIB, WITA, WIT)
    next; otherwise the time is local to ``tz``. Unparseable text gives NULL (quarantined as bad_timestamp).

    The user's formats (else plain ISO) are tried first on the raw text; DuckDB's ``coalesce`` evaluates
    the slow branches only for the rows the fast ones left NULL."""
    c = _ident(col)
    if col_type == "TIMESTAMP WITH TIME ZONE":
        return c
    if col_type is not None:
        return local_sql(f"CAST({c} AS TIMESTAMP)", tz)
    x = f"NULLIF(trim({c}), '')"
    branches = [f"WHEN {x} IS NULL THEN NULL"]
    for word, zone in _ZONES:
        stripped = f"rtrim(left({x}, length({x}) - {len(word)}))"
        branches.append(f"WHEN {x} ILIKE '%{word}' THEN {local_sql(naive_sql(stripped, formats), zone)}")
    # Unix time from application exports: 10 digits are seconds (2001-2286), 13 milliseconds; always UTC
    branches.append(f"WHEN regexp_full_match({x}, '\\d{{10}}') THEN to_timestamp(CAST({x} AS BIGINT))")
    branches.append(f"WHEN regexp_full_match({x}, '\\d{{13}}') THEN to_timestamp(CAST({x} AS BIGINT) / 1000.0)")
    offset = f"CASE WHEN regexp_matches({x}, '{_OFFSET_RE}') THEN TRY_CAST({x} AS TIMESTAMPTZ) END"
    branches.append(f"ELSE coalesce({offset}, {local_sql(naive_sql(x, formats), tz)})")
    slow = "CASE " + " ".join(branches) + " END"
    fast = [local_sql(f"try_strptime({c}, {_list(formats or FAST_NAIVE)})", tz)]
    if not formats:
        fast.append(f"try_strptime({c}, {_list(FAST_OFFSET)})")
    return f"coalesce({', '.join(fast)}, {slow})"


TIME_FORMATS = ["%H.%M", "%H.%M.%S", "%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I.%M %p"]
_DATE_DIRECTIVES = ("%d", "%m", "%Y", "%y", "%b", "%B", "%j", "%a", "%A")
EXPECTED_DAYS = "e.g. 2020-01-16, 16/01/2020, 16-01-2020, 16 Januari 2020"
EXPECTED_TIMES = "e.g. 08:30, 08.30, 14:05:00, 08:30 WITA"


def date_sql(x: str, typed: bool, formats: list[str]) -> str:
    """SQL: the day (DATE) in ``x``, a column or text expression; NULL when unreadable. A cell with a date and
    a time (a spreadsheet's date cell: 2026-10-05 00:00:00) gives its day."""
    if typed:
        return f"TRY_CAST({x} AS DATE)"
    return f"coalesce(TRY_CAST({x} AS DATE), CAST({naive_sql(f'NULLIF(trim({x}), {chr(39) * 2})', formats)} AS DATE))"


def time_of_day_sql(x: str, formats: list[str]) -> str:
    """SQL: the time of day (TIME) in text ``x`` (trimmed, not blank): 08:30, 8.30, 2:05 pm, pukul 08.30,
    an Excel time (a fraction of a day, or a date-time on Excel's day zero 1899-12-30); NULL otherwise."""
    word = f"trim(regexp_replace(lower({x}), '^(pukul|pkl|jam)\\.?\\s*', ''))"
    own = [f for f in formats if not any(d in f for d in _DATE_DIRECTIVES)]  # the user's time-only formats
    parts = [f"CAST(try_strptime({x}, {_list(own)}) AS TIME)"] if own else []
    parts += [
        f"CASE WHEN strlen({x}) <= 15 AND contains({x}, ':') AND NOT regexp_matches({x}, '[-/]') "
        f"THEN TRY_CAST({x} AS TIME) END",
        f"CASE WHEN regexp_full_match({x}, '0?\\.\\d{{3,}}|0') THEN TIME '00:00' + "
        f"to_seconds(CAST(round(CAST({x} AS DOUBLE) * 86400) AS BIGINT)) END",
        f"CAST(try_strptime({word}, {_list(TIME_FORMATS)}) AS TIME)",
        f"CASE WHEN regexp_matches({x}, '^(1899-12-3[01]|1900-01-0[01])[T ]') "
        f"THEN CAST(TRY_CAST({x} AS TIMESTAMP) AS TIME) END",
    ]
    return "coalesce(" + ", ".join(parts) + ")"


def date_time_sql(day: str, col: str, col_type: str | None, tz: str, formats: list[str]) -> str:
    """SQL: a TIMESTAMPTZ from the day ``day`` (a DATE expression) and the time of day in column ``col``, local
    to ``tz`` unless the cell ends with a zone word (WIB, WITA, WIT); NULL when either is unreadable. The plain
    forms (08:30, 08:30:00) go through one cast; only the rows it misses take the slow forms."""
    c = _ident(col)
    if col_type:  # a typed column (Parquet TIMESTAMP): its wall-clock time of day
        return local_sql(f"{day} + CAST(CAST({c} AS TIMESTAMP) AS TIME)", tz)
    x = f"NULLIF(trim({c}), '')"
    # (guarded: DuckDB casts a date such as 5/10/26 or 2026-10-05 to the TIME 00:00)
    fast = local_sql(f"{day} + CASE WHEN strlen({c}) <= 8 AND contains({c}, ':') THEN TRY_CAST({c} AS TIME) END", tz)
    branches = [f"WHEN {x} IS NULL OR {day} IS NULL THEN NULL"]
    for word, zone in _ZONES:
        stripped = f"rtrim(left({x}, length({x}) - {len(word)}))"
        zoned = local_sql(f"{day} + {time_of_day_sql(stripped, formats)}", zone)
        branches.append(f"WHEN {x} ILIKE '%{word}' THEN {zoned}")
    branches.append(f"ELSE {local_sql(f'{day} + {time_of_day_sql(x, formats)}', tz)}")
    return f"coalesce({fast}, CASE {' '.join(branches)} END)"


def trimmed_sql(x: str) -> str:
    """``NULLIF(trim(x), '')`` (SQL) at a third of its cost on 1M rows: trim() copies every string, so only
    those that may have something to trim get it. In ASCII text trim() removes spaces only; in other text
    Unicode spaces too (strlen counts bytes, length characters)."""
    return (f"CASE WHEN prefix({x}, ' ') OR suffix({x}, ' ') OR strlen({x}) <> length({x}) "
            f"THEN NULLIF(trim({x}), '') ELSE NULLIF({x}, '') END")


def norm_sql(expr: str) -> str:
    return f"lower(regexp_replace(trim({expr}), '\\s+', ' ', 'g'))"


def normalise_label(text: str) -> str:
    """An activity or role label as matched against the SOP: trimmed, single spaces, lower case."""
    return re.sub(r"\s+", " ", text.strip()).lower()


def step_labels(model: SopModel, mapping: Mapping | None) -> dict[str, str]:
    """Normalised activity label -> step id: step id, activity text, aliases, then the mapping's table."""
    labels: dict[str, str] = {}
    for step in model.steps:
        for text in [step.id, step.activity, *step.aliases]:
            labels.setdefault(normalise_label(text), step.id)
    ids = set(model.step_ids)
    for label, step_id in (mapping.activities if mapping else {}).items():
        if step_id not in ids:
            raise UserError(f"mapping: activities: {label!r} -> {step_id!r}, which is not a step of {model.id} "
                            f"(steps: {', '.join(model.step_ids)})",
                            pesan=f"pemetaan, bagian activities: {label!r} -> {step_id!r}, tetapi {step_id!r} bukan "
                                  f"langkah dari {model.id} (langkahnya: {', '.join(model.step_ids)})")
        labels[normalise_label(label)] = step_id
    return labels


def role_labels(model: SopModel | None, mapping: Mapping | None) -> dict[str, str]:
    """Normalised role text -> the SOP's role key: the key (also with spaces for ``_``), its label and aliases,
    then each part of a label that lists several performers (``Orang Tua/Wali``), then the mapping's table.

    Ingest stores the key of a role it recognises, else the normalised text; the run matches that text again
    with the same names (run.py), so an alias added to the SOP later counts without loading the file again."""
    labels: dict[str, str] = {}
    if model is not None:
        for key, role in model.roles.items():
            for text in [key, key.replace("_", " "), role.label, *role.aliases]:
                labels.setdefault(normalise_label(text), key)
        for key, role in model.roles.items():
            for part in role.label.split("/"):
                if part.strip():
                    labels.setdefault(normalise_label(part), key)
    for label, key in (mapping.roles if mapping else {}).items():
        labels[normalise_label(label)] = key
    return labels


def _unknown_roles_note(conn: duckdb.DuckDBPyConnection, batch_id: int, model: SopModel) -> list[str]:
    """A note naming the role texts of this batch that name no role of the SOP (the run flags their events
    ``wrong_role``), with how to teach them to Patuh. A text in fewer than ``PUBLIC_LABEL_CASES`` rows is
    counted, not shown: it may be a person's name typed into the role column, and the note reaches logs."""
    rows = conn.execute(
        f"SELECT role, count(*) FROM events WHERE batch_id = {batch_id} AND role IS NOT NULL "
        "AND NOT list_contains(?, role) GROUP BY role ORDER BY 2 DESC, 1", [list(model.roles)]).fetchall()
    if not rows:
        return []
    common = [(text, n) for text, n in rows if n >= PUBLIC_LABEL_CASES]
    shown = ", ".join(f"{text!r} ({n} rows)" for text, n in common[:5])
    shown += f" and {len(common) - 5} more" if len(common) > 5 else ""
    rare = len(rows) - len(common)
    if rare:
        shown += (" and " if shown else "") + (f"{rare} text(s) in fewer than {PUBLIC_LABEL_CASES} rows each (not "
                                               "shown: they may name a person; see the export's role column)")
    example = repr(common[0][0]) if common else "'TEXT'"
    return [f"role values that name no role of {model.id}: {shown}; their events count as wrong_role. If they are "
            "the SOP's roles, add them to the role's aliases in the SOP file (then run again; no reload needed) or "
            f"to the mapping (roles: {{{example}: ROLE}} and ingest --replace); the roles (ROLE) are: "
            f"{', '.join(model.roles)}"]


def end_steps(model: SopModel) -> list[str]:
    """Steps after which a case may end (their successors include ``END``)."""
    return [sid for sid, succ in model.successors().items() if END in succ]


def expand_inputs(paths: list[Path]) -> list[Path]:
    """The files to load: each file as given, each folder's exports (by name, not recursing).

    Hidden files and Excel's ``~$`` lock files are left out. A path that does not exist, or a folder with no
    export in it, is a :class:`UserError` before anything is loaded.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(EXPORT_SUFFIXES)
                           and not p.name.startswith((".", "~$")))
            if not found:
                raise UserError(f"{path}: a folder without exports ({', '.join(EXPORT_SUFFIXES)}); "
                                "give the files, or the folder they are in",
                                pesan=f"{path}: folder ini tidak berisi ekspor ({', '.join(EXPORT_SUFFIXES)}); "
                                      "berikan berkasnya, atau folder tempat berkas itu berada")
            files.extend(found)
        elif path.is_file():
            check_file_type(path)  # before anything is loaded
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder",
                            pesan=f"{path}: berkas atau folder tidak ditemukan")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Ingest
# ---------------------------------------------------------------------------------------------------


def _catalogue(catalogue: Any) -> Any:
    """``catalogue``, or the configured one when None."""
    if catalogue is not None:
        return catalogue
    from pipeline.config import get_settings
    from pipeline.sop import load_catalogue

    return load_catalogue(get_settings().catalogue_dir)


def _resolve_context(institution_id: str, sop_id: str | None, catalogue: Any,
                     calendars: Any) -> tuple[str, SopModel | None, Any]:
    """(the institution's time zone, the SOP model or None, the catalogue when it had to be read)."""
    if calendars is None:
        from pipeline.calendars import load_institutions
        from pipeline.config import get_settings

        calendars = load_institutions(get_settings().institutions_file)
    if institution_id not in calendars:
        raise UserError(f"unknown institution {institution_id!r}; known: {', '.join(sorted(calendars))} "
                        "(add it to sop_models/institutions.yaml)",
                        pesan=f"lembaga {institution_id!r} tidak dikenal; yang dikenal: {', '.join(sorted(calendars))} "
                              "(tambahkan ke sop_models/institutions.yaml)")
    tz = str(calendars[institution_id].timezone)
    model = None
    if sop_id is not None:
        catalogue = _catalogue(catalogue)
        model = catalogue.get(sop_id)  # an unknown id is a UserError
        if model.institution != institution_id:
            raise UserError(f"SOP {sop_id!r} belongs to {model.institution!r}, not {institution_id!r}; "
                            "pass the matching --institution",
                            pesan=f"SOP {sop_id!r} milik {model.institution!r}, bukan {institution_id!r}; "
                                  "berikan --institution yang sesuai")
        if not model.steps:
            raise UserError(f"SOP {sop_id!r} has no steps (a rules document); event logs need a procedure SOP",
                            pesan=f"SOP {sop_id!r} tidak memiliki langkah (dokumen aturan); log peristiwa memerlukan "
                                  "SOP prosedur")
    return tz, model, catalogue


def ingest_file(
    conn: duckdb.DuckDBPyConnection,
    path: Path | str,
    *,
    institution_id: str,
    sop_id: str | None = None,
    mapping: Mapping | Path | str | None = None,
    catalogue: Any = None,
    calendars: Any = None,
    progress: Progress | None = None,
    sheet: str | None = None,
    key: bytes | Secret | None = None,
    replace: bool = False,
) -> IngestResult:
    """Load one export as one batch (see the module docstring).

    ``catalogue`` is a :class:`pipeline.sop.Catalogue` and ``calendars`` the institutions mapping of
    :func:`pipeline.calendars.load_institutions`; both default to the configured catalogue. XES lifecycle
    pairing: within a case and activity, the n-th ``start`` (by time, then position) pairs with the
    n-th ``complete`` and gives it its ``ts_start``; other lifecycle rows (unpaired starts, schedule,
    suspend, ...) are not loaded and are counted in ``rows_lifecycle``. A log with no timestamp at all
    (pm4py's a12 test logs) keeps its order: ``ts_end`` is 1970-01-01 plus the event number in seconds.
    With ``replace``, a file loaded before (same sha256) is loaded again: its old batch is removed in the same
    transaction (see :func:`remove_batch`), e.g. after correcting the mapping. ``key`` (the installation's
    when None) must be the key the database was loaded with before (:func:`check_key`).
    """
    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file",
                        pesan=f"{path}: berkas tidak ditemukan")
    if isinstance(mapping, str | Path):
        mapping = load_mapping(Path(mapping))
    tz, model, catalogue = _resolve_context(institution_id, sop_id, catalogue, calendars)
    if mapping is not None and mapping.timezone:
        tz = mapping.timezone
    sha = file_sha256(path)
    found = conn.execute(
        "SELECT batch_id, format, rows_in, rows_loaded, rows_quarantined, rows_duplicate, rows_unknown_activity, "
        "coalesce(rows_lifecycle, 0), institution_id, coalesce(sop_id, ''), loaded_at FROM batches WHERE sha256 = ?",
        [sha]).fetchall()  # all: fetchone() leaves the result open, and an XLSX's register() then fails
    done = found[0] if found else None
    replaced = int(done[0]) if done is not None and replace else None
    if done is not None and not replace:
        origin = batch_origin(str(done[8]), done[9] or None, str(done[1]), done[10])
        note = (f"already loaded as batch {done[0]} (same sha256) {origin}: nothing to do; "
                f"'patuh ingest {path.name} --replace' loads it again")
        asked = (institution_id, model.id if model else "")
        if (done[8], done[9]) != asked:  # e.g. loaded first with the wrong --sop: say how to correct it
            note = (f"already loaded as batch {done[0]} (same sha256) {origin}, "
                    f"not for {asked[0]}, SOP {asked[1] or '(none)'}: nothing loaded; to move it, "
                    f"'patuh ingest {path.name} --replace' with the right --institution and --sop")
        return IngestResult(path.name, sha, str(done[1]), int(done[0]), skipped=True, rows_in=int(done[2]),
                            rows_loaded=int(done[3]), rows_quarantined=int(done[4]), rows_duplicate=int(done[5]),
                            rows_unknown_activity=int(done[6]), rows_lifecycle=int(done[7]), notes=[note])
    secret = resolve_key(key)
    key = secret.key
    check_key(conn, secret)  # before anything is read (a large file) or written

    wanted = set(mapping.columns.mapped().values()) if mapping else set()
    accept: Callable[[list[str]], bool] = (
        (lambda hs: mapping.columns.case_id in hs and mapping.columns.activity in hs) if mapping
        else _resolves)
    if progress:
        progress("membaca / reading", 0.0)
    source = open_source(conn, path, sheet=sheet or (mapping.sheet if mapping else None), wanted=wanted,
                         accept=accept, progress=progress)
    try:
        cols = resolve_columns(source.columns, mapping, path.name)
        # a header repeated in the export: the readers name the second copy '<name>_<n>' and the first is used
        twins = sorted({c for c in cols.values() for other in source.columns
                        if re.fullmatch(rf"{re.escape(c)}_\d+", other)})
        if twins:
            source.notes.append(f"the header has {', '.join(map(repr, twins))} twice (the second read as "
                                f"'{twins[0]}_<n>'): the first is used; rename one in the export if that is wrong")
        if "timestamp" not in cols and "end" not in cols and not source.ordinal_time:
            raise UserError(f"{path.name}: no timestamp column (columns: {', '.join(map(repr, source.columns[:12]))}); "
                            "name it timestamp (or ts_start and ts_end), or map it in a mapping file",
                            pesan=f"{path.name}: tidak ada kolom waktu (kolom: "
                                  f"{', '.join(map(repr, source.columns[:12]))}); beri kolom waktunya nama timestamp "
                                  "(atau ts_start dan ts_end), atau petakan di berkas pemetaan")
        while True:
            try:
                with vacuuming(conn, INGEST_TABLES), transaction(conn):
                    check_key(conn, secret, record=True)
                    if replaced is not None:
                        _remove_batch(conn, replaced, catalogue)
                    result = _load(conn, path, source, cols, institution_id, model, mapping, tz, key, sha, progress)
                break
            except _ReadAgain:
                continue  # the source now reads longer lines (see readers.WIDE_LINE_BYTES)
    finally:
        conn.execute("RESET disabled_optimizers")
        conn.execute("DROP VIEW IF EXISTS _patuh_v")
        conn.execute("DROP VIEW IF EXISTS _patuh_ok")
        conn.execute("DROP VIEW IF EXISTS _patuh_p")
        for t in ("_patuh_lc", "_patuh_p0", "_patuh_ids", "_patuh_steps", "_patuh_roles", "_patuh_aff", "_patuh_dup",
                  "_patuh_old", "_patuh_docs", "_patuh_status", "_patuh_lines"):
            conn.execute(f"DROP TABLE IF EXISTS {t}")
        source.close(conn)
    result.seconds = time.perf_counter() - t0
    result.notes = source.notes + result.notes
    if replaced is not None:
        result.notes.append(f"loaded again: batch {replaced} (the same file) was removed")
    if progress:
        progress("selesai / done", 1.0)
    return result


def batch_origin(institution_id: str, sop_id: str | None, fmt: str, loaded_at: Any) -> str:
    """Where and when a batch was loaded, for a note on loading its file again: "for smpn2-ngawi, SOP
    smpn2-ngawi/bk001-prosedur, on 2026-11-24 22:29 UTC" (a rule input: "..., rule input attendance, ...")."""
    what = f"SOP {sop_id}" if sop_id else f"rule input {fmt.rsplit('-', 1)[0]}" if "-" in fmt else "SOP (none)"
    when = f", on {loaded_at:%Y-%m-%d %H:%M} UTC" if loaded_at is not None else ""
    return f"for {institution_id}, {what}{when}"


def _resolves(headers: list[str]) -> bool:
    try:
        resolve_columns(headers, None, "")
        return True
    except UserError:
        return False


def _load(conn: duckdb.DuckDBPyConnection, path: Path, source: Source, cols: dict[str, str], institution_id: str,
          model: SopModel | None, mapping: Mapping | None, tz: str, key: bytes, sha: str,
          progress: Progress | None) -> IngestResult:
    name = path.name
    formats = mapping.formats() if mapping else []
    batch_id = int(conn.execute("SELECT nextval('batch_seq')").fetchall()[0][0])
    single = "timestamp" in cols
    end_col = cols.get("timestamp") or cols.get("end")
    start_col = None if single else cols.get("start")
    date_col = cols.get("date")  # the day, when the time columns hold the time of day only
    end_date_col = cols.get("end_date")  # the day an event ended, when not date's (a step over several days)

    def col_type(role: str) -> str:
        col = cols.get(role)
        return "" if col is None else source.types.get(col, "")

    def text(role: str) -> str:
        """The column as trimmed text, NULL when blank (per row: only for columns every row needs)."""
        col = cols.get(role)
        if col is None:
            return "NULL::VARCHAR"
        if col_type(role).endswith("[]"):
            return f"array_to_string({_ident(col)}, ';')"
        if col in source.types:
            return f"CAST({_ident(col)} AS VARCHAR)"
        return trimmed_sql(_ident(col))

    def raw(role: str) -> str:
        """The untouched source column (passed through the parse; turned into text for bad rows only)."""
        col = cols.get(role) if role != "start" or start_col else None
        return "NULL::VARCHAR" if col is None else _ident(col)

    def blank(role: str) -> str:
        """SQL: the pass-through column ``_r_<role>`` is missing (NULL, or blank text)."""
        if role not in cols or col_type(role):
            return f"_r_{role} IS NULL"
        return f"(_r_{role} IS NULL OR trim(_r_{role}) = '')"

    def bad_text(role: str) -> str:
        """Text of ``_r_<role>`` for the quarantine (evaluated for rejected rows only)."""
        if role not in cols or (role == "start" and not start_col):
            return "NULL::VARCHAR"
        if col_type(role).endswith("[]"):
            return f"array_to_string(_r_{role}, ';')"
        if col_type(role):
            return f"CAST(_r_{role} AS VARCHAR)"
        return f"NULLIF(trim(_r_{role}), '')"

    end_role = "timestamp" if single else "end"
    if source.ordinal_time and end_col is None:
        ts_end = "TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_seconds(__row)"
    else:
        assert end_col is not None
        end_day = ("__patuh_date" if not end_date_col
                   else "CASE WHEN __patuh_end_blank THEN __patuh_date ELSE __patuh_end_day END")
        ts_end = (date_time_sql(end_day, end_col, source.types.get(end_col), tz, formats) if date_col
                  else timestamp_sql(end_col, source.types.get(end_col), tz, formats))
    ts_start = "NULL::TIMESTAMPTZ" if not start_col else (
        date_time_sql("__patuh_date", start_col, source.types.get(start_col), tz, formats) if date_col
        else timestamp_sql(start_col, source.types.get(start_col), tz, formats))
    # the day is read once per row, for both times
    end_day_sql = "" if not end_date_col else (
        f", {date_sql(_ident(end_date_col), end_date_col in source.types, formats)} AS __patuh_end_day, "
        + (f"{_ident(end_date_col)} IS NULL" if end_date_col in source.types
           else f"NULLIF(trim({_ident(end_date_col)}), '') IS NULL") + " AS __patuh_end_blank")
    rows_sql = source.sql if not date_col else (
        f"(SELECT *, {date_sql(_ident(date_col), date_col in source.types, formats)} AS __patuh_date{end_day_sql} "
        f"FROM {source.sql})")
    # documents and status: the text per row; the list and the open/closed word are worked out once per
    # distinct text below (splitting 1M cells with list lambdas costs more than the rest of the parse)
    doc_col = cols.get("documents")
    docs_text = doc_col is not None and not col_type("documents").endswith("[]")
    documents = "NULL::VARCHAR[]" if doc_col is None else (text("documents") if docs_text else _ident(doc_col))
    status = text("status")
    if progress:
        progress("memeriksa / validating", 0.2)
    row_sql = "__row AS source_row, " if source.numbered else ""
    # one parallel pass: typed columns and a reason; the source's own values are passed through untouched
    # (_r_*) and turned into text only for the rejected rows (casting 1M timestamps to text is not free)
    parse = f"""
        SELECT {row_sql}{'__loc' if source.has_loc else 'NULL::VARCHAR'} AS loc,
               {text('case_id')} AS case_raw, {text('activity')} AS activity,
               {ts_end} AS ts_end, {ts_start} AS ts_start,
               {text('resource')} AS resource_raw, {text('role')} AS role_raw,
               {documents} AS documents, {status} AS status, lower({text('lifecycle')}) AS lifecycle,
               {raw(end_role)} AS _r_end, {raw('start')} AS _r_start, {raw('documents')} AS _r_documents,
               {raw('status')} AS _r_status, {raw('date')} AS _r_date, {raw('end_date')} AS _r_end_date
        FROM {rows_sql}"""
    lo, hi = "TIMESTAMPTZ '2000-01-01 00:00:00+00'", "now() + INTERVAL 5 MINUTE"
    range_check = "" if source.ordinal_time else (
        f"WHEN ts_end < {lo} OR ts_end > {hi} OR ts_start < {lo} OR ts_start > {hi} THEN 'out_of_range'")
    no_time = blank(end_role).replace(f"_r_{end_role}", "_r_end") + (f" OR {blank('date')}" if date_col else "")
    missing_ts = "" if source.ordinal_time else f"WHEN ts_end IS NULL AND ({no_time}) THEN 'missing_timestamp'"
    bad_start = "" if not start_col else f"WHEN ts_start IS NULL AND NOT {blank('start')} THEN 'bad_timestamp'"

    def when_bad(role: str, alias: str) -> str:
        expr = bad_text(role).replace(f"_r_{role}", alias)
        return f"CASE WHEN reason IS NOT NULL THEN {expr} END"

    try:
        # DuckDB's common-subexpression pass would hoist the slow date forms' trim() out of their lazy
        # coalesce branch and run it on every row (~15% of this statement); off for this statement only
        conn.execute("SET disabled_optimizers = 'common_subexpressions'")
        conn.execute(f"""
            CREATE TEMP TABLE _patuh_p0 AS
            SELECT * EXCLUDE (_r_end, _r_start, _r_documents, _r_status, _r_date, _r_end_date),
                   {when_bad(end_role, '_r_end')} AS end_text, {when_bad('start', '_r_start')} AS start_text,
                   {when_bad('documents', '_r_documents')} AS documents_text,
                   {when_bad('status', '_r_status')} AS status_text, {when_bad('date', '_r_date')} AS date_text,
                   {when_bad('end_date', '_r_end_date')} AS end_date_text
            FROM (
                SELECT *, CASE WHEN case_raw IS NULL THEN 'missing_case_id'
                               WHEN activity IS NULL OR activity = '' THEN 'missing_activity'
                               {missing_ts}
                               WHEN ts_end IS NULL THEN 'bad_timestamp'
                               {bad_start}
                               WHEN ts_start > ts_end THEN 'end_before_start'
                               {range_check}
                          END AS reason
                FROM ({parse}))""")
    except duckdb.Error as exc:  # the transaction is aborted: ingest_file resets the optimizer after rollback
        if isinstance(exc, duckdb.InterruptException):
            raise
        raise UserError(f"{name}: cannot read the file ({str(exc).splitlines()[0]}); export it again",
                        pesan=f"{name}: berkas tidak dapat dibaca ({str(exc).splitlines()[0]}); ekspor ulang "
                              "berkasnya") from None
    conn.execute("RESET disabled_optimizers")
    # a CSV's row numbers are positions: the table keeps the file's order (DuckDB preserves insertion
    # order) and numbering rows while reading (row_number() OVER ()) would force a single thread.
    # Rows written in this transaction have row ids from a large base: positions count from the first.
    first = ""
    if not source.numbered:
        lo_id, hi_id, n_rows = conn.execute("SELECT min(rowid), max(rowid), count(*) FROM _patuh_p0").fetchall()[0]
        if n_rows and hi_id - lo_id + 1 != n_rows:
            raise RuntimeError(f"{name}: row ids of the parsed rows are not contiguous")
        first = f"rowid - {lo_id or 0} + 1 AS source_row, "
    conn.execute(f"CREATE TEMP VIEW _patuh_p AS SELECT {first}* FROM _patuh_p0")
    if progress:
        progress("pseudonim / pseudonyms", 0.4)
    conn.execute(f"""
        CREATE TEMP TABLE _patuh_ids AS
        SELECT raw, {pseudonym_sql('raw', key)} AS pid FROM (
            SELECT DISTINCT case_raw AS raw FROM _patuh_p WHERE case_raw IS NOT NULL
            UNION SELECT DISTINCT resource_raw FROM _patuh_p WHERE resource_raw IS NOT NULL)""")

    # -- quarantine: a message naming file, row, column, expected form and fix; raw = mapped columns only
    col_of = {"missing_case_id": cols.get("case_id"), "missing_activity": cols.get("activity"),
              "missing_timestamp": end_col, "end_before_start": end_col, "out_of_range": end_col}
    fixes = {
        "missing_case_id": "every event needs its case number: fill it in or delete the row",
        "missing_activity": "every event needs its activity: fill it in or delete the row",
        "missing_timestamp": f"every event needs a date and time ({EXPECTED_DATES}): fill it in",
        "end_before_start": "the end is before the start: check the two times (day and month swapped?)",
        "out_of_range": "the date is before 2000 or in the future: check the year (and day/month order)",
    }
    perbaikan = {  # the same in Indonesian (the quarantine's pesan)
        "missing_case_id": "setiap kegiatan memerlukan nomor kasusnya: isi nomornya atau hapus baris ini",
        "missing_activity": "setiap kegiatan memerlukan nama kegiatannya: isi kegiatannya atau hapus baris ini",
        "missing_timestamp": f"setiap kegiatan memerlukan tanggal dan waktu ({_contoh(EXPECTED_DATES)}): isi keduanya",
        "end_before_start": "waktu selesai lebih awal dari waktu mulai: periksa kedua waktu itu (tanggal dan bulan "
                            "tertukar?)",
        "out_of_range": "tanggal sebelum tahun 2000 atau di masa depan: periksa tahunnya (dan urutan tanggal/bulan)",
    }
    rejects = source.rejects(conn)
    if any(r.too_long for r in rejects) and source.widen():
        raise _ReadAgain
    # a refused CSV row is named by its line in the file, as an editor or a spreadsheet shows it (its position
    # among the parsed records skips the header, blank lines and ragged lines)
    lines: dict[int, int] = {}
    if source.read_path is not None:
        refused = [int(r[0]) for r in conn.execute(
            "SELECT source_row FROM _patuh_p WHERE reason IS NOT NULL").fetchall()]
        lines, reject_lines = csv_record_lines(source.read_path, source.columns, refused, [r.line for r in rejects])
        for r in rejects:
            r.line = reject_lines.get(r.line, r.line)
    conn.register("_patuh_lines_arrow", pa.table({"pos": pa.array(list(lines), pa.int64()),
                                                  "line": pa.array(list(lines.values()), pa.int64())}))
    conn.execute("CREATE TEMP TABLE _patuh_lines AS SELECT * FROM _patuh_lines_arrow")
    conn.unregister("_patuh_lines_arrow")
    loc = f"coalesce(loc, 'line ' || ln.line, {sql_literal(source.row_word + ' ')} || source_row)"
    # the same place in Indonesian: "lembar 'Kasus' baris 7", "baris 12", "peristiwa 5" (XES)
    lokasi = (r"coalesce(regexp_replace(loc, '^sheet (.*) row ([0-9]+)$', 'lembar \1 baris \2'), 'baris ' || ln.line, "
              f"{sql_literal(_KATA_BARIS.get(source.row_word, 'baris') + ' ')} || source_row)")
    col_sql = {r: sql_literal(repr(c)) for r, c in col_of.items()}
    if date_col:
        fixes["end_before_start"] = (
            f"the end is before the start: check the two times and the days (columns {date_col!r} and "
            f"{end_date_col!r})" if end_date_col else
            "the end is before the start: check the two times (both are on the day in "
            f"column {date_col!r}; for steps that end on a later day, map that day's column as end_date)")
        fixes["missing_timestamp"] = f"every event needs its day (column {date_col!r}) and time: fill it in"
        perbaikan["end_before_start"] = (
            f"waktu selesai lebih awal dari waktu mulai: periksa kedua waktu dan tanggalnya (kolom {date_col!r} dan "
            f"{end_date_col!r})" if end_date_col else
            "waktu selesai lebih awal dari waktu mulai: periksa kedua waktu itu (keduanya pada tanggal di kolom "
            f"{date_col!r}; untuk langkah yang selesai pada hari berikutnya, petakan kolom tanggal selesainya "
            "sebagai end_date)")
        perbaikan["missing_timestamp"] = (f"setiap kegiatan memerlukan tanggalnya (kolom {date_col!r}) dan "
                                          "waktunya: isi keduanya")
        # a missing or impossible day is the date column's
        col_sql["missing_timestamp"] = (f"CASE WHEN date_text IS NULL THEN {sql_literal(repr(date_col))} "
                                        f"ELSE {col_sql['missing_timestamp']} END")
        col_sql["out_of_range"] = sql_literal(repr(date_col))
    # a date out of range is quoted as the file has it, in the column it is in (the start's or the end's)
    end_bad = f"(ts_end < {lo} OR ts_end > {hi})"
    value_sql = {"out_of_range": "p.date_text" if date_col
                 else f"CASE WHEN {end_bad} THEN p.end_text ELSE p.start_text END"}
    if start_col and not date_col:
        col_sql["out_of_range"] = (f"CASE WHEN {end_bad} THEN {col_sql['out_of_range']} "
                                   f"ELSE {sql_literal(repr(start_col))} END")
    def reason_messages(texts: dict[str, str], place: str, column: str) -> str:
        """SQL CASE branches: each reason's message (file, row, column, the value where known, the fix)."""
        return " ".join(
            f"WHEN {sql_literal(r)} THEN format('{{}}: {{}}: {column} {{}}: {{}}{{}}', {sql_literal(name)}, {place}, "
            f"{col_sql[r]}, " + (f"coalesce({value_sql[r]} || ': ', ''), " if r in value_sql else "'', ")
            + f"{sql_literal(text)})"
            for r, text in texts.items())

    msg_cases = reason_messages(fixes, loc, "column")
    kasus_pesan = reason_messages(perbaikan, lokasi, "kolom")
    bad_ts, bad_ts_pesan = _bad_time_message(name, loc, lokasi, cols, source.columns, formats)
    raw_pairs = [(cols["case_id"], "ci.pid"), (cols["activity"], "p.activity")]
    if date_col:
        raw_pairs.append((date_col, "p.date_text"))
    if end_date_col:
        raw_pairs.append((end_date_col, "p.end_date_text"))
    if end_col:
        raw_pairs.append((end_col, "p.end_text"))
    if start_col:
        raw_pairs.append((start_col, "p.start_text"))
    for role, expr in (("resource", "ri.pid"), ("role", "p.role_raw"), ("documents", "p.documents_text"),
                       ("status", "p.status_text"), ("lifecycle", "p.lifecycle")):
        if role in cols:
            raw_pairs.append((cols[role], expr))
    raw_json = "json_object(" + ", ".join(f"{sql_literal(c)}, {e}" for c, e in raw_pairs) + ")"
    conn.execute(f"""
        INSERT INTO quarantine (batch_id, source_row, reason, message, pesan, raw)
        SELECT {batch_id}, coalesce(ln.line, p.source_row), p.reason,
               CASE p.reason {msg_cases} WHEN 'bad_timestamp' THEN {bad_ts} END,
               CASE p.reason {kasus_pesan} WHEN 'bad_timestamp' THEN {bad_ts_pesan} END, {raw_json}
        FROM _patuh_p p LEFT JOIN _patuh_ids ci ON ci.raw = p.case_raw
        LEFT JOIN _patuh_ids ri ON ri.raw = p.resource_raw
        LEFT JOIN _patuh_lines ln ON ln.pos = p.source_row
        WHERE p.reason IS NOT NULL ORDER BY p.source_row""")
    quarantine_rejects(conn, batch_id, name, rejects)

    # -- documents lists and status words, once per distinct text; the rows that pass validation
    joins_ok: list[str] = []
    docs_sql = "p.documents"
    if docs_text:
        conn.execute("""
            CREATE TEMP TABLE _patuh_docs AS SELECT *, hash(l) AS lh FROM (
                SELECT k, list_filter(list_transform(regexp_split_to_array(k, CASE WHEN contains(k, ';') THEN ';'
                       ELSE ',' END), lambda d: trim(d)), lambda d: d <> '') AS l
                FROM (SELECT DISTINCT documents AS k FROM _patuh_p WHERE reason IS NULL AND documents IS NOT NULL))""")
        joins_ok.append("LEFT JOIN _patuh_docs dk ON dk.k = p.documents")
        docs_sql = "CASE WHEN p.documents IS NULL THEN []::VARCHAR[] ELSE dk.l END"
    status_sql = "NULL::VARCHAR"
    if "status" in cols:
        conn.execute(f"""
            CREATE TEMP TABLE _patuh_status AS
            SELECT k, CASE WHEN lower(k) IN ({', '.join(map(sql_literal, CLOSED_WORDS))}) THEN 'closed'
                           WHEN lower(k) IN ({', '.join(map(sql_literal, OPEN_WORDS))}) THEN 'open' END AS s
            FROM (SELECT DISTINCT status AS k FROM _patuh_p WHERE reason IS NULL AND status IS NOT NULL)""")
        joins_ok.append("LEFT JOIN _patuh_status sk ON sk.k = p.status")
        status_sql = "sk.s"
    # what the row hash sees: the same values, the list by its hash (no list copied per row)
    hash_sql = ROW_HASH.replace("documents", "coalesce(dk.lh, hash([]::VARCHAR[]))" if docs_text else "p.documents")
    hash_sql = hash_sql.replace("status", status_sql).replace("(case_raw", "(p.case_raw")
    hashed = f"SELECT p.source_row, {hash_sql} AS h FROM _patuh_p p {' '.join(joins_ok)} WHERE p.reason IS NULL"
    conn.execute(f"""
        CREATE TEMP VIEW _patuh_ok AS
        SELECT p.* REPLACE ({docs_sql} AS documents, {status_sql} AS status)
        FROM _patuh_p p {' '.join(joins_ok)} WHERE p.reason IS NULL""")

    # -- lifecycle pairing and duplicates
    if "lifecycle" in cols:
        conn.execute("""
            CREATE TEMP TABLE _patuh_lc AS
            WITH ok AS (SELECT * FROM _patuh_ok),
            lc AS (SELECT source_row, case_raw, activity, ts_end, coalesce(lifecycle, 'complete') AS kind,
                          row_number() OVER (PARTITION BY case_raw, activity, coalesce(lifecycle, 'complete')
                                             ORDER BY ts_end, source_row) AS k
                   FROM ok WHERE coalesce(lifecycle, 'complete') IN ('start', 'complete')),
            pairs AS (SELECT c.source_row, s.ts_end AS start_ts FROM lc c JOIN lc s
                      ON s.case_raw = c.case_raw AND s.activity = c.activity AND s.k = c.k
                      AND c.kind = 'complete' AND s.kind = 'start' AND s.ts_end <= c.ts_end)
            SELECT ok.* REPLACE (coalesce(ok.ts_start, pairs.start_ts) AS ts_start)
            FROM ok LEFT JOIN pairs USING (source_row)
            WHERE coalesce(ok.lifecycle, 'complete') = 'complete'""")
        conn.execute("CREATE TEMP VIEW _patuh_v AS SELECT * FROM _patuh_lc")
        hashed = f"SELECT source_row, {ROW_HASH} AS h FROM _patuh_v"  # ts_start changed by the pairing
    else:
        conn.execute("CREATE TEMP VIEW _patuh_v AS SELECT * FROM _patuh_ok")
    # exact duplicates within the file: a 64-bit hash of each row finds the candidates in one cheap
    # aggregate; only rows sharing a hash are compared column by column (a hash collision folds nothing).
    # The first row (lowest source_row) of each group of equal rows is kept.
    conn.execute(f"""
        CREATE TEMP TABLE _patuh_dup AS
        WITH hv AS ({hashed}),
        dup_rows AS (SELECT source_row FROM hv SEMI JOIN (SELECT h FROM hv GROUP BY h HAVING count(*) > 1) USING (h))
        SELECT source_row FROM (SELECT * FROM _patuh_v SEMI JOIN dup_rows USING (source_row))
        QUALIFY row_number() OVER (PARTITION BY case_raw, activity, ts_start, ts_end, resource_raw, role_raw,
                                                documents, status ORDER BY source_row) > 1""")
    if progress:
        progress("menulis / writing", 0.6)

    steps = step_labels(model, mapping) if model else {}
    roles = role_labels(model, mapping)
    conn.execute("CREATE TEMP TABLE _patuh_steps (label VARCHAR, step_id VARCHAR)")
    conn.execute("CREATE TEMP TABLE _patuh_roles (label VARCHAR, role_key VARCHAR)")
    if steps:
        conn.executemany("INSERT INTO _patuh_steps VALUES (?, ?)", [[k, v] for k, v in steps.items()])
    if roles:
        conn.executemany("INSERT INTO _patuh_roles VALUES (?, ?)", [[k, v] for k, v in roles.items()])
    sop_id = model.id if model else None
    # a log that belongs to no SOP gets sop_id '' in events as in cases (not NULL, which = never matches),
    # so both tables join on (institution_id, sop_id, case_id); coalesce() also finds events
    # loaded before this rule, when their sop_id was NULL
    sop_sql = sql_literal(sop_id or "")
    inst = sql_literal(institution_id)
    # exact duplicates of events already loaded (an export overlapping an earlier one) fold too; a new
    # database, or a batch whose cases are all new, needs no comparison at all
    conn.execute(f"""
        CREATE TEMP TABLE _patuh_old AS
        SELECT x.case_id, x.activity, x.ts_start, x.ts_end, x.resource, x.role, x.documents FROM events x
        SEMI JOIN _patuh_ids i ON i.pid = x.case_id
        WHERE x.institution_id = {inst} AND coalesce(x.sop_id, '') = {sop_sql}""")
    anti = "" if not _count(conn, "_patuh_old") else """
        ANTI JOIN _patuh_old x ON x.case_id = ci.pid AND x.activity = d.activity AND x.ts_end = d.ts_end
            AND x.ts_start IS NOT DISTINCT FROM d.ts_start AND x.resource IS NOT DISTINCT FROM ri.pid
            AND x.role IS NOT DISTINCT FROM rls.role AND x.documents IS NOT DISTINCT FROM d.documents"""
    # joins only for what the file has (each join on 1M rows costs about 0.1 s)
    with_sql: list[str] = []
    joins: list[str] = []
    if steps:
        with_sql.append(f"""acts AS (SELECT a.activity, s.step_id FROM (SELECT DISTINCT activity FROM _patuh_v) a
                      LEFT JOIN _patuh_steps s ON s.label = {norm_sql('a.activity')})""")
        joins.append("LEFT JOIN acts ON acts.activity = d.activity")
    if "role" in cols:
        with_sql.append(f"""rls AS (SELECT r.role_raw, coalesce(k.role_key, {norm_sql('r.role_raw')}) AS role
                FROM (SELECT DISTINCT role_raw FROM _patuh_v WHERE role_raw IS NOT NULL) r
                LEFT JOIN _patuh_roles k ON k.label = {norm_sql('r.role_raw')})""")
        joins.append("LEFT JOIN rls ON rls.role_raw = d.role_raw")
    if "resource" in cols:
        joins.append("LEFT JOIN _patuh_ids ri ON ri.raw = d.resource_raw")
    step_sql = "acts.step_id" if steps else "NULL::VARCHAR"
    role_sql = "rls.role" if "role" in cols else "NULL::VARCHAR"
    res_sql = "ri.pid" if "resource" in cols else "NULL::VARCHAR"
    if anti:
        anti = anti.replace("ri.pid", res_sql).replace("rls.role", role_sql)
    rows = ("_patuh_v" if not _count(conn, "_patuh_dup")
            else "(SELECT * FROM _patuh_v ANTI JOIN _patuh_dup USING (source_row))")
    conn.execute(f"""
        INSERT INTO events (institution_id, sop_id, case_id, activity, step_id, role, resource, documents,
                            ts_start, ts_end, batch_id, source_row, status)
        {'WITH ' + ', '.join(with_sql) if with_sql else ''}
        SELECT {inst}, {sop_sql}, ci.pid, d.activity, {step_sql}, {role_sql}, {res_sql}, d.documents,
               d.ts_start, d.ts_end, {batch_id}, d.source_row, d.status
        FROM {rows} d JOIN _patuh_ids ci ON ci.raw = d.case_raw
        {' '.join(joins)}{anti}""")
    loaded, unknown = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE step_id IS NULL) FROM events WHERE batch_id = {batch_id}"
    ).fetchall()[0]

    # -- cases: recompute every case this batch touched from all its events
    if progress:
        progress("kasus / cases", 0.8)
    conn.execute(f"CREATE TEMP TABLE _patuh_aff AS SELECT DISTINCT case_id FROM events WHERE batch_id = {batch_id}")
    # every case of the batch has events (this batch's): one row written per case
    cases_updated, n_aff, cases_open = _rebuild_cases(conn, institution_id, sop_id or "", model, "_patuh_aff")

    # -- counts and the batch row
    n_parsed = _count(conn, "_patuh_p0")
    by_reason = dict(conn.execute(
        "SELECT reason, count(*) FROM _patuh_p WHERE reason IS NOT NULL GROUP BY reason ORDER BY 2 DESC, 1").fetchall())
    if rejects:
        by_reason["ragged_line"] = len(rejects)
    n_valid = n_parsed - sum(v for k, v in by_reason.items() if k != "ragged_line")
    n_v = _count(conn, "_patuh_v")
    result = IngestResult(
        file=name, sha256=sha, format=source.format, batch_id=batch_id,
        rows_in=n_parsed + len(rejects), rows_loaded=int(loaded), rows_quarantined=sum(by_reason.values()),
        rows_duplicate=n_v - int(loaded), rows_lifecycle=n_valid - n_v,
        quarantined_by_reason={str(k): int(v) for k, v in by_reason.items()},
        rows_unknown_activity=int(unknown) if model else 0,
        cases_new=n_aff - cases_updated, cases_updated=cases_updated, cases_open=cases_open,
    )
    if source.rows_read is not None and source.rows_read != n_parsed:
        raise RuntimeError(f"{name}: the reader saw {source.rows_read} rows but {n_parsed} were parsed")
    total = result.rows_loaded + result.rows_quarantined + result.rows_duplicate + result.rows_lifecycle
    if result.rows_in != total:
        raise RuntimeError(f"{name}: row accounting does not add up ({result.rows_in} in, {total} accounted)")
    if model is not None and "role" in cols:
        result.notes += _unknown_roles_note(conn, batch_id, model)
    if source.ordinal_time:
        result.notes.append("no timestamps in this log: event order kept as 1970-01-01 + event number (seconds)")
    if not result.rows_in:
        result.notes.append("the file has its header but no rows: nothing loaded (an export of an empty period?)")
    # the zone the file's times without one were read in, and whose it was (batches.zone_changes)
    mapping_json = {"columns": cols, "timezone": tz, "timezone_of": "mapping" if mapping and mapping.timezone
                    else "institution", "date_formats": formats, "ordinal_time": source.ordinal_time,
                    "drop": mapping.drop if mapping else []}
    conn.execute(
        "INSERT INTO batches (batch_id, source_file, sha256, institution_id, sop_id, format, loaded_at, rows_in, "
        "rows_loaded, rows_quarantined, rows_duplicate, rows_unknown_activity, rows_lifecycle, mapping) "
        "VALUES (?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
        [batch_id, name, sha, institution_id, sop_id, source.format, result.rows_in, result.rows_loaded,
         result.rows_quarantined, result.rows_duplicate, result.rows_unknown_activity, result.rows_lifecycle,
         json.dumps(mapping_json)])
    return result


# Indonesian for the quarantine's pesan: where a row is (readers' row_word) and the examples of EXPECTED_*
_KATA_BARIS = {"row": "baris", "event": "peristiwa"}


def _contoh(examples: str) -> str:
    """``EXPECTED_DATES`` and the like ("e.g. 2020-01-16, ...") in Indonesian ("seperti 2020-01-16, ...")."""
    return "seperti " + examples.removeprefix("e.g. ")


def _bad_time_message(name: str, loc: str, lokasi: str, cols: dict[str, str], headers: list[str],
                      formats: list[str]) -> tuple[str, str]:
    """SQL: the quarantine message of a ``bad_timestamp`` row of ``_patuh_p`` (file, row, column, value, what
    was expected, how to fix it), in English (row ``loc``) and Indonesian (row ``lokasi``). A time of day alone,
    with no date column mapped, asks for the date column."""
    from pipeline.mapping import guess_date_column

    end_col = cols.get("timestamp") or cols.get("end")
    date_col, start_col = cols.get("date"), None if "timestamp" in cols else cols.get("start")
    column = (f"CASE WHEN ts_end IS NULL THEN {sql_literal(repr(end_col))} "
              f"ELSE {sql_literal(repr(start_col))} END")
    text = "CASE WHEN ts_end IS NULL THEN end_text ELSE start_text END"
    head, kepala = f"{sql_literal(name)}, {loc}", f"{sql_literal(name)}, {lokasi}"
    if date_col:
        day = sql_literal(repr(date_col))
        end_day = "" if not cols.get("end_date") else (
            f"WHEN end_date_text IS NOT NULL AND {date_sql('end_date_text', False, formats)} IS NULL "
            f"THEN format('{{}}: {{}}: column {{}}: ''{{}}'' is not a date; expected {EXPECTED_DAYS} (or set "
            f"date_formats in the mapping file), or leave it blank for an event that ended on its first day; fix "
            f"the cell', {head}, {sql_literal(repr(cols['end_date']))}, end_date_text) ")
        hari_akhir = "" if not cols.get("end_date") else (
            f"WHEN end_date_text IS NOT NULL AND {date_sql('end_date_text', False, formats)} IS NULL "
            f"THEN format('{{}}: {{}}: kolom {{}}: ''{{}}'' bukan tanggal; gunakan bentuk {_contoh(EXPECTED_DAYS)} "
            f"(atau atur date_formats di berkas pemetaan), atau kosongkan untuk kegiatan yang selesai pada hari "
            f"mulainya; perbaiki selnya', {kepala}, {sql_literal(repr(cols['end_date']))}, end_date_text) ")
        return ((f"CASE {end_day}WHEN {date_sql('date_text', False, formats)} IS NULL "
                 f"THEN format('{{}}: {{}}: column {{}}: ''{{}}'' is not a date; expected {EXPECTED_DAYS} (or set "
                 f"date_formats in the mapping file); fix the cell', {head}, {day}, date_text) "
                 f"ELSE format('{{}}: {{}}: column {{}}: ''{{}}'' is not a time of day; the mapping takes the day from "
                 f"column {{}}, so this column holds the time only ({EXPECTED_TIMES}); fix the cell, or, if the "
                 f"column holds the date and the time, remove ''date'' from the mapping', {head}, {column}, {text}, "
                 f"{day}) END"),
                (f"CASE {hari_akhir}WHEN {date_sql('date_text', False, formats)} IS NULL "
                 f"THEN format('{{}}: {{}}: kolom {{}}: ''{{}}'' bukan tanggal; gunakan bentuk "
                 f"{_contoh(EXPECTED_DAYS)} (atau atur date_formats di berkas pemetaan); perbaiki selnya', "
                 f"{kepala}, {day}, date_text) "
                 f"ELSE format('{{}}: {{}}: kolom {{}}: ''{{}}'' bukan jam; pemetaan mengambil tanggal dari "
                 f"kolom {{}}, jadi kolom ini hanya berisi jam ({_contoh(EXPECTED_TIMES)}); perbaiki selnya, atau, "
                 f"jika kolom ini berisi tanggal dan jam, hapus ''date'' dari pemetaan', {kepala}, {column}, "
                 f"{text}, {day}) END"))
    guess = guess_date_column(headers, set(cols.values()))
    add = sql_literal(f"date: {guess}" if guess else "date: <the column with the day>")
    tambah = sql_literal(f"date: {guess}" if guess else "date: <kolom yang berisi tanggal>")
    return ((f"CASE WHEN regexp_full_match(lower({text}), {sql_literal(TIME_OF_DAY)}) "
             f"THEN format('{{}}: {{}}: column {{}}: ''{{}}'' is a time of day without a date; map the column "
             f"with the day too: add ''{{}}'' under columns in the mapping file (patuh map suggest FILE writes one), "
             f"then load the file again with --replace', {head}, {column}, {text}, {add}) "
             f"ELSE format('{{}}: {{}}: column {{}}: ''{{}}'' is not a date and time; expected {EXPECTED_DATES} "
             f"(or set date_formats in a mapping file); fix the cell', {head}, {column}, {text}) END"),
            (f"CASE WHEN regexp_full_match(lower({text}), {sql_literal(TIME_OF_DAY)}) "
             f"THEN format('{{}}: {{}}: kolom {{}}: ''{{}}'' adalah jam tanpa tanggal; petakan juga kolom "
             f"tanggalnya: tambahkan ''{{}}'' di bawah columns dalam berkas pemetaan (patuh map suggest FILE "
             f"menuliskannya), lalu muat ulang berkas dengan --replace', {kepala}, {column}, {text}, {tambah}) "
             f"ELSE format('{{}}: {{}}: kolom {{}}: ''{{}}'' bukan tanggal dan waktu; gunakan bentuk "
             f"{_contoh(EXPECTED_DATES)} (atau atur date_formats di berkas pemetaan); perbaiki selnya', {kepala}, "
             f"{column}, {text}) END"))


def remove_batch(conn: duckdb.DuckDBPyConnection, batch_id: int, *, catalogue: Any = None) -> RemovedBatch:
    """Take a loaded file out again, in one transaction: its events, quarantined rows and rule-input rows go,
    the cases it touched are recomputed from the events left (a case with none left goes), ``batch_removals``
    keeps what was removed, and the next compliance run is a full one. The file can then be loaded again."""
    with vacuuming(conn, INGEST_TABLES), transaction(conn):
        return _remove_batch(conn, batch_id, catalogue)


def _remove_batch(conn: duckdb.DuckDBPyConnection, batch_id: int, catalogue: Any) -> RemovedBatch:
    from pipeline.batches import require_batch
    from pipeline.rule_inputs import INPUTS

    require_batch(conn, batch_id)
    name, institution_id, sop_id = conn.execute(
        "SELECT source_file, institution_id, sop_id FROM batches WHERE batch_id = ?", [batch_id]).fetchall()[0]
    model = _catalogue(catalogue).models.get(sop_id) if sop_id else None
    conn.execute("CREATE OR REPLACE TEMP TABLE _patuh_removed AS SELECT DISTINCT case_id FROM events "
                 "WHERE batch_id = ?", [batch_id])
    try:
        had = _count(conn, "_patuh_removed")
        events = int(conn.execute("DELETE FROM events WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
        quarantined = int(conn.execute("DELETE FROM quarantine WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
        rule_rows = sum(int(conn.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id]).fetchall()[0][0])
                        for table in sorted({spec.table for spec in INPUTS.values()}))
        left = _rebuild_cases(conn, institution_id, sop_id or "", model, "_patuh_removed")[1]
    finally:
        conn.execute("DROP TABLE IF EXISTS _patuh_removed")
    conn.execute("INSERT INTO batch_removals SELECT batch_id, source_file, sha256, institution_id, sop_id, loaded_at, "
                 "rows_loaded, now() FROM batches WHERE batch_id = ?", [batch_id])
    conn.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
    return RemovedBatch(batch_id, str(name), str(institution_id), sop_id, events, quarantined, rule_rows,
                        cases_rebuilt=left, cases_removed=had - left)


def _rebuild_cases(conn: duckdb.DuckDBPyConnection, institution_id: str, sop_id: str, model: SopModel | None,
                   affected: str) -> tuple[int, int, int]:
    """Recompute the ``cases`` rows of the case ids in table ``affected`` from all their events (a case without
    events left has no row); returns (cases that had a row before, cases written, of which open)."""
    inst, sop_sql = sql_literal(institution_id), sql_literal(sop_id)
    cases_updated = int(conn.execute(f"""
        DELETE FROM cases c WHERE c.institution_id = {inst} AND c.sop_id = {sop_sql}
        AND c.case_id IN (SELECT case_id FROM {affected})""").fetchall()[0][0])
    ends = _list(end_steps(model)) if model else "[]"
    # without a recorded status, a case whose last SOP step may end it is closed: activities outside the SOP
    # after it (a follow-up, a note) do not reopen it, else it stayed open for ever and, waiting for nothing
    # but closure, was never judged stalled either
    rule = (f"CASE WHEN list_contains({ends}, last_mapped_step) THEN 'closed' ELSE 'open' END"
            if model else "'closed'")
    # the last event (by time, then batch and row) gives the step; the last recorded status wins.
    # One HUGEINT orders them (time in the high 64 bits; batch ids < 2^24, rows < 2^40): cheaper than a struct
    last = ("((epoch_us(x.ts_end)::HUGEINT << 64) + (x.batch_id::HUGEINT << 40) + x.source_row)")
    written = conn.execute(f"""
        INSERT INTO cases (institution_id, sop_id, case_id, opened_at, closed_at, status, n_events, last_at,
                           last_step_id)
        WITH agg AS (
            SELECT x.case_id, min(coalesce(x.ts_start, x.ts_end)) AS opened_at, max(x.ts_end) AS last_at,
                   count(*) AS n, arg_max(x.step_id, {last}) AS last_mapped_step,
                   arg_max(x.status, {last}) AS last_status
            FROM events x SEMI JOIN {affected} a ON a.case_id = x.case_id
            WHERE x.institution_id = {inst} AND coalesce(x.sop_id, '') = {sop_sql}
            GROUP BY x.case_id)
        SELECT {inst}, {sop_sql}, case_id, opened_at,
               CASE WHEN coalesce(last_status, {rule}) = 'closed' THEN last_at END,
               coalesce(last_status, {rule}), n, last_at, last_mapped_step
        FROM agg""").fetchall()[0][0]
    cases_open = int(conn.execute(f"""
        SELECT count(*) FROM cases c SEMI JOIN {affected} a ON a.case_id = c.case_id
        WHERE c.institution_id = {inst} AND c.sop_id = {sop_sql} AND c.status = 'open'""").fetchall()[0][0])
    return cases_updated, int(written), cases_open


def _count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
