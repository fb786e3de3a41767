"""The ``patuh`` command line: thin wrappers over the library (one sub-command per pipeline stage).

A user's mistake ends with a clear message and a non-zero exit, never a traceback: library code raises
:class:`pipeline.errors.UserError` and :func:`main` turns it into a message, in Bahasa Indonesia first and
English second (``Galat: ...`` then ``Error: ...``).
"""

from __future__ import annotations

import datetime
import os
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from pipeline.config import get_settings
from pipeline.errors import UserError, os_reason
from pipeline.tables import Column, print_table

if TYPE_CHECKING:
    from pipeline.calendars import Institution
    from pipeline.run import RunSummary

class _BilingualHelp:
    """``--help`` described in Bahasa Indonesia first and English second, like every other option."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = "Tampilkan bantuan ini lalu keluar. / Show this message and exit."
        return option

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:  # a flag takes no value: no "<bool>" beside it in --help (Typer 0.29 shows one)
            if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
                param.metavar = ""
        return params


class BilingualCommand(_BilingualHelp, TyperCommand):
    pass


class BilingualGroup(_BilingualHelp, TyperGroup):
    pass


app = typer.Typer(
    cls=BilingualGroup,
    name="patuh",
    help="Patuh: analitik kepatuhan SOP / SOP compliance analytics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sop_app = typer.Typer(cls=BilingualGroup, help="Model SOP: validasi, daftar, tampilkan, gambar, ekspor (PNML/BPMN). "
                           "/ SOP models: validate, list, show, render, export (PNML/BPMN).", no_args_is_help=True)
app.add_typer(sop_app, name="sop")
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[Path | None, typer.Option(
    "--db", help="Berkas DuckDB (bawaan data/patuh.duckdb) / DuckDB file (default data/patuh.duckdb)")]
SopDirOption = Annotated[Path | None, typer.Option(
    "--sop-dir", help="Folder model SOP (bawaan sop_models/) / SOP model folder (default sop_models/)")]
InstitutionFilterOption = Annotated[str | None, typer.Option(
    "--institution", help="Hanya lembaga ini / Only this institution")]
InstitutionsOption = Annotated[list[str] | None, typer.Option(
    "--institution", help="Id lembaga (boleh diulang) / Institution id (repeatable)")]
SopIdArgument = Annotated[str, typer.Argument(
    help="Id SOP, mis. smpn2-ngawi/bk001-prosedur (lihat patuh sop list) / SOP id (see patuh sop list)")]


def _sop_dir(value: Path | None) -> Path:
    path = value or get_settings().catalogue_dir
    if not path.is_dir():  # a typo would list an empty catalogue
        raise UserError(f"{path}: no such SOP model folder; give the folder of the .yaml models with --sop-dir",
                        pesan=f"{path}: folder model SOP ini tidak ada; berikan folder berisi model .yaml dengan "
                              "--sop-dir")
    return path


def _db(value: Path | None) -> Path:
    return value or get_settings().db_path


# --------------------------------------------------------------------------------------------------- sop


@sop_app.command("validate")
def sop_validate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Berkas model (bawaan: seluruh katalog) / "
             "Model files (default: the whole catalogue)")] = None,
    sop_dir: SopDirOption = None,
    strict: Annotated[bool, typer.Option(help="Peringatan dianggap galat / Treat warnings as errors")] = False,
) -> None:
    """Periksa setiap berkas model; semua masalah (berkas, baris, langkah, perbaikan) dilaporkan sekaligus.
    / Check every model file; report every problem (file, line, step, fix) at once."""
    from pipeline.catalogue import validate_catalogue

    report = validate_catalogue(_sop_dir(sop_dir), files or None)
    for problem in report.problems:  # Indonesian first, the English below it (as a user's mistake is told)
        style = "red" if problem.level == "error" else "yellow"
        for text in (problem.render_pesan(), problem.render()):
            err_console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)
    n_err = sum(p.level == "error" for p in report.problems)
    n_warn = len(report.problems) - n_err
    console.print(f"{report.n_models} model, {report.n_sound} alur sehat (sound net), {n_err} galat, "
                  f"{n_warn} peringatan", highlight=False)
    console.print(
        f"{report.n_models} model(s), {report.n_sound} sound net(s), {n_err} error(s), {n_warn} warning(s)"
    )
    if n_err or (strict and n_warn):
        raise typer.Exit(1)


@sop_app.command("list")
def sop_list(
    sop_dir: SopDirOption = None,
    institution: InstitutionFilterOption = None,
) -> None:
    """Daftar katalog: id, nomor, judul, langkah.
    / List the catalogue: id, number, title, steps."""
    from pipeline.sop import load_catalogue

    root = _sop_dir(sop_dir)
    catalogue = load_catalogue(root)
    if institution:
        _known_institution(institution, {m.institution for m in catalogue.models.values()},
                           root / "institutions.yaml")
    rows = [(sop_id, model.number or "-", model.title, str(len(model.steps) or len(model.rules)), model.kind)
            for sop_id, model in sorted(catalogue.models.items())
            if not institution or model.institution == institution]
    print_table(console, [Column("id"), Column("nomor", "number"), Column("judul", "title", wrap=True),
                          Column("langkah", "steps", number=True), Column("jenis", "kind")], rows)
    if catalogue.errors:
        n = len(catalogue.errors)
        err_console.print(f"{n} masalah pada berkas model: jalankan 'patuh sop validate'\n"
                          f"{n} file problem(s): run 'patuh sop validate'", style="yellow")


def _known_institution(institution: str, also: Collection[str] = (),
                       institutions_file: Path | None = None) -> dict[str, Institution]:
    """The institutions of institutions.yaml (the configured one by default); a :class:`UserError` when
    ``institution`` is neither there nor in ``also``."""
    from pipeline.calendars import load_institutions

    institutions = load_institutions(institutions_file or get_settings().institutions_file)
    known = set(institutions) | set(also)
    if institution not in known:
        raise UserError(f"unknown institution '{institution}'; known: {', '.join(sorted(known))}",
                        pesan=f"lembaga '{institution}' tidak dikenal; yang dikenal: {', '.join(sorted(known))}")
    return institutions


@sop_app.command("show")
def sop_show(sop_id: SopIdArgument, sop_dir: SopDirOption = None) -> None:
    """Cetak satu SOP sebagai tabel aslinya (langkah, pelaksana, kelengkapan, waktu, output).
    / Print one SOP as its paper table (steps, lanes, kelengkapan, waktu, output)."""
    from pipeline.catalogue import sop_table
    from pipeline.sop import load_catalogue

    catalogue = load_catalogue(_sop_dir(sop_dir))
    model = catalogue.get(sop_id)
    for renderable in sop_table(model, console.width):
        console.print(renderable)


# --- compliance engine (run, conform, demo) ---


def _parse_as_of(value: str | None) -> datetime.datetime | None:
    """``--as-of`` as written: with its offset, or naive (local time, see :func:`_local_as_of`). A date alone
    means the end of that day ("as of 31 October"): 00:00 of the next day."""
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--as-of {value!r} is not a date-time; write e.g. 2026-10-31T17:00+08:00",
                        pesan=f"--as-of {value!r} bukan tanggal dan waktu; tulis misalnya "
                              "2026-10-31T17:00+08:00") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        parsed += datetime.timedelta(days=1)
    return parsed


def _local_as_of(as_of: datetime.datetime, zones: set[str], *, future: bool = False) -> datetime.datetime:
    """A naive ``--as-of`` read in the institutions' own zone (every other time in Patuh is local); refused when
    the institutions in scope are in different zones, and when it lies in the future (open cases would be
    judged stalled for time that has not passed) unless ``future`` (the demo's fixed export date)."""
    from pipeline.calendars import ZONE_WORD_OF

    if as_of.tzinfo is None:
        if len(zones) != 1:
            words = ", ".join(sorted(ZONE_WORD_OF.get(z, z) for z in zones))
            raise UserError(
                f"--as-of {as_of:%Y-%m-%dT%H:%M} has no time zone and the institutions in the run are in several "
                f"({words}); add the offset, e.g. {as_of:%Y-%m-%dT%H:%M}+07:00 for WIB, or run one institution "
                "(--institution)",
                pesan=f"--as-of {as_of:%Y-%m-%dT%H:%M} tidak menyebut zona waktu, sedangkan lembaga dalam "
                      f"pemeriksaan ini berada di beberapa zona ({words}); tambahkan selisihnya, mis. "
                      f"{as_of:%Y-%m-%dT%H:%M}+07:00 untuk WIB, atau periksa satu lembaga (--institution)")
        as_of = as_of.replace(tzinfo=ZoneInfo(next(iter(zones))))
    if not future and as_of > datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5):
        raise UserError(
            f"--as-of {as_of.isoformat(timespec='minutes')} is in the future; open cases would be judged for time "
            "that has not passed yet; give a time up to now (or leave --as-of out for now)",
            pesan=f"--as-of {as_of.isoformat(timespec='minutes')} ada di masa depan; kasus terbuka akan dinilai "
                  "untuk waktu yang belum berlalu; berikan waktu sampai sekarang (atau tanpa --as-of untuk saat ini)")
    return as_of


