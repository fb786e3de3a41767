"""Plotly figures of the dashboard. Inputs are the small aggregate frames of :mod:`dashboards.queries`."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards import i18n
from dashboards.i18n import t

GREEN = "#2e7d32"
AMBER = "#f9a825"
RED = "#c62828"
BLUE = "#1f5f8b"
GREY = "#9aa5b1"
LIGHT = "#dfe6ec"
FONT = "Inter, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif"
HIST_SPAN = 24  # bins per histogram (queries.HIST_BINS)
RATE_SCALE = [[0.0, RED], [0.5, AMBER], [1.0, GREEN]]
OVER_SCALE: list[tuple[float, str]] = [(0.0, "#e8f5e9"), (0.25, "#fff3c4"), (0.5, "#ffb74d"), (1.0, RED)]


def _base(fig: go.Figure, lang: str, height: int, **layout: Any) -> go.Figure:
    settings: dict[str, Any] = {
        "template": "plotly_white", "height": height, "font": {"family": FONT, "size": 13, "color": "#1d2a36"},
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "separators": i18n.plotly_separators(lang),
        "hoverlabel": {"font": {"family": FONT}}, "showlegend": False,
    }
    settings.update(layout)
    fig.update_layout(**settings)
    return fig


def empty(message: str, lang: str = i18n.DEFAULT, height: int = 260) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 15, "color": "#5f6b76"},
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base(fig, lang, height)


def _short(text: Any, n: int = 38) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return s if len(s) <= n else s[: n - 1].rstrip() + "…"


def compliance_bars(df: pd.DataFrame, id_col: str, labels: dict[str, str], lang: str) -> go.Figure:
    """Horizontal bars of the compliance rate per institution or SOP; customdata is the id."""
    if df.empty:
        return empty(t("empty", lang), lang)
    df = df.sort_values("rate", ascending=True)
    names = [_short(labels.get(i, i), 44) for i in df[id_col]]
    text = [f"{i18n.fmt_pct(r, 1, lang)} · {i18n.fmt_int(c, lang)} {t('ov.cases_axis', lang)}"
            for r, c in zip(df["rate"], df["cases"], strict=True)]
    fig = go.Figure(go.Bar(
        x=df["rate"] * 100, y=names, orientation="h", text=text, textposition="auto", customdata=df[id_col],
        marker={"color": df["rate"], "colorscale": RATE_SCALE, "cmin": 0, "cmax": 1},
        hovertemplate="%{y}<br>%{text}<extra></extra>", cliponaxis=False,
    ))
    fig.update_xaxes(range=[0, 100], ticksuffix="%", title=t("ov.rate_axis", lang))
    return _base(fig, lang, max(180, 60 + 42 * len(df)), bargap=0.35)


def trend(df: pd.DataFrame, lang: str) -> go.Figure:
    """Cases per month (bars) and the compliance rate (line); customdata is the month."""
    if df.empty:
        return empty(t("empty", lang), lang)
    months = [i18n.fmt_month(m, lang) for m in df["month"]]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=months, y=df["cases"], name=t("kpi.cases", lang), marker_color=LIGHT,
                         customdata=df["month"], hovertemplate="%{x}: %{y} " + t("ov.cases_axis", lang)
                         + "<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=months, y=df["rate"] * 100, mode="lines+markers+text", name=t("kpi.rate", lang),
                             line={"color": BLUE, "width": 3}, marker={"size": 9}, customdata=df["month"],
                             text=[i18n.fmt_pct(r, 0, lang) for r in df["rate"]], textposition="top center",
                             hovertemplate="%{x}: %{text}<extra></extra>", cliponaxis=False), secondary_y=True)
    # the rate (drawn above the bars) reads on the left axis, the case counts on the right one
    fig.update_yaxes(range=[0, 109], ticksuffix="%", title=t("ov.rate_axis", lang), side="left",
                     tickmode="linear", tick0=0, dtick=20, secondary_y=True)
    fig.update_yaxes(title=t("ov.cases_axis", lang), showgrid=False, side="right", rangemode="tozero",
                     tickformat=",d", secondary_y=False)
    return _base(fig, lang, 320, showlegend=True,
                 legend={"orientation": "h", "y": -0.25, "x": 0})


def kind_bars(df: pd.DataFrame, lang: str) -> go.Figure:
    """Deviations per kind; customdata is the kind."""
    if df.empty:
        return empty(t("empty", lang), lang)
    df = df.sort_values("n", ascending=True)
    fig = go.Figure(go.Bar(
        x=df["n"], y=[i18n.kind_label(k, lang) for k in df["kind"]], orientation="h", customdata=df["kind"],
        marker_color=RED, opacity=0.85, text=[i18n.fmt_int(v, lang) for v in df["n"]], textposition="auto",
        hovertemplate="%{y}: %{text}<extra></extra>",
    ))
    fig.update_xaxes(title=t("kpi.deviations", lang))
    return _base(fig, lang, max(180, 60 + 34 * len(df)), bargap=0.3)


def _layers(steps: pd.DataFrame, edges: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Left-to-right positions: a step's column is its longest forward path from the start."""
    order = {s: i for i, s in enumerate(steps["step_id"])}
    col: dict[str, int] = {s: 0 for s in order}
    forward = [(a, b) for a, b in zip(edges["src"], edges["dst"], strict=True)
               if a in order and b in order and order[b] > order[a]]
    for _ in range(len(order)):
        changed = False
        for a, b in forward:
            if col[b] < col[a] + 1:
                col[b] = col[a] + 1
                changed = True
        if not changed:
            break
    by_col: dict[int, list[str]] = {}
    for s in order:
        by_col.setdefault(col[s], []).append(s)
    pos: dict[str, tuple[float, float]] = {}
    for c, members in by_col.items():
        for j, s in enumerate(members):
            pos[s] = (float(c + 1), (len(members) - 1) / 2 - j)
    last = max((c for c in by_col), default=0)
    pos["start"] = (0.0, 0.0)
    pos["end"] = (float(last + 2), 0.0)
    return pos


