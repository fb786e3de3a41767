"""Penyimpangan (deviations): a server-side paged grid with filters, CSV export, and a click opens the case."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dash_ag_grid as dag
import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import Flask, Response, request, send_file

from dashboards import i18n, queries, ui
from dashboards.auth import current_grants
from dashboards.i18n import t
from pipeline.timing import standard_text

PATH = "/penyimpangan"
NAV_KEY = "nav.penyimpangan"
P = "dev"
EXPORT_ROUTE = "/export/penyimpangan.csv"
LOCAL_KEYS = ("kind", "step", "role", "sev", "case", "variant")


def _columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"field": "occurred_at", "headerName": t("col.when", lang), "width": 150},
        {"field": "severity", "headerName": t("col.sev", lang), "width": 100,
         "cellClass": {"function": "params.data ? 'sev-' + params.data.sev : ''"}},
        {"field": "kind", "headerName": t("col.kind", lang), "width": 200},
        {"field": "case_id", "headerName": t("col.case", lang), "width": 160, "cellClass": "case-link"},
        {"field": "step", "colId": "step_id", "headerName": t("col.step", lang), "width": 110,
         "tooltipField": "step"},
        {"field": "activity", "headerName": t("col.activity", lang), "flex": 2, "minWidth": 220,
         "sortable": False, "tooltipField": "activity"},
        {"field": "role", "headerName": t("col.role", lang), "width": 170, "sortable": False},
        {"field": "expected", "headerName": t("col.expected", lang), "flex": 1, "minWidth": 140,
         "sortable": False, "tooltipField": "expected"},
        {"field": "observed", "headerName": t("col.observed", lang), "flex": 1, "minWidth": 140,
         "sortable": False, "tooltipField": "observed"},
        {"field": "institution", "colId": "institution_id", "headerName": t("col.inst", lang), "width": 200,
         "tooltipField": "institution"},
        {"field": "sop", "colId": "sop_id", "headerName": t("col.sop", lang), "width": 220, "hide": True,
         "tooltipField": "sop"},
    ]


def layout(ctx: ui.PageContext) -> Any:
    lang, f = ctx.lang, ctx.filters
    facets = queries.deviation_facets(ctx.env.src, ctx.grants, f)
    steps, roles = facets["steps"], facets["roles"]
    kind_opts = [{"label": i18n.kind_label(k, lang), "value": k} for k in queries.DEVIATION_KINDS]
    step_opts = [{"label": f"{s} · {a[:40]}" if n == 1 else s, "value": s}
                 for s, a, n in zip(steps.get("step_id", []), steps.get("activity", []), steps.get("n_sops", []),
                                    strict=True)]
    role_opts = [{"label": lbl, "value": r} for r, lbl in zip(roles.get("role", []), roles.get("role_label", []),
                                                              strict=True)]
    sev_opts = [{"label": i18n.sev_label(s, lang), "value": s} for s in queries.SEVERITIES]
    extra = [
        ui.dropdown("kind", t("filter.kind", lang), kind_opts, f.kind, lang=lang, width="220px"),
        ui.dropdown("step", t("filter.step", lang), step_opts, f.step, lang=lang, width="180px"),
        ui.dropdown("role", t("filter.role", lang), role_opts, f.role, lang=lang, width="200px"),
        ui.dropdown("sev", t("filter.sev", lang), sev_opts, f.sev, lang=lang, width="130px"),
    ]
    export_href = EXPORT_ROUTE + ui.href("", f, lang, keep=ui.URL_KEYS)
    notes = []
    if f.case:
        notes.append(html.Span(f"{t('col.case', lang)}: {f.case}", className="chip"))
    if f.variant:
        notes.append(html.Span(f"{t('pm.path', lang)}: {f.variant[:10]}…", className="chip"))
    return html.Div([
        dcc.Store(id=f"{P}-ctx", data=ctx.store_data()),
        ui.filter_bar(ctx, extra),
        ui.period_note(ctx),
        ui.card(t("dev.title", lang),
                html.Div([html.Span(id=f"{P}-count", className="count"), *notes,
                          html.Span(t("dev.open_case", lang), className="hint")], className="grid-meta"),
                dag.AgGrid(
                    id=f"{P}-grid", rowModelType="infinite", columnDefs=_columns(lang),
                    defaultColDef={"sortable": True, "resizable": True, "filter": False},
                    getRowId={"function": "params.data.rid"},
                    dashGridOptions={"cacheBlockSize": queries.PAGE_SIZE, "maxBlocksInCache": 5,
                                     "infiniteInitialRowCount": 1, "rowBuffer": 0, "tooltipShowDelay": 300,
                                     "localeText": {"noRowsToShow": t("empty", lang),
                                                    "loadingOoo": t("loading", lang)}},
                    className="ag-theme-quartz", style={"height": "600px", "width": "100%"},
                ),
                extra=html.A(t("dev.export", lang), href=export_href, id=f"{P}-export", className="button",
                             download="penyimpangan.csv")),
    ])


def _rows(df: pd.DataFrame, start: int, lang: str, timezones: dict[str, str],
          names: queries.Names = queries.NO_NAMES) -> list[dict[str, Any]]:
    """The grid's rows: names and labels for people (institution, SOP, a rule or limit as its step), the ids
    kept in ``rid`` and the ``*_id`` fields (the click opens the case by them)."""
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        rows.append({
            "rid": f"{r['institution_id']}|{r['sop_id']}|{r['case_id']}|{start + i}",
            "occurred_at": i18n.fmt_date(r["occurred_at"], lang, time=True, tz=timezones.get(r["institution_id"])),
            "severity": i18n.sev_label(r["severity"], lang), "sev": r["severity"],
            "kind": i18n.kind_label(r["kind"], lang), "case_id": r["case_id"],
            "step_id": r["step_id"], "step": names.step(r["sop_id"], r["step_id"]),
            "activity": r["activity"], "role": r["role"],
            "expected": standard_text(r["expected"], lang),
            "observed": i18n.observed_text(r["observed"], r.get("detail"), lang),
            "institution_id": r["institution_id"], "sop_id": r["sop_id"],
            "institution": names.inst(r["institution_id"]), "sop": names.sop(r["sop_id"]),
        })
    return [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()} for row in rows]


def register(app: Dash, env: ui.Env) -> None:
    @app.callback(
        Output(f"{P}-grid", "getRowsResponse"), Output(f"{P}-count", "children"),
        Input(f"{P}-grid", "getRowsRequest"), State(f"{P}-ctx", "data"),
    )
    def rows(req: dict[str, Any] | None, data: dict[str, Any] | None) -> tuple[Any, Any]:
        if not req:
            return no_update, no_update
        f, lang = ui.ctx_from_store(data)
        grants = current_grants()
        start = int(req.get("startRow") or 0)
        end = int(req.get("endRow") or start + queries.PAGE_SIZE)
        df, total = queries.deviation_page(env.src, grants, f, start, end, req.get("sortModel"))
        insts = queries.institutions(env.src, grants)
        tz = dict(zip(insts.get("institution_id", []), insts.get("timezone", []), strict=True))
        return ({"rowData": _rows(df, start, lang, tz, env.src.names()), "rowCount": total},
                t("dev.count", lang, n=i18n.fmt_int(total, lang)))

    @app.callback(
        Output("nav", "href", allow_duplicate=True),
        Input(f"{P}-grid", "cellClicked"), State(f"{P}-ctx", "data"),
        prevent_initial_call=True,
    )
    def open_case(cell: dict[str, Any] | None, data: dict[str, Any] | None) -> Any:
        row_id = str((cell or {}).get("rowId") or "")
        parts = row_id.split("|")
        if len(parts) != 4:
            return no_update
        f, lang = ui.ctx_from_store(data)
        return ui.href("/kasus", f, lang, inst=parts[0], sop=parts[1], case=parts[2])

    server: Flask = app.server

    @server.route(EXPORT_ROUTE)
    def export_csv() -> Response:
        f = queries.Filters.from_mapping(request.args.to_dict())
        grants = current_grants()  # the guard already required a login; the grants narrow the rows
        # the file is gone from the disk before the first byte is sent (the open handle keeps it readable):
        # no copy of the rows stays behind, however the download ends
        with tempfile.TemporaryDirectory(prefix="patuh-export-") as folder:
            out = Path(folder) / "penyimpangan.csv"
            queries.export_deviations_csv(env.src, grants, f, out, i18n.norm_lang(request.args.get("lang")))
            handle = out.open("rb")  # send_file closes it
        response = send_file(handle, mimetype="text/csv", as_attachment=True, download_name="penyimpangan.csv",
                             max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response