def _print_run_summary(summary: RunSummary) -> None:
    rate = "-" if summary.compliance_rate is None else f"{summary.compliance_rate:.1%}"
    console.print(f"[bold]Run {summary.run_id}[/] ({summary.mode}): {summary.cases} kasus/cases "
                  f"({summary.cases_checked} diperiksa/checked, {summary.open_restated} kasus terbuka dinilai ulang/"
                  f"open cases re-judged for stalling), kepatuhan/compliance {rate}")
    console.print(f"Varian/variants: {summary.variants} ({summary.aligned} aligned, "
                  f"{summary.from_cache} from cache)")
    if summary.cases == 0 and not summary.rules_checked:
        console.print("Tidak ada kasus untuk diperiksa / no cases to check: load logs with 'patuh ingest' first "
                      "(or check --institution and --sop)", style="yellow")
    else:
        print_table(console, [Column("penyimpangan", "deviation"), Column("n", number=True)],
                    [(kind, str(n)) for kind, n in sorted(summary.deviations.items())])
    if not summary.documents_recorded and summary.cases:
        console.print("Kelengkapan dokumen tidak tercatat di log: missing_document tidak diperiksa / "
                      "documents not recorded in the logs: missing_document not checked", style="yellow")
    if summary.rules_checked or summary.rules_without_input:
        console.print(f"Aturan diperiksa / rules checked: {summary.rules_checked}")
    if summary.rules_without_input:
        console.print("Aturan tanpa data masukan, tidak diperiksa / rules without input, not checked: "
                      + ", ".join(summary.rules_without_input) + " (patuh rule-input)", style="yellow")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in summary.stage_seconds.items())
    console.print(f"Waktu per tahap / time per stage: {stages}")
    if summary.published:
        console.print(f"Diterbitkan / published: {summary.published}")
    for inst, files in summary.skipped.items():
        listed = ", ".join(files)
        err_console.print(
            f"Peringatan: lembaga {inst} tidak diperiksa karena berkas SOP-nya berisi galat ({listed}); hasil "
            f"sebelumnya tetap ditampilkan. Perbaiki (patuh sop validate), lalu jalankan patuh run lagi.\n"
            f"Warning: institution {inst} was not checked because its SOP files have errors ({listed}); its "
            "earlier results are kept. Fix them (patuh sop validate), then run patuh run again.",
            style="yellow", markup=False, highlight=False)