def process_map(steps: pd.DataFrame, edges: pd.DataFrame, lang: str) -> go.Figure:
    """The SOP as a graph: nodes coloured by share over standard, edges by flow deviations."""
    if steps.empty:
        return empty(t("empty", lang), lang, 420)
    pos = _layers(steps, edges[edges["modelled"]] if "modelled" in edges else edges)
    fig = go.Figure()
    max_n = max(1.0, float(edges["n"].max()) if not edges.empty else 1.0)
    annotations = []
    for _, e in edges.iterrows():
        if e["src"] not in pos or e["dst"] not in pos:
            continue
        (x0, y0), (x1, y1) = pos[e["src"]], pos[e["dst"]]
        modelled = bool(e["modelled"])
        if not modelled and float(e["n"]) == 0:
            continue
        width = 1.5 + 7 * float(e["n"]) / max_n
        rate = float(e.get("dev_rate", 0) or 0)
        color = (GREY if rate == 0 else AMBER if rate < 0.1 else RED) if modelled else RED
        bend = 0.0 if modelled and x1 > x0 else 0.35 + 0.1 * abs(x1 - x0)
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2 + (bend if x1 >= x0 else -bend)
        if x0 == x1 and y0 == y1:  # a self-loop (repeated step)
            xs, ys = [x0 - 0.15, x0, x0 + 0.15], [y0 + 0.3, y0 + 0.45, y0 + 0.3]
        else:
            xs, ys = [x0, xm, x1], [y0, ym, y1]
        edge_hover = (f"{e['src']} → {e['dst']}<br>{i18n.fmt_int(e['n'], lang)} {t('ov.cases_axis', lang)}"
                 + (f"<br>{i18n.fmt_pct(rate, 1, lang)} {t('pm.edge_dev', lang)}" if modelled else
                    f"<br>{t('pm.off_model', lang)}"))
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line={"width": width, "color": color, "shape": "spline",
                                            "dash": "solid" if modelled else "dash"},
            opacity=0.75 if modelled else 0.6, hoverinfo="text", hovertext=edge_hover,
        ))
        tip_from = (x1 - 0.3 * (x1 - xm), y1 - 0.3 * (y1 - ym)) if (x0, y0) != (x1, y1) else (x0 + 0.15, y0 + 0.3)
        annotations.append({"x": x1, "y": y1, "ax": tip_from[0], "ay": tip_from[1], "xref": "x", "yref": "y",
                            "axref": "x",
                            "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1.3,
                            "arrowwidth": 1.5, "arrowcolor": color, "standoff": 24, "text": ""})
    share = steps["share_over"].astype(float) if "share_over" in steps else pd.Series([math.nan] * len(steps))
    wait: list[Any] = list(steps["wait_p50"]) if "wait_p50" in steps else [None] * len(steps)
    hover = [
        f"<b>{s} · {_short(a, 60)}</b><br>{_short(r, 40)}<br>{t('col.standard', lang)}: {tr or '-'}<br>"
        f"{t('pm.share_over', lang)}: {i18n.fmt_pct(so, 1, lang)}<br>"
        f"{t('pm.wait', lang)}: {i18n.fmt_duration(w, 'working_minutes', lang)}"
        for s, a, r, tr, so, w in zip(steps["step_id"], steps["activity"], steps["role_label"],
                                      steps["time_raw"], share, wait, strict=True)
    ]
    xs = [pos[s][0] for s in steps["step_id"]]
    ys = [pos[s][1] for s in steps["step_id"]]
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers+text", text=list(steps["step_id"]), textposition="middle center",
        textfont={"color": "#1d2a36", "size": 12}, customdata=steps["step_id"], hovertext=hover,
        hoverinfo="text",
        marker={"size": 46, "symbol": "square", "line": {"width": 2, "color": "#37474f"},
                "color": share.fillna(-1), "colorscale": [[0.0, "#eceff1"], [0.001, "#e8f5e9"], *[
                    [0.001 + 0.999 * float(p), c] for p, c in OVER_SCALE[1:]]], "cmin": -0.001, "cmax": 0.5,
                "colorbar": {"title": t("pm.share_over", lang), "ticksuffix": "", "tickformat": ".0%",
                             "len": 0.8, "thickness": 12}},
    ))
    labels = [_short(a, 26) for a in steps["activity"]]
    fig.add_trace(go.Scatter(x=xs, y=[y - 0.33 for y in ys], mode="text", text=labels, hoverinfo="skip",
                             textfont={"size": 10, "color": "#455a64"}))
    for node in ("start", "end"):
        fig.add_trace(go.Scatter(x=[pos[node][0]], y=[pos[node][1]], mode="markers+text",
                                 text=["Mulai" if node == "start" and lang == "id" else
                                       "Selesai" if lang == "id" else node.capitalize()],
                                 textposition="bottom center", hoverinfo="skip",
                                 marker={"size": 22, "color": "#37474f", "symbol": "circle"}))
    fig.update_xaxes(visible=False, range=[-0.6, pos["end"][0] + 0.6])
    span = max(abs(y) for _, y in pos.values()) if pos else 1
    fig.update_yaxes(visible=False, range=[-span - 1.0, span + 1.0])
    return _base(fig, lang, 440, annotations=annotations, dragmode=False)


