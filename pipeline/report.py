"""Periodic compliance reports per institution and period (Jinja2 HTML, WeasyPrint PDF, plotly charts).

Reports read only the current published result file (DESIGN section 5), opened read-only. A case belongs
to the period in which it was opened (the institution's local time). Counts of 1 to 4 cases are shown as
"< 5", and no rate, percentile or time is shown when it comes from fewer than 5 cases (DESIGN section 9).
File names are stable (``<institution>_<period>.<ext>``) so a rerun replaces the earlier files.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import multiprocessing
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import jinja2
from markupsafe import Markup

from pipeline import timing
from pipeline.bottlenecks import (
    DEFAULT_WORKDAY_MINUTES,
    Scope,
    explain,
    fmt_duration,
    fmt_number,
    fmt_percent,
    rank_bottlenecks,
)
from pipeline.calendars import ZONE_WORD_OF
from pipeline.errors import UserError, os_reason

log = logging.getLogger(__name__)

SUPPRESS_BELOW = 5
FORMATS = frozenset({"html", "pdf"})
LANGS = ("id", "en")
TOP_BOTTLENECKS = 5
TOP_DEVIATIONS = 5
MAX_ATTENTION = 25
TEMPLATES = Path(__file__).parent / "templates"

MONTHS = {
    "id": ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
           "November", "Desember"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
}
ROMAN = ["I", "II", "III", "IV"]

# The dashboard's wording (dashboards/i18n.py ``kind.*``), copied: the engine never imports the dashboard.
KIND_LABELS: dict[str, dict[str, str]] = {
    "missing_step": {"id": "Langkah terlewat", "en": "Missing step"},
    "unexpected_step": {"id": "Kegiatan di luar SOP", "en": "Unexpected step"},
    "wrong_order": {"id": "Urutan salah", "en": "Wrong order"},
    "repeated_step": {"id": "Langkah berulang", "en": "Repeated step"},
    "overdue_step": {"id": "Melebihi standar waktu", "en": "Overdue step"},
    "case_sla_breach": {"id": "Kasus melebihi batas waktu", "en": "Case SLA breach"},
    "wrong_role": {"id": "Pelaksana tidak sesuai", "en": "Wrong role"},
    "missing_document": {"id": "Dokumen tidak lengkap", "en": "Missing document"},
    "stalled_case": {"id": "Kasus macet", "en": "Stalled case"},
    "rule_breach": {"id": "Pelanggaran aturan", "en": "Rule breach"},
}
KIND_MEANING: dict[str, dict[str, str]] = {
    "missing_step": {"id": "langkah wajib tidak pernah dilakukan", "en": "a required step never happened"},
    "unexpected_step": {"id": "kegiatan yang tidak diatur SOP pada titik itu",
                        "en": "an activity the SOP does not allow there"},
    "wrong_order": {"id": "langkah dilakukan tidak berurutan", "en": "steps done out of order"},
    "repeated_step": {"id": "langkah diulang padahal SOP tidak memiliki perulangan",
                      "en": "a step repeated where the SOP has no loop"},
    "overdue_step": {"id": "langkah lebih lama dari standar waktunya (waktu kerja)",
                     "en": "a step took longer than its standard (working time)"},
    "case_sla_breach": {"id": "kasus, atau bagian kasus antara dua langkah, melebihi batas waktunya (mis. 1 x 24 jam)",
                        "en": "the case, or the part of it between two steps, exceeded its limit (e.g. 1 x 24 jam)"},
    "wrong_role": {"id": "langkah dilakukan oleh pelaksana lain", "en": "a step done by another role"},
    "missing_document": {"id": "kelengkapan/dokumen langkah tidak tercatat",
                         "en": "a step's required documents not recorded"},
    # the deviation's step is the last step done; its ``expected`` is the standard of the step that should follow
    "stalled_case": {"id": "kasus terbuka tanpa kegiatan sejak langkah terakhirnya (langkah yang disebut) selesai, "
                           "lebih lama dari standar waktu langkah berikutnya",
                     "en": "an open case idle since its last step (the step named) ended, for longer than the "
                           "next step's time standard"},
    "rule_breach": {"id": "siswa melanggar ketentuan dokumen aturan (kehadiran, layanan berjenjang, remedial)",
                    "en": "a student breached a rule of a rules document (attendance, escalation order, remedial)"},
}
SEVERITY = {"high": {"id": "tinggi", "en": "high"}, "medium": {"id": "sedang", "en": "medium"},
            "low": {"id": "rendah", "en": "low"}}

def standard_text(raw: str | None, lang: str) -> str:
    """A stored time standard in the report's language (the engine's bilingual default translated), "–" for none."""
    return timing.standard_text(raw, lang) or "–"


# ---------------------------------------------------------------------------------------------------
# Periods
# ---------------------------------------------------------------------------------------------------

_PERIOD_RE = re.compile(r"^(?P<y>\d{4})(?:-(?:(?P<m>\d{2})|[Qq](?P<q>[1-4])|[Ss](?P<s>[12])))?$")


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """A reporting period: a month, quarter, semester (half year) or year; ``end`` is exclusive."""

    key: str
    kind: str  # month | quarter | semester | year
    start: dt.date
    end: dt.date

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "semester": 6, "year": 12}[self.kind]

    def previous(self) -> Period:
        start = _add_months(self.start, -self.months)
        return parse_period(_key(self.kind, start))

    def title(self, lang: str) -> str:
        names = MONTHS[lang]
        y = self.start.year
        if self.kind == "month":
            return f"{names[self.start.month - 1]} {y}"
        span = f"{names[self.start.month - 1]}–{names[_add_months(self.end, -1).month - 1]}"
        if self.kind == "quarter":
            q = ROMAN[(self.start.month - 1) // 3]
            return f"Triwulan {q} {y} ({span})" if lang == "id" else f"Quarter {q} {y} ({span})"
        if self.kind == "semester":
            s = 1 if self.start.month == 1 else 2
            return f"Semester {s} {y} ({span})" if lang == "id" else f"Half-year {s} {y} ({span})"
        return f"Tahun {y}" if lang == "id" else f"Year {y}"


def _key(kind: str, start: dt.date) -> str:
    if kind == "month":
        return f"{start.year}-{start.month:02d}"
    if kind == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if kind == "semester":
        return f"{start.year}-S{1 if start.month == 1 else 2}"
    return str(start.year)


def parse_period(text: str) -> Period:
    """``2026-10``, ``2026-Q3``, ``2026-S1`` or ``2026``; anything else is a :class:`UserError`."""
    m = _PERIOD_RE.match(text.strip())
    month = int(m["m"]) if m and m["m"] else None
    if not m or (month is not None and not 1 <= month <= 12):
        raise UserError(f"--period {text!r} is not a period: write a month (2026-10), a quarter (2026-Q3), "
                        "a semester (2026-S1) or a year (2026)",
                        pesan=f"--period {text!r} bukan periode: tulis bulan (2026-10), triwulan (2026-Q3), "
                              "semester (2026-S1) atau tahun (2026)")
    year = int(m["y"])
    if month is not None:
        kind, start, n = "month", dt.date(year, month, 1), 1
    elif m["q"]:
        kind, start, n = "quarter", dt.date(year, 3 * int(m["q"]) - 2, 1), 3
    elif m["s"]:
        kind, start, n = "semester", dt.date(year, 1 if m["s"] == "1" else 7, 1), 6
    else:
        kind, start, n = "year", dt.date(year, 1, 1), 12
    return Period(_key(kind, start), kind, start, _add_months(start, n))


# ---------------------------------------------------------------------------------------------------
# Cells: numbers with their small-count suppression
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A number as shown: ``value`` is what tests compare with SQL; None when suppressed or empty."""

    text: str
    value: float | None
    suppressed: bool = False

    @property
    def data(self) -> str:
        if self.suppressed:
            return "suppressed"
        return "" if self.value is None else repr(float(self.value))


