"""Catalogue-wide checks and the plain-terminal rendering of an SOP table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.sop import Problem, SopModel, load_catalogue


@dataclass
class ValidationReport:
    n_models: int
    n_sound: int
    problems: list[Problem] = field(default_factory=list)


def validate_catalogue(root: Path, files: Iterable[Path] | None = None) -> ValidationReport:
    """Load every model, then compile each procedure and check that its net is a sound workflow net."""
    from pipeline import pm4py_adapter

    paths = [Path(f) for f in files] if files else None
    catalogue = load_catalogue(root, paths)
    problems = list(catalogue.problems)
    n_sound = 0
    for sop_id, model in sorted(catalogue.models.items()):
        if model.kind != "procedure":
            continue
        shown = str(catalogue.files[sop_id])
        if catalogue.files[sop_id].is_relative_to(root):
            shown = str(catalogue.files[sop_id].relative_to(root))
        if pm4py_adapter.is_sound(pm4py_adapter.compile_sop(model)):
            n_sound += 1
        else:
            problems.append(Problem(shown, "the flow does not compile to a sound workflow net "
                                    "(a case could get stuck or finish with work left over)",
                                    "check the flow edges: every decision branch must lead on to 'end'"))
    if paths is None:
        from pipeline.calendars import load_institutions_problems

        problems.extend(load_institutions_problems(root / "institutions.yaml", catalogue))
    return ValidationReport(len(catalogue.models), n_sound, problems)


def sop_table(model: SopModel) -> list[Any]:
    """Rich renderables: the header block and the step table, as the paper original lays them out."""
    from rich.panel import Panel
    from rich.table import Table

    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for label, value in [
        ("Nomor SOP", model.number),
        ("Nama SOP", model.title),
        ("Tanggal Pembuatan", model.dates.made),
        ("Tanggal Revisi", model.dates.revision),
        ("Tanggal Efektif", model.dates.effective),
        ("Disahkan oleh", model.approved_by),
        ("Sumber", f"{model.source.file} — {model.source.table or ''}"),
    ]:
        header.add_row(label, "-" if value in (None, "") else str(value))
    out: list[Any] = [Panel(header, title=model.id)]
    if model.kind == "rules":
        rules = Table(title="Aturan")
        for name in ("id", "pasal", "aturan", "cek", "parameter"):
            rules.add_column(name, overflow="fold")
        for rule in model.rules:
            rules.add_row(rule.id, rule.article, rule.text, rule.check, str(rule.params))
        out.append(rules)
        return out
    table = Table(show_lines=True)
    for name in ("No", "Kegiatan", "Pelaksana", "Kelengkapan", "Waktu", "Output", "Ket."):
        table.add_column(name, overflow="fold")  # a narrow terminal breaks a long word, never cuts it
    succ = model.successors()
    ids = model.step_ids
    for i, step in enumerate(model.steps):
        lane = model.roles[step.role].label if step.role else "-"
        if step.co_roles:
            lane += " + " + ", ".join(model.roles[r].label for r in step.co_roles)
        marks = []
        if step.optional:
            marks.append("opsional")
        if step.repeat:
            marks.append("berulang")
        default_next = ids[i + 1] if i + 1 < len(ids) else "end"
        if succ[step.id] != [default_next]:
            marks.append("→ " + " | ".join(succ[step.id]))
        table.add_row(step.no or "", step.activity, lane, "\n".join(step.documents), step.time or "",
                      step.output or "", " ".join(marks + ([step.notes] if step.notes else [])))
    out.append(table)
    return out
