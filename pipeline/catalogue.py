"""Catalogue-wide checks and the plain-terminal rendering of an SOP table."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.sop import Problem, SopModel, load_catalogue, shown_path


@dataclass
class ValidationReport:
    n_models: int
    n_sound: int
    problems: list[Problem] = field(default_factory=list)


def validate_catalogue(root: Path, files: Iterable[Path] | None = None) -> ValidationReport:
    """Load every model (or just ``files``), then compile each procedure and check that its net is a sound
    workflow net. Each model's institution is checked against ``root/institutions.yaml`` (also for single
    files); that file's own problems are reported when the whole catalogue is validated."""
    from pipeline import pm4py_adapter
    from pipeline.calendars import check_institutions

    paths = [Path(f) for f in files] if files else None
    institutions_file = root / "institutions.yaml"
    institutions = check_institutions(institutions_file, shown_path(institutions_file, root)
                                      if paths is None else str(institutions_file))
    known = institutions.day_minutes() if institutions.readable else None
    catalogue = load_catalogue(root, paths, known)
    problems = list(catalogue.problems)
    n_sound = 0
    for sop_id, model in sorted(catalogue.models.items()):
        if model.kind != "procedure":
            continue
        if pm4py_adapter.is_sound(pm4py_adapter.compile_sop(model)):
            n_sound += 1
        else:
            problems.append(Problem(shown_path(catalogue.files[sop_id], root),
                                    "the flow does not compile to a sound workflow net "
                                    "(a case could get stuck or finish with work left over)",
                                    "check the flow edges: every decision branch must lead on to 'end'",
                                    pesan="alurnya tidak menghasilkan jaring alur kerja yang sehat (sound net): "
                                          "sebuah kasus bisa macet, atau selesai dengan pekerjaan yang tersisa",
                                    perbaikan="periksa entri flow: setiap cabang keputusan harus berlanjut sampai "
                                              "'end'"))
    if paths is None:
        problems.extend(institutions.problems)
    elif not institutions.readable:
        first = institutions.problems[0] if institutions.problems else None
        why, sebab = (first.message, first.pesan) if first else ("it cannot be read", "berkasnya tidak dapat dibaca")
        problems.append(Problem(str(institutions_file), f"the models' institutions were not checked: {why}",
                                "give the catalogue folder that holds institutions.yaml with --sop-dir, or run "
                                "'patuh sop validate' to see that file's problems", level="warning",
                                pesan=f"lembaga pada model-model ini tidak diperiksa: {sebab}",
                                perbaikan="berikan folder katalog yang berisi institutions.yaml dengan --sop-dir, "
                                          "atau jalankan 'patuh sop validate' untuk melihat masalah pada berkas itu"))
    return ValidationReport(len(catalogue.models), n_sound, problems)


# ---------------------------------------------------------------------------------------------------
# What the step table alone does not show: decisions' questions, case and between-step standards
# ---------------------------------------------------------------------------------------------------

CASE_TIME_LABEL = "Batas waktu kasus / Case time"
SLA_LABEL = "Batas antar langkah / Between steps"


def decision_questions(model: SopModel) -> dict[str, str]:
    """Step id -> the question of the decision taken after it (a flow entry's ``condition``)."""
    return {edge.from_: edge.condition for edge in model.flow if edge.condition}


def standard_rows(model: SopModel, ref: Callable[[str], str] | None = None) -> list[tuple[str, str]]:
    """(label, text) rows for the whole-case standard and each between-step standard (``slas``); ``ref``
    names a step (default: its id)."""
    name = ref or (lambda step_id: step_id)
    rows = []
    if model.case_time:
        rows.append((CASE_TIME_LABEL, model.case_time))
    for sla in model.slas:
        text = f"{name(sla.from_)} → {name(sla.to)}: {sla.time}"
        rows.append((SLA_LABEL, text + (f" ({sla.text})" if sla.text else "")))
    return rows


# ---------------------------------------------------------------------------------------------------
# Terminal table
# ---------------------------------------------------------------------------------------------------


