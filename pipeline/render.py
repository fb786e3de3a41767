"""Draw SOP models like the paper original: the Permenpan-RB 35/2012 table as SVG, HTML and PNG.

The drawing is one SVG laid out here (text wrapped with Liberation Sans / Arial metrics): the header block
(Nomor SOP, tanggal, disahkan oleh, nama SOP, dasar hukum, kualifikasi, keterkaitan, peralatan, peringatan,
pencatatan), then the step table with one column per lane, a flowchart symbol in the lane of each step
(terminator, process, decision, document) and arrows between them, and the mutu baku columns. Rule models
draw as a table of rules. ``render_graph_svg`` draws the compiled workflow net as a left-to-right
BPMN-like graph. No external assets and no JavaScript; every text is escaped. Importable without Dash.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.catalogue import decision_questions, standard_rows
from pipeline.errors import UserError
from pipeline.sop import END, SopModel, Step

Format = Literal["html", "svg", "png"]
CHROMIUM = Path("/usr/bin/chromium")

FONT = "'Liberation Sans', Arial, Helvetica, sans-serif"
SIZE = 11.0  # body text, px
LINE = 13.5  # line height, px
PAD = 5.0
MARGIN = 12.0
INK = "#1a1a1a"
GRID = "#555"
SHADE = "#e9edf2"

# Advance widths (1/1000 em) of ASCII 32..126 in Liberation Sans (metric-compatible with Arial).
_REGULAR = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
    556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278,
    500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
    556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500,
    278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]
_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556,
    556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278,
    556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584,
    556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556,
    333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
]


def text_width(text: str, size: float = SIZE, bold: bool = False) -> float:
    """Width in px of ``text`` set in Liberation Sans (non-ASCII characters count as 0.6 em)."""
    table = _BOLD if bold else _REGULAR
    units = sum(table[ord(c) - 32] if 32 <= ord(c) < 127 else 600 for c in text)
    return units * size / 1000.0


def wrap(text: str | None, width: float, size: float = SIZE, bold: bool = False) -> list[str]:
    """Greedy word wrap to ``width`` px; a word longer than a line is cut by characters."""
    if not text:
        return []
    lines: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if text_width(candidate, size, bold) <= width:
                current = candidate
                continue
            if "/" in word.rstrip("/") and text_width(word, size, bold) > width:
                # break "Konselor/Psikolog" after the slash before cutting inside a word
                head, _sep, tail = word.partition("/")
                if current and text_width(f"{current} {head}/", size, bold) <= width:
                    head = f"{current} {head}"
                elif current:
                    lines.append(current)
                if text_width(f"{head}/", size, bold) <= width:
                    lines.append(f"{head}/")
                    current = ""
                    word = tail
                    if text_width(word, size, bold) <= width:
                        current = word
                        continue
                else:
                    current = head
                    word = f"/{tail}"
            if current:
                lines.append(current)
            current = ""
            while text_width(word, size, bold) > width:
                cut = max(1, len(word) - 1)
                while cut > 1 and text_width(word[:cut], size, bold) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    return [line for line in lines if line] or []


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------------------------------
# SVG building blocks
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Svg:
    """An SVG body under construction, with the arrowhead marker of this drawing."""

    uid: str
    parts: list[str] = field(default_factory=list)

    @property
    def arrow(self) -> str:
        return f"url(#ah-{self.uid})"

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def rect(self, x: float, y: float, w: float, h: float, *, fill: str = "none", stroke: str = GRID,
             rx: float = 0, dash: bool = False, width: float = 1.0) -> None:
        extra = ' stroke-dasharray="4 3"' if dash else ""
        self.add(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="{_n(rx)}" '
                 f'fill="{fill}" stroke="{stroke}" stroke-width="{_n(width)}"{extra}/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = GRID, width: float = 1.0) -> None:
        self.add(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
                 f'stroke-width="{_n(width)}"/>')

    def path(self, d: str, *, arrow: bool = True, dash: bool = False, stroke: str = INK, fill: str = "none",
             width: float = 1.2) -> None:
        extra = f' marker-end="{self.arrow}"' if arrow else ""
        extra += ' stroke-dasharray="4 3"' if dash else ""
        self.add(f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{_n(width)}"{extra}/>')

    def text(self, x: float, y: float, lines: Sequence[str], *, size: float = SIZE, bold: bool = False,
             anchor: str = "start", fill: str = INK, cls: str | None = None, data: str | None = None,
             italic: bool = False) -> None:
        """Lines of text whose first baseline is at ``y``."""
        if not lines:
            return
        attrs = f' class="{cls}"' if cls else ""
        attrs += f' data-step="{_e(data)}"' if data else ""
        attrs += ' font-weight="bold"' if bold else ""
        attrs += ' font-style="italic"' if italic else ""
        spans = "".join(
            f'<tspan x="{_n(x)}" dy="{_n(0 if i == 0 else size * LINE / SIZE)}">{_e(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        self.add(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}" '
                 f'fill="{fill}"{attrs}>{spans}</text>')

    def cell(self, x: float, y: float, w: float, h: float, lines: Sequence[str], *, bold: bool = False,
             center: bool = False, shade: bool = False, size: float = SIZE, cls: str | None = None,
             data: str | None = None, middle: bool = False, italic: bool = False) -> None:
        """A bordered table cell with its text (top-aligned, or vertically centred with ``middle``)."""
        self.rect(x, y, w, h, fill=SHADE if shade else "none")
        line_h = size * LINE / SIZE
        top = y + PAD + size * 0.85
        if middle:
            top = y + (h - len(lines) * line_h) / 2 + size * 0.85
        tx = x + w / 2 if center else x + PAD
        self.text(tx, top, lines, size=size, bold=bold, anchor="middle" if center else "start", cls=cls,
                  data=data, italic=italic)

    def document(self, width: float, height: float, title: str) -> str:
        defs = (
            f'<defs><marker id="ah-{self.uid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker>'
            "</defs>"
        )
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
            f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="{_e(FONT)}" role="img">'
            f"<title>{_e(title)}</title>{defs}"
            f'<rect x="0" y="0" width="{_n(width)}" height="{_n(height)}" fill="#fff"/>'
            + "".join(self.parts) + "</svg>"
        )


def _uid(model: SopModel, salt: str = "") -> str:
    return hashlib.sha1((model.id + salt).encode()).hexdigest()[:8]


def _lines(text: str | None, width: float, size: float = SIZE, bold: bool = False) -> list[str]:
    return wrap(text, width - 2 * PAD, size, bold)


def _height(lines: Sequence[str], size: float = SIZE) -> float:
    return len(lines) * size * LINE / SIZE + 2 * PAD


def _numbered(items: Iterable[str]) -> list[str]:
    items = list(items)
    if len(items) == 1:
        return items
    return [f"{i}. {item}" for i, item in enumerate(items, 1)]


def _fmt_date(value: object) -> str:
    return "" if value in (None, "") else str(value)


# ---------------------------------------------------------------------------------------------------
# Header block (shared by procedures and rule models)
# ---------------------------------------------------------------------------------------------------


def _header(svg: _Svg, model: SopModel, institution: str | None, x: float, y: float, width: float) -> float:
    """Draw the Permenpan-RB header block at (x, y); return its bottom."""
    left_w = width * 0.42
    label_w = 128.0
    value_w = width - left_w - label_w
    rows = [
        ("Nomor SOP", model.number or ""),
        ("Tanggal Pembuatan", _fmt_date(model.dates.made)),
        ("Tanggal Revisi", _fmt_date(model.dates.revision)),
        ("Tanggal Efektif", _fmt_date(model.dates.effective)),
        ("Disahkan oleh", model.approved_by or ""),
        ("Nama SOP", model.title),
    ]
    heights = []
    for label, value in rows:
        bold = label == "Nama SOP"
        heights.append(max(_height(_lines(label, label_w)), _height(_lines(value, value_w, bold=bold))))
    total = sum(heights)
    name = institution or model.institution
    left_lines = _lines(name.upper(), left_w - 20, size=13, bold=True)
    total = max(total, _height(left_lines, 13) + 20)
    heights[-1] += total - sum(heights)
    svg.cell(x, y, left_w, total, left_lines, bold=True, center=True, size=13, middle=True)
    cy = y
    for (label, value), h in zip(rows, heights, strict=True):
        svg.cell(x + left_w, cy, label_w, h, _lines(label, label_w), shade=True)
        bold = label == "Nama SOP"
        svg.cell(x + left_w + label_w, cy, value_w, h, _lines(value, value_w, bold=bold), bold=bold,
                 cls="sop-title" if bold else None)
        cy += h
    y += total
    half = width / 2
    pairs = [
        ("Dasar Hukum", model.legal_basis, "Kualifikasi Pelaksana", model.qualifications),
        ("Keterkaitan", model.related, "Peralatan / Perlengkapan", model.equipment),
        ("Peringatan", model.warnings, "Pencatatan dan Pendataan", model.records),
    ]
    for left_label, left_items, right_label, right_items in pairs:
        if model.kind == "rules" and not left_items and not right_items:
            continue  # a rule document has no Permenpan-RB header boxes; draw only those it fills
        head_h = _height([left_label])
        svg.cell(x, y, half, head_h, [left_label], bold=True, shade=True)
        svg.cell(x + half, y, half, head_h, [right_label], bold=True, shade=True)
        y += head_h
        left = [ln for item in _numbered(left_items) for ln in _lines(item, half)] or ["-"]
        right = [ln for item in _numbered(right_items) for ln in _lines(item, half)] or ["-"]
        h = max(_height(left), _height(right))
        svg.cell(x, y, half, h, left)
        svg.cell(x + half, y, half, h, right)
        y += h
    return y


# ---------------------------------------------------------------------------------------------------
# Step table
# ---------------------------------------------------------------------------------------------------

COL_NO = 34.0
COL_ACTIVITY = 236.0
COL_LANE = 86.0
COL_DOCS = 140.0
COL_TIME = 66.0
COL_OUTPUT = 132.0
COL_NOTE = 104.0
MIN_ROW = 66.0


@dataclass(frozen=True)
class _Placed:
    step: Step
    index: int
    lane: int
    top: float
    height: float
    kind: str
    half_w: float
    half_h: float

    @property
    def cy(self) -> float:
        return self.top + self.height / 2


@dataclass(frozen=True)
class _Geometry:
    lane_x0: float

    def x(self, lane: int) -> float:
        return self.lane_x0 + lane * COL_LANE + COL_LANE / 2


def _lanes(model: SopModel) -> list[tuple[str | None, str]]:
    lanes: list[tuple[str | None, str]] = [(key, role.label) for key, role in model.roles.items()]
    if any(step.role is None for step in model.steps):
        lanes.append((None, "Pelaksana"))
    return lanes or [(None, "Pelaksana")]


def _symbol_kind(model: SopModel, index: int, succ: dict[str, list[str]]) -> str:
    step = model.steps[index]
    if step.symbol:
        return step.symbol
    if index in (0, len(model.steps) - 1):
        return "terminator"
    return "decision" if len(succ[step.id]) > 1 else "process"


_HALF = {"terminator": (32.0, 13.0), "process": (28.0, 15.0), "decision": (31.0, 20.0), "document": (28.0, 16.0)}


def _draw_symbol(svg: _Svg, kind: str, cx: float, cy: float, *, dash: bool, label: str | None,
                 title: str) -> None:
    hw, hh = _HALF[kind]
    svg.add(f"<g><title>{_e(title)}</title>")
    if kind == "terminator":
        svg.rect(cx - hw, cy - hh, 2 * hw, 2 * hh, fill="#fff", stroke=INK, rx=hh, dash=dash, width=1.3)
    elif kind == "decision":
        d = f"M{_n(cx)},{_n(cy - hh)} L{_n(cx + hw)},{_n(cy)} L{_n(cx)},{_n(cy + hh)} L{_n(cx - hw)},{_n(cy)} Z"
        svg.path(d, arrow=False, dash=dash, fill="#fff", width=1.3)
    elif kind == "document":
        x0, x1, y0, y1 = cx - hw, cx + hw, cy - hh, cy + hh - 5
        d = (f"M{_n(x0)},{_n(y0)} H{_n(x1)} V{_n(y1)} C{_n(cx + hw / 2)},{_n(y1 + 10)} {_n(cx - hw / 2)},"
             f"{_n(y1 - 8)} {_n(x0)},{_n(y1 + 2)} Z")
        svg.path(d, arrow=False, dash=dash, fill="#fff", width=1.3)
    else:
        svg.rect(cx - hw, cy - hh, 2 * hw, 2 * hh, fill="#fff", stroke=INK, dash=dash, width=1.3)
    if label:
        svg.text(cx, cy + 3.5, [label], size=9.5, anchor="middle")
    svg.add("</g>")


def _draw_steps(svg: _Svg, model: SopModel, x: float, y: float, width: float) -> tuple[float, float]:
    """Draw the step table at (x, y), the Kegiatan column stretched to ``width``; return (width, bottom)."""
    lanes = _lanes(model)
    lane_index = {key: i for i, (key, _label) in enumerate(lanes)}
    n_lanes = len(lanes)
    act_w = COL_ACTIVITY + max(0.0, width - _table_width(model))
    lane_x0 = x + COL_NO + act_w
    mutu_x0 = lane_x0 + n_lanes * COL_LANE
    geo = _Geometry(lane_x0)

    # two header rows
    lane_lines = [_lines(label, COL_LANE, size=10, bold=True) for _key, label in lanes]
    h1 = _height(["x"])
    h2 = max([_height(ll, 10) for ll in lane_lines] + [_height(["Kelengkapan"])])
    svg.cell(x, y, COL_NO, h1 + h2, ["No"], bold=True, center=True, shade=True, middle=True)
    svg.cell(x + COL_NO, y, act_w, h1 + h2, ["Kegiatan"], bold=True, center=True, shade=True, middle=True)
    svg.cell(lane_x0, y, n_lanes * COL_LANE, h1, ["Pelaksana"], bold=True, center=True, shade=True)
    svg.cell(mutu_x0, y, COL_DOCS + COL_TIME + COL_OUTPUT, h1, ["Mutu Baku"], bold=True, center=True, shade=True)
    note_x = mutu_x0 + COL_DOCS + COL_TIME + COL_OUTPUT
    svg.cell(note_x, y, COL_NOTE, h1 + h2, ["Keterangan"], bold=True, center=True, shade=True, middle=True)
    for i, ll in enumerate(lane_lines):
        svg.cell(lane_x0 + i * COL_LANE, y + h1, COL_LANE, h2, ll, bold=True, center=True, shade=True, size=10,
                 middle=True)
    cx = mutu_x0
    for label, w in (("Kelengkapan", COL_DOCS), ("Waktu", COL_TIME), ("Output", COL_OUTPUT)):
        svg.cell(cx, y + h1, w, h2, [label], bold=True, center=True, shade=True, middle=True)
        cx += w
    y += h1 + h2

    succ = model.successors()
    questions = decision_questions(model)
    placed: list[_Placed] = []
    for i, step in enumerate(model.steps):
        docs = step.documents if len(step.documents) < 2 else [f"- {d}" for d in step.documents]
        doc_lines = [ln for d in docs for ln in _lines(d, COL_DOCS)]
        marks = [m for m, on in (("opsional", step.optional), ("berulang", step.repeat)) if on]
        question = _lines(f"Keputusan: {questions[step.id]}", COL_NOTE) if step.id in questions else []
        note_lines = question + _lines(step.notes, COL_NOTE) + [f"({m})" for m in marks]
        act_lines = _lines(step.activity, act_w)
        cells = [act_lines, doc_lines, _lines(step.time, COL_TIME), _lines(step.output, COL_OUTPUT), note_lines]
        h = max([MIN_ROW] + [_height(c) for c in cells])
        kind = _symbol_kind(model, i, succ)
        hw, hh = _HALF[kind]
        placed.append(_Placed(step, i, lane_index[step.role], y, h, kind, hw, hh))
        svg.cell(x, y, COL_NO, h, [step.no or ""], center=True)
        svg.cell(x + COL_NO, y, act_w, h, act_lines, cls="activity", data=step.id)
        for lane in range(n_lanes):
            svg.rect(lane_x0 + lane * COL_LANE, y, COL_LANE, h)
        cx = mutu_x0
        for lines, w in ((doc_lines, COL_DOCS), (cells[2], COL_TIME), (cells[3], COL_OUTPUT)):
            svg.cell(cx, y, w, h, lines)
            cx += w
        svg.rect(note_x, y, COL_NOTE, h)
        top = y + PAD + SIZE * 0.85
        if question:  # the decision's question (the flow entry's condition), as the paper asks it
            svg.text(note_x + PAD, top, question, cls="decision", data=step.id)
            top += len(question) * LINE
        svg.text(note_x + PAD, top, _lines(step.notes, COL_NOTE))
        if marks:
            top += len(_lines(step.notes, COL_NOTE)) * LINE
            svg.text(note_x + PAD, top, [f"({m})" for m in marks], italic=True, fill="#444")
        y += h

    by_id = {p.step.id: p for p in placed}
    _draw_arrows(svg, geo, placed, by_id, succ, lane_index)
    for p in placed:
        mark: str | None = None
        if p.kind == "terminator" and p.index == 0:
            mark = "Mulai"
        elif p.kind == "terminator" and p.index == len(placed) - 1:
            mark = "Selesai"
        title = f"{p.step.no or ''} {p.step.activity}".strip()
        _draw_symbol(svg, p.kind, geo.x(p.lane), p.cy, dash=p.step.optional, label=mark, title=title)
        for co in p.step.co_roles:
            co_x = geo.x(lane_index[co])
            sx = geo.x(p.lane)
            inner = co_x - p.half_w if co_x > sx else co_x + p.half_w
            outer = sx + p.half_w if co_x > sx else sx - p.half_w
            svg.line(outer, p.cy, inner, p.cy, stroke=INK)
            _draw_symbol(svg, p.kind, co_x, p.cy, dash=True, label=None, title=f"{title} (bersama)")
        if p.step.repeat:
            sx = geo.x(p.lane) + p.half_w
            d = (f"M{_n(sx)},{_n(p.cy - 6)} C{_n(sx + 11)},{_n(p.cy - 18)} {_n(sx + 11)},{_n(p.cy + 18)} "
                 f"{_n(sx + 1)},{_n(p.cy + 7)}")
            svg.path(d)
    return width, _draw_standards(svg, model, x, y, width)


def _step_ref(model: SopModel, step_id: str) -> str:
    """A step as the paper names it: its number (the id when it has none)."""
    step = model.step(step_id)
    return (step.no or step_id).rstrip(".")


def _draw_standards(svg: _Svg, model: SopModel, x: float, y: float, width: float) -> float:
    """Rows under the step table for the whole-case standard (``case_time``) and each between-step
    standard (``slas``); return the new bottom."""
    label_w = COL_NO + COL_ACTIVITY
    for label, text in standard_rows(model, lambda step_id: f"langkah {_step_ref(model, step_id)}"):
        label_lines = _lines(label, label_w, bold=True)
        value_lines = _lines(text, width - label_w)
        h = max(_height(label_lines), _height(value_lines))
        svg.cell(x, y, label_w, h, label_lines, bold=True, shade=True)
        svg.cell(x + label_w, y, width - label_w, h, value_lines, cls="standard")
        y += h
    return y


def _draw_arrows(svg: _Svg, geo: _Geometry, placed: list[_Placed], by_id: dict[str, _Placed],
                 succ: dict[str, list[str]], lanes: dict[str | None, int]) -> None:
    n_forward = 0
    n_back = 0
    for p in placed:
        targets = succ[p.step.id]
        labelled = len(targets) > 1
        sx, sy = geo.x(p.lane), p.cy
        for target in targets:
            if target == END:
                if p.index == len(placed) - 1:
                    continue
                # the case may end here: a short arrow to an end mark at the lane's right edge
                ex = geo.x(p.lane) + COL_LANE / 2 - 6
                svg.path(f"M{_n(sx + p.half_w)},{_n(sy)} H{_n(ex - 4)}")
                svg.add(f'<circle cx="{_n(ex)}" cy="{_n(sy)}" r="4" fill="{INK}"><title>selesai</title></circle>')
                if labelled:
                    svg.text(sx + p.half_w + 2, sy - 3, ["selesai"], size=8.5, fill="#333")
                continue
            q = by_id[target]
            tx, ty = geo.x(q.lane), q.cy
            if q.index == p.index + 1:
                if q.lane == p.lane:
                    d = f"M{_n(sx)},{_n(sy + p.half_h)} V{_n(ty - q.half_h)}"
                    lx, ly = sx + 3, sy + p.half_h + 9
                else:
                    side = p.half_w if tx > sx else -p.half_w
                    d = f"M{_n(sx + side)},{_n(sy)} H{_n(tx)} V{_n(ty - q.half_h)}"
                    lx, ly = sx + side + (3 if side > 0 else -30), sy - 3
            elif q.index > p.index:
                # forward jump: out of a side, down a channel at the lane edge, across, into the top;
                # the left side when the target lies left or a shared lane is drawn on the right
                n_forward += 1
                right = q.lane > p.lane or (q.lane == p.lane and not any(
                    lanes[c] > p.lane for c in p.step.co_roles))
                if right:
                    channel = geo.x(max(p.lane, q.lane)) + COL_LANE / 2 - 4 - 2 * (n_forward % 2)
                    start, lx = sx + p.half_w, sx + p.half_w + 2
                else:
                    channel = geo.x(min(p.lane, q.lane)) - COL_LANE / 2 + 4 + 2 * (n_forward % 2)
                    start, lx = sx - p.half_w, sx - p.half_w - 26
                entry = q.top + 5 + 2 * (n_forward % 2)
                d = f"M{_n(start)},{_n(sy)} H{_n(channel)} V{_n(entry)} H{_n(tx)} V{_n(ty - q.half_h)}"
                ly = sy - 3
            else:
                # back jump (a loop): out of the left side, up a channel at the lane edge, into the left side
                n_back += 1
                edge = min(p.lane, q.lane)
                channel = geo.x(edge) - COL_LANE / 2 + 4 + 3 * (n_back % 3)
                d = f"M{_n(sx - p.half_w)},{_n(sy)} H{_n(channel)} V{_n(ty)} H{_n(tx - q.half_w)}"
                lx, ly = sx - p.half_w - 30, sy - 3
            svg.path(d)
            if labelled:
                svg.text(lx, ly, [f"ke {q.step.no or q.step.id}"], size=8.5, fill="#333")


# ---------------------------------------------------------------------------------------------------
# Rule table
# ---------------------------------------------------------------------------------------------------

_RULE_COLS = [("No", 30.0), ("Pasal", 170.0), ("Aturan", 330.0), ("Pemeriksaan", 130.0), ("Masukan", 110.0),
              ("Parameter", 190.0), ("Tingkat", 60.0)]


def _param_text(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        joiner = " → " if key == "order" else ", "
        shown = joiner.join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    return "\n".join(parts)


def _draw_rules(svg: _Svg, model: SopModel, x: float, y: float, width: float) -> tuple[float, float]:
    extra = max(0.0, width - sum(w for _label, w in _RULE_COLS))
    cols = [(label, w + extra if label == "Aturan" else w) for label, w in _RULE_COLS]
    h = _height(["x"])
    cx = x
    for label, w in cols:
        svg.cell(cx, y, w, h, [label], bold=True, center=True, shade=True)
        cx += w
    y += h
    for i, rule in enumerate(model.rules, 1):
        texts = [str(i), rule.article, rule.text, rule.check, rule.input, _param_text(rule.params), rule.severity]
        lines = [_lines(t, w) for t, (_label, w) in zip(texts, cols, strict=True)]
        h = max(_height(ln) for ln in lines)
        cx = x
        for col, (ln, (_label, w)) in enumerate(zip(lines, cols, strict=True)):
            svg.cell(cx, y, w, h, ln, cls="rule-text" if col == 2 else None, data=rule.id if col == 2 else None,
                     center=col == 0)
            cx += w
        y += h
    return width, y


# ---------------------------------------------------------------------------------------------------
# Whole drawing
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drawing:
    svg: str
    width: float
    height: float


def _table_width(model: SopModel) -> float:
    if model.kind == "rules":
        return sum(w for _label, w in _RULE_COLS)
    return COL_NO + COL_ACTIVITY + len(_lanes(model)) * COL_LANE + COL_DOCS + COL_TIME + COL_OUTPUT + COL_NOTE


def draw(model: SopModel, institution: str | None = None) -> Drawing:
    """The paper table of ``model`` as one SVG document (with its size)."""
    svg = _Svg(_uid(model))
    width = max(_table_width(model), 900.0)
    y = _header(svg, model, institution, MARGIN, MARGIN, width)
    y += 10
    if model.kind == "rules":
        _w, y = _draw_rules(svg, model, MARGIN, y, width)
    else:
        _w, y = _draw_steps(svg, model, MARGIN, y, width)
    source = f"Sumber: {model.source.file}" + (f" — {model.source.table}" if model.source.table else "")
    source += f"  ·  {model.id}"
    svg.text(MARGIN, y + 16, _lines(source, width), size=9, fill="#555")
    height = y + 16 + 8 + MARGIN
    return Drawing(svg.document(width + 2 * MARGIN, height, f"{model.id}: {model.title}"), width + 2 * MARGIN,
                   height)


def render_svg(model: SopModel, institution: str | None = None) -> str:
    """The paper table as a standalone SVG file."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + draw(model, institution).svg + "\n"