def _display_unit(measure: str | None, std: float | None, hi: float) -> tuple[float, str]:
    """Divisor and unit key to show durations of one step readably."""
    if measure == "elapsed_minutes" and max(std or 0, hi) >= 2 * 1440:
        return 1440.0, "unit.elapsed_days"
    if measure == "working_minutes" and max(std or 0, hi) >= 240:
        return 60.0, "unit.hours"
    return 1.0, f"unit.{measure or 'working_minutes'}"


def step_histograms(bins: pd.DataFrame, steps: pd.DataFrame, lang: str) -> go.Figure:
    """Small multiples: per step, the duration histogram (bins from SQL) and the standard as a red line."""
    if bins.empty:
        return empty(t("empty", lang), lang)
    present = [s for s in steps["step_id"] if s in set(bins["step_id"])]
    activity = dict(zip(steps["step_id"], steps["activity"], strict=True))
    cols = 2 if len(present) > 1 else 1
    rows = math.ceil(len(present) / cols)
    titles = []
    for s in present:
        part = bins[bins["step_id"] == s]
        std = None if pd.isna(part["std"].iloc[0]) else float(part["std"].iloc[0])
        _, unit_key = _display_unit(part["measure"].iloc[0], std, float(part["width"].iloc[0]) * HIST_SPAN)
        titles.append(f"<b>{s}</b> · {_short(activity.get(s), 44)} ({t(unit_key, lang)})")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        vertical_spacing=min(0.12, 0.5 / max(rows, 1)), horizontal_spacing=0.08)
    for i, step in enumerate(present):
        r, c = i // cols + 1, i % cols + 1
        part = bins[bins["step_id"] == step]
        measure = part["measure"].iloc[0]
        std = part["std"].iloc[0]
        std = None if pd.isna(std) else float(std)
        width = float(part["width"].iloc[0])
        div, unit = _display_unit(measure, std, width * HIST_SPAN)
        lo = part["b"].astype(float) * width / div
        colors = [RED if o > 0 and o >= n / 2 else GREEN if std is not None else BLUE
                  for o, n in zip(part["over"], part["cnt"], strict=True)]
        fig.add_trace(go.Bar(
            x=lo + width / div / 2, y=part["cnt"], width=width / div * 0.92, marker_color=colors,
            customdata=[step] * len(part),
            hovertemplate=f"%{{x:.1f}} {t(unit, lang)}: %{{y}}<extra>{step}</extra>",
        ), row=r, col=c)
        if std is not None:
            fig.add_vline(x=std / div, line={"color": RED, "width": 2, "dash": "dash"}, row=r, col=c)
        fig.update_yaxes(title_text=t("st.count", lang), title_font={"size": 11}, row=r, col=c)
    fig.update_annotations(font={"size": 12})
    return _base(fig, lang, 60 + 250 * rows, margin={"l": 10, "r": 10, "t": 40, "b": 10}, bargap=0.05)