def count_cell(n: int | None, lang: str) -> Cell:
    n = int(n or 0)
    if 0 < n < SUPPRESS_BELOW:
        return Cell("< 5", None, True)
    return Cell(fmt_number(n, lang), n)


def rate_cell(num: int | None, den: int | None, lang: str, digits: int = 1) -> Cell:
    den = int(den or 0)
    if den == 0:
        return Cell("–", None)
    if den < SUPPRESS_BELOW:
        return Cell("n < 5", None, True)
    share = int(num or 0) / den
    return Cell(fmt_percent(share, lang, digits), share)


def few_cell(lang: str) -> Cell:
    """A share whose count is 1-4: the report shows that count as "< 5" beside it (deviations by step), so the
    share of a known number of cases may not tell it either."""
    return Cell("< 5 kasus" if lang == "id" else "< 5 cases", None, True)


def _n_lost(ranked: Mapping[str, Any]) -> int:
    """At least how many cases a ranked step's time lost comes from, for its suppression: a sum of one case's
    wait (a first step waits only when sent back) is that case's time. Waits and time over the standard are
    added: the larger count of the parts that add something."""
    parts = [int(n or 0) for total, n in ((ranked["wait_total"], ranked["n_wait"]),
                                          (ranked["excess_total"], ranked["n_over_cases"])) if total]
    return max(parts, default=int(ranked["n_cases"] or 0))


def _n_wait(step: Mapping[str, Any] | None, ranked: Mapping[str, Any]) -> int:
    """How many a ranked step's waiting percentiles come from: the cases with a wait in its step row, else the
    ranking's own count of waits (pipeline.bottlenecks, ``n_wait``)."""
    return int((step if step is not None else ranked)["n_wait"] or 0)


def duration_cell(minutes: float | None, n: int | None, lang: str, day: float) -> Cell:
    if n is not None and 0 < n < SUPPRESS_BELOW:
        return Cell("n < 5", None, True)
    if minutes is None:
        return Cell("–", None)
    return Cell(fmt_duration(minutes, lang, day, short=True), minutes)


# ---------------------------------------------------------------------------------------------------
# Queries (all against the published file)
# ---------------------------------------------------------------------------------------------------

_PERIOD_CASES = """
period_cases AS (
    SELECT r.*, timezone(coalesce(i.timezone, 'UTC'), r.opened_at) AS opened_local
    FROM case_results r LEFT JOIN institutions i ON i.institution_id = r.institution_id
    WHERE r.institution_id = $inst
      AND CASE WHEN r.sop_id IN (SELECT sop_id FROM sops WHERE kind = 'rules')
               -- a student under a rules document: every period with input (attendance, scores, ...)
               THEN timezone(coalesce(i.timezone, 'UTC'), r.opened_at) < $end
                    AND timezone(coalesce(i.timezone, 'UTC'), coalesce(r.closed_at, r.opened_at)) >= $start
               ELSE timezone(coalesce(i.timezone, 'UTC'), r.opened_at) >= $start
                    AND timezone(coalesce(i.timezone, 'UTC'), r.opened_at) < $end END),
stalled AS (
    SELECT DISTINCT sop_id, case_id FROM deviations
    WHERE institution_id = $inst AND kind = 'stalled_case')"""

