"""SOP model files: schema, loading, validation and Indonesian time standards.

A model file (``sop_models/<institution>/<sop>.yaml``) keeps the Permenpan-RB 35/2012 header and the
step table as the paper original has them, plus the flow where the original has decisions or loops
(DESIGN section 3). Rule-type documents (academic rules) carry ``rules:`` instead of ``steps:``.

Validation never raises for a user's mistake: it returns :class:`Problem` records that name the file,
the line, the step, what is wrong and how to fix it, so ``patuh sop validate`` reports all of them at once.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import NotFoundError, os_reason, pilihan, pydantic_pesan, yaml_problem

END = "end"  # reserved flow target: the case ends here


class YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.2 booleans: only true/false. In YAML 1.1 the column key ``no`` would read as ``False``.

    libyaml's parser when PyYAML has it (10x faster: the catalogue is read by every command)."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)


def read_yaml_with_nodes(text: str) -> tuple[Any, Any]:
    """(the document's node tree, for line numbers; its data), from one parse."""
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        return node, (None if node is None else loader.construct_document(node))
    finally:
        loader.dispose()

# ---------------------------------------------------------------------------------------------------
# Time standards
# ---------------------------------------------------------------------------------------------------

Measure = Literal["working_minutes", "working_days", "elapsed_minutes"]

_UNITS: dict[str, tuple[str, float]] = {
    # unit word -> (canonical unit, size in that unit's base: minutes for minute/hour, days for day)
    "menit": ("minute", 1.0),
    "mnt": ("minute", 1.0),
    "jam": ("hour", 60.0),
    "hari": ("day", 1.0),
    "hr": ("day", 1.0),
    "hk": ("day", 1.0),  # hari kerja
    "minggu": ("week", 7.0),
    "pekan": ("week", 7.0),
    "bulan": ("month", 30.0),
    "bln": ("month", 30.0),
    "tahun": ("year", 365.0),
}
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
_NUM = r"\d+(?:[.,]\d+)?"
_SEP = r"-|–|—|s\s*/\s*d\.?|s\.\s*d\.?|sampai(?:\s+dengan)?|hingga"
# "1 s/d 2 hari", "30 menit - 45 menit"; "hari kerja" (working days: what "hari" means anyway) and
# "hari kalender" (calendar days: elapsed time)
_RANGE_RE = re.compile(
    rf"^(?:(?P<lo>{_NUM})\s*(?:(?P<lounit>{_UNIT_RE})\.?(?:\s+(?:kerja|kalender))?)?\s*(?:{_SEP})\s*)?"
    rf"(?P<hi>{_NUM})?\s*(?P<unit>{_UNIT_RE})\.?(?:\s+(?P<kind>kerja|kalender))?$"
)
_X24_RE = re.compile(rf"^(?P<n>{_NUM})\s*(?:[x×]|kali)\s*24\s*jam(?P<kerja>\s+kerja)?$")
_HOURS_MINUTES_RE = re.compile(rf"^(?P<h>{_NUM})\s*jam(?:\s+kerja)?\s*(?:dan\s+)?(?P<m>{_NUM})\s*menit(?:\s+kerja)?$")
# words that only say "at most" or "about": "maks. 2 hari", "paling lambat 3 hari", "± 30 menit"
_QUALIFIER_RE = re.compile(
    r"±|\+/-|<=|≤|\b(?:maks(?:imal|imum)?|max|paling\s+(?:lama|lambat)|selambat-lambatnya|tidak\s+lebih\s+dari"
    r"|kurang\s+dari|kurang\s+lebih|lebih\s+kurang|kira-kira|sekitar|dalam\s+waktu|dalam)\b\.?"
)
_FRACTIONS = {"½": 0.5, "¼": 0.25, "¾": 0.75}
_NUMBER_WORDS = {"nol": 0, "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6, "tujuh": 7,
                 "delapan": 8, "sembilan": 9}
TIME_EXAMPLES = ("write e.g. '30 menit', '2 jam', '1 jam 30 menit', '3 hari' (working days), "
                 "'1 x 24 jam' (a day and a night, elapsed), '30 - 45 menit', '3 s/d 6 bulan', "
                 "or '0' for a start/end row with no standard")
CONTOH_WAKTU = ("tulis mis. '30 menit', '2 jam', '1 jam 30 menit', '3 hari' (hari kerja), "
                "'1 x 24 jam' (sehari semalam, waktu kalender), '30 - 45 menit', '3 s/d 6 bulan', "
                "atau '0' untuk baris mulai/selesai yang tidak punya standar")


class TimeParseError(ValueError):
    """A time text that is not one of the forms the seeds use; ``fix`` says what to write instead.

    ``str(exc)`` and ``fix`` are English; ``pesan`` and ``perbaikan`` the same in Indonesian."""

    def __init__(self, message: str, fix: str, *, pesan: str, perbaikan: str) -> None:
        super().__init__(message)
        self.fix = fix
        self.pesan = pesan
        self.perbaikan = perbaikan


@dataclass(frozen=True)
class TimeStandard:
    """A parsed ``waktu`` cell.

    ``minimum``/``maximum`` are in the unit of ``measure``: working minutes on the institution's calendar
    (menit, jam), working days (hari, hr), or elapsed minutes (``N x 24 jam``, minggu, bulan).
    """

    raw: str
    measure: Measure
    minimum: float | None
    maximum: float
    unit: str


def _num(text: str) -> float:
    return float(text.replace(",", "."))


def number_words(words: str) -> float | None:
    """An Indonesian number in words ("dua puluh lima", "satu setengah"), or None when it is not one."""
    total, last, seen = 0.0, 0.0, False
    for word in words.split():
        seen = True
        if word in _NUMBER_WORDS:
            last += _NUMBER_WORDS[word]
        elif word in {"sepuluh", "sebelas", "seratus"}:
            total += {"sepuluh": 10, "sebelas": 11, "seratus": 100}[word]
        elif word == "belas":
            total, last = total + 10 + last, 0.0
        elif word in {"puluh", "ratus"}:
            total, last = total + last * (10 if word == "puluh" else 100), 0.0
        elif word == "setengah":
            total += 0.5
        elif word == "seperempat":
            total += 0.25
        else:
            return None
    return total + last if seen else None


def _fmt(value: float) -> str:
    return f"{value:g}"


def _plus(value: float, match: re.Match[str]) -> str:
    return _fmt(int(match[1]) + value)


def _normalise(text: str) -> str:
    norm = re.sub(r"\s+", " ", text.lower()).strip()
    for sign, value in _FRACTIONS.items():  # "1½ jam" -> "1.5 jam", "½ jam" -> "0.5 jam"
        norm = re.sub(rf"(\d+)\s*{sign}", partial(_plus, value), norm)
        norm = norm.replace(sign, _fmt(value))
    norm = re.sub(r"\bsatu setengah\b", "1.5", norm)
    norm = re.sub(r"\bsetengah\b", "0.5", norm)
    norm = re.sub(r"\bseperempat\b", "0.25", norm)
    norm = _QUALIFIER_RE.sub(" ", norm)

    def spelled_out(match: re.Match[str]) -> str:  # "1 (satu) hari": the digits, once checked
        digits, words = match[1], match[2].strip()
        value = number_words(words)
        if value is None:
            raise TimeParseError(f"waktu {text!r}: '({words})' after {digits} is not a number in words",
                                 f"write the number once, in digits: '{digits} ...'",
                                 pesan=f"waktu {text!r}: '({words})' setelah {digits} bukan bilangan yang ditulis "
                                       "dengan huruf",
                                 perbaikan=f"tulis bilangannya sekali saja, dengan angka: '{digits} ...'")
        if abs(value - _num(digits)) > 1e-9:
            raise TimeParseError(f"waktu {text!r}: the digits say {digits} but the words say {_fmt(value)}",
                                 "correct the digits or the words so that they agree (the digits are used)",
                                 pesan=f"waktu {text!r}: angkanya {digits} tetapi hurufnya {_fmt(value)}",
                                 perbaikan="perbaiki angka atau hurufnya supaya sama (yang dipakai adalah angkanya)")
        return digits
    norm = re.sub(rf"({_NUM})\s*\(\s*([a-z ]+)\s*\)", spelled_out, norm)
    norm = re.sub(r"(\d)([a-z×])", r"\1 \2", norm)  # "2hr" -> "2 hr", "6bulan" -> "6 bulan", "1x24" -> "1 x24"
    return re.sub(r"\s+", " ", norm).strip()


def parse_time(
    raw: str | int | float | None, clock: Literal["working", "elapsed"] | None = None
) -> TimeStandard | None:
    """Parse an Indonesian time standard.

    Returns ``None`` for a blank cell or ``0`` (a start/end terminator has no standard) and raises
    :class:`TimeParseError` for text that is not a time. ``clock`` (a model's ``clock:``) overrides how
    minutes, hours and ``N x 24 jam`` are counted.

    Besides the seeds' forms (``30 Menit``, ``1 hr``, ``2hr``, ``30 - 45 menit``, ``3 s/d 6bulan``,
    ``1 x 24 jam``, ``maks. 2 hari``) it reads ``3 hari kerja`` and ``3 HK`` (working days, like ``hari``),
    ``3 hari kalender`` (elapsed days), ``1 (satu) hari``, ``maks 2 hari``, ``paling lambat 2 hari``,
    ``1 s/d. 2 hari``, ``1 jam 30 menit``, ``½ jam``/``setengah jam`` and ``2 kali 24 jam``.
    ``2 x 24 jam kerja`` is refused: ``x 24 jam`` is elapsed time, ``jam kerja`` working time.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if text in {"", "-", "0"}:
        return None
    norm = _normalise(text)
    match = _X24_RE.match(norm)
    if match:
        n = match["n"]
        if match["kerja"]:
            raise TimeParseError(
                f"waktu {text!r} mixes two clocks: 'N x 24 jam' is elapsed time (a day and a night) and "
                "'jam kerja' is working time",
                f"write '{n} x 24 jam' for {_fmt(_num(n) * 24)} elapsed hours, or '{n} hari kerja' for "
                f"{n} working day(s)",
                pesan=f"waktu {text!r} mencampur dua jenis jam: 'N x 24 jam' adalah waktu kalender (sehari "
                      "semalam), sedangkan 'jam kerja' adalah waktu kerja",
                perbaikan=f"tulis '{n} x 24 jam' untuk {_fmt(_num(n) * 24)} jam waktu kalender, atau "
                          f"'{n} hari kerja' untuk {n} hari kerja")
        hours = _num(n) * 24
        if clock == "working":
            return TimeStandard(text, "working_minutes", None, hours * 60, "hour")
        return TimeStandard(text, "elapsed_minutes", None, hours * 60, "hour")
    match = _HOURS_MINUTES_RE.match(norm)
    if match:  # "1 jam 30 menit"
        minutes = _num(match["h"]) * 60 + _num(match["m"])
        measure: Measure = "elapsed_minutes" if clock == "elapsed" else "working_minutes"
        return TimeStandard(text, measure, None, minutes, "minute")
    match = _RANGE_RE.match(norm)
    if not match:
        (message, pesan), (fix, perbaikan) = _not_a_time(text, norm), _not_a_time_fix(norm)
        raise TimeParseError(message, fix, pesan=pesan, perbaikan=perbaikan)
    unit, size = _UNITS[match["unit"]]
    if match["lounit"] and _UNITS[match["lounit"]][0] != unit:
        raise TimeParseError(f"waktu {text!r}: the two ends of the range have different units",
                             "write both ends in one unit, e.g. '30 - 90 menit' or '1 - 2 hari'",
                             pesan=f"waktu {text!r}: kedua ujung rentangnya memakai satuan yang berbeda",
                             perbaikan="tulis kedua ujung dengan satu satuan, mis. '30 - 90 menit' atau '1 - 2 hari'")
    kind = match["kind"]
    if kind and (unit not in {"minute", "hour", "day"} or (kind == "kalender" and unit != "day")):
        without = norm.replace(" " + kind, "")
        raise TimeParseError(f"waktu {text!r}: '{kind}' does not go with {match['unit']}",
                             f"leave '{kind}' out: write '{without}'",
                             pesan=f"waktu {text!r}: '{kind}' tidak dapat dipakai bersama {match['unit']}",
                             perbaikan=f"hapus '{kind}': tulis '{without}'")
    hi = _num(match["hi"]) if match["hi"] else 1.0  # "bulan" alone means one month
    lo = _num(match["lo"]) if match["lo"] else None
    if lo is not None and lo > hi:
        swapped = f"'{match['hi']} - {match['lo']} {match['unit']}'"
        raise TimeParseError(f"waktu {text!r}: the range starts above its end; write the smaller number first",
                             f"write {swapped}",
                             pesan=f"waktu {text!r}: awal rentangnya lebih besar daripada akhirnya; tulis bilangan "
                                   "yang lebih kecil lebih dulu",
                             perbaikan=f"tulis {swapped}")
    if unit in {"minute", "hour"}:
        measure = "elapsed_minutes" if clock == "elapsed" else "working_minutes"
        return TimeStandard(text, measure, None if lo is None else lo * size, hi * size, unit)
    if unit == "day":
        if clock == "elapsed" or kind == "kalender":
            return TimeStandard(text, "elapsed_minutes", None if lo is None else lo * 1440, hi * 1440, unit)
        return TimeStandard(text, "working_days", lo, hi, unit)
    # weeks, months and years are calendar spans (a 3-6 month stay in a care home runs through holidays)
    return TimeStandard(text, "elapsed_minutes", None if lo is None else lo * size * 1440, hi * size * 1440, unit)


def _not_a_time(text: str, norm: str) -> tuple[str, str]:
    """Why ``text`` is refused: (English, Indonesian)."""
    if re.search(r"[x×]\s*(?!24)\d+\s*jam|kali\s*(?!24)\d+\s*jam", norm):
        return (f"waktu {text!r} is not a time standard ('N x 24 jam' is the only multiplied form)",
                f"waktu {text!r} bukan standar waktu ('N x 24 jam' satu-satunya bentuk perkalian)")
    return f"waktu {text!r} is not a time standard", f"waktu {text!r} bukan standar waktu"


def _not_a_time_fix(norm: str) -> tuple[str, str]:
    """What to write instead, (English, Indonesian): the digits for a number in words ("tiga hari" ->
    "3 hari"), else examples."""
    words = norm.split()
    for cut in range(len(words) - 1, 0, -1):
        value = number_words(" ".join(words[:cut]))
        rest = " ".join(words[cut:])
        if value is not None and _RANGE_RE.match(f"1 {rest}"):
            return (f"write the number in digits: '{_fmt(value)} {rest}'",
                    f"tulis bilangannya dengan angka: '{_fmt(value)} {rest}'")
    if re.search(r"\b(detik|dtk)\b", norm):
        return ("a standard is at least a minute: write it in menit, e.g. '1 menit'",
                "standar waktu paling sedikit satu menit: tulis dalam menit, mis. '1 menit'")
    return TIME_EXAMPLES, CONTOH_WAKTU


# ---------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------

Severity = Literal["low", "medium", "high"]
Symbol = Literal["terminator", "process", "decision", "document"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Source(_Strict):
    file: str
    table: str | None = None
    position: str | None = None  # where in the file (page, heading), for a supervisor checking the paper


class Dates(_Strict):
    made: str | dt.date | None = None
    revision: str | dt.date | None = None
    effective: str | dt.date | None = None


class Role(_Strict):
    label: str
    aliases: list[str] = Field(default_factory=list)  # how exports may name the role


class Step(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    no: str | None = None
    activity: str
    role: str | None = None
    co_roles: list[str] = Field(default_factory=list)  # a second lane marked on the same row
    documents: list[str] = Field(default_factory=list)
    time: str | None = None
    output: str | None = None
    notes: str | None = None
    optional: bool = False
    repeat: bool = False
    symbol: Symbol | None = None
    severity: Severity | None = None
    aliases: list[str] = Field(default_factory=list)  # other activity labels seen in logs

    @field_validator("no", "time", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class FlowEdge(_Strict):
    from_: str = Field(alias="from")
    to: list[str]
    condition: str | None = None  # the decision's question, as the original words it

    @field_validator("to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Sla(_Strict):
    """A standard between two points of a case (Bontang: scheduling within 1 x 24 jam of the request)."""

    id: str
    from_: str = Field(alias="from")
    to: str
    time: str
    text: str | None = None
    severity: Severity | None = None


RuleCheck = Literal[
    "attendance_min_share",
    "absence_max_days",
    "absence_max_share",
    "escalation_order",
    "remedial_below_pass",
]
RuleInput = Literal["attendance_daily", "escalation_events", "scores"]


class Rule(_Strict):
    """A checkable rule of a rule-type document (SMK N 1 Petasia academic rules)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    article: str
    text: str
    check: RuleCheck
    input: RuleInput
    params: dict[str, float | int | str | list[str]] = Field(default_factory=dict)
    severity: Severity = "medium"


class SopModel(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+/[a-z0-9][a-z0-9._-]*$")
    institution: str
    number: str | None = None
    title: str
    kind: Literal["procedure", "rules"] = "procedure"
    source: Source
    dates: Dates = Dates()
    approved_by: str | None = None
    legal_basis: list[str] = Field(default_factory=list)
    qualifications: list[str] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list)
    equipment: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    records: list[str] = Field(default_factory=list)
    roles: dict[str, Role] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    flow: list[FlowEdge] = Field(default_factory=list)
    case_time: str | None = None
    slas: list[Sla] = Field(default_factory=list)
    clock: Literal["working", "elapsed"] | None = None
    severity: Severity | None = None  # overrides the per-kind defaults (pipeline.deviations)
    rules: list[Rule] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # transcription judgement calls

    # -- derived views -------------------------------------------------------------------------------

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def successors(self) -> dict[str, list[str]]:
        """Each step's possible next steps (``END`` ends the case).

        A plain table runs top to bottom; a ``flow`` edge replaces the default successor of its ``from``
        step with a choice between its targets (a decision, or a jump back for a loop).
        """
        succ: dict[str, list[str]] = {}
        ids = self.step_ids
        for i, sid in enumerate(ids):
            succ[sid] = [ids[i + 1]] if i + 1 < len(ids) else [END]
        for edge in self.flow:
            succ[edge.from_] = list(edge.to)
        return succ

    def time_standard(self, step_id: str) -> TimeStandard | None:
        return parse_time(self.step(step_id).time, self.clock)

    def content_hash(self) -> str:
        """Hash of everything that changes what a conformance check means (for caches)."""
        payload = self.model_dump(mode="json", by_alias=True)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Problems and loading
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a look) in a model file (or institutions.yaml).

    ``message`` and ``fix`` are English; ``pesan`` and ``perbaikan`` say the same in Indonesian, with field
    names, ids and quoted values verbatim. They are required keywords: no problem is made without them.
    """

    file: str
    message: str
    fix: str
    line: int | None = None
    step: str | None = None
    level: Literal["error", "warning"] = "error"
    _: KW_ONLY
    pesan: str
    perbaikan: str

    def render(self) -> str:
        """English: ``file:line [step s2]: error: message. Fix: fix``."""
        return self._render("step", self.level, f"{self.message}. Fix: {self.fix}")

    def render_pesan(self) -> str:
        """Indonesian: ``file:line [langkah s2]: galat: pesan. Perbaikan: perbaikan``."""
        tingkat = "galat" if self.level == "error" else "peringatan"
        return self._render("langkah", tingkat, f"{self.pesan}. Perbaikan: {self.perbaikan}")

    def _render(self, step_word: str, level: str, text: str) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        step = f" [{step_word} {self.step}]" if self.step else ""
        return f"{where}{step}: {level}: {text}"


@dataclass
class LoadedModel:
    path: Path
    model: SopModel | None
    problems: list[Problem] = field(default_factory=list)
    declared_id: str | None = None  # the file's ``id:`` when it has one, also when the model has errors


def shown_path(path: Path, root: Path | None) -> str:
    """A file as messages name it: relative to the catalogue folder when it lies inside it, else as given."""
    if root is not None:
        for p, r in ((path, root), (path.absolute(), root.absolute()), (path.resolve(), root.resolve())):
            if p.is_relative_to(r):
                return str(p.relative_to(r))
    return str(path)


def _node_line(root: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, best effort."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if k.value == key or (key == "from_" and k.value == "from"):
                    found = (k, v)
                    break
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _step_of(data: Any, loc: tuple[int | str, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(data, dict):
        steps = data.get("steps")
        if isinstance(steps, list) and loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
            return str(steps[loc[1]].get("id", f"#{loc[1] + 1}"))
    return None


FIELDS_HELP = "the README's 'SOP models' section lists every field"
BANTUAN_ISIAN = "semua isian tercantum di bagian 'SOP models' pada README"

# Indonesian (and near-English) names people write for a field, per kind of entry: "waktu:" -> "time"
_FIELD_WORDS: dict[str, dict[str, str]] = {
    "model": {
        "nomor": "number", "nomor_sop": "number", "no": "number", "judul": "title", "nama": "title",
        "nama_sop": "title", "instansi": "institution", "lembaga": "institution", "sekolah": "institution",
        "jenis": "kind", "sumber": "source", "tanggal": "dates", "disahkan_oleh": "approved_by",
        "dasar_hukum": "legal_basis", "kualifikasi": "qualifications", "kualifikasi_pelaksana": "qualifications",
        "keterkaitan": "related", "peralatan": "equipment", "perlengkapan": "equipment",
        "peringatan": "warnings", "pencatatan": "records", "pendataan": "records", "peran": "roles",
        "pelaksana": "roles", "role": "roles", "langkah": "steps", "kegiatan": "steps", "step": "steps",
        "alur": "flow", "waktu_kasus": "case_time", "batas_waktu": "case_time", "waktu": "case_time",
        "time": "case_time", "sla": "slas", "jam": "clock", "catatan": "notes", "aturan": "rules",
        "tingkat": "severity",
    },
    "step": {
        "waktu": "time", "durasi": "time", "lama": "time", "standar_waktu": "time", "dokumen": "documents",
        "document": "documents", "kelengkapan": "documents", "persyaratan": "documents", "peran": "role",
        "pelaksana": "role", "kegiatan": "activity", "aktivitas": "activity", "nama": "activity",
        "keluaran": "output", "hasil": "output", "keterangan": "notes", "catatan": "notes", "ket": "notes",
        "nomor": "no", "number": "no", "opsional": "optional", "pilihan": "optional", "berulang": "repeat",
        "ulang": "repeat", "simbol": "symbol", "tingkat": "severity", "alias": "aliases",
        "pelaksana_lain": "co_roles", "peran_lain": "co_roles",
    },
    "flow": {"dari": "from", "ke": "to", "kondisi": "condition", "syarat": "condition", "pertanyaan": "condition"},
    "sla": {"dari": "from", "ke": "to", "waktu": "time", "teks": "text", "keterangan": "text",
            "tingkat": "severity"},
    "role": {"nama": "label", "alias": "aliases"},
    "source": {"berkas": "file", "tabel": "table", "posisi": "position", "halaman": "position"},
    "dates": {"dibuat": "made", "pembuatan": "made", "revisi": "revision", "efektif": "effective"},
    "rule": {"pasal": "article", "teks": "text", "aturan": "text", "cek": "check", "pemeriksaan": "check",
             "masukan": "input", "parameter": "params", "tingkat": "severity"},
}


# an entry's kind in Indonesian: "langkah s2", "entri flow ke-2", "peran 'guru_bk'"
_KIND_ID = {"step": "langkah", "flow": "entri flow", "sla": "sla", "rule": "aturan", "role": "peran",
            "source": "source", "dates": "dates", "model": "model"}


def _entry_of(data: Any, loc: tuple[int | str, ...]) -> tuple[str, str, str, tuple[int | str, ...]]:
    """(kind of entry, how a message names it in English, the same in Indonesian, the rest of the location)
    for a pydantic error location."""
    head = loc[0] if loc else None
    entries = {"steps": "step", "flow": "flow", "slas": "sla", "rules": "rule"}
    if head in entries and len(loc) >= 2 and isinstance(loc[1], int):
        kind = entries[str(head)]
        items = data.get(str(head)) if isinstance(data, dict) else None
        ident = None
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            ident = items[loc[1]].get("id")
        if kind == "flow" or not ident:  # "flow entry 2", "step #3" (1-based, as the file is read)
            name = f"flow entry {loc[1] + 1}" if kind == "flow" else f"{kind} #{loc[1] + 1}"
            nama = f"{_KIND_ID[kind]} ke-{loc[1] + 1}"
        else:
            name = f"sla '{ident}'" if kind == "sla" else f"{kind} {ident}"
            nama = f"sla '{ident}'" if kind == "sla" else f"{_KIND_ID[kind]} {ident}"
        return kind, name, nama, loc[2:]
    if head == "roles" and len(loc) >= 2:
        return "role", f"role '{loc[1]}'", f"peran '{loc[1]}'", loc[2:]
    if head in ("source", "dates") and len(loc) >= 2:
        return str(head), str(head), str(head), loc[1:]
    return "model", "the model", "model", loc


_ENTRY_CLASS: dict[str, type[BaseModel]] = {"model": SopModel, "step": Step, "flow": FlowEdge, "sla": Sla,
                                             "role": Role, "source": Source, "dates": Dates, "rule": Rule}


def entry_fields(kind: str) -> list[str]:
    cls = _ENTRY_CLASS[kind]
    return [f.alias or name for name, f in cls.model_fields.items()]


def suggest_field(kind: str, name: str) -> str | None:
    """The field meant by an unknown field name: "waktu" -> "time" (a step), "judl" -> "title"."""
    fields = entry_fields(kind)
    word = name.strip().lower().replace(" ", "_").replace("-", "_")
    if word in fields:
        return word
    meant = _FIELD_WORDS.get(kind, {}).get(word)
    if meant in fields:
        return meant
    close = difflib.get_close_matches(word, fields, n=1, cutoff=0.6)
    return close[0] if close else None


# what a value must be, per pydantic error type: (English, Indonesian)
_SHAPES = {"list_type": ("a list, e.g. [a, b]", "daftar, mis. [a, b]"),
           "dict_type": ("a mapping of 'key: value' lines", "pemetaan baris 'kunci: nilai'"),
           "model_type": ("a mapping of 'field: value' lines", "pemetaan baris 'isian: nilai'")}
_STEP_ID = ("a step or rule id: lower-case letters, digits and '_', starting with a letter, e.g. s1, s4b",
            "id langkah atau aturan: huruf kecil, angka dan '_', diawali huruf, mis. s1, s4b")
_MODEL_ID = ("a model id '<institution>/<name>' in lower-case letters, digits, '-' and '.', "
             "e.g. smpn2-ngawi/bk001-prosedur",
             "id model '<lembaga>/<nama>' dari huruf kecil, angka, '-' dan '.', mis. smpn2-ngawi/bk001-prosedur")


def _schema_problem(shown: str, data: Any, node: yaml.Node | None, err: Any) -> Problem:
    """One pydantic error as a problem: where (entry and field), what was expected, how to fix it."""
    loc = tuple(err["loc"])
    kind, entry, nama, rest = _entry_of(data, loc)
    name = ".".join(str(p) for p in rest).replace("from_", "from")
    where = entry if not name else (name if kind == "model" else f"{entry}, {name}")
    di = nama if not name else (name if kind == "model" else f"{nama}, {name}")
    line, step = _node_line(node, loc), _step_of(data, loc)
    fields = ", ".join(entry_fields(kind))
    kind_name = {"model": "the model", "flow": "a flow entry", "sla": "an sla", "source": "source",
                 "dates": "dates"}.get(kind, f"a {kind}")
    etype = err["type"]
    field_name = str(loc[-1]) if loc else ""
    place, tempat = ("", "") if kind == "model" else (f" in {entry}", f" pada {nama}")
    if etype == "extra_forbidden":
        meant = suggest_field(kind, field_name)
        guess, tebakan = (f" (did you mean '{meant}'?)", f" (maksud Anda '{meant}'?)") if meant else ("", "")
        fix = ("remove the field or correct its spelling: "
               + (f"rename '{field_name}' to '{meant}'; " if meant else "")
               + f"the fields of {kind_name} are {fields} ({FIELDS_HELP})")
        perbaikan = ("hapus isian ini atau perbaiki ejaannya: "
                     + (f"ganti nama '{field_name}' menjadi '{meant}'; " if meant else "")
                     + f"isian {_KIND_ID[kind]} adalah {fields} ({BANTUAN_ISIAN})")
        return Problem(shown, f"unknown field '{field_name}'{place}{guess}", fix, line, step,
                       pesan=f"isian '{field_name}'{tempat} tidak dikenal{tebakan}", perbaikan=perbaikan)
    if etype == "missing":
        field_name = field_name.replace("from_", "from")
        return Problem(shown, f"missing field '{field_name}'{place}", f"add '{field_name}: ...' ({FIELDS_HELP})",
                       line, step, pesan=f"isian wajib '{field_name}'{tempat} belum ada",
                       perbaikan=f"tambahkan '{field_name}: ...' ({BANTUAN_ISIAN})")
    got = err.get("input")
    shown_value = not isinstance(got, dict | list)
    got_text, tertulis = (f" (got {got!r})", f" (tertulis {got!r})") if shown_value else ("", "")
    if etype == "string_pattern_mismatch":
        what, apa = _STEP_ID if rest and rest[-1] == "id" and kind != "model" else _MODEL_ID
        return Problem(shown, f"{where}: not {what}{got_text}", f"write {what}", line, step,
                       pesan=f"{di}: bukan {apa}{tertulis}", perbaikan=f"tulis {apa}")
    if etype == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return Problem(shown, f"{where}: expected {expected}{got_text}", f"write one of {expected}", line, step,
                       pesan=f"{di}: seharusnya {pilihan(expected)}{tertulis}",
                       perbaikan=f"tulis salah satu dari {pilihan(expected)}")
    if etype == "bool_type" or etype == "bool_parsing":
        return Problem(shown, f"{where}: expected true or false{got_text}", "write true or false", line, step,
                       pesan=f"{di}: seharusnya true atau false{tertulis}", perbaikan="tulis true atau false")
    if etype in _SHAPES:
        shape, bentuk = _SHAPES[etype]
        return Problem(shown, f"{where}: expected {shape}{got_text}", f"write {shape} ({FIELDS_HELP})", line, step,
                       pesan=f"{di}: seharusnya {bentuk}{tertulis}", perbaikan=f"tulis {bentuk} ({BANTUAN_ISIAN})")
    return Problem(shown, f"{where}: {err['msg']}{got_text}", f"correct the value ({FIELDS_HELP})", line, step,
                   pesan=f"{di}: {pydantic_pesan(err)}{tertulis}", perbaikan=f"perbaiki nilainya ({BANTUAN_ISIAN})")


def load_model_file(path: Path, root: Path | None = None,
                    institutions: Mapping[str, float | None] | None = None) -> LoadedModel:
    """Parse and validate one model file; every problem is returned, nothing raises.

    ``institutions`` (the ids of institutions.yaml, each with its average working minutes per working day,
    None when unknown) adds the checks that need them: the model's institution exists, and hours standards
    are compared with the institution's working day."""
    shown = shown_path(path, root)
    try:
        text = path.read_text(encoding="utf-8")
        node, data = read_yaml_with_nodes(text)
    except (OSError, UnicodeDecodeError) as exc:
        why = os_reason(exc) if isinstance(exc, OSError) else "bukan teks UTF-8"
        return LoadedModel(path, None, [Problem(shown, f"cannot read the file ({exc})", "save it as UTF-8 text",
                                                pesan=f"berkas tidak dapat dibaca ({why})",
                                                perbaikan="simpan sebagai teks UTF-8")])
    except yaml.YAMLError as exc:
        line, found, ditemukan = yaml_problem(exc)
        return LoadedModel(path, None, [Problem(shown, f"not valid YAML ({found})",
                                                "check indentation and quoting; a ':' inside text needs quotes", line,
                                                pesan=f"bukan YAML yang valid ({ditemukan})",
                                                perbaikan="periksa indentasi dan tanda kutip; teks yang memuat ':' "
                                                          "harus diberi tanda kutip")])
    if not isinstance(data, dict):
        return LoadedModel(path, None, [Problem(shown, "the file is not a YAML mapping", "start with 'id: ...'",
                                                pesan="isi berkas bukan pemetaan YAML",
                                                perbaikan="awali berkas dengan 'id: ...'")])
    declared = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        model = SopModel.model_validate(data)
    except ValidationError as exc:
        problems = [_schema_problem(shown, data, node, err) for err in exc.errors()]
        return LoadedModel(path, None, problems, declared)
    problems = check_model(model, shown, node, institutions)
    return LoadedModel(path, model if not any(p.level == "error" for p in problems) else None, problems, declared)


