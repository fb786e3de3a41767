"""Tables the ``patuh`` command prints, readable at any terminal width (80 columns included).

A table whose columns fit the terminal is printed as a table. One that does not (the ingest summary has
eleven columns) is printed as one record per row instead: its key cells on one line, then its
``label: value`` pairs, as many to a line as fit. Rich would otherwise squeeze every column to a few letters
and cut identifiers with an ellipsis, and a user could no longer read a file name or copy an SOP id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

WRAP_MIN = 24  # a wrapping column (messages, titles) gets at least this many characters in a table
# per column: a border and one space of padding on each side; and the closing border
COLUMN_OVERHEAD, TABLE_OVERHEAD = 3, 1
INDENT, SEPARATOR = 2, "   "  # records: the indent of their pairs, between two pairs


@dataclass(frozen=True)
class Column:
    """A column: its Indonesian and English header; ``wrap`` for long text, ``number`` to right-align."""

    id: str
    en: str = ""
    wrap: bool = False
    number: bool = False

    @property
    def label(self) -> str:
        return self.id if not self.en or self.en == self.id else f"{self.id} / {self.en}"

    @property
    def header(self) -> str:
        """Two lines (Indonesian over English): half the width of ``label``."""
        return self.id if not self.en or self.en == self.id else f"{self.id}\n{self.en}"


def table_width(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """Characters the table needs with no cell cut (wrapping columns at ``WRAP_MIN`` at most)."""
    width = TABLE_OVERHEAD
    for i, column in enumerate(columns):
        cells = [len(line) for row in rows for line in str(row[i]).splitlines() or [""]]
        header = max(len(line) for line in column.header.splitlines())
        content = max([header, *cells])
        width += COLUMN_OVERHEAD + (min(content, WRAP_MIN) if column.wrap else content)
    return width


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                title: str | None = None, keys: int = 1) -> None:
    """``rows`` as a table when it fits ``console``, else as records: the first ``keys`` cells head each
    (a number with its column's name), the other cells follow as ``label: value``."""
    if table_width(columns, rows) <= console.width:
        table = Table(title=title)
        for column in columns:
            table.add_column(column.header, justify="right" if column.number else "left",
                             no_wrap=not column.wrap, overflow="fold", min_width=WRAP_MIN if column.wrap else None)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        console.print(table)
        return
    if title:
        console.print(Text(title, style="bold"))
    for row in rows:
        head = Text("  ".join(f"{column.id} {cell}" if column.number else str(cell)
                              for column, cell in zip(columns[:keys], row[:keys], strict=True)),
                    style="bold", overflow="fold")
        console.print(head)
        pairs = [(f"{column.label}: ", str(cell)) for column, cell in zip(columns[keys:], row[keys:], strict=True)]
        for line in _pack(pairs, console.width - INDENT):
            console.print(Padding(line, (0, 0, 0, INDENT), expand=False))


def _pack(pairs: Sequence[tuple[str, str]], width: int) -> list[Text]:
    """Lines of ``label: value`` pairs, as many to a line as fit, none broken unless longer than a line."""
    lines: list[Text] = []
    for label, value in pairs:
        size = len(label) + len(value)
        if lines and lines[-1].cell_len + len(SEPARATOR) + size <= width:
            lines[-1].append(SEPARATOR, style="dim")
        else:
            lines.append(Text(overflow="fold"))
        lines[-1].append(label, style="dim")
        lines[-1].append(value)
    return lines
