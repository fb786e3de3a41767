"""Periodic reports rendered from the shared fixture published file (real DuckDB, real WeasyPrint)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import lxml.html
import pytest

from pipeline.errors import UserError
from pipeline.report import parse_period, write_reports
from tests.fixtures_published import RUN_ID, build_published_db

PERIOD = "2025-10"
INST = "smpn2-ngawi"
CASES_SQL = """
    SELECT count(*), count(*) FILTER (WHERE compliant), count(*) FILTER (WHERE status = 'open')
    FROM case_results r JOIN institutions i USING (institution_id)
    WHERE r.institution_id = ? AND timezone(i.timezone, r.opened_at) >= ? AND timezone(i.timezone, r.opened_at) < ?
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_published_db(tmp_path_factory.mktemp("pub") / "published" / f"{RUN_ID}.duckdb")


@pytest.fixture(scope="module")
def reports(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    write_reports(published, period=PERIOD, institutions=None, formats={"html", "pdf"}, out_dir=out)
    return out


def _values(html_path: Path) -> dict[str, list[str]]:
    doc = lxml.html.parse(str(html_path)).getroot()
    values: dict[str, list[str]] = {}
    for el in doc.xpath("//*[@data-key]"):
        values.setdefault(el.get("data-key"), []).append(el.get("data-value"))
    return values


def _month(conn: duckdb.DuckDBPyConnection, inst: str, start: dt.date, end: dt.date) -> tuple[int, int, int]:
    row = conn.execute(CASES_SQL, [inst, start, end]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_all_writes_every_institution_and_an_index(reports: Path, published: Path) -> None:
    with duckdb.connect(str(published), read_only=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT institution_id FROM institutions ORDER BY 1").fetchall()]
    names = sorted(p.name for p in reports.iterdir())
    assert names == sorted([f"{i}_{PERIOD}.{ext}" for i in ids for ext in ("html", "pdf")] + ["index.html"])
    index = lxml.html.parse(str(reports / "index.html")).getroot()
    links = set(index.xpath("//a/@href"))
    assert links == {n for n in names if n != "index.html"}


def test_report_numbers_equal_sql(reports: Path, published: Path) -> None:
    values = _values(reports / f"{INST}_{PERIOD}.html")
    with duckdb.connect(str(published), read_only=True) as conn:
        n, k, n_open = _month(conn, INST, dt.date(2025, 10, 1), dt.date(2025, 11, 1))
        stalled = conn.execute("""
            SELECT count(DISTINCT d.case_id) FROM deviations d JOIN case_results r USING (sop_id, case_id)
            JOIN institutions i ON i.institution_id = r.institution_id
            WHERE d.kind = 'stalled_case' AND r.institution_id = ?
              AND timezone(i.timezone, r.opened_at) >= DATE '2025-10-01'
              AND timezone(i.timezone, r.opened_at) < DATE '2025-11-01'""", [INST]).fetchone()
        wait = conn.execute("""
            SELECT t.step_id, quantile_cont(t.wait_working, 0.5), count(DISTINCT t.case_id)
            FROM event_timing t JOIN case_results r USING (sop_id, case_id)
            JOIN institutions i ON i.institution_id = r.institution_id
            WHERE t.sop_id = 'smpn2-ngawi/bk001-prosedur' AND timezone(i.timezone, r.opened_at) >= DATE '2025-10-01'
              AND timezone(i.timezone, r.opened_at) < DATE '2025-11-01'
            GROUP BY t.step_id ORDER BY t.step_id""").fetchall()
    assert n >= 5
    assert float(values["n_cases"][0]) == n
    assert float(values["compliance_rate"][0]) == pytest.approx(k / n)
    assert values["n_open"][0] == ("suppressed" if 0 < n_open < 5 else repr(float(n_open)))
    assert stalled is not None
    assert values["n_stalled"][0] == ("suppressed" if 0 < stalled[0] < 5 else repr(float(stalled[0])))
    # the step table of the first SOP section in the file that is bk001-prosedur
    doc = lxml.html.parse(str(reports / f"{INST}_{PERIOD}.html")).getroot()
    section = doc.xpath("//section[@data-sop='smpn2-ngawi/bk001-prosedur']")[0]
    for step_id, p50, n_step in wait:
        cell = section.xpath(f".//tr[@data-step='{step_id}']//*[@data-key='step_wait_p50']")[0]
        if n_step >= 5:
            assert float(cell.get("data-value")) == pytest.approx(p50)
        else:
            assert cell.get("data-value") == "suppressed"


def test_trend_against_previous_period(reports: Path, published: Path) -> None:
    values = _values(reports / f"{INST}_{PERIOD}.html")
    with duckdb.connect(str(published), read_only=True) as conn:
        n, k, _ = _month(conn, INST, dt.date(2025, 10, 1), dt.date(2025, 11, 1))
        pn, pk, _ = _month(conn, INST, dt.date(2025, 9, 1), dt.date(2025, 10, 1))
    assert n >= 5 and pn >= 5
    assert float(values["prev_rate"][0]) == pytest.approx(pk / pn)
    assert float(values["trend"][0]) == pytest.approx(100 * (k / n - pk / pn))
    assert parse_period("2026-Q1").previous().key == "2025-Q4"
    assert parse_period("2026-S1").previous().key == "2025-S2"
    assert parse_period("2026").previous().key == "2025"
    assert parse_period("2026-01").previous().key == "2025-12"
    assert parse_period("2026-q3").title("id") == "Triwulan III 2026 (Juli–September)"


def test_small_counts_are_suppressed(published: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.duckdb"
    shutil.copy(published, small)
    with duckdb.connect(str(small)) as conn:  # keep 3 of the institution's October cases
        conn.execute("""
            DELETE FROM case_results WHERE institution_id = ? AND case_id NOT IN (
                SELECT case_id FROM case_results WHERE institution_id = ?
                  AND opened_at >= TIMESTAMPTZ '2025-10-01 00:00+07' AND opened_at < TIMESTAMPTZ '2025-11-01 00:00+07'
                ORDER BY case_id LIMIT 3)""", [INST, INST])
    out = tmp_path / "out"
    (path,) = write_reports(small, period=PERIOD, institutions=[INST], formats={"html"}, out_dir=out, lang="en")
    values = _values(path)
    assert values["n_cases"] == ["suppressed"]
    assert values["compliance_rate"] == ["suppressed"] and values["trend"] == ["suppressed"]
    doc = lxml.html.parse(str(path)).getroot()
    rate = doc.xpath("//*[@data-key='compliance_rate']")[0]
    assert rate.text_content() == "n < 5" and "%" not in rate.text_content()
    assert doc.xpath("//*[@data-key='n_cases']")[0].text_content() == "< 5"
    # no rate, percentile or count of 1-4 cases anywhere in the report
    for el in doc.xpath("//*[@data-key]"):
        value = el.get("data-value")
        if value not in ("suppressed", ""):
            key = el.get("data-key")
            if key.startswith(("n_", "sop_n", "step_n", "dev_n", "bn_n", "cover_n", "prev_n")):
                assert not 0 < float(value) < 5, key
    assert doc.xpath("//*[@data-key='bn_n_cases']") == []  # nothing is ranked from fewer than 5 cases
    # an SOP with 1-4 cases is a short section on the flow of the page: its deviations, no step table of "n < 5"
    sections = doc.xpath("//section[contains(concat(' ', @class, ' '), ' sop ')]")
    assert sections and all("small" in sec.get("class").split() for sec in sections)
    assert doc.xpath("//*[@data-key='step_n_cases']") == []
    with_cases = [sec for sec in sections if sec.xpath(".//*[@data-key='sop_n_cases'][@data-value='suppressed']")]
    assert with_cases and all("Fewer than 5 cases" in sec.text_content() for sec in with_cases)


def test_rerun_replaces_files(reports: Path, published: Path) -> None:
    before = sorted(p.name for p in reports.iterdir())
    old = (reports / f"{INST}_{PERIOD}.html").stat().st_mtime_ns
    again = write_reports(published, period=PERIOD, institutions=[INST], formats={"html"}, out_dir=reports)
    assert again == [reports / f"{INST}_{PERIOD}.html"]
    assert sorted(p.name for p in reports.iterdir()) == before  # replaced, not duplicated; no temp files left
    assert again[0].stat().st_mtime_ns > old
    assert again[0].read_text(encoding="utf-8").count("<html") == 1


def test_pdf_page_is_not_blank(reports: Path, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    from PIL import Image, ImageStat

    pdf = reports / f"{INST}_{PERIOD}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "2", str(pdf), str(tmp_path / "pg")],
                   check=True)
    pages = sorted(tmp_path.glob("pg*.png"))
    assert len(pages) == 2
    for page in pages:
        stat = ImageStat.Stat(Image.open(page).convert("L"))
        assert stat.var[0] > 100, f"{page.name} looks blank (variance {stat.var[0]:.1f})"


def test_bad_requests_are_user_errors(published: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a period"):
        write_reports(published, period="2025-13", institutions=None, formats={"html"}, out_dir=tmp_path)
    with pytest.raises(UserError, match="known institutions"):
        write_reports(published, period=PERIOD, institutions=["nope"], formats={"html"}, out_dir=tmp_path)
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")  # --out below a file: the folder cannot be made
    with pytest.raises(UserError, match=r"cannot create the report folder .*choose another with --out"):
        write_reports(published, period=PERIOD, institutions=None, formats={"html"}, out_dir=blocked / "reports")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--all", "--period", PERIOD,
                             "--db", str(tmp_path / "empty" / "patuh.duckdb")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nothing is published yet" in result.stderr and "Traceback" not in result.stderr
