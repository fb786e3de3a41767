"""Users, login and request guards of the dashboard.

The users file (YAML) holds werkzeug password hashes and grants::

    users:
      pengawas:
        password_hash: "scrypt:32768:8:1$..."
        role: pengawas            # qa (all institutions) | pengawas (its institutions) | kepala (its own one)
        institutions: [smpn2-ngawi, bontang-bk]

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure over https). Every request but the
login page and static files needs a logged-in user; a POST whose Origin or Referer is another site is
refused (403), so a foreign page cannot fire callbacks with a supervisor's cookie.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from flask import Flask, Response, current_app, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from markupsafe import escape
from werkzeug.security import check_password_hash, generate_password_hash

from dashboards import i18n
from dashboards.queries import Grants
from pipeline.config import MIN_SECRET_BYTES, NEW_KEY_COMMAND
from pipeline.errors import UserError, read_text_file, yaml_error
from pipeline.sop import read_yaml

Role = Literal["qa", "pengawas", "kepala"]
ROLES: tuple[Role, ...] = ("qa", "pengawas", "kepala")
DEMO_PASSWORD = "patuh-demo"
DEMO_USERS: dict[str, tuple[Role, list[str]]] = {
    "qa": ("qa", []),
    "pengawas": ("pengawas", ["smpn2-ngawi", "bontang-bk"]),
    "kepala-rppsa": ("kepala", ["rppsa-mataram"]),
}
PUBLIC_PREFIXES = ("/login", "/assets/", "/_dash-component-suites/", "/favicon.ico", "/_favicon")
_DUMMY_HASH = generate_password_hash("not-a-password")


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    institutions: tuple[str, ...] = field(default_factory=tuple)
    password_hash: str = field(default="", repr=False)

    @property
    def grants(self) -> Grants:
        if self.role == "qa":
            return Grants(True)
        if self.role == "kepala":
            return Grants.only(self.institutions[:1])
        return Grants.only(self.institutions)


# -------------------------------------------------------------------------------------- users file

_CACHE: dict[Path, tuple[tuple[int, int], dict[str, User]]] = {}
_CACHE_LOCK = threading.Lock()


def _parse(path: Path, data: Any) -> dict[str, User]:
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise UserError(f"{path}: expected a mapping 'users:' of user name to {{password_hash, role, "
                        "institutions}; see README 'Dashboard'",
                        pesan=f"{path}: harus berisi 'users:' yang memetakan nama pengguna ke {{password_hash, role, "
                              "institutions}; lihat README 'Dashboard'")
    users: dict[str, User] = {}
    for name, entry in data["users"].items():
        if not isinstance(entry, dict):
            raise UserError(f"{path}: user '{name}': expected password_hash, role and institutions",
                            pesan=f"{path}: pengguna '{name}': harus berisi password_hash, role dan institutions")
        role = entry.get("role")
        if role not in ROLES:
            raise UserError(f"{path}: user '{name}': role '{role}' is not one of {', '.join(ROLES)}",
                            pesan=f"{path}: pengguna '{name}': role '{role}' bukan salah satu dari {', '.join(ROLES)}")
        insts = entry.get("institutions") or []
        if not isinstance(insts, list) or not all(isinstance(i, str) for i in insts):
            raise UserError(f"{path}: user '{name}': institutions must be a list of institution ids",
                            pesan=f"{path}: pengguna '{name}': institutions harus berupa daftar id lembaga")
        if role == "kepala" and len(insts) != 1:
            raise UserError(f"{path}: user '{name}': a kepala has exactly one institution (got {len(insts)})",
                            pesan=f"{path}: pengguna '{name}': kepala memiliki tepat satu lembaga (tercantum: "
                                  f"{len(insts)})")
        if not entry.get("password_hash"):
            raise UserError(f"{path}: user '{name}': no password_hash; set one with 'patuh user add'",
                            pesan=f"{path}: pengguna '{name}': password_hash tidak ada; buat dengan 'patuh user add'")
        users[str(name)] = User(str(name), role, tuple(insts), str(entry["password_hash"]))
    return users


def load_users(path: Path) -> dict[str, User]:
    """The users of a file, re-read when the file changes (a removed user loses access at once)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
    try:
        # YAML 1.2: a user named 'on' stays 'on'
        data = read_yaml(read_text_file(path, "users file", "berkas pengguna"))
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    users = _parse(path, data)
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, users)
    return users


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _dump(path: Path, users: dict[str, User]) -> None:
    body = {"users": {u.name: {"password_hash": u.password_hash, "role": u.role,
                               "institutions": list(u.institutions)} for u in users.values()}}
    header = ("# Patuh dashboard users (README 'Dashboard'). Passwords are werkzeug hashes; add users with\n"
              "# 'patuh user add NAME --role qa|pengawas|kepala --institution ID'.\n")
    _write_private(path, header + yaml.safe_dump(body, sort_keys=True, allow_unicode=True))


