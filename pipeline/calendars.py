"""Institutions and working-time calendars.

Working time is measured on a monotone clock ``W(t)``: the working minutes from a fixed origin to the
instant ``t`` in the institution's local time. ``wt(a, b) = W(b) - W(a)`` is then additive, never
negative for ``a <= b`` and zero across a holiday, and a whole array of events costs a few numpy
operations (a per-day cumulative table plus a per-weekday minute profile), never a Python loop per event.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from pipeline.errors import UserError, pilihan, pydantic_pesan, read_text_file, yaml_problem
from pipeline.sop import Problem, _node_line, read_yaml_with_nodes

if TYPE_CHECKING:
    from pipeline.sop import TimeStandard

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{1,2})[:.](\d{2})\s*(?:-|–|—|s\s*/\s*d\.?|sampai)\s*(\d{1,2})[:.](\d{2})$")
ORIGIN = dt.date(1999, 12, 1)
HORIZON = dt.date(2041, 1, 1)
FloatArray = npt.NDArray[np.float64]

# how people write the days: English and Indonesian, short and long
DAY_NAMES: dict[str, Weekday] = {}
for _weekday, _names in zip(WEEKDAYS, (
        ("monday", "sen", "senin"), ("tuesday", "sel", "selasa"), ("wednesday", "rab", "rabu"),
        ("thursday", "kam", "kamis"), ("friday", "jum", "jumat", "jum'at", "jumaat"),
        ("saturday", "sab", "sabtu"), ("sunday", "min", "minggu", "ahad")), strict=True):
    for _name in (_weekday, *_names):
        DAY_NAMES[_name] = _weekday
DAY_HELP = "mon, tue, wed, thu, fri, sat, sun (or sen, sel, rab, kam, jum, sab, min / senin ... minggu)"
BANTUAN_HARI = "mon, tue, wed, thu, fri, sat, sun (atau sen, sel, rab, kam, jum, sab, min / senin ... minggu)"

TimeZone = Literal["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]
# the three Indonesian zones by their Indonesian names (institutions.yaml, export cells, report times)
ZONE_WORDS: dict[str, TimeZone] = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
ZONE_WORD_OF: dict[str, str] = {zone: word for word, zone in ZONE_WORDS.items()}
# ... and the IANA names and offsets that are the same clocks
TIMEZONE_NAMES: dict[str, TimeZone] = {
    **{word.lower(): zone for word, zone in ZONE_WORDS.items()},
    "asia/jakarta": "Asia/Jakarta", "asia/pontianak": "Asia/Jakarta",
    "utc+7": "Asia/Jakarta", "gmt+7": "Asia/Jakarta", "+07:00": "Asia/Jakarta",
    "asia/makassar": "Asia/Makassar", "asia/ujung_pandang": "Asia/Makassar",
    "utc+8": "Asia/Makassar", "gmt+8": "Asia/Makassar", "+08:00": "Asia/Makassar",
    "asia/jayapura": "Asia/Jayapura", "utc+9": "Asia/Jayapura", "gmt+9": "Asia/Jayapura", "+09:00": "Asia/Jayapura",
}
TIMEZONE_HELP = "Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT)"
BANTUAN_ZONA = "Asia/Jakarta (WIB), Asia/Makassar (WITA) atau Asia/Jayapura (WIT)"
KIND_NAMES = {"sekolah": "school", "kantor": "office", "panti": "care_home", "panti_asuhan": "care_home",
              "panti_sosial": "care_home", "care-home": "care_home"}


def _fail(message: str, fix: str, pesan: str, perbaikan: str) -> PydanticCustomError:
    """A validation error whose ``fix`` travels with it (shown as 'Fix: ...'), and both in Indonesian."""
    return PydanticCustomError("patuh", "{message}",
                               {"message": message, "fix": fix, "pesan": pesan, "perbaikan": perbaikan})


def _day(name: object) -> Weekday | None:
    return DAY_NAMES.get(str(name).strip().lower()) if isinstance(name, str) else None


def _hhmm(hours: str, minutes: str) -> str:
    return f"{int(hours):02d}:{minutes}"


class Institution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    kind: Literal["school", "office", "care_home"]
    region: str | None = None
    timezone: TimeZone
    working_days: list[Weekday]
    hours: dict[str, list[str]]
    non_working: list[str] = Field(default_factory=list)
    national_holidays: bool = True

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_words(cls, value: Any) -> Any:
        return KIND_NAMES.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone_names(cls, value: Any) -> Any:
        """WIB/WITA/WIT and the IANA aliases of the same clocks (Asia/Ujung_Pandang) -> the canonical zone."""
        if not isinstance(value, str):
            return value
        key = re.sub(r"\s+", "", value.strip().lower())
        if key in TIMEZONE_NAMES:
            return TIMEZONE_NAMES[key]
        close = difflib.get_close_matches(key, list(TIMEZONE_NAMES), n=1, cutoff=0.7)
        meant = TIMEZONE_NAMES[close[0]] if close else None
        guess, tebakan = (f" (did you mean {meant}?)", f" (maksud Anda {meant}?)") if meant else ("", "")
        raise _fail(f"'{value}' is not an Indonesian time zone (expected {TIMEZONE_HELP}){guess}",
                    "write 'timezone: Asia/Makassar' for WITA (Makassar, Bali, NTB, NTT, Kalimantan Timur/Selatan/"
                    "Utara, Sulawesi), 'Asia/Jakarta' for WIB (Sumatra, Java, Kalimantan Barat/Tengah), "
                    "'Asia/Jayapura' for WIT (Maluku, Papua); WIB, WITA and WIT are understood too",
                    f"'{value}' bukan zona waktu Indonesia (seharusnya {BANTUAN_ZONA}){tebakan}",
                    "tulis 'timezone: Asia/Makassar' untuk WITA (Makassar, Bali, NTB, NTT, Kalimantan Timur/Selatan/"
                    "Utara, Sulawesi), 'Asia/Jakarta' untuk WIB (Sumatra, Jawa, Kalimantan Barat/Tengah), "
                    "'Asia/Jayapura' untuk WIT (Maluku, Papua); WIB, WITA dan WIT juga dipahami")

    @field_validator("working_days", mode="before")
    @classmethod
    def _day_words(cls, value: Any) -> Any:
        """Day names in English or Indonesian, short or long; a range string "mon-fri" / "senin-jumat"."""
        if isinstance(value, str):
            parts = re.split(r"\s*(?:-|–|\.\.|s/d|sampai)\s*", value.strip())
            first, last = (_day(parts[0]), _day(parts[-1])) if len(parts) == 2 else (None, None)
            if first is None or last is None or WEEKDAYS.index(first) > WEEKDAYS.index(last):
                raise _fail(f"'{value}' is not a list of days",
                            "write e.g. 'working_days: [mon, tue, wed, thu, fri]' or 'working_days: mon-fri'",
                            f"'{value}' bukan daftar hari",
                            "tulis mis. 'working_days: [mon, tue, wed, thu, fri]' atau 'working_days: mon-fri'")
            return list(WEEKDAYS[WEEKDAYS.index(first):WEEKDAYS.index(last) + 1])
        if not isinstance(value, list):
            return value
        days = [_day(item) for item in value]
        bad = [str(item) for item, day in zip(value, days, strict=True) if day is None]
        if bad:
            names = ", ".join(repr(b) for b in bad)
            raise _fail(f"{names} {'is not a day' if len(bad) == 1 else 'are not days'}",
                        f"write the days as {DAY_HELP}", f"{names} bukan nama hari",
                        f"tulis nama harinya sebagai {BANTUAN_HARI}")
        return list(dict.fromkeys(days))

    @field_validator("hours", mode="before")
    @classmethod
    def _hours_words(cls, value: Any) -> Any:
        """Day keys in either language, one interval without a list, and 07.30 for 07:30 -> 07:30-14:00."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for key, intervals in value.items():
            day = "default" if str(key).strip().lower() in {"default", "biasa", "umum"} else _day(key)
            if day is None:
                raise _fail(f"'{key}' is not 'default' or a day",
                            f"use 'default:' for every working day and a day name ({DAY_HELP}) for a day "
                            "with other hours, e.g. 'fri: [\"07:00-11:00\"]'",
                            f"'{key}' bukan 'default' dan bukan nama hari",
                            f"pakai 'default:' untuk setiap hari kerja dan nama hari ({BANTUAN_HARI}) untuk hari "
                            "yang jamnya berbeda, mis. 'fri: [\"07:00-11:00\"]'")
            items = [intervals] if isinstance(intervals, str) else intervals
            if isinstance(items, list):
                normal = []
                for interval in items:
                    m = _INTERVAL.match(str(interval).strip()) if isinstance(interval, str) else None
                    if not m:
                        raise _fail(f"'{interval}' (for {key}) is not a time range",
                                    "write the hours as 'HH:MM-HH:MM' or 'HH.MM-HH.MM', e.g. '07:30-15:00' "
                                    "or '07.30-15.00', in quotes",
                                    f"'{interval}' (untuk {key}) bukan rentang jam",
                                    "tulis jamnya sebagai 'HH:MM-HH:MM' atau 'HH.MM-HH.MM', mis. '07:30-15:00' "
                                    "atau '07.30-15.00', di dalam tanda kutip")
                    a, b = _hhmm(m[1], m[2]), _hhmm(m[3], m[4])
                    if int(m[2]) > 59 or int(m[4]) > 59 or a >= b or b > "24:00":
                        raise _fail(f"'{interval}' (for {key}) is not a range within one day",
                                    "write the start before the end, both between 00:00 and 24:00, "
                                    "e.g. '07:30-15:00'; split a night shift into two days",
                                    f"'{interval}' (untuk {key}) bukan rentang jam dalam satu hari",
                                    "tulis jam mulai sebelum jam selesai, keduanya antara 00:00 dan 24:00, "
                                    "mis. '07:30-15:00'; pecah giliran malam menjadi dua hari")
                    normal.append(f"{a}-{b}")
                items = normal
            out[day] = items
        if "default" not in out:
            raise _fail("no 'default' entry",
                        "add the hours of an ordinary working day, e.g. 'default: [\"07:00-14:00\"]' "
                        "(and a day's own entry where it differs, e.g. 'fri: [\"07:00-11:00\"]')",
                        "tidak ada entri 'default'",
                        "tambahkan jam hari kerja biasa, mis. 'default: [\"07:00-14:00\"]' "
                        "(dan entri sendiri untuk hari yang berbeda, mis. 'fri: [\"07:00-11:00\"]')")
        return out

    @field_validator("non_working", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        """YYYY-MM-DD or A..B (also written unquoted: YAML reads a date); a range must run forwards."""
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            text = item.isoformat() if isinstance(item, dt.date) else str(item).strip()
            parts = [p.strip() for p in text.split("..")]
            try:
                dates = [dt.date.fromisoformat(p) for p in parts]
            except ValueError:
                raise _fail(f"'{text}' is not a date or a range of dates",
                            "write 'YYYY-MM-DD' or 'YYYY-MM-DD..YYYY-MM-DD', e.g. \"2026-12-21..2027-01-02\"",
                            f"'{text}' bukan tanggal atau rentang tanggal",
                            "tulis 'YYYY-MM-DD' atau 'YYYY-MM-DD..YYYY-MM-DD', mis. \"2026-12-21..2027-01-02\""
                            ) from None
            if len(dates) > 2:
                raise _fail(f"'{text}' has more than two dates",
                            "write one range per line: 'YYYY-MM-DD..YYYY-MM-DD'",
                            f"'{text}' berisi lebih dari dua tanggal",
                            "tulis satu rentang per baris: 'YYYY-MM-DD..YYYY-MM-DD'")
            if len(dates) == 2 and dates[1] < dates[0]:
                swapped = f"\"{parts[1]}..{parts[0]}\""
                raise _fail(f"the range '{text}' ends before it starts, so it holds no day",
                            f"write the earlier date first: {swapped}",
                            f"rentang '{text}' berakhir sebelum dimulai, jadi tidak berisi satu hari pun",
                            f"tulis tanggal yang lebih awal lebih dulu: {swapped}")
            out.append(text)
        return out

    def day_minutes(self) -> float:
        """Average working minutes of a working day (by weekday, before holidays)."""
        total = 0
        for day in self.working_days:
            for interval in self.hours.get(day, self.hours["default"]):
                a, b = interval.split("-")
                total += _minutes(b) - _minutes(a)
        return total / len(self.working_days) if self.working_days else 0.0


class InstitutionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    institutions: list[Institution]


_INSTITUTION_WORDS = {"nama": "name", "jenis": "kind", "wilayah": "region", "daerah": "region",
                      "zona_waktu": "timezone", "zona": "timezone", "tz": "timezone", "time_zone": "timezone",
                      "hari_kerja": "working_days", "days": "working_days", "jam_kerja": "hours", "jam": "hours",
                      "working_hours": "hours", "libur": "non_working", "hari_libur": "non_working",
                      "holidays": "non_working", "libur_nasional": "national_holidays"}
_INSTITUTION_FIX = {  # field -> how to write it: (English, Indonesian)
    "id": ("write a lower-case id of letters, digits and '-', e.g. 'id: smpn5-makassar'",
           "tulis id dari huruf kecil, angka dan '-', mis. 'id: smpn5-makassar'"),
    "name": ("add the institution's full name, e.g. 'name: SMP Negeri 5 Makassar'",
             "tambahkan nama lengkap lembaga, mis. 'name: SMP Negeri 5 Makassar'"),
    "kind": ("write 'kind: school', 'office' or 'care_home' (sekolah, kantor, panti are understood too)",
             "tulis 'kind: school', 'office' atau 'care_home' (sekolah, kantor, panti juga dipahami)"),
    "timezone": (f"write 'timezone: ...' with {TIMEZONE_HELP}", f"tulis 'timezone: ...' dengan {BANTUAN_ZONA}"),
    "working_days": ("write e.g. 'working_days: [mon, tue, wed, thu, fri]'",
                     "tulis mis. 'working_days: [mon, tue, wed, thu, fri]'"),
    "hours": ("write e.g. 'hours: {default: [\"07:00-14:00\"], fri: [\"07:00-11:00\"]}'",
              "tulis mis. 'hours: {default: [\"07:00-14:00\"], fri: [\"07:00-11:00\"]}'"),
    "non_working": ("write a list of \"YYYY-MM-DD\" or \"YYYY-MM-DD..YYYY-MM-DD\" entries",
                    "tulis daftar berisi entri \"YYYY-MM-DD\" atau \"YYYY-MM-DD..YYYY-MM-DD\""),
    "national_holidays": ("write true or false", "tulis true atau false"),
}


@dataclass
class InstitutionsCheck:
    """What ``institutions.yaml`` holds: its valid institutions, every id it names, every problem."""

    institutions: dict[str, Institution]
    ids: set[str]  # every id written, also of entries with errors (a model naming one is not "unknown")
    problems: list[Problem]
    readable: bool  # False when the file is missing or not YAML: no institution could be checked

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    def day_minutes(self) -> dict[str, float | None]:
        """Every id -> its average working minutes per working day (None for an entry with errors)."""
        out: dict[str, float | None] = dict.fromkeys(self.ids)
        out.update({iid: inst.day_minutes() for iid, inst in self.institutions.items()})
        return out


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def check_institutions(path: Path, shown: str | None = None) -> InstitutionsCheck:
    """Read and check ``institutions.yaml``: every problem, with the line, the institution and the field."""
    shown = shown or str(path)
    try:
        node, data = read_yaml_with_nodes(read_text_file(path, "institutions file", "berkas lembaga"))
    except UserError as exc:
        return InstitutionsCheck({}, set(), [Problem(shown, str(exc).removeprefix(f"{path}: "),
                                                     "give the catalogue folder that holds institutions.yaml "
                                                     "(--sop-dir or PATUH_SOP_DIR)",
                                                     pesan=exc.pesan.removeprefix(f"{path}: "),
                                                     perbaikan="berikan folder katalog yang berisi institutions.yaml "
                                                               "(--sop-dir atau PATUH_SOP_DIR)")], False)
    except yaml.YAMLError as exc:
        line, found, ditemukan = yaml_problem(exc)
        return InstitutionsCheck({}, set(), [Problem(shown, f"not valid YAML ({found})",
                                                     "check indentation and quoting; write times and dates in "
                                                     "quotes, e.g. \"07:00-14:00\"", line,
                                                     pesan=f"bukan YAML yang valid ({ditemukan})",
                                                     perbaikan="periksa indentasi dan tanda kutip; tulis jam dan "
                                                               "tanggal di dalam tanda kutip, mis. \"07:00-14:00\"")],
                                 False)
    if not isinstance(data, dict) or not isinstance(data.get("institutions"), list):
        return InstitutionsCheck({}, set(), [Problem(
            shown, "the file has no 'institutions:' list",
            "start the file with 'institutions:' and give one '- id: ...' entry per institution", 1,
            pesan="berkas ini tidak berisi daftar 'institutions:'",
            perbaikan="awali berkas dengan 'institutions:' lalu tulis satu entri '- id: ...' untuk setiap lembaga")],
            False)
    problems: list[Problem] = []
    for key in data:
        if key != "institutions":
            problems.append(Problem(shown, f"unknown top-level field '{key}'",
                                    "put every institution under 'institutions:' and remove the field",
                                    _node_line(node, [key]),
                                    pesan=f"isian tingkat atas '{key}' tidak dikenal",
                                    perbaikan="tulis setiap lembaga di bawah 'institutions:' dan hapus isian itu"))
    institutions: dict[str, Institution] = {}
    ids: set[str] = set()
    first_line: dict[str, tuple[int, int | None]] = {}
    for i, entry in enumerate(data["institutions"]):
        entry_line = _node_line(node, ["institutions", i])
        if not isinstance(entry, dict):
            problems.append(Problem(shown, f"the {_ordinal(i + 1)} institution is not a mapping of fields",
                                    "write each institution as '- id: ...' with its fields indented below",
                                    entry_line,
                                    pesan=f"lembaga ke-{i + 1} bukan pemetaan isian",
                                    perbaikan="tulis setiap lembaga sebagai '- id: ...' dengan isian-isiannya "
                                              "menjorok di bawahnya"))
            continue
        iid = entry.get("id")
        who, siapa = ((f"institution '{iid}'", f"lembaga '{iid}'") if isinstance(iid, str)
                      else (f"the {_ordinal(i + 1)} institution", f"lembaga ke-{i + 1}"))
        if isinstance(iid, str):
            ids.add(iid)
            id_line = _node_line(node, ["institutions", i, "id"])
            if iid in first_line:
                n, line = first_line[iid]
                problems.append(Problem(
                    shown, f"institution id '{iid}' is used twice (the {_ordinal(n)} and {_ordinal(i + 1)} entries, "
                           f"lines {line} and {id_line}); the second would silently replace the first, with its own "
                           "time zone and working days",
                    "give each institution its own id, or delete the entry that is wrong", id_line,
                    pesan=f"id lembaga '{iid}' dipakai dua kali (entri ke-{n} dan ke-{i + 1}, baris {line} dan "
                          f"{id_line}); entri kedua akan diam-diam menggantikan yang pertama, dengan zona waktu dan "
                          "hari kerjanya sendiri",
                    perbaikan="beri setiap lembaga id sendiri, atau hapus entri yang salah"))
                continue
            first_line[iid] = (i + 1, id_line)
        try:
            inst = Institution.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_institution_problem(shown, node, i, (who, siapa), entry, err) for err in exc.errors())
            continue
        institutions[inst.id] = inst
        for key in entry.get("hours") or {}:
            day = _day(key)
            if day is not None and day not in inst.working_days:
                days = ", ".join(inst.working_days)
                problems.append(Problem(
                    shown, f"{who}, hours: '{key}' hours are given but {day} is not in working_days "
                           f"[{days}], so they are ignored",
                    f"add {day} to working_days if the institution works that day, or remove the '{key}:' hours",
                    _node_line(node, ["institutions", i, "hours", key]), level="warning",
                    pesan=f"{siapa}, hours: jam untuk '{key}' ditulis, tetapi {day} tidak ada di working_days "
                          f"[{days}], jadi jam itu diabaikan",
                    perbaikan=f"tambahkan {day} ke working_days jika lembaga bekerja pada hari itu, atau hapus jam "
                              f"'{key}:'"))
    return InstitutionsCheck(institutions, ids, problems, True)


