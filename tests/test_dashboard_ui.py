"""QA findings 11 and 12 as a user sees them: names instead of ids, rules documents, a reversed period, the
open-cases KPI, the overview's hint and axis ticks.

A real published DuckDB file (tests/fixtures_published.py) with a rules document added (SMK N 1 Petasia's
academic rules from the catalogue, with rule breaches) and a between-steps limit breach as the engine
writes it (its step is the SLA's id).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from dashboards import auth, i18n
from dashboards.app import create_app
from pipeline.config import get_settings
from pipeline.sop import load_catalogue
from tests.fixtures_published import RUN_ID, build_published_db
from tests.test_dashboard import post_callback
from tests.test_dashboard_findings import client_for, find, page, texts

BONTANG = "bontang-bk/konseling-individu"
BONTANG_NAME = "Layanan Bimbingan dan Konseling Sekolah, Bontang"
NGAWI_NAME = "SMP Negeri 2 Ngawi"
RULES = "smkn1-petasia/peraturan-akademik"
RULES_NAME = "SMK Negeri 1 Petasia"
RULE = "layanan_berjenjang"


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui") / "published"
    db = build_published_db(root / "fx.duckdb")
    model = load_catalogue(get_settings().catalogue_dir).models[RULES]
    conn = duckdb.connect(str(db))
    try:
        conn.execute("INSERT INTO institutions (institution_id, name, kind, region, timezone) "
                     "VALUES ('smkn1-petasia', ?, 'school', 'Morowali Utara', 'Asia/Makassar')", [RULES_NAME])
        conn.execute("INSERT INTO sops (sop_id, institution_id, number, title, kind, n_steps, case_time, model_hash, "
                     "model) VALUES (?, 'smkn1-petasia', NULL, ?, 'rules', 0, NULL, 'x', ?)",
                     [RULES, model.title, json.dumps(model.model_dump(mode="json", by_alias=True))])
        rule = next(r for r in model.rules if r.id == RULE)
        for i in range(3):  # as pipeline/rules.py writes them: the rule id as step, its text and article
            student = f"stud{i:012d}"
            conn.execute("INSERT INTO case_results (run_id, institution_id, sop_id, case_id, opened_at, compliant, "
                         "n_deviations, status) VALUES (?, 'smkn1-petasia', ?, ?, "
                         "TIMESTAMPTZ '2026-01-10 02:00:00+00', FALSE, 1, 'open')", [RUN_ID, RULES, student])
            conn.execute("INSERT INTO deviations (run_id, institution_id, sop_id, case_id, kind, step_id, activity, "
                         "expected, observed, severity, occurred_at, detail, case_opened_at) "
                         "VALUES (?, 'smkn1-petasia', ?, ?, 'rule_breach', ?, ?, ?, 'guru_mapel,guru_bk', 'medium', "
                         "TIMESTAMPTZ '2030-01-01 00:00:00+00', ?, TIMESTAMPTZ '2026-01-10 02:00:00+00')",
                         [RUN_ID, RULES, student, RULE, rule.text, rule.article,
                          json.dumps({"path": ["guru_mapel", "guru_bk"]})])
        # a between-steps limit (Bontang's "penjadwalan", s1 -> s3): its step is the SLA's id
        conn.execute("UPDATE deviations SET step_id = 'penjadwalan', "
                     "occurred_at = TIMESTAMPTZ '2030-01-02 00:00:00+00' WHERE kind = 'case_sla_breach' AND sop_id = ? "
                     "AND case_id = (SELECT min(case_id) FROM deviations "
                     "WHERE kind = 'case_sla_breach' AND sop_id = ?)", [BONTANG, BONTANG])
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    reports = root.parent / "reports"
    reports.mkdir()
    (reports / "bontang-bk_2026-01.html").write_text("<h1>laporan</h1>")
    return root


@pytest.fixture(scope="module")
def app(pub: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    users = tmp_path_factory.mktemp("users") / "users.yaml"
    auth.ensure_demo_users(users)
    yield create_app(pub, users, secret_key=b"u" * 32)


def callback(app: Any, output: str, ctx_id: str, ctx: dict[str, Any], user: str = "qa") -> Any:
    response = post_callback(client_for(app, user), app, [output],
                             [{"id": ctx_id, "property": "data", "value": ctx}])
    assert response.status_code == 200
    return response.get_json()["response"]


def grid_rows(app: Any, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    request = {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "occurred_at", "sort": "desc"}]}
    response = post_callback(client_for(app), app, ["dev-grid.getRowsResponse"],
                             [{"id": "dev-grid", "property": "getRowsRequest", "value": request}],
                             [{"id": "dev-ctx", "property": "data", "value": ctx}])
    assert response.status_code == 200
    rows: list[dict[str, Any]] = response.get_json()["response"]["dev-grid"]["getRowsResponse"]["rowData"]
    return rows


def sop_label(pub: Path, sop_id: str) -> str:
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        row = conn.execute("SELECT number, title FROM sops WHERE sop_id = ?", [sop_id]).fetchone()
    finally:
        conn.close()
    assert row is not None
    return i18n.sop_label(row[0], row[1])


# ----------------------------------------------------------------------------------------- finding 11


def test_the_deviation_grid_shows_names_and_readable_steps_and_keeps_the_ids(app: Any, pub: Path) -> None:
    """QA finding 11: Instansi `bontang-bk`, Langkah `layanan_berjenjang` / `penjadwalan`."""
    rows = grid_rows(app, {})
    rule_row = next(r for r in rows if r["step_id"] == RULE)
    assert rule_row["institution"] == RULES_NAME and rule_row["institution_id"] == "smkn1-petasia"
    assert rule_row["step"].startswith("Layanan khusus diberikan secara berjenjang") and RULE not in rule_row["step"]
    assert rule_row["sop"] == "Peraturan Akademik SMK Negeri 1 Petasia"
    sla_row = next(r for r in rows if r["step_id"] == "penjadwalan")
    assert sla_row["step"] == "s1 \u2192 s3" and sla_row["institution"] == BONTANG_NAME
    assert sla_row["rid"].startswith(f"bontang-bk|{BONTANG}|")  # the click still opens the case by its ids
    # an ordinary step keeps its id (sN is how the SOP tables number it)
    plain = next(r for r in rows if r["step_id"] not in (RULE, "penjadwalan") and r["step_id"])
    assert plain["step"] == plain["step_id"]
    # the grid shows the name columns, sorting by the id columns
    (grid,) = find(page(client_for(app), app, "/penyimpangan"), lambda c: c["props"].get("id") == "dev-grid")
    shown = {c.get("colId", c["field"]): c["field"] for c in grid["props"]["columnDefs"]}
    assert shown["institution_id"] == "institution" and shown["step_id"] == "step" and shown["sop_id"] == "sop"


def test_the_case_list_catalogue_and_reports_show_institution_names_and_sop_labels(app: Any, pub: Path) -> None:
    body = callback(app, "kasus-body", "kasus-ctx", {"inst": "bontang-bk"})["kasus-body"]["children"]
    (table,) = find(body, lambda c: c["props"].get("id") == "kasus-list")
    cells = texts(table)
    assert BONTANG_NAME in cells and sop_label(pub, BONTANG) in cells
    assert "bontang-bk" not in cells and "konseling-individu" not in cells
    catalogue = callback(app, "sop-body", "sop-ctx", {})["sop-body"]["children"]
    cells = texts(catalogue)
    assert {NGAWI_NAME, BONTANG_NAME, RULES_NAME} <= set(cells)
    assert not {"smpn2-ngawi", "bontang-bk", "smkn1-petasia"} & set(cells)
    reports = callback(app, "laporan-body", "laporan-ctx", {})["laporan-body"]["children"]
    cells = texts(reports)
    assert BONTANG_NAME in cells and "bontang-bk" not in cells and "bontang-bk_2026-01.html" in cells


@pytest.mark.parametrize(("prefix", "output"), [("peta", "peta-sop-title"), ("waktu", "waktu-sop-title")])
def test_one_sop_pages_name_the_institution_and_the_sop(app: Any, pub: Path, prefix: str, output: str) -> None:
    title = callback(app, output, f"{prefix}-ctx", {"inst": "bontang-bk", "sop": BONTANG})[output]["children"]
    assert title.startswith(f"{BONTANG_NAME} · {sop_label(pub, BONTANG)}")
    assert BONTANG not in title


# ----------------------------------------------------------------------------------------- finding 12


@pytest.mark.parametrize("lang", ["id", "en"])
@pytest.mark.parametrize(("prefix", "graph", "body"), [("peta", "peta-graph", "peta-variants"),
                                                       ("waktu", "waktu-hist", "waktu-table")])
def test_a_rules_document_says_it_has_rules_and_leads_to_its_breaches(app: Any, lang: str, prefix: str, graph: str,
                                                                       body: str) -> None:
    """QA finding 12: Peta Proses / Waktu Langkah of the academic rules said "Tidak ada data untuk filter ini"."""
    ctx = {"inst": "smkn1-petasia", "sop": RULES, "start": "2026-01", "end": "2026-01", "lang": lang}
    out = callback(app, body, f"{prefix}-ctx", ctx)
    said = " ".join(texts(out[body]["children"]))
    figure_text = out[graph]["figure"]["layout"]["annotations"][0]["text"]
    if lang == "id":
        assert "berisi aturan, bukan tabel langkah" in said and "Penyimpangan" in said
        assert "berisi aturan" in figure_text
    else:
        assert "holds rules, not a table of steps" in said and "Deviations" in said
        assert "holds rules" in figure_text
    assert i18n.t("empty", lang) not in said + figure_text
    (link,) = find(out[body]["children"], lambda c: c["props"].get("id") == f"{prefix}-rules-link")
    url = urlparse(link["props"]["href"])
    query = parse_qs(url.query)
    assert url.path == "/penyimpangan" and query["sop"] == [RULES] and query["kind"] == ["rule_breach"]
    assert query["start"] == ["2026-01"] and query["end"] == ["2026-01"]
    # and the link's filters do find the breaches
    assert len(grid_rows(app, {k: v[0] for k, v in query.items()})) == 3


def test_a_rules_document_of_another_institution_stays_empty(app: Any) -> None:
    out = callback(app, "peta-variants", "peta-ctx", {"sop": RULES}, user="pengawas")
    assert "aturan" not in " ".join(texts(out["peta-variants"]["children"]))


@pytest.mark.parametrize(("lang", "words"), [("id", "Periode terbalik (Jan 2026 sampai Okt 2025): ditampilkan "
                                                    "Okt 2025 sampai Jan 2026."),
                                             ("en", "The period was reversed (Jan 2026 to Oct 2025): showing "
                                                    "Oct 2025 to Jan 2026.")])
def test_a_reversed_period_is_shown_in_order_and_says_so(app: Any, lang: str, words: str) -> None:
    """QA finding 12: ?start=2026-10&end=2026-01 showed "Tidak ada data" without saying why."""
    client = client_for(app)
    layout = page(client, app, "/", f"?start=2026-01&end=2025-10&lang={lang}")
    (note,) = find(layout, lambda c: c["props"].get("id") == "period-reversed")
    assert note["props"]["children"] == words
    values = {c["props"]["id"]["key"]: c["props"]["value"] for c in
              find(layout, lambda c: isinstance(c["props"].get("id"), dict) and c["props"]["id"].get("type") == "flt")}
    assert values["start"] == "2025-10" and values["end"] == "2026-01"
    (store,) = find(layout, lambda c: c["props"].get("id") == "ring-ctx")
    kpis = callback(app, "ring-kpis", "ring-ctx", store["props"]["data"])["ring-kpis"]["children"]
    in_order = callback(app, "ring-kpis", "ring-ctx", {"start": "2025-10", "end": "2026-01", "lang": lang})
    assert kpis == in_order["ring-kpis"]["children"]
    assert i18n.t("empty", lang) not in texts(kpis)
    # a period in order has no note
    assert not find(page(client, app, "/", "?start=2025-10&end=2026-01"),
                    lambda c: c["props"].get("id") == "period-reversed")


def test_the_open_cases_kpi_opens_the_open_cases(app: Any, pub: Path) -> None:
    """QA finding 12: "Kasus terbuka" was not clickable."""
    ctx = {"inst": "smpn2-ngawi", "start": "2025-10", "end": "2025-12"}
    kpis = callback(app, "ring-kpis", "ring-ctx", ctx)["ring-kpis"]["children"]
    (kpi,) = find(kpis, lambda c: c["props"].get("id") == "ring-kpi-open")
    (link,) = find(kpi, lambda c: c.get("type") == "Link")
    shown = texts(kpi)[1]
    url = urlparse(link["props"]["href"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/kasus" and query == {**ctx, "status": "open"}
    layout = page(client_for(app), app, url.path, "?" + url.query)
    (store,) = find(layout, lambda c: c["props"].get("id") == "kasus-ctx")
    body = callback(app, "kasus-body", "kasus-ctx", store["props"]["data"])["kasus-body"]["children"]
    (table,) = find(body, lambda c: c["props"].get("id") == "kasus-list")
    rows = find(table, lambda c: c.get("type") == "Tr")[1:]
    assert len(rows) == int(shown) > 0
    assert all(texts(r)[4] == "terbuka" for r in rows)
    (count,) = find(body, lambda c: c["props"].get("id") == "kasus-open-count")
    assert count["props"]["children"] == f"{shown} dari {shown} kasus terbuka, terbaru lebih dulu."
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        opened = {r[0] for r in conn.execute(
            "SELECT case_id FROM case_results WHERE institution_id = 'smpn2-ngawi' AND status = 'open' AND "
            "timezone('Asia/Jakarta', opened_at) >= TIMESTAMP '2025-10-01' AND "
            "timezone('Asia/Jakarta', opened_at) < TIMESTAMP '2026-01-01'").fetchall()}
    finally:
        conn.close()
    assert {texts(r)[0] for r in rows} == opened


@pytest.mark.parametrize(("lang", "words"), [("id", "penyimpangan di baliknya"), ("en", "deviations behind it")])
def test_the_overview_hint_says_clicks_open_deviations(app: Any, lang: str, words: str) -> None:
    said = texts(page(client_for(app), app, "/", f"?lang={lang}"))
    hint = next(x for x in said if x.startswith(("Klik batang", "Click a bar")))
    assert words in hint and ("kasus di baliknya" not in hint and "cases behind" not in hint)


def test_the_compliance_axes_tick_every_quarter(app: Any) -> None:
    out = callback(app, "ring-inst", "ring-ctx", {})
    for output in ("ring-inst", "ring-sop"):
        axis = out[output]["figure"]["layout"]["xaxis"]
        # plotly.js ignores ticksuffix for array ticks (seen in Chromium): the texts carry the "%"
        assert axis["tickvals"] == [0, 25, 50, 75, 100]
        assert axis["ticktext"] == ["0%", "25%", "50%", "75%", "100%"] and axis["range"][1] > 100