def check_user(name: str, role: Role | str, institutions: list[str], known: Collection[str] | None = None) -> Role:
    """The role, checked; a :class:`UserError` for a user that cannot be added (before any password is asked
    for); ``known``: the institution ids that exist (a misspelt grant would silently show nothing)."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError(f"user name '{name}': use letters, digits, '-', '_' or '.'",
                        pesan=f"nama pengguna '{name}': gunakan huruf, angka, '-', '_' atau '.'")
    if role not in ROLES:
        raise UserError(f"role '{role}' is not one of {', '.join(ROLES)}",
                        pesan=f"peran (role) '{role}' bukan salah satu dari {', '.join(ROLES)}")
    if role == "kepala" and len(institutions) != 1:
        raise UserError("a kepala has exactly one institution: pass --institution once",
                        pesan="kepala memiliki tepat satu lembaga: berikan --institution satu kali saja")
    if role == "pengawas" and not institutions:
        raise UserError("a pengawas needs at least one --institution",
                        pesan="pengawas memerlukan minimal satu --institution")
    unknown = [i for i in institutions if known is not None and i not in known]
    if unknown:
        raise UserError(f"unknown institution(s) {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(sorted(known or []))}",
                        pesan=f"lembaga {', '.join(map(repr, unknown))} tidak dikenal; "
                              f"yang dikenal: {', '.join(sorted(known or []))}")
    return role


def add_user(path: Path, name: str, role: Role | str, institutions: list[str], password: str) -> User:
    """Add or replace one user (the password is stored hashed)."""
    checked = check_user(name, role, institutions)
    if len(password) < 8:
        raise UserError("the password is too short: use at least 8 characters",
                        pesan="kata sandi terlalu pendek: gunakan minimal 8 karakter")
    users = dict(load_users(path)) if path.exists() else {}
    user = User(name, checked, tuple(institutions), generate_password_hash(password))
    users[name] = user
    _dump(path, users)
    return user


def ensure_demo_users(path: Path) -> None:
    """Write the demo users (password ``patuh-demo``) when the users file does not exist yet."""
    if path.exists():
        return
    users = {name: User(name, role, tuple(insts), generate_password_hash(DEMO_PASSWORD))
             for name, (role, insts) in DEMO_USERS.items()}
    _dump(path, users)


def authenticate(path: Path, name: str, password: str) -> User | None:
    user = load_users(path).get(name)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)  # same time whether or not the user exists
        return None
    return user if check_password_hash(user.password_hash, password) else None


def session_secret(users_file: Path) -> bytes:
    """``PATUH_SESSION_SECRET``, or a 0600 key file next to the users file (created on first use). A key shorter
    than the pseudonymisation key's minimum is refused: whoever guesses it can sign a session cookie with any
    user's grants."""
    env = os.environ.get("PATUH_SESSION_SECRET")
    if env:
        return _long_enough(env.strip().encode("utf-8"), "PATUH_SESSION_SECRET", "PATUH_SESSION_SECRET")
    key_file = users_file.with_name("session.key")
    if key_file.exists():
        return _long_enough(key_file.read_bytes().strip(), f"{key_file}", f"{key_file}")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        return _long_enough(key_file.read_bytes().strip(), f"{key_file}", f"{key_file}")
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _long_enough(key: bytes, source: str, sumber: str) -> bytes:
    if len(key) < MIN_SECRET_BYTES:
        raise UserError(
            f"{source}: the dashboard's session key is too short ({len(key)} bytes; at least {MIN_SECRET_BYTES} "
            f"are needed): whoever guesses it can sign in as any user. Use a long random key ({NEW_KEY_COMMAND}), "
            "or delete the key file so that a new one is made (everyone logs in again)",
            pesan=f"{sumber}: kunci sesi dasbor terlalu pendek ({len(key)} byte; minimal {MIN_SECRET_BYTES}): "
                  f"siapa pun yang menebaknya dapat masuk sebagai pengguna mana pun. Pakai kunci acak yang panjang "
                  f"({NEW_KEY_COMMAND}), atau hapus berkas kuncinya agar dibuat yang baru (semua pengguna masuk lagi)")
    return key


