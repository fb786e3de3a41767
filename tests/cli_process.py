"""The ``patuh`` command in a subprocess, as a user runs it (tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def patuh(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
    """``patuh ARGS...`` with the pseudonymisation secret ``secret`` and a wide terminal (no wrapped tables)."""
    env = {**os.environ, "PATUH_SECRET": secret, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False)