SUMMARY_SQL = f"""
WITH {_PERIOD_CASES}
SELECT count(*) AS n_cases,
       count(*) FILTER (WHERE compliant) AS n_compliant,
       count(*) FILTER (WHERE status = 'open') AS n_open,
       count(*) FILTER (WHERE s.case_id IS NOT NULL) AS n_stalled,
       coalesce(sum(n_deviations), 0) AS n_deviations
FROM period_cases c LEFT JOIN stalled s USING (sop_id, case_id)
"""

SOP_SQL = f"""
WITH {_PERIOD_CASES}
SELECT s.sop_id, s.number, s.title, s.kind, count(c.case_id) AS n_cases,
       count(c.case_id) FILTER (WHERE c.compliant) AS n_compliant,
       count(c.case_id) FILTER (WHERE c.status = 'open') AS n_open
FROM sops s LEFT JOIN period_cases c ON c.sop_id = s.sop_id
WHERE s.institution_id = $inst
GROUP BY s.sop_id, s.number, s.title, s.kind
ORDER BY s.sop_id
"""

DEVIATION_SQL = f"""
WITH {_PERIOD_CASES}
SELECT d.sop_id, d.kind, d.step_id, any_value(d.activity) AS activity, any_value(st.no) AS step_no,
       -- a stalled case's expected is the next step's standard: the same for every case stalled after this step
       any_value(d.expected) AS expected, count(DISTINCT d.case_id) AS n_cases, count(*) AS n
FROM deviations d JOIN period_cases c ON c.sop_id = d.sop_id AND c.case_id = d.case_id
     LEFT JOIN sop_steps st ON st.sop_id = d.sop_id AND st.step_id = d.step_id
GROUP BY d.sop_id, d.kind, d.step_id
QUALIFY row_number() OVER (PARTITION BY d.sop_id ORDER BY count(DISTINCT d.case_id) DESC, d.kind, d.step_id)
        <= {TOP_DEVIATIONS}
ORDER BY d.sop_id, n_cases DESC, d.kind, d.step_id
"""

STEP_SQL = f"""
WITH {_PERIOD_CASES},
ev AS (SELECT t.* FROM event_timing t JOIN period_cases c
         ON c.sop_id = t.sop_id AND c.case_id = t.case_id)
SELECT st.sop_id, st.step_id, st.ord, st.no, st.activity, st.role_label, st.time_raw,
       count(DISTINCT ev.case_id) AS n_cases,
       -- the cases each percentile is computed from: a first step has no previous event to wait for
       count(DISTINCT ev.case_id) FILTER (WHERE ev.wait_working IS NOT NULL) AS n_wait,
       count(DISTINCT ev.case_id) FILTER (WHERE ev.proc_working IS NOT NULL) AS n_proc,
       quantile_cont(ev.wait_working, 0.5) AS wait_p50, quantile_cont(ev.wait_working, 0.9) AS wait_p90,
       quantile_cont(ev.proc_working, 0.5) AS proc_p50, quantile_cont(ev.proc_working, 0.9) AS proc_p90,
       count(ev.over_standard) AS n_std, count(*) FILTER (WHERE ev.over_standard) AS n_over
FROM sop_steps st JOIN sops s ON s.sop_id = st.sop_id
     LEFT JOIN ev ON ev.sop_id = st.sop_id AND ev.step_id = st.step_id
WHERE s.institution_id = $inst
GROUP BY st.sop_id, st.step_id, st.ord, st.no, st.activity, st.role_label, st.time_raw
ORDER BY st.sop_id, st.ord
"""

# Cases with a high-severity deviation or stalled. A case is listed only when its SOP has at least 5 cases in the
# period and at least 5 of them share its status: the report shows smaller SOPs and open counts as "< 5", and a
# list of their cases (SOP, opening date, status, deviations) would undo that. Nor is a list of 1-4 such cases
# shown (institution_report).
_ATTENTION = f"""
WITH {_PERIOD_CASES},
grouped AS (
    SELECT c.*, count(*) OVER (PARTITION BY c.sop_id) AS n_sop,
           count(*) OVER (PARTITION BY c.sop_id, c.status) AS n_status
    FROM period_cases c),
dv AS (
    SELECT d.sop_id, d.case_id, list(DISTINCT d.kind ORDER BY d.kind) AS kinds,
           max(CASE d.severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) AS worst,
           bool_or(d.kind = 'stalled_case') AS stalled
    FROM deviations d JOIN period_cases c ON c.sop_id = d.sop_id AND c.case_id = d.case_id
    GROUP BY ALL),
flagged AS (
    SELECT c.case_id, c.sop_id, c.opened_local, c.status, c.n_deviations, dv.kinds, dv.worst, dv.stalled,
           c.n_sop >= {SUPPRESS_BELOW} AND c.n_status >= {SUPPRESS_BELOW} AS listable
    FROM grouped c JOIN dv USING (sop_id, case_id)
    WHERE dv.worst = 3 OR dv.stalled)"""

