"""Plotly figures of the dashboard, as plain figure dicts.

Inputs are the small aggregate frames of :mod:`dashboards.queries`. The figures are built as the JSON that
plotly.js draws, not through ``plotly.graph_objects``: validating graph objects costs 50-500 ms per figure,
more than the queries behind them, and callback latency is what a supervisor feels.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dashboards import i18n
from dashboards.i18n import t

Figure = dict[str, Any]
GREEN = "#2e7d32"
AMBER = "#f9a825"
RED = "#c62828"
BLUE = "#1f5f8b"
GREY = "#9aa5b1"
LIGHT = "#dfe6ec"
GRID = "#e9edf1"
INK = "#1d2a36"
FONT = "Inter, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif"
HIST_SPAN = 24  # bins per histogram (queries.HIST_BINS)
RATE_SCALE = [[0.0, RED], [0.5, AMBER], [1.0, GREEN]]
OVER_SCALE: list[tuple[float, str]] = [(0.0, "#e8f5e9"), (0.25, "#fff3c4"), (0.5, "#ffb74d"), (1.0, RED)]


def _axis(**extra: Any) -> dict[str, Any]:
    axis = {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID, "automargin": True,
            "tickfont": {"size": 12}}
    axis.update(extra)
    return axis


def _fig(data: list[dict[str, Any]], lang: str, height: int, **layout: Any) -> Figure:
    base: dict[str, Any] = {
        "height": height, "font": {"family": FONT, "size": 13, "color": INK},
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "separators": i18n.plotly_separators(lang),
        "hoverlabel": {"font": {"family": FONT}}, "showlegend": False, "paper_bgcolor": "white",
        "plot_bgcolor": "white", "xaxis": _axis(), "yaxis": _axis(),
    }
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(value, dict):
            base[key] = _axis(**value)
        else:
            base[key] = value
    return {"data": data, "layout": base}


def _clean(values: Any) -> list[Any]:
    """JSON-safe list: NaN and NA become None, numpy scalars plain numbers."""
    out: list[Any] = []
    for v in list(values):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif hasattr(v, "item"):
            out.append(v.item())
        else:
            out.append(v)
    return out


def empty(message: str, lang: str = i18n.DEFAULT, height: int = 260) -> Figure:
    return _fig([], lang, height, xaxis={"visible": False}, yaxis={"visible": False}, annotations=[
        {"text": message, "showarrow": False, "font": {"size": 15, "color": "#5f6b76"},
         "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])


def compliance_bars(df: pd.DataFrame, id_col: str, labels: dict[str, str], lang: str) -> Figure:
    """Horizontal bars of the compliance rate per institution or SOP, one row each (labels made unique: a
    category axis draws equal labels on one row); customdata is the id."""
    if df.empty:
        return empty(t("empty", lang), lang)
    df = df.sort_values("rate", ascending=True)
    ids = [str(i) for i in df[id_col]]
    unique = i18n.unique_labels({i: labels.get(i, i) for i in ids}, 44)
    names = [unique[i] for i in ids]
    text = [f"{i18n.fmt_pct(r, 1, lang)} · {i18n.fmt_int(c, lang)} {t('ov.cases_axis', lang)}"
            for r, c in zip(df["rate"], df["cases"], strict=True)]
    bar = {"type": "bar", "orientation": "h", "x": _clean(df["rate"] * 100), "y": names, "text": text,
           "textposition": "auto", "customdata": _clean(df[id_col]), "cliponaxis": False,
           "hovertext": [labels.get(i, i) for i in ids],
           "marker": {"color": _clean(df["rate"]), "colorscale": RATE_SCALE, "cmin": 0, "cmax": 1},
           "hovertemplate": "%{hovertext}<br>%{text}<extra></extra>"}
    return _fig([bar], lang, max(180, 60 + 42 * len(df)), bargap=0.35,
                # explicit tick texts: plotly.js drops ticksuffix for array ticks; a little room keeps "100%" drawn
                xaxis={"range": [0, 104], "tickmode": "array", "tickvals": [0, 25, 50, 75, 100],
                       "ticktext": ["0%", "25%", "50%", "75%", "100%"], "title": {"text": t("ov.rate_axis", lang)}})


def trend(df: pd.DataFrame, lang: str) -> Figure:
    """Cases per month (bars, right axis) and the compliance rate (line, left axis); customdata: month."""
    if df.empty:
        return empty(t("empty", lang), lang)
    months = [i18n.fmt_month(m, lang) for m in df["month"]]
    bars = {"type": "bar", "x": months, "y": _clean(df["cases"]), "name": t("kpi.cases", lang),
            "marker": {"color": LIGHT}, "customdata": _clean(df["month"]), "yaxis": "y",
            "hovertemplate": "%{x}: %{y} " + t("ov.cases_axis", lang) + "<extra></extra>"}
    line = {"type": "scatter", "mode": "lines+markers+text", "x": months, "y": _clean(df["rate"] * 100),
            "name": t("kpi.rate", lang), "line": {"color": BLUE, "width": 3}, "marker": {"size": 9},
            "customdata": _clean(df["month"]), "text": [i18n.fmt_pct(r, 0, lang) for r in df["rate"]],
            "textposition": "top center", "cliponaxis": False, "yaxis": "y2",
            "hovertemplate": "%{x}: %{text}<extra></extra>"}
    return _fig([bars, line], lang, 320, showlegend=True, legend={"orientation": "h", "y": -0.25, "x": 0},
                yaxis={"side": "right", "title": {"text": t("ov.cases_axis", lang)}, "showgrid": False,
                       "rangemode": "tozero", "tickformat": ",d"},
                yaxis2={"side": "left", "overlaying": "y", "range": [0, 109], "ticksuffix": "%",
                        "tickmode": "linear", "tick0": 0, "dtick": 20,
                        "title": {"text": t("ov.rate_axis", lang)}})


def kind_bars(df: pd.DataFrame, lang: str) -> Figure:
    """Deviations per kind; customdata is the kind."""
    if df.empty:
        return empty(t("empty", lang), lang)
    df = df.sort_values("n", ascending=True)
    bar = {"type": "bar", "orientation": "h", "x": _clean(df["n"]),
           "y": [i18n.kind_label(k, lang) for k in df["kind"]], "customdata": _clean(df["kind"]),
           "marker": {"color": RED}, "opacity": 0.85, "text": [i18n.fmt_int(v, lang) for v in df["n"]],
           "textposition": "auto", "hovertemplate": "%{y}: %{text}<extra></extra>"}
    return _fig([bar], lang, max(180, 60 + 34 * len(df)), bargap=0.3,  # ",d": 1.000 (id), 1,000 (en)
                xaxis={"title": {"text": t("kpi.deviations", lang)}, "tickformat": ",d"})


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


def process_map(steps: pd.DataFrame, edges: pd.DataFrame, lang: str) -> Figure:
    """The SOP as a graph: nodes coloured by share over standard, edges by flow deviations."""
    if steps.empty:
        return empty(t("empty", lang), lang, 420)
    pos = _layers(steps, edges[edges["modelled"]] if "modelled" in edges else edges)
    data: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    max_n = max(1.0, float(edges["n"].max()) if not edges.empty else 1.0)
    for e in edges.to_dict("records"):
        if e["src"] not in pos or e["dst"] not in pos:
            continue
        (x0, y0), (x1, y1) = pos[e["src"]], pos[e["dst"]]
        modelled = bool(e["modelled"])
        n = float(e["n"] or 0)
        if not modelled and n == 0:
            continue
        rate = float(e.get("dev_rate", 0) or 0)
        color = (GREY if rate == 0 else AMBER if rate < 0.1 else RED) if modelled else RED
        bend = 0.0 if modelled and x1 > x0 else 0.35 + 0.1 * abs(x1 - x0)
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2 + (bend if x1 >= x0 else -bend)
        if (x0, y0) == (x1, y1):  # a self-loop (repeated step)
            xs, ys = [x0 - 0.15, x0, x0 + 0.15], [y0 + 0.3, y0 + 0.45, y0 + 0.3]
            tip = (x0 + 0.15, y0 + 0.3)
        else:
            xs, ys = [x0, xm, x1], [y0, ym, y1]
            tip = (x1 - 0.3 * (x1 - xm), y1 - 0.3 * (y1 - ym))
        edge_hover = (f"{e['src']} → {e['dst']}<br>{i18n.fmt_int(n, lang)} {t('ov.cases_axis', lang)}"
                 + (f"<br>{i18n.fmt_pct(rate, 1, lang)} {t('pm.edge_dev', lang)}" if modelled else
                    f"<br>{t('pm.off_model', lang)}"))
        data.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "text",
                     "hovertext": edge_hover, "opacity": 0.75 if modelled else 0.6,
                     "line": {"width": 1.5 + 7 * n / max_n, "color": color, "shape": "spline",
                              "dash": "solid" if modelled else "dash"}})
        annotations.append({"x": x1, "y": y1, "ax": tip[0], "ay": tip[1], "xref": "x", "yref": "y",
                            "axref": "x", "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1.3,
                            "arrowwidth": 1.5, "arrowcolor": color, "standoff": 24, "text": ""})
    share = _clean(steps["share_over"].astype(float)) if "share_over" in steps else [None] * len(steps)
    wait = _clean(steps["wait_p50"]) if "wait_p50" in steps else [None] * len(steps)
    hover = [
        f"<b>{s} · {i18n.short(a, 60)}</b><br>{i18n.short(r, 40)}<br>{t('col.standard', lang)}: {tr or '-'}<br>"
        f"{t('pm.share_over', lang)}: {i18n.fmt_pct(so, 1, lang)}<br>"
        f"{t('pm.wait', lang)}: {i18n.fmt_duration(w, 'working_minutes', lang)}"
        for s, a, r, tr, so, w in zip(steps["step_id"], steps["activity"], steps["role_label"],
                                      steps["time_raw"], share, wait, strict=True)
    ]
    xs = [pos[s][0] for s in steps["step_id"]]
    ys = [pos[s][1] for s in steps["step_id"]]
    scale = [[0.0, "#eceff1"], [0.001, "#e8f5e9"], *[[0.001 + 0.999 * p, c] for p, c in OVER_SCALE[1:]]]
    data.append({"type": "scatter", "mode": "markers+text", "x": xs, "y": ys, "text": _clean(steps["step_id"]),
                 "textposition": "middle center", "textfont": {"color": INK, "size": 12},
                 "customdata": _clean(steps["step_id"]), "hovertext": hover, "hoverinfo": "text",
                 "marker": {"size": 46, "symbol": "square", "line": {"width": 2, "color": "#37474f"},
                            "color": [-1 if v is None else v for v in share], "colorscale": scale,
                            "cmin": -0.001, "cmax": 0.5,
                            "colorbar": {"title": {"text": t("pm.share_over", lang)}, "tickformat": ".0%",
                                         "len": 0.8, "thickness": 12}}})
    data.append({"type": "scatter", "mode": "text", "x": xs, "y": [y - 0.33 for y in ys], "hoverinfo": "skip",
                 "text": [i18n.short(a, 26) for a in steps["activity"]], "textfont": {"size": 10, "color": "#455a64"}})
    for node in ("start", "end"):
        label = ("Mulai" if node == "start" else "Selesai") if lang == "id" else node.capitalize()
        data.append({"type": "scatter", "mode": "markers+text", "x": [pos[node][0]], "y": [pos[node][1]],
                     "text": [label], "textposition": "bottom center", "hoverinfo": "skip",
                     "marker": {"size": 22, "color": "#37474f", "symbol": "circle"}})
    span = max(abs(y) for _, y in pos.values()) if pos else 1
    return _fig(data, lang, 420, annotations=annotations, dragmode=False,
                xaxis={"visible": False, "range": [-0.6, pos["end"][0] + 0.6]},
                yaxis={"visible": False, "range": [-span - 0.9, span + 0.9]})


def _display_unit(measure: str | None, std: float | None, hi: float) -> tuple[float, str]:
    """Divisor and unit key to show durations of one step readably."""
    if measure == "elapsed_minutes" and max(std or 0, hi) >= 2 * 1440:
        return 1440.0, "unit.elapsed_days"
    if measure == "working_minutes" and max(std or 0, hi) >= 240:
        return 60.0, "unit.hours"
    return 1.0, f"unit.{measure or 'working_minutes'}"


def step_histograms(bins: pd.DataFrame, steps: pd.DataFrame, lang: str) -> Figure:
    """Small multiples: per step, the duration histogram (bins from SQL) and the standard as a red line."""
    if bins.empty:
        return empty(t("empty", lang), lang)
    present = [s for s in steps["step_id"] if s in set(bins["step_id"])]
    activity = dict(zip(steps["step_id"], steps["activity"], strict=True))
    cols = 2 if len(present) > 1 else 1
    rows = math.ceil(len(present) / cols)
    gap_x, gap_y = 0.08, min(0.12, 0.5 / max(rows, 1))
    width = (1 - gap_x * (cols - 1)) / cols
    height = (1 - gap_y * (rows - 1)) / rows
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, step in enumerate(present):
        r, c = i // cols, i % cols
        n = "" if i == 0 else str(i + 1)
        x0 = c * (width + gap_x)
        y1 = 1 - r * (height + gap_y)
        part = bins[bins["step_id"] == step]
        measure = part["measure"].iloc[0]
        std_raw = part["std"].iloc[0]
        std = None if pd.isna(std_raw) else float(std_raw)
        bin_w = float(part["width"].iloc[0])
        div, unit = _display_unit(measure, std, bin_w * HIST_SPAN)
        centers = (part["b"].astype(float) * bin_w + bin_w / 2) / div
        colors = [RED if o > 0 and o >= k / 2 else GREEN if std is not None else BLUE
                  for o, k in zip(part["over"], part["cnt"], strict=True)]
        data.append({"type": "bar", "x": _clean(centers), "y": _clean(part["cnt"]), "width": bin_w / div * 0.92,
                     "marker": {"color": colors}, "customdata": [step] * len(part), "xaxis": f"x{n}",
                     "yaxis": f"y{n}",
                     "hovertemplate": f"%{{x:.1f}} {t(unit, lang)}: %{{y}}<extra>{step}</extra>"})
        layout[f"xaxis{n}"] = {"domain": [x0, x0 + width], "anchor": f"y{n}"}
        layout[f"yaxis{n}"] = {"domain": [y1 - height, y1], "anchor": f"x{n}",
                               "title": {"text": t("st.count", lang), "font": {"size": 11}}}
        if std is not None:
            shapes.append({"type": "line", "xref": f"x{n}", "yref": f"y{n} domain", "x0": std / div,
                           "x1": std / div, "y0": 0, "y1": 1, "line": {"color": RED, "width": 2, "dash": "dash"}})
        annotations.append({"text": f"<b>{step}</b> · {i18n.short(activity.get(step), 44)} ({t(unit, lang)})",
                            "xref": "paper", "yref": "paper", "x": x0 + width / 2, "y": y1, "yanchor": "bottom",
                            "xanchor": "center",
                            "showarrow": False, "font": {"size": 12}})
    return _fig(data, lang, 60 + 250 * rows, margin={"l": 10, "r": 10, "t": 40, "b": 10}, bargap=0.05,
                shapes=shapes, annotations=annotations, **layout)


def _local(series: pd.Series, tz: str | None) -> pd.Series:
    ts = pd.to_datetime(series, utc=True)
    return ts.dt.tz_convert(tz).dt.tz_localize(None) if tz else ts.dt.tz_localize(None)


def _iso(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in series]


def case_timeline(events: pd.DataFrame, tz: str | None, lang: str) -> Figure:
    """One case: waiting (grey) and each step's execution coloured by its standard, on the local clock."""
    if events.empty:
        return empty(t("empty", lang), lang)
    ev = events.copy()
    ev["ts_end"] = _local(ev["ts_end"], tz)
    ev["ts_start"] = _local(ev["ts_start"], tz).fillna(ev["ts_end"])
    prev_end = ev["ts_end"].shift(1)
    names = [f"{i + 1}. {s} · {i18n.short(a, 34)}" for i, (s, a) in enumerate(zip(ev["step_id"], ev["activity"],
                                                                                strict=True))]
    # a step without a time standard is neither within nor over one (the engine may store False for it)
    over = ev["over_standard"].astype("boolean").where(ev["standard_max"].notna())
    status = [t("case.no_std", lang) if pd.isna(o) else t("case.over", lang) if o else t("case.within", lang)
              for o in over]
    colors = [BLUE if pd.isna(o) else RED if o else GREEN for o in over]
    data: list[dict[str, Any]] = []
    wait = prev_end.notna() & (prev_end < ev["ts_start"])
    if wait.any():
        data.append({"type": "bar", "orientation": "h", "base": _iso(prev_end[wait]),
                     "x": _clean((ev["ts_start"][wait] - prev_end[wait]).dt.total_seconds() * 1000),
                     "y": [nm for nm, m in zip(names, wait, strict=True) if m], "marker": {"color": LIGHT},
                     "name": t("case.wait", lang), "hovertemplate": t("case.wait", lang) + "<extra></extra>"})
    durations = [i18n.fmt_duration(d if not pd.isna(d) else p, m if isinstance(m, str) else "working_minutes", lang)
                 for d, p, m in zip(ev["duration_std"], ev["proc_working"], ev["standard_measure"], strict=True)]
    hover = [f"{nm}<br>{i18n.fmt_date(s, lang, time=True)} – {i18n.fmt_date(e, lang, time=True)}<br>"
             f"{t('col.duration', lang)}: {d}<br>{t('col.standard', lang)}: {tr or '-'}<br>{st}"
             for nm, s, e, d, tr, st in zip(names, ev["ts_start"], ev["ts_end"], durations, ev["time_raw"], status,
                                             strict=True)]
    data.append({"type": "bar", "orientation": "h", "base": _iso(ev["ts_start"]),
                 "x": _clean(((ev["ts_end"] - ev["ts_start"]).dt.total_seconds() * 1000).clip(lower=60_000)),
                 "y": names, "marker": {"color": colors}, "hovertext": hover, "hoverinfo": "text",
                 "name": t("col.step", lang)})
    return _fig(data, lang, 90 + 38 * len(ev), barmode="overlay", bargap=0.3,
                xaxis={"type": "date", "tickformat": "%d/%m\n%H:%M"},
                yaxis={"autorange": "reversed", "categoryorder": "array", "categoryarray": names})