_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"id\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_e(title)}</title><style>"
        f"body{{margin:0;padding:{_n(MARGIN)}px;background:#fff;color:{INK};font-family:{FONT};font-size:13px}}"
        "svg{display:block}details{margin-top:10px;max-width:1100px}li{margin:2px 0}"
        f"</style></head><body>\n{body}\n</body></html>\n"
    )


def render_html(model: SopModel, institution: str | None = None) -> str:
    """A self-contained HTML page: the paper table (inline SVG) and the transcription notes."""
    drawing = draw(model, institution)
    body = drawing.svg
    if model.notes:
        items = "".join(f"<li>{_e(note)}</li>" for note in model.notes)
        body += (f"\n<details><summary>Catatan transkripsi / Transcription notes ({len(model.notes)})</summary>"
                 f"<ul>{items}</ul></details>")
    return _page(f"{model.id}: {model.title}", body)


# ---------------------------------------------------------------------------------------------------
# Compiled process as a BPMN-like graph
# ---------------------------------------------------------------------------------------------------


@dataclass
class _GNode:
    key: str
    kind: str  # start | end | task | xor | and | dummy
    label: str = ""
    lane: str = ""
    title: str = ""
    rank: int = 0
    pos: float = 0.0


def process_graph(model: SopModel) -> tuple[dict[str, _GNode], list[tuple[str, str]]]:
    """Nodes and edges of the compiled workflow net, with silent routing collapsed into gateways.

    Places with several inputs or outputs become exclusive gateways, silent transitions with several
    inputs or outputs parallel gateways; other places and silent transitions are just edges.
    """
    if model.kind == "rules":
        raise UserError(f"{model.id} is a rules model: it has no process graph; render it without --graph",
                        pesan=f"{model.id} adalah model aturan: tidak memiliki grafik proses; gambar tanpa --graph")
    from pipeline.pm4py_adapter import compile_sop

    process = compile_sop(model)
    net: Any = process.net
    outs: dict[Any, list[Any]] = {}
    ins: dict[Any, int] = {}
    for arc in sorted(net.arcs, key=lambda a: (str(a.source.name), str(a.target.name))):
        outs.setdefault(arc.source, []).append(arc.target)
        ins[arc.target] = ins.get(arc.target, 0) + 1
    source = next(iter(process.initial))
    sink = next(iter(process.final))
    places = set(net.places)
    steps = {s.id: s for s in model.steps}

    def node_kind(obj: Any) -> str | None:
        fan = ins.get(obj, 0) > 1 or len(outs.get(obj, [])) > 1
        if obj is source:
            return "start"
        if obj is sink:
            return "end"
        if obj in places:
            return "xor" if fan else None
        if obj.label is not None:
            return "task"
        return "and" if fan else None

    nodes: dict[str, _GNode] = {}
    key_of: dict[Any, str] = {}
    for obj in [source, *sorted(net.transitions, key=lambda t: str(t.name)),
                *sorted(places, key=lambda p: str(p.name)), sink]:
        kind = node_kind(obj)
        if kind is None or obj in key_of:
            continue
        key = str(obj.name)
        key_of[obj] = key
        if kind == "task":
            step = steps[obj.label]
            lane = model.roles[step.role].label if step.role and step.role in model.roles else ""
            nodes[key] = _GNode(key, kind, f"{step.no or step.id} {step.activity}".strip(), lane,
                                f"{step.id}: {step.activity}")
        else:
            title = {"start": "mulai", "end": "selesai", "xor": "pilihan / gabungan", "and": "paralel"}[kind]
            cond = next((e.condition for e in model.flow if key == f"x_{e.from_}" and e.condition), None)
            nodes[key] = _GNode(key, kind, title=cond or title)
    edges: list[tuple[str, str]] = []
    for obj, key in key_of.items():
        for nxt in outs.get(obj, []):
            cur, hops = nxt, 0
            while cur not in key_of and hops < 10_000:
                cur = outs[cur][0]
                hops += 1
            edge = (key, key_of[cur])
            if edge not in edges:
                edges.append(edge)
    return nodes, edges


