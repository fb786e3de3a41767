"""Kasus (case): one case on a timeline against each step's standard, its deviations in plain language."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from dashboards import figures, i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t

PATH = "/kasus"
NAV_KEY = "nav.kasus"
P = "kasus"


def layout(ctx: ui.PageContext) -> Any:
    lang = ctx.lang
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx),
        html.Div(className="card search-card", children=[
            html.Label(t("case.search", lang), htmlFor=f"{P}-search", className="filter-label"),
            dcc.Input(id=f"{P}-search", type="search", debounce=True, value=ctx.filters.case or "",
                      placeholder="c1a2b3…", className="search-input", maxLength=64),
            html.Div(id=f"{P}-results", className="search-results"),
        ]),
        dcc.Loading(html.Div(id=f"{P}-body"), type="dot", color="#1f5f8b"),
    ])


def _case_link(row: dict[Any, Any], f: queries.Filters, lang: str) -> dcc.Link:
    return dcc.Link(row["case_id"], href=ui.href(PATH, f, lang, inst=row["institution_id"], sop=row["sop_id"],
                                                 case=row["case_id"]), className="case-link")


def _case_table(df: pd.DataFrame, f: queries.Filters, lang: str, names: queries.Names) -> html.Table:
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in
                               ("col.case", "col.inst", "col.sop", "col.opened", "col.status", "col.n_dev")]))
    body = html.Tbody([html.Tr([
        html.Td(_case_link(r, f, lang)), html.Td(names.inst(r["institution_id"])),
        html.Td(names.sop(r["sop_id"]), title=r["sop_id"]),
        html.Td(i18n.fmt_date(r["opened_at"], lang)), html.Td(t(f"status.{r['status']}", lang)),
        html.Td(i18n.fmt_int(r["n_deviations"], lang), className="num"),
    ]) for r in df.to_dict("records")])
    return html.Table([head, body], className="table", id=f"{P}-list")


def _attention(env: ui.Env, f: queries.Filters, lang: str) -> Any:
    df = queries.attention_cases(env.src, current_grants(), f)
    if df.empty:
        return ui.card(t("case.attention", lang), ui.empty_state(lang))
    return ui.card(t("case.attention", lang), _case_table(df, f, lang, env.src.names()))


def _open_cases(env: ui.Env, f: queries.Filters, lang: str) -> Any:
    """The open cases the overview's "Kasus terbuka" KPI counts (its link: ``?status=open``)."""
    df, total = queries.open_cases(env.src, current_grants(), f)
    back = dcc.Link(t("case.all_cases", lang), href=ui.href(PATH, f, lang), className="muted")
    if df.empty:
        return ui.card(t("case.open", lang), ui.empty_state(lang), extra=back)
    count = html.P(t("case.open_count", lang, shown=i18n.fmt_int(len(df), lang), n=i18n.fmt_int(total, lang)),
                   className="hint", id=f"{P}-open-count")
    return ui.card(t("case.open", lang), count, _case_table(df, f, lang, env.src.names()), extra=back)


