"""Column mapping files: which export column is the case id, the activity, the time, ...

A mapping is a small YAML file the user reviews (``patuh map suggest`` writes a first draft)::

    columns: {case_id: No Kasus, activity: Kegiatan, timestamp: Tanggal, resource: Petugas}
    # or, when the day and the time of day are in separate columns (Tanggal 05/10/2026, Mulai 08:00):
    # columns: {case_id: No Kasus, activity: Kegiatan, date: Tanggal, start: Mulai, end: Selesai}
    # and for steps that end on a later day, the end's day too: end_date: Tanggal Selesai
    drop: [Nama Siswa, Catatan]          # names and free text: never read into the database
    date_formats: ["dd/mm/yyyy HH:MM"]   # optional; ISO, dd/mm/yyyy, Indonesian months are understood
    timezone: Asia/Makassar              # optional; default: the institution's
    activities: {"Panggil siswa": s3}    # optional; exported label -> SOP step id
    sheet: Kasus                          # optional (XLSX)

Without a mapping, Patuh's own column names and pm4py/XES names are understood (:data:`CANONICAL`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config import PUBLIC_LABEL_CASES
from pipeline.errors import UserError, read_text_file, validation_errors, yaml_error
from pipeline.sop import SopModel, read_yaml

# role -> accepted column names, in order of preference (exact name first, then case-insensitive)
CANONICAL: dict[str, list[str]] = {
    "case_id": ["case_id", "case:concept:name"],
    "activity": ["concept:name", "activity"],
    "timestamp": ["timestamp", "time:timestamp"],
    "start": ["ts_start", "start_timestamp"],
    "end": ["ts_end"],
    "resource": ["org:resource", "resource"],
    "role": ["org:role", "role"],
    "documents": ["documents"],
    "status": ["status", "case:status"],
    "lifecycle": ["lifecycle:transition"],
}

_HUMAN_FORMAT = [  # human date patterns -> strptime directives (longest first)
    ("yyyy", "%Y"), ("dd", "%d"), ("mm", "%m"), ("HH", "%H"), ("MM", "%M"), ("SS", "%S"), ("yy", "%y"),
]


def to_strptime(fmt: str) -> str:
    """``dd/mm/yyyy HH:MM`` -> ``%d/%m/%Y %H:%M``; a format that already has ``%`` is kept."""
    if "%" in fmt:
        return fmt
    out = fmt
    for human, directive in _HUMAN_FORMAT:
        out = out.replace(human, directive)
    return out


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str
    activity: str
    date: str | None = None  # the day, when timestamp/start/end hold only the time of day
    end_date: str | None = None  # the day an event ended, when not the day in ``date`` (blank: the same day)
    timestamp: str | None = None
    start: str | None = None
    end: str | None = None
    resource: str | None = None
    role: str | None = None
    documents: str | None = None
    status: str | None = None
    lifecycle: str | None = None

    @model_validator(mode="after")
    def _end_date_needs_date(self) -> Columns:
        if self.end_date and not self.date:
            raise ValueError("end_date is the day an event ended, beside date (the day it started) and the times "
                             "of day in start/end or timestamp: map date too, or leave end_date out")
        return self

    def mapped(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class Mapping(BaseModel):
    """A reviewed column mapping (strict: an unknown key is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    columns: Columns
    drop: list[str] = Field(default_factory=list)
    date_format: str | None = None
    date_formats: list[str] = Field(default_factory=list)
    timezone: str | None = None
    activities: dict[str, str] = Field(default_factory=dict)
    roles: dict[str, str] = Field(default_factory=dict)
    sheet: str | None = None

    @field_validator("drop", mode="before")
    @classmethod
    def _no_drop(cls, value: Any) -> Any:
        return [] if value is None else value  # map suggest's "drop:   # ... (none found)"

    @field_validator("activities", "roles", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        if value is None:  # a table whose every line is commented out (map suggest's "???" lines)
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value

    def formats(self) -> list[str]:
        return [to_strptime(f) for f in ([self.date_format] if self.date_format else []) + self.date_formats]

    def check(self, where: str) -> None:
        c = self.columns
        if not c.timestamp and not c.end:
            if c.date:
                raise UserError(f"{where}: columns has 'date: {c.date}' but no time column; add the column with the "
                                "time of day as 'timestamp' (or 'start' and 'end'), or, when the export has the day "
                                f"only, write 'timestamp: {c.date}' instead of 'date: {c.date}'",
                                pesan=f"{where}: bagian columns berisi 'date: {c.date}' tetapi tidak ada kolom jam; "
                                      "tambahkan kolom jam sebagai 'timestamp' (atau 'start' dan 'end'), atau, bila "
                                      "ekspor hanya berisi tanggal, tulis "
                                      f"'timestamp: {c.date}' sebagai ganti 'date: {c.date}'")
            raise UserError(f"{where}: columns needs 'timestamp' (one time per event) or 'start' and 'end'",
                            pesan=f"{where}: bagian columns memerlukan 'timestamp' (satu waktu per peristiwa) atau "
                                  "'start' dan 'end'")
        if c.timestamp and (c.start or c.end):
            raise UserError(f"{where}: columns has both 'timestamp' and 'start'/'end'; keep one of the two forms",
                            pesan=f"{where}: bagian columns berisi 'timestamp' sekaligus 'start'/'end'; pakai salah "
                                  "satu bentuk saja")
        if c.date:
            times = {role: getattr(c, role) for role in ("timestamp", "start", "end") if getattr(c, role)}
            same = [role for role, name in times.items() if name == c.date]
            if same:
                raise UserError(f"{where}: columns maps {c.date!r} as both 'date' and {same[0]!r}; 'date' is the "
                                f"column with the day, {same[0]!r} the one with the time of day (when one column "
                                f"holds both, map it as {same[0]!r} alone and remove 'date')",
                                pesan=f"{where}: bagian columns memetakan {c.date!r} sebagai 'date' sekaligus "
                                      f"{same[0]!r}; 'date' adalah kolom tanggal, {same[0]!r} kolom jam (bila satu "
                                      f"kolom berisi keduanya, petakan hanya sebagai {same[0]!r} dan hapus 'date')")
        overlap = set(c.mapped().values()) & set(self.drop)
        if overlap:
            raise UserError(f"{where}: column(s) {sorted(overlap)} are both mapped and in 'drop'; choose one",
                            pesan=f"{where}: kolom {sorted(overlap)} dipetakan sekaligus tercantum di 'drop'; pilih "
                                  "salah satu")
        given = ([self.date_format] if self.date_format else []) + self.date_formats
        for text, fmt in zip(given, self.formats(), strict=True):
            if not _is_date_format(fmt):
                raise UserError(f"{where}: date format {text!r} is not a date format; write it like "
                                "'dd/mm/yyyy HH:MM' (or with strptime codes such as %d/%m/%Y %H:%M)",
                                pesan=f"{where}: format tanggal {text!r} tidak valid; tulis seperti 'dd/mm/yyyy HH:MM' "
                                      "(atau dengan kode strptime seperti %d/%m/%Y %H:%M)")


def _is_date_format(fmt: str) -> bool:
    """Whether DuckDB's strptime takes ``fmt`` (an unknown directive fails the whole load otherwise)."""
    if "%" not in fmt:
        return False
    probe = duckdb.connect()
    try:
        probe.execute("SELECT try_strptime('2000-01-01', ?)", [fmt]).fetchall()
        return True
    except duckdb.Error:
        return False
    finally:
        probe.close()


def load_mapping(path: Path) -> Mapping:
    """Read and validate a mapping file; a problem is a :class:`UserError` naming the file and field."""
    try:
        data = read_yaml(read_text_file(path, "mapping file", "berkas pemetaan"))
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise validation_errors(path, exc.errors(), "see README, 'patuh map suggest'",
                                "lihat README, 'patuh map suggest'") from None
    mapping.check(str(path))
    return mapping


def resolve_columns(headers: list[str], mapping: Mapping | None, where: str) -> dict[str, str]:
    """Role -> source column. With a mapping every named column must exist; without, canonical names."""
    if mapping is not None:
        cols = mapping.columns.mapped()
        missing = [f"{role}: {name!r}" for role, name in cols.items() if name not in headers]
        if missing:
            raise UserError(f"{where}: the mapping names column(s) not in the file ({', '.join(missing)}); "
                            f"the file has {', '.join(map(repr, headers[:12]))}",
                            pesan=f"{where}: pemetaan menyebut kolom yang tidak ada di berkas ({', '.join(missing)}); "
                                  f"kolom di berkas: {', '.join(map(repr, headers[:12]))}")
        return cols
    found: dict[str, str] = {}
    lower = {h.lower().strip(): h for h in reversed(headers)}
    for role, names in CANONICAL.items():
        hit = next((n for n in names if n in headers), None)
        if hit is None:
            hit = next((lower[n] for n in names if n in lower), None)
        if hit is not None and hit not in found.values():
            found[role] = hit
    if "timestamp" in found and "end" in found:
        del found["timestamp"]
    elif "timestamp" in found and "start" in found:  # pm4py's time:timestamp + start_timestamp: an interval
        found["end"] = found.pop("timestamp")
    if "timestamp" not in found and "end" not in found and "start" in found:
        found["timestamp"] = found.pop("start")
    need = [r for r in ("case_id", "activity") if r not in found]
    if need:
        raise UserError(
            f"{where}: no {' or '.join(need)} column found (columns: {', '.join(map(repr, headers[:12]))}); "
            "name them case_id, activity, timestamp (or pm4py's case:concept:name, concept:name, time:timestamp), "
            "or write a mapping: patuh map suggest FILE --sop ID > map.yaml",
            pesan=f"{where}: kolom {' atau '.join(need)} tidak ditemukan "
                  f"(kolom: {', '.join(map(repr, headers[:12]))}); "
                  "beri kolom-kolomnya nama case_id, activity, timestamp "
                  "(atau nama dari pm4py: case:concept:name, concept:name, time:timestamp), "
                  "atau buat pemetaan: patuh map suggest FILE --sop ID > map.yaml"
        )
    return found


# ---------------------------------------------------------------------------------------------------
# Suggesting a mapping from a file's headers
# ---------------------------------------------------------------------------------------------------

_HEADER_RULES: list[tuple[str, str]] = [  # (regex on the normalised header, role); first match wins
    (r"^(nama|name)\b|\bnama\b|nisn?\b|\bnik\b|catatan|keterangan|\bnote|\bcomment|uraian|alamat|telepon|hp\b", "drop"),
    (r"^(no\.?|nomor|nomer|id|kode)\s*(kasus|perkara|tiket|pengaduan|layanan|berkas|registrasi|register|reg\.?|permohonan)|^case\s*(id|no)|^case$|"
     r"^(id|no)\s*case|^kasus(\s*(no\.?|nomor|id|ke))?$", "case_id"),
    (r"^(kegiatan|aktivitas|aktifitas|langkah|tahap|tahapan|activity|step|task)", "activity"),
    (r"(waktu|tanggal|tgl|jam)\s*(mulai|awal)|^mulai$|^start|^begin", "start"),
    (r"(waktu|tanggal|tgl|jam)\s*(selesai|akhir)|^selesai$|^end\b|^finish|^complete", "end"),
    # a column with the day only ("Tanggal"), and one with the time of day only ("Jam"): joined when both exist
    (r"^(hari\s*[/,]?\s*)?(tanggal|tgl\.?)(\s+(kegiatan|kejadian|pelaksanaan|layanan|konseling|kasus))?$|^date$",
     "date"),
    (r"^(jam|pukul|waktu|time)(\s+(kegiatan|kejadian|pelaksanaan|layanan|konseling))?$", "time"),
    (r"^(tanggal|tgl|waktu|time|timestamp|date|jam)", "timestamp"),
    (r"^(peran|jabatan|role|bagian)", "role"),
    (r"^(pelaksana|petugas|pegawai|resource|user|operator|oleh)", "resource"),
    (r"kelengkapan|dokumen|berkas|document|persyaratan", "documents"),
    (r"^(status|keadaan|state)", "status"),
]
# a time of day as written in a cell (08:00, 8.30, 14:05:00, 2:05 pm, 08:00 WIB, pukul 08.00), lower case; also
# matched in SQL (ingest.py: the message for a time without a date), so only syntax Python and RE2 share
TIME_OF_DAY = r"((pukul|pkl|jam)\.?\s*)?\d{1,2}[:.]\d{2}([:.]\d{2}([.,]\d+)?)?(\s*[ap]\.?m\.?)?(\s*(wib|wita|wit))?"
# a cell holding a time of day only: the above, or a time on Excel's day zero (1899-12-30 08:00:00)
TIME_ONLY = re.compile(TIME_OF_DAY + r"|(1899-12-3[01]|1900-01-0[01])[t ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?",
                       re.IGNORECASE)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_:]+", " ", text)).strip().lower()


def _holds_times_only(header: str, samples: dict[str, list[str]] | None) -> bool:
    """Whether column ``header`` holds the time of day only: from its values when the file has any (most of
    them look like 08:00), else from its name (Jam, Mulai, but not Tanggal mulai)."""
    values = [v.strip() for v in (samples or {}).get(header, []) if v and v.strip()]
    if values:
        return 2 * sum(bool(TIME_ONLY.fullmatch(v)) for v in values) > len(values)
    return not re.search(r"tanggal|tgl|date|timestamp", _norm(header))


_DAY_ONLY = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}( 00:00(:00)?)?|\d{1,2} [a-z]+\.? \d{4}", re.IGNORECASE)


