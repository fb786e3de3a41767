"""Periodic compliance reports per institution and period (Jinja2 HTML, WeasyPrint PDF, plotly charts).

Reports read only the current published result file (DESIGN section 5), opened read-only. A case belongs
to the period in which it was opened (the institution's local time). Counts of 1 to 4 cases are shown as
"< 5", and no rate, percentile or time is shown when it comes from fewer than 5 cases (DESIGN section 9).
File names are stable (``<institution>_<period>.<ext>``) so a rerun replaces the earlier files; the folder's
``index.html`` lists every report in it, by period.

Secondary disclosure: a number shown beside others must not give a "< 5" back by arithmetic.

* A rate is not shown when the cases it counts, or those it leaves out, are 1-4 ("< 5 kasus", "semua kecuali
  < 5 kasus"): with its number of cases beside it, 80% of 5 is 1 case. The same for a count that is part of a
  count shown beside it (the compliant cases of the period, the cases at a step of an SOP): "120 − < 5".
* Complementary suppression of the "Kepatuhan per SOP" table against the summary. When the hidden parts of a
  column could be computed as the summary's total minus the shown parts (one part hidden, or several whose
  sum pins them, e.g. two of 1 each), then: for cases, the total reads "300 + < 5" (hiding another SOP's
  cases would not hold: its step table counts them, and the main SOP would lose its figures every month),
  and the compliant count that with the rate would give that total back is left out of the sentence; for
  open cases, the next smallest SOP's count is hidden too ("≥ 5"), again until nothing can be computed
  (the total as a last resort); for compliance, the next smallest SOP's rate is hidden ("*"). Step-count
  differences are protected through the SOP's cases (a step's cases 1-4 short of the SOP's read "n − < 5");
  the difference of two shown step counts is not a group of cases the report counts elsewhere.
* Not covered: a one-decimal rate beside a total shown as "300 + < 5" narrows that total to a few
  candidates; only an exact count is promised not to be given back.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
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
            return f"Triwulan {q} {y}, {span}" if lang == "id" else f"Quarter {q} {y}, {span}"
        if self.kind == "semester":
            s = 1 if self.start.month == 1 else 2
            return f"Semester {s} {y}, {span}" if lang == "id" else f"Half-year {s} {y}, {span}"
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


LT5 = "<\u00a05"  # "< 5" with a non-breaking space: a PDF line never breaks inside it
NBSP = "\u00a0"


@dataclass(frozen=True)
class Cell:
    """A number as shown: ``value`` is what tests compare with SQL; None when suppressed or empty."""

    text: str
    value: float | None
    suppressed: bool = False
    # a number hidden only so that a "< 5" beside it cannot be computed back (complementary suppression)
    secondary: bool = False

    @property
    def data(self) -> str:
        if self.suppressed:
            return "suppressed"
        return "" if self.value is None else repr(float(self.value))


def count_cell(n: int | None, lang: str) -> Cell:
    n = int(n or 0)
    if 0 < n < SUPPRESS_BELOW:
        return Cell(LT5, None, True)
    return Cell(fmt_number(n, lang), n)


def part_cell(n: int | None, whole: int | None, lang: str) -> Cell:
    """A count of cases that are part of ``whole`` cases shown beside it (the compliant cases of a period, the
    cases at a step of an SOP): "< 5" for 1-4, and "whole − < 5" when 1-4 cases of the whole are not in it,
    as the whole minus the part would tell that count."""
    n, whole = int(n or 0), int(whole or 0)
    if whole >= SUPPRESS_BELOW and 0 < whole - n < SUPPRESS_BELOW and n >= SUPPRESS_BELOW:
        return Cell(f"{fmt_number(whole, lang)}{NBSP}−{NBSP}{LT5}", None, True)
    return count_cell(n, lang)


def rate_cell(num: int | None, den: int | None, lang: str, digits: int = 1) -> Cell:
    """A share of ``den`` cases. Not shown from fewer than 5 cases ("n < 5"), nor when the cases it counts or
    those it leaves out are 1-4: with the count of cases beside it, the share would tell that count."""
    den = int(den or 0)
    if den == 0:
        return Cell("–", None)
    if den < SUPPRESS_BELOW:
        return Cell(f"n{NBSP}{LT5}", None, True)
    num = int(num or 0)
    if 0 < num < SUPPRESS_BELOW:
        return few_cell(lang)
    if 0 < den - num < SUPPRESS_BELOW:
        return all_but_few_cell(lang)
    share = num / den
    return Cell(fmt_percent(share, lang, digits), share)


def few_cell(lang: str) -> Cell:
    """A share whose count is 1-4: the report shows that count as "< 5" beside it (deviations by step), so the
    share of a known number of cases may not tell it either."""
    return Cell(f"{LT5} kasus" if lang == "id" else f"{LT5} cases", None, True)


def all_but_few_cell(lang: str) -> Cell:
    """A share that leaves out 1-4 of a known number of cases (e.g. 5 of 6 compliant)."""
    return Cell(f"semua kecuali {LT5} kasus" if lang == "id" else f"all but {LT5} cases", None, True)


def hidden_cell() -> Cell:
    """A count of 5 or more hidden so that the "< 5" of its column cannot be computed from the total."""
    return Cell(f"≥{NBSP}5", None, True, secondary=True)


def hidden_rate_cell() -> Cell:
    """A rate hidden so that a suppressed count of its column cannot be computed from the total."""
    return Cell("*", None, True, secondary=True)


def total_cell(shown: int, n_hidden: int, lang: str) -> Cell:
    """A total whose parts are shown except ``n_hidden`` counts of 1-4: the shown parts plus "< 5" (or
    "< 10" for two ...), which tells no more than the parts do."""
    return Cell(f"{fmt_number(shown, lang)}{NBSP}+{NBSP}<{NBSP}{fmt_number(SUPPRESS_BELOW * n_hidden, lang)}",
                None, True, secondary=True)


@dataclass
class _Part:
    """One part of a column whose total is shown: its true value and what a reader knows of it when hidden."""

    value: int
    hidden: bool
    lo: float = 0.0
    hi: float = math.inf


def _determined(parts: Sequence[_Part]) -> bool:
    """Whether a reader who knows the total and the shown parts can tell a hidden part exactly."""
    hidden = [p for p in parts if p.hidden]
    if not hidden:
        return False
    rest = sum(p.value for p in hidden)
    for p in hidden:
        others = [q for q in hidden if q is not p]
        lo = max(p.lo, rest - sum(q.hi for q in others))
        hi = min(p.hi, rest - sum(q.lo for q in others))
        if lo >= hi:
            return True
    return False


def _protect(parts: Sequence[_Part], bounds: Sequence[tuple[float, float]] | None = None) -> tuple[list[int], bool]:
    """Complementary suppression of one column whose total is shown exactly: while a hidden part could be
    computed back (total minus the shown parts), hide the smallest shown non-zero part too. ``bounds``: what a
    reader knows of each part once hidden (a count hidden so reads "≥ 5": 5 or more). Returns the indexes of the
    parts to hide and whether the total must be hidden as well (nothing left to hide)."""
    work = [_Part(p.value, p.hidden, p.lo, p.hi) for p in parts]
    added: list[int] = []
    while _determined(work):
        shown = [(p.value, i) for i, p in enumerate(work) if not p.hidden and p.value > 0]
        if not shown:
            return added, True
        _, i = min(shown)
        lo, hi = bounds[i] if bounds is not None else (SUPPRESS_BELOW, math.inf)
        work[i] = _Part(work[i].value, True, lo, hi)
        added.append(i)
    return added, False


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
        return Cell(f"n{NBSP}{LT5}", None, True)
    if minutes is None:
        return Cell("–", None)
    return Cell(fmt_duration(minutes, lang, day, short=True), minutes)


# ---------------------------------------------------------------------------------------------------
# Queries (all against the published file)
# ---------------------------------------------------------------------------------------------------

# a rules document's breach belongs to the period it happened in (local time; undated: every period)
_LOCAL_TZ = "(SELECT coalesce(any_value(timezone), 'UTC') FROM institutions WHERE institution_id = $inst)"
_IN_PERIOD = f"""(d.occurred_at IS NULL OR (timezone({_LOCAL_TZ}, d.occurred_at) >= $start
                                      AND timezone({_LOCAL_TZ}, d.occurred_at) < $end))"""

_PERIOD_CASES = f"""
period_cases AS (
    -- a student under a rules document counts the breaches that happened in the period (not all so far)
    SELECT r.* REPLACE (CASE WHEN k.kind = 'rules' THEN coalesce(rb.n, 0) ELSE r.n_deviations END AS n_deviations,
                        CASE WHEN k.kind = 'rules' THEN coalesce(rb.n, 0) = 0 ELSE r.compliant END AS compliant),
           coalesce(k.kind = 'rules', FALSE) AS is_rules,
           timezone(coalesce(i.timezone, 'UTC'), r.opened_at) AS opened_local
    FROM case_results r LEFT JOIN institutions i ON i.institution_id = r.institution_id
         LEFT JOIN sops k ON k.sop_id = r.sop_id
         LEFT JOIN (SELECT d.sop_id, d.case_id, count(*) AS n FROM deviations d
                    WHERE d.institution_id = $inst AND d.kind = 'rule_breach' AND {_IN_PERIOD}
                    GROUP BY ALL) rb ON rb.sop_id = r.sop_id AND rb.case_id = r.case_id
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
WHERE NOT c.is_rules OR {_IN_PERIOD}
GROUP BY d.sop_id, d.kind, d.step_id
QUALIFY row_number() OVER (PARTITION BY d.sop_id ORDER BY count(DISTINCT d.case_id) DESC, d.kind, d.step_id)
        <= {TOP_DEVIATIONS}
ORDER BY d.sop_id, n_cases DESC, d.kind, d.step_id
"""

STEP_SQL = f"""
WITH {_PERIOD_CASES},
ev AS (SELECT t.* FROM event_timing t JOIN period_cases c
         ON c.sop_id = t.sop_id AND c.case_id = t.case_id)
SELECT st.sop_id, st.step_id, st.ord, st.no, st.activity, st.role_label, st.time_raw, st.standard_max,
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
GROUP BY st.sop_id, st.step_id, st.ord, st.no, st.activity, st.role_label, st.time_raw, st.standard_max
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
    WHERE NOT c.is_rules OR {_IN_PERIOD}
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

    # "Nov 2025", not "Nov 25" (read as the 25th of November)
    x = [f"{MONTHS[lang][int(m['month'][5:]) - 1][:3]} {m['month'][:4]}" for m in months]
    # a month's rate as the report's rates: not from fewer than 5 cases, nor when 1-4 are (not) compliant
    rate = [100.0 * m["k"] / m["n"] if rate_cell(m["k"], m["n"], lang).value is not None else None
            for m in months]
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


@dataclass(frozen=True)
class _Limits:
    """An SOP's time limits that are not a step's own: between two steps (the model's ``slas``, by id; a
    ``case_sla_breach`` deviation's step_id is the SLA's id) and for the whole case (``case_time``; the
    deviation's step_id is NULL)."""

    slas: Mapping[str, Mapping[str, Any]]
    case_time: str | None


def _limits(conn: duckdb.DuckDBPyConnection, institution_id: str) -> dict[str, _Limits]:
    """The :class:`_Limits` of each SOP of the institution, from the catalogue snapshot's model JSON."""
    limits = {}
    for sop_id, model_text, case_time in conn.execute(
            "SELECT sop_id, CAST(model AS VARCHAR), case_time FROM sops WHERE institution_id = ?",
            [institution_id]).fetchall():
        try:
            model = json.loads(model_text) if model_text else {}
        except ValueError:
            model = {}
        slas = {str(sla["id"]): sla for sla in (model.get("slas") or [])
                if isinstance(sla, dict) and sla.get("id")} if isinstance(model, dict) else {}
        limits[str(sop_id)] = _Limits(slas, case_time or (model.get("case_time") if isinstance(model, dict)
                                                         else None))
    return limits


def _limit_label(d: Mapping[str, Any], limits: _Limits | None, step_nos: Mapping[str, str], lang: str) -> str:
    """The step column of a ``case_sla_breach`` row: which limit was broken. A between-steps limit by its text
    (or its steps and time) and its steps' numbers; the whole-case limit by its time."""
    id_ = lang == "id"
    if not d["step_id"]:
        std = standard_text(d["expected"] or (limits.case_time if limits else None), lang)
        return f"Seluruh kasus ({std})" if id_ else f"Whole case ({std})"
    sla = limits.slas.get(str(d["step_id"])) if limits else None
    if sla is None:  # a limit the snapshot does not describe: its time as stored
        std = standard_text(d["expected"], lang)
        return f"Batas waktu {std}" if id_ else f"Time limit {std}"
    a = step_nos.get(str(sla.get("from")), str(sla.get("from")))
    b = step_nos.get(str(sla.get("to")), str(sla.get("to")))
    steps = f"langkah {a} → {b}" if id_ else f"steps {a} → {b}"
    text = " ".join(str(sla.get("text") or "").split())
    if text:
        return f"{text} ({steps})"
    std = standard_text(sla.get("time") or d["expected"], lang)
    return f"{steps[0].upper()}{steps[1:]} {'dalam' if id_ else 'within'} {std}"


def _deviation_step(d: Mapping[str, Any], lang: str, limits: _Limits | None = None,
                    step_nos: Mapping[str, str] | None = None) -> str:
    """The step column of a deviation row. A stalled case's step is the last one done, and its standard the next
    step's: the row says so, with the standard in the report's language. A case or between-steps limit names
    the limit (:func:`_limit_label`)."""
    if d["kind"] == "case_sla_breach":
        return _limit_label(d, limits, step_nos or {}, lang)
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
    few_over = _bottleneck_share(b, lang).suppressed  # as the share column: not from 1-4 cases (over or not)
    if step is None and not few_over:
        return str(b["explanation_id" if lang == "id" else "explanation_en"])
    row = {**b, **({"share_cases_over": None} if few_over else {})}
    if step is not None:
        row.update(wait_p50=_shown_median(step, "wait"), proc_p50=_shown_median(step, "proc"))
    return explain(row, lang)


def _bottleneck_share(b: Mapping[str, Any], lang: str) -> Cell:
    """A ranked step's share of cases over its standard: "–" without a standard, and not shown when the cases
    over it, or those within it, are 1-4 (as :func:`rate_cell`)."""
    share, n_over = b.get("share_cases_over"), int(b.get("n_over_cases") or 0)
    if not b.get("standard") or share is None:
        return Cell("–", None)
    if 0 < n_over < SUPPRESS_BELOW:
        return few_cell(lang)
    n_std = round(n_over / share) if share else None  # the cases measured against the standard
    if n_std is not None and 0 < n_std - n_over < SUPPRESS_BELOW:
        return all_but_few_cell(lang)
    return Cell(fmt_percent(share, lang), share)


def _first_data(conn: duckdb.DuckDBPyConnection, institution_id: str, tz: str) -> dt.date | None:
    """The local day the institution's first case was opened (its first data), None without any case."""
    row = conn.execute("SELECT min(timezone(?, opened_at)) FROM case_results WHERE institution_id = ?",
                       [tz, institution_id]).fetchone()
    return None if row is None or row[0] is None else row[0].date()


def _prev_note(prev: Period, first: dt.date | None, lang: str) -> str:
    """Said beside the previous period when the data begin after its start (finding: a trend against two months
    read as a full half-year): the trend is kept, a rate is comparable, but the reader sees the count is partial."""
    if first is None or first <= prev.start:
        return ""
    return f"data mulai {_date(first, lang)}" if lang == "id" else f"data start {_date(first, lang)}"


def _complements(cells: dict[str, Cell], blocks: list[dict[str, Any]], sops: Mapping[str, Mapping[str, Any]],
                 summary: Mapping[str, Any], lang: str) -> None:
    """Complementary suppression of the "Kepatuhan per SOP" table against the summary (module docstring)."""
    if len(blocks) < 2:
        return
    rows = [sops[str(b["sop_id"])] for b in blocks]

    def column(key: str) -> list[int]:
        return [int(r[key] or 0) for r in rows]

    # cases: a hidden part would show in its step table (its first step counts every case): the total reads
    # as the shown parts + "< 5" instead, and the compliant count, which with the rate would tell the total,
    # is left out of the sentence
    n_cases = column("n_cases")
    if sum(n_cases) == int(summary["n_cases"] or 0) and cells["n_cases"].value is not None:
        parts = [_Part(n, b["n_cases"].suppressed, 1, 4) for n, b in zip(n_cases, blocks, strict=True)]
        if _determined(parts):
            shown = sum(p.value for p in parts if not p.hidden)
            cells["n_cases"] = total_cell(shown, sum(p.hidden for p in parts), lang)
            cells["n_compliant"] = Cell("", None, True, secondary=True)
    # open cases: the next smallest SOP's open count is hidden too
    n_open = column("n_open")
    if sum(n_open) == int(summary["n_open"] or 0) and cells["n_open"].value is not None:
        parts = [_Part(n, b["n_open"].suppressed, 1, 4) for n, b in zip(n_open, blocks, strict=True)]
        added, whole = _protect(parts)
        for i in added:
            blocks[i]["n_open"] = hidden_cell()
        if whole:
            cells["n_open"] = hidden_cell()
    # compliant cases: each SOP's is its rate x its cases; a hidden one (a rate of "< 5 kasus", "semua kecuali
    # < 5 kasus" or "n < 5") would be the summary's compliant count minus the others: the next smallest
    # SOP's rate is hidden too
    compliant = column("n_compliant")
    if sum(compliant) == int(summary["n_compliant"] or 0) and cells["n_compliant"].value is not None \
            and cells["compliance_rate"].value is not None:
        parts = []
        for n, k, b in zip(n_cases, compliant, blocks, strict=True):
            rate: Cell = b["rate"]
            if rate.value is not None or n == 0:
                parts.append(_Part(k, False))
            elif b["n_cases"].suppressed:  # fewer than 5 cases: 0 to 4 of them compliant
                parts.append(_Part(k, True, 0, SUPPRESS_BELOW - 1))
            elif 0 < k < SUPPRESS_BELOW:
                parts.append(_Part(k, True, 1, SUPPRESS_BELOW - 1))
            else:  # all but 1-4
                parts.append(_Part(k, True, n - SUPPRESS_BELOW + 1, n - 1))
        added, whole = _protect(parts, [(0, n) for n in n_cases])
        for i in added:
            blocks[i]["rate"] = hidden_rate_cell()
        if whole:
            cells["n_compliant"] = Cell("", None, True, secondary=True)
            cells["compliance_rate"] = hidden_rate_cell()
            cells["trend"] = Cell("–", None, True)


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

    first = _first_data(conn, institution_id, tz)
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
    limits = _limits(conn, institution_id)
    step_nos = {(s["sop_id"], s["step_id"]): str(s["no"] or s["step_id"]).rstrip(".") for s in steps}
    year_back = _params(run_id, institution_id, _add_months(period.end, -12), period.end)
    monthly = _rows(conn, MONTHLY_SQL, year_back)

    sop_blocks = []
    for sop in sops:
        sop_steps = [s for s in steps if s["sop_id"] == sop["sop_id"]]
        step_by_id = {s["step_id"]: s for s in sop_steps}
        nos = {step: no for (sop_id, step), no in step_nos.items() if sop_id == sop["sop_id"]}
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
                 "step": (d["step_id"] or ""),
                 "activity": _deviation_step(d, lang, limits.get(sop["sop_id"]), nos),
                 "n_cases": count_cell(d["n_cases"], lang)}
                for d in devs if d["sop_id"] == sop["sop_id"]],
            "bottlenecks": [
                {"rank": b["rank"], "step": str(b["step_no"] or b["step_id"]).rstrip("."),
                 "step_id": b["step_id"], "activity": b["activity"] or "",
                 "n_cases": part_cell(b["n_cases"], sop["n_cases"], lang),
                 # the waiting percentiles as the step table shows them: suppressed on the cases that waited
                 "wait_p50": duration_cell(b["wait_p50"], _n_wait(step_by_id.get(b["step_id"]), b), lang, day),
                 "wait_p90": duration_cell(b["wait_p90"], _n_wait(step_by_id.get(b["step_id"]), b), lang, day),
                 "share_over": _bottleneck_share(b, lang),
                 "score": duration_cell(b["score"], _n_lost(b), lang, day),
                 "sentence": _bottleneck_sentence(b, step_by_id.get(b["step_id"]), lang)}
                for b in ranked if b["sop_id"] == sop["sop_id"]],
            "steps": [
                {"no": str(s["no"] or s["step_id"]).rstrip("."), "step_id": s["step_id"],
                 "activity": s["activity"], "role": s["role_label"] or "",
                 "standard": standard_text(s["time_raw"], lang),
                 # the cases without the step (the SOP's cases minus the step's) may be 1-4
                 "n_cases": part_cell(s["n_cases"], sop["n_cases"], lang),
                 # each percentile on the cases it comes from; "–" when there is none (a first step's wait)
                 "wait_p50": duration_cell(s["wait_p50"], s["n_wait"], lang, day),
                 "wait_p90": duration_cell(s["wait_p90"], s["n_wait"], lang, day),
                 "proc_p50": duration_cell(s["proc_p50"], s["n_proc"], lang, day),
                 "proc_p90": duration_cell(s["proc_p90"], s["n_proc"], lang, day),
                 # "–" for a step without a time standard (not "0%", read as "always on time")
                 "share_over": (Cell("–", None) if s["standard_max"] is None or not s["n_std"]
                                else rate_cell(s["n_over"], s["n_std"], lang, 0))}
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
        attention_cell = Cell(f"{fmt_number(n_listable, lang)}{NBSP}+{NBSP}{LT5}", None, True)
    now = now or dt.datetime.now(dt.UTC)
    local_now = now.astimezone(ZoneInfo(tz))
    generated = (f"{local_now.day} {MONTHS[lang][local_now.month - 1]} {local_now.year}, "
                 f"{local_now:%H:%M} {ZONE_WORD_OF.get(tz, tz)}")
    procedures = [b for b in sop_blocks if b["kind"] == "procedure"]
    shown = procedures or sop_blocks
    cells = {
        "n_cases": count_cell(summary["n_cases"], lang),
        # the compliant cases beside all of them tell the non-compliant ones: as the rate, not when 1-4
        "n_compliant": part_cell(summary["n_compliant"], summary["n_cases"], lang),
        "compliance_rate": rate, "prev_rate": prev_rate, "trend": trend,
        "prev_n_cases": count_cell(prev_summary["n_cases"], lang),
        "n_open": count_cell(summary["n_open"], lang),
        "n_stalled": count_cell(summary["n_stalled"], lang),
        "n_deviations": count_cell(summary["n_deviations"], lang),
    }
    _complements(cells, shown, {str(s["sop_id"]): s for s in sops}, summary, lang)
    notes = _run_notes(conn, run_id, institution_id, period, tz, lang, first)
    title = "Laporan Kepatuhan SOP" if lang == "id" else "SOP Compliance Report"
    footer = f"{title} · {name} · {period.title(lang)}"
    return {
        "footer_css": Markup('@page { @bottom-left { content: "%s"; } }') % _css_string(footer),
        "lang": lang, "run_id": run_id, "generated": generated, "institution_id": institution_id,
        "run_notes": notes,
        # no case can be in the period (before the first data, or not begun at the analysis): the CLI warns
        "no_data": "no_data" in notes or notes.get("period", "").startswith(_NOT_BEGUN[lang]),
        "first_data": first,
        "prev_note": _prev_note(prev, first, lang),
        "institution": name, "region": region or "", "place": _place(region, name),
        "period": period.key, "period_title": period.title(lang), "prev_title": prev.title(lang),
        "workday": fmt_duration(day, lang, 10**9),
        "summary": cells,
        "sops": shown,
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


_NOT_BEGUN = {"id": "Periode ini belum dimulai saat analisis", "en": "This period had not begun at the analysis"}


def _until(as_of: dt.datetime, lang: str) -> str:
    """The last data an as-of includes, for "data sampai ...": an as-of at local midnight ends the day before
    ("sampai dengan 31 Okt 2026", not "sampai 1 Nov 2026", which reads as if 1 November were included)."""
    if as_of.time() == dt.time(0, 0):
        day = _date(as_of.date() - dt.timedelta(days=1), lang)
        return f"sampai dengan {day}" if lang == "id" else f"up to and including {day}"
    return f"sampai {_date(as_of.date(), lang)}" if lang == "id" else f"up to {_date(as_of.date(), lang)}"


def _as_of_line(as_of: dt.datetime, tz: str, lang: str) -> str:
    """The cover line that dates the open and stalled counts (they change with every later run)."""
    day = f"{as_of.day} {MONTHS[lang][as_of.month - 1]} {as_of.year}"
    zone = ZONE_WORD_OF.get(tz, tz)
    if lang == "id":
        return f"Data per {day} pukul {as_of:%H.%M} {zone} (kasus terbuka dan macet dinilai pada saat itu)."
    return f"Data as of {day}, {as_of:%H:%M} {zone} (open and stalled cases are judged at that time)."


def _run_notes(conn: duckdb.DuckDBPyConnection, run_id: str, institution_id: str, period: Period, tz: str,
               lang: str, first: dt.date | None = None) -> dict[str, str]:
    """What the cover must say about when the cases were judged: note kind (held, as_of, period, no_data,
    coverage) -> text.

    An institution the run left out (its SOP files had errors, run.py) keeps the results of the last run that
    checked it: the cover says so, and judges the period against that run's ``as_of``. Every report dates its
    open and stalled counts by that as-of. A period not over at that time, or not begun, says so instead of
    reading as a finished month; a period before the institution's first data (``first``, the local day its
    first case was opened) says that nothing had been loaded, not that nothing happened; a period the data
    begin in says it is only partly covered."""
    row = conn.execute("SELECT params FROM runs WHERE run_id = ?", [run_id]).fetchone()
    params = json.loads(row[0]) if row is not None and row[0] else {}
    notes: dict[str, str] = {}
    as_of_text = params.get("as_of")
    held = (params.get("held") or {}).get(institution_id)
    if held is not None:
        files, as_of_text = ", ".join(held["files"]), held.get("checked_as_of")
        checked = _until(dt.datetime.fromisoformat(as_of_text).astimezone(ZoneInfo(tz)), lang) \
            if as_of_text else None
        notes["held"] = (
            f"Instansi ini tidak diperiksa pada analisis {run_id} karena berkas SOP-nya berisi galat ({files}); "
            + (f"angka di laporan ini dari analisis sebelumnya (data {checked})." if checked
               else "belum ada analisis sebelumnya.")
            if lang == "id" else
            f"This institution was not checked in analysis run {run_id} because its SOP files have errors "
            f"({files}); " + (f"the figures in this report come from an earlier analysis (data {checked})."
                              if checked else "it has not been checked before."))
    begun = True
    if as_of_text:
        as_of = dt.datetime.fromisoformat(str(as_of_text)).astimezone(ZoneInfo(tz))
        notes["as_of"] = _as_of_line(as_of, tz, lang)
        until = _until(as_of, lang)
        local = as_of.replace(tzinfo=None)
        if dt.datetime.combine(period.start, dt.time()) >= local:
            begun = False
            notes["period"] = (
                f"{_NOT_BEGUN[lang]} (data {until}): belum ada kasus yang dapat dilaporkan." if lang == "id" else
                f"{_NOT_BEGUN[lang]} (data {until}): no cases can be reported yet.")
        elif dt.datetime.combine(period.end, dt.time()) > local:
            notes["period"] = (
                f"Periode ini belum selesai: data {until}; angka dapat berubah sampai periode berakhir."
                if lang == "id" else
                f"This period is not over: data {until}; the figures may change until it ends.")
    if begun and (first is None or period.end <= first):
        notes["no_data"] = (
            ("Belum ada data untuk instansi ini." if first is None else
             f"Belum ada data untuk periode ini (data mulai {_date(first, lang)}): angka nol di laporan ini "
             "bukan berarti tidak ada kejadian.")
            if lang == "id" else
            ("No data has been loaded for this institution yet." if first is None else
             f"No data for this period yet (data start {_date(first, lang)}): the zeros in this report do not "
             "mean that nothing happened."))
    elif first is not None and period.start < first < period.end:
        notes["coverage"] = (f"Data mulai {_date(first, lang)}: periode ini hanya tercakup sebagian." if lang == "id"
                             else f"Data start {_date(first, lang)}: this period is only partly covered.")
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


def no_data_warning(institution_id: str, period: Period, first: dt.date | None) -> str:
    """The command line's bilingual warning for a report of a period without data (its cover says so too)."""
    if first is None:
        return (f"{institution_id} {period.key}: belum ada data untuk instansi ini / "
                f"no data has been loaded for this institution yet")
    if period.end <= first:
        return (f"{institution_id} {period.key}: belum ada data untuk periode ini (data mulai {_date(first, 'id')}) / "
                f"no data for this period (data start {_date(first, 'en')})")
    return (f"{institution_id} {period.key}: periode ini belum dimulai saat analisis, laporannya kosong / "
            "this period had not begun at the analysis, the report is empty")


_REPORT_FILE = re.compile(r"^(?P<inst>.+)_(?P<period>[^_]+)\.(?P<ext>html|pdf)$")


def _index_groups(out_dir: Path, names: Mapping[str, str], current: Period,
                  entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every report in the folder, grouped by period, newest first (an ``--all`` run of one period used to
    replace the index and leave the earlier periods' reports unlinked). The period just written keeps its
    figures; the others list their files. Only files named as Patuh names them, for a known institution."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for path in sorted(out_dir.iterdir()):
        m = _REPORT_FILE.match(path.name)
        if m is None or m["inst"] not in names or not path.is_file():
            continue
        try:
            parsed = parse_period(m["period"])
        except UserError:
            continue
        if parsed.key != m["period"]:
            continue
        found.setdefault(parsed.key, {}).setdefault(m["inst"], {})[m["ext"]] = path.name
    groups = []
    for key in sorted(found.keys() | {current.key}, key=lambda k: (parse_period(k).end, parse_period(k).start),
                      reverse=True):
        period = parse_period(key)
        if key == current.key:
            rows = [{"institution_id": e["r"]["institution_id"], "name": e["r"]["institution"], "r": e["r"],
                     "files": e["files"]} for e in entries]
            listed = {row["institution_id"] for row in rows}
            rows += [{"institution_id": i, "name": names[i], "r": None, "files": files}
                     for i, files in sorted(found.get(key, {}).items()) if i not in listed]
        else:
            rows = [{"institution_id": i, "name": names[i], "r": None, "files": files}
                    for i, files in sorted(found[key].items())]
        for row in rows:  # HTML before PDF
            row["files"] = {ext: row["files"][ext] for ext in ("html", "pdf") if ext in row["files"]}
        groups.append({"period": period, "current": key == current.key, "rows": rows})
    return groups


def write_reports(published_db: Path, *, period: str, institutions: list[str] | None, formats: set[str],
                  out_dir: Path, lang: str = "id", warnings: list[str] | None = None) -> list[Path]:
    """Write each institution's report for ``period`` (None: every institution, plus ``index.html``).

    Files are ``<out_dir>/<institution>_<period>.<html|pdf>``; a rerun replaces them. The index lists every
    report in the folder, by period. ``warnings`` receives a bilingual line per report of a period without data.
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
                    if ctx["no_data"] and warnings is not None:
                        warnings.append(no_data_warning(iid, parsed, ctx["first_data"]))
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
            names = dict(conn.execute("SELECT institution_id, name FROM institutions").fetchall())
            index = env.get_template("index.html.j2").render(
                groups=_index_groups(out_dir, names, parsed, entries), css=css, lang=lang,
                period_title=parsed.title(lang), period=parsed.key, run_id=run_id)
            path = out_dir / "index.html"
            _write_text(index, path)
            written.append(path)
    finally:
        conn.close()
    return written