def _institution_problems(model: SopModel, shown: str, node: yaml.Node | None,
                          institutions: Mapping[str, float | None] | None) -> list[Problem]:
    """The model's ``institution:`` against institutions.yaml and the id's prefix."""
    prefix = model.id.split("/", 1)[0]
    id_line, inst_line = _node_line(node, ["id"]), _node_line(node, ["institution"])
    if institutions is not None and model.institution not in institutions:
        known = ", ".join(sorted(institutions))
        unknown = (f"institution '{model.institution}' is not in institutions.yaml (known: {known or 'none'})",
                   f"lembaga '{model.institution}' tidak ada di institutions.yaml "
                   f"(yang dikenal: {known or 'tidak ada'})")
        if prefix in institutions:
            return [Problem(shown, f"{unknown[0]}, but the id's prefix '{prefix}' is",
                            f"correct the line to 'institution: {prefix}'", inst_line,
                            pesan=f"{unknown[1]}, padahal awalan id '{prefix}' ada",
                            perbaikan=f"ubah barisnya menjadi 'institution: {prefix}'")]
        close = difflib.get_close_matches(model.institution, list(institutions), n=1, cutoff=0.6)
        guess, tebakan = (f" (did you mean '{close[0]}'?)", f" (maksud Anda '{close[0]}'?)") if close else ("", "")
        if close:
            fix = f"write 'institution: {close[0]}' and start the id with '{close[0]}/'"
            perbaikan = f"tulis 'institution: {close[0]}' dan awali id dengan '{close[0]}/'"
        else:
            fix = ("use the id of an institution in institutions.yaml (in 'institution:' and as the id's prefix), "
                   "or add the institution to institutions.yaml")
            perbaikan = ("pakai id lembaga yang ada di institutions.yaml (di 'institution:' dan sebagai awalan id), "
                         "atau tambahkan lembaga itu ke institutions.yaml")
        if prefix != model.institution:
            fix += f" (the id's prefix '{prefix}' is not known either)"
            perbaikan += f" (awalan id '{prefix}' juga tidak dikenal)"
        return [Problem(shown, unknown[0] + guess, fix, inst_line, pesan=unknown[1] + tebakan, perbaikan=perbaikan)]
    if prefix != model.institution:
        renamed = f"'{model.institution}/{model.id.split('/', 1)[-1]}'"
        return [Problem(shown, f"id '{model.id}' does not start with its institution '{model.institution}/'",
                        f"rename the id to {renamed}", id_line,
                        pesan=f"id '{model.id}' tidak diawali lembaganya '{model.institution}/'",
                        perbaikan=f"ganti id menjadi {renamed}")]
    return []


