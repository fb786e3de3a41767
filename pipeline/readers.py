"""Readers for event-log exports: CSV, XLSX, Parquet, XES (.xes, .xes.gz).

Each reader exposes the file to DuckDB as a relation of columns (text, or typed where the file has
types: Parquet, the dates rustxes reads from XES) plus ``__row`` (1-based data row or XES event number)
and ``__loc`` (where a user finds the row: "row 5", "sheet 'Kasus' row 7", "event 12"). Every reader
counts what it could not split into columns (ragged CSV lines), so the ingest can quarantine them
instead of losing them. A file that cannot be read at all is a :class:`UserError` before anything is written.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gzip
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.db import sql_literal
from pipeline.errors import UserError, os_reason

Progress = Callable[[str, float], None]

XES_KEYS = ("case:concept:name", "concept:name", "time:timestamp", "org:resource", "org:role",
            "lifecycle:transition", "start_timestamp", "documents", "case:status")


@dataclass
class Reject:
    """A line the reader could not split into the header's columns."""

    line: int
    message: str
    too_long: bool = False  # longer than the scan's line limit (not a delimiter problem)


@dataclass
class Source:
    """A readable file, as DuckDB sees it."""

    format: str                       # csv | xlsx | parquet | xes
    sql: str                          # a FROM item: text columns + __row BIGINT + __loc VARCHAR
    columns: list[str]
    types: dict[str, str] = field(default_factory=dict)  # non-text column types (Parquet)
    ordinal_time: bool = False        # XES without any time:timestamp: order only
    has_loc: bool = False             # a __loc column (XLSX: sheet and row); else 'row N' from __row
    row_word: str = "row"             # XES: "event"
    rows_read: int | None = None      # known up front (XLSX, XES)
    rejects_table: str | None = None  # CSV: DuckDB's rejects, read after the scan
    numbered: bool = True             # has __row; else (CSV) the row number is the row's position
    read_path: Path | None = None     # CSV: the UTF-8 file DuckDB reads (for csv_record_lines)
    notes: list[str] = field(default_factory=list)
    _cleanup: list[Callable[[], None]] = field(default_factory=list)
    _widen: Callable[[], str] | None = None  # CSV: the scan again with a larger line limit

    def widen(self) -> bool:
        """After a scan failed on a too-long line: read with a larger limit (once). False when it cannot."""
        if self._widen is None:
            return False
        self.sql, self._widen = self._widen(), None
        return True

    def rejects(self, conn: duckdb.DuckDBPyConnection) -> list[Reject]:
        return [] if self.rejects_table is None else read_rejects(conn, self.rejects_table)

    def close(self, conn: duckdb.DuckDBPyConnection) -> None:
        for fn in reversed(self._cleanup):
            with contextlib.suppress(duckdb.Error):
                fn()
        self._cleanup.clear()


def read_rejects(conn: duckdb.DuckDBPyConnection, table: str) -> list[Reject]:
    """The lines a ``read_csv(..., store_rejects=true, rejects_table=table)`` scan could not split."""
    rows = conn.execute(
        f"SELECT line, any_value(error_type), any_value(error_message) FROM {table} GROUP BY line ORDER BY line"
    ).fetchall()
    return [Reject(int(line), f"{kind.lower()}: {msg}", kind == "LINE SIZE OVER MAXIMUM") for line, kind, msg in rows]


def reject_message(name: str, reject: Reject) -> str:
    """The quarantine message of a line the CSV scan could not split: where, what, and how to fix it."""
    fix = (f"a line may be at most {WIDE_LINE_BYTES // 1_000_000} MB: shorten the long free-text cell "
           "(Patuh does not keep free text)" if reject.too_long else
           "a line must have as many values as the header: look for a missing or extra delimiter, "
           "or a delimiter inside an unquoted value")
    return f"{name}: line {reject.line}: {reject.message}; {fix}"


# DuckDB's kinds of CSV errors (the start of ``Reject.message``), in Indonesian; its own details stay as they are
_REJECT_KINDS_ID = {
    "too many columns": "kolom terlalu banyak",
    "missing columns": "kolom kurang",
    "line size over maximum": "baris terlalu panjang",
    "unquoted value": "tanda kutip tidak tertutup dengan benar",
    "invalid unicode": "karakter tidak valid",
    "invalid state": "baris tidak dapat dipisah",
}


def reject_pesan(name: str, reject: Reject) -> str:
    """:func:`reject_message` in Indonesian."""
    kind, sep, detail = reject.message.partition(": ")
    what = f"{_REJECT_KINDS_ID[kind]}{sep}{detail}" if kind in _REJECT_KINDS_ID else reject.message
    fix = (f"satu baris paling panjang {WIDE_LINE_BYTES // 1_000_000} MB: persingkat sel teks bebas yang panjang "
           "(Patuh tidak menyimpan teks bebas)" if reject.too_long else
           "setiap baris harus berisi nilai sebanyak kolom pada baris judul: cari pemisah (delimiter) yang hilang "
           "atau berlebih, atau pemisah di dalam nilai yang tidak diberi tanda kutip")
    return f"{name}: baris {reject.line}: {what}; {fix}"


