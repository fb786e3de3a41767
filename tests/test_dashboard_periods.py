"""The dashboard's period filter means what the reports mean: cases opened in the months, local time.

A real published DuckDB file (tests/fixtures_published.py) with two things the engine does that the plain
fixture does not: stall deviations dated at the run's as-of time (all in the last month), and cases opened
close to midnight at a month's end, where the UTC month and the institution's local month differ.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashboards import auth, queries
from dashboards.app import create_app
from dashboards.queries import ALL, Filters
from pipeline.report import SUMMARY_SQL
from tests.fixtures_published import build_published_db
from tests.test_dashboard import login, post_callback

# pipeline/timing.py dates every stalled_case at --as-of: here 1 Feb 2026 00:00 WIB
AS_OF = "2026-01-31 17:00:00+00"
# Bontang (Asia/Makassar, UTC+8): 30 Sep 20:00 UTC is 1 Oct 04:00 local, 31 Oct 17:30 UTC is 1 Nov 01:30 local
INTO_OCTOBER = 3
INTO_NOVEMBER = 2


@pytest.fixture(scope="module", params=["deviations with their case's span", "a file published before them"])
def pub(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The period rule holds both ways the dashboard finds a period's deviations: by the case span each carries,
    and, in a file an older version published without it, through the case results."""
    root = tmp_path_factory.mktemp("periods") / "published"
    db = build_published_db(root / "fx.duckdb")
    conn = duckdb.connect(str(db))
    try:
        conn.execute(f"UPDATE deviations SET occurred_at = TIMESTAMPTZ '{AS_OF}' WHERE kind = 'stalled_case'")
        picked = conn.execute("""
            SELECT sop_id, case_id FROM case_results
            WHERE institution_id = 'bontang-bk' AND opened_at >= TIMESTAMPTZ '2025-10-05 00:00:00+00'
              AND opened_at < TIMESTAMPTZ '2025-10-25 00:00:00+00'
            ORDER BY case_id LIMIT ?""", [INTO_OCTOBER + INTO_NOVEMBER]).fetchall()
        assert len(picked) == INTO_OCTOBER + INTO_NOVEMBER
        for i, (sop_id, case_id) in enumerate(picked):
            ts = "2025-09-30 20:00:00+00" if i < INTO_OCTOBER else "2025-10-31 17:30:00+00"
            for table, column in (("case_results", "opened_at"), ("cases", "opened_at"),
                                  ("deviations", "case_opened_at")):  # as the engine would write them
                conn.execute(f"UPDATE {table} SET {column} = TIMESTAMPTZ '{ts}' WHERE sop_id = ? AND case_id = ?",
                             [sop_id, case_id])
        if request.param == "a file published before them":
            conn.execute("ALTER TABLE deviations DROP COLUMN case_opened_at")
            conn.execute("ALTER TABLE deviations DROP COLUMN case_closed_at")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    return root


@pytest.fixture(scope="module")
def src(pub: Path) -> Iterator[queries.Source]:
    source = queries.Source(pub)
    yield source
    source.close()


def report_summary(pub: Path, inst: str, month: str) -> dict[str, Any]:
    """What ``patuh report --period <month>`` prints on its first page (pipeline/report.py SUMMARY_SQL)."""
    start = dt.datetime.strptime(month, "%Y-%m")
    end = (start + dt.timedelta(days=32)).replace(day=1)
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        cur = conn.execute(SUMMARY_SQL, {"inst": inst, "start": start, "end": end})
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize(("inst", "month"), [("smpn2-ngawi", "2026-01"), ("smpn2-ngawi", "2025-08"),
                                            ("bontang-bk", "2025-10")])