def as_of_warning(conn: Any, as_of: datetime.datetime, *, institution: str | None = None,
                  sop: str | None = None) -> tuple[str, str] | None:
    """What is wrong with ``--as-of`` for the events in scope (one cheap aggregate), in Indonesian and English:
    events after it, which the run would judge as if they had happened by then; None when every event is
    before it."""
    where = ["ts_end IS NOT NULL"]
    params: dict[str, Any] = {"as_of": as_of}
    if institution:
        where.append("institution_id = $institution")
        params["institution"] = institution
    if sop:
        where.append("coalesce(sop_id, '') = $sop")
        params["sop"] = sop
    total, after, first, last = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE ts_end > $as_of), min(coalesce(ts_start, ts_end)), max(ts_end) "
        f"FROM events WHERE {' AND '.join(where)}", params).fetchall()[0]
    if not after:
        return None
    at = f"{as_of.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    span = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    rentang = f"{first:%Y-%m-%d %H:%M} sampai {last:%Y-%m-%d %H:%M} UTC"
    scope = " ".join(filter(None, [institution, sop]))
    if after == total:
        return (f"--as-of {at} lebih awal daripada semua peristiwa {scope or 'basis data'} ({total} peristiwa, "
                f"{rentang}): kasus terbuka dinilai pada waktu sebelum apa pun terjadi; berikan --as-of setelah "
                "peristiwa terakhir, mis. akhir periode yang dilaporkan",
                f"--as-of {at} is before every event of {scope or 'the database'} ({total} events, {span}): open "
                "cases are judged at a time before anything happened; give an --as-of after the last event, e.g. "
                "the end of the period you report on")
    return (f"{after} dari {total} peristiwa {scope or 'basis data'} terjadi setelah --as-of {at} (peristiwa "
            f"{rentang}): semuanya dinilai seolah sudah terjadi saat itu; berikan --as-of setelah peristiwa terakhir",
            f"{after} of {total} events of {scope or 'the database'} are after --as-of {at} (events {span}): they "
            "are judged as if they had happened by then; give an --as-of after the last event")


