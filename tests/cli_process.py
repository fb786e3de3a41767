"""The ``patuh`` command in a subprocess, as a user runs it (tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def patuh(*args: str, secret: str, columns: int = 250) -> subprocess.CompletedProcess[str]:
    """``patuh ARGS...`` with the pseudonymisation secret ``secret`` in a terminal ``columns`` wide (default: so
    wide that no table wraps)."""
    env = {**os.environ, "PATUH_SECRET": secret, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False, timeout=300)  # a command that hangs fails its test