ATTENTION_SQL = f"""{_ATTENTION}
SELECT case_id, sop_id, opened_local::DATE AS opened, status, n_deviations, kinds, worst, stalled
FROM flagged WHERE listable
ORDER BY stalled DESC, worst DESC, n_deviations DESC, opened_local, case_id
LIMIT {MAX_ATTENTION}
"""

ATTENTION_COUNT_SQL = f"""{_ATTENTION}
SELECT count(*) AS n_total, count(*) FILTER (WHERE listable) AS n_listable,
       count(*) FILTER (WHERE NOT listable) AS n_left_out
FROM flagged
"""

MONTHLY_SQL = f"""
WITH {_PERIOD_CASES}
SELECT strftime(opened_local, '%Y-%m') AS month, count(*) AS n, count(*) FILTER (WHERE compliant) AS k
FROM period_cases GROUP BY month ORDER BY month
"""


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    # pass only the parameters the statement names (DuckDB refuses extra named parameters)
    cur = conn.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _params(run_id: str, inst: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    return {"run_id": run_id, "inst": inst, "start": dt.datetime.combine(start, dt.time()),
            "end": dt.datetime.combine(end, dt.time())}


def _run_id(conn: duckdb.DuckDBPyConnection) -> str:
    row = conn.execute("SELECT run_id FROM runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT any_value(run_id) FROM case_results").fetchone()
    if row is None or row[0] is None:
        raise UserError("the published results hold no successful run; run 'patuh run' first",
                        pesan="hasil terbitan tidak memuat pemeriksaan (run) yang berhasil; jalankan dulu 'patuh run'")
    return str(row[0])


# ---------------------------------------------------------------------------------------------------
# Charts (plotly + kaleido; kaleido 1.x drives a Chrome: Debian's /usr/bin/chromium is found on PATH,
# or set BROWSER_PATH). Without a browser the report is written without charts and says so.
# ---------------------------------------------------------------------------------------------------


class _Charts:
    def __init__(self) -> None:
        self.available = True
        self._started = False

    def start(self) -> None:
        try:
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)
            self._started = True
        except Exception as exc:  # no Chrome, or kaleido cannot start it
            log.warning("charts disabled: kaleido cannot start a browser (%s)", exc)
            self.available = False

    def stop(self) -> None:
        if self._started:
            import kaleido

            kaleido.stop_sync_server(silence_warnings=True)
            self._started = False

    def svg(self, fig: Any, width: int, height: int) -> str | None:
        """The figure as an SVG data URI, or None when charts are unavailable."""
        if self.available and not self._started:
            self.start()  # lazily: a report without charts never starts a browser
        if not self.available:
            return None
        try:
            import kaleido

            data = kaleido.calc_fig_sync(fig, opts={"format": "svg", "width": width, "height": height})
        except Exception as exc:
            log.warning("charts disabled: %s", exc)
            self.available = False
            return None
        return "data:image/svg+xml;base64," + base64.b64encode(bytes(data)).decode("ascii")


@contextmanager
def _chart_server() -> Iterator[_Charts]:
    charts = _Charts()
    try:
        yield charts
    finally:
        charts.stop()


_FONT = {"family": "DejaVu Sans, Liberation Sans, Arial, sans-serif", "size": 11, "color": "#222"}


def _trend_figure(months: list[dict[str, Any]], lang: str) -> Any:
    import plotly.graph_objects as go

    x = [f"{MONTHS[lang][int(m['month'][5:]) - 1][:3]} {m['month'][2:4]}" for m in months]
    rate = [100.0 * m["k"] / m["n"] if m["n"] >= SUPPRESS_BELOW else None for m in months]
    fig = go.Figure(go.Scatter(x=x, y=rate, mode="lines+markers+text", line={"color": "#1f4e79", "width": 2},
                               text=[f"{fmt_number(r, lang)}%" if r is not None else "" for r in rate],
                               textposition="top center", connectgaps=False))
    fig.update_layout(
        template="plotly_white", font=_FONT, margin={"l": 50, "r": 20, "t": 30, "b": 40}, showlegend=False,
        title={"text": "Tingkat kepatuhan per bulan (%)" if lang == "id" else "Compliance rate by month (%)",
               "font": {"size": 12}, "x": 0.01},
        yaxis={"range": [0, 108], "ticksuffix": "%"}, xaxis={"type": "category"})
    return fig


def _shown_median(step: Mapping[str, Any], measure: str) -> float | None:
    """A step's median waiting (``wait``) or processing (``proc``) time, or None when it comes from fewer than 5
    cases (as the step table suppresses it) or from none."""
    if int(step[f"n_{measure}"] or 0) < SUPPRESS_BELOW:
        return None
    value = step[f"{measure}_p50"]
    return None if value is None else float(value)


