"""``patuh serve``: the dashboard on waitress, a production WSGI server.

It reads ``<db dir>/published/`` only (never the working database), so it keeps serving while
``patuh run`` writes, and switches to a new run's results when ``published/CURRENT`` changes.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import Any

from dashboards.auth import DEMO_PASSWORD, ensure_demo_users
from pipeline.db import check_memory_limit
from pipeline.errors import UserError, os_reason


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


def _cannot_listen(host: str, port: int, exc: OSError) -> UserError:
    if exc.errno == errno.EADDRINUSE:
        return UserError(f"port {port} on {host} is already in use (another 'patuh serve' or 'patuh demo'?): "
                         "stop it, or choose another port with --port",
                         pesan=f"port {port} di {host} sudah dipakai (oleh 'patuh serve' atau 'patuh demo' lain?): "
                               "hentikan proses itu, atau pilih port lain dengan --port")
    return UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port",
                     pesan=f"dasbor tidak dapat dilayani di {host}:{port} ({os_reason(exc)}); periksa --host dan "
                           "--port")


def check_port(host: str = "127.0.0.1", port: int = 8050) -> None:
    """Refuse early (before a long job whose end serves) when ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc}); check --host",
                        pesan=f"dasbor tidak dapat dilayani di {host}:{port} ({exc}); periksa --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
        try:
            probe.bind(address)
        except OSError as exc:
            raise _cannot_listen(host, port, exc) from None


def serve(db: Path, host: str = "127.0.0.1", port: int = 8050, users: Path | None = None,
          threads: int = 8, console: Any = None) -> None:
    """Serve until interrupted; ``console`` (rich) gets the address and, for new demo users, their logins."""
    from waitress import create_server

    check_memory_limit()  # the dashboard opens the published file at its first query: say it before serving
    wsgi, users_file, created = build(db, users)
    logging.basicConfig()  # as waitress.serve: its warnings (e.g. a full task queue) reach the terminal
    logging.getLogger("waitress").setLevel(logging.WARNING)
    try:
        server = create_server(wsgi, host=host, port=port, threads=threads, ident="patuh")
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    if console is not None:
        if created:
            console.print(f"Pengguna demo / demo users -> {users_file}: qa, pengawas, kepala-rppsa "
                          f"(kata sandi / password '{DEMO_PASSWORD}'); ganti untuk produksi / replace them "
                          "in production ('patuh user add')", style="yellow")
        if not (db.parent / "published" / "CURRENT").exists():
            console.print("Belum ada hasil terbit / nothing published yet: run 'patuh run' first", style="yellow")
        console.print(f"Dasbor / dashboard: http://{host}:{port}/  (Ctrl+C untuk berhenti / to stop)")
    server.run()  # until Ctrl+C (waitress shuts its threads down then)