def quarantine_rejects(conn: duckdb.DuckDBPyConnection, batch_id: int, name: str, rejects: list[Reject]) -> None:
    """Quarantine rows ``ragged_line`` for the lines of file ``name`` a CSV scan could not split (``message`` in
    English, ``pesan`` in Indonesian)."""
    if rejects:
        conn.executemany(
            "INSERT INTO quarantine (batch_id, source_row, reason, message, pesan, raw) "
            "VALUES (?, ?, 'ragged_line', ?, ?, NULL)",
            [[batch_id, r.line, reject_message(name, r), reject_pesan(name, r)] for r in rejects])


# the file types a log is read from (by name; the content decides how, see sniff_format)
EXPORT_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xes", ".xes.gz", ".parquet")
_SNIFFED = (".xls", ".xml", ".gz")  # not read, but sniff_format says what to do with them


def check_file_type(path: Path) -> None:
    """A :class:`UserError` for a file whose name says it is no export (a .docx, a .pdf, ...); a file without
    an extension is read by its content."""
    name = path.name.lower()
    if not path.suffix or name.endswith(EXPORT_SUFFIXES + _SNIFFED):
        return
    raise UserError(f"{path.name}: unsupported file type {path.suffix.lower()}; expected "
                    f"{', '.join(EXPORT_SUFFIXES[:-1])} or {EXPORT_SUFFIXES[-1]}: export the log in one of these "
                    "(from a spreadsheet: save as .xlsx or .csv)",
                    pesan=f"{path.name}: jenis berkas {path.suffix.lower()} tidak didukung; yang didukung: "
                          f"{', '.join(EXPORT_SUFFIXES[:-1])} atau {EXPORT_SUFFIXES[-1]}: ekspor log dalam salah satu "
                          "jenis ini (dari spreadsheet: simpan sebagai .xlsx atau .csv)")


def sniff_format(path: Path) -> str:
    """csv | xlsx | parquet | xes | xes.gz from the first bytes (the extension only breaks ties)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise UserError(f"{path}: cannot open the file ({exc.strerror})",
                        pesan=f"{path}: berkas tidak dapat dibuka ({os_reason(exc)})") from None
    name = path.name.lower()
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise UserError(f"{path.name}: the file is empty; export the log again (with its header row)",
                        pesan=f"{path.name}: berkas ini kosong; ekspor ulang log (beserta baris judul kolomnya)")
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\x1f\x8b"):
        if name.endswith(".xes.gz"):
            return "xes.gz"
        raise UserError(f"{path.name}: a gzip file that is not named .xes.gz; unpack it first",
                        pesan=f"{path.name}: berkas gzip yang namanya tidak berakhiran .xes.gz; ekstrak dulu isinya")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UserError(f"{path.name}: an old Excel .xls file; save it as .xlsx or .csv and load that",
                        pesan=f"{path.name}: berkas Excel lama (.xls); simpan sebagai .xlsx atau .csv, "
                              "lalu muat berkas itu")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<?xml") or text.startswith(b"<log") or text.startswith(b"<!DOCTYPE"):
        return "xes"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "csv"  # UTF-16 text, transcoded below
    if b"\x00" in head or sum(b < 9 or 13 < b < 32 for b in head) > len(head) // 50:
        raise UserError(f"{path.name}: not a text, XLSX, Parquet or XES file (binary content); "
                        "export the log as CSV, XLSX or XES",
                        pesan=f"{path.name}: bukan berkas teks, XLSX, Parquet atau XES (isinya biner); "
                              "ekspor log sebagai CSV, XLSX atau XES")
    if name.endswith((".xes", ".xml")):
        raise UserError(f"{path.name}: not an XES file (no XML header); export it again",
                        pesan=f"{path.name}: bukan berkas XES (tidak ada header XML); ekspor ulang berkasnya")
    if name.endswith((".gz", ".parquet", ".xlsx")):  # named for a binary format, but text: a mix-up
        raise UserError(f"{path.name}: not a {name.rsplit('.', 1)[1]} file, whatever its name says; "
                        "export the log again",
                        pesan=f"{path.name}: bukan berkas {name.rsplit('.', 1)[1]}, meskipun namanya berakhiran "
                              f".{name.rsplit('.', 1)[1]}; ekspor ulang log")
    return "csv"


def open_source(conn: duckdb.DuckDBPyConnection, path: Path, *, sheet: str | None = None,
                wanted: set[str] | None = None, accept: Callable[[list[str]], bool] | None = None,
                progress: Progress | None = None) -> Source:
    """Expose ``path`` to ``conn`` (views and registered Arrow tables, removed by ``Source.close``)."""
    check_file_type(path)
    fmt = sniff_format(path)
    if fmt == "csv":
        return _csv(conn, path)
    if fmt == "parquet":
        return _parquet(conn, path)
    if fmt == "xlsx":
        return _xlsx(conn, path, sheet, accept)
    return _xes(conn, path, wanted or set(), progress)


def _drop(conn: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for t in tables:
        conn.execute(f"DROP TABLE IF EXISTS {t}")


def _unregister(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.unregister(name)



def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------------------ CSV


def detect_encoding(path: Path, sample_size: int = 1 << 20) -> str:
    """utf-8 | utf-16 | cp1252, from a sample (a multi-byte sequence cut at the end is fine)."""
    with path.open("rb") as fh:
        sample = fh.read(sample_size)
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def transcode(path: Path, encoding: str) -> Path:
    """Stream a non-UTF-8 text file to a UTF-8 temp file (cp1252, bytes it leaves undefined as Latin-1)."""
    fd, tmp = tempfile.mkstemp(prefix="patuh-", suffix=".csv")
    try:
        with path.open("rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            if encoding == "utf-16":
                dst.write(codecs.getreader("utf-16")(src).read())  # rare: exported from Excel's "Unicode text"
            else:
                while chunk := src.read(1 << 20):
                    try:
                        dst.write(chunk.decode("cp1252"))
                    except UnicodeDecodeError:
                        dst.write(chunk.decode("latin-1"))
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


# DuckDB's default line limit (2 MB) keeps its CSV scan parallel in small buffers; a file with a longer line
# (a multi-MB free-text cell) fails the sniffing or is rejected, and the file is read again with this limit
# (a 1.6x slower scan)
WIDE_LINE_BYTES = 10_000_000


def _csv_scan(path: Path, src: Source, conn: duckdb.DuckDBPyConnection, wide: bool) -> str:
    """A read_csv FROM item with its own rejects tables (dropped when ``src`` closes)."""
    tag = os.urandom(4).hex()
    rejects, scans = f"_patuh_rej_{tag}", f"_patuh_scan_{tag}"
    src.rejects_table = rejects
    src._cleanup.append(lambda: _drop(conn, rejects, scans))
    return (f"read_csv({sql_literal(str(path))}, header=true, all_varchar=true, store_rejects=true, "
            f"rejects_table={sql_literal(rejects)}, rejects_scan={sql_literal(scans)}"
            + (f", max_line_size={WIDE_LINE_BYTES})" if wide else ")"))


def mixed_line_ends(path: Path) -> bool:
    """Whether a text file ends some lines with CRLF and others with a bare LF (a Windows export edited by
    hand elsewhere): DuckDB's CSV sniffer refuses such a file."""
    crlf = lf = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            data = last + chunk
            crlf += data.count(b"\r\n") - last.count(b"\r\n")
            lf += data.count(b"\n") - data.count(b"\r\n") - (last.count(b"\n") - last.count(b"\r\n"))
            if crlf and lf:
                return True
            last = chunk[-1:]
    return False