def _chart_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps the step chart draws: those with a median shown in the step table."""
    return [s for s in steps if _shown_median(s, "wait") is not None or _shown_median(s, "proc") is not None]


def _step_figure(steps: list[dict[str, Any]], lang: str, day: float) -> Any:
    import plotly.graph_objects as go

    shown = _chart_steps(steps)
    labels = [f"{str(s['no'] or s['step_id']).rstrip('.')}" for s in shown]
    hours = 60.0 if day < 24 * 60 else day
    # no bar for a median from fewer than 5 cases (None: plotly draws nothing there)
    wait = [None if (w := _shown_median(s, "wait")) is None else w / hours for s in shown]
    proc = [None if (m := _shown_median(s, "proc")) is None else m / hours for s in shown]
    fig = go.Figure([
        go.Bar(y=labels, x=wait, orientation="h", name="median waktu tunggu" if lang == "id" else "median wait",
               marker_color="#c0504d"),
        go.Bar(y=labels, x=proc, orientation="h", name="median waktu proses" if lang == "id" else
               "median processing", marker_color="#4f81bd"),
    ])
    fig.update_layout(
        barmode="stack", template="plotly_white", font=_FONT, margin={"l": 60, "r": 20, "t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.25, "x": 0},
        xaxis={"title": {"text": "jam kerja" if lang == "id" else "working hours"}},
        yaxis={"title": {"text": "langkah" if lang == "id" else "step"}, "autorange": "reversed",
               "type": "category"})
    return fig


# ---------------------------------------------------------------------------------------------------
# Building one report
# ---------------------------------------------------------------------------------------------------


def _place(region: str | None, name: str) -> str:
    if region:
        return region.split(",")[0].strip()
    return name


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def sop_labels(sops: Sequence[Mapping[str, Any]], width: int = 40) -> dict[str, str]:
    """A short label per SOP that tells the institution's SOPs apart: ``number · short title``, or the short
    title when the SOP has no number; the whole title where the short ones collide (two SOPs of SMP N 2 share
    the number BK001/Jan/2020, some titles share their first words)."""
    def label(sop: Mapping[str, Any], short: bool) -> str:
        title = str(sop["title"] or "")
        parts = [str(sop["number"] or ""), _short(title, width) if short else title]
        return " · ".join(p for p in parts if p) or str(sop["sop_id"])

    labels = {str(s["sop_id"]): label(s, True) for s in sops}
    taken = list(labels.values())
    for sop in sops:
        if taken.count(labels[str(sop["sop_id"])]) > 1:
            labels[str(sop["sop_id"])] = label(sop, False)
    return labels


def _heading(number: str | None, title: str | None) -> str:
    """How the report names an SOP in full: ``number — title``, or the title alone (never the raw id)."""
    return " — ".join(p for p in (number, title) if p) or "–"


def _deviation_step(d: Mapping[str, Any], lang: str) -> str:
    """The step column of a deviation row. A stalled case's step is the last one done, and its standard the next
    step's: the row says so, with the standard in the report's language."""
    activity = str(d["activity"] or "")
    if d["kind"] != "stalled_case" or not d["step_id"]:
        return activity
    no = str(d["step_no"] or d["step_id"]).rstrip(".")
    std = standard_text(d["expected"], lang)
    if lang == "id":
        return f"sejak langkah {no} “{activity}” selesai; melebihi standar langkah berikutnya: {std}"
    return f"since step {no} “{activity}” ended; over the next step's standard: {std}"


def _bottleneck_sentence(b: Mapping[str, Any], step: Mapping[str, Any] | None, lang: str) -> str:
    """The ranked step's sentence, without a median that the step table suppresses (fewer than 5 cases)."""
    few_over = 0 < (b.get("n_over_cases") or 0) < SUPPRESS_BELOW  # as the share column: not from 1-4 cases
    if step is None and not few_over:
        return str(b["explanation_id" if lang == "id" else "explanation_en"])
    row = {**b, **({"share_cases_over": None} if few_over else {})}
    if step is not None:
        row.update(wait_p50=_shown_median(step, "wait"), proc_p50=_shown_median(step, "proc"))
    return explain(row, lang)