def _layout(nodes: dict[str, _GNode], edges: list[tuple[str, str]], start: str) -> tuple[
        list[tuple[str, str]], list[tuple[str, str]], list[list[str]]]:
    """Ranks (longest path over forward edges), dummy nodes on long edges, barycentre order per rank."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    order: list[str] = []
    stack: list[tuple[str, int]] = [(start, 0)]
    state[start] = 1
    while stack:  # iterative DFS: edges into a node still on the stack are back edges
        node, i = stack.pop()
        if i < len(succ[node]):
            stack.append((node, i + 1))
            nxt = succ[node][i]
            if state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
        else:
            state[node] = 2
            order.append(node)
    forward = [(a, b) for a, b in edges if (a, b) not in back]
    for key in reversed(order):  # reverse post-order is a topological order of the forward edges
        for a, b in forward:
            if a == key:
                nodes[b].rank = max(nodes[b].rank, nodes[a].rank + 1)
    chained: list[tuple[str, str]] = []
    for a, b in forward:
        prev = a
        for r in range(nodes[a].rank + 1, nodes[b].rank):
            dummy = f"~{a}~{b}~{r}"
            nodes[dummy] = _GNode(dummy, "dummy", rank=r)
            chained.append((prev, dummy))
            prev = dummy
        chained.append((prev, b))
    n_ranks = max(n.rank for n in nodes.values()) + 1
    ranks: list[list[str]] = [[] for _ in range(n_ranks)]
    for key in [*reversed(order), *(k for k in nodes if k not in order)]:
        ranks[nodes[key].rank].append(key)
    preds: dict[str, list[str]] = {}
    for a, b in chained:
        preds.setdefault(b, []).append(a)
    for rank in ranks:
        for key in rank:
            ps = preds.get(key, [])
            nodes[key].pos = sum(nodes[p].pos for p in ps) / len(ps) if ps else 0.0
        rank.sort(key=lambda k: (nodes[k].pos, nodes[k].kind == "dummy"))
        for i, key in enumerate(rank):
            nodes[key].pos = i - (len(rank) - 1) / 2
    return chained, sorted(back), ranks


GRAPH_COL = 170.0
GRAPH_ROW = 96.0
TASK_W, TASK_H = 138.0, 62.0


def render_graph_svg(model: SopModel, *, standalone: bool = True) -> str:
    """The compiled process, left to right: start and end events, tasks (one per step), gateways."""
    nodes, edges = process_graph(model)
    start = next(k for k, n in nodes.items() if n.kind == "start")
    chained, back, ranks = _layout(nodes, edges, start)
    max_pos = max((abs(n.pos) for n in nodes.values()), default=0.0)
    title_h = 40.0
    mid = title_h + MARGIN + (max_pos + 0.5) * GRAPH_ROW
    width = len(ranks) * GRAPH_COL + 2 * MARGIN
    bottom = mid + (max_pos + 0.5) * GRAPH_ROW
    height = bottom + 24 * (len(back) + 1) + MARGIN

    def xy(key: str) -> tuple[float, float]:
        n = nodes[key]
        return MARGIN + n.rank * GRAPH_COL + GRAPH_COL / 2, mid + n.pos * GRAPH_ROW

    def half_w(key: str) -> float:
        kind = nodes[key].kind
        return {"task": TASK_W / 2, "xor": 18.0, "and": 18.0, "start": 14.0, "end": 14.0}.get(kind, 0.0)

    svg = _Svg(_uid(model, "graph"))
    svg.text(MARGIN, MARGIN + 12, [f"{model.id} — {model.title}"], size=13, bold=True)
    svg.text(MARGIN, MARGIN + 28, ["Proses hasil kompilasi (jaring alur kerja, pm4py) / compiled process"],
             size=10, fill="#555")
    for a, b in chained:
        (x1, y1), (x2, y2) = xy(a), xy(b)
        x1 += half_w(a)
        x2 -= half_w(b)
        dx = (x2 - x1) / 2
        svg.path(f"M{_n(x1)},{_n(y1)} C{_n(x1 + dx)},{_n(y1)} {_n(x2 - dx)},{_n(y2)} {_n(x2)},{_n(y2)}",
                 arrow=nodes[b].kind != "dummy")
    for i, (a, b) in enumerate(back):
        (x1, y1), (x2, y2) = xy(a), xy(b)
        low = bottom + 18 + 24 * i
        h1 = TASK_H / 2 if nodes[a].kind == "task" else 18.0
        h2 = TASK_H / 2 if nodes[b].kind == "task" else 18.0
        svg.path(f"M{_n(x1)},{_n(y1 + h1)} C{_n(x1)},{_n(low)} {_n(x2)},{_n(low)} {_n(x2)},{_n(y2 + h2)}",
                 dash=True)
    for key, n in nodes.items():
        x, y = xy(key)
        if n.kind == "dummy":
            continue
        svg.add(f'<g class="node {n.kind}"><title>{_e(n.title or n.label)}</title>')
        if n.kind == "task":
            svg.rect(x - TASK_W / 2, y - TASK_H / 2, TASK_W, TASK_H, fill="#fff", stroke=INK, rx=8, width=1.3)
            lines = wrap(n.label, TASK_W - 10, 10)
            if len(lines) > 3:
                lines = [*lines[:2], lines[2][: max(1, len(lines[2]) - 1)] + "…"]
            top = y - TASK_H / 2 + 14 if n.lane else y - (len(lines) - 1) * 6.5 + 3
            svg.text(x, top, lines, size=10, anchor="middle", cls="task", data=n.label)
            if n.lane:
                svg.text(x, y + TASK_H / 2 - 6, wrap(n.lane, TASK_W - 10, 8.5)[:1], size=8.5, anchor="middle",
                         fill="#555", italic=True)
        elif n.kind in ("xor", "and"):
            d = f"M{_n(x)},{_n(y - 18)} L{_n(x + 18)},{_n(y)} L{_n(x)},{_n(y + 18)} L{_n(x - 18)},{_n(y)} Z"
            svg.path(d, arrow=False, fill="#fff", width=1.3)
            mark = "×" if n.kind == "xor" else "+"
            svg.text(x, y + 6, [mark], size=16, anchor="middle", bold=True)
        else:
            svg.add(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="14" fill="#fff" stroke="{INK}" '
                    f'stroke-width="{3.5 if n.kind == "end" else 1.3}"/>')
            svg.text(x, y + 28, ["mulai" if n.kind == "start" else "selesai"], size=9, anchor="middle",
                     fill="#555")
        svg.add("</g>")
    doc = svg.document(width, height, f"{model.id}: proses / process")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + doc + "\n") if standalone else doc


def render_graph_html(model: SopModel) -> str:
    return _page(f"{model.id}: proses / process", render_graph_svg(model, standalone=False))


# ---------------------------------------------------------------------------------------------------
# PNG through headless Chromium, and files
# ---------------------------------------------------------------------------------------------------


def _svg_size(svg: str) -> tuple[int, int]:
    import re

    match = re.search(r'<svg[^>]* width="([\d.]+)" height="([\d.]+)"', svg)
    if not match:
        return 1280, 900
    return int(float(match[1]) + 0.999), int(float(match[2]) + 0.999)


def html_to_png(page: str, out: Path, width: int, height: int, chromium: Path = CHROMIUM,
                timeout: float = 90.0) -> Path:
    """Screenshot ``page`` (an HTML document) with headless Chromium into ``out`` (PNG)."""
    if not chromium.exists():
        raise UserError(f"PNG needs Chromium at {chromium}: install it (Debian: apt-get install chromium) "
                        "or render --format html/svg",
                        pesan=f"PNG memerlukan Chromium di {chromium}: pasang Chromium (Debian: apt-get install "
                              "chromium) atau gambar dengan --format html/svg")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="patuh-render-") as tmp:
        page_path = Path(tmp) / "page.html"
        page_path.write_text(page, encoding="utf-8")
        cmd = [
            str(chromium), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={Path(tmp) / 'profile'}",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},{height}",
            f"--screenshot={out}", page_path.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"Chromium did not finish the screenshot within {timeout:.0f} s",
                            pesan=f"Chromium tidak selesai mengambil tangkapan layar dalam {timeout:.0f} "
                                  "detik") from None
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise UserError(f"Chromium could not render {out.name} (exit {proc.returncode}): {' | '.join(tail)}",
                        pesan=f"Chromium gagal menggambar {out.name} (kode keluar {proc.returncode}): "
                              f"{' | '.join(tail)}")
    return out


def render_to_file(model: SopModel, fmt: Format, out: Path, *, graph: bool = False,
                   institution: str | None = None, chromium: Path = CHROMIUM) -> Path:
    """Write the paper table (or, with ``graph``, the compiled process) as HTML, SVG or PNG."""
    if fmt not in ("html", "svg", "png"):
        raise UserError(f"unknown format '{fmt}': use html, svg or png",
                        pesan=f"format '{fmt}' tidak dikenal: gunakan html, svg atau png")
    if graph:
        svg_text = render_graph_svg(model)
        page = render_graph_html(model)
    else:
        svg_text = render_svg(model, institution)
        page = render_html(model, institution)
    if fmt == "png":
        width, height = _svg_size(svg_text)
        notes = 0 if graph or not model.notes else 40
        return html_to_png(page, out, width + int(2 * MARGIN), height + int(2 * MARGIN) + notes, chromium)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg_text if fmt == "svg" else page, encoding="utf-8")
    return out


def chromium_available(chromium: Path = CHROMIUM) -> bool:
    return chromium.exists() or shutil.which("chromium") is not None


def institution_name(model: SopModel, sop_dir: Path) -> str | None:
    """The institution's name from ``institutions.yaml`` (None when the file or entry is missing)."""
    from pipeline.calendars import load_institutions

    try:
        institutions = load_institutions(sop_dir / "institutions.yaml")
    except UserError:
        return None
    found = institutions.get(model.institution)
    return found.name if found else None
