"""``patuh serve``: the dashboard on waitress, a production WSGI server.

It reads ``<db dir>/published/`` only (never the working database), so it keeps serving while
``patuh run`` writes, and switches to a new run's results when ``published/CURRENT`` changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dashboards.auth import ensure_demo_users


def default_users_file(db: Path) -> Path:
    return db.parent / "users.yaml"


def build(db: Path, users: Path | None = None) -> tuple[object, Path, bool]:
    """The WSGI app for ``db``'s published folder; returns (app, users file, demo users written)."""
    from dashboards.app import create_app

    users_file = users or default_users_file(db)
    created = not users_file.exists()
    ensure_demo_users(users_file)
    app = create_app(db.parent / "published", users_file, reports_dir=db.parent / "reports")
    return app.server, users_file, created


def serve(db: Path, host: str = "127.0.0.1", port: int = 8050, users: Path | None = None,
          threads: int = 8) -> None:
    """Serve until interrupted."""
    from waitress import serve as waitress_serve

    wsgi, _, _ = build(db, users)
    logging.getLogger("waitress").setLevel(logging.WARNING)
    waitress_serve(wsgi, host=host, port=port, threads=threads, ident="patuh")
