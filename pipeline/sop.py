"""SOP model files: schema, loading, validation and Indonesian time standards.

A model file (``sop_models/<institution>/<sop>.yaml``) keeps the Permenpan-RB 35/2012 header and the
step table as the paper original has them, plus the flow where the original has decisions or loops
(DESIGN section 3). Rule-type documents (academic rules) carry ``rules:`` instead of ``steps:``.

Validation never raises for a user's mistake: it returns :class:`Problem` records that name the file,
the line, the step, what is wrong and how to fix it, so ``patuh sop validate`` reports all of them at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import NotFoundError, yaml_problem

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
    "minggu": ("week", 7.0),
    "pekan": ("week", 7.0),
    "bulan": ("month", 30.0),
    "bln": ("month", 30.0),
    "tahun": ("year", 365.0),
}
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
_NUM = r"\d+(?:[.,]\d+)?"
_RANGE_RE = re.compile(
    rf"^(?:(?P<lo>{_NUM})\s*(?:-|–|s/d|s\.d\.?|sampai(?:\s+dengan)?|hingga)\s*)?(?P<hi>{_NUM})?\s*(?P<unit>{_UNIT_RE})\.?$"
)
_X24_RE = re.compile(rf"^(?P<n>{_NUM})\s*[x×]\s*24\s*jam$")


class TimeParseError(ValueError):
    """A time text that is not one of the forms the seeds use."""


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


def parse_time(
    raw: str | int | float | None, clock: Literal["working", "elapsed"] | None = None
) -> TimeStandard | None:
    """Parse an Indonesian time standard.

    Returns ``None`` for a blank cell or ``0`` (a start/end terminator has no standard) and raises
    :class:`TimeParseError` for text that is not a time. ``clock`` (a model's ``clock:``) overrides how
    minutes, hours and ``N x 24 jam`` are counted.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if text in {"", "-", "0"}:
        return None
    norm = re.sub(r"\s+", " ", text.lower()).strip()
    norm = norm.replace("±", "").replace("maks.", "").replace("maksimal", "").replace("paling lama", "").strip()
    norm = re.sub(r"(\d)([a-z])", r"\1 \2", norm)  # "2hr" -> "2 hr", "6bulan" -> "6 bulan"
    match = _X24_RE.match(norm)
    if match:
        hours = _num(match["n"]) * 24
        if clock == "working":
            return TimeStandard(text, "working_minutes", None, hours * 60, "hour")
        return TimeStandard(text, "elapsed_minutes", None, hours * 60, "hour")
    match = _RANGE_RE.match(norm)
    if not match:
        raise TimeParseError(
            f"waktu {text!r} is not a time standard: write e.g. '30 menit', '2 jam', '1 hari', "
            "'30 - 45 menit', '3 s/d 6 bulan', '1 x 24 jam', or '0' for a start/end row"
        )
    unit, size = _UNITS[match["unit"]]
    hi = _num(match["hi"]) if match["hi"] else 1.0  # "bulan" alone means one month
    lo = _num(match["lo"]) if match["lo"] else None
    if lo is not None and lo > hi:
        raise TimeParseError(f"waktu {text!r}: the range starts above its end; write the smaller number first")
    if unit in {"minute", "hour"}:
        measure: Measure = "elapsed_minutes" if clock == "elapsed" else "working_minutes"
        return TimeStandard(text, measure, None if lo is None else lo * size, hi * size, unit)
    if unit == "day":
        if clock == "elapsed":
            return TimeStandard(text, "elapsed_minutes", None if lo is None else lo * 1440, hi * 1440, unit)
        return TimeStandard(text, "working_days", lo, hi, unit)
    # weeks, months and years are calendar spans (a 3-6 month stay in a care home runs through holidays)
    return TimeStandard(text, "elapsed_minutes", None if lo is None else lo * size * 1440, hi * size * 1440, unit)


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
    """One thing wrong (or worth a look) in a model file."""

    file: str
    message: str
    fix: str
    line: int | None = None
    step: str | None = None
    level: Literal["error", "warning"] = "error"

    def render(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        step = f" [step {self.step}]" if self.step else ""
        return f"{where}{step}: {self.level}: {self.message}. Fix: {self.fix}"


@dataclass
class LoadedModel:
    path: Path
    model: SopModel | None
    problems: list[Problem] = field(default_factory=list)


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


_FIX_BY_TYPE = {
    "extra_forbidden": "remove the field or correct its spelling (see DESIGN section 3 for the allowed fields)",
    "missing": "add the field",
    "string_pattern_mismatch": (
        "use lower-case letters, digits and '_' (step ids) or '<institution>/<name>' (model ids)"
    ),
    "literal_error": "use one of the allowed values",
}


def load_model_file(path: Path, root: Path | None = None) -> LoadedModel:
    """Parse and validate one model file; every problem is returned, nothing raises."""
    shown = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
    try:
        text = path.read_text(encoding="utf-8")
        node, data = read_yaml_with_nodes(text)
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedModel(path, None, [Problem(shown, f"cannot read the file ({exc})", "save it as UTF-8 text")])
    except yaml.YAMLError as exc:
        line, found = yaml_problem(exc)
        return LoadedModel(path, None, [Problem(shown, f"not valid YAML ({found})",
                                                "check indentation and quoting; a ':' inside text needs quotes",
                                                line)])
    if not isinstance(data, dict):
        return LoadedModel(path, None, [Problem(shown, "the file is not a YAML mapping", "start with 'id: ...'")])
    try:
        model = SopModel.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field_name = ".".join(str(p) for p in loc).replace("from_", "from")
            msg = f"{field_name}: {err['msg']}"
            if err["type"] == "extra_forbidden":
                msg = f"unknown field '{loc[-1]}'"
            problems.append(
                Problem(shown, msg, _FIX_BY_TYPE.get(err["type"], "correct the value"),
                        _node_line(node, loc), _step_of(data, loc))
            )
        return LoadedModel(path, None, problems)
    problems = check_model(model, shown, node)
    return LoadedModel(path, model if not any(p.level == "error" for p in problems) else None, problems)


def check_model(model: SopModel, shown: str, node: yaml.Node | None = None) -> list[Problem]:
    """Structural checks that a schema alone cannot express."""
    problems: list[Problem] = []

    def step_line(index: int, key: str | None = None) -> int | None:
        loc: list[int | str] = ["steps", index]
        if key:
            loc.append(key)
        return _node_line(node, loc)

    expected_prefix = model.institution + "/"
    if not model.id.startswith(expected_prefix):
        problems.append(Problem(shown, f"id '{model.id}' does not start with its institution '{model.institution}/'",
                                f"rename the id to '{expected_prefix}...'", _node_line(node, ["id"])))
    if model.kind == "rules":
        if not model.rules:
            problems.append(Problem(shown, "a rules model has no rules", "add 'rules:' entries or use kind: procedure"))
        return problems
    if not model.steps:
        problems.append(Problem(shown, "the model has no steps", "copy the step table into 'steps:'"))
        return problems

    seen_ids: dict[str, int] = {}
    seen_no: dict[str, str] = {}
    for i, step in enumerate(model.steps):
        if step.id in seen_ids:
            problems.append(Problem(shown, f"duplicate step id '{step.id}' (also step #{seen_ids[step.id] + 1})",
                                    "give every step its own id, e.g. s4b for a repeated number",
                                    step_line(i, "id"), step.id))
        seen_ids.setdefault(step.id, i)
        for role in [step.role, *step.co_roles]:
            if role is not None and role not in model.roles:
                known = ", ".join(sorted(model.roles)) or "none defined"
                problems.append(Problem(shown, f"unknown role '{role}' (known: {known})",
                                        "add it under 'roles:' or use one of the known role keys",
                                        step_line(i, "role"), step.id))
        try:
            parse_time(step.time, model.clock)
        except TimeParseError as exc:
            problems.append(Problem(shown, str(exc), "write the time as the seeds do, or '0' for no standard",
                                    step_line(i, "time"), step.id))
        if step.no:
            if step.no in seen_no:
                twice = f"number '{step.no}' is used twice (steps {seen_no[step.no]} and {step.id})"
                problems.append(Problem(shown, twice,
                                        "fine when the original repeats it; keep 'no' as printed",
                                        step_line(i, "no"), step.id, "warning"))
            seen_no.setdefault(step.no, step.id)

    ids = set(seen_ids)
    for j, edge in enumerate(model.flow):
        for target in [edge.from_, *edge.to]:
            if target != END and target not in ids:
                problems.append(Problem(shown, f"flow edge {j + 1} names step '{target}', which does not exist",
                                        f"use an existing step id ({', '.join(model.step_ids[:6])}, ...) or '{END}'",
                                        _node_line(node, ["flow", j]), edge.from_))
        if edge.from_ == END:
            problems.append(Problem(shown, "a flow edge starts at 'end'", "start edges at a step",
                                    _node_line(node, ["flow", j])))
    for k, sla in enumerate(model.slas):
        for target in (sla.from_, sla.to):
            if target not in ids:
                problems.append(Problem(shown, f"sla '{sla.id}' names step '{target}', which does not exist",
                                        "use an existing step id", _node_line(node, ["slas", k])))
        try:
            parse_time(sla.time, model.clock)
        except TimeParseError as exc:
            problems.append(Problem(shown, f"sla '{sla.id}': {exc}", "write a time standard",
                                    _node_line(node, ["slas", k, "time"])))
    try:
        parse_time(model.case_time, model.clock)
    except TimeParseError as exc:
        problems.append(Problem(shown, f"case_time: {exc}", "write a time standard", _node_line(node, ["case_time"])))
    if any(p.level == "error" for p in problems):
        return problems

    succ = model.successors()
    reachable = _reachable(model.steps[0].id, succ, model)
    for i, step in enumerate(model.steps):
        if step.id not in reachable:
            problems.append(Problem(shown, f"step '{step.id}' can never be reached from the first step",
                                    "add a flow edge into it, or remove it", step_line(i), step.id))
    reverse: dict[str, list[str]] = {}
    for src, targets in succ.items():
        for t in targets:
            reverse.setdefault(t, []).append(src)
    can_end = _reachable(END, reverse, None)
    for i, step in enumerate(model.steps):
        if step.id in reachable and step.id not in can_end:
            problems.append(Problem(shown, f"step '{step.id}' can never reach the end (a loop with no way out)",
                                    "give the loop a flow edge that leaves it, e.g. to the next step or 'end'",
                                    step_line(i), step.id))
    return problems


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

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    def get(self, sop_id: str) -> SopModel:
        try:
            return self.models[sop_id]
        except KeyError:
            raise NotFoundError(f"no SOP model '{sop_id}' in {self.root}; see 'patuh sop list'",
                                pesan=f"model SOP '{sop_id}' tidak ada di {self.root}; "
                                      "lihat 'patuh sop list'") from None

    def for_institution(self, institution_id: str) -> list[SopModel]:
        return [m for m in self.models.values() if m.institution == institution_id]

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for sop_id in sorted(self.models):
            digest.update(f"{sop_id}:{self.models[sop_id].content_hash()};".encode())
        return digest.hexdigest()[:16]


def model_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.name != "institutions.yaml")


def load_catalogue(root: Path, paths: Iterable[Path] | None = None) -> Catalogue:
    """Load every model under ``root`` (or just ``paths``), collecting every problem."""
    models: dict[str, SopModel] = {}
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in paths if paths is not None else model_files(root):
        loaded = load_model_file(path, root)
        problems.extend(loaded.problems)
        if loaded.model is None:
            continue
        model = loaded.model
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        if model.id in models:
            problems.append(Problem(shown, f"model id '{model.id}' is also used by {files[model.id]}",
                                    "give every model its own id"))
            continue
        expected = Path(*model.id.split("/")).with_suffix(".yaml")
        if path.is_relative_to(root) and path.relative_to(root) != expected and paths is None:
            problems.append(Problem(shown, f"model '{model.id}' should live in {expected}",
                                    "rename the file to match its id", level="warning"))
        models[model.id] = model
        files[model.id] = path
    return Catalogue(root, models, files, problems)
