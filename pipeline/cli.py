"""The ``patuh`` command line: thin wrappers over the library (one sub-command per pipeline stage).

A user's mistake ends with a clear message and a non-zero exit, never a traceback: library code raises
:class:`pipeline.errors.UserError` and :func:`main` turns it into a message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.config import get_settings
from pipeline.errors import UserError

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


def main() -> None:
    """Entry point: run the app and turn a user's mistake into a message and exit code."""
    try:
        app(standalone_mode=False)
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