# ---------------------------------------------------------------------------------------- sessions


class _SessionInterface(SecureCookieSessionInterface):
    """Marks the cookie Secure when the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def current_user() -> User | None:
    """The logged-in user, checked against the users file on every call."""
    name = session.get("user")
    users_file: Path | None = current_app.config.get("PATUH_USERS_FILE")
    if not name or users_file is None:
        return None
    user = load_users(users_file).get(name)
    if user is None or session.get("pw") != user.password_hash[-16:]:
        return None  # removed, or the password changed since login
    return user


def current_grants() -> Grants:
    user = current_user()
    return user.grants if user else Grants()


def _foreign_origin() -> bool:
    """True when the request names another site as its Origin (or, without Origin, its Referer)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return bool(source)  # browsers always send Origin on a cross-site POST; 'null' is suspicious
    parts = urlsplit(source)
    return parts.netloc.lower() != request.host.lower()


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


_LOGIN_HTML = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Patuh</title><link rel="stylesheet" href="/assets/patuh.css"></head>
<body class="login-body"><main class="login-card">
<div class="brand"><span class="brand-mark">P</span><div><div class="brand-name">Patuh</div>
<div class="brand-tag">{tagline}</div></div></div>
<h1>{title}</h1>{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}"><input type="hidden" name="lang" value="{lang}">
<label for="username">{user_label}</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">{pw_label}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login-submit" type="submit">{submit}</button>
</form>
<p class="login-lang"><a href="/login?lang=id&amp;next={next_q}">Bahasa Indonesia</a> ·
<a href="/login?lang=en&amp;next={next_q}">English</a></p>
</main></body></html>"""


def _login_page(lang: str, next_url: str, failed: bool) -> str:
    from urllib.parse import quote

    error = f'<p class="login-error" role="alert">{escape(i18n.t("login.failed", lang))}</p>' if failed else ""
    return _LOGIN_HTML.format(
        lang=escape(lang), tagline=escape(i18n.t("app.tagline", lang)), title=escape(i18n.t("login.title", lang)),
        error=error, next=escape(next_url), next_q=escape(quote(next_url, safe="/")),
        user_label=escape(i18n.t("login.user", lang)), pw_label=escape(i18n.t("login.password", lang)),
        submit=escape(i18n.t("login.submit", lang)),
    )


def install(server: Flask, users_file: Path, secret_key: bytes) -> None:
    """Session settings, the login and logout routes, and the guard in front of every request."""
    server.config["PATUH_USERS_FILE"] = users_file
    server.secret_key = secret_key
    server.session_interface = _SessionInterface()
    server.config.update(
        SESSION_COOKIE_NAME="patuh_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )

    @server.before_request
    def _guard() -> Any:
        if request.method not in ("GET", "HEAD", "OPTIONS") and _foreign_origin():
            return Response("Forbidden: cross-site request", status=403, mimetype="text/plain")
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        if current_user() is None:
            if request.method == "GET" and not path.startswith("/_dash-") and not path.startswith("/_reload"):
                return redirect(f"/login?next={_safe_next(request.full_path.rstrip('?'))}")
            return Response('{"error": "login required"}', status=401, mimetype="application/json")
        return None

    @server.route("/login", methods=["GET", "POST"])
    def _login() -> Any:
        lang = i18n.norm_lang(request.values.get("lang"))
        next_url = _safe_next(request.values.get("next"))
        if request.method == "POST":
            name = request.form.get("username", "").strip()
            user = authenticate(users_file, name, request.form.get("password", ""))
            if user is not None:
                session.clear()
                session.permanent = True
                session["user"] = user.name
                session["pw"] = user.password_hash[-16:]
                if "lang=" not in next_url and lang != i18n.DEFAULT:
                    next_url += ("&" if "?" in next_url else "?") + f"lang={lang}"
                return redirect(next_url)
            return Response(_login_page(lang, next_url, True), status=401, mimetype="text/html")
        return Response(_login_page(lang, next_url, False), mimetype="text/html")

    @server.route("/logout", methods=["GET", "POST"])
    def _logout() -> Any:
        session.clear()
        return redirect("/login")