def to_lf(path: Path) -> Path:
    """Stream a text file to a temp file with every CRLF written as LF (the lines stay where they were)."""
    fd, tmp = tempfile.mkstemp(prefix="patuh-", suffix=".csv")
    try:
        with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
            carry = b""
            while chunk := src.read(1 << 22):
                data = carry + chunk
                carry = b"\r" if data.endswith(b"\r") else b""
                dst.write(data[:len(data) - len(carry)].replace(b"\r\n", b"\n"))
            dst.write(carry)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def _csv(conn: duckdb.DuckDBPyConnection, path: Path) -> Source:
    encoding = detect_encoding(path)
    read_path = path if encoding == "utf-8" else transcode(path, encoding)
    src = Source("csv", "", [], notes=[] if encoding == "utf-8" else [f"encoding: {encoding}"])
    if read_path != path:
        src._cleanup.append(lambda: read_path.unlink(missing_ok=True))
    try:
        try:
            described = _describe_csv(conn, src, read_path)
        except duckdb.Error:
            if not mixed_line_ends(read_path):
                raise
            lf_path = read_path = to_lf(read_path)
            src._cleanup.append(lambda: lf_path.unlink(missing_ok=True))
            src.notes.append("line endings: a mix of CRLF and LF (a hand-edited export); both read as line ends")
            described = _describe_csv(conn, src, read_path)
    except duckdb.Error as exc:
        src.close(conn)
        raise UserError(f"{path.name}: cannot read it as CSV ({str(exc).splitlines()[0]}); "
                        "export the log again as CSV with a header row",
                        pesan=f"{path.name}: tidak dapat dibaca sebagai CSV ({str(exc).splitlines()[0]}); "
                              "ekspor ulang log sebagai CSV dengan baris judul kolom") from None
    src.columns = [str(row[0]) for row in described]
    src.numbered = False
    src.read_path = read_path
    return src


def _describe_csv(conn: duckdb.DuckDBPyConnection, src: Source, read_path: Path) -> list[Any]:
    """Point ``src`` at ``read_path`` and let DuckDB sniff it: its columns (a duckdb.Error when it cannot)."""
    src._widen = lambda: _csv_scan(read_path, src, conn, wide=True)
    src.sql = _csv_scan(read_path, src, conn, wide=False)
    try:
        return conn.execute(f"DESCRIBE SELECT * FROM {src.sql}").fetchall()
    except duckdb.Error as exc:
        if "Maximum line size" not in str(exc) or not src.widen():  # a long line in the sniffed sample
            raise
        return conn.execute(f"DESCRIBE SELECT * FROM {src.sql}").fetchall()


