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

from dashboards import i18n
from pipeline.errors import UserError
from pipeline.report import _Charts, institution_report, parse_period, write_reports
from tests.fixtures_published import RUN_ID, build_published_db

DEFAULT_STALL = "5 hari kerja (bawaan / default)"  # what the engine stores as a stall's expected (pipeline/timing.py)

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
            SELECT t.step_id, quantile_cont(t.wait_working, 0.5),
                   count(DISTINCT t.case_id) FILTER (WHERE t.wait_working IS NOT NULL)
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
    assert parse_period("2026-q3").title("id") == "Triwulan III 2026, Juli–September"  # no nested parentheses


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
    assert _text(rate) == "n < 5" and "%" not in rate.text_content()
    assert doc.xpath("//*[@data-key='n_cases']")[0].text_content() == "<\u00a05"  # no line break inside
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


def _doc(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.parse(str(path)).getroot()


def _text(el: lxml.html.HtmlElement) -> str:
    return " ".join(el.text_content().split())


def _copy(published: Path, tmp_path: Path) -> Path:
    """A copy of the published file to change for one test (the module's reports read the original)."""
    copy = tmp_path / "published" / published.name
    copy.parent.mkdir(parents=True)
    shutil.copy(published, copy)
    return copy


def _sop_of_label(doc: lxml.html.HtmlElement, label: str) -> list[str]:
    """The SOPs of the report's "Kepatuhan per SOP" table whose name ("number — title") a label of the attention
    list ("number · title", the title perhaps cut with "…") can be read as."""
    parts = label.split(" · ")
    number, title = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    prefix = f"{number} — {title.rstrip('…')}" if number else title.rstrip("…")
    return [row.get("data-sop") for row in doc.xpath("//section[@class='summary']//tr[@data-sop]")
            if _text(row.xpath("./td[1]")[0]).startswith(prefix)]


def test_attention_list_does_not_undo_small_count_suppression(published: Path, tmp_path: Path) -> None:
    # finding 7: the year 2025 at SMP N 2: bk001-prosedur has 1-4 open cases (shown "< 5"), one of them stalled;
    # a copy where bk001-alur keeps only 3 cases of the year (its whole section is "< 5")
    out = tmp_path / "out"
    (path,) = write_reports(published, period="2025", institutions=[INST], formats={"html"}, out_dir=out)
    doc = _doc(path)
    with duckdb.connect(str(published), read_only=True) as conn:
        truth = dict(conn.execute("SELECT case_id, sop_id || '|' || status FROM case_results WHERE institution_id = ?",
                                  [INST]).fetchall())
    rows = doc.xpath("//table[@class='attention']//tr[@data-case]")
    assert len(rows) >= 5  # the closed cases of both SOPs (groups of 5 or more) are listed
    listed_sops = set()
    for row in rows:
        sop_id, status = truth[row.get("data-case")].split("|")
        listed_sops.add(sop_id)
        summary = doc.xpath(f"//section[@class='summary']//tr[@data-sop='{sop_id}']")[0]
        assert summary.xpath(".//*[@data-key='sop_n_cases']")[0].get("data-value") != "suppressed"
        if status == "open":  # not a group of 1-4 (a count hidden as "≥ 5" for another's sake is not)
            assert _text(summary.xpath(".//*[@data-key='sop_n_open']")[0]) != "< 5"
        # the SOP column names one SOP of the report, the right one (two SOPs share the number BK001/Jan/2020)
        assert _sop_of_label(doc, _text(row.xpath("./td[2]")[0])) == [sop_id]
    assert listed_sops == {"smpn2-ngawi/bk001-alur", "smpn2-ngawi/bk001-prosedur"}
    note = doc.xpath("//section[@class='attention']//*[@data-note='privacy']")
    assert len(note) == 1 and "kurang dari 5 kasus tidak dicantumkan" in _text(note[0])
    # the list is cut at 25 rows: its total (33) minus 25 tells nothing about the case left out
    assert len(rows) == 25 and _text(doc.xpath("//*[@data-key='n_attention']")[0]) == "33"
    # nor does the headline of a complete list (2025-Q4: 20 listed, 1 left out) tell how many were left out
    (path,) = write_reports(published, period="2025-Q4", institutions=[INST], formats={"html"}, out_dir=out)
    doc = _doc(path)
    rows = doc.xpath("//table[@class='attention']//tr[@data-case]")
    headline = doc.xpath("//section[@class='attention']//*[@data-key='n_attention']")[0]
    assert len(rows) == 20 and _text(headline) == "20 + < 5" and headline.get("data-value") == "suppressed"

    small = _copy(published, tmp_path)
    with duckdb.connect(str(small)) as conn:
        conn.execute("""
            DELETE FROM case_results WHERE sop_id = 'smpn2-ngawi/bk001-alur' AND case_id NOT IN (
                SELECT case_id FROM case_results WHERE sop_id = 'smpn2-ngawi/bk001-alur'
                  AND opened_at < TIMESTAMPTZ '2026-01-01 00:00+07' ORDER BY n_deviations DESC, case_id LIMIT 3)""")
        flagged = conn.execute("""
            SELECT count(DISTINCT case_id) FROM deviations JOIN case_results USING (sop_id, case_id)
            WHERE sop_id = 'smpn2-ngawi/bk001-alur' AND (severity = 'high' OR kind = 'stalled_case')""").fetchone()
    assert flagged is not None and flagged[0] > 0
    (path,) = write_reports(small, period="2025", institutions=[INST], formats={"html"}, out_dir=out, lang="en")
    doc = _doc(path)
    summary = doc.xpath("//section[@class='summary']//tr[@data-sop='smpn2-ngawi/bk001-alur']")[0]
    assert _text(summary.xpath(".//*[@data-key='sop_n_cases']")[0]) == "< 5"
    listed = [_text(row.xpath("./td[2]")[0]) for row in doc.xpath("//table[@class='attention']//tr[@data-case]")]
    assert listed and not any("Alur" in label for label in listed)
    note = doc.xpath("//section[@class='attention']//*[@data-note='privacy']")
    assert len(note) == 1 and "fewer than 5 cases are not listed" in _text(note[0])


def test_no_time_lost_or_share_from_fewer_than_5_cases(published: Path, tmp_path: Path) -> None:
    """QA: a first step's "time lost" was one child's wait (a first step waits only when the case is sent back),
    and "> standard 8%" of 12 cases told the exact count the deviation table shows as "< 5"."""
    copy = _copy(published, tmp_path)
    sop = "smpn2-ngawi/bk001-prosedur"
    with duckdb.connect(str(copy)) as conn:  # one case of the year waited 1,000 working hours for s1; none over
        conn.execute("UPDATE event_timing SET wait_working = NULL, over_standard = FALSE WHERE sop_id = ? "
                     "AND step_id = 's1'", [sop])
        conn.execute("""UPDATE event_timing SET wait_working = 60000 WHERE sop_id = ? AND step_id = 's1' AND case_id = (
                            SELECT min(case_id) FROM case_results WHERE sop_id = ?
                              AND opened_at >= TIMESTAMPTZ '2025-01-01 00:00+07'
                              AND opened_at < TIMESTAMPTZ '2026-01-01 00:00+07')""", [sop, sop])
    (path,) = write_reports(copy, period="2025", institutions=[INST], formats={"html"}, out_dir=tmp_path / "out")
    doc = _doc(path)
    section = doc.xpath(f"//section[@data-sop='{sop}']")[0]
    first = section.xpath(".//table[@class='bottlenecks']//tr[@data-step='s1']")
    assert first, "the 1,000 hours rank the first step among the bottlenecks"
    assert _text(first[0].xpath(".//*[@data-key='bn_score']")[0]) == "n < 5"
    shares = [(_text(cell), cell.getparent().getparent()) for cell in section.xpath(".//*[@data-key='bn_share_over']")]
    assert any(text == "< 5 kasus" for text, _ in shares)
    for text, row in shares:  # a share shown as a number comes from 5 or more cases over the standard
        if text != "< 5 kasus" and text not in ("–", "0%"):
            assert "kasus melebihi standar" in _text(row.getnext())


def test_a_period_not_over_at_the_run_says_so(published: Path, tmp_path: Path) -> None:
    """QA: reports of a quarter still running, or of a month to come, read like finished periods."""
    copy = _copy(published, tmp_path)
    with duckdb.connect(str(copy)) as conn:  # the run judged the cases on 15 Nov 2025, 10:00 WIB
        conn.execute("""UPDATE runs SET params = '{"as_of": "2025-11-15T03:00:00+00:00"}'""")
    notes = {}
    for period in ("2025-10", "2025-Q4", "2026-01"):
        (path,) = write_reports(copy, period=period, institutions=[INST], formats={"html"}, out_dir=tmp_path / "out")
        found = _doc(path).xpath("//*[@data-note='period']")
        notes[period] = _text(found[0]) if found else None
    assert notes["2025-10"] is None
    assert notes["2025-Q4"] == ("Periode ini belum selesai: data sampai 15 Nov 2025; angka dapat berubah sampai "
                                "periode berakhir.")
    assert notes["2026-01"] is not None and notes["2026-01"].startswith("Periode ini belum dimulai saat analisis")


class _KeepFigures(_Charts):
    """Charts that keep the plotly figures instead of drawing them (kaleido is not what is tested here)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[object] = []

    def svg(self, fig: object, width: int, height: int) -> str | None:
        self.figures.append(fig)
        return "data:image/svg+xml;base64,"


def test_step_percentiles_are_suppressed_on_the_values_they_come_from(published: Path, tmp_path: Path) -> None:
    # finding 3: as the engine writes it, a first step has no waiting time; here 2 cases of bk001-prosedur still
    # have one (repeated or out-of-order steps) and none of bk001-alur
    db = _copy(published, tmp_path)
    with duckdb.connect(str(db)) as conn:
        conn.execute("""
            UPDATE event_timing t SET wait_working = NULL FROM sop_steps st
            WHERE st.sop_id = t.sop_id AND st.step_id = t.step_id AND st.ord = 0
              AND (t.sop_id <> 'smpn2-ngawi/bk001-prosedur' OR t.case_id NOT IN (
                   SELECT case_id FROM event_timing WHERE sop_id = 'smpn2-ngawi/bk001-prosedur'
                   ORDER BY case_id LIMIT 2))""")
        first = dict(conn.execute("SELECT sop_id, step_id FROM sop_steps WHERE ord = 0").fetchall())
        expected = conn.execute("""
            SELECT t.sop_id, t.step_id, quantile_cont(t.wait_working, 0.5), quantile_cont(t.proc_working, 0.5),
                   count(DISTINCT t.case_id) FILTER (WHERE t.wait_working IS NOT NULL),
                   count(DISTINCT t.case_id)
            FROM event_timing t JOIN case_results r USING (sop_id, case_id)
            WHERE r.institution_id = ? AND r.opened_at >= TIMESTAMPTZ '2025-01-01 00:00+07'
              AND r.opened_at < TIMESTAMPTZ '2026-01-01 00:00+07'
            GROUP BY ALL""", [INST]).fetchall()
    out = tmp_path / "out"
    (path,) = write_reports(db, period="2025", institutions=[INST], formats={"html"}, out_dir=out)
    doc = _doc(path)
    for sop_id, step_id, wait_p50, _proc, n_wait, n_cases in expected:
        row = doc.xpath(f"//section[@data-sop='{sop_id}']//table[@class='steps']//tr[@data-step='{step_id}']")[0]
        cell = row.xpath(".//*[@data-key='step_wait_p50']")[0]
        p90 = row.xpath(".//*[@data-key='step_wait_p90']")[0]
        count = row.xpath(".//*[@data-key='step_n_cases']")[0]
        assert n_cases >= 5
        if count.get("data-value") == "suppressed":  # the SOP's cases minus 1-4 (test_report_findings.py)
            assert " − < 5" in _text(count)
        else:
            assert float(count.get("data-value")) == n_cases
        if n_wait == 0:  # nothing to wait for: a dash, not a time and not "n < 5"
            assert (cell.text_content(), p90.text_content()) == ("–", "–")
        elif n_wait < 5:
            assert (_text(cell), _text(p90)) == ("n < 5", "n < 5")
        else:
            assert float(cell.get("data-value")) == pytest.approx(wait_p50)
    prosedur_s1 = doc.xpath("//section[@data-sop='smpn2-ngawi/bk001-prosedur']//table[@class='steps']"
                            f"//tr[@data-step='{first['smpn2-ngawi/bk001-prosedur']}']")[0]
    assert "n < 5" in _text(prosedur_s1)
    # no bottleneck row or sentence shows a waiting time the step table suppresses
    for row in doc.xpath("//table[@class='bottlenecks']//tr[@data-step]"):
        sop_id = row.xpath("ancestor::section/@data-sop")[0]
        if row.get("data-step") == first[sop_id]:
            assert row.xpath(".//*[@data-key='bn_wait_p50']")[0].text_content() in ("–", "n < 5")
            assert "waktu tunggu" not in _text(row.getnext())
    # the bottleneck chart: no "median waktu tunggu" bar for a first step (from 0 or 2 cases)
    charts = _KeepFigures()
    with duckdb.connect(str(db), read_only=True) as conn:
        institution_report(conn, INST, parse_period("2025"), "id", charts=charts)
    step_figures = [f for f in charts.figures if len(f.data) == 2]  # type: ignore[attr-defined]
    assert len(step_figures) == 2  # one per SOP
    for fig in step_figures:
        wait_bar, proc_bar = fig.data  # type: ignore[attr-defined]
        assert wait_bar.name == "median waktu tunggu"
        bars = dict(zip(wait_bar.y, wait_bar.x, strict=True))
        assert bars["1"] is None and proc_bar.x[0] is not None
        assert sum(x is not None for x in wait_bar.x) >= 2


def test_stalled_rows_name_the_step_done_and_the_next_standard(published: Path, tmp_path: Path) -> None:
    # finding 5: a stalled deviation's step is the last step done and its expected the next step's standard (here
    # the engine's bilingual default, finding 10): every bk001-alur case of 2025 stalled after step 2
    db = _copy(published, tmp_path)
    with duckdb.connect(str(db)) as conn:
        conn.execute("""
            INSERT INTO deviations (run_id, institution_id, sop_id, case_id, kind, step_id, activity, expected,
                                    observed, severity, occurred_at)
            SELECT r.run_id, r.institution_id, r.sop_id, r.case_id, 'stalled_case', st.step_id, st.activity, ?,
                   '9 hari kerja', 'high', TIMESTAMPTZ '2026-01-31 17:00+00'
            FROM case_results r JOIN sop_steps st ON st.sop_id = r.sop_id AND st.ord = 1
            WHERE r.sop_id = 'smpn2-ngawi/bk001-alur'""", [DEFAULT_STALL])
        row = conn.execute("SELECT no, activity FROM sop_steps WHERE sop_id = 'smpn2-ngawi/bk001-alur' AND ord = 1"
                           ).fetchone()
    assert row is not None
    no, activity = str(row[0]).rstrip("."), row[1]
    for lang, want, meaning in [
        ("id", f"sejak langkah {no} “{activity}” selesai; melebihi standar langkah berikutnya: 5 hari kerja (bawaan)",
         "sejak langkah terakhirnya"),
        ("en", f"since step {no} “{activity}” ended; over the next step's standard: 5 working days (default)",
         "idle since its last step"),
    ]:
        (path,) = write_reports(db, period="2025", institutions=[INST], formats={"html"}, out_dir=tmp_path / lang,
                                lang=lang)
        doc = _doc(path)
        stalled = doc.xpath("//section[@data-sop='smpn2-ngawi/bk001-alur']//tr[@data-kind='stalled_case']")
        assert [_text(r.xpath("./td[2]")[0]) for r in stalled] == [want]
        body = _text(doc.xpath("//body")[0])
        assert "bawaan / default" not in body and ("bawaan" not in body if lang == "en" else True)
        appendix = [r for r in doc.xpath("//section[@class='appendix']//tr") if "(stalled_case)" in _text(r)]
        assert meaning in _text(appendix[0]) and ("berikutnya" if lang == "id" else "next step") in _text(appendix[0])


def test_deviation_kinds_read_as_on_the_dashboard(reports: Path, published: Path, tmp_path: Path) -> None:
    # finding 10: the report's kind names are the dashboard's, in the report's language
    (en,) = write_reports(published, period=PERIOD, institutions=[INST], formats={"html"}, out_dir=tmp_path,
                          lang="en")
    for path, lang in [(reports / f"{INST}_{PERIOD}.html", "id"), (en, "en")]:
        doc = _doc(path)
        appendix = doc.xpath("//section[@class='appendix']//tr[td]")
        assert len(appendix) == 10
        for row in appendix:
            label = row.xpath("./td[1]")[0]
            key = _text(label.xpath("./span")[0]).strip("()")
            assert _text(label).removesuffix(f" ({key})") == i18n.t(f"kind.{key}", lang)
        rows = doc.xpath("//tr[@data-kind]")
        assert rows
        for row in rows:
            assert _text(row.xpath("./td[1]")[0]) == i18n.t(f"kind.{row.get('data-kind')}", lang)


def test_report_names_sops_and_the_institution_not_raw_ids(reports: Path, published: Path) -> None:
    # finding 11: bontang-bk's SOP has no number: the reader sees its title, not "Nomor SOP: –" or its id
    doc = _doc(reports / f"bontang-bk_{PERIOD}.html")
    with duckdb.connect(str(published), read_only=True) as conn:
        sops = conn.execute("SELECT sop_id, title FROM sops WHERE institution_id = 'bontang-bk'").fetchall()
    body = _text(doc.xpath("//body")[0])
    assert "bontang-bk" not in body and "Nomor SOP: –" not in body
    for sop_id, title in sops:
        row = doc.xpath(f"//section[@class='summary']//tr[@data-sop='{sop_id}']")[0]
        assert _text(row.xpath("./td[1]")[0]) == title
        assert sop_id not in _text(doc.xpath(f"//section[@data-sop='{sop_id}']")[0])
