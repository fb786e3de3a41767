"""QA findings seen by a user of the dashboard: SOP labels, the CSV export, deviation texts, the 404 page.

A real published DuckDB file (tests/fixtures_published.py), changed where a finding needs data the plain
fixture lacks: SOPs whose titles (and numbers) are equal or share a long start, as in the RPPSA catalogue.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from dashboards import auth, i18n
from dashboards.app import create_app
from tests.fixtures_published import build_published_db
from tests.test_dashboard import login, post_callback

PROSEDUR, ALUR = "smpn2-ngawi/bk001-prosedur", "smpn2-ngawi/bk001-alur"
BONTANG, RPPSA = "bontang-bk/konseling-individu", "rppsa-mataram/9-1-20-temporary-shelter-pertolongan-pertama"
LONG = "Administrasi Layanan Bimbingan dan Konseling bagi "  # 51 characters: cut at 44, both read the same


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("findings") / "published"
    db = build_published_db(root / "fx.duckdb")
    conn = duckdb.connect(str(db))
    try:
        # RPPSA has "Evaluasi" twice (9.1.19, 9.1.33); SMPN 2 Ngawi's two SOPs share the number BK001/Jan/2020
        conn.execute("UPDATE sops SET title = 'Evaluasi' WHERE sop_id IN (?, ?)", [PROSEDUR, ALUR])
        conn.execute("UPDATE sops SET title = ? WHERE sop_id = ?", [LONG + "Pegawai", BONTANG])
        conn.execute("UPDATE sops SET title = ?, number = NULL WHERE sop_id = ?", [LONG + "Praja", RPPSA])
        picked = engine_rows(conn)
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    (root / "picked.json").write_text(json.dumps(picked))
    return root


def engine_rows(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Rows as pipeline/timing.py writes them: a stall names the last step done and the next step's standard,
    a between-steps limit carries the SLA's id as its step; a step without a standard is not over one."""
    stalled = conn.execute("""
        SELECT d.case_id, d.step_id, nx.step_id FROM deviations d
        JOIN sop_steps st ON st.sop_id = d.sop_id AND st.step_id = d.step_id
        JOIN sop_steps nx ON nx.sop_id = d.sop_id AND nx.ord = st.ord + 1
        WHERE d.kind = 'stalled_case' AND d.sop_id = ? ORDER BY d.case_id LIMIT 1""", [PROSEDUR]).fetchone()
    sla = conn.execute("SELECT case_id FROM deviations WHERE kind = 'case_sla_breach' AND sop_id = ? "
                       "ORDER BY case_id LIMIT 1", [BONTANG]).fetchone()
    assert stalled is not None and sla is not None
    conn.execute("""
        UPDATE deviations d SET activity = NULL, expected = nx.time_raw,
               detail = json_object('idle', 157.7, 'maximum', nx.standard_max, 'measure', 'working_days',
                                    'last_event', d.occurred_at, 'next_step', nx.step_id)
        FROM sop_steps st, sop_steps nx
        WHERE d.kind = 'stalled_case' AND st.sop_id = d.sop_id AND st.step_id = d.step_id
          AND nx.sop_id = d.sop_id AND nx.ord = st.ord + 1""")
    conn.execute("""
        UPDATE deviations SET activity = NULL, expected = '5 hari kerja (bawaan / default)',
               detail = json_object('idle', 157.7, 'maximum', 5.0, 'measure', 'working_days',
                                    'last_event', occurred_at, 'next_step', NULL)
        WHERE kind = 'stalled_case' AND detail IS NULL""")  # no step follows with a standard: the default
    conn.execute("""
        UPDATE deviations SET step_id = 'penjadwalan', expected = '1×24 jam', observed = '10173.0',
               detail = json_object('duration', 10173.0, 'maximum', 1440.0, 'measure', 'elapsed_minutes',
                                    'from', occurred_at, 'to', occurred_at + INTERVAL 7 DAY)
        WHERE kind = 'case_sla_breach' AND sop_id = ? AND case_id = ?""", [BONTANG, sla[0]])
    conn.execute("UPDATE event_timing SET over_standard = FALSE WHERE standard_max IS NULL")
    return {"stalled": stalled[0], "last_step": stalled[1], "next_step": stalled[2], "sla": sla[0]}


