"""Ringkasan (overview): compliance by institution, SOP and month, with its trend and deviations by kind."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboards import figures, i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t

PATH = "/"
NAV_KEY = "nav.ringkasan"
P = "ring"


def layout(ctx: ui.PageContext) -> Any:
    lang = ctx.lang
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx),
        ui.period_note(ctx),
        dcc.Loading(html.Div(id=f"{P}-kpis", className="kpi-row"), type="dot", color="#1f5f8b"),
        html.P(t("click_hint", lang), className="hint"),
        html.Div(className="grid-2", children=[
            ui.card(t("ov.trend", lang), ui.graph(f"{P}-trend")),
            ui.card(t("ov.by_kind", lang), ui.graph(f"{P}-kind")),
            ui.card(t("ov.by_inst", lang), ui.graph(f"{P}-inst")),
            ui.card(t("ov.by_sop", lang), ui.graph(f"{P}-sop")),
        ]),
    ])


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(
        Output(f"{P}-kpis", "children"), Output(f"{P}-trend", "figure"), Output(f"{P}-kind", "figure"),
        Output(f"{P}-inst", "figure"), Output(f"{P}-sop", "figure"),
        Input(f"{P}-ctx", "data"),
    )
    def fill(data: dict[str, Any] | None) -> tuple[Any, ...]:
        f, lang = ui.ctx_from_store(data)
        grants = current_grants()
        ov = queries.overview(env.src, grants, f)
        total = ov["total"]
        if total.empty or int(total["cases"].iloc[0]) == 0:
            none = figures.empty(t("empty", lang), lang)
            return ui.empty_state(lang), none, none, none, none
        row = total.iloc[0]
        dev_link = ui.href("/penyimpangan", f, lang)
        rate = row["rate"]
        tone = "good" if rate >= 0.8 else "warn" if rate >= 0.5 else "bad"
        kpis = [
            ui.kpi(t("kpi.cases", lang), i18n.fmt_int(row["cases"], lang),
                   f"{i18n.fmt_int(row['compliant'], lang)} {t('ov.compliant', lang)}",
                   ui.href("/kasus", f, lang), kpi_id=f"{P}-kpi-cases"),
            ui.kpi(t("kpi.rate", lang), i18n.fmt_pct(rate, 1, lang), None, dev_link, tone, kpi_id=f"{P}-kpi-rate"),
            ui.kpi(t("kpi.deviations", lang), i18n.fmt_int(row["deviations"], lang), None, dev_link,
                   kpi_id=f"{P}-kpi-dev"),
            ui.kpi(t("kpi.open", lang), i18n.fmt_int(row["open_cases"], lang), None,
                   ui.href("/kasus", f, lang, status="open"), kpi_id=f"{P}-kpi-open"),
            ui.kpi(t("kpi.stalled", lang), i18n.fmt_int(row["stalled"], lang), None,
                   ui.href("/penyimpangan", f, lang, kind="stalled_case"),
                   "bad" if row["stalled"] else "neutral", kpi_id=f"{P}-kpi-stalled"),
            ui.kpi(t("kpi.lead", lang), i18n.fmt_duration(row["lead_p50"], "working_minutes", lang),
                   kpi_id=f"{P}-kpi-lead"),
        ]
        insts = queries.institutions(env.src, grants)
        inst_names = dict(zip(insts.get("institution_id", []), insts.get("name", []), strict=True))
        sops = queries.sops(env.src, grants, f.with_(sop=None))
        sop_names = {sid: i18n.sop_label(number, title) for sid, number, title in
                     zip(sops.get("sop_id", []), sops.get("number", []), sops.get("title", []), strict=True)}
        return (kpis, figures.trend(ov["month"], lang), figures.kind_bars(ov["kind"], lang),
                figures.compliance_bars(ov["institution"], "institution_id", inst_names, lang),
                figures.compliance_bars(ov["sop"], "sop_id", sop_names, lang))

    @app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input(f"{P}-trend", "clickData"), Input(f"{P}-kind", "clickData"), Input(f"{P}-inst", "clickData"),
        Input(f"{P}-sop", "clickData"), State(f"{P}-ctx", "data"),
        prevent_initial_call=True,
    )
    def drill(trend: Any, kind: Any, inst: Any, sop: Any, data: dict[str, Any] | None) -> Any:
        from dash import ctx as dash_ctx
        from dash import no_update

        f, lang = ui.ctx_from_store(data)
        source = dash_ctx.triggered_id
        value = ui.click_value({"trend": trend, "kind": kind, "inst": inst, "sop": sop}.get(
            str(source).removeprefix(f"{P}-")))
        if value is None:
            return no_update
        value = str(value)
        if source == f"{P}-trend":
            return ui.href("/penyimpangan", f, lang, start=value, end=value)
        if source == f"{P}-kind":
            return ui.href("/penyimpangan", f, lang, kind=value)
        if source == f"{P}-inst":
            return ui.href("/penyimpangan", f, lang, inst=value, sop=None)
        return ui.href("/penyimpangan", f, lang, inst=value.split("/")[0], sop=value)