def run_for_db(db: Path, *, institution: str | None = None, sop: str | None = None,
               as_of: datetime.datetime | None = None, full: bool = False, workers: int = 2,
               future_as_of: bool = False) -> RunSummary:
    """Load the catalogue and calendars, run the compliance check on ``db`` and publish the results
    (``future_as_of``: accept an as-of after now, as the demo's fixed export date may be on a slow clock)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.batches import zone_changes
    from pipeline.calendars import load_calendars, load_institutions
    from pipeline.conformance import PoolExecutor
    from pipeline.db import connect
    from pipeline.run import run_compliance
    from pipeline.sop import load_catalogue

    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_dir)
    institutions = load_institutions(settings.institutions_file)
    calendars = load_calendars(settings.institutions_file)
    if as_of is not None:
        wanted = institution or (sop.partition("/")[0] if sop else None)
        as_of = _local_as_of(as_of, {str(i.timezone) for k, i in institutions.items() if wanted in (None, k)},
                             future=future_as_of)
    conn = connect(db)
    try:
        warnings = zone_changes(conn, {k: str(i.timezone) for k, i in institutions.items()
                                       if institution is None or k == institution})
        if as_of is not None:
            warnings.append(as_of_warning(conn, as_of, institution=institution, sop=sop) or ("", ""))
        for pesan, message in warnings:
            if message:
                err_console.print(f"Peringatan: {pesan}\nWarning: {message}", style="yellow", markup=False,
                                  highlight=False)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("run", total=None)
            return run_compliance(
                conn, catalogue, institutions, calendars, institution=institution, sop=sop, as_of=as_of,
                full=full, executor=PoolExecutor(workers), published_dir=db.parent / "published",
                progress=lambda stage: bar.update(task, description=f"tahap / stage: {stage}"),
            )
    finally:
        conn.close()


@app.command("run")
def run_cmd(
    db: DbOption = None,
    institution: InstitutionFilterOption = None,
    sop: Annotated[str | None, typer.Option(help="Hanya SOP ini (id) / Only this SOP id")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Nilai kasus terbuka pada waktu ini (ISO; tanpa zona: waktu setempat lembaga; tanggal saja: "
                        "akhir hari itu) / Judge open cases at this time (ISO; without a zone: the institution's "
                        "local time; a date alone: the end of that day)")] = None,
    full: Annotated[bool, typer.Option(
        help="Periksa ulang semua kasus (tanpa hasil lama) / "
             "Check every case again (no incremental carry-over)")] = False,
    workers: Annotated[int, typer.Option(help="Jumlah proses untuk alignment / Processes for alignments")] = 2,
) -> None:
    """Periksa setiap kasus terhadap SOP-nya (satu transaksi), lalu terbitkan untuk dasbor dan laporan.
    / Check every case against its SOP (one transaction), then publish for the dashboard and reports."""
    summary = run_for_db(_db(db), institution=institution, sop=sop, as_of=_parse_as_of(as_of), full=full,
                         workers=workers)
    _print_run_summary(summary)
    if summary.skipped:  # published, but a script must notice that some institutions were not checked
        raise typer.Exit(1)


@app.command("conform")
def conform_cmd(
    log: Annotated[Path, typer.Option(
        "--log", help="Log peristiwa: XES, .xes.gz atau CSV (kolom pm4py) / "
                      "Event log: XES, .xes.gz or CSV (pm4py columns)")],
    model: Annotated[Path, typer.Option(
        "--model", help="Model: PNML, BPMN atau .yaml SOP / "
                        "Model: PNML, BPMN or an SOP .yaml")],
    out: Annotated[Path, typer.Option("--out", help="CSV satu baris per kasus / CSV with one row per case")],
) -> None:
    """Periksa log apa pun terhadap model apa pun tanpa basis data (pembanding pm4py atau alat lain).
    / Check any log against any model without a database (compare with pm4py or other tools)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.conform import conform_file

    def warn(message: str) -> None:
        err_console.print(Text("Peringatan / Warning: ", style="bold yellow") + Text(message), highlight=False)

    with Progress(TextColumn("varian / variants"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("align", total=None)
        n_cases, n_fitting = conform_file(
            log, model, out, progress=lambda done, total: bar.update(task, completed=done, total=total), warn=warn)
    console.print(f"{n_cases} kasus/cases, {n_fitting} fit; hasil/results: {out}")


@sop_app.command("export")
def sop_export(
    sop: Annotated[str, typer.Argument(
        help="Id SOP (lihat patuh sop list) atau berkas .yaml / SOP id (see patuh sop list) or .yaml file")],
    out: Annotated[Path, typer.Option("--out", help="Berkas .pnml atau .bpmn / .pnml or .bpmn file")],
    fmt: Annotated[str | None, typer.Option(
        "--format", help="pnml | bpmn (bawaan: dari akhiran --out) / (default: from the --out suffix)")] = None,
    sop_dir: SopDirOption = None,
) -> None:
    """Tulis jaring proses SOP sebagai PNML atau BPMN untuk alat process mining lain (label = teks kegiatan).
    / Write an SOP's process net as PNML or BPMN for other process-mining tools (labels = activity text)."""
    from pipeline.pm4py_adapter import export_sop, load_sop_file, require_procedure
    from pipeline.sop import load_catalogue

    suffix = out.suffix.lower().lstrip(".")
    given = f"--format {fmt!r}" if fmt else f"--out {out}"
    fmt = (fmt or suffix).lower()
    if fmt not in ("pnml", "bpmn"):
        raise UserError(f"{given}: use pnml or bpmn (--format pnml|bpmn, or an --out file ending in .pnml or .bpmn)",
                        pesan=f"{given}: gunakan pnml atau bpmn (--format pnml|bpmn, atau berkas --out yang berakhiran "
                              ".pnml atau .bpmn)")
    if suffix != fmt:  # patuh conform and other tools tell a model's kind by its suffix
        raise UserError(f"--out {out}: a {fmt.upper()} file must end in .{fmt}: use --out {out.with_suffix('.' + fmt)}",
                        pesan=f"--out {out}: berkas {fmt.upper()} harus berakhiran .{fmt}: gunakan "
                              f"--out {out.with_suffix('.' + fmt)}")
    path = Path(sop)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        model = load_sop_file(path)
    else:
        model = require_procedure(load_catalogue(_sop_dir(sop_dir)).get(sop), sop)
    export_sop(model, fmt, out)
    console.print(f"{model.id}: {len(model.steps)} langkah/steps -> {out} "
                  f"({fmt.upper()}, {out.stat().st_size:,} bytes)")


def _load_rule_inputs(files: list[Path], input_name: str, institution: str, db: Path | None) -> None:
    from pipeline.config import get_settings, load_key
    from pipeline.db import connect
    from pipeline.rule_inputs import INPUTS, load_rule_input, unchecked_warning
    from pipeline.sop import load_catalogue

    if input_name not in INPUTS:  # before the database is opened (or created)
        raise UserError(f"unknown rule input '{input_name}'; known: {', '.join(INPUTS)}",
                        pesan=f"masukan aturan '{input_name}' tidak dikenal; yang dikenal: {', '.join(INPUTS)}")
    institutions = _known_institution(institution)
    warning = unchecked_warning(load_catalogue(get_settings().catalogue_dir).models.values(), input_name, institution)
    if warning:  # loaded all the same (the model may come later), but the user is told
        err_console.print(f"Peringatan / Warning: {warning}", style="yellow", markup=False, highlight=False)
    secret = load_key()  # a key that is refused (too short, a key file others can write) is said before the database
    conn = connect(_db(db))
    try:
        for path in files:
            res = load_rule_input(conn, path, input_name=input_name, institution_id=institution, key=secret,
                                  timezone=institutions[institution].timezone)
            if res.skipped:
                console.print(f"{path.name}: sudah dimuat / already loaded as batch {res.batch_id} (same sha256) "
                              f"{res.origin}: nothing loaded; 'patuh unload --batch {res.batch_id}' takes it out "
                              "to load it again", markup=False, highlight=False)
            else:
                console.print(f"{path.name}: {res.rows_in} baris/rows, {res.rows_loaded} dimuat/loaded, "
                              f"{res.rows_quarantined} karantina/quarantined")
                if res.rows_quarantined and res.batch_id is not None:
                    _print_quarantined(path.name, res.rows_quarantined, res.batch_id,
                                       _first_messages(conn, res.batch_id))
    finally:
        conn.close()


@app.command("attendance")
def attendance_cmd(
    files: Annotated[list[Path], typer.Argument(
        help="Ekspor presensi harian (CSV, XLSX, Parquet) / "
             "Daily attendance exports (CSV, XLSX, Parquet)")],
    institution: Annotated[str, typer.Option(
        help="Id lembaga, mis. smkn1-petasia / "
             "Institution id, e.g. smkn1-petasia")],
    db: DbOption = None,
) -> None:
    """Muat presensi harian (satu baris per siswa per hari sekolah) untuk model aturan.
    / Load daily attendance (one row per student per school day) for the rule models."""
    _load_rule_inputs(files, "attendance_daily", institution, db)


@app.command("rule-input")
def rule_input_cmd(
    files: Annotated[list[Path], typer.Argument(
        help="Ekspor (CSV, XLSX, Parquet) satu masukan aturan / "
             "Exports (CSV, XLSX, Parquet) of one rule input")],
    input_name: Annotated[str, typer.Option("--input", help="attendance_daily, escalation_events atau/or scores")],
    institution: Annotated[str, typer.Option(
        help="Id lembaga, mis. smkn1-petasia / "
             "Institution id, e.g. smkn1-petasia")],
    db: DbOption = None,
) -> None:
    """Muat masukan model aturan: presensi harian, eskalasi kasus layanan khusus, atau nilai dan remedialnya.
    / Load an input of the rule models: daily attendance, escalations of "layanan khusus" cases, or scores
    with their remedials (docs/rules-input.md)."""
    _load_rule_inputs(files, input_name, institution, db)


@app.command("demo")
def demo_cmd(
    cases: Annotated[int, typer.Option(help="Jumlah kasus sintetis / Number of synthetic cases")] = 20000,
    db: DbOption = None,
    serve: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Sajikan dasbor di akhir / "
                                   "Serve the dashboard at the end")] = True,
    seed: Annotated[int, typer.Option(
        help="Benih acak (benih sama, data sama) / "
             "Random seed (same seed, same data)")] = 20261123,
    host: Annotated[str, typer.Option(help="Host dasbor / Dashboard host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port dasbor / Dashboard port", min=1, max=65535)] = 8050,
) -> None:
    """Pekerjaan utama dengan data bawaan: log demo -> basis data -> pemeriksaan -> laporan -> dasbor.
    / The main job on the embedded default: demo logs -> database -> compliance run -> reports -> dashboard."""
    from pipeline.demo import run_demo

    run_demo(_db(db), cases=cases, seed=seed, console=console, serve=serve, host=host, port=port)


