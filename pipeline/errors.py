"""Errors that are a user's mistake: shown as a message, never as a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_text_file(path: Path, what: str) -> str:
    """A configuration file's text; one that cannot be read, or is not UTF-8 (a spreadsheet or an export
    given by mistake), is a :class:`UserError` naming ``what`` it should have been."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; is it the {what}? (save it as UTF-8 YAML)") from None


def yaml_problem(exc: Exception) -> tuple[int | None, str]:
    """A YAML syntax error's 1-based line (None when unknown) and what the parser found there."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    start, context = getattr(exc, "context_mark", None), getattr(exc, "context", None)
    found = problem or str(exc).splitlines()[0]
    if context:  # e.g. an unclosed quote: say where it opened
        opened = f" that starts on line {start.line + 1}" if start is not None and start.line != getattr(
            mark, "line", None) else ""
        found = f"{found}, {context}{opened}"
    return (None if mark is None else mark.line + 1), found


def yaml_error(path: Path | str, exc: Exception) -> UserError:
    """A YAML syntax error as a message with the file, the line and what the parser found."""
    line, found = yaml_problem(exc)
    where = str(path) if line is None else f"{path}, line {line}"
    return UserError(f"{where}: not valid YAML ({found}); check quoting and indentation "
                     "(a ':' inside text needs quotes)")


def validation_errors(path: Path | str, errors: list[Any], hint: str = "") -> UserError:
    """Every problem pydantic found (``ValidationError.errors()``), each with its field, in one message."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"])
        fix = "remove it or correct its spelling" if err["type"] == "extra_forbidden" else "correct the value"
        parts.append(f"{loc}: {err['msg']} ({fix})")
    return UserError(f"{path}: " + "; ".join(parts) + (f"; {hint}" if hint else ""))
