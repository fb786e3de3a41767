"""Calls found in Patuh's own source by the called name (tests that every message has its Indonesian text)."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def calls_to(names: Collection[str]) -> Iterator[tuple[str, ast.Call, dict[str | None, ast.expr]]]:
    """(``file:line``, the call, its keyword arguments) of every call in pipeline/ and dashboards/ whose function
    (a name or an attribute) is one of ``names``."""
    for path in sorted([*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("dashboards/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in names:
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node, {k.arg: k.value for k in node.keywords}


def is_empty(value: ast.expr | None) -> bool:
    """No text given: the argument is missing or an empty constant."""
    return value is None or (isinstance(value, ast.Constant) and not value.value)
