"""The dashboard shell: login, header and navigation, URL-held filters, and the page router.

Every page lives in ``dashboards/pages/<name>.py`` with its layout and its callbacks; this module only
wires them. The filters (institution, SOP, period, and each page's own) live in the URL query string so a
view can be shared; changing a control rewrites the URL and the router draws the page from it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import dash
from dash import ALL, Dash, Input, Output, State, dcc, html
from flask import Flask

from dashboards import auth, i18n, queries, ui
from dashboards.i18n import t
from dashboards.pages import kasus, laporan, penyimpangan, peta_proses, ringkasan, sop, waktu_langkah

PAGES: list[ModuleType] = [ringkasan, peta_proses, penyimpangan, kasus, waktu_langkah, sop, laporan]
ASSETS = Path(__file__).with_name("assets")


def _header(ctx: ui.PageContext) -> html.Header:
    lang, f = ctx.lang, ctx.filters
    links = []
    for page in PAGES:
        active = ctx.path == page.PATH
        links.append(dcc.Link(t(page.NAV_KEY, lang), href=ui.href(page.PATH, f, lang),
                              className="nav-link active" if active else "nav-link",
                              id=f"nav-{page.PATH.strip('/') or 'ringkasan'}"))
    keep = ui.URL_KEYS
    lang_links = [
        dcc.Link("ID", href=ui.href(ctx.path, f, "id", keep=keep), id="lang-id",
                 className="lang-link active" if lang == "id" else "lang-link"),
        dcc.Link("EN", href=ui.href(ctx.path, f, "en", keep=keep), id="lang-en",
                 className="lang-link active" if lang == "en" else "lang-link"),
    ]
    return html.Header(className="topbar", children=[
        html.Div(className="brand", children=[
            html.Span("P", className="brand-mark"),
            html.Div([html.Div("Patuh", className="brand-name"),
                      html.Div(t("app.tagline", lang), className="brand-tag")]),
        ]),
        html.Nav(links, className="nav"),
        html.Div(className="user-box", children=[
            html.Div(lang_links, className="lang-toggle", title="Bahasa / Language"),
            html.Div([html.Div(ctx.user.name, className="user-name"),
                      html.Div(t(f"role.{ctx.user.role}", lang), className="user-role")]),
            html.A(t("logout", lang), href="/logout", className="logout", id="logout"),
        ]),
    ])


def _footer(ctx: ui.PageContext) -> html.Footer:
    info = queries.run_info(ctx.env.src)
    text = t("data.none", ctx.lang) if info is None else (
        f"{t('data.run', ctx.lang)} {info['run_id']} · {i18n.fmt_date(info['finished_at'], ctx.lang, time=True)}"
        " UTC")
    return html.Footer(text, className="footer")


def _not_found(lang: str) -> html.Div:
    """An unknown address: say so, and lead back to the overview."""
    return html.Div([
        ui.empty_state(lang, t("notfound.title", lang), t("notfound.hint", lang)),
        html.P(dcc.Link(t("notfound.home", lang), href=ui.href("/", queries.Filters(), lang), id="notfound-home",
                        className="button"), className="empty-state"),
    ], id="notfound")


def create_app(published_dir: Path, users_file: Path, *, secret_key: bytes | None = None,
               reports_dir: Path | None = None) -> Dash:
    """The Dash app over ``published_dir`` (``<db dir>/published``), with logins from ``users_file``."""
    server = Flask("patuh")
    auth.install(server, users_file, secret_key or auth.session_secret(users_file))
    env = ui.Env(queries.source(published_dir), reports_dir or published_dir.parent / "reports")
    app = Dash(
        "patuh", server=server, title="Patuh", update_title=None,  # type: ignore[arg-type]
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True, serve_locally=True,
    )
    app.layout = html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Location(id="nav", refresh="callback-nav"),
        html.Div(id="app-root", className="app-root"),
    ])
    by_path = {p.PATH: p for p in PAGES}

    @app.callback(Output("app-root", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        user = auth.current_user()
        filters, lang = ui.parse_search(search)
        if user is None:
            return html.Div(html.A(t("login.title", lang), href="/login"), className="empty-state")
        path = pathname or "/"
        page = by_path.get(path)
        ctx = ui.PageContext(env, user, filters, lang, path, ui.parse_status(search), ui.period_reversed(search))
        body = page.layout(ctx) if page is not None else _not_found(lang)
        notes = [ui.reversed_note(ctx), ui.held_note(ctx) if page is not None else None]
        return [_header(ctx), html.Main([*notes, body], className="page", id="page"), _footer(ctx)]

    @app.callback(
        Output("url", "search"),
        Input({"type": "flt", "key": ALL}, "value"),
        State({"type": "flt", "key": ALL}, "id"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def sync_filters(values: list[Any], ids: list[dict[str, str]], search: str | None) -> Any:
        params: dict[str, Any] = dict(ui.parse_search(search)[0].as_dict())
        params["lang"] = ui.parse_search(search)[1]
        params["status"] = ui.parse_status(search)
        triggered = {item["prop_id"].rsplit(".", 1)[0] for item in dash.callback_context.triggered}
        changed: set[str] = set()
        for id_, value in zip(ids, values, strict=True):
            key = id_["key"]
            new = value if value not in ("", []) else None
            if params.get(key) != new and any(f'"key":"{key}"' in trig for trig in triggered):
                changed.add(key)
            params[key] = new
        if changed & set(ui.GLOBAL_KEYS):
            params.pop("case", None)
            params.pop("variant", None)
        if "inst" in changed:
            for key in ("sop", "step", "role"):
                params.pop(key, None)
        new_search = ui.build_search(params)
        return dash.no_update if new_search == (search or "") else new_search

    for page in PAGES:
        page.register(app, env)
    return app