def _cell_width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _fit(columns: Sequence[tuple[str, Sequence[str]]], width: int) -> list[int] | None:
    """Content widths of a bordered table's columns so that no word has to be cut, within ``width``
    terminal columns; None when even each column's longest word does not fit."""
    overhead = 3 * len(columns) + 1  # a border before each column and after the last, one space each side
    mins, wants, amounts = [], [], []
    for header, cells in columns:
        texts = [header, *cells]
        mins.append(max(_cell_width(w) for t in texts for w in (t.split() or [""])))
        wants.append(max(_cell_width(line) for t in texts for line in (t.splitlines() or [""])))
        amounts.append(sum(_cell_width(t) for t in cells) + 1)
    spare = width - overhead - sum(mins)
    if spare < 0:
        return None
    widths = list(mins)
    fair = (width - overhead) / len(columns)
    for i in sorted(range(len(widths)), key=lambda j: wants[j]):  # short columns first get their whole text
        if wants[i] <= fair and spare > 0:
            add = min(wants[i] - widths[i], spare)
            widths[i] += add
            spare -= add
    while spare > 0:  # then one column at a time to the column whose text would take the most lines
        open_ = [i for i in range(len(widths)) if widths[i] < wants[i]]
        if not open_:
            break
        i = max(open_, key=lambda j: amounts[j] / widths[j])
        widths[i] += 1
        spare -= 1
    return widths


def _step_cells(model: SopModel) -> list[dict[str, str]]:
    succ = model.successors()
    ids = model.step_ids
    questions = decision_questions(model)
    rows = []
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
        if step.id in questions:
            marks.append(f"Keputusan: {questions[step.id]}")
        if succ[step.id] != [default_next]:
            marks.append("→ " + " | ".join(succ[step.id]))
        rows.append({"No": step.no or "", "Kegiatan": step.activity, "Pelaksana": lane,
                     "Kelengkapan": "\n".join(step.documents), "Waktu": step.time or "",
                     "Output": step.output or "", "Ket.": "\n".join(marks + ([step.notes] if step.notes else []))})
    return rows


def _merged(row: dict[str, str]) -> str:
    parts = [f"{key}: {row[key]}" for key in ("Kelengkapan", "Waktu", "Output", "Ket.") if row[key]]
    return "\n".join(part.replace("\n", "; ") if not part.startswith("Ket.") else part for part in parts)


def sop_table(model: SopModel, width: int = 200) -> list[Any]:
    """Rich renderables: the header block and the step table, as the paper original lays them out, then the
    case and between-step standards. In a terminal of ``width`` columns every column is at least as wide as
    its longest word, so a word is never cut: when the seven columns cannot all be that wide, the mutu baku
    columns share one, and in a very narrow terminal each step is printed as a block of lines."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold", no_wrap=True)
    header.add_column(overflow="fold")  # a file name longer than the terminal folds rather than ends in "…"
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
    rows = _step_cells(model)
    full = ["No", "Kegiatan", "Pelaksana", "Kelengkapan", "Waktu", "Output", "Ket."]
    layouts: list[tuple[list[str], Callable[[dict[str, str]], list[str]]]] = [
        (full, lambda row: [row[k] for k in full]),
        (["No", "Kegiatan", "Pelaksana", "Mutu baku / Ket."],
         lambda row: [row["No"], row["Kegiatan"], row["Pelaksana"], _merged(row)]),
    ]
    for headers, cells_of in layouts:
        cells = [cells_of(row) for row in rows]
        widths = _fit([(h, [c[j] for c in cells]) for j, h in enumerate(headers)], width)
        if widths is None:
            continue
        table = Table(show_lines=True)
        for name, w in zip(headers, widths, strict=True):
            table.add_column(name, width=w, overflow="fold")  # fold only a word longer than the terminal
        for row_cells in cells:
            table.add_row(*row_cells)
        out.append(table)
        break
    else:  # too narrow for any table: one block of lines per step
        for row in rows:
            block = Table.grid(padding=(0, 1))
            block.add_column(style="bold", no_wrap=True)
            block.add_column(overflow="fold")
            block.add_row(row["No"] or "-", row["Kegiatan"])
            for key in ("Pelaksana", "Kelengkapan", "Waktu", "Output", "Ket."):
                if row[key]:
                    block.add_row("", f"{key}: {row[key]}")
            out.append(block)
    for label, text in standard_rows(model):  # a line each, wrapped between words
        out.append(Text.assemble((label, "bold"), f": {text}"))
    return out