# --- ingest (ingest, map suggest) ---

map_app = typer.Typer(cls=BilingualGroup, help="Pemetaan kolom ekspor: usulan. / Column mappings for exports: suggest.",
                      no_args_is_help=True)
app.add_typer(map_app, name="map")


QUARANTINE_SHOWN = 5  # messages printed per file after loading; `patuh quarantine` shows them all


def print_ingest_summary(results: list[Any], first_messages: dict[int, list[str]] | None = None) -> None:
    """The per-file table ``patuh ingest`` prints (IngestResult rows), then per file its first quarantine
    messages (``first_messages`` by batch id) and how to see all of them."""
    rows = []
    for r in results:
        if r.skipped:
            rows.append((r.file, str(r.rows_in), *["-"] * 9, f"{r.seconds:.2f}"))
            continue
        reasons = ", ".join(f"{k} {v}" for k, v in r.quarantined_by_reason.items())
        rows.append((r.file, str(r.rows_in), str(r.rows_loaded), str(r.rows_quarantined), reasons or "-",
                     str(r.rows_duplicate), str(r.rows_lifecycle), str(r.rows_unknown_activity), str(r.cases_new),
                     str(r.cases_updated), str(r.cases_open), f"{r.seconds:.2f}"))
    print_table(console, [Column("berkas", "file"), Column("baris", "rows in", number=True),
                          Column("dimuat", "loaded", number=True), Column("karantina", "quarantined", number=True),
                          Column("alasan", "reasons", wrap=True), Column("duplikat", "duplicates", number=True),
                          Column("siklus", "lifecycle", number=True),
                          Column("aktivitas asing", "unknown activity", number=True),
                          Column("kasus baru", "new cases", number=True),
                          Column("diperbarui", "updated", number=True), Column("terbuka", "open", number=True),
                          Column("detik", "s", number=True)], rows, title="patuh ingest")
    for r in results:
        for note in r.notes:
            console.print(f"{r.file}: {note}", style="yellow", markup=False, highlight=False)
        if r.rows_quarantined and not r.skipped:
            _print_quarantined(r.file, r.rows_quarantined, r.batch_id, (first_messages or {}).get(r.batch_id, []))


def _first_messages(conn: Any, batch_id: int) -> list[str]:
    """The first ``QUARANTINE_SHOWN`` quarantine messages of a batch, as printed after loading it."""
    from pipeline.batches import quarantined_rows

    rows = quarantined_rows(conn, batch_id=batch_id, limit=QUARANTINE_SHOWN)
    # Indonesian first, the English below it (once, when a row from before `pesan` has only the English)
    return [str(m) if p == m else f"{p}\n{m}" for p, m in zip(rows["pesan"], rows["message"], strict=True)]


def _print_quarantined(name: str, n: int, batch_id: int | None, messages: list[str]) -> None:
    """A file's quarantined rows: how many, the first messages, how to see them all."""
    console.print(f"{name}: {n} baris dikarantina / rows quarantined (batch {batch_id}):", style="yellow",
                  markup=False, highlight=False)
    for message in messages:  # wrapped lines keep the indent
        console.print(Padding(Text(message), (0, 0, 0, 2), expand=False), highlight=False)
    more = f"{n - len(messages)} lagi / more: " if n > len(messages) else ""
    console.print(f"  {more}patuh quarantine --batch {batch_id} [--out karantina.csv]", markup=False, highlight=False)