def csv_record_lines(path: Path, columns: list[str], positions: Iterable[int],
                     rejected: Iterable[int] = ()) -> tuple[dict[int, int], dict[int, int]]:
    """File lines of CSV records, as a user finds them in an editor or a spreadsheet.

    ``positions`` number the data records as DuckDB's scan does (1 = the first after the header; blank lines
    and ragged records not counted); ``rejected`` are the line numbers DuckDB gives ragged records, which count
    every record and blank line as one line (a cell spanning lines does not add any). Returns the physical line
    each starts on, for both. One streaming pass up to the last record asked for, with the delimiter that
    splits the header into DuckDB's ``columns`` (run only for files with refused rows)."""
    wanted, skip = set(positions), set(rejected)
    if not wanted and not skip:
        return {}, {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        head = fh.readline().rstrip("\r\n")
    delimiter = next((d for d in (",", ";", "\t", "|") if next(csv.reader([head], delimiter=d)) == columns), ",")
    last_pos, last_line = max(wanted, default=0), max(skip, default=0)
    csv.field_size_limit(max(csv.field_size_limit(), 2 * WIDE_LINE_BYTES))  # the reader's default is 128 KiB
    found: dict[int, int] = {}
    rejected_at: dict[int, int] = {}
    position = logical = consumed = 0
    with path.open(encoding="utf-8-sig", newline="") as fh, contextlib.suppress(csv.Error):
        # a record Python's reader cannot split (a cell over the limit) ends the mapping: the rest keep positions
        reader = csv.reader(fh, delimiter=delimiter)
        for record in reader:
            start, consumed = consumed + 1, reader.line_num
            logical += 1
            if logical in skip:
                rejected_at[logical] = start
            elif record and logical > 1:  # not blank, not the header
                position += 1
                if position in wanted:
                    found[position] = start
            if position >= last_pos and logical >= last_line:
                break
    return found, rejected_at


# -------------------------------------------------------------------------------------------- Parquet


def _parquet(conn: duckdb.DuckDBPyConnection, path: Path) -> Source:
    scan = f"read_parquet({sql_literal(str(path))}, file_row_number=true)"
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
    except duckdb.Error as exc:
        raise UserError(f"{path.name}: cannot read it as Parquet ({str(exc).splitlines()[0]}); "
                        "the file may be truncated: export it again",
                        pesan=f"{path.name}: tidak dapat dibaca sebagai Parquet ({str(exc).splitlines()[0]}); "
                              "mungkin berkasnya terpotong: ekspor ulang berkasnya") from None
    cols = [(str(r[0]), str(r[1])) for r in described if r[0] != "file_row_number"]
    keep = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "VARCHAR", "VARCHAR[]", "TIMESTAMP_NS", "TIMESTAMP_MS",
            "TIMESTAMP_S", "DATE"}
    select = ", ".join(_ident(c) if t in keep else f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c, t in cols)
    sql = f"(SELECT file_row_number + 1 AS __row, {select} FROM {scan})"
    types = {c: t for c, t in cols if t in keep and t != "VARCHAR"}
    return Source("parquet", sql, [c for c, _ in cols], types=types)


# ----------------------------------------------------------------------------------------------- XLSX