def _day_columns(headers: list[str], samples: dict[str, list[str]] | None) -> dict[str, str]:
    """"start"/"end" -> a "Tanggal Mulai" / "Tanggal Selesai" column whose values are days only (a step's days
    beside "Jam Mulai"/"Jam Selesai"); none without samples, so that a full date-time column stays a time."""
    found: dict[str, str] = {}
    for header in headers:
        match = re.fullmatch(r"(tanggal|tgl\.?)\s*(mulai|awal|selesai|akhir)", _norm(header))
        values = [v.strip() for v in (samples or {}).get(header, []) if v and v.strip()]
        if match and values and 2 * sum(bool(_DAY_ONLY.fullmatch(v)) for v in values) > len(values):
            found.setdefault("start" if match[2] in ("mulai", "awal") else "end", header)
    return found


def guess_date_column(headers: list[str], taken: Collection[str] = ()) -> str | None:
    """A header that looks like a column with the day (Tanggal, Tgl, Date), not already in ``taken``."""
    date_rule = next(rx for rx, role in _HEADER_RULES if role == "date")
    return next((h for h in headers if h not in taken and re.search(date_rule, _norm(h))), None)


def suggest_columns(headers: list[str], samples: dict[str, list[str]] | None = None
                    ) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """Guess each header's role from its name (and, for date and time columns, from ``samples`` of its values).
    Returns (role -> header, headers to drop, headers left unmapped, notes for the reviewer)."""
    roles: dict[str, str] = {}
    drop: list[str] = []
    unmapped: list[str] = []
    notes: list[str] = []
    canonical = resolve_canonical_quiet(headers)
    days = _day_columns(headers, samples)  # Tanggal Mulai / Tanggal Selesai holding days, beside Jam columns
    for header in headers:
        if header in canonical.values() or header in days.values():
            continue
        norm = _norm(header)
        role = next((r for rx, r in _HEADER_RULES if re.search(rx, norm)), None)
        if role == "drop":
            drop.append(header)
        elif role is not None and role not in roles:
            roles[role] = header
        else:
            unmapped.append(header)
    roles = {**canonical, **{k: v for k, v in roles.items() if k not in canonical}}
    date, time = roles.pop("date", None) or days.get("start"), roles.pop("time", None)
    if time is not None:  # "Jam" / "Waktu": the event's time, unless start and end columns give it
        if "timestamp" in roles or "start" in roles or "end" in roles:
            unmapped.append(time)
        else:
            roles["timestamp"] = time
    if "start" in roles and "end" not in roles and "timestamp" not in roles:
        roles["timestamp"] = roles.pop("start")
    if "end" in roles and "start" not in roles and "timestamp" not in roles:
        roles["timestamp"] = roles.pop("end")
    if "timestamp" in roles and ("start" in roles or "end" in roles):
        unmapped.append(roles.pop("timestamp"))
    times = [roles[r] for r in ("timestamp", "start", "end") if r in roles]
    time_only = bool(times) and all(_holds_times_only(t, samples) for t in times)
    if date is not None:
        if not times:
            roles["timestamp"] = date  # the day (and maybe the time) in one column
        elif time_only:
            roles["date"] = date  # Tanggal + Mulai/Selesai (or + Jam): joined at ingest
            if "end" in days:  # a step may end on a later day (Tanggal Selesai)
                roles["end_date"] = days["end"]
        else:
            unmapped.append(date)
    elif time_only and "timestamp" not in canonical and "end" not in canonical:
        which = f"column {times[0]!r} holds" if len(times) == 1 else f"columns {', '.join(map(repr, times))} hold"
        notes.append(f"{which} the time of day only and no date column was found: add the column with the day "
                     "as 'date: COLUMN' under columns (without it every row is quarantined)")
    unmapped += [h for h in days.values() if h not in roles.values() and h not in unmapped]
    if "role" not in roles and "resource" in roles and re.search(r"pelaksana", _norm(roles["resource"])):
        roles["role"] = roles.pop("resource")  # "Pelaksana" is the SOP's performer lane: a role, not a person
    return roles, drop, unmapped, notes