def _angka(value: float) -> str:
    """A number as Indonesian prose writes it: a decimal comma (5,9 jam)."""
    return _fmt(value).replace(".", ",")


def _hours_warning(standard: TimeStandard | None, where: tuple[str, str], day_minutes: float | None,
                   institution: str, shown: str, line: int | None, step: str | None) -> Problem | None:
    """A working-hours standard of a working day or more ("24 jam" is 24 *working* hours) as a warning;
    ``where`` names the field (English, Indonesian)."""
    if standard is None or standard.measure != "working_minutes":
        return None
    day = day_minutes or DEFAULT_DAY_MINUTES
    if standard.maximum < day or _X24_RE.match(_normalise(standard.raw)):  # "1 x 24 jam" under clock: working
        return None
    hours = standard.maximum / 60
    days = standard.maximum / day
    if day_minutes:
        on = f"on {institution}'s calendar ({_fmt(round(day / 60, 1))} working hours a day)"
        menurut = f"menurut kalender {institution} ({_angka(round(day / 60, 1))} jam kerja sehari)"
    else:
        on = f"at {_fmt(DEFAULT_DAY_MINUTES / 60)} working hours a day"
        menurut = f"dengan {_angka(DEFAULT_DAY_MINUTES / 60)} jam kerja sehari"
    message = (f"{where[0]} '{standard.raw}' counts {_fmt(round(hours, 2))} working hours, about "
               f"{_fmt(round(days, 1))} working day(s) {on}")
    pesan = (f"{where[1]} '{standard.raw}' terhitung {_angka(round(hours, 2))} jam kerja, kira-kira "
             f"{_angka(round(days, 1))} hari kerja {menurut}")
    n_days = max(1, round(days))
    fix = (f"if working days are meant, write '{n_days} hari'; keep it if {_fmt(round(hours, 2))} "
           "working hours is meant")
    perbaikan = (f"jika yang dimaksud hari kerja, tulis '{n_days} hari'; biarkan jika memang "
                 f"{_angka(round(hours, 2))} jam kerja")
    if hours % 24 == 0:
        fix = f"if a day and a night is meant, write '{_fmt(hours / 24)} x 24 jam' (elapsed time); {fix}"
        perbaikan = (f"jika yang dimaksud sehari semalam, tulis '{_fmt(hours / 24)} x 24 jam' (waktu kalender); "
                     f"{perbaikan}")
    return Problem(shown, message, fix, line, step, "warning", pesan=pesan, perbaikan=perbaikan)