def _cell(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    text = str(value).strip()
    return text or None


# what str.strip() removes (str.isspace), for pyarrow's trim: the same text either way
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def cell_column(values: list[Any]) -> pa.Array:
    """:func:`_cell` over a column of spreadsheet cells: all-text columns in one pyarrow pass, others cell by
    cell (numbers and dates need their own text)."""
    if all(v is None or type(v) is str for v in values):
        text = pc.utf8_trim(pa.array(values, pa.string()), characters=PY_WHITESPACE)
        return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return pa.array([_cell(v) for v in values], pa.string())


def _filled(cells: list[Any]) -> bool:
    return cells.count(None) + cells.count("") < len(cells)


def _register(conn: duckdb.DuckDBPyConnection, src: Source, table: pa.Table, prefix: str) -> str:
    name = f"_patuh_{prefix}_{os.urandom(4).hex()}"
    conn.register(name, table)
    src._cleanup.append(lambda: _unregister(conn, name))
    return name


HEADER_SEARCH_ROWS = 10  # a sheet's title block (school name, "REKAP ...", the year) is a few rows at most


def _headers(row: list[Any]) -> list[str]:
    """A header row's column names: blank cells named by position, repeats by their position too."""
    headers: list[str] = []
    for j, h in enumerate(row):
        text = _cell(h) or f"kolom_{j + 1}"
        headers.append(text if text not in headers else f"{text}_{j + 1}")
    return headers


def _header_at(numbered: list[tuple[int, list[Any]]], accept: Callable[[list[str]], bool] | None) -> int:
    """Which of a sheet's first filled rows is its header: school spreadsheets put a title block above it
    ("REKAP MUTASI SISWA", the school, the year; one or two filled cells each). The first row whose names
    ``accept`` takes (a mapping's columns, or case and activity columns), else the first row filled about as
    wide as the widest of them."""
    head = numbered[:HEADER_SEARCH_ROWS]
    if accept is not None:
        for i, (_, row) in enumerate(head):
            if accept(_headers(row)):
                return i
    counts = [len(row) - row.count(None) - row.count("") for _, row in head]
    widest = max(counts)
    return next(i for i, n in enumerate(counts) if n == widest or n >= max(2, 0.6 * widest))


def _xlsx(conn: duckdb.DuckDBPyConnection, path: Path, sheet: str | None,
          accept: Callable[[list[str]], bool] | None) -> Source:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for corrupt zips and XML
        raise UserError(f"{path.name}: cannot read it as XLSX ({str(exc).splitlines()[0]}); "
                        "open it in a spreadsheet and save it again as .xlsx",
                        pesan=f"{path.name}: tidak dapat dibaca sebagai XLSX ({str(exc).splitlines()[0]}); "
                              "buka di spreadsheet, lalu simpan ulang sebagai .xlsx") from None
    names = list(book.sheet_names)
    if sheet is not None and sheet not in names:
        raise UserError(f"{path.name}: no sheet {sheet!r}; the sheets are {', '.join(map(repr, names))}",
                        pesan=f"{path.name}: tidak ada lembar {sheet!r}; lembar yang ada: "
                              f"{', '.join(map(repr, names))}")
    tables: list[pa.Table] = []
    notes: list[str] = []
    first_row = 0
    for name in [sheet] if sheet else names:
        try:
            rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except Exception as exc:
            raise UserError(f"{path.name}: sheet {name!r} cannot be read ({str(exc).splitlines()[0]})",
                            pesan=f"{path.name}: lembar {name!r} tidak dapat dibaca "
                                  f"({str(exc).splitlines()[0]})") from None
        numbered = [(i + 1, r) for i, r in enumerate(rows) if _filled(r)]
        if not numbered:
            continue
        at = _header_at(numbered, accept)
        headers = _headers(numbered[at][1])
        if accept is not None and not sheet and not accept(headers):
            notes.append(f"sheet {name!r} skipped (no case/activity columns)")
            continue
        if at:
            notes.append(f"sheet {name!r}: the header is row {numbered[at][0]}; the {at} filled row(s) above it "
                         "(a title) are not read")
        data = numbered[at + 1:]
        width = len(headers)
        short = min((len(r) for _, r in data), default=width) < width
        cols: dict[str, Any] = {
            h: cell_column([r[j] if j < len(r) else None for _, r in data] if short else [r[j] for _, r in data])
            for j, h in enumerate(headers)
        }
        wide = max((len(r) for _, r in data), default=width) > width
        extra = sum(1 for _, r in data if _filled(r[width:])) if wide else 0
        if extra:
            notes.append(f"sheet {name!r}: {extra} row(s) have cells right of the last header; they are not read")
        cols["__row"] = pa.array(range(first_row + 1, first_row + 1 + len(data)), pa.int64())
        cols["__loc"] = pa.array([f"sheet {name!r} row {no}" for no, _ in data], pa.string())
        first_row += len(data)
        tables.append(pa.table(cols))
    if not tables:
        raise UserError(f"{path.name}: no sheet with a header and event rows"
                        + (" (use --sheet NAME or a mapping with the right column names)" if notes else ""),
                        pesan=f"{path.name}: tidak ada lembar yang berisi baris judul kolom dan baris peristiwa"
                              + (" (gunakan --sheet NAME atau pemetaan dengan nama kolom yang benar)" if notes else ""))
    table = pa.concat_tables(tables, promote_options="default")
    src = Source("xlsx", "", [c for c in table.column_names if not c.startswith("__")], rows_read=table.num_rows,
                 notes=notes, has_loc=True)
    src.sql = _register(conn, src, table, "xlsx")
    return src


# ------------------------------------------------------------------------------------------------ XES

_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")


_NAIVE_DATE = re.compile(rb'<date\b[^>]*?\bvalue="\s*\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?\s*"')
_SAMPLE = 1 << 20


def _xes(conn: duckdb.DuckDBPyConnection, path: Path, wanted: set[str], progress: Progress | None) -> Source:
    """rustxes (pm4py's Rust XES reader) after a safety pre-scan; lxml iterparse when it cannot be used."""
    src = _xes_rust(conn, path, wanted, progress)
    return src if src is not None else _xes_lxml(conn, path, wanted, progress)


def _xes_prescan(path: Path, inflate_to: Path | None = None) -> bool:
    """Refuse DTDs and entities; say whether rustxes may read the file.

    rustxes is safe here when the file is complete (plain: ``</log>`` in its last bytes; gzip: the
    stream ends with a valid trailer and ``</log>``) and its sampled dates all carry a UTC offset
    (rustxes reads a date without one as UTC; Patuh reads it as the institution's local time).
    ``inflate_to``: a gzip file's XES is also written there, as it is read."""
    gz = path.name.lower().endswith(".gz")
    try:
        if not gz:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_SAMPLE)
                fh.seek(max(size - _SAMPLE, len(head)))
                tail = fh.read()
            _refuse_dtd(path, head[:65536])
            ends = b"</log>" in (head + tail)[-4096:]
            return ends and not _NAIVE_DATE.search(head) and not _NAIVE_DATE.search(tail)
        inflate = zlib.decompressobj(wbits=47)
        head, tail = b"", b""
        with path.open("rb") as fh, (inflate_to.open("wb") if inflate_to else contextlib.nullcontext()) as copy:
            while not inflate.eof and (data := inflate.unconsumed_tail or fh.read(1 << 20)):
                out = inflate.decompress(data, 16 << 20)  # at most 16 MB at once, whatever the ratio
                if len(head) < _SAMPLE:
                    head += out[:_SAMPLE - len(head)]
                    _refuse_dtd(path, head[:65536])  # before a bomb is written out
                tail = (tail + out)[-_SAMPLE:]
                if copy is not None:
                    copy.write(out)
    except (OSError, zlib.error):
        return False  # lxml's path reports it
    return inflate.eof and b"</log>" in tail[-4096:] and not _NAIVE_DATE.search(head) \
        and not _NAIVE_DATE.search(tail)