def _institution_problem(shown: str, node: Any, index: int, who: tuple[str, str], entry: dict[str, Any],
                         err: Any) -> Problem:
    """One pydantic error of an institution entry as a problem; ``who`` names the entry (English, Indonesian)."""
    loc = tuple(err["loc"])
    field_name = str(loc[0]) if loc else ""
    line = _node_line(node, ["institutions", index, *loc[:1]])
    ctx = err.get("ctx") or {}
    (en, di), etype = who, err["type"]
    if etype == "patuh":
        return Problem(shown, f"{en}, {field_name}: {ctx['message']}", str(ctx["fix"]), line,
                       pesan=f"{di}, {field_name}: {ctx['pesan']}", perbaikan=str(ctx["perbaikan"]))
    if etype == "extra_forbidden":
        names = list(Institution.model_fields)
        fields = ", ".join(names)
        word = field_name.strip().lower().replace(" ", "_")
        meant = _INSTITUTION_WORDS.get(word) or next(iter(difflib.get_close_matches(word, names, n=1)), None)
        guess, tebakan = (f" (did you mean '{meant}'?)", f" (maksud Anda '{meant}'?)") if meant else ("", "")
        fix, perbaikan = ((f"rename it to '{meant}'; ", f"ganti namanya menjadi '{meant}'; ") if meant
                          else ("remove it or correct its spelling; ", "hapus isian ini atau perbaiki ejaannya; "))
        return Problem(shown, f"{en}: unknown field '{field_name}'{guess}",
                       fix + f"the fields of an institution are {fields}", line,
                       pesan=f"{di}: isian '{field_name}' tidak dikenal{tebakan}",
                       perbaikan=perbaikan + f"isian sebuah lembaga adalah {fields}")
    how = _INSTITUTION_FIX.get(field_name)
    if etype == "missing":
        fix, perbaikan = how or (f"add '{field_name}: ...'", f"tambahkan '{field_name}: ...'")
        return Problem(shown, f"{en}: missing field '{field_name}'", fix, _node_line(node, ["institutions", index]),
                       pesan=f"{di}: isian wajib '{field_name}' belum ada", perbaikan=perbaikan)
    got = entry.get(field_name)
    shown_value = got is not None and not isinstance(got, dict | list)
    got_text, tertulis = (f" (got {got!r})", f" (tertulis {got!r})") if shown_value else ("", "")
    expected = {"string_pattern_mismatch": "lower-case letters, digits and '-'",
                "literal_error": f"one of {ctx.get('expected', '')}"}.get(etype, err["msg"])
    seharusnya = {"string_pattern_mismatch": "seharusnya huruf kecil, angka dan '-'",
                  "literal_error": f"seharusnya salah satu dari {pilihan(ctx.get('expected', ''))}"}
    fix, perbaikan = how or ("correct the value", "perbaiki nilainya")
    return Problem(shown, f"{en}, {field_name}: expected {expected}{got_text}", fix, line,
                   pesan=f"{di}, {field_name}: {seharusnya.get(etype) or pydantic_pesan(err)}{tertulis}",
                   perbaikan=perbaikan)