def resolve_canonical_quiet(headers: list[str]) -> dict[str, str]:
    try:
        return resolve_columns(headers, None, "")
    except UserError:
        return {}


def suggest_activities(labels: list[str], sop: SopModel, cutoff: float = 60.0) -> dict[str, str]:
    """Match exported activity labels to SOP steps with rapidfuzz (token-set ratio on lower-case text)."""
    from rapidfuzz import fuzz, process, utils

    choices: dict[str, str] = {}
    for step in sop.steps:
        for text in [step.id, step.activity, *step.aliases]:
            choices[text] = step.id
    out: dict[str, str] = {}
    for label in labels:
        best = process.extractOne(label, list(choices), scorer=fuzz.token_set_ratio,
                                  processor=utils.default_process, score_cutoff=cutoff)
        if best is not None:
            out[label] = choices[best[0]]
    return out


def suggest_roles(values: list[str], sop: SopModel, cutoff: float = 80.0) -> dict[str, str | None]:
    """Exported role texts the SOP's role names do not match as they are (ingest.role_labels) -> the closest
    role key by rapidfuzz, or None: what a mapping's ``roles:`` table needs."""
    from rapidfuzz import fuzz, process, utils

    from pipeline.ingest import normalise_label, role_labels

    known = role_labels(sop, None)
    choices = {text: key for key, role in sop.roles.items() for text in [key.replace("_", " "), role.label,
                                                                         *role.aliases]}
    out: dict[str, str | None] = {}
    for value in values:
        if normalise_label(value) in known:
            continue
        best = process.extractOne(value, list(choices), scorer=fuzz.ratio,
                                  processor=utils.default_process, score_cutoff=cutoff)
        out[value] = None if best is None else choices[best[0]]
    return out