DEFAULT_DAY_MINUTES = 360.0  # a working day when the institution's calendar is not known (6 hours)


def check_model(model: SopModel, shown: str, node: yaml.Node | None = None,
                institutions: Mapping[str, float | None] | None = None) -> list[Problem]:
    """Structural checks that a schema alone cannot express (``institutions``: see :func:`load_model_file`)."""
    problems: list[Problem] = []

    def step_line(index: int, key: str | None = None) -> int | None:
        loc: list[int | str] = ["steps", index]
        if key:
            loc.append(key)
        return _node_line(node, loc)

    day_minutes = institutions.get(model.institution) if institutions is not None else None

    def time_problems(raw: str | None, where: tuple[str, str], line: int | None, step: str | None) -> None:
        """A time standard that cannot be read (an error) or may not mean what it says (a warning); ``where``
        names the field, in English and in Indonesian."""
        try:
            standard = parse_time(raw, model.clock)
        except TimeParseError as exc:
            problems.append(Problem(shown, f"{where[0]}: {exc}", exc.fix, line, step,
                                    pesan=f"{where[1]}: {exc.pesan}", perbaikan=exc.perbaikan))
            return
        warned = _hours_warning(standard, where, day_minutes, model.institution, shown, line, step)
        if warned:
            problems.append(warned)

    problems.extend(_institution_problems(model, shown, node, institutions))
    if model.kind == "rules":
        if not model.rules:
            problems.append(Problem(shown, "a rules model has no rules", "add 'rules:' entries or use kind: procedure",
                                    pesan="model aturan ini tidak punya aturan",
                                    perbaikan="tambahkan entri 'rules:' atau pakai kind: procedure"))
        return problems
    if not model.steps:
        problems.append(Problem(shown, "the model has no steps", "copy the step table into 'steps:'",
                                pesan="model ini tidak punya langkah", perbaikan="salin tabel langkah ke 'steps:'"))
        return problems

    some_ids = f"{', '.join(model.step_ids[:6])}, ..."
    seen_ids: dict[str, int] = {}
    seen_no: dict[str, str] = {}
    role_names = _role_names(model)
    for i, step in enumerate(model.steps):
        if step.id in seen_ids:
            problems.append(Problem(shown, f"duplicate step id '{step.id}' (also step #{seen_ids[step.id] + 1})",
                                    "give every step its own id, e.g. s4b for a repeated number",
                                    step_line(i, "id"), step.id,
                                    pesan=f"id langkah '{step.id}' ganda (juga langkah ke-{seen_ids[step.id] + 1})",
                                    perbaikan="beri setiap langkah id sendiri, mis. s4b untuk nomor yang berulang"))
        seen_ids.setdefault(step.id, i)
        for key, role in [("role", step.role), *(("co_roles", r) for r in step.co_roles)]:
            if role is not None and role not in model.roles:
                known = ", ".join(sorted(model.roles))
                meant = _suggest_role(role, role_names)
                guess, tebakan = (f" (did you mean '{meant}'?)", f" (maksud Anda '{meant}'?)") if meant else ("", "")
                if meant:
                    fix = f"write '{key}: {meant}', or add '{role}' under 'roles:'"
                    perbaikan = f"tulis '{key}: {meant}', atau tambahkan '{role}' di bawah 'roles:'"
                else:
                    fix = f"add it under 'roles:' (e.g. '{role}: {{label: ...}}') or use one of the known role keys"
                    perbaikan = (f"tambahkan di bawah 'roles:' (mis. '{role}: {{label: ...}}') atau pakai salah satu "
                                 "kunci peran yang dikenal")
                problems.append(Problem(shown, f"{key}: unknown role '{role}' (known: {known or 'none defined'})"
                                               f"{guess}", fix, step_line(i, key), step.id,
                                        pesan=f"{key}: peran '{role}' tidak dikenal (yang dikenal: "
                                              f"{known or 'belum ada yang didefinisikan'}){tebakan}",
                                        perbaikan=perbaikan))
        time_problems(step.time, ("time", "time"), step_line(i, "time"), step.id)
        if step.no:
            if step.no in seen_no:
                problems.append(Problem(shown, f"number '{step.no}' is used twice (steps {seen_no[step.no]} and "
                                               f"{step.id})",
                                        "fine when the original repeats it; keep 'no' as printed",
                                        step_line(i, "no"), step.id, "warning",
                                        pesan=f"nomor '{step.no}' dipakai dua kali (langkah {seen_no[step.no]} dan "
                                              f"{step.id})",
                                        perbaikan="tidak apa-apa jika dokumen aslinya memang begitu; tulis 'no' "
                                                  "seperti yang tercetak"))
            seen_no.setdefault(step.no, step.id)

    ids = set(seen_ids)
    index = {sid: i for sid, i in seen_ids.items()}
    flow_from: dict[str, int] = {}
    for j, edge in enumerate(model.flow):
        line = _node_line(node, ["flow", j])
        for target in [edge.from_, *edge.to]:
            if target != END and target not in ids:
                close = difflib.get_close_matches(target, sorted(ids), n=1, cutoff=0.6)
                guess, tebakan = (f" (did you mean '{close[0]}'?)", f" (maksud Anda '{close[0]}'?)") if close \
                    else ("", "")
                problems.append(Problem(shown, f"flow edge {j + 1} names step '{target}', which does not exist{guess}",
                                        f"use an existing step id ({some_ids}) or '{END}'", line, edge.from_,
                                        pesan=f"entri flow ke-{j + 1} menyebut langkah '{target}', yang tidak ada"
                                              f"{tebakan}",
                                        perbaikan=f"pakai id langkah yang ada ({some_ids}) atau '{END}'"))
        if edge.from_ == END:
            problems.append(Problem(shown, "a flow edge starts at 'end'", "start edges at a step", line,
                                    pesan="sebuah entri flow berawal di 'end'",
                                    perbaikan="awali entri flow dari sebuah langkah"))
        if not edge.to:
            problems.append(Problem(shown, f"flow edge {j + 1} (from '{edge.from_}') has no target",
                                    f"list where the case goes next: 'to: [<step id>, ...]' or 'to: {END}'",
                                    line, edge.from_,
                                    pesan=f"entri flow ke-{j + 1} (dari '{edge.from_}') tidak punya tujuan",
                                    perbaikan=f"tulis ke mana kasus berlanjut: 'to: [<id langkah>, ...]' atau "
                                              f"'to: {END}'"))
        if edge.from_ in flow_from:
            first = flow_from[edge.from_]
            dropped = ", ".join(model.flow[first].to)
            merged = f"'- {{from: {edge.from_}, to: [{', '.join(dict.fromkeys([*model.flow[first].to, *edge.to]))}]}}'"
            problems.append(Problem(
                shown, f"flow edges {first + 1} and {j + 1} both start at '{edge.from_}': only one can count, so "
                       f"edge {first + 1}'s targets ({dropped}) would be dropped",
                f"merge them into one entry: {merged}", line, edge.from_,
                pesan=f"entri flow ke-{first + 1} dan ke-{j + 1} sama-sama berawal di '{edge.from_}': hanya satu yang "
                      f"dapat berlaku, sehingga tujuan entri ke-{first + 1} ({dropped}) akan terbuang",
                perbaikan=f"gabungkan keduanya menjadi satu entri: {merged}"))
        flow_from.setdefault(edge.from_, j)
    seen_sla: dict[str, int] = {}
    for k, sla in enumerate(model.slas):
        line = _node_line(node, ["slas", k])
        for key, target in (("from", sla.from_), ("to", sla.to)):
            if target not in ids:
                problems.append(Problem(shown, f"sla '{sla.id}', {key}: step '{target}' does not exist",
                                        f"use an existing step id ({some_ids})",
                                        _node_line(node, ["slas", k, key]) or line,
                                        pesan=f"sla '{sla.id}', {key}: langkah '{target}' tidak ada",
                                        perbaikan=f"pakai id langkah yang ada ({some_ids})"))
        if sla.id in seen_sla:
            problems.append(Problem(shown, f"sla id '{sla.id}' is used twice (slas entries {seen_sla[sla.id] + 1} "
                                           f"and {k + 1})",
                                    "give every sla its own id (deviations name it)",
                                    _node_line(node, ["slas", k, "id"]),
                                    pesan=f"id sla '{sla.id}' dipakai dua kali (entri slas ke-{seen_sla[sla.id] + 1} "
                                          f"dan ke-{k + 1})",
                                    perbaikan="beri setiap sla id sendiri (penyimpangan menyebut id itu)"))
        seen_sla.setdefault(sla.id, k)
        if sla.from_ == sla.to and sla.from_ in ids:
            problems.append(Problem(shown, f"sla '{sla.id}' goes from step '{sla.from_}' to itself",
                                    "an sla runs between two steps (the earlier one in 'from'); a step's own "
                                    "duration belongs in its 'time:'", line,
                                    pesan=f"sla '{sla.id}' berawal dan berakhir di langkah yang sama, '{sla.from_}'",
                                    perbaikan="sla berlaku antara dua langkah (yang lebih awal di 'from'); lama satu "
                                              "langkah ditulis di 'time:' langkah itu"))
        elif sla.from_ in index and sla.to in index and index[sla.to] < index[sla.from_]:
            row_from, row_to = index[sla.from_] + 1, index[sla.to] + 1
            problems.append(Problem(shown, f"sla '{sla.id}' runs from step '{sla.from_}' (row {row_from}) "
                                           f"back to the earlier step '{sla.to}' (row {row_to})",
                                    f"put the earlier step in 'from': 'from: {sla.to}, to: {sla.from_}'", line,
                                    pesan=f"sla '{sla.id}' berjalan dari langkah '{sla.from_}' (baris tabel "
                                          f"{row_from}) mundur ke langkah '{sla.to}' yang lebih awal (baris tabel "
                                          f"{row_to})",
                                    perbaikan=f"tulis langkah yang lebih awal di 'from': "
                                              f"'from: {sla.to}, to: {sla.from_}'"))
        time_problems(sla.time, (f"sla '{sla.id}' time", f"sla '{sla.id}', time"),
                      _node_line(node, ["slas", k, "time"]), None)
    time_problems(model.case_time, ("case_time", "case_time"), _node_line(node, ["case_time"]), None)
    if any(p.level == "error" for p in problems):
        return problems

    succ = model.successors()
    reachable = _reachable(model.steps[0].id, succ, model)
    for i, step in enumerate(model.steps):
        if step.id not in reachable:
            problems.append(Problem(shown, f"step '{step.id}' can never be reached from the first step",
                                    "add a flow edge into it, or remove it", step_line(i), step.id,
                                    pesan=f"langkah '{step.id}' tidak pernah dapat dicapai dari langkah pertama",
                                    perbaikan="tambahkan entri flow yang menuju langkah ini, atau hapus langkahnya"))
    reverse: dict[str, list[str]] = {}
    for src, targets in succ.items():
        for t in targets:
            reverse.setdefault(t, []).append(src)
    can_end = _reachable(END, reverse, None)
    stuck = {sid for sid in reachable if sid != END and sid not in can_end}
    explained: set[str] = set()
    for j, edge in enumerate(model.flow):
        if edge.from_ not in stuck:
            continue
        # this edge replaced its step's way on (the next row, or the end) with targets that never get out
        loop = sorted(_reachable(edge.from_, succ, None) & stuck, key=index.__getitem__)
        explained.update(loop)
        inside = ", ".join(loop)
        i = index[edge.from_]
        default_next = model.step_ids[i + 1] if i + 1 < len(model.steps) else END
        way_out = f"'- {{from: {edge.from_}, to: [{', '.join([*edge.to, default_next])}]}}'"
        problems.append(Problem(
            shown, f"flow edge {j + 1} (from {edge.from_} to {', '.join(edge.to)}) closes a loop with no way out: "
                   f"step(s) {inside} can never reach the end",
            f"give the loop a way out, e.g. {way_out} (or mark a step that is repeated in place 'repeat: true' "
            "instead of a flow edge back)",
            _node_line(node, ["flow", j]), edge.from_,
            pesan=f"entri flow ke-{j + 1} (dari {edge.from_} ke {', '.join(edge.to)}) membentuk putaran tanpa jalan "
                  f"keluar: langkah {inside} tidak pernah dapat mencapai akhir",
            perbaikan=f"beri putaran itu jalan keluar, mis. {way_out} (atau, untuk langkah yang diulang di tempat, "
                      "tandai langkahnya 'repeat: true' alih-alih memakai entri flow yang kembali)"))
    for i, step in enumerate(model.steps):
        if step.id in stuck and step.id not in explained and not any(e.from_ in stuck for e in model.flow):
            problems.append(Problem(shown, f"step '{step.id}' can never reach the end (a loop with no way out)",
                                    "give the loop a flow edge that leaves it, e.g. to the next step or 'end'",
                                    step_line(i), step.id,
                                    pesan=f"langkah '{step.id}' tidak pernah dapat mencapai akhir (putaran tanpa "
                                          "jalan keluar)",
                                    perbaikan="beri putaran itu entri flow yang keluar darinya, mis. ke langkah "
                                              "berikutnya atau ke 'end'"))
    return problems