def case_timeline(events: pd.DataFrame, tz: str | None, lang: str) -> go.Figure:
    """One case: waiting (grey) and each step's execution coloured by its standard, on the local clock."""
    if events.empty:
        return empty(t("empty", lang), lang)
    ev = events.copy()
    for col in ("ts_start", "ts_end"):
        ts = pd.to_datetime(ev[col], utc=True)
        ev[col] = ts.dt.tz_convert(tz).dt.tz_localize(None) if tz else ts.dt.tz_localize(None)
    ev["ts_start"] = ev["ts_start"].fillna(ev["ts_end"])
    prev_end = ev["ts_end"].shift(1)
    names = [f"{i + 1}. {s} · {_short(a, 34)}" for i, (s, a) in enumerate(zip(ev["step_id"], ev["activity"],
                                                                                strict=True))]
    status = [t("case.no_std", lang) if pd.isna(o) else t("case.over", lang) if o else t("case.within", lang)
              for o in ev["over_standard"]]
    colors = [BLUE if pd.isna(o) else RED if o else GREEN for o in ev["over_standard"]]
    fig = go.Figure()
    wait_mask = prev_end.notna() & (prev_end < ev["ts_start"])
    if wait_mask.any():
        fig.add_trace(go.Bar(
            base=prev_end[wait_mask], x=(ev["ts_start"][wait_mask] - prev_end[wait_mask]).dt.total_seconds() * 1000,
            y=[n for n, m in zip(names, wait_mask, strict=True) if m], orientation="h", marker_color=LIGHT,
            name=t("case.wait", lang), hovertemplate=t("case.wait", lang) + "<extra></extra>",
        ))
    durations = [i18n.fmt_duration(d if not pd.isna(d) else p, m if isinstance(m, str) else "working_minutes",
                                   lang)
                 for d, p, m in zip(ev["duration_std"], ev["proc_working"], ev["standard_measure"], strict=True)]
    hover = [f"{n}<br>{i18n.fmt_date(s, lang, time=True)} – {i18n.fmt_date(e, lang, time=True)}<br>"
             f"{t('col.duration', lang)}: {d}<br>{t('col.standard', lang)}: {tr or '-'}<br>{st}"
             for n, s, e, d, tr, st in zip(names, ev["ts_start"], ev["ts_end"], durations, ev["time_raw"], status,
                                            strict=True)]
    fig.add_trace(go.Bar(
        base=ev["ts_start"], x=((ev["ts_end"] - ev["ts_start"]).dt.total_seconds() * 1000).clip(lower=60_000),
        y=names, orientation="h", marker_color=colors, hovertext=hover, hoverinfo="text",
        name=t("col.step", lang),
    ))
    fig.update_xaxes(type="date", tickformat="%d/%m\n%H:%M")
    fig.update_yaxes(autorange="reversed", automargin=True, categoryorder="array", categoryarray=names)
    return _base(fig, lang, 90 + 38 * len(ev), barmode="overlay", bargap=0.3)


def case_vs_standard(events: pd.DataFrame, lang: str) -> go.Figure:
    """Each step's duration as a share of its standard (100% = the limit)."""
    ev = events[events["standard_max"].notna() & events["duration_std"].notna()]
    if ev.empty:
        return empty(t("case.no_std", lang), lang, 160)
    share = ev["duration_std"] / ev["standard_max"] * 100
    names = [f"{s} · {_short(a, 30)}" for s, a in zip(ev["step_id"], ev["activity"], strict=True)]
    text = [f"{i18n.fmt_duration(d, m, lang)} / {tr}"
            for d, m, tr in zip(ev["duration_std"], ev["standard_measure"], ev["time_raw"], strict=True)]
    fig = go.Figure(go.Bar(x=share, y=names, orientation="h", text=text, textposition="auto",
                           marker_color=[RED if v > 100 else GREEN for v in share],
                           hovertemplate="%{y}<br>%{text}<extra></extra>"))
    fig.add_vline(x=100, line={"color": RED, "width": 2, "dash": "dash"})
    fig.update_xaxes(ticksuffix="%", title=t("col.standard", lang) + " = 100%")
    fig.update_yaxes(autorange="reversed", automargin=True)
    return _base(fig, lang, 80 + 36 * len(ev))
