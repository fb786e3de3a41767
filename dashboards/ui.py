"""Shared pieces of the pages: the page context, URL handling, filter controls, cards and empty states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pandas as pd
from dash import dcc, html

from dashboards import i18n, queries
from dashboards.auth import User
from dashboards.i18n import t
from dashboards.queries import Filters

GLOBAL_KEYS = ("inst", "sop", "start", "end")
URL_KEYS = (*GLOBAL_KEYS, "kind", "step", "role", "sev", "case", "variant", "status", "lang")
CASE_STATUSES = ("open",)  # the Kasus page's list: the open cases (the "Kasus terbuka" KPI)


@dataclass(frozen=True)
class Env:
    """What every page reads: the published results and the reports folder."""

    src: queries.Source
    reports_dir: Path


@dataclass(frozen=True)
class PageContext:
    env: Env
    user: User
    filters: Filters
    lang: str
    path: str
    status: str | None = None  # the Kasus page's status filter (open cases)
    reversed_period: bool = False  # the URL's period ran backwards; the filters hold it in order

    @property
    def grants(self) -> queries.Grants:
        return self.user.grants

    def store_data(self) -> dict[str, str]:
        return {**self.filters.as_dict(), "lang": self.lang, **({"status": self.status} if self.status else {})}


def parse_search(search: str | None) -> tuple[Filters, str]:
    """Filters (the period in order: see :func:`ordered_period`) and language of a URL query string."""
    params = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=False))
    return ordered_period(Filters.from_mapping(params))[0], i18n.norm_lang(params.get("lang"))


def parse_status(search: str | None) -> str | None:
    value = dict(parse_qsl((search or "").lstrip("?"))).get("status")
    return value if value in CASE_STATUSES else None


def ordered_period(f: Filters) -> tuple[Filters, bool]:
    """The filters with a reversed period (``start`` after ``end``) swapped, and whether it was."""
    if f.start and f.end and f.start[:7] > f.end[:7]:
        return f.with_(start=f.end, end=f.start), True
    return f, False


def period_reversed(search: str | None) -> bool:
    params = dict(parse_qsl((search or "").lstrip("?")))
    return ordered_period(Filters.from_mapping(params))[1]


def build_search(params: dict[str, Any]) -> str:
    clean = {k: str(params[k]) for k in URL_KEYS if params.get(k) not in (None, "")}
    if clean.get("lang") == i18n.DEFAULT:
        del clean["lang"]
    return "?" + urlencode(clean) if clean else ""


def href(path: str, f: Filters, lang: str, *, keep: Sequence[str] = GLOBAL_KEYS, **changes: str | None) -> str:
    """A link to ``path`` keeping the global filters (and ``keep``), with ``changes`` applied."""
    params: dict[str, Any] = {k: v for k, v in f.as_dict().items() if k in keep}
    params.update(changes)
    params["lang"] = lang
    return path + build_search(params)


def ctx_from_store(data: dict[str, Any] | None) -> tuple[Filters, str]:
    """Filters and language from a page's context store (untrusted: it only narrows the grants)."""
    data = data if isinstance(data, dict) else {}
    return ordered_period(Filters.from_mapping(data))[0], i18n.norm_lang(data.get("lang"))


# ------------------------------------------------------------------------------------------ controls


def dropdown(key: str, label: str, options: list[dict[str, Any]], value: str | None, *, lang: str,
             placeholder: str | None = None, clearable: bool = True, width: str = "220px",
             disabled: bool = False) -> html.Div:
    if value is not None and value not in {o["value"] for o in options}:
        options = [*options, {"label": value, "value": value}]
    return html.Div(className="filter", style={"minWidth": width, "flex": f"1 1 {width}"}, children=[
        html.Label(label, className="filter-label", htmlFor=f"flt-{key}"),
        dcc.Dropdown(id={"type": "flt", "key": key}, options=options, value=value, clearable=clearable,
                     placeholder=placeholder or t("filter.any", lang), searchable=True, disabled=disabled,
                     className="filter-dropdown"),
    ])


def global_filters(ctx: PageContext, *, need_sop: bool = False) -> list[html.Div]:
    """Institution, SOP and period controls (their values live in the URL)."""
    lang, f = ctx.lang, ctx.filters
    insts = queries.institutions(ctx.env.src, ctx.grants)
    inst_opts = [{"label": n, "value": i} for i, n in zip(insts.get("institution_id", []), insts.get("name", []),
                                                            strict=True)]
    sops = queries.sops(ctx.env.src, ctx.grants, f.with_(sop=None))
    inst_names = {o["value"]: o["label"] for o in inst_opts}
    sop_names = {sid: i18n.sop_label(number, title)
                 + ("" if f.inst else f" ({inst_names.get(sid.split('/')[0], sid.split('/')[0])})")
                 for sid, number, title in zip(sops.get("sop_id", []), sops.get("number", []),
                                               sops.get("title", []), strict=True)}
    sop_opts = [{"label": label, "value": sid} for sid, label in i18n.unique_labels(sop_names).items()]
    sop_hint = t("filter.all_sop", lang)
    if need_sop:  # the page shows one SOP: without a choice, the first procedure in view (default_sop)
        procedures = sops[sops["kind"] == "procedure"] if not sops.empty else sops
        labels = dict(zip((o["value"] for o in sop_opts), (o["label"] for o in sop_opts), strict=True))
        sop_hint = (t("choose_sop", lang) if procedures.empty
                    else t("sop_auto", lang, sop=labels[str(procedures["sop_id"].iloc[0])]))
    months = queries.periods(ctx.env.src, ctx.grants, f)
    month_opts = [{"label": i18n.fmt_month(m, lang), "value": m} for m in months]
    if f.inst and f.inst not in inst_names:  # a link or an edited URL naming an institution this user may not see
        inst_opts = [*inst_opts, {"label": t("filter.inst_unavailable", lang), "value": f.inst}]
    if len(inst_opts) == 1:  # a kepala (or a one-school pengawas) has nothing to choose
        inst_control = html.Div(className="filter", style={"minWidth": "260px", "flex": "1 1 260px"}, children=[
            html.Label(t("filter.inst", lang), className="filter-label"),
            html.Div(inst_opts[0]["label"], className="filter-static", id="flt-inst-static")])
    else:
        inst_control = dropdown("inst", t("filter.inst", lang), inst_opts, f.inst, lang=lang,
                                placeholder=t("filter.all_inst", lang), width="260px")
    return [
        inst_control,
        dropdown("sop", t("filter.sop", lang), sop_opts, f.sop, lang=lang, placeholder=sop_hint, width="320px"),
        dropdown("start", t("filter.start", lang), month_opts, f.start, lang=lang, width="150px"),
        dropdown("end", t("filter.end", lang), month_opts, f.end, lang=lang, width="150px"),
    ]


