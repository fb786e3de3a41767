"""Dashboard data access, access control and routes, on a real published DuckDB file (no browser)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from flask.testing import FlaskClient

from dashboards import auth, i18n, queries
from dashboards.app import create_app
from dashboards.queries import ALL, Filters, Grants
from pipeline.errors import UserError
from tests.fixtures_published import build_published_db

PENGAWAS = Grants.only(["smpn2-ngawi", "bontang-bk"])
ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dash")
    build_published_db(root / "published" / "fx.duckdb")
    return root / "published"


@pytest.fixture(scope="module")
def src(pub: Path) -> queries.Source:
    return queries.source(pub)


def sql(pub: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        return conn.execute(query, params or []).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------- queries


def test_overview_numbers_equal_the_sql_over_the_results(pub: Path, src: queries.Source) -> None:
    ov = queries.overview(src, ALL, Filters())
    n, ok, devs = sql(pub, "SELECT count(*), count(*) FILTER (WHERE compliant), sum(n_deviations) "
                           "FROM case_results")[0]
    total = ov["total"].iloc[0]
    assert (total["cases"], total["compliant"], total["deviations"]) == (n, ok, devs)
    by_inst = dict(sql(pub, "SELECT institution_id, avg(compliant::INT) FROM case_results GROUP BY 1"))
    got = dict(zip(ov["institution"]["institution_id"], ov["institution"]["rate"], strict=True))
    assert got == pytest.approx(by_inst)
    # the fixture has every kind a procedure can show (rule breaches belong to rules documents)
    assert set(ov["kind"]["kind"]) == set(queries.DEVIATION_KINDS) - {"rule_breach"}
    month = sql(pub, "SELECT count(*) FROM case_results WHERE strftime(opened_at, '%Y-%m') = '2025-10'")[0][0]
    oct_ = queries.overview(src, ALL, Filters(start="2025-10", end="2025-10"))
    assert oct_["total"]["cases"].iloc[0] == month
    assert list(oct_["month"]["month"]) == ["2025-10"]


def test_a_user_of_one_institution_gets_nothing_of_another(pub: Path, src: queries.Source) -> None:
    other = Filters(inst="rppsa-mataram")
    assert queries.overview(src, PENGAWAS, other)["total"].empty
    rows, total = queries.deviation_page(src, PENGAWAS, other, 0, 100)
    assert total == 0 and rows.empty
    rppsa_case, rppsa_sop = sql(pub, "SELECT case_id, sop_id FROM case_results "
                                     "WHERE institution_id = 'rppsa-mataram' LIMIT 1")[0]
    assert queries.case_detail(src, PENGAWAS, rppsa_case) is None
    assert queries.case_detail(src, ALL, rppsa_case) is not None
    assert queries.process_map(src, PENGAWAS, Filters(), rppsa_sop)["steps"].empty
    assert queries.step_histograms(src, PENGAWAS, Filters(), rppsa_sop)["bins"].empty
    assert queries.sop_model_json(src, PENGAWAS, rppsa_sop) is None
    assert set(queries.institutions(src, PENGAWAS)["institution_id"]) == {"smpn2-ngawi", "bontang-bk"}
    # without an institution filter the pengawas sees exactly the granted ones
    rows, total = queries.deviation_page(src, PENGAWAS, Filters(), 0, 100)
    expected = sql(pub, "SELECT count(*) FROM deviations WHERE institution_id IN ('smpn2-ngawi', 'bontang-bk')")
    assert total == expected[0][0]
    assert set(rows["institution_id"]) <= {"smpn2-ngawi", "bontang-bk"}
    kepala = auth.User("k", "kepala", ("rppsa-mataram",)).grants
    assert set(queries.overview(src, kepala, Filters())["institution"]["institution_id"]) == {"rppsa-mataram"}


def test_deviation_pages_are_small_sorted_and_filtered(pub: Path, src: queries.Source) -> None:
    rows, total = queries.deviation_page(src, ALL, Filters(), 0, 100_000)
    assert len(rows) == queries.PAGE_SIZE and total == sql(pub, "SELECT count(*) FROM deviations")[0][0]
    rows, total = queries.deviation_page(src, ALL, Filters(kind="overdue_step", sev="high"), 0, 50,
                                         [{"colId": "occurred_at", "sort": "asc"}])
    assert total == sql(pub, "SELECT count(*) FROM deviations WHERE kind = 'overdue_step' AND severity = 'high'")[0][0]
    assert list(rows["occurred_at"]) == sorted(rows["occurred_at"])
    # a crafted sort column is ignored, not executed
    rows, _ = queries.deviation_page(src, ALL, Filters(), 0, 5, [{"colId": "1; DROP TABLE deviations", "sort": "x"}])
    assert len(rows) == 5
    n_role = sql(pub, "SELECT count(*) FROM deviations d JOIN sop_steps s USING (sop_id, step_id) "
                      "WHERE s.role = 'guru_bk'")[0][0]
    assert queries.deviation_page(src, ALL, Filters(role="guru_bk"), 0, 1)[1] == n_role


def test_step_histogram_bins_count_every_execution(pub: Path, src: queries.Source) -> None:
    sop = "smpn2-ngawi/bk001-prosedur"
    h = queries.step_histograms(src, ALL, Filters(), sop)
    n = sql(pub, "SELECT count(*) FROM event_timing WHERE sop_id = ?", [sop])[0][0]
    assert int(h["bins"]["cnt"].sum()) == n
    assert len(h["bins"]) <= queries.HIST_BINS * len(h["steps"])  # bins, not events, go to the browser
    over = sql(pub, "SELECT count(*) FROM event_timing WHERE sop_id = ? AND over_standard", [sop])[0][0]
    assert int(h["bins"]["over"].sum()) == over


def test_process_map_and_variants_with_and_without_the_variants_table(pub: Path, tmp_path: Path) -> None:
    sop = "smpn2-ngawi/bk001-prosedur"
    with_table = queries.process_map(queries.source(pub), ALL, Filters(), sop)
    assert with_table["variants"]["n_cases"].iloc[0] == sql(
        pub, "SELECT count(*) FROM case_results WHERE sop_id = ? GROUP BY variant_hash ORDER BY 1 DESC LIMIT 1",
        [sop])[0][0]
    modelled = with_table["edges"][with_table["edges"]["modelled"]]
    assert {("start", "s1"), ("s1", "s2")} <= set(zip(modelled["src"], modelled["dst"], strict=True))
    assert (~with_table["edges"]["modelled"]).any()  # the swapped and repeated paths show up
    # an engine that does not publish `variants`: the same top paths from case_results and event_timing
    other = tmp_path / "published"
    other.mkdir()
    shutil.copy(pub / "fx.duckdb", other / "fx.duckdb")
    conn = duckdb.connect(str(other / "fx.duckdb"))
    conn.execute("DROP TABLE variants")
    conn.close()
    (other / "CURRENT").write_text("fx.duckdb")
    without = queries.process_map(queries.source(other), ALL, Filters(), sop)
    assert list(without["variants"]["n_cases"]) == list(with_table["variants"]["n_cases"])
    assert list(without["variants"]["steps"].iloc[0]) == list(with_table["variants"]["steps"].iloc[0])


def test_step_medians_weigh_the_values_they_come_from_and_need_five(pub: Path, tmp_path: Path) -> None:
    """A month's median waiting time counts as often as the waits it comes from, not the executions (a first
    step waits in almost none); with fewer than 5 waits in view there is no median (one child's wait)."""
    sop = "smpn2-ngawi/bk001-prosedur"
    other = tmp_path / "published"
    other.mkdir()
    shutil.copy(pub / "fx.duckdb", other / "fx.duckdb")
    conn = duckdb.connect(str(other / "fx.duckdb"))
    conn.execute("DELETE FROM step_metrics WHERE sop_id = ? AND step_id IN ('s1', 's2')", [sop])
    conn.execute("INSERT INTO step_metrics (run_id, institution_id, sop_id, step_id, period, n, wait_p50, "
                 "proc_p50, n_wait, n_proc) VALUES "
                 "('r', 'smpn2-ngawi', $sop, 's1', '2025-10', 100, 10.0, 20.0, 5, 100), "
                 "('r', 'smpn2-ngawi', $sop, 's1', '2025-11', 10, 100.0, 20.0, 10, 10), "
                 "('r', 'smpn2-ngawi', $sop, 's2', '2025-10', 478, 79.0, 20.0, 3, 478)", {"sop": sop})
    conn.close()
    (other / "CURRENT").write_text("fx.duckdb")
    src = queries.source(other)
    for frame in (queries.process_map(src, ALL, Filters(), sop)["steps"],
                  queries.step_histograms(src, ALL, Filters(), sop)["metrics"]):
        by_step = frame.set_index("step_id")
        assert by_step.loc["s1", "wait_p50"] == pytest.approx((5 * 10.0 + 10 * 100.0) / 15)  # not 18.2
        assert by_step.loc["s1", "proc_p50"] == pytest.approx(20.0)
        assert pd.isna(by_step.loc["s2", "wait_p50"]) and by_step.loc["s2", "proc_p50"] == pytest.approx(20.0)


def test_the_source_switches_when_current_changes(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    build_published_db(pub / "a.duckdb", cases_per_sop=10)
    src = queries.Source(pub)
    first = queries.overview(src, ALL, Filters())["total"]["cases"].iloc[0]
    build_published_db(pub / "b.duckdb", cases_per_sop=20)  # points CURRENT at b
    old = src._gen
    second = queries.overview(src, ALL, Filters())["total"]["cases"].iloc[0]
    assert second == 2 * first
    assert old is not None and old.retired
    with pytest.raises(duckdb.ConnectionException):
        old.conn.execute("SELECT 1")  # the old file's connection is closed
    (pub / "CURRENT").unlink()
    assert queries.overview(src, ALL, Filters())["total"].empty  # nothing published: empty, no crash
    src.close()


def test_an_idle_dashboard_lets_go_of_a_superseded_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any query after a new run was published, the dashboard still closes the old file within its
    watch interval, so the run after next can write into it (DuckDB's lock, seen from another process)."""
    import subprocess
    import sys
    import time

    monkeypatch.setattr(queries.Source, "WATCH_SECONDS", 0.1)
    pub = tmp_path / "published"
    build_published_db(pub / "a.duckdb", cases_per_sop=10)
    src = queries.Source(pub)
    assert not queries.overview(src, ALL, Filters())["total"].empty  # the dashboard holds a.duckdb now
    writable = [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('CHECKPOINT')",
                str(pub / "a.duckdb")]
    assert subprocess.run(writable, capture_output=True).returncode != 0  # held: the writer is refused
    build_published_db(pub / "b.duckdb", cases_per_sop=10)  # a new run; nobody looks at the dashboard
    deadline = time.monotonic() + 10
    while subprocess.run(writable, capture_output=True).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert subprocess.run(writable, capture_output=True).returncode == 0
    src.close()
    time.sleep(0.3)  # the watch does not open anything again after close()
    assert src._gen is None


def test_indonesian_formats() -> None:
    assert i18n.fmt_int(1234) == "1.234"
    assert i18n.fmt_num(2.5) == "2,5"
    assert i18n.fmt_num(1234.5, 1) == "1.234,5"
    assert i18n.fmt_pct(0.853) == "85,3%"
    assert i18n.fmt_date("2026-01-16T09:30:00+00:00") == "16 Jan 2026"
    assert i18n.fmt_date("2026-08-17T01:00:00+00:00", tz="Asia/Jakarta", time=True) == "17 Agu 2026 08:00"
    assert i18n.fmt_month("2026-05") == "Mei 2026"
    assert (i18n.fmt_int(1234, "en"), i18n.fmt_num(2.5, 1, "en"), i18n.fmt_month("2026-05", "en")) == (
        "1,234", "2.5", "May 2026")
    assert i18n.t("nav.ringkasan") == "Ringkasan" and i18n.t("nav.ringkasan", "en") == "Overview"
    text = i18n.explain("overdue_step", "id", step="s3", activity="Konseling", expected="30 Menit",
                        observed="45 menit kerja")
    assert text == "Langkah s3 \u201cKonseling\u201d memakan waktu 45 menit kerja, melebihi standar 30 Menit."
    assert all(i18n.has(f"kind.{k}") and i18n.has(f"explain.{k}") for k in queries.DEVIATION_KINDS)
    # rule breaches read as a supervisor would say them: the levels that took the case, the score and the KKM
    path = '{"path": ["guru_mapel", "guru_bk"], "problem": "skipped_level"}'
    assert i18n.observed_text("guru_mapel -> guru_bk", path) == "Guru Mapel → Guru BK"
    score = '{"score": 70.5, "pass_mark": 75.0, "problem": "no_remedial"}'
    assert i18n.observed_text("70.5 < 75.0", score) == "70,5 < KKM 75,0 (tanpa remedial)"
    assert i18n.observed_text("70.5 < 75.0", score, "en") == "70.5 < KKM 75.0 (no remedial)"
    assert i18n.explain("rule_breach", "id", step="layanan_berjenjang", activity="Layanan khusus berjenjang",
                        expected="butir 1d", observed="Guru BK") == (
        "Siswa melanggar aturan layanan_berjenjang (butir 1d): Guru BK. "
        "Aturannya: \u201cLayanan khusus berjenjang\u201d")


# ---------------------------------------------------------------------------------------------- auth


def test_demo_users_and_session_secret_are_private_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users_file = tmp_path / "users.yaml"
    auth.ensure_demo_users(users_file)
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    users = auth.load_users(users_file)
    assert {u: (users[u].role, users[u].institutions) for u in users} == {
        "qa": ("qa", ()), "pengawas": ("pengawas", ("smpn2-ngawi", "bontang-bk")),
        "kepala-rppsa": ("kepala", ("rppsa-mataram",))}
    assert "patuh-demo" not in users_file.read_text()
    assert auth.authenticate(users_file, "qa", "patuh-demo") is not None
    assert auth.authenticate(users_file, "qa", "wrong") is None
    auth.ensure_demo_users(users_file)  # an existing file is never overwritten
    auth.add_user(users_file, "budi", "pengawas", ["smpn2-ngawi"], "rahasia-123")
    assert auth.load_users(users_file)["budi"].grants == Grants.only(["smpn2-ngawi"])
    monkeypatch.delenv("PATUH_SESSION_SECRET", raising=False)
    key = auth.session_secret(users_file)
    assert stat.S_IMODE((tmp_path / "session.key").stat().st_mode) == 0o600
    assert auth.session_secret(users_file) == key
    monkeypatch.setenv("PATUH_SESSION_SECRET", "from-env-" + "s" * 32)
    assert auth.session_secret(users_file) == b"from-env-" + b"s" * 32
    # a short key lets anyone sign a session cookie with any user's grants
    monkeypatch.setenv("PATUH_SESSION_SECRET", "from-env")
    with pytest.raises(UserError, match="session key is too short"):
        auth.session_secret(users_file)
    monkeypatch.delenv("PATUH_SESSION_SECRET")
    (tmp_path / "session.key").write_text("")
    with pytest.raises(UserError, match="delete the key file"):
        auth.session_secret(users_file)


@pytest.fixture(scope="module")
def app_client(pub: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    users = tmp_path_factory.mktemp("users") / "users.yaml"
    auth.ensure_demo_users(users)
    reports = pub.parent / "reports"
    (reports / "smpn2-ngawi").mkdir(parents=True)
    (reports / "smpn2-ngawi" / "2026-01.html").write_text("<h1>laporan smpn2</h1>")
    (reports / "rppsa-mataram_2026-01.pdf").write_bytes(b"%PDF-1.4 rppsa")
    (reports / "index.html").write_text("<h1>index</h1>")
    # QA: a copy of Ngawi's report kept for the Mataram home, in a folder named after the recipient
    (reports / "salinan-untuk-rppsa-mataram").mkdir()
    (reports / "salinan-untuk-rppsa-mataram" / "smpn2-ngawi_2026-01.html").write_text("<h1>salinan</h1>")
    app = create_app(pub, users, secret_key=b"k" * 32)
    yield app, users


def login(client: FlaskClient, user: str, password: str = "patuh-demo") -> Any:
    return client.post("/login", data={"username": user, "password": password, "next": "/"}, headers=ORIGIN)


def post_callback(client: FlaskClient, app: Any, output_ids: list[str], inputs: list[dict[str, Any]],
                  state: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> Any:
    """Fire a callback the way the browser does, from the app's own callback map."""
    key = next(k for k in app.callback_map if all(o in k for o in output_ids))
    names = key[2:-2].split("...") if key.startswith("..") else [key]
    outputs = [dict(zip(("id", "property"), n.rsplit(".", 1), strict=True)) for n in names]
    payload = {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
               "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
    return client.post("/_dash-update-component", json=payload, headers=headers if headers is not None else ORIGIN)


def test_not_logged_in_gets_the_login_page_or_401(app_client: tuple[Any, Path]) -> None:
    app, _ = app_client
    client = app.server.test_client()
    response = client.get("/penyimpangan?kind=missing_step")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/penyimpangan")
    assert client.get("/login").status_code == 200
    assert client.get("/_dash-layout").status_code == 401
    response = post_callback(client, app, ["ring-kpis"], [{"id": "ring-ctx", "property": "data", "value": {}}])
    assert response.status_code == 401
    assert client.get("/export/penyimpangan.csv").status_code == 302
    assert login(client, "pengawas", "wrong").status_code == 401


def test_session_cookie_flags(app_client: tuple[Any, Path]) -> None:
    app, _ = app_client
    cookie = login(app.server.test_client(), "qa").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.server.test_client().post(
        "/login", data={"username": "qa", "password": "patuh-demo"}, base_url="https://localhost",
        headers={"Origin": "https://localhost"}).headers["Set-Cookie"]
    assert "Secure" in secure


def test_a_crafted_callback_for_another_institution_returns_nothing(app_client: tuple[Any, Path]) -> None:
    app, _ = app_client
    client = app.server.test_client()
    login(client, "pengawas")
    ctx = {"inst": "rppsa-mataram", "lang": "id"}
    response = post_callback(client, app, ["ring-kpis"], [{"id": "ring-ctx", "property": "data", "value": ctx}])
    assert response.status_code == 200
    assert "rppsa" not in response.get_data(as_text=True).lower()
    assert "Tidak ada data" in response.get_data(as_text=True)
    response = post_callback(
        client, app, ["dev-grid"],
        [{"id": "dev-grid", "property": "getRowsRequest", "value": {"startRow": 0, "endRow": 100}}],
        [{"id": "dev-ctx", "property": "data", "value": ctx}])
    body = response.get_json()["response"]
    assert body["dev-grid"]["getRowsResponse"] == {"rowData": [], "rowCount": 0}
    # the same request for a granted institution does return rows
    ok = post_callback(
        client, app, ["dev-grid"],
        [{"id": "dev-grid", "property": "getRowsRequest", "value": {"startRow": 0, "endRow": 100}}],
        [{"id": "dev-ctx", "property": "data", "value": {"inst": "bontang-bk"}}]).get_json()["response"]
    rows = ok["dev-grid"]["getRowsResponse"]["rowData"]
    assert 0 < len(rows) <= queries.PAGE_SIZE and {r["institution_id"] for r in rows} == {"bontang-bk"}
    # and the export route only writes granted rows, whatever the query string says
    csv_text = client.get("/export/penyimpangan.csv?inst=rppsa-mataram").get_data(as_text=True)
    assert csv_text.strip() == "" or len(csv_text.strip().splitlines()) == 1


def test_a_foreign_origin_is_refused(app_client: tuple[Any, Path]) -> None:
    app, _ = app_client
    client = app.server.test_client()
    login(client, "qa")
    inputs = [{"id": "ring-ctx", "property": "data", "value": {}}]
    assert post_callback(client, app, ["ring-kpis"], inputs, headers={"Origin": "https://evil.example"}
                         ).status_code == 403
    assert post_callback(client, app, ["ring-kpis"], inputs,
                         headers={"Referer": "https://evil.example/page"}).status_code == 403
    assert post_callback(client, app, ["ring-kpis"], inputs).status_code == 200


def test_csv_export_is_the_whole_filtered_set_for_the_user(app_client: tuple[Any, Path], pub: Path) -> None:
    app, _ = app_client
    client = app.server.test_client()
    login(client, "pengawas")
    response = client.get("/export/penyimpangan.csv?kind=overdue_step")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    expected = sql(pub, "SELECT count(*) FROM deviations WHERE kind = 'overdue_step' "
                        "AND institution_id IN ('smpn2-ngawi', 'bontang-bk')")[0][0]
    assert len(rows) == expected > queries.PAGE_SIZE
    assert {r["institution_id"] for r in rows} == {"smpn2-ngawi", "bontang-bk"}


def test_csv_export_leaves_no_copy_on_the_server(app_client: tuple[Any, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The exported rows (children's cases) are not left in the server's temp folder, even while a download
    is still open or was never finished."""
    app, _ = app_client
    client = app.server.test_client()
    login(client, "qa")
    scratch = tmp_path / "server-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    response = client.get("/export/penyimpangan.csv?kind=overdue_step")
    assert response.status_code == 200 and list(scratch.iterdir()) == []
    assert len(response.get_data(as_text=True).splitlines()) > 1
    response.close()
    assert list(scratch.iterdir()) == []


def test_reports_are_listed_and_downloaded_per_grant(app_client: tuple[Any, Path], pub: Path) -> None:
    app, _ = app_client
    client = app.server.test_client()
    login(client, "pengawas")
    written = dt.datetime(2026, 1, 31, 17, 30, tzinfo=dt.UTC).timestamp()  # 1 Feb 00:30 in Ngawi (WIB)
    os.utime(pub.parent / "reports" / "smpn2-ngawi" / "2026-01.html", (written, written))
    page = post_callback(client, app, ["laporan-body"], [{"id": "laporan-ctx", "property": "data", "value": {}}])
    text = json.dumps(page.get_json())
    assert "smpn2-ngawi/2026-01.html" in text and "rppsa-mataram_2026" not in text and "index.html" not in text
    # a report's owner is the id its file name starts with, not an id somewhere in a folder's name
    assert "salinan-untuk-rppsa-mataram/smpn2-ngawi_2026-01.html" in text
    assert "1 Feb 2026 00:30 WIB" in text  # when it was written, as the report itself says it (local time)
    own = client.get("/laporan/unduh/smpn2-ngawi/2026-01.html")
    assert own.status_code == 200 and "sandbox" in own.headers["Content-Security-Policy"]
    assert client.get("/laporan/unduh/rppsa-mataram_2026-01.pdf").status_code == 404
    assert client.get("/laporan/unduh/../users.yaml").status_code == 404
    qa = app.server.test_client()
    login(qa, "qa")
    assert qa.get("/laporan/unduh/rppsa-mataram_2026-01.pdf").status_code == 200
    kepala = app.server.test_client()
    login(kepala, "kepala-rppsa")
    assert kepala.get("/laporan/unduh/salinan-untuk-rppsa-mataram/smpn2-ngawi_2026-01.html").status_code == 404
    assert kepala.get("/laporan/unduh/rppsa-mataram_2026-01.pdf").status_code == 200


def test_an_institution_the_user_may_not_see_reads_as_not_available(app_client: tuple[Any, Path]) -> None:
    """A pengawas who follows a link (or edits the URL) to another institution sees that it is not available to
    the account, not its raw id as if it were a choice, and no data."""
    app, _ = app_client
    client = app.server.test_client()
    login(client, "pengawas")
    page = post_callback(client, app, ["app-root"], [
        {"id": "url", "property": "pathname", "value": "/"},
        {"id": "url", "property": "search", "value": "?inst=rppsa-mataram"}]).get_json()
    text = json.dumps(page)
    assert "Instansi tidak tersedia untuk akun ini" in text
    assert '"label": "rppsa-mataram"' not in text and "Mataram" not in text


def test_every_page_renders_for_every_role(app_client: tuple[Any, Path]) -> None:
    app, _ = app_client
    from dashboards.app import PAGES

    for user in ("qa", "pengawas", "kepala-rppsa"):
        client = app.server.test_client()
        login(client, user)
        for page in PAGES:
            for search in ("", "?lang=en"):
                response = post_callback(client, app, ["app-root"], [
                    {"id": "url", "property": "pathname", "value": page.PATH},
                    {"id": "url", "property": "search", "value": search}])
                assert response.status_code == 200, (user, page.PATH, search)
        if user == "kepala-rppsa":
            text = response.get_data(as_text=True)
            assert "smpn2-ngawi" not in text


def test_a_one_sop_page_names_the_sop_it_chose(app_client: tuple[Any, Path], pub: Path) -> None:
    """Without a chosen SOP, the process map and step times show one: the SOP filter says which."""
    app, _ = app_client
    client = app.server.test_client()
    login(client, "pengawas")
    for path, prefix in (("/peta-proses", "peta"), ("/waktu-langkah", "waktu")):
        for search, word in (("", "Otomatis"), ("?lang=en", "Automatic")):
            page = post_callback(client, app, ["app-root"], [
                {"id": "url", "property": "pathname", "value": path},
                {"id": "url", "property": "search", "value": search}]).get_data(as_text=True)
            lang = "en" if search else "id"
            shown = post_callback(client, app, [f"{prefix}-sop-title"], [
                {"id": f"{prefix}-ctx", "property": "data", "value": {"lang": lang}}]).get_json()["response"]
            header = shown[f"{prefix}-sop-title"]["children"]  # "<institution> · [<number> · ]<title>[ · ...]"
            parts = header.split(" · ")
            chosen = [(title, name) for title, name in sql(
                pub, "SELECT s.title, i.name FROM sops s JOIN institutions i USING (institution_id) "
                     "WHERE s.institution_id IN ('smpn2-ngawi', 'bontang-bk') AND s.kind = 'procedure'")
                      if parts[0] == name and title in parts[1:]]
            assert len(chosen) == 1, header
            title, name = chosen[0]
            layout = json.dumps(json.loads(page), ensure_ascii=False)
            assert f"{word}: " in layout and f"{title} ({name})" in layout, (path, search)


def test_a_hand_written_users_file_keeps_a_user_named_on(tmp_path: Path) -> None:
    """Users files are read as YAML 1.2, like every other Patuh file: a user typed in by hand as ``on:`` (or
    ``no:``, ``yes:``) keeps that name and can log in. YAML 1.1 read these keys as booleans ("True")."""
    users = tmp_path / "users.yaml"
    auth.add_user(users, "budi", "pengawas", ["smpn2-ngawi"], "rahasia-123")
    entry = auth.load_users(users)["budi"]
    users.write_text(f"users:\n  on:\n    role: qa\n    password_hash: '{entry.password_hash}'\n", encoding="utf-8")
    assert set(auth.load_users(users)) == {"on"}
    assert auth.authenticate(users, "on", "rahasia-123") is not None


def test_cli_user_add(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    users = tmp_path / "users.yaml"
    env = {**os.environ, "PATUH_NEW_PASSWORD": "rahasia-123"}
    result = CliRunner().invoke(app, ["user", "add", "siti", "--role", "kepala", "--institution",
                                      "smpn2-ngawi", "--users", str(users)], env=env)
    assert result.exit_code == 0, result.output
    assert auth.authenticate(users, "siti", "rahasia-123") is not None
    # a misspelt institution would grant nothing: refused before any password is asked for
    typo = CliRunner().invoke(app, ["user", "add", "budi", "--role", "pengawas", "--institution", "smpn2-ngawai",
                                    "--users", str(users)], env={**os.environ, "PATUH_NEW_PASSWORD": ""})
    assert isinstance(typo.exception, UserError) and "unknown institution(s) 'smpn2-ngawai'" in str(typo.exception)
    assert "budi" not in auth.load_users(users)


def test_serve_builds_the_app_over_the_published_folder_with_demo_users(tmp_path: Path) -> None:
    from dashboards.serve import build

    build_published_db(tmp_path / "published" / "fx.duckdb", cases_per_sop=5)
    wsgi, users_file, created = build(tmp_path / "patuh.duckdb")
    assert created and users_file == tmp_path / "users.yaml" and users_file.exists()
    assert not (tmp_path / "patuh.duckdb").exists()  # the working database is never opened
    client = wsgi.test_client()  # type: ignore[attr-defined]
    assert client.get("/").status_code == 302
    assert login(client, "kepala-rppsa").status_code == 302
    assert client.get("/").status_code == 200
    assert build(tmp_path / "patuh.duckdb")[2] is False  # an existing users file is kept


def test_a_port_in_use_is_a_clear_error_before_any_work(tmp_path: Path) -> None:
    """`patuh serve` and `patuh demo` on a busy port: one message, exit 1, and the demo writes nothing."""
    import socket

    from tests.cli_process import patuh

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for args in (["serve"], ["demo", "--cases", "200"]):
            db = tmp_path / args[0] / "patuh.duckdb"
            out = patuh(*args, "--port", port, "--db", str(db), secret="k" * 32)
            assert out.returncode == 1, (args, out.stdout, out.stderr)
            assert f"port {port} on 127.0.0.1 is already in use" in out.stderr and "Traceback" not in out.stderr
            assert not (db.parent / "demo").exists() and not db.exists()