def suggestion_yaml(roles: dict[str, str], drop: list[str], unmapped: list[str], activities: dict[str, str],
                    unmatched: list[str], sheet: str | None = None, notes: list[str] | None = None,
                    role_values: dict[str, str | None] | None = None, sop: SopModel | None = None) -> str:
    """The YAML text ``patuh map suggest`` prints, with comments for what needs a human look."""
    cols = {k: roles[k] for k in Columns.model_fields if k in roles}
    lines = ["# Patuh column mapping: review before use (patuh ingest FILE --mapping THIS.yaml)", "columns:"]
    for k, v in cols.items():
        comment = {"date": "   # the day; timestamp/start/end hold the time of day only",
                   "end_date": "   # the day the step ended (blank: the day in date)"}.get(k, "")
        lines.append(f"  {k}: {_q(v)}{comment}")
    if "case_id" not in cols:
        lines.append("  case_id: ???   # no case number column found: fill in")
    if "activity" not in cols:
        lines.append("  activity: ???  # no activity column found: fill in")
    if not {"timestamp", "start", "end"} & set(cols):
        lines.append("  timestamp: ???   # no date/time column found: fill in the column with each event's date and "
                     "time (or 'date:' for the day plus 'timestamp:' for the time of day)")
    lines += [f"# NOTE: {note}" for note in notes or []]
    lines.append("drop:   # names and free text: never stored" + (" (none found)" if not drop else ""))
    lines += [f"  - {_q(d)}" for d in drop]
    if unmapped:
        lines.append("# not mapped, so not stored: " + ", ".join(_q(u) for u in unmapped))
    lines.append("# date_formats: ['dd/mm/yyyy HH:MM']   # only if the dates are not understood as they are")
    lines.append("# timezone: Asia/Jakarta   # leave out: times are read in the institution's own zone (WIB/WITA/WIT); "
                 "set it only for an export written in another zone")
    if sheet:
        lines.append(f"sheet: {_q(sheet)}")
    lines.append(("activities:" if activities else "activities: {}")
                 + "   # exported label -> SOP step id (fuzzy matches: check them)")
    lines += [f"  {_q(k)}: {v}" for k, v in sorted(activities.items())]
    lines += [f"  # {_q(u)}: ???   # no step matched" for u in unmatched]
    if role_values and sop is not None:
        lines.append("roles:   # exported role -> SOP role key (fuzzy matches: check them; roles: "
                     f"{', '.join(sop.roles)})")
        lines += [f"  {_q(k)}: {v}" for k, v in sorted(role_values.items()) if v]
        lines += [f"  # {_q(k)}: ???   # no role matched" for k, v in sorted(role_values.items()) if not v]
    return "\n".join(lines) + "\n"


