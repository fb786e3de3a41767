"""Peta Proses (process map): the SOP model as a graph with its bottlenecks, beside the paths really taken."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboards import figures, i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t

PATH = "/peta-proses"
NAV_KEY = "nav.peta"
P = "peta"


def default_sop(env: ui.Env, grants: queries.Grants, f: queries.Filters) -> str | None:
    """The SOP in the URL, else the first one in view (a process map shows one SOP)."""
    if f.sop:
        return f.sop
    sops = queries.sops(env.src, grants, f)
    procedures = sops[sops["kind"] == "procedure"] if not sops.empty else sops
    return None if procedures.empty else str(procedures["sop_id"].iloc[0])


def sop_heading(names: queries.Names, sop_id: str) -> str:
    """An SOP as the page header names it: its institution and its number · title (the id is for URLs)."""
    return f"{names.inst(sop_id.split('/')[0])} · {names.sop(sop_id)}"


def layout(ctx: ui.PageContext) -> Any:
    lang = ctx.lang
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx, need_sop=True),
        ui.card(t("pm.title", lang), html.P(t("pm.legend", lang), className="hint"), ui.graph(f"{P}-graph"),
                extra=html.Span(id=f"{P}-sop-title", className="muted")),
        ui.card(t("pm.variants", lang), dcc.Loading(html.Div(id=f"{P}-variants"), type="dot", color="#1f5f8b")),
    ])


def _variants_table(df: pd.DataFrame, total: int, f: queries.Filters, sop_id: str, lang: str,
                    activities: dict[str, str]) -> Any:
    if df.empty:
        return ui.empty_state(lang, t("pm.no_variants", lang), "")
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("pm.rank", "pm.path", "pm.cases", "pm.fitness")]))
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        raw_steps: Any = r.get("steps")
        steps = [] if raw_steps is None else list(raw_steps)
        chips = []
        for j, s in enumerate(steps):
            if j:
                chips.append(html.Span("→", className="arrow"))
            if str(s).startswith("?"):  # an activity that is no step of the SOP
                chips.append(html.Span(str(s)[1:], className="step-chip off", title=t("kind.unexpected_step", lang)))
            else:
                chips.append(html.Span(s, className="step-chip", title=activities.get(s, s)))
        fit = r.get("fitness")
        as_model = fit is not None and not pd.isna(fit) and round(float(fit), 2) >= 1.0
        share = (float(r["n_cases"]) / total) if total else None
        rows.append(html.Tr([
            html.Td(str(i + 1)),
            html.Td([*chips, html.Span(t("pm.as_model" if as_model else "pm.off_model", lang),
                                       className="badge ok" if as_model else "badge warn")]),
            html.Td(dcc.Link(f"{i18n.fmt_int(r['n_cases'], lang)} ({i18n.fmt_pct(share, 0, lang)})",
                             href=ui.href("/penyimpangan", f, lang, inst=sop_id.split("/")[0], sop=sop_id,
                                          variant=r["variant_hash"]), className="num-link"), className="num"),
            html.Td(i18n.fmt_num(fit, 2, lang), className="num"),
        ]))
    return html.Table([head, html.Tbody(rows)], className="table variants")


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(
        Output(f"{P}-graph", "figure"), Output(f"{P}-variants", "children"), Output(f"{P}-sop-title", "children"),
        Input(f"{P}-ctx", "data"),
    )
    def fill(data: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        f, lang = ui.ctx_from_store(data)
        grants = current_grants()
        sop_id = default_sop(env, grants, f)
        if sop_id is None:
            return figures.empty(t("empty", lang), lang, 420), ui.empty_state(lang), ""
        names = env.src.names()
        if names.kinds.get(sop_id) == "rules" and grants.allows(sop_id.split("/")[0]):
            return (figures.empty(t("rules.no_steps", lang).replace(": ", ":<br>", 1), lang, 420),
                    ui.rules_notice(lang, f, sop_id, f"{P}-rules-link"), sop_heading(names, sop_id))
        pm = queries.process_map(env.src, grants, f, sop_id)
        steps = pm["steps"]
        if steps.empty:
            return figures.empty(t("empty", lang), lang, 420), ui.empty_state(lang), ""
        activities = dict(zip(steps["step_id"], steps["activity"], strict=True))
        total = int(steps.attrs.get("cases", 0))
        title = f"{sop_heading(names, sop_id)} · {i18n.fmt_int(total, lang)} {t('ov.cases_axis', lang)}"
        return (figures.process_map(steps, pm["edges"], lang),
                _variants_table(pm["variants"], total, f, sop_id, lang, activities), title)

    @app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input(f"{P}-graph", "clickData"), State(f"{P}-ctx", "data"),
        prevent_initial_call=True,
    )
    def drill(click: Any, data: dict[str, Any] | None) -> Any:
        step = ui.click_value(click)
        if step is None:
            return no_update
        f, lang = ui.ctx_from_store(data)
        sop_id = default_sop(env, current_grants(), f)
        if sop_id is None:
            return no_update
        return ui.href("/penyimpangan", f, lang, inst=sop_id.split("/")[0], sop=sop_id, step=str(step))
