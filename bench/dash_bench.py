"""Dashboard latency on a published result file, as a ``qa`` user (sees every institution).

Two levels, each ``calls`` times per page with varied filters (institution, SOP, period, kind, step,
severity, grid page and sort):

* ``queries``: the ``dashboards.queries`` functions each page's fill callback calls (the DuckDB part);
* ``callbacks``: the real Dash callbacks through the Flask test client (queries + figures + JSON), for a
  filter change: the router callback (layout with the filter bar) plus the page's fill callback.

First page load: log in, ``GET /``, ``/_dash-layout``, ``/_dash-dependencies``, then the router and the
Ringkasan fill callbacks, as the browser does on opening the app (cold: the first after start; warm: later).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from bench.common import quantile

ORIGIN = {"Origin": "http://localhost"}
KINDS = ("missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step",
         "case_sla_breach", "wrong_role", "missing_document", "stalled_case")


def _facts(path: Path) -> dict[str, Any]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        sops = conn.execute("SELECT sop_id, institution_id FROM sops WHERE kind = 'procedure' AND sop_id IN "
                            "(SELECT DISTINCT sop_id FROM variants) ORDER BY 1").fetchall()
        months = [r[0] for r in conn.execute("SELECT DISTINCT strftime(opened_at, '%Y-%m') FROM case_results "
                                             "WHERE opened_at IS NOT NULL ORDER BY 1").fetchall()]
        steps = conn.execute("SELECT sop_id, step_id FROM sop_steps").fetchall()
        cases = [r[0] for r in conn.execute("SELECT case_id FROM case_results USING SAMPLE 200 ROWS").fetchall()]
        events = conn.execute("SELECT count(*) FROM event_timing").fetchall()[0][0]
        n_cases = conn.execute("SELECT count(*) FROM case_results").fetchall()[0][0]
        n_devs = conn.execute("SELECT count(*) FROM deviations").fetchall()[0][0]
    finally:
        conn.close()
    by_sop: dict[str, list[str]] = {}
    for sop, step in steps:
        by_sop.setdefault(sop, []).append(step)
    return {"sops": sops, "months": months, "steps": by_sop, "cases": cases, "events": events,
            "n_cases": n_cases, "n_deviations": n_devs}


def _filters(rng: random.Random, facts: dict[str, Any], *, need_sop: bool = False) -> dict[str, str]:
    """A varied filter set, like a user clicking around."""
    f: dict[str, str] = {}
    sops = facts["sops"]
    if sops and (need_sop or rng.random() < 0.5):
        sop, inst = rng.choice(sops)
        f["sop"] = sop
        if rng.random() < 0.7:
            f["inst"] = inst
    elif sops and rng.random() < 0.5:
        f["inst"] = rng.choice(sops)[1]
    months = facts["months"]
    if months and rng.random() < 0.5:
        i = rng.randrange(len(months))
        j = min(len(months) - 1, i + rng.randrange(3))
        f["start"], f["end"] = months[i], months[j]
    return f


def _stats(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50_ms": round(quantile(ms, 0.5), 1), "p95_ms": round(quantile(ms, 0.95), 1),
            "max_ms": round(max(ms), 1) if ms else None}


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(published_dir: Path, *, calls: int = 30, seed: int = 7) -> dict[str, Any]:
    from dashboards import auth, queries
    from dashboards.app import create_app
    from dashboards.queries import ALL, Filters
    from pipeline.publish import current_published

    current = current_published(published_dir)
    if current is None:
        raise RuntimeError(f"nothing published in {published_dir}")
    facts = _facts(current)
    rng = random.Random(seed)
    out: dict[str, Any] = {"events": facts["events"], "cases": facts["n_cases"], "deviations": facts["n_deviations"],
                           "calls_per_page": calls, "user": "qa"}

    with tempfile.TemporaryDirectory(prefix="patuh-bench-dash-") as tmp:
        users = Path(tmp) / "users.yaml"
        auth.ensure_demo_users(users)
        app = create_app(published_dir, users, secret_key=b"b" * 32, reports_dir=Path(tmp) / "reports")
        server = app.server

        def login() -> Any:
            client = server.test_client()
            client.post("/login", data={"username": "qa", "password": "patuh-demo", "next": "/"}, headers=ORIGIN)
            return client

        def post(client: Any, output_ids: list[str], inputs: list[dict[str, Any]],
                 state: list[dict[str, Any]] | None = None) -> Any:
            key = next(k for k in app.callback_map if all(o in k for o in output_ids))
            names = key[2:-2].split("...") if key.startswith("..") else [key]
            outputs = [dict(zip(("id", "property"), n.rsplit(".", 1), strict=True)) for n in names]
            payload = {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
                       "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
            response = client.post("/_dash-update-component", json=payload, headers=ORIGIN)
            if response.status_code not in (200, 204):
                raise RuntimeError(f"callback {output_ids} -> HTTP {response.status_code}")
            return response

        def first_page(client: Any) -> float:
            t0 = time.perf_counter()
            client.post("/login", data={"username": "qa", "password": "patuh-demo", "next": "/"}, headers=ORIGIN)
            for url in ("/", "/_dash-layout", "/_dash-dependencies"):
                if client.get(url).status_code != 200:
                    raise RuntimeError(f"GET {url} failed")
            post(client, ["app-root"], [{"id": "url", "property": "pathname", "value": "/"},
                                        {"id": "url", "property": "search", "value": ""}])
            post(client, ["ring-kpis"], [{"id": "ring-ctx", "property": "data", "value": {"lang": "id"}}])
            return (time.perf_counter() - t0) * 1000

        cold = first_page(server.test_client())
        warm = [first_page(server.test_client()) for _ in range(5)]
        out["first_page"] = {"cold_ms": round(cold, 1), **_stats(warm),
                             "steps": "login, GET /, /_dash-layout, /_dash-dependencies, router + Ringkasan callbacks"}

        src = queries.source(published_dir)
        grants = ALL
        q_pages: dict[str, Callable[[dict[str, str]], Any]] = {
            "ringkasan": lambda f: (queries.overview(src, grants, Filters.from_mapping(f)),
                                    queries.institutions(src, grants),
                                    queries.sops(src, grants, Filters.from_mapping(f).with_(sop=None))),
            "filter_bar": lambda f: (queries.institutions(src, grants),
                                     queries.sops(src, grants, Filters.from_mapping(f).with_(sop=None)),
                                     queries.periods(src, grants, Filters.from_mapping(f))),
            "peta_proses": lambda f: queries.process_map(src, grants, Filters.from_mapping(f), f["sop"]),
            "penyimpangan": lambda f: (queries.deviation_page(src, grants, Filters.from_mapping(f),
                                                              int(f.get("_start", 0)), int(f.get("_start", 0)) + 100,
                                                              f.get("_sort")),  # type: ignore[arg-type]
                                       queries.institutions(src, grants)),
            "kasus": lambda f: (queries.case_detail(src, grants, f["case"], Filters.from_mapping(f)) if f.get("case")
                                else queries.attention_cases(src, grants, Filters.from_mapping(f))),
            "waktu_langkah": lambda f: queries.step_histograms(src, grants, Filters.from_mapping(f), f["sop"]),
        }

        def page_filters(page: str) -> dict[str, Any]:
            f: dict[str, Any] = _filters(rng, facts, need_sop=page in ("peta_proses", "waktu_langkah"))
            if page == "penyimpangan":
                if rng.random() < 0.5:
                    f["kind"] = rng.choice(KINDS)
                if rng.random() < 0.3:
                    f["sev"] = rng.choice(("high", "medium", "low"))
                if f.get("sop") and rng.random() < 0.4:
                    f["step"] = rng.choice(facts["steps"].get(f["sop"], [""]))
                f["_start"] = rng.choice((0, 0, 100, 500))
                if rng.random() < 0.3:
                    f["_sort"] = [{"colId": rng.choice(("occurred_at", "case_id", "severity")),
                                   "sort": rng.choice(("asc", "desc"))}]
            if page == "kasus" and facts["cases"] and rng.random() < 0.5:
                f = {"case": rng.choice(facts["cases"])}
            return f

        queries_ms: dict[str, dict[str, Any]] = {}
        all_q: list[float] = []
        for page, fn in q_pages.items():
            ms = []
            for _ in range(calls):
                f = page_filters(page)
                ms.append(_timed(lambda fn=fn, f=f: fn(f)))  # type: ignore[misc]
            queries_ms[page] = _stats(ms)
            all_q += ms
        queries_ms["all"] = _stats(all_q)
        out["queries"] = queries_ms

        client = login()
        paths = {"ringkasan": "/", "peta_proses": "/peta-proses", "penyimpangan": "/penyimpangan",
                 "kasus": "/kasus", "waktu_langkah": "/waktu-langkah"}
        fills: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ringkasan": lambda f: post(client, ["ring-kpis"], [{"id": "ring-ctx", "property": "data", "value": f}]),
            "peta_proses": lambda f: post(client, ["peta-graph"], [{"id": "peta-ctx", "property": "data",
                                                                    "value": f}]),
            "penyimpangan": lambda f: post(
                client, ["dev-grid"],
                [{"id": "dev-grid", "property": "getRowsRequest",
                  "value": {"startRow": f.get("_start", 0), "endRow": f.get("_start", 0) + 100,
                            "sortModel": f.get("_sort", [])}}],
                [{"id": "dev-ctx", "property": "data", "value": {k: v for k, v in f.items()
                                                                 if not k.startswith("_")}}]),
            "kasus": lambda f: post(client, ["kasus-body"], [{"id": "kasus-ctx", "property": "data", "value": f}]),
            "waktu_langkah": lambda f: post(client, ["waktu-hist"], [{"id": "waktu-ctx", "property": "data",
                                                                      "value": f}]),
        }
        from urllib.parse import urlencode

        cb: dict[str, dict[str, Any]] = {}
        all_change: list[float] = []
        for page, fill in fills.items():
            route_ms: list[float] = []
            fill_ms: list[float] = []
            for _ in range(calls):
                f = page_filters(page)
                search = "?" + urlencode({k: v for k, v in f.items() if not k.startswith("_")})
                route_ms.append(_timed(lambda s=search, p=paths[page]: post(  # type: ignore[misc]
                    client, ["app-root"], [{"id": "url", "property": "pathname", "value": p},
                                           {"id": "url", "property": "search", "value": s}])))
                fill_ms.append(_timed(lambda f=f, fill=fill: fill(f)))  # type: ignore[misc]
            change = [a + b for a, b in zip(route_ms, fill_ms, strict=True)]
            all_change += change
            cb[page] = {"router": _stats(route_ms), "fill": _stats(fill_ms), "filter_change": _stats(change)}
        cb["all"] = {"filter_change": _stats(all_change)}
        out["callbacks"] = cb
        src.close()
    return out