def _refuse_dtd(path: Path, head: bytes) -> None:
    if any(tok in head for tok in _FORBIDDEN):
        raise UserError(f"{path.name}: the XES file declares a DTD or entities (<!DOCTYPE/<!ENTITY>); "
                        "refused: such files can expand without bound (billion laughs) or read other "
                        "files. Export the log again without a DOCTYPE",
                        pesan=f"{path.name}: berkas XES ini mendeklarasikan DTD atau entitas (<!DOCTYPE/<!ENTITY>); "
                              "ditolak: berkas seperti ini dapat membesar tanpa batas (billion laughs) atau membaca "
                              "berkas lain. Ekspor ulang log tanpa DOCTYPE")


@contextlib.contextmanager
def _quiet_fds() -> Iterator[list[bytes]]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to a temp file for a while:
    rustxes prints parse warnings and panic backtraces there; they are kept for the caller to read
    (a progress bar drawn meanwhile is lost and redrawn at its next update)."""
    captured: list[bytes] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read(65536))


def _rustxes_read(path: Path) -> Any:
    """One rustxes parse in this process: its polars frame, or None after a panic or a date it could not
    read (it would leave NULL; lxml quarantines the event with a message instead)."""
    import rustxes

    try:
        with _quiet_fds() as said:
            frame, _ = rustxes.import_xes(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a Rust panic is a pyo3 PanicException, a BaseException
        return None
    return None if said and b"Failed to parse" in said[0] else frame


# A plain .xes at least this large is parsed in parts, one per core, all but the first by child processes:
# rustxes holds the GIL and uses one core. Smaller files do not pay back a child's start and the frame's
# hand-over (measured with 2 cores: even at 63 MB, 0.25 s gained at 126 MB, 0.6 s at 167 MB).
XES_SPLIT_BYTES = 64 << 20
# rustxes 0.2 peaks at about six times the XES bytes it parses (1.05 GB for a 167 MB file): a larger file is
# parsed in more parts than cores, so that no process holds more than one part's peak (a 1.7 GB, 10M-event
# XES peaked at 11.5 GB parsed whole).
XES_PART_BYTES = 256 << 20
XES_GZ_INFLATE_BYTES = 4 << 20  # a .xes.gz this large is inflated to a temp file first (XES gzips ~10:1)
_TRACE_TAG = re.compile(rb"<trace[\s>]")
_RUSTXES_CHILD = """
import ctypes, os, signal, sys
try:  # Linux: die with the ingest that started this part (a killed ingest leaves no parser running)
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[3]):
    sys.exit(1)