def filter_bar(ctx: PageContext, extra: Sequence[html.Div] = (), *, need_sop: bool = False) -> html.Div:
    children: list[Any] = [*global_filters(ctx, need_sop=need_sop), *extra]
    if any(v for k, v in ctx.filters.as_dict().items() if k not in ("case",)):
        children.append(html.Div(className="filter filter-reset", children=[
            dcc.Link(t("filter.reset", ctx.lang), href=href(ctx.path, Filters(), ctx.lang),
                     className="reset-link", id=f"{ctx.path.strip('/') or 'ringkasan'}-reset")]))
    return html.Div(className="filter-bar", children=children)


# ------------------------------------------------------------------------------------------- pieces


def card(title: str | None, *children: Any, extra: Any = None, class_name: str = "") -> html.Div:
    head: list[Any] = [html.H3(title, className="card-title")] if title else []
    if extra is not None:
        head.append(html.Div(extra, className="card-extra"))
    return html.Div(className=f"card {class_name}".strip(), children=[
        html.Div(head, className="card-head") if head else None, *children])


def kpi(label: str, value: str, sub: str | None = None, link: str | None = None,
        tone: str = "neutral", kpi_id: str | None = None, text: bool = False) -> html.Div:
    body = [html.Div(label, className="kpi-label"), html.Div(value, className="kpi-value"),
            html.Div(sub or "\u00a0", className="kpi-sub")]
    inner: Any = dcc.Link(body, href=link, className="kpi-link") if link else html.Div(body)
    return html.Div(inner, className=f"kpi kpi-{tone}" + (" kpi-text" if text else ""), id=kpi_id or f"kpi-{label}")


def empty_state(lang: str, message: str | None = None, hint: str | None = None) -> html.Div:
    return html.Div(className="empty-state", children=[
        html.Div("∅", className="empty-icon"),
        html.P(message or t("empty", lang), className="empty-title"),
        html.P(hint if hint is not None else t("empty.hint", lang), className="empty-hint"),
    ])


def reversed_note(ctx: PageContext) -> html.P | None:
    """A period given backwards (``?start=2026-10&end=2026-01``) is shown in order, and the page says so."""
    if not ctx.reversed_period:
        return None
    f, lang = ctx.filters, ctx.lang
    return html.P(t("period.reversed", lang, start=i18n.fmt_month(f.end, lang), end=i18n.fmt_month(f.start, lang),
                    first=i18n.fmt_month(f.start, lang), last=i18n.fmt_month(f.end, lang)),
                  className="notice period-reversed", id="period-reversed")


def rules_notice(lang: str, f: Filters, sop_id: str, link_id: str) -> html.Div:
    """A rules document has no steps: say so and lead to its breaches (the filters kept)."""
    return html.Div(className="empty-state rules-note", children=[
        html.P(t("rules.no_steps", lang), className="empty-title"),
        html.P(t("rules.see_dev", lang), className="empty-hint"),
        html.P(dcc.Link(t("rules.open_dev", lang), id=link_id, className="button",
                        href=href("/penyimpangan", f, lang, inst=sop_id.split("/")[0], sop=sop_id,
                                  kind="rule_breach"))),
    ])


def period_note(ctx: PageContext) -> html.P | None:
    """Which cases a period selects, shown while one is chosen."""
    if not (ctx.filters.start or ctx.filters.end):
        return None
    return html.P(t("period.cases", ctx.lang), className="hint period-note")


def held_note(ctx: PageContext) -> html.Div | None:
    """The institutions in view whose SOP files had errors at the latest run: their figures are older."""
    held = queries.held_institutions(ctx.env.src, ctx.grants, ctx.filters)
    if held.empty:
        return None
    return html.Div(id="held-note", className="notice", children=[
        html.P(t("held.note", ctx.lang, name=row["name"], files=row["files"],
                 date=i18n.fmt_date(row["checked_as_of"], ctx.lang, tz=row["timezone"])
                 if pd.notna(row["checked_as_of"]) else t("held.never", ctx.lang)))
        for _, row in held.iterrows()])


def graph(graph_id: str, height: int | None = None) -> dcc.Loading:
    style = {"height": f"{height}px"} if height else {}
    return dcc.Loading(dcc.Graph(id=graph_id, config={"displayModeBar": False},
                                 style=style), type="dot", color="#1f5f8b")


def click_value(click: dict[str, Any] | None) -> Any:
    """The customdata of the clicked point, or None."""
    try:
        point = (click or {})["points"][0]
    except (KeyError, IndexError, TypeError):
        return None
    value = point.get("customdata")
    if isinstance(value, list):
        value = value[0] if value else None
    return value
