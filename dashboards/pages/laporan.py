"""Laporan (reports): list and download the periodic reports that ``patuh report`` writes.

A report belongs to the institution whose id appears in its path (``smpn2-ngawi/2026-01.pdf`` or
``smpn2-ngawi_2026-01.html``); files naming no institution (the batch ``index.html``) are for QA only. The
download route checks the grants again, so a guessed file name gives nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, dcc, html
from flask import Flask, Response, abort, send_file

from dashboards import i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t
from pipeline.calendars import ZONE_WORD_OF

PATH = "/laporan"
NAV_KEY = "nav.laporan"
P = "laporan"
ROUTE = "/laporan/unduh/"
SUFFIXES = (".pdf", ".html", ".htm", ".csv")


def owner(rel: Path, institution_ids: list[str]) -> str | None:
    """The institution a report file belongs to, or None (a file only QA sees): the id that starts its name as
    ``patuh report`` writes it (``<institution>_<period>.<ext>``), else the nearest folder named exactly as an
    id (``smpn2-ngawi/2026-01.html``). An id inside a longer name does not count: a folder named after a
    recipient (``salinan-untuk-ipdn-jatinangor/``) must not hand another institution's reports to it."""
    ids = {i.lower(): i for i in institution_ids}
    names = [rel.name.partition("_")[0], *reversed(rel.parent.parts)]
    return next((ids[n.lower()] for n in names if n.lower() in ids), None)


def visible_reports(reports_dir: Path, src: queries.Source, grants: queries.Grants) -> list[dict[str, Any]]:
    if not reports_dir.is_dir():
        return []
    ids = [str(i) for i in queries.institutions(src, queries.ALL).get("institution_id", [])]
    out = []
    for path in sorted(reports_dir.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES or path.name.startswith("."):
            continue
        rel = path.relative_to(reports_dir)
        inst = owner(rel, ids)
        if not (grants.all_institutions if inst is None else grants.allows(inst)):
            continue
        st = path.stat()
        out.append({"rel": rel.as_posix(), "institution_id": inst, "size": st.st_size,
                    "modified": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)})
    return out


def layout(ctx: ui.PageContext) -> Any:
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.card(t("rep.title", ctx.lang), dcc.Loading(html.Div(id=f"{P}-body"), type="dot", color="#1f5f8b")),
    ])


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(Output(f"{P}-body", "children"), Input(f"{P}-ctx", "data"))
    def fill(data: dict[str, Any] | None) -> Any:
        f, lang = ui.ctx_from_store(data)
        files = [r for r in visible_reports(env.reports_dir, env.src, current_grants())
                 if not f.inst or r["institution_id"] in (f.inst, None)]
        if not files:
            return ui.empty_state(lang, t("rep.none", lang), "")
        head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("rep.file", "col.inst", "rep.modified",
                                                                 "rep.size", "rep.download")]))
        names = env.src.names()
        zones = env.src.local_time().zones  # the catalogue snapshot, read once per published file

        def written(r: dict[str, Any]) -> str:  # the institution's local time, named as the report names it
            zone = zones.get(r["institution_id"]) or "UTC"
            return f"{i18n.fmt_date(r['modified'], lang, time=True, tz=zone)} {ZONE_WORD_OF.get(zone, zone)}"

        rows = [html.Tr([
            html.Td(r["rel"]), html.Td(names.inst(r["institution_id"]) if r["institution_id"] else "-"),
            html.Td(written(r)),
            html.Td(f"{i18n.fmt_int(max(1.0, r['size'] / 1024), lang)} KB", className="num"),
            html.Td(html.A(t("rep.open" if r["rel"].endswith((".html", ".htm")) else "rep.download", lang),
                           href=ROUTE + r["rel"], className="button small",
                           target="_blank", rel="noopener")),
        ]) for r in files]
        return html.Table([head, html.Tbody(rows)], className="table", id=f"{P}-table")

    server: Flask = app.server

    @server.route(ROUTE + "<path:name>")
    def download(name: str) -> Response:
        root = env.reports_dir.resolve()
        target = (root / name).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            abort(404)
        allowed = {r["rel"] for r in visible_reports(env.reports_dir, env.src, current_grants())}
        if target.relative_to(root).as_posix() not in allowed:
            abort(404)  # not 403: do not confirm that another institution's report exists
        is_html = target.suffix.lower() in (".html", ".htm")
        response = send_file(target, as_attachment=not is_html, max_age=0)
        response.headers["Cache-Control"] = "no-store"
        if is_html:
            response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src data: 'self'; " \
                                                          "style-src 'unsafe-inline' 'self'"
        return response