def test_overview_kpis_chart_deviation_page_and_report_agree_for_a_month(src: queries.Source, pub: Path,
                                                                          inst: str, month: str) -> None:
    """QA finding 1: KASUS MACET 147 > KASUS TERBUKA 50, and the KPI (408) against its own chart (523).

    Every stall is dated at the as-of time (January): January must not show the other months' stalled cases,
    and August (two stalled cases opened then) must still show its own."""
    f = Filters(inst=inst, start=month, end=month)
    ov = queries.overview(src, ALL, f)
    total = ov["total"].iloc[0]
    report = report_summary(pub, inst, month)
    assert total["stalled"] <= total["open_cases"]
    assert (total["cases"], total["open_cases"], total["stalled"], total["deviations"]) == (
        report["n_cases"], report["n_open"], report["n_stalled"], report["n_deviations"])
    # the "Penyimpangan per jenis" bars add up to the KPI, and the Penyimpangan page counts the same rows
    assert int(ov["kind"]["n"].sum()) == total["deviations"]
    assert queries.deviation_page(src, ALL, f, 0, 100)[1] == total["deviations"]
    assert queries.deviation_page(src, ALL, f.with_(kind="stalled_case"), 0, 100)[1] == total["stalled"]
    by_kind = dict(zip(ov["kind"]["kind"], ov["kind"]["n"], strict=True))
    assert by_kind.get("stalled_case", 0) == total["stalled"]
    assert queries.deviation_page(src, ALL, f.with_(kind="overdue_step"), 0, 1)[1] == by_kind.get("overdue_step", 0)
    if (inst, month) == ("smpn2-ngawi", "2025-08"):
        assert total["stalled"] == 2


def test_months_are_the_institutions_local_months(src: queries.Source, pub: Path) -> None:
    """QA finding 2: Bontang (WITA) October had 619 cases by UTC and 621 in its report."""
    f = Filters(inst="bontang-bk", start="2025-10", end="2025-10")
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        utc = conn.execute("SELECT count(*) FROM case_results WHERE institution_id = 'bontang-bk' AND "
                           "opened_at >= TIMESTAMPTZ '2025-10-01 00:00+00' AND "
                           "opened_at < TIMESTAMPTZ '2025-11-01 00:00+00'").fetchone()
    finally:
        conn.close()
    report = report_summary(pub, "bontang-bk", "2025-10")
    assert utc is not None and utc[0] == report["n_cases"] - INTO_OCTOBER + INTO_NOVEMBER  # the fixture differs
    ov = queries.overview(src, ALL, f)
    total = ov["total"].iloc[0]
    assert (total["cases"], total["compliant"]) == (report["n_cases"], report["n_compliant"])
    assert list(ov["month"]["month"]) == ["2025-10"]
    # the trend's October bar without a period filter, and the drill-down into it
    trend = queries.overview(src, ALL, Filters(inst="bontang-bk"))["month"]
    assert dict(zip(trend["month"], trend["cases"], strict=True))["2025-10"] == report["n_cases"]
    assert queries.deviation_page(src, ALL, f, 0, 1)[1] == report["n_deviations"]
    # the case list of the month is the same set of cases
    listed = queries.attention_cases(src, ALL, f, limit=100)
    assert len(listed) == report["n_cases"] - report["n_compliant"]


def test_the_page_shows_the_report_numbers(pub: Path, tmp_path: Path) -> None:
    """What the user reads: the KPI tiles for Bontang, October, and the note saying which period rule holds."""
    users = tmp_path / "users.yaml"
    auth.ensure_demo_users(users)
    app = create_app(pub, users, secret_key=b"p" * 32)
    client = app.server.test_client()
    login(client, "pengawas")
    report = report_summary(pub, "bontang-bk", "2025-10")
    ctx = {"inst": "bontang-bk", "start": "2025-10", "end": "2025-10", "lang": "id"}
    body = post_callback(client, app, ["ring-kpis"], [{"id": "ring-ctx", "property": "data", "value": ctx}])
    kpis = json.dumps(body.get_json()["response"]["ring-kpis"]["children"], ensure_ascii=False)
    assert f'"{report["n_cases"]}"' in kpis and f'"{report["n_compliant"]} patuh"' in kpis
    share = f"{100 * report['n_compliant'] / report['n_cases']:.1f}".replace(".", ",") + "%"
    assert f'"{share}"' in kpis
    for path in ("/", "/penyimpangan"):
        page = post_callback(client, app, ["app-root"], [
            {"id": "url", "property": "pathname", "value": path},
            {"id": "url", "property": "search", "value": "?inst=bontang-bk&start=2025-10&end=2025-10"}])
        assert "bulan kasus dibuka" in page.get_data(as_text=True), path