@pytest.fixture(scope="module")
def app(pub: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    users = tmp_path_factory.mktemp("users") / "users.yaml"
    auth.ensure_demo_users(users)
    yield create_app(pub, users, secret_key=b"f" * 32)


def client_for(app: Any, user: str = "qa") -> Any:
    client = app.server.test_client()
    login(client, user)
    return client


def find(node: Any, match: Any) -> list[dict[str, Any]]:
    """Every component (dict with props) in a layout JSON for which ``match(component)`` holds."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "props" in node and match(node):
            found.append(node)
        for value in node.values():
            found += find(value, match)
    elif isinstance(node, list):
        for value in node:
            found += find(value, match)
    return found


def page(client: Any, app: Any, path: str, search: str = "") -> Any:
    response = post_callback(client, app, ["app-root"], [{"id": "url", "property": "pathname", "value": path},
                                                         {"id": "url", "property": "search", "value": search}])
    assert response.status_code == 200
    return response.get_json()


# ------------------------------------------------------------------------------------------ finding 4


def test_each_sop_has_its_own_bar_and_its_click_opens_that_sop(app: Any) -> None:
    """QA finding 4: 60 SOPs but 51 bars; equal (cut) titles drew two bars on one row, clicks went to one."""
    client = client_for(app)
    response = post_callback(client, app, ["ring-sop"], [{"id": "ring-ctx", "property": "data", "value": {}}])
    bar = response.get_json()["response"]["ring-sop"]["figure"]["data"][0]
    assert sorted(bar["customdata"]) == sorted([PROSEDUR, ALUR, BONTANG, RPPSA])
    rows = dict(zip(bar["customdata"], bar["y"], strict=True))
    assert len(set(rows.values())) == 4  # one category row per SOP
    assert rows[PROSEDUR] != rows[ALUR] and "Evaluasi" in rows[PROSEDUR] and "Evaluasi" in rows[ALUR]
    assert rows[BONTANG].endswith("Pegawai") and rows[RPPSA].endswith("Praja")
    assert all(len(label) <= 44 for sop, label in rows.items() if sop in (BONTANG, RPPSA))
    key = next(k for k, v in app.callback_map.items() if k.startswith("nav.href")
               and any(i["id"] == "ring-sop" for i in v["inputs"]))
    for sop in rows:  # a click on a row opens the deviations of that SOP
        click = {"points": [{"customdata": sop, "y": rows[sop]}]}
        inputs = [{"id": i["id"], "property": i["property"], "value": click if i["id"] == "ring-sop" else None}
                  for i in app.callback_map[key]["inputs"]]
        payload = {"output": key, "outputs": {"id": "nav", "property": key.split("@")[0].split(".")[1]},
                   "inputs": inputs, "state": [{"id": "ring-ctx", "property": "data", "value": {}}],
                   "changedPropIds": ["ring-sop.clickData"]}
        drill = client.post("/_dash-update-component", json=payload, headers={"Origin": "http://localhost"})
        href = drill.get_json()["response"]["nav"]["href"]
        assert urlparse(href).path == "/penyimpangan" and parse_qs(urlparse(href).query)["sop"] == [sop]


@pytest.mark.parametrize("search", ["", "?inst=smpn2-ngawi"])
def test_the_sop_dropdown_tells_every_sop_apart(app: Any, search: str) -> None:
    client = client_for(app)
    (dropdown,) = find(page(client, app, "/", search), lambda c: c["props"].get("id") == {"type": "flt", "key": "sop"})
    labels = [o["label"] for o in dropdown["props"]["options"]]
    assert len(labels) == len(set(labels)) == (4 if not search else 2)
    assert all("Evaluasi" in label for label, o in zip(labels, dropdown["props"]["options"], strict=True)
               if o["value"] in (PROSEDUR, ALUR))


def test_unique_labels_keep_short_labels_as_they_are() -> None:
    assert i18n.unique_labels({"a": "Konseling", "b": "Rekreasi"}, 44) == {"a": "Konseling", "b": "Rekreasi"}
    assert i18n.sop_label("9.1.19/2010", "Evaluasi") == "9.1.19/2010 \u00b7 Evaluasi"
    assert i18n.sop_label(None, "Evaluasi") == "Evaluasi"


# ----------------------------------------------------------------------------------- findings 5 and 6

SLA_TEXT = "Proses penjadwalan dapat diselesaikan dalam 1×24 jam setelah permintaan diterima"


@pytest.fixture(scope="module")
def engine_like(pub: Path) -> dict[str, str]:
    return json.loads((pub / "picked.json").read_text())


def case_page(app: Any, inst: str, sop: str, case_id: str, lang: str) -> Any:
    client = client_for(app)
    ctx = {"inst": inst, "sop": sop, "case": case_id, "lang": lang}
    response = post_callback(client, app, ["kasus-body"], [{"id": "kasus-ctx", "property": "data", "value": ctx}])
    return response.get_json()["response"]["kasus-body"]["children"]


def first_case(pub: Path, query: str) -> tuple[str, str, str]:
    """(institution, SOP, case) of the first row ``query`` finds in the published file."""
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        row = conn.execute(query).fetchone()
    finally:
        conn.close()
    assert row is not None, query
    return str(row[0]), str(row[1]), str(row[2])


def texts(node: Any) -> list[str]:
    return [c["props"]["children"] for c in find(node, lambda c: isinstance(c["props"].get("children"), str))]


def test_a_stalled_case_is_idle_since_its_last_step_waiting_for_the_next(app: Any, engine_like: dict[str, str]
                                                                          ) -> None:
    """QA finding 5: "…lebih lama dari standar langkah berikutnya s1" named the step already done."""
    last, nxt = engine_like["last_step"], engine_like["next_step"]
    said = {lang: next(x for x in texts(case_page(app, "smpn2-ngawi", PROSEDUR, engine_like["stalled"], lang))
                       if "Kasus masih terbuka" in x or "still open" in x) for lang in ("id", "en")}
    assert f"sejak langkah {last} \u201c" in said["id"] and f"langkah berikutnya {nxt} \u201c" in said["id"]
    assert f"since step {last} \u201c" in said["en"] and f"next step {nxt} \u201c" in said["en"]
    assert f"berikutnya {last} " not in said["id"]
    assert "157,7 hari kerja" in said["id"] and "157.7 working days" in said["en"]


def test_a_limit_between_steps_is_not_called_the_whole_case(app: Any, engine_like: dict[str, str]) -> None:
    """QA finding 6: Bontang's "penjadwalan 1×24 jam" (s1 → s3) read "Kasus secara keseluruhan…"."""
    body = case_page(app, "bontang-bk", BONTANG, engine_like["sla"], "id")
    said = " ".join(texts(body))
    assert "secara keseluruhan" not in said
    assert "dari langkah s1 sampai langkah s3 paling lama 1×24 jam, terjadi 7,1 hari" in said
    assert SLA_TEXT in said
    english = " ".join(texts(case_page(app, "bontang-bk", BONTANG, engine_like["sla"], "en")))
    assert "from step s1 to step s3 within 1×24 jam, it took 7.1 days" in english and "whole case" not in english
    # the step table: Bontang's s1-s3 have no time standard, so they are not "within standard" either
    rows = find(body, lambda c: c.get("type") == "Tr" and texts(c)[:1] in (["s1"], ["s2"], ["s3"]))
    assert rows and all(texts(r)[-1] == "\u2013" for r in rows)
    assert "dalam standar" not in [texts(r)[-1] for r in rows]


def test_a_whole_case_limit_still_reads_as_one(app: Any, pub: Path, engine_like: dict[str, str]) -> None:
    row = first_case(pub, "SELECT institution_id, sop_id, case_id FROM deviations WHERE kind = 'case_sla_breach' "
                          "AND step_id IS NULL ORDER BY case_id LIMIT 1")
    said = " ".join(texts(case_page(app, row[0], row[1], row[2], "id")))
    assert "Kasus secara keseluruhan melebihi batas waktu 1 x 24 jam" in said


# ------------------------------------------------------------------------------------------ finding 8


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_csv_export_has_units_and_the_chosen_language(app: Any, pub: Path, engine_like: dict[str, str],
                                                          lang: str) -> None:
    """QA finding 8: 157.7 (working days) next to 67399.0 (minutes) with no unit, and kinds in snake_case."""
    client = client_for(app, "pengawas")
    response = client.get(f"/export/penyimpangan.csv?lang={lang}")
    assert response.status_code == 200 and response.data.startswith(b"\xef\xbb\xbf")  # Excel: UTF-8
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    conn = duckdb.connect(str(pub / "fx.duckdb"), read_only=True)
    try:
        n = conn.execute("SELECT count(*) FROM deviations WHERE institution_id IN ('smpn2-ngawi', 'bontang-bk')"
                         ).fetchone()
    finally:
        conn.close()
    assert n is not None and len(rows) == n[0] and {r["institution_id"] for r in rows} == {"smpn2-ngawi",
                                                                                          "bontang-bk"}
    units = {i18n.t(f"unit.{m}", lang) for m in ("working_minutes", "working_days", "elapsed_minutes")}
    timed = [r for r in rows if r["kind"] in ("overdue_step", "stalled_case") or r["step_id"] == "penjadwalan"]
    assert timed and all(r["observed_unit"] in units and float(r["observed_value"]) > 0 for r in timed)
    stall = next(r for r in rows if r["kind"] == "stalled_case")
    assert (stall["observed_value"], stall["observed"]) == (
        "157.7", "157,7 hari kerja" if lang == "id" else "157.7 working days")
    sla = next(r for r in rows if r["step_id"] == "penjadwalan")
    assert sla["observed"] == ("7,1 hari" if lang == "id" else "7.1 days")
    assert sla["observed_unit"] == i18n.t("unit.elapsed_minutes", lang)
    labels = {r["kind"]: r["kind_label"] for r in rows}
    assert labels["stalled_case"] == i18n.kind_label("stalled_case", lang)
    assert labels["overdue_step"] == ("Melebihi standar waktu" if lang == "id" else "Overdue step")
    assert {r["severity_label"] for r in rows} <= {i18n.sev_label(s, lang) for s in ("high", "medium", "low")}
    # the engine's default stall standard, stored bilingual, reads in the chosen language only
    assert "bawaan / default" not in response.data.decode("utf-8-sig")
    assert any(r["expected"] == ("5 hari kerja (bawaan)" if lang == "id" else "5 working days (default)")
               for r in rows if r["kind"] == "stalled_case")


# ----------------------------------------------------------------------------------------- finding 12


@pytest.mark.parametrize(("search", "words", "home"), [("", "Halaman tidak ditemukan", "Kembali ke Ringkasan"),
                                                       ("?lang=en", "Page not found", "Back to the overview")])
def test_an_unknown_page_says_so_and_links_home(app: Any, search: str, words: str, home: str) -> None:
    """QA finding 12: /nope showed only "∅ 404"."""
    body = page(client_for(app), app, "/nope", search)
    assert any(words in x for x in texts(body))
    (link,) = find(body, lambda c: c["props"].get("id") == "notfound-home")
    assert link["props"]["children"] == home and link["props"]["href"] == "/" + search


def test_the_kind_axis_groups_thousands_like_the_bar_labels() -> None:
    """QA finding 12: the axis said 1000 2000 while the bars said 5.262."""
    import pandas as pd

    from dashboards import figures

    kinds = pd.DataFrame({"kind": ["overdue_step", "stalled_case"], "n": [5262, 1200]})
    for lang, label, separators in (("id", "5.262", ",."), ("en", "5,262", ".,")):
        fig = figures.kind_bars(kinds, lang)
        assert label in fig["data"][0]["text"]
        # plotly groups ",d" ticks with the layout's thousands separator: 1.000 (id), 1,000 (en)
        assert fig["layout"]["xaxis"]["tickformat"] == ",d" and fig["layout"]["separators"] == separators


@pytest.mark.parametrize(("lang", "texts"), [("id", ("45,5 jam", "7,1 hari", "90 menit")),
                                             ("en", ("45.5 hours", "7.1 days", "90 minutes"))])
def test_an_elapsed_duration_reads_in_hours_between_two_hours_and_two_days(lang: str, texts: tuple[str, ...]) -> None:
    """A 1×24 jam limit exceeded by 2,729 minutes reads "45,5 jam", as the standard is written, not "2.729 menit"."""
    assert tuple(i18n.fmt_duration(v, "elapsed_minutes", lang) for v in (2730.0, 10173.0, 90.0)) == texts


def test_a_case_with_one_deviation_says_one_deviation(app: Any, pub: Path) -> None:
    """The case page's verdict: "1 deviation", not "1 deviations"."""
    one = first_case(pub, "SELECT institution_id, sop_id, case_id FROM case_results WHERE n_deviations = 1 "
                          "ORDER BY case_id LIMIT 1")
    said = texts(case_page(app, one[0], one[1], one[2], "en"))
    assert "1 deviation" in said and "1 deviations" not in said
