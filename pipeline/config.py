"""Settings (environment variables ``PATUH_*``), default paths and the pseudonymisation secret."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A text outside the SOP (an activity, a role) goes into results and messages only when at least this many
# cases (at ingest: rows) use it: that common, it names a kind of work; a rarer one may be a note about a person
PUBLIC_LABEL_CASES = 5


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


@dataclass(frozen=True)
class Settings:
    """Where Patuh finds its catalogue and keeps its data."""

    catalogue_dir: Path = field(default_factory=lambda: _env_path("PATUH_SOP_DIR", PROJECT_ROOT / "sop_models"))
    data_dir: Path = field(default_factory=lambda: _env_path("PATUH_DATA_DIR", PROJECT_ROOT / "data"))
    db_path: Path = field(
        default_factory=lambda: _env_path("PATUH_DB", PROJECT_ROOT / "data" / "patuh.duckdb")
    )
    key_file: Path = field(
        default_factory=lambda: _env_path("PATUH_KEY_FILE", Path.home() / ".config" / "patuh" / "secret.key")
    )

    @property
    def published_dir(self) -> Path:
        """Folder of published read-only result files (DESIGN section 5)."""
        return self.db_path.parent / "published"

    @property
    def institutions_file(self) -> Path:
        return self.catalogue_dir / "institutions.yaml"


def get_settings() -> Settings:
    return Settings()


def load_secret(settings: Settings | None = None) -> bytes:
    """Return the installation's pseudonymisation key.

    ``PATUH_SECRET`` wins; otherwise a 0600 key file is created on first use. The key never goes into
    the database or the repository: a keyed hash of a student number cannot be reversed by enumeration.
    """
    env = os.environ.get("PATUH_SECRET")
    if env:
        return env.encode("utf-8")
    key_file = (settings or get_settings()).key_file
    if key_file.exists():
        return key_file.read_bytes().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