def suggestion_problems(text: str) -> list[str]:
    """What a suggestion leaves for the user to do (its ``???`` columns and its notes), for the terminal."""
    out = []
    for line in text.splitlines():
        if line.startswith("# NOTE: "):
            out.append(line.removeprefix("# NOTE: "))
        elif line.startswith("  ") and "???" in line.split("#", 1)[0] and "#" in line:
            out.append(f"{line.split(':', 1)[0].strip()}: {line.split('#', 1)[1].strip()}")
    return out


def _q(text: str) -> str:
    dumped: str = yaml.safe_dump(text, default_flow_style=True, allow_unicode=True, width=1000).strip()
    return dumped.removesuffix("\n...").strip()


def suggest_for_file(path: Path, sop: SopModel | None, *, sheet: str | None = None) -> str:
    """Read ``path``'s headers and activity labels and return a mapping YAML to review."""
    import duckdb

    from pipeline.readers import open_source

    if not path.is_file():
        raise UserError(f"{path}: no such file",
                        pesan=f"{path}: berkas tidak ditemukan")
    conn = duckdb.connect()
    try:
        source = open_source(conn, path, sheet=sheet)
        try:
            head = conn.execute(f"SELECT * FROM {source.sql} LIMIT 200").fetchall()
            names = [str(d[0]) for d in conn.description or []]
            samples = {name: [str(row[i]) for row in head if row[i] is not None]
                       for i, name in enumerate(names) if name in source.columns}
            roles, drop, unmapped, notes = suggest_columns(source.columns, samples)
            notes = source.notes + notes  # e.g. the title rows above an XLSX sheet's header
            labels: list[str] = []
            role_texts: list[str] = []
            counts: dict[tuple[str, str], int] = {}  # (activity | role, text) -> rows
            if "role" in roles and sop is not None:
                col = '"' + roles["role"].replace('"', '""') + '"'
                role_rows = conn.execute(
                    f"SELECT trim({col}::VARCHAR) AS r, count(*) FROM {source.sql} WHERE trim({col}::VARCHAR) <> '' "
                    "GROUP BY r ORDER BY r LIMIT 100").fetchall()
                role_texts = [str(r[0]) for r in role_rows]
                counts.update({("role", str(r[0])): int(r[1]) for r in role_rows})
            if "activity" in roles:
                col = '"' + roles["activity"].replace('"', '""') + '"'
                rows = conn.execute(f"SELECT trim({col}) AS a, count(*) FROM {source.sql} WHERE trim({col}) <> '' "
                                    "GROUP BY a ORDER BY 2 DESC, 1 LIMIT 500").fetchall()
                labels = [str(r[0]) for r in rows]
                counts.update({("activity", str(r[0])): int(r[1]) for r in rows})
        finally:
            source.close(conn)
    finally:
        conn.close()
    activities = suggest_activities(labels, sop) if sop else {}
    unmatched = [label for label in labels if label not in activities] if sop else []
    role_values = suggest_roles(role_texts, sop) if sop else {}
    # a text that matches nothing and fills fewer than 5 rows may be a note about a person typed into the
    # column: the mapping file is kept and shared, so it is counted, not copied
    rare = {kind: sorted(t for t in texts if counts.get((kind, t), 0) < PUBLIC_LABEL_CASES)
            for kind, texts in (("activity", unmatched), ("role", [k for k, v in role_values.items() if not v]))}
    unmatched = [u for u in unmatched if u not in rare["activity"]]
    role_values = {k: v for k, v in role_values.items() if k not in rare["role"]}
    for kind, texts in rare.items():
        if texts:
            notes.append(f"{len(texts)} {kind} value(s) in fewer than {PUBLIC_LABEL_CASES} rows each match nothing and "
                         "are not listed here (they may be notes about a person); map them by hand if they are "
                         f"{'activities' if kind == 'activity' else 'roles'}")
    return suggestion_yaml(roles, drop, unmapped, activities, unmatched, sheet, notes, role_values, sop)
