"""``patuh serve``: the dashboard on waitress, a production WSGI server.

It reads ``<db dir>/published/`` only (never the working database), so it keeps serving while
``patuh run`` writes, and switches to a new run's results when ``published/CURRENT`` changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dashboards.auth import DEMO_PASSWORD, ensure_demo_users


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
          threads: int = 8, console: Any = None) -> None:
    """Serve until interrupted; ``console`` (rich) gets the address and, for new demo users, their logins."""
    from waitress import serve as waitress_serve

    wsgi, users_file, created = build(db, users)
    if console is not None:
        if created:
            console.print(f"Pengguna demo / demo users -> {users_file}: qa, pengawas, kepala-rppsa "
                          f"(kata sandi / password '{DEMO_PASSWORD}'); ganti untuk produksi / replace them "
                          "in production ('patuh user add')", style="yellow")
        if not (db.parent / "published" / "CURRENT").exists():
            console.print("Belum ada hasil terbit / nothing published yet: run 'patuh run' first", style="yellow")
        console.print(f"Dasbor / dashboard: http://{host}:{port}/  (Ctrl+C untuk berhenti / to stop)")
    logging.getLogger("waitress").setLevel(logging.WARNING)
    waitress_serve(wsgi, host=host, port=port, threads=threads, ident="patuh")