def institution_report(conn: duckdb.DuckDBPyConnection, institution_id: str, period: Period, lang: str,
                       *, run_id: str | None = None, charts: _Charts | None = None,
                       now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything one report shows, as plain values and :class:`Cell` numbers (the template's context)."""
    run_id = run_id or _run_id(conn)
    inst_row = conn.execute("SELECT name, kind, region, timezone FROM institutions WHERE institution_id = ?",
                            [institution_id]).fetchone()
    if inst_row is None:
        known = [r[0] for r in conn.execute("SELECT institution_id FROM institutions ORDER BY 1").fetchall()]
        raise UserError(f"--institution {institution_id!r} is not in the published results; "
                        f"known institutions: {', '.join(known) or '(none)'}",
                        pesan=f"--institution {institution_id!r} tidak ada di hasil terbitan; "
                              f"lembaga yang dikenal: {', '.join(known) or '(tidak ada)'}")
    name, _kind, region, tz = inst_row
    cal = conn.execute("SELECT workday_minutes FROM bottleneck_calendars WHERE run_id = ? AND institution_id = ?",
                       [run_id, institution_id]).fetchone()
    day = float(cal[0]) if cal else DEFAULT_WORKDAY_MINUTES
    params = _params(run_id, institution_id, period.start, period.end)
    prev = period.previous()
    summary = _rows(conn, SUMMARY_SQL, params)[0]
    prev_summary = _rows(conn, SUMMARY_SQL, _params(run_id, institution_id, prev.start, prev.end))[0]

    rate = rate_cell(summary["n_compliant"], summary["n_cases"], lang)
    prev_rate = rate_cell(prev_summary["n_compliant"], prev_summary["n_cases"], lang)
    if rate.value is not None and prev_rate.value is not None:
        delta = 100.0 * (rate.value - prev_rate.value)
        sign = "+" if delta > 0.05 else ("−" if delta < -0.05 else "±")
        trend = Cell(f"{sign}{fmt_number(abs(delta), lang, 1)} " + ("poin" if lang == "id" else "points"), delta)
    else:
        trend = Cell("–", None, rate.suppressed or prev_rate.suppressed)

    sops = _rows(conn, SOP_SQL, params)
    devs = _rows(conn, DEVIATION_SQL, params)
    steps = _rows(conn, STEP_SQL, params)
    scope = Scope(run_id, institution_id, params["start"], params["end"])
    ranked = rank_bottlenecks(conn, scope, top=TOP_BOTTLENECKS, min_cases=SUPPRESS_BELOW)
    attention = _rows(conn, ATTENTION_SQL, params)
    attention_count = _rows(conn, ATTENTION_COUNT_SQL, params)[0]
    labels = sop_labels(sops)
    year_back = _params(run_id, institution_id, _add_months(period.end, -12), period.end)
    monthly = _rows(conn, MONTHLY_SQL, year_back)

    sop_blocks = []
    for sop in sops:
        sop_steps = [s for s in steps if s["sop_id"] == sop["sop_id"]]
        step_by_id = {s["step_id"]: s for s in sop_steps}
        block = {
            "sop_id": sop["sop_id"], "number": sop["number"], "title": sop["title"], "kind": sop["kind"],
            "heading": _heading(sop["number"], sop["title"]),
            # fewer than 5 cases: every time and rate is suppressed, so the section shrinks to its deviations
            "small": sop["n_cases"] < SUPPRESS_BELOW, "empty": sop["n_cases"] == 0,
            "n_cases": count_cell(sop["n_cases"], lang),
            "n_open": count_cell(sop["n_open"], lang),
            "rate": rate_cell(sop["n_compliant"], sop["n_cases"], lang),
            "deviations": [
                {"kind": KIND_LABELS.get(d["kind"], {}).get(lang, d["kind"]), "kind_key": d["kind"],
                 "step": (d["step_id"] or ""), "activity": _deviation_step(d, lang),
                 "n_cases": count_cell(d["n_cases"], lang)}
                for d in devs if d["sop_id"] == sop["sop_id"]],
            "bottlenecks": [
                {"rank": b["rank"], "step": str(b["step_no"] or b["step_id"]).rstrip("."),
                 "step_id": b["step_id"], "activity": b["activity"] or "",
                 "n_cases": count_cell(b["n_cases"], lang),
                 # the waiting percentiles as the step table shows them: suppressed on the cases that waited
                 "wait_p50": duration_cell(b["wait_p50"], _n_wait(step_by_id.get(b["step_id"]), b), lang, day),
                 "wait_p90": duration_cell(b["wait_p90"], _n_wait(step_by_id.get(b["step_id"]), b), lang, day),
                 "share_over": (few_cell(lang) if 0 < (b["n_over_cases"] or 0) < SUPPRESS_BELOW
                                else Cell(fmt_percent(b["share_cases_over"], lang), b["share_cases_over"])
                                if b["share_cases_over"] is not None else Cell("–", None)),
                 "score": duration_cell(b["score"], _n_lost(b), lang, day),
                 "sentence": _bottleneck_sentence(b, step_by_id.get(b["step_id"]), lang)}
                for b in ranked if b["sop_id"] == sop["sop_id"]],
            "steps": [
                {"no": str(s["no"] or s["step_id"]).rstrip("."), "step_id": s["step_id"],
                 "activity": s["activity"], "role": s["role_label"] or "",
                 "standard": standard_text(s["time_raw"], lang),
                 "n_cases": count_cell(s["n_cases"], lang),
                 # each percentile on the cases it comes from; "–" when there is none (a first step's wait)
                 "wait_p50": duration_cell(s["wait_p50"], s["n_wait"], lang, day),
                 "wait_p90": duration_cell(s["wait_p90"], s["n_wait"], lang, day),
                 "proc_p50": duration_cell(s["proc_p50"], s["n_proc"], lang, day),
                 "proc_p90": duration_cell(s["proc_p90"], s["n_proc"], lang, day),
                 "share_over": (few_cell(lang) if 0 < s["n_over"] < SUPPRESS_BELOW
                                else rate_cell(s["n_over"], s["n_std"], lang, 0) if s["n_std"] else Cell("–", None))}
                for s in sop_steps],
            "chart": None,
        }
        if charts is not None and len(_chart_steps(sop_steps)) >= 2:
            block["chart"] = charts.svg(_step_figure(sop_steps, lang, day), 700, 60 + 28 * len(sop_steps))
        sop_blocks.append(block)

    trend_chart = None
    if charts is not None and sum(m["n"] >= SUPPRESS_BELOW for m in monthly) >= 2:
        trend_chart = charts.svg(_trend_figure(monthly, lang), 700, 260)

    n_attention = int(attention_count["n_total"] or 0)
    n_listable = int(attention_count["n_listable"] or 0)
    if n_listable < SUPPRESS_BELOW:  # a list of 1-4 rows would itself be a count of 1-4 cases
        attention = []
    attention_cell = count_cell(n_attention, lang)
    if attention and n_listable == len(attention) and 0 < n_attention - n_listable < SUPPRESS_BELOW:
        # a complete list under an exact total would tell how many cases of small groups were left out
        attention_cell = Cell(f"{fmt_number(n_listable, lang)} + < 5", None, True)
    now = now or dt.datetime.now(dt.UTC)
    local_now = now.astimezone(ZoneInfo(tz))
    generated = (f"{local_now.day} {MONTHS[lang][local_now.month - 1]} {local_now.year}, "
                 f"{local_now:%H:%M} {ZONE_WORD_OF.get(tz, tz)}")
    procedures = [b for b in sop_blocks if b["kind"] == "procedure"]
    title = "Laporan Kepatuhan SOP" if lang == "id" else "SOP Compliance Report"
    footer = f"{title} · {name} · {period.title(lang)}"
    return {
        "footer_css": Markup('@page { @bottom-left { content: "%s"; } }') % _css_string(footer),
        "lang": lang, "run_id": run_id, "generated": generated, "institution_id": institution_id,
        "run_notes": _run_notes(conn, run_id, institution_id, period, tz, lang),
        "institution": name, "region": region or "", "place": _place(region, name),
        "period": period.key, "period_title": period.title(lang), "prev_title": prev.title(lang),
        "workday": fmt_duration(day, lang, 10**9),
        "summary": {
            "n_cases": count_cell(summary["n_cases"], lang),
            "n_compliant": count_cell(summary["n_compliant"], lang),
            "compliance_rate": rate, "prev_rate": prev_rate, "trend": trend,
            "prev_n_cases": count_cell(prev_summary["n_cases"], lang),
            "n_open": count_cell(summary["n_open"], lang),
            "n_stalled": count_cell(summary["n_stalled"], lang),
            "n_deviations": count_cell(summary["n_deviations"], lang),
        },
        "sops": procedures or sop_blocks,
        "trend_chart": trend_chart, "charts_available": charts is None or charts.available,
        "attention": [
            {"case_id": a["case_id"], "sop_id": a["sop_id"], "sop": labels.get(a["sop_id"], a["sop_id"]),
             "opened": _date(a["opened"], lang),
             "status": ("terbuka" if lang == "id" else "open") if a["status"] == "open"
             else ("selesai" if lang == "id" else "closed"),
             "n_deviations": a["n_deviations"],
             "kinds": ", ".join(KIND_LABELS.get(k, {}).get(lang, k) for k in a["kinds"]),
             "worst": SEVERITY[{3: "high", 2: "medium", 1: "low"}[a["worst"]]][lang]}
            for a in attention],
        # the total is an aggregate (suppressed below 5); how many were left out or not listed is not printed
        "n_attention": attention_cell,
        "attention_truncated": n_listable > len(attention) > 0,
        "attention_left_out": int(attention_count["n_left_out"] or 0) > 0 or 0 < n_listable < SUPPRESS_BELOW,
        "kinds": [{"key": k, "label": KIND_LABELS[k][lang], "meaning": KIND_MEANING[k][lang]}
                  for k in KIND_LABELS],
    }


def _css_string(text: str) -> Markup:
    """Text for a double-quoted CSS string (inside a <style> element, where entities are not decoded)."""
    cleaned = "".join(f"\\{ord(ch):x} " if ch in '"\\<>&' or ord(ch) < 32 else ch for ch in text)
    return Markup(cleaned)


def _run_notes(conn: duckdb.DuckDBPyConnection, run_id: str, institution_id: str, period: Period, tz: str,
               lang: str) -> dict[str, str]:
    """What the cover must say about when the cases were judged: note kind (held, period) -> text.

    An institution the run left out (its SOP files had errors, run.py) keeps the results of the last run that
    checked it: the cover says so, and judges the period against that run's ``as_of``. A period not over at
    that time, or not begun, says so instead of reading as a finished month."""
    row = conn.execute("SELECT params FROM runs WHERE run_id = ?", [run_id]).fetchone()
    params = json.loads(row[0]) if row is not None and row[0] else {}
    notes: dict[str, str] = {}
    as_of_text = params.get("as_of")
    held = (params.get("held") or {}).get(institution_id)
    if held is not None:
        files, as_of_text = ", ".join(held["files"]), held.get("checked_as_of")
        checked = _date(dt.datetime.fromisoformat(as_of_text).astimezone(ZoneInfo(tz)).date(), lang) \
            if as_of_text else None
        notes["held"] = (
            f"Instansi ini tidak diperiksa pada analisis {run_id} karena berkas SOP-nya berisi galat ({files}); "
            + (f"angka di laporan ini dari analisis sebelumnya (data sampai {checked})." if checked
               else "belum ada analisis sebelumnya.")
            if lang == "id" else
            f"This institution was not checked in analysis run {run_id} because its SOP files have errors "
            f"({files}); " + (f"the figures in this report come from an earlier analysis (data up to {checked})."
                              if checked else "it has not been checked before."))
    if not as_of_text:
        return notes
    as_of = dt.datetime.fromisoformat(str(as_of_text)).astimezone(ZoneInfo(tz))
    day, until = as_of.date(), _date(as_of.date(), lang)
    if period.start > day:
        notes["period"] = (
            f"Periode ini belum dimulai saat analisis (data sampai {until}): belum ada kasus yang dapat dilaporkan."
            if lang == "id" else
            f"This period had not begun at the analysis (data up to {until}): no cases can be reported yet.")
    elif period.end > day:
        notes["period"] = (
            f"Periode ini belum selesai: data sampai {until}; angka dapat berubah sampai periode berakhir."
            if lang == "id" else
            f"This period is not over: data up to {until}; the figures may change until it ends.")
    return notes


def _date(day: dt.date, lang: str) -> str:
    return f"{day.day} {MONTHS[lang][day.month - 1][:3]} {day.year}"


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def _write_pdf(html: str, path: Path) -> None:
    import weasyprint

    tmp = path.with_name(f".{path.name}.tmp")
    weasyprint.HTML(string=html, base_url=str(TEMPLATES)).write_pdf(tmp)
    tmp.replace(path)


class _PdfWriter:
    """Writes the PDFs: in a worker process when there are several, so weasyprint lays out one report (seconds
    for a long one, on one core) while this process queries and draws the charts of the next."""

    def __init__(self, parallel: bool) -> None:
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        # spawn re-imports the main module: from its spec (python -m), its file, or not at all (a REPL)
        self._parallel = parallel and (getattr(main, "__spec__", None) is not None or main_file is None
                                       or Path(main_file).is_file())
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future[None], str, Path]] = []

    def write(self, html: str, path: Path) -> None:
        if not self._parallel:
            _write_pdf(html, path)
            return
        if self._pool is None:
            # spawn: a forked child would inherit DuckDB's and kaleido's threads mid-state
            self._pool = ProcessPoolExecutor(max(1, (os.cpu_count() or 2) - 1),
                                             mp_context=multiprocessing.get_context("spawn"))
        try:
            self._pending.append((self._pool.submit(_write_pdf, html, path), html, path))
        except BrokenProcessPool:  # the worker could not start: the rest is written here
            self._parallel = False
            _write_pdf(html, path)

    def finish(self) -> None:
        """Wait for every PDF (the first failure is raised) and stop the worker; a worker that could not start
        costs only time: its PDFs are written here."""
        try:
            for future, html, path in self._pending:
                try:
                    future.result()
                except BrokenProcessPool:
                    _write_pdf(html, path)
        finally:
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None