import rustxes
frame, _ = rustxes.import_xes(sys.argv[1])
frame.write_ipc(sys.argv[2])
"""


def xes_parts() -> int:
    """How many XES parts are parsed at once: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _copy_range(src: Any, dst: Any, start: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` from ``start`` to ``dst``, in the kernel where it can."""
    dst.flush()
    with contextlib.suppress(AttributeError, OSError):  # no copy_file_range here: copy in chunks below
        while length > 0 and (done := os.copy_file_range(src.fileno(), dst.fileno(), length, start)):
            start += done
            length -= done
    src.seek(start)
    while length > 0:
        chunk = src.read(min(length, 1 << 20))
        if not chunk:
            raise OSError(f"{src.name}: shorter than expected")
        dst.write(chunk)
        length -= len(chunk)


def _trace_cuts(path: Path, parts: int) -> tuple[int, list[int]] | None:
    """Where the log's header ends, and the byte offsets of a ``<trace>`` at or after each 1/parts of the
    file (distinct, rising); None when the file has no traces to cut at."""
    size = path.stat().st_size
    cuts: list[int] = []
    with path.open("rb") as fh:
        first = _TRACE_TAG.search(fh.read(_SAMPLE))
        for k in range(1, parts):
            fh.seek(k * size // parts)
            found = _TRACE_TAG.search(fh.read(_SAMPLE))
            if found is not None and k * size // parts + found.start() > (cuts[-1] if cuts else 0):
                cuts.append(k * size // parts + found.start())
    if first is None or not cuts or cuts[0] <= first.start():
        return None
    return first.start(), cuts


def _remove_orphan_parts() -> None:
    """Delete the part files of an ingest that was killed (its process is gone): they are as large as its XES."""
    for folder in Path(tempfile.gettempdir()).glob("patuh-xes-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and Path("/proc/self").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _rustxes_parts(path: Path, parts: int, cores: int, progress: Progress | None = None) -> list[Any] | None:
    """Parse a large XES as ``parts`` XES files cut at ``<trace>`` tags, each with the log's header: this
    process reads the first part while child processes read the others, ``cores`` at a time. The frames keep
    the file's event order; ``progress`` hears of each part done. None when there is nothing to cut, or any
    part fails."""
    import polars as pl

    found = _trace_cuts(path, parts)
    if found is None:
        return None
    header_end, cuts = found
    bounds = list(zip([0, *cuts], [*cuts, path.stat().st_size], strict=True))
    _remove_orphan_parts()
    with tempfile.TemporaryDirectory(prefix=f"patuh-xes-{os.getpid()}-") as tmp:
        files = [Path(tmp, f"part{i}.xes") for i in range(len(bounds))]
        try:
            with path.open("rb") as src:
                for i, (start, end) in enumerate(bounds):
                    with files[i].open("wb") as dst:
                        if i > 0:
                            src.seek(0)
                            dst.write(src.read(header_end))
                        _copy_range(src, dst, start, end - start)
                        if i < len(bounds) - 1:
                            dst.write(b"\n</log>\n")
        except OSError:  # e.g. no room in the temp folder
            return None
        pending, running = files[1:], list[subprocess.Popen[bytes]]()

        def launch(limit: int) -> None:
            while pending and len(running) < limit:
                part = pending.pop(0)
                with part.with_suffix(".out").open("wb") as said:  # a file: a pipe could fill up and block it
                    running.append(subprocess.Popen(
                        [sys.executable, "-c", _RUSTXES_CHILD, str(part), str(part.with_suffix(".arrow")),
                         str(os.getpid())], stdin=subprocess.DEVNULL, stdout=said, stderr=subprocess.STDOUT))

        def done(n: int) -> None:
            if progress is not None:
                progress("XES", 0.05 + 0.9 * n / len(files))

        try:
            launch(cores - 1)
            first = _rustxes_read(files[0])
            if first is None:
                return None
            done(1)
            launch(cores)
            while running:
                if running[0].wait() != 0:  # parts are of a size: the oldest ends first
                    return None
                running.pop(0)
                done(len(files) - len(pending) - len(running))
                launch(cores)
            said = b"".join(f.with_suffix(".out").read_bytes() for f in files[1:])
            if b"Failed to parse" in said:
                return None
            return [first, *(pl.read_ipc(f.with_suffix(".arrow").read_bytes()) for f in files[1:])]
        except (OSError, pl.exceptions.PolarsError):  # a part frame cut short, e.g. by a full disk
            return None
        finally:
            for child in running:
                child.kill()
                child.wait()


def _xes_rust(conn: duckdb.DuckDBPyConnection, path: Path, wanted: set[str],
              progress: Progress | None) -> Source | None:
    """Read with rustxes; None when it is not installed, not safe for this file, or fails (a Rust panic
    is caught, its message kept off the terminal) or warns (an unparseable date): lxml decides then."""
    if importlib.util.find_spec("rustxes") is None or importlib.util.find_spec("polars") is None:
        return None
    if path.name.lower().endswith(".gz") and path.stat().st_size >= XES_GZ_INFLATE_BYTES:
        # parsed from a plain copy: in parts when large (whole, rustxes would hold six times the XES)
        with tempfile.TemporaryDirectory(prefix=f"patuh-xes-{os.getpid()}-") as tmp:
            plain = Path(tmp, "inflated.xes")
            return _xes_rust_plain(conn, plain, wanted, progress) if _xes_prescan(path, plain) else None
    return _xes_rust_plain(conn, path, wanted, progress) if _xes_prescan(path) else None


def _xes_rust_plain(conn: duckdb.DuckDBPyConnection, path: Path, wanted: set[str],
                    progress: Progress | None) -> Source | None:
    """rustxes on a checked XES (plain, or gzip below ``XES_GZ_INFLATE_BYTES``): in parts when it is large."""
    import polars as pl

    if progress is not None:
        progress("XES", 0.05)
    keys = set(XES_KEYS) | wanted
    types: dict[str, str] = {}

    def to_arrow(frame: pl.DataFrame) -> pa.Table:
        exprs: list[Any] = []
        for name, dtype in frame.schema.items():
            if name not in keys:
                continue
            col = pl.col(name)
            if isinstance(dtype, pl.Datetime):
                # rustxes gives UTC wall time without a zone (offsets applied); say so
                col = col.dt.cast_time_unit("us")
                col = col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
                types[name] = "TIMESTAMP WITH TIME ZONE"
            elif dtype != pl.String:
                col = col.cast(pl.String)
            exprs.append(col.alias(name))
        return frame.select(exprs).to_arrow(compat_level=pl.CompatLevel.newest())

    table: pa.Table | None = None
    size, cores = path.stat().st_size, xes_parts()  # a small .xes.gz: its compressed size
    parts = max(cores, -(-size // XES_PART_BYTES))
    if parts > 1 and size >= XES_SPLIT_BYTES and not path.name.lower().endswith(".gz"):
        frames = _rustxes_parts(path, parts, cores, progress)
        if frames is not None:
            with contextlib.suppress(pa.ArrowException):  # parts that disagree on a column's type
                table = pa.concat_tables([to_arrow(f) for f in frames], promote_options="default")
        if table is None and size > XES_PART_BYTES:
            return None  # too large to parse whole in memory: lxml streams it
    if table is None:
        types.clear()
        frame = _rustxes_read(path)
        if frame is None:
            return None
        table = to_arrow(frame)
    if table.num_rows == 0:
        return None
    n = table.num_rows
    table = table.append_column("__row", pa.array(np.arange(1, n + 1, dtype=np.int64)))
    if progress is not None:
        progress("XES", 1.0)
    src = Source("xes", "", [c for c in table.column_names if not c.startswith("__")], types=types, rows_read=n,
                 ordinal_time="time:timestamp" not in types and "start_timestamp" not in types, row_word="event")
    src.sql = _register(conn, src, table, "xes")
    return src


def _xes_lxml(conn: duckdb.DuckDBPyConnection, path: Path, wanted: set[str], progress: Progress | None) -> Source:
    """Stream the events with lxml iterparse (no DTD, no entities, no network, no huge trees)."""
    from lxml import etree

    gz = path.name.lower().endswith(".gz")
    size = path.stat().st_size
    keys = set(XES_KEYS) | wanted
    event_keys = sorted(k for k in keys if not k.startswith("case:"))
    trace_keys = sorted(k.removeprefix("case:") for k in keys if k.startswith("case:"))
    cols: dict[str, list[str | None]] = {k: [] for k in event_keys}
    case_cols: dict[str, list[str | None]] = {k: [] for k in trace_keys}
    n = 0
    try:
        raw = path.open("rb")
        fh: Any = gzip.GzipFile(fileobj=raw) if gz else raw
        with raw:
            _refuse_dtd(path, fh.read(65536))
            fh.seek(0)
            parser = etree.iterparse(fh, events=("end",), tag=("{*}event", "{*}trace"), resolve_entities=False,
                                     no_network=True, huge_tree=False, load_dtd=False, dtd_validation=False,
                                     remove_comments=True, remove_pis=True)
            trace_start = 0
            for _, elem in parser:
                local = elem.tag.rsplit("}", 1)[-1] if isinstance(elem.tag, str) else ""
                if local == "event":
                    attrs = {c.get("key"): c.get("value") for c in elem}
                    for k in event_keys:
                        cols[k].append(attrs.get(k))
                    n += 1
                    elem.clear(keep_tail=False)
                    if progress is not None and n % 50000 == 0:
                        progress("XES", min(raw.tell() / size, 1.0))
                elif local == "trace":
                    tattrs = {c.get("key"): c.get("value") for c in elem if c.get("key") is not None}
                    for k in trace_keys:
                        case_cols[k].extend([tattrs.get(k)] * (n - trace_start))
                    trace_start = n
                    elem.clear(keep_tail=False)
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
            root = parser.root
    except etree.XMLSyntaxError as exc:
        raise UserError(f"{path.name}: not a complete XES file ({exc.msg}, line {exc.lineno}); "
                        "the file may be truncated: export it again",
                        pesan=f"{path.name}: berkas XES tidak lengkap ({exc.msg}, baris {exc.lineno}); "
                              "mungkin berkasnya terpotong: ekspor ulang berkasnya") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path.name}: cannot read the file ({exc}); it may be truncated: "
                        "copy or export it again",
                        pesan=f"{path.name}: berkas tidak dapat dibaca ({exc}); mungkin terpotong: salin atau ekspor "
                              "ulang") from None
    if root is None or etree.QName(root).localname != "log":
        raise UserError(f"{path.name}: not an XES file (the root element is not <log>)",
                        pesan=f"{path.name}: bukan berkas XES (elemen akarnya bukan <log>)")
    if n == 0:
        raise UserError(f"{path.name}: the XES file has no events",
                        pesan=f"{path.name}: berkas XES ini tidak berisi peristiwa")
    if trace_start < n:  # events outside any trace have no case
        for k in trace_keys:
            case_cols[k].extend([None] * (n - trace_start))
    if progress is not None:
        progress("XES", 1.0)
    arrays: dict[str, Any] = {}
    for k in trace_keys:
        if any(v is not None for v in case_cols[k]):
            arrays["case:" + k] = pa.array(case_cols[k], pa.string())
    for k in event_keys:
        if any(v is not None for v in cols[k]):
            arrays[k] = pa.array(cols[k], pa.string())
    arrays["__row"] = pa.array(range(1, n + 1), pa.int64())
    table = pa.table(arrays)
    src = Source("xes", "", [c for c in table.column_names if not c.startswith("__")], rows_read=n,
                 ordinal_time="time:timestamp" not in arrays and "start_timestamp" not in arrays, row_word="event")
    src.sql = _register(conn, src, table, "xes")
    return src
