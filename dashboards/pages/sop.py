"""SOP: the catalogue, each SOP rendered like its paper table (pipeline.render when available)."""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

import pandas as pd
from dash import Dash, Input, Output, dcc, html

from dashboards import i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t

PATH = "/sop"
NAV_KEY = "nav.sop"
P = "sop"
log = logging.getLogger(__name__)


def layout(ctx: ui.PageContext) -> Any:
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx),
        dcc.Loading(html.Div(id=f"{P}-body"), type="dot", color="#1f5f8b"),
    ])


def rendered_html(model_json: str, institution: str | None = None) -> str | None:
    """The Permenpan-RB rendering from ``pipeline.render.render_html``, or None while it does not exist."""
    try:
        render = importlib.import_module("pipeline.render")
        from pipeline.sop import SopModel

        model = SopModel.model_validate(json.loads(model_json))
        return str(render.render_html(model, institution))
    except Exception:  # the renderer is optional: a plain table is shown instead
        log.debug("pipeline.render unavailable", exc_info=True)
        return None


def _plain(steps: pd.DataFrame, lang: str) -> Any:
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("sop.no", "sop.activity", "sop.lane", "sop.docs",
                                                             "sop.time")]))
    rows = [html.Tr([
        html.Td(r["no"] or r["step_id"]), html.Td(r["activity"]), html.Td(r["role_label"] or "-"),
        html.Td(", ".join(r["documents"]) if r["documents"] is not None and len(r["documents"]) else "-"),
        html.Td(r["time_raw"] or "-"),
    ]) for r in steps.to_dict("records")]
    return html.Div([html.P(t("sop.plain", lang), className="hint"),
                     html.Table([head, html.Tbody(rows)], className="table sop-table")])


def _catalogue(sops: pd.DataFrame, f: queries.Filters, lang: str, names: queries.Names = queries.NO_NAMES) -> Any:
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("col.inst", "sop.number", "col.sop", "sop.steps")]))
    rows = [html.Tr([
        html.Td(names.inst(r["institution_id"])), html.Td(r["number"] or "-"),
        html.Td(dcc.Link(r["title"], href=ui.href(PATH, f, lang, inst=r["institution_id"], sop=r["sop_id"]))),
        html.Td(i18n.fmt_int(r["n_steps"], lang), className="num"),
    ]) for r in sops.to_dict("records")]
    return ui.card(t("sop.title", lang), html.Table([head, html.Tbody(rows)], className="table",
                                                    id=f"{P}-catalogue"))


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(Output(f"{P}-body", "children"), Input(f"{P}-ctx", "data"))
    def fill(data: dict[str, Any] | None) -> Any:
        f, lang = ui.ctx_from_store(data)
        grants = current_grants()
        if not f.sop:
            sops = queries.sops(env.src, grants, f)
            return ui.empty_state(lang) if sops.empty else _catalogue(sops, f, lang, env.src.names())
        model_json = queries.sop_model_json(env.src, grants, f.sop)
        if model_json is None:
            return ui.empty_state(lang)
        title = json.loads(model_json).get("title", f.sop)
        insts = queries.institutions(env.src, grants)
        names = dict(zip(insts.get("institution_id", []), insts.get("name", []), strict=True))
        page = rendered_html(model_json, names.get(f.sop.split("/")[0]))
        if page is None:
            return ui.card(title, _plain(queries.sop_steps(env.src, grants, f.sop), lang))
        # srcDoc in a sandbox without scripts: the model's text is data, never markup of this page
        return ui.card(title, html.Iframe(srcDoc=page, sandbox="", id=f"{P}-frame", className="sop-frame"))