def _write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the report ({exc.strerror}); choose another folder with --out",
                        pesan=f"{path}: laporan tidak dapat ditulis ({os_reason(exc)}); pilih folder lain dengan "
                              "--out") \
            from None


def _parse_formats(formats: set[str] | Sequence[str]) -> set[str]:
    chosen = {f.strip().lower() for f in formats if f.strip()}
    bad = chosen - FORMATS
    if bad or not chosen:
        raise UserError(f"--format {','.join(sorted(formats))!r}: choose html, pdf or html,pdf",
                        pesan=f"--format {','.join(sorted(formats))!r}: pilih html, pdf atau html,pdf")
    return chosen


def write_reports(published_db: Path, *, period: str, institutions: list[str] | None, formats: set[str],
                  out_dir: Path, lang: str = "id") -> list[Path]:
    """Write each institution's report for ``period`` (None: every institution, plus ``index.html``).

    Files are ``<out_dir>/<institution>_<period>.<html|pdf>``; a rerun replaces them.
    """
    chosen_formats = _parse_formats(formats)
    if lang not in LANGS:
        raise UserError(f"--lang {lang!r}: choose id (Bahasa Indonesia) or en (English)",
                        pesan=f"--lang {lang!r}: pilih id (Bahasa Indonesia) atau en (bahasa Inggris)")
    parsed = parse_period(period)
    from pipeline.db import connect

    conn = connect(published_db, read_only=True)
    written: list[Path] = []
    try:
        run_id = _run_id(conn)
        if institutions is None:
            ids = [r[0] for r in conn.execute(
                "SELECT institution_id FROM institutions WHERE institution_id IN "
                "(SELECT institution_id FROM sops UNION SELECT institution_id FROM case_results) "
                "ORDER BY institution_id").fetchall()]
        else:
            ids = list(dict.fromkeys(institutions))
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{out_dir}: cannot create the report folder ({exc.strerror}); "
                            "choose another with --out",
                            pesan=f"{out_dir}: folder laporan tidak dapat dibuat ({os_reason(exc)}); "
                                  "pilih folder lain dengan --out") from None
        env = _env()
        css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
        template = env.get_template("report.html.j2")
        entries = []
        pdfs = _PdfWriter(parallel="pdf" in chosen_formats and len(ids) > 1)
        try:
            with _chart_server() as charts:
                for iid in ids:
                    ctx = institution_report(conn, iid, parsed, lang, run_id=run_id, charts=charts)
                    html = template.render(r=ctx, css=css)
                    files: dict[str, str] = {}
                    if "html" in chosen_formats:
                        path = out_dir / f"{iid}_{parsed.key}.html"
                        _write_text(html, path)
                        written.append(path)
                        files["html"] = path.name
                    if "pdf" in chosen_formats:
                        path = out_dir / f"{iid}_{parsed.key}.pdf"
                        pdfs.write(html, path)
                        written.append(path)
                        files["pdf"] = path.name
                    entries.append({"r": ctx, "files": files})
        finally:
            pdfs.finish()
        if institutions is None:
            index = env.get_template("index.html.j2").render(
                entries=entries, css=css, lang=lang, period_title=parsed.title(lang), period=parsed.key,
                run_id=run_id)
            path = out_dir / "index.html"
            _write_text(index, path)
            written.append(path)
    finally:
        conn.close()
    return written