def load_institutions(path: Path) -> dict[str, Institution]:
    """Read ``institutions.yaml``; a bad file is a :class:`UserError` naming every problem (file, line,
    institution, field, what to write), in English and in Indonesian."""
    if not path.exists():
        read_text_file(path, "institutions file", "berkas lembaga")  # raises the usual "cannot read" message
    check = check_institutions(path)
    if check.errors:
        raise UserError("\n".join(p.render() for p in check.errors),
                        pesan="\n".join(p.render_pesan() for p in check.errors))
    return check.institutions


# ---------------------------------------------------------------------------------------------------
# Calendars
# ---------------------------------------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass(frozen=True)
class WorkingCalendar:
    """A vectorised working-time clock for one institution."""

    institution_id: str
    timezone: str
    profile: npt.NDArray[np.float64]  # [7, 1441]: working minutes since local midnight, per weekday
    day_is_working: npt.NDArray[np.bool_]  # per day since ORIGIN
    day_cum: npt.NDArray[np.float64]  # working minutes before each day since ORIGIN
    day_count_cum: npt.NDArray[np.float64]  # working days before each day since ORIGIN

    def content_hash(self) -> str:
        """Hash of what working time means here (zone, hours, every working day and holiday)."""
        digest = hashlib.sha256(f"{self.institution_id}:{self.timezone};".encode())
        for array in (self.profile, self.day_is_working, self.day_cum):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @property
    def day_minutes(self) -> npt.NDArray[np.float64]:
        """Working minutes of a full working day, per weekday."""
        return self.profile[:, 1440]

    # -- the clock ----------------------------------------------------------------------------------

    def _local_parts(self, ts: pd.Series | pd.DatetimeIndex) -> tuple[npt.NDArray[np.int64], FloatArray]:
        index = pd.DatetimeIndex(ts)
        if index.tz is None:
            index = index.tz_localize("UTC")
        local = index.tz_convert(self.timezone).tz_localize(None)
        values = local.values.astype("datetime64[ns]").astype(np.int64)
        day_ns = 86_400 * 10**9
        origin_ns = np.datetime64(ORIGIN, "ns").astype(np.int64)
        rel = values - origin_ns
        day = np.floor_divide(rel, day_ns)
        minute = (rel - day * day_ns) / 6e10
        if len(day) and (day.min() < 0 or day.max() >= len(self.day_cum) - 1):
            raise UserError(f"a timestamp lies outside the calendar range {ORIGIN} .. {HORIZON}",
                            pesan=f"ada cap waktu (timestamp) di luar rentang kalender {ORIGIN} .. {HORIZON}")
        return day, minute

    def _within_day(self, ts: pd.Series | pd.DatetimeIndex, as_share: bool) -> tuple[
            npt.NDArray[np.bool_], npt.NDArray[np.int64], FloatArray]:
        """(NaT mask, day index, working minutes into that day, or the share of the day's working time)."""
        index = pd.DatetimeIndex(ts)
        mask = np.asarray(index.isna())
        if mask.all():
            return mask, np.zeros(0, dtype=np.int64), np.zeros(0)
        day, minute = self._local_parts(index[~mask])
        weekday = (day + ORIGIN.weekday()) % 7
        m0 = np.minimum(minute.astype(np.int64), 1439)
        prof = self.profile[weekday, m0] + (minute - m0) * (self.profile[weekday, m0 + 1] - self.profile[weekday, m0])
        if as_share:
            full = self.profile[weekday, 1440]
            prof = np.divide(prof, full, out=np.zeros_like(prof), where=full > 0)
        return mask, day, np.where(self.day_is_working[day], prof, 0.0)

    def clock(self, ts: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """``W(t)``: working minutes since the calendar origin, for each timestamp (NaT gives NaN)."""
        mask, day, within = self._within_day(ts, as_share=False)
        out = np.full(len(mask), np.nan)
        out[~mask] = self.day_cum[day] + within
        return out

    def day_clock(self, ts: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Working days since the origin: whole working days plus the share of today's working time."""
        mask, day, within = self._within_day(ts, as_share=True)
        out = np.full(len(mask), np.nan)
        out[~mask] = self.day_count_cum[day] + within
        return out

    def working_minutes(self, start: pd.Series | pd.DatetimeIndex, end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Working minutes between paired timestamps (negative when end is before start)."""
        return self.clock(end) - self.clock(start)

    def working_days(self, start: pd.Series | pd.DatetimeIndex, end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        return self.day_clock(end) - self.day_clock(start)

    def measure(self, measure: str, start: pd.Series | pd.DatetimeIndex,
                end: pd.Series | pd.DatetimeIndex) -> FloatArray:
        """Duration in the unit a :class:`~pipeline.sop.TimeStandard` is stated in."""
        if measure == "working_minutes":
            return self.working_minutes(start, end)
        if measure == "working_days":
            return self.working_days(start, end)
        delta = pd.DatetimeIndex(end) - pd.DatetimeIndex(start)
        return np.asarray(delta.total_seconds(), dtype=np.float64) / 60.0

    def exceeds(self, standard: TimeStandard, start: pd.Series | pd.DatetimeIndex,
                end: pd.Series | pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
        """Whether each duration is over the standard's maximum (NaN durations are not over)."""
        values = self.measure(standard.measure, start, end)
        return np.nan_to_num(values, nan=-np.inf) > standard.maximum + 1e-9

    def from_clock(self, value: FloatArray) -> pd.DatetimeIndex:
        """Inverse of :meth:`clock` (UTC). Where ``W`` is flat (nights, weekends, breaks) the *latest*
        instant is returned, so a start snaps forward to the next working minute."""
        value = np.asarray(value, dtype=np.float64)
        # the last day whose cumulative start is <= value; flat runs of days share a start, so this is
        # the working day on which the value is reached (or the next one, for a value at a day's end)
        day = np.clip(np.searchsorted(self.day_cum, value, side="right") - 1, 0, len(self.day_cum) - 2)
        rest = value - self.day_cum[day]
        weekday = (day + ORIGIN.weekday()) % 7
        minute = np.empty(len(value))
        for wd in np.unique(weekday):
            sel = weekday == wd
            prof = self.profile[wd]
            m = np.clip(np.searchsorted(prof, rest[sel], side="right") - 1, 0, 1439)
            step = prof[m + 1] - prof[m]
            frac = np.divide(rest[sel] - prof[m], step, out=np.zeros_like(rest[sel]), where=step > 0)
            minute[sel] = m + np.clip(frac, 0.0, 1.0)
        origin = np.datetime64(ORIGIN, "ns")
        # round to whole microseconds (DuckDB's precision): the float clock carries a few ns of error, which
        # would otherwise put add_working_minutes(t, 0) a few ns *before* t
        local = (origin + (day * 86_400 * 10**9).astype("timedelta64[ns]")
                 + (np.round(minute * 6e7) * 1000).astype("timedelta64[ns]"))
        return pd.DatetimeIndex(local).tz_localize(self.timezone).tz_convert("UTC")

    def add_working_minutes(self, start: pd.Series | pd.DatetimeIndex, minutes: FloatArray) -> pd.DatetimeIndex:
        """The instant reached after working ``minutes`` from each start (starts snap to working time)."""
        return self.from_clock(self.clock(start) + np.asarray(minutes, dtype=np.float64))

    def is_working_day(self, dates: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
        origin = pd.Timestamp(ORIGIN)
        day = np.asarray((pd.DatetimeIndex(dates).tz_localize(None).normalize() - origin).days)
        return np.asarray(self.day_is_working[day], dtype=np.bool_)


def _profile(inst: Institution) -> npt.NDArray[np.float64]:
    profile = np.zeros((7, 1441))
    for wd_index, wd in enumerate(WEEKDAYS):
        if wd not in inst.working_days:
            continue
        working = np.zeros(1440)
        for interval in inst.hours.get(wd, inst.hours["default"]):
            a, b = interval.split("-")
            working[_minutes(a):_minutes(b)] = 1.0
        profile[wd_index, 1:] = np.cumsum(working)
    return profile


def non_working_dates(inst: Institution) -> set[dt.date]:
    """National holidays, cuti bersama and the institution's own days off."""
    import holidays

    dates: set[dt.date] = set()
    if inst.national_holidays:
        years = range(ORIGIN.year, HORIZON.year + 1)
        dates.update(holidays.country_holidays("ID", years=years, categories=("public", "government")).keys())
    for item in inst.non_working:
        parts = [dt.date.fromisoformat(p.strip()) for p in item.split("..")]
        first, last = parts[0], parts[-1]
        dates.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return dates


def build_calendar(inst: Institution) -> WorkingCalendar:
    profile = _profile(inst)
    n_days = (HORIZON - ORIGIN).days + 1
    days = pd.date_range(ORIGIN, periods=n_days, freq="D")
    weekday = np.asarray(days.weekday)
    # as datetime64 days: np.isin over Python date objects takes 0.2 s per institution
    off = np.isin(days.values.astype("datetime64[D]"),
                  np.array(sorted(non_working_dates(inst)), dtype="datetime64[D]"))
    minutes = profile[weekday, 1440]
    is_working = (minutes > 0) & ~off
    per_day = np.where(is_working, minutes, 0.0)
    day_cum = np.concatenate([[0.0], np.cumsum(per_day)[:-1]])
    count_cum = np.concatenate([[0.0], np.cumsum(is_working.astype(np.float64))[:-1]])
    return WorkingCalendar(inst.id, inst.timezone, profile, is_working, day_cum, count_cum)


@cache
def _calendars_cached(path: str, mtime: float) -> dict[str, WorkingCalendar]:
    return {iid: build_calendar(inst) for iid, inst in load_institutions(Path(path)).items()}


def load_calendars(path: Path) -> dict[str, WorkingCalendar]:
    """Every institution's calendar (built once per file version)."""
    return _calendars_cached(str(path), path.stat().st_mtime if path.exists() else 0.0)