def case_vs_standard(events: pd.DataFrame, lang: str) -> Figure:
    """Each step's duration as a share of its standard (100% = the limit)."""
    ev = events[events["standard_max"].notna() & events["duration_std"].notna()]
    if ev.empty:
        return empty(t("case.no_std", lang), lang, 160)
    share = ev["duration_std"] / ev["standard_max"] * 100
    names = [f"{i + 1}. {s} · {i18n.short(a, 30)}" for i, (s, a) in enumerate(zip(ev["step_id"], ev["activity"],
                                                                              strict=True))]
    text = [f"{i18n.fmt_duration(d, m, lang)} / {tr}"
            for d, m, tr in zip(ev["duration_std"], ev["standard_measure"], ev["time_raw"], strict=True)]
    bar = {"type": "bar", "orientation": "h", "x": _clean(share), "y": names, "text": text,
           "textposition": "auto", "marker": {"color": [RED if v > 100 else GREEN for v in share]},
           "hovertemplate": "%{y}<br>%{text}<extra></extra>"}
    return _fig([bar], lang, 80 + 36 * len(ev),
                shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": 100, "x1": 100, "y0": 0, "y1": 1,
                         "line": {"color": RED, "width": 2, "dash": "dash"}}],
                xaxis={"ticksuffix": "%", "title": {"text": t("col.standard", lang) + " = 100%"}},
                yaxis={"autorange": "reversed", "categoryorder": "array", "categoryarray": names})
