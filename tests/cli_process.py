"""The ``patuh`` command in a subprocess, as a user runs it (tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).parent.parent


def patuh(*args: str, secret: str | None, columns: int = 250,
          env: Mapping[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """``patuh ARGS...`` with the pseudonymisation secret ``secret`` in a terminal ``columns`` wide (default: so
    wide that no table wraps). ``secret=None``: no ``PATUH_SECRET`` (the key file is used); ``env`` sets more
    variables (a None value unsets one)."""
    full = {**os.environ, "COLUMNS": str(columns)}
    full.pop("PATUH_SECRET", None)
    if secret is not None:
        full["PATUH_SECRET"] = secret
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=full,
                          cwd=ROOT, check=False, timeout=300)  # a command that hangs fails its test