@app.command("ingest")
def ingest_cmd(
    files: Annotated[list[Path], typer.Argument(
        help="Ekspor (CSV, XLSX, XES, .xes.gz, Parquet) atau foldernya / "
             "Exports (CSV, XLSX, XES, .xes.gz, Parquet) or folders of them")],
    institution: Annotated[str, typer.Option(
        "--institution", help="Id lembaga (sop_models/institutions.yaml) / "
                              "Institution id")],
    sop: Annotated[str | None, typer.Option(
        "--sop", help="Id SOP log ini (opsional) / "
                      "SOP id the log belongs to (optional)")] = None,
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="YAML pemetaan kolom (patuh map suggest) / "
                          "Column mapping YAML")] = None,
    db: DbOption = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="XLSX: hanya lembar ini / XLSX: only this sheet")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Muat ulang berkas yang sudah dimuat (mis. dengan pemetaan yang diperbaiki) / "
                          "Load a file again that was loaded before (e.g. with a corrected mapping)")] = False,
) -> None:
    """Muat log peristiwa ke basis data: satu batch per berkas, baris bermasalah dikarantina, identitas dipseudonimkan.
    / Load event logs into the database: one batch per file, bad rows quarantined, ids pseudonymised."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.config import load_key
    from pipeline.db import connect
    from pipeline.ingest import expand_inputs, ingest_file
    from pipeline.mapping import load_mapping

    loaded_mapping = load_mapping(mapping) if mapping else None
    files = expand_inputs(files)
    secret = load_key()  # a key that is refused (too short, a key file others can write) is said before the database
    conn = connect(_db(db))
    results = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console,
                      transient=True) as bar:
            for f in files:
                task = bar.add_task(f.name, total=1.0)

                def report(stage: str, frac: float, task: Any = task, name: str = f.name) -> None:
                    bar.update(task, completed=frac, description=f"{name}: {stage}")

                results.append(ingest_file(conn, f, institution_id=institution, sop_id=sop, mapping=loaded_mapping,
                                           sheet=sheet, progress=report, replace=replace, key=secret))
    finally:
        try:  # the files loaded before one that failed are reported in full too
            first_messages = {r.batch_id: _first_messages(conn, r.batch_id) for r in results
                              if r.rows_quarantined and not r.skipped and r.batch_id is not None}
        finally:
            conn.close()
        if results:
            print_ingest_summary(results, first_messages)


@map_app.command("suggest")
def map_suggest_cmd(
    file: Annotated[Path, typer.Argument(
        help="Sebuah ekspor (CSV, XLSX, XES, Parquet) / "
             "An export (CSV, XLSX, XES, Parquet)")],
    sop: Annotated[str | None, typer.Option(
        "--sop", help="Id SOP, untuk mencocokkan label aktivitas dengan langkahnya / "
                      "SOP id, to match activity labels to its steps")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="XLSX: hanya lembar ini / XLSX: only this sheet")] = None,
    sop_dir: SopDirOption = None,
) -> None:
    """Cetak usulan pemetaan YAML untuk FILE (judul kolom Indonesia atau Inggris, aktivitas dicocokkan) untuk ditinjau.
    / Print a mapping YAML for FILE (Indonesian or English headers, fuzzy-matched activities) to review."""
    from pipeline.mapping import suggest_for_file, suggestion_problems
    from pipeline.sop import load_catalogue

    model = load_catalogue(_sop_dir(sop_dir)).get(sop) if sop else None
    text = suggest_for_file(file, model, sheet=sheet)
    sys.stdout.write(text)
    for problem in suggestion_problems(text):  # on the terminal too when the YAML goes to a file
        err_console.print(f"Perhatian / Attention: {problem}", style="yellow", markup=False, highlight=False)


# --- dashboard (serve, user) ---
# The engine never imports the dashboard (import contract): these commands load it by name, lazily.
user_app = typer.Typer(cls=BilingualGroup, help="Pengguna dasbor: tambah. / Dashboard users: add.",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")
UsersOption = Annotated[Path | None, typer.Option(
    "--users", help="Berkas pengguna (bawaan <folder db>/users.yaml) / Users file (default <db dir>/users.yaml)")]


@app.command("batches")
def batches_cmd(
    institution: InstitutionFilterOption = None,
    db: DbOption = None,
) -> None:
    """Daftar berkas yang dimuat (batch): baris masuk, dimuat, dikarantina, duplikat.
    / List the loaded files (batches): rows in, loaded, quarantined, duplicates."""
    from pipeline.batches import list_batches
    from pipeline.db import connect

    conn = connect(_db(db), read_only=True)
    try:
        frame = list_batches(conn, institution_id=institution)
    finally:
        conn.close()
    if frame.empty:
        console.print("belum ada berkas dimuat / nothing loaded yet")
        return
    rows = [(str(row.batch_id), str(row.source_file), str(row.institution_id), str(row.sop_id or "-"),
             str(row.format), f"{row.loaded_at:%Y-%m-%d %H:%M}", str(row.rows_in), str(row.rows_loaded),
             str(row.rows_quarantined), str(row.rows_duplicate)) for row in frame.itertuples(index=False)]
    print_table(console, [Column("batch", number=True), Column("berkas", "file"), Column("instansi", "institution"),
                          Column("SOP"), Column("format"), Column("dimuat (UTC)", "loaded at (UTC)"),
                          Column("baris", "rows in", number=True), Column("dimuat", "loaded", number=True),
                          Column("karantina", "quarantined", number=True),
                          Column("duplikat", "duplicates", number=True)], rows, title="patuh batches", keys=2)


@app.command("unload")
def unload_cmd(
    batch: Annotated[list[int], typer.Option(
        "--batch", help="Batch yang dikeluarkan (lihat patuh batches; boleh diulang) / "
                        "Batch to take out (see patuh batches; repeatable)")],
    yes: Annotated[bool, typer.Option("--yes", help="Tanpa konfirmasi / Do not ask for confirmation")] = False,
    db: DbOption = None,
) -> None:
    """Keluarkan berkas yang sudah dimuat: peristiwanya dihapus, kasusnya dihitung ulang; pemeriksaan berikutnya penuh.
    / Take loaded files (batches) out again: their events go, their cases are recomputed; the next run is full."""
    from pipeline.batches import list_batches, require_batch
    from pipeline.db import connect
    from pipeline.ingest import remove_batch

    conn = connect(_db(db))
    try:
        for batch_id in batch:
            require_batch(conn, batch_id)
        if not yes:
            known = list_batches(conn).set_index("batch_id")
            for batch_id in batch:
                row = known.loc[batch_id]
                console.print(f"batch {batch_id}: {row.source_file} ({row.institution_id}, {row.rows_loaded} "
                              "peristiwa/events)", markup=False, highlight=False)
            if not typer.confirm("Hapus / remove?", default=False):
                raise typer.Exit(1)
        for batch_id in batch:
            removed = remove_batch(conn, batch_id)
            console.print(f"batch {removed.batch_id} ({removed.source_file}) dihapus / removed: {removed.events} "
                          f"peristiwa/events, {removed.quarantined} baris karantina/quarantined rows, "
                          f"{removed.rule_rows} baris aturan/rule-input rows; {removed.cases_rebuilt} kasus dihitung "
                          f"ulang/cases recomputed, {removed.cases_removed} kasus dihapus/cases removed",
                          markup=False, highlight=False)
    finally:
        conn.close()
    console.print("Pemeriksaan berikutnya lengkap / the next 'patuh run' checks every case again")


@app.command("quarantine")
def quarantine_cmd(
    batch: Annotated[int | None, typer.Option(
        "--batch", help="Hanya batch ini (lihat patuh batches) / "
                        "Only this batch (see patuh batches)")] = None,
    institution: InstitutionFilterOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Tulis semua baris ke berkas CSV ini / "
                      "Write every row to this CSV file")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Baris yang ditampilkan di layar / Rows shown on screen")] = 20,
    db: DbOption = None,
) -> None:
    """Tampilkan baris yang tidak dapat dimuat dan perbaikannya; --out menulis semuanya ke CSV.
    / Show the rows that could not be loaded and what to fix in each; --out writes all of them to CSV."""
    from pipeline.batches import quarantined_rows
    from pipeline.db import connect

    conn = connect(_db(db), read_only=True)
    try:
        frame = quarantined_rows(conn, batch_id=batch, institution_id=institution)
    finally:
        conn.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, encoding="utf-8-sig")  # with a BOM: Excel opens it as UTF-8
        console.print(f"ditulis / written: {out} ({len(frame)} baris / rows)")
        return
    if frame.empty:
        console.print("tidak ada baris dikarantina / no quarantined rows")
        return
    # one cell, Indonesian over English: the message gets the width a 120-column terminal has left
    rows = [(str(row.batch_id), str(row.source_row), str(row.reason),
             str(row.pesan) if str(row.pesan) == str(row.message) else f"{row.pesan}\n{row.message}")
            for row in frame.head(limit).itertuples(index=False)]
    print_table(console, [Column("batch", number=True), Column("baris", "row", number=True),
                          Column("alasan", "reason"), Column("pesan", "message", wrap=True)], rows,
                title="patuh quarantine", keys=3)
    if len(frame) > limit:
        console.print(f"{len(frame) - limit} lagi / more: --limit {len(frame)} or --out karantina.csv")


@app.command("serve")
def serve_cmd(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Alamat yang didengarkan / Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port dasbor / Dashboard port", min=1, max=65535)] = 8050,
    users: UsersOption = None,
) -> None:
    """Jalankan dasbor (waitress) dari <folder db>/published; tetap melayani selama 'patuh run' menulis.
    / Serve the dashboard (waitress) from <db dir>/published; keeps working while 'patuh run' writes."""
    import importlib

    serve_mod = importlib.import_module("dashboards.serve")
    serve_mod.serve(_db(db), host=host, port=port, users=users, console=console)


@user_app.command("add")
def user_add_cmd(
    name: Annotated[str, typer.Argument(help="Nama pengguna / User name")],
    role: Annotated[str, typer.Option(
        help="qa (semua) | pengawas (lembaga yang diberikan) | kepala (satu) / "
             "qa (all) | pengawas (granted institutions) | kepala (one)")],
    institution: InstitutionsOption = None,
    users: UsersOption = None,
    db: DbOption = None,
) -> None:
    """Tambah atau ganti pengguna dasbor; kata sandi ditanyakan (atau dibaca dari PATUH_NEW_PASSWORD).
    / Add or replace a dashboard user; the password is prompted for (or read from PATUH_NEW_PASSWORD)."""
    import importlib
    import os

    from pipeline.calendars import load_institutions

    auth = importlib.import_module("dashboards.auth")
    users_file = users or _db(db).parent / "users.yaml"
    auth.check_user(name, role, list(institution or []), load_institutions(get_settings().institutions_file))
    password = os.environ.get("PATUH_NEW_PASSWORD") or typer.prompt(
        "Kata sandi / password", hide_input=True, confirmation_prompt=True)
    user = auth.add_user(users_file, name, role, list(institution or []), password)
    console.print(f"Pengguna / user '{user.name}' ({user.role}: {', '.join(user.institutions) or 'semua/all'}) "
                  f"-> {users_file}")


# --- reports ---


@app.command("report")
def report_cmd(
    period: Annotated[str, typer.Option(
        "--period", help="2026-10 (bulan), 2026-Q3 (triwulan), 2026-S1 (semester) atau 2026 / "
                         "month, quarter, half-year or year")],
    institution: InstitutionsOption = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Semua lembaga, dengan index.html / "
                      "Every institution, plus index.html")] = False,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf atau/or html,pdf")] = "html,pdf",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder keluaran (bawaan <folder db>/reports) / "
                      "Output folder (default <db dir>/reports)")] = None,
    lang: Annotated[str, typer.Option("--lang", help="id (Bahasa Indonesia) atau/or en (English)")] = "id",
    db: DbOption = None,
) -> None:
    """Tulis laporan kepatuhan berkala (HTML, PDF) dari hasil terbitan terkini.
    / Write periodic compliance reports (HTML, PDF) from the current published results."""
    from pipeline.publish import current_published
    from pipeline.report import write_reports

    if bool(institution) == all_:
        raise UserError("give either --institution ID (one or more) or --all",
                        pesan="berikan --institution ID (satu atau lebih) atau --all, salah satu saja")
    db_path = _db(db)
    published = current_published(db_path.parent / "published")
    if published is None:
        raise UserError(f"{db_path.parent / 'published'}: nothing is published yet; run 'patuh run' "
                        "(or 'patuh demo') first",
                        pesan=f"{db_path.parent / 'published'}: belum ada hasil yang diterbitkan; "
                              "jalankan dulu 'patuh run' (atau 'patuh demo')")
    warnings: list[str] = []
    paths = write_reports(published, period=period, institutions=None if all_ else list(institution or []),
                          formats=set(fmt.split(",")), out_dir=out or db_path.parent / "reports", lang=lang,
                          warnings=warnings)
    for path in paths:
        console.print(f"ditulis / written: {path}")
    for warning in warnings:  # a period without data: written (exit 0), but not a month without incidents
        err_console.print(f"Peringatan / Warning: {warning}", style="yellow", markup=False, highlight=False)


# --- sop render ---


@sop_app.command("render")
def sop_render(
    sop_id: SopIdArgument,
    out: Annotated[Path, typer.Option("--out", help="Berkas keluaran / Output file")],
    fmt: Annotated[str, typer.Option(
        "--format", help="html | svg | png (png perlu Chromium / "
                         "png needs Chromium)")] = "html",
    graph: Annotated[bool, typer.Option(
        "--graph", help="Gambar proses hasil kompilasi, bukan tabel / "
                        "Draw the compiled process instead of the table")] = False,
    sop_dir: SopDirOption = None,
) -> None:
    """Gambar satu SOP seperti aslinya (tabel Permenpan-RB) atau, dengan --graph, alur prosesnya.
    / Draw one SOP like the paper original (Permenpan-RB table) or, with --graph, its process."""
    from pipeline.render import institution_name, render_to_file
    from pipeline.sop import load_catalogue

    if fmt not in ("html", "svg", "png"):
        raise UserError(f"--format {fmt!r}: use html, svg or png",
                        pesan=f"--format {fmt!r}: gunakan html, svg atau png")
    root = _sop_dir(sop_dir)
    model = load_catalogue(root).get(sop_id)
    path = render_to_file(model, fmt, out, graph=graph,  # type: ignore[arg-type]
                          institution=institution_name(model, root))
    what = "proses / process" if graph else "tabel SOP / SOP table"
    console.print(f"{sop_id}: {what} -> {path} ({path.stat().st_size:,} bytes)")


# --- end sop render ---


# --- synthetic logs (synth) ---


@app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder keluaran / Output folder")],
    institution: InstitutionsOption = None,
    sop: Annotated[list[str] | None, typer.Option("--sop", help="Id SOP (boleh diulang) / SOP id (repeatable)")] = None,
    cases: Annotated[int, typer.Option(
        "--cases", help="Jumlah kasus, dibagi ke semua SOP / "
                        "Cases in total, split across the SOPs")] = 1000,
    start: Annotated[datetime.datetime, typer.Option(
        "--start", formats=["%Y-%m-%d"], help="Hari pertama / "
                                              "First day")] = (
        datetime.datetime(2025, 11, 1)),
    months: Annotated[int, typer.Option("--months", help="Panjang periode, bulan / Length of the period, months")] = 12,
    deviation_rate: Annotated[float, typer.Option("--deviation-rate", help="Bagian kasus dengan penyimpangan sisipan / "
                                                  "Share of cases with an injected deviation")] = 0.1,
    seed: Annotated[int, typer.Option(
        "--seed", help="Benih acak (benih sama, byte sama) / "
                       "Random seed (same seed, same bytes)")] = 20261123,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet, xlsx atau/or xes")] = "parquet",
    messy: Annotated[bool, typer.Option(
        "--messy", help="Tulis juga ekspor mirip asli (XLSX, CSV Latin-1) / "
                        "Also write real-looking exports (XLSX, Latin-1 CSV)")] = False,
) -> None:
    """Log peristiwa sintetis dengan penyimpangan berlabel (ground_truth.csv) untuk menguji pemeriksa.
    / Synthetic event logs with labelled deviations (ground_truth.csv) for testing the checker."""
    import time

    from pipeline.synth import generate

    if fmt not in ("csv", "parquet", "xlsx", "xes"):
        raise UserError(f"--format {fmt!r}: use csv, parquet, xlsx atau/or xes",
                        pesan=f"--format {fmt!r}: gunakan csv, parquet, xlsx atau xes")
    began = time.perf_counter()
    result = generate(out, institutions=institution or [], sops=sop or [], cases=cases, start=start.date(),
                      months=months, deviation_rate=deviation_rate, seed=seed, fmt=fmt,  # type: ignore[arg-type]
                      messy=messy)
    seconds = time.perf_counter() - began
    print_table(console, [Column("institusi", "institution"), Column("SOP"), Column("kasus", "cases", number=True),
                          Column("peristiwa", "events", number=True), Column("terbuka", "open", number=True)],
                [(f.institution_id, f.sop_id, str(f.cases), str(f.events), str(f.open_cases)) for f in result.files],
                keys=2)
    print_table(console, [Column("penyimpangan", "deviation"), Column("diminta", "asked", number=True),
                          Column("disuntik", "injected", number=True), Column("alami", "natural", number=True)],
                [(kind, str(c["asked"]), str(c["injected"]), str(c["natural"])) for kind, c in result.counts.items()])
    console.print(f"{result.cases} kasus/cases, {result.events} peristiwa/events in {seconds:.1f}s; "
                  f"as_of {result.as_of.isoformat()}; ground truth: {result.ground_truth}")
    if result.expected:
        console.print(f"messy exports and expected counts: {result.expected}")


# --- end synthetic logs ---


# every command, a later one too, describes --help in both languages
for _group in (app, sop_app, map_app, user_app):
    for _command in _group.registered_commands:
        if _command.cls in (None, TyperCommand):  # Typer's default
            _command.cls = BilingualCommand


def print_error(pesan: str, message: str) -> None:
    """A user's mistake on stderr: the Indonesian line first, then the English one; one line ``Galat / Error:``
    when the two are the same (a message without an Indonesian text)."""
    if pesan == message:
        err_console.print(f"[bold red]Galat / Error:[/] {escape(message)}", highlight=False)
        return
    err_console.print(f"[bold red]Galat:[/] {escape(pesan)}", highlight=False)
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False)


def main() -> None:
    """Entry point: run the app and turn a user's mistake into a message and exit code."""
    # Everything Patuh writes describes children (databases, published files, reports, quarantine CSVs with raw
    # rows, demo logs, the users file): owner only (files 0600, folders 0700), whatever the shell's umask
    # (usually 022: readable by every user of the machine). Set here, the one entry point of every command
    # (demo and serve included), before anything is written.
    os.umask(0o077)
    try:
        # without standalone mode click returns a command's typer.Exit code instead of exiting with it
        code = app(standalone_mode=False, prog_name="patuh")
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        print_error(exc.pesan, exc.message)
        sys.exit(exc.exit_code)
    except KeyError as exc:  # a lookup no library code turned into a UserError
        key = str(exc.args[0] if exc.args else exc)
        print_error(f"tidak ditemukan: {key}", key)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # the file system refused: a folder that does not exist, no permission, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print_error(f"{where}{os_reason(exc)}", f"{where}{exc.strerror or exc}")
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # usage errors (a missing or unknown option): Typer 0.2x raises those of its own copy of click
        # (typer._click), which click.ClickException does not match, so recognise them by what they can do
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise


if __name__ == "__main__":
    main()
