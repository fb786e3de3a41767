"""Every CLI command appears in README.md with an example (as sqlite-utils does), and `patuh --help` works."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the Typer app, e.g. ('sop', 'validate'), ('run',).

    Duck-typed on ``.commands``: recent Typer versions build on their own copy of click's classes.
    """
    out: list[tuple[str, ...]] = []
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        for name, sub in sorted(subcommands.items()):
            if getattr(sub, "hidden", False):
                continue
            out.append((*prefix, name))
            out.extend(command_paths(sub, (*prefix, name)))
    return out


COMMANDS = command_paths(typer.main.get_command(app))


def readme_code() -> str:
    """The text of every fenced code block in README.md."""
    text = README.read_text(encoding="utf-8")
    return "\n".join(re.findall(r"^\s*```[^\n]*\n(.*?)^\s*```", text, flags=re.MULTILINE | re.DOTALL))


def test_the_app_has_commands() -> None:
    assert ("sop",) in COMMANDS and ("sop", "validate") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    usage = "patuh " + " ".join(path)
    code = readme_code()
    pattern = r"(?<![\w-])" + r"\s+".join(map(re.escape, usage.split())) + r"(?![\w-])"
    assert re.search(pattern, code), f"README.md has no example of '{usage}' in a code block: add one"


def test_patuh_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    top = sorted({p[0] for p in COMMANDS})
    for name in top:
        assert re.search(rf"\b{re.escape(name)}\b", result.output), f"'patuh --help' does not list '{name}'"


def test_each_command_has_help() -> None:
    """`patuh <command> --help` exits 0 and prints a usage line for every command and group, and its help
    speaks Bahasa Indonesia first and English second ("<Indonesian> / <English>")."""
    runner = CliRunner()
    for path in COMMANDS:
        result = runner.invoke(app, [*path, "--help"], terminal_width=250)
        assert result.exit_code == 0, f"patuh {' '.join(path)} --help: {result.output}"
        assert "Usage:" in result.output
        words = " ".join(result.output.replace("│", " ").split())
        assert re.search(r"\b(Periksa|Muat|Daftar|Cetak|Tampilkan|Keluarkan|Jalankan|Tulis|Tambah|Gambar|Log|"
                         r"Pekerjaan|Model SOP|Pemetaan|Pengguna)\b.*? / [A-Z]", words), \
            f"patuh {' '.join(path)} --help has no Indonesian help before the English one"
        assert "Tampilkan bantuan ini lalu keluar. / Show this message and exit." in words, \
            f"patuh {' '.join(path)} --help describes --help in English only"


def test_every_option_and_argument_is_explained_in_both_languages() -> None:
    """Each option and argument of every command (``--help`` aside) has help text that speaks Bahasa Indonesia
    first and English second: '<Indonesian> / <English>', or 'atau/or' inside a list of values."""
    root = typer.main.get_command(app)
    untranslated = []
    for path in COMMANDS:
        command: Any = root
        for name in path:
            command = command.commands[name]
        for param in getattr(command, "params", []):
            if param.name == "help":
                continue
            text = getattr(param, "help", None) or ""
            if text.count(" / ") != 1 and not ("atau/or" in text and " / " not in text):  # once, not twice
                untranslated.append(f"patuh {' '.join(path)} {param.opts[0]}: {text!r}")
    assert not untranslated, "help without Indonesian and English:\n" + "\n".join(untranslated)


@pytest.mark.parametrize("args, says", [
    (("report",), "Missing option '--period'"),
    (("ingest", "log.csv"), "Missing option '--institution'"),
    (("run", "--nope"), "No such option: --nope"),
    (("serve", "--port", "99999"), "Invalid value for '--port'"),  # it served on 99999 - 65536 before
])
def test_a_usage_mistake_is_a_short_message_not_a_traceback(args: tuple[str, ...], says: str) -> None:
    """The installed command, as a user types it: a missing or unknown option prints the usage line and the
    error with exit 2. Typer's own copy of click raised its errors past the handler as a traceback before."""
    from tests.cli_process import patuh

    out = patuh(*args, secret="x" * 32)
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert f"Usage: patuh {args[0]}" in out.stderr


def test_a_folder_that_cannot_be_written_or_found_is_a_message(tmp_path: Path) -> None:
    """An output path below a file, or a missing SOP folder: one line naming the path and exit 1, no traceback."""
    from tests.cli_process import patuh

    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    rendered = patuh("sop", "render", "smpn2-ngawi/bk001-prosedur", "--out", str(blocker / "alur.svg"), secret="x" * 32)
    missing = patuh("sop", "list", "--sop-dir", str(tmp_path / "tidak-ada"), secret="x" * 32)
    for out in (rendered, missing):
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        said = " ".join(out.stderr.split())  # Bahasa Indonesia first, English second
        assert said.startswith("Galat: ") and said.index("Galat: ") < said.index(" Error: "), out.stderr
    assert str(blocker) in " ".join(rendered.stderr.split())
    assert "folder model SOP ini tidak ada" in missing.stderr and "no such SOP model folder" in missing.stderr


def test_sop_list_refuses_an_unknown_institution() -> None:
    """A typo in --institution is an error naming the known ones, not an empty table with exit 0."""
    from tests.cli_process import patuh

    out = patuh("sop", "list", "--institution", "nope", secret="x" * 32)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "unknown institution 'nope'; known: bontang-bk" in " ".join(out.stderr.split())
    known = patuh("sop", "list", "--institution", "smpn2-ngawi", secret="x" * 32)
    assert known.returncode == 0 and "smpn2-ngawi/bk001-prosedur" in known.stdout


def test_a_flag_shows_no_value_type_in_help() -> None:
    """A flag (--replace, --help, --full) takes no value: its help has no "<bool>" beside it."""
    runner = CliRunner()
    for path in COMMANDS:
        result = runner.invoke(app, [*path, "--help"], terminal_width=250)
        assert "<bool>" not in result.output, f"patuh {' '.join(path)} --help shows <bool>"