def _detail(detail: dict[str, Any], lang: str, names: queries.Names = queries.NO_NAMES) -> Any:
    case, events, devs = detail["case"], detail["events"], detail["deviations"]
    tz = case.get("timezone")
    compliant = bool(case["compliant"])
    facts = [
        ui.kpi(t("col.inst", lang), str(case.get("institution_name") or case["institution_id"]), text=True),
        ui.kpi(t("col.sop", lang), names.sops.get(case["sop_id"]) or str(case.get("sop_title") or case["sop_id"]),
               text=True),
        ui.kpi(t("col.opened", lang), i18n.fmt_date(case["opened_at"], lang, time=True, tz=tz),
               t(f"status.{case['status']}", lang)),
        ui.kpi(t("col.status", lang), t("case.compliant" if compliant else "case.not_compliant", lang),
               t("dev.one" if case["n_deviations"] == 1 else "dev.count", lang,
                 n=i18n.fmt_int(case["n_deviations"], lang)),
               tone="good" if compliant else "bad", kpi_id=f"{P}-verdict"),
        ui.kpi(t("case.fitness", lang), i18n.fmt_num(case["fitness"], 2, lang)),
        ui.kpi(t("case.lead", lang), i18n.fmt_duration(case["lead_time_working"], "working_minutes", lang)),
    ]
    if devs.empty:
        dev_list: Any = html.P(t("case.no_deviations", lang), className="ok-note")
    else:
        dev_list = html.Ul(className="dev-list", children=[html.Li(className=f"dev-item sev-{d['severity']}", children=[
            html.Span(i18n.sev_label(d["severity"], lang), className=f"badge sev-{d['severity']}"),
            html.Strong(i18n.kind_label(d["kind"], lang)),
            html.Span(" · " + i18n.fmt_date(d["occurred_at"], lang, time=True, tz=tz), className="muted"),
            html.P(i18n.explain_deviation(d, lang, i18n.observed_text(d["observed"], d.get("detail"), lang))),
        ]) for d in devs.to_dict("records")])
    rows = []
    for e in events.to_dict("records"):
        measure = e["standard_measure"] if isinstance(e["standard_measure"], str) else "working_minutes"
        value = e["duration_std"] if not pd.isna(e["duration_std"]) else e["proc_working"]
        over = e["over_standard"]
        # a step without a time standard is neither within nor over one
        state = ("case.no_std" if pd.isna(over) or pd.isna(e["standard_max"]) else
                 "case.over" if over else "case.within")
        rows.append(html.Tr([
            html.Td(e["step_id"]), html.Td(e["activity"]), html.Td(e["role_label"] or e["role"] or "-"),
            html.Td(i18n.fmt_date(e["ts_start"], lang, time=True, tz=tz)),
            html.Td(i18n.fmt_date(e["ts_end"], lang, time=True, tz=tz)),
            html.Td(i18n.fmt_duration(value, measure, lang), className="num"), html.Td(e["time_raw"] or "-"),
            html.Td("\u2013" if state == "case.no_std" else t(state, lang), className=f"state-{state.split('.')[-1]}",
                    title=t(state, lang)),
        ]))
    head = html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("col.step", "col.activity", "col.role", "col.start",
                                                             "col.end", "col.duration", "col.standard",
                                                             "col.status")]))
    return html.Div([
        html.H2(f"{t('case.title', lang)} {case['case_id']}", className="page-title", id=f"{P}-title"),
        html.Div(facts, className="kpi-row"),
        html.Div(className="grid-2", children=[
            ui.card(t("case.timeline", lang), dcc.Graph(figure=figures.case_timeline(events, tz, lang),
                                                        id=f"{P}-timeline", config={"displayModeBar": False})),
            ui.card(t("col.duration", lang) + " / " + t("col.standard", lang),
                    dcc.Graph(figure=figures.case_vs_standard(events, lang), id=f"{P}-vs-std",
                              config={"displayModeBar": False})),
        ]),
        ui.card(t("case.deviations", lang), dev_list),
        ui.card(t("nav.waktu", lang), html.Table([head, html.Tbody(rows)], className="table")),
    ])


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(Output(f"{P}-body", "children"), Input(f"{P}-ctx", "data"))
    def fill(data: dict[str, Any] | None) -> Any:
        f, lang = ui.ctx_from_store(data)
        if not f.case:
            status = data.get("status") if isinstance(data, dict) else None
            return _open_cases(env, f, lang) if status == "open" else _attention(env, f, lang)
        detail = queries.case_detail(env.src, current_grants(), f.case, f)
        if detail is None:
            return ui.empty_state(lang, t("case.not_found", lang), "")
        return _detail(detail, lang, env.src.names())

    @app.callback(Output(f"{P}-results", "children"), Input(f"{P}-search", "value"), State(f"{P}-ctx", "data"),
                  prevent_initial_call=True)
    def search(prefix: str | None, data: dict[str, Any] | None) -> Any:
        f, lang = ui.ctx_from_store(data)
        if not prefix or prefix == f.case:
            return []
        df = queries.find_cases(env.src, current_grants(), f, prefix)
        if df.empty:
            return html.P(t("empty", lang), className="muted")
        names = env.src.names()
        return [html.Div([_case_link(r, f, lang), html.Span(f" · {names.inst(r['institution_id'])} · "
                                                            f"{names.sop(r['sop_id'])} · "
                                                            f"{i18n.fmt_date(r['opened_at'], lang)}",
                                                            className="muted")])
                for r in df.to_dict("records")]