def _role_names(model: SopModel) -> dict[str, str]:
    """Every way a step may have meant a role (its key, its label, its aliases, lower-case) -> the role key."""
    names: dict[str, str] = {}
    for key, role in model.roles.items():
        for name in [key, role.label, *role.aliases]:
            names.setdefault(name.strip().lower(), key)
            names.setdefault(re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_"), key)
    return names


def _suggest_role(role: str, names: dict[str, str]) -> str | None:
    word = role.strip().lower()
    if word in names:
        return names[word]
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else None


def _reachable(start: str, graph: dict[str, list[str]], model: SopModel | None) -> set[str]:
    """Nodes reachable from ``start``; with a model, optional steps may be skipped."""
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        nexts = list(graph.get(node, []))
        if model is not None and node != END and model.step(node).optional:
            pass  # skipping an optional step leads to its successors, already in nexts
        for n in nexts:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


# ---------------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    root: Path
    models: dict[str, SopModel]
    files: dict[str, Path]
    problems: list[Problem]
    broken: dict[str, Path] = field(default_factory=dict)  # SOP id -> its file, for files with errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    def get(self, sop_id: str) -> SopModel:
        """The model ``sop_id``; a :class:`NotFoundError` (a UserError and a KeyError) whose message says why it
        is not there and what to run."""
        try:
            return self.models[sop_id]
        except KeyError:
            pass
        if sop_id in self.broken:
            from pipeline.config import get_settings

            file = _for_command_line(self.broken[sop_id])
            command = f"patuh sop validate {file}"
            if self.root.resolve() != get_settings().catalogue_dir.resolve():
                command += f" --sop-dir {_for_command_line(self.root)}"
            shown = shown_path(self.broken[sop_id], self.root)
            n = sum(p.level == "error" for p in self.problems if p.file == shown)
            errors, galat = (f"{n} error(s)", f"{n} galat") if n else ("errors", "galat")
            raise NotFoundError(f"SOP model '{sop_id}' cannot be used: its file {file} has {errors}; run "
                                f"'{command}' to see each one (line, field and how to fix it)",
                                pesan=f"model SOP '{sop_id}' tidak dapat dipakai: berkas {file} berisi {galat}; "
                                      f"jalankan '{command}' untuk melihat setiap galat (baris, isian, dan cara "
                                      "memperbaikinya)")
        close = difflib.get_close_matches(sop_id, [*self.models, *self.broken], n=1, cutoff=0.6)
        guess, tebakan = (f" (did you mean '{close[0]}'?)", f" (maksud Anda '{close[0]}'?)") if close else ("", "")
        raise NotFoundError(f"no SOP model '{sop_id}' in {self.root}{guess}; see 'patuh sop list'",
                            pesan=f"model SOP '{sop_id}' tidak ada di {self.root}{tebakan}; lihat 'patuh sop list'")

    def for_institution(self, institution_id: str) -> list[SopModel]:
        return [m for m in self.models.values() if m.institution == institution_id]

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for sop_id in sorted(self.models):
            digest.update(f"{sop_id}:{self.models[sop_id].content_hash()};".encode())
        return digest.hexdigest()[:16]


def _for_command_line(path: Path) -> str:
    """A path to paste into a command: relative to the working folder when it lies inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def model_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.name != "institutions.yaml")


def load_catalogue(root: Path, paths: Iterable[Path] | None = None,
                   institutions: Mapping[str, float | None] | None = None) -> Catalogue:
    """Load every model under ``root`` (or just ``paths``), collecting every problem (``institutions``: see
    :func:`load_model_file`)."""
    models: dict[str, SopModel] = {}
    files: dict[str, Path] = {}
    broken: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in paths if paths is not None else model_files(root):
        loaded = load_model_file(path, root, institutions)
        problems.extend(loaded.problems)
        shown = shown_path(path, root)
        if loaded.model is None:
            by_path = shown.removesuffix(".yaml") if path.suffix == ".yaml" else None
            for sop_id in (loaded.declared_id, by_path):
                if sop_id:
                    broken.setdefault(sop_id, path)
            continue
        model = loaded.model
        if model.id in models:
            other = shown_path(files[model.id], root)
            problems.append(Problem(shown, f"model id '{model.id}' is also used by {other}",
                                    "give every model its own id (the file's path under the catalogue folder, "
                                    "without .yaml)",
                                    pesan=f"id model '{model.id}' juga dipakai oleh {other}",
                                    perbaikan="beri setiap model id sendiri (jalur berkasnya di bawah folder katalog, "
                                              "tanpa .yaml)"))
            continue
        expected = Path(*model.id.split("/")).with_suffix(".yaml")
        if paths is None and shown != str(expected):
            problems.append(Problem(shown, f"model '{model.id}' should live in {expected}",
                                    "rename the file to match its id", level="warning",
                                    pesan=f"model '{model.id}' seharusnya berada di {expected}",
                                    perbaikan="ganti nama berkasnya agar sesuai dengan id-nya"))
        models[model.id] = model
        files[model.id] = path
    for sop_id in models:
        broken.pop(sop_id, None)
    return Catalogue(root, models, files, problems, broken)
