"""Waktu Langkah (step times): duration distributions per step (bins from SQL) against each standard."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboards import figures, i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t
from dashboards.pages.peta_proses import default_sop, sop_heading

PATH = "/waktu-langkah"
NAV_KEY = "nav.waktu"
P = "waktu"


def layout(ctx: ui.PageContext) -> Any:
    lang = ctx.lang
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx, need_sop=True),
        ui.card(t("st.table", lang), dcc.Loading(html.Div(id=f"{P}-table"), type="dot", color="#1f5f8b"),
                extra=html.Span(id=f"{P}-sop-title", className="muted")),
        ui.card(t("st.title", lang), html.P(t("st.legend", lang), className="hint"), ui.graph(f"{P}-hist")),
    ])


def _table(steps: pd.DataFrame, metrics: pd.DataFrame, f: queries.Filters, sop_id: str, lang: str) -> Any:
    df = steps.merge(metrics, on="step_id", how="left") if not metrics.empty else steps.assign(
        n=None, wait_p50=None, proc_p50=None, share_over=None)
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("col.step", "col.activity", "col.role",
                                                             "col.standard", "st.n", "st.wait", "st.proc",
                                                             "st.over")]))
    rows = []
    for r in df.to_dict("records"):
        over = r.get("share_over")
        link = ui.href("/penyimpangan", f, lang, inst=sop_id.split("/")[0], sop=sop_id, step=r["step_id"],
                       kind="overdue_step")
        rows.append(html.Tr([
            html.Td(r["step_id"]), html.Td(r["activity"]), html.Td(r["role_label"] or "-"),
            html.Td(r["time_raw"] or "-"), html.Td(i18n.fmt_int(r.get("n"), lang), className="num"),
            html.Td(i18n.fmt_duration(r.get("wait_p50"), "working_minutes", lang), className="num"),
            html.Td(i18n.fmt_duration(r.get("proc_p50"), "working_minutes", lang), className="num"),
            html.Td(dcc.Link(i18n.fmt_pct(over, 1, lang), href=link, className="num-link")
                    if over is not None and not pd.isna(over) else "-",
                    className="num" + (" bad" if over is not None and not pd.isna(over) and over > 0.2 else "")),
        ]))
    return html.Table([head, html.Tbody(rows)], className="table")


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(
        Output(f"{P}-hist", "figure"), Output(f"{P}-table", "children"), Output(f"{P}-sop-title", "children"),
        Input(f"{P}-ctx", "data"),
    )
    def fill(data: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        f, lang = ui.ctx_from_store(data)
        grants = current_grants()
        sop_id = default_sop(env, grants, f)
        if sop_id is None:
            return figures.empty(t("empty", lang), lang), ui.empty_state(lang), ""
        names = env.src.names()
        if names.kinds.get(sop_id) == "rules" and grants.allows(sop_id.split("/")[0]):
            return (figures.empty(t("rules.no_steps", lang).replace(": ", ":<br>", 1), lang),
                    ui.rules_notice(lang, f, sop_id, f"{P}-rules-link"), sop_heading(names, sop_id))
        h = queries.step_histograms(env.src, grants, f, sop_id)
        if h["steps"].empty:
            return figures.empty(t("empty", lang), lang), ui.empty_state(lang), ""
        return (figures.step_histograms(h["bins"], h["steps"], lang),
                _table(h["steps"], h["metrics"], f, sop_id, lang), sop_heading(names, sop_id))

    @app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input(f"{P}-hist", "clickData"), State(f"{P}-ctx", "data"),
        prevent_initial_call=True,
    )
    def drill(click: Any, data: dict[str, Any] | None) -> Any:
        step = ui.click_value(click)
        f, lang = ui.ctx_from_store(data)
        sop_id = default_sop(env, current_grants(), f)
        if step is None or sop_id is None:
            return no_update
        return ui.href("/penyimpangan", f, lang, inst=sop_id.split("/")[0], sop=sop_id, step=str(step),
                       kind="overdue_step")
