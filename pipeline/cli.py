"""The ``patuh`` command line: thin wrappers over the library (one sub-command per pipeline stage).

A user's mistake ends with a clear message and a non-zero exit, never a traceback: library code raises
:class:`pipeline.errors.UserError` and :func:`main` turns it into a message.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pipeline.config import get_settings
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.run import RunSummary

app = typer.Typer(
    name="patuh",
    help="Patuh: analitik kepatuhan SOP / SOP compliance analytics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sop_app = typer.Typer(help="SOP models: validate, list, show, render.", no_args_is_help=True)
app.add_typer(sop_app, name="sop")
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB file (default data/patuh.duckdb)")]
SopDirOption = Annotated[Path | None, typer.Option("--sop-dir", help="SOP model folder (default sop_models/)")]


def _sop_dir(value: Path | None) -> Path:
    return value or get_settings().catalogue_dir


def _db(value: Path | None) -> Path:
    return value or get_settings().db_path


# --------------------------------------------------------------------------------------------------- sop


@sop_app.command("validate")
def sop_validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Model files (default: the whole catalogue)")] = None,
    sop_dir: SopDirOption = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors")] = False,
) -> None:
    """Check every model file; report every problem (file, line, step, fix) at once."""
    from pipeline.catalogue import validate_catalogue

    report = validate_catalogue(_sop_dir(sop_dir), files or None)
    for problem in report.problems:
        style = "red" if problem.level == "error" else "yellow"
        err_console.print(problem.render(), style=style, markup=False, highlight=False, soft_wrap=True)
    n_err = sum(p.level == "error" for p in report.problems)
    n_warn = len(report.problems) - n_err
    console.print(
        f"{report.n_models} model(s), {report.n_sound} sound net(s), {n_err} error(s), {n_warn} warning(s)"
    )
    if n_err or (strict and n_warn):
        raise typer.Exit(1)


@sop_app.command("list")
def sop_list(
    sop_dir: SopDirOption = None,
    institution: Annotated[str | None, typer.Option(help="Only this institution")] = None,
) -> None:
    """List the catalogue: id, number, title, steps."""
    from rich.table import Table

    from pipeline.sop import load_catalogue

    catalogue = load_catalogue(_sop_dir(sop_dir))
    table = Table("id", "nomor", "judul / title", "langkah", "jenis")
    for sop_id, model in sorted(catalogue.models.items()):
        if institution and model.institution != institution:
            continue
        table.add_row(sop_id, model.number or "-", model.title,
                      str(len(model.steps) or len(model.rules)), model.kind)
    console.print(table)
    if catalogue.errors:
        err_console.print(f"{len(catalogue.errors)} file problem(s): run 'patuh sop validate'", style="yellow")


@sop_app.command("show")
def sop_show(sop_id: str, sop_dir: SopDirOption = None) -> None:
    """Print one SOP as its paper table (steps, lanes, kelengkapan, waktu, output)."""
    from pipeline.catalogue import sop_table
    from pipeline.sop import load_catalogue

    catalogue = load_catalogue(_sop_dir(sop_dir))
    model = catalogue.get(sop_id)
    for renderable in sop_table(model):
        console.print(renderable)


# --- compliance engine (run, conform, demo) ---


def _parse_as_of(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--as-of {value!r} is not a date-time; write e.g. 2026-10-31T17:00+08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _print_run_summary(summary: RunSummary) -> None:
    from rich.table import Table

    rate = "-" if summary.compliance_rate is None else f"{summary.compliance_rate:.1%}"
    console.print(f"[bold]Run {summary.run_id}[/] ({summary.mode}): {summary.cases} kasus/cases "
                  f"({summary.cases_checked} diperiksa/checked), kepatuhan/compliance {rate}")
    console.print(f"Varian/variants: {summary.variants} ({summary.aligned} aligned, "
                  f"{summary.from_cache} from cache)")
    table = Table("penyimpangan / deviation", "n")
    for kind, n in sorted(summary.deviations.items()):
        table.add_row(kind, str(n))
    console.print(table)
    if not summary.documents_recorded:
        console.print("Kelengkapan dokumen tidak tercatat di log: missing_document tidak diperiksa / "
                      "documents not recorded in the logs: missing_document not checked", style="yellow")
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in summary.stage_seconds.items())
    console.print(f"Waktu per tahap / time per stage: {stages}")
    if summary.published:
        console.print(f"Diterbitkan / published: {summary.published}")


def run_for_db(db: Path, *, institution: str | None = None, sop: str | None = None,
               as_of: datetime.datetime | None = None, full: bool = False, workers: int = 2) -> RunSummary:
    """Load the catalogue and calendars, run the compliance check on ``db`` and publish the results."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.calendars import load_calendars, load_institutions
    from pipeline.conformance import PoolExecutor
    from pipeline.db import connect
    from pipeline.run import run_compliance
    from pipeline.sop import load_catalogue

    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_dir)
    institutions = load_institutions(settings.institutions_file)
    calendars = load_calendars(settings.institutions_file)
    conn = connect(db)
    try:
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
    institution: Annotated[str | None, typer.Option(help="Only this institution")] = None,
    sop: Annotated[str | None, typer.Option(help="Only this SOP id")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Judge open cases at this time (ISO)")] = None,
    full: Annotated[bool, typer.Option(help="Check every case again (no incremental carry-over)")] = False,
    workers: Annotated[int, typer.Option(help="Processes for alignments")] = 2,
) -> None:
    """Check every case against its SOP (one transaction), then publish for the dashboard and reports."""
    summary = run_for_db(_db(db), institution=institution, sop=sop, as_of=_parse_as_of(as_of), full=full,
                         workers=workers)
    _print_run_summary(summary)


@app.command("conform")
def conform_cmd(
    log: Annotated[Path, typer.Option("--log", help="Event log: XES, .xes.gz or CSV (pm4py columns)")],
    model: Annotated[Path, typer.Option("--model", help="Model: PNML, BPMN or an SOP .yaml")],
    out: Annotated[Path, typer.Option("--out", help="CSV with one row per case")],
) -> None:
    """Check any log against any model without a database (compare with pm4py or other tools)."""
    from pipeline.conform import conform_file

    n_cases, n_fitting = conform_file(log, model, out)
    console.print(f"{n_cases} kasus/cases, {n_fitting} fit; hasil/results: {out}")


@app.command("demo")
def demo_cmd(
    cases: Annotated[int, typer.Option(help="Number of synthetic cases")] = 20000,
    db: DbOption = None,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard at the end")] = True,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 20261123,
    host: Annotated[str, typer.Option(help="Dashboard host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Dashboard port")] = 8050,
) -> None:
    """The main job on the embedded default: demo logs -> database -> compliance run -> reports -> dashboard."""
    from pipeline.demo import run_demo

    run_demo(_db(db), cases=cases, seed=seed, console=console, serve=serve, host=host, port=port)


def main() -> None:
    """Entry point: run the app and turn a user's mistake into a message and exit code."""
    try:
        # without standalone mode click returns a command's typer.Exit code instead of exiting with it
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        err_console.print(f"[bold red]Galat / Error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyError as exc:
        err_console.print(f"[bold red]Galat / Error:[/] {exc.args[0] if exc.args else exc}", highlight=False)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
