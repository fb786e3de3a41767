"""Dashboard latency on a published file: first page load and filter callbacks (p50/p95), server side.

``python -m dashboards.bench --published data/published`` logs in as QA through the Flask test client
(no network, no browser), loads the first page the way the browser does (page, layout, dependencies,
router, overview callback), then fires every page's data callback under a series of filter changes and
prints the timings as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dashboards import auth, queries
from dashboards.app import PAGES, create_app

ORIGIN = {"Origin": "http://localhost"}
DATA_CALLBACKS = {  # page path -> (outputs key fragment, context store id)
    "/": ("ring-kpis", "ring-ctx"),
    "/peta-proses": ("peta-graph", "peta-ctx"),
    "/kasus": ("kasus-body", "kasus-ctx"),
    "/waktu-langkah": ("waktu-hist", "waktu-ctx"),
    "/sop": ("sop-body", "sop-ctx"),
}


def _payload(app: Any, fragment: str, inputs: list[dict[str, Any]],
             state: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    key = next(k for k in app.callback_map if fragment in k and "@" not in k)
    names = key[2:-2].split("...") if key.startswith("..") else [key]
    outputs = [dict(zip(("id", "property"), n.rsplit(".", 1), strict=True)) for n in names]
    return {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


def _ms(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(published_dir: Path, *, rounds: int = 3) -> dict[str, Any]:
    """Timings in milliseconds: first page load and per-callback p50/p95 over filter changes."""
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.yaml"
        auth.ensure_demo_users(users)
        app = create_app(published_dir, users, secret_key=b"bench" * 8)
        client = app.server.test_client()
        client.post("/login", data={"username": "qa", "password": "patuh-demo"}, headers=ORIGIN)

        def post(payload: dict[str, Any]) -> None:
            response = client.post("/_dash-update-component", json=payload, headers=ORIGIN)
            assert response.status_code in (200, 204), response.status_code

        src = queries.source(published_dir)
        insts = list(queries.institutions(src, queries.ALL)["institution_id"])
        sops = queries.sops(src, queries.ALL, queries.Filters())
        months = queries.periods(src, queries.ALL, queries.Filters())
        filters: list[dict[str, str]] = [{}]
        for inst in insts[:3]:
            filters.append({"inst": inst})
            first_sop = sops[sops["institution_id"] == inst]["sop_id"]
            if len(first_sop):
                filters.append({"inst": inst, "sop": str(first_sop.iloc[0])})
        if months:
            filters.append({"start": months[len(months) // 2], "end": months[-1]})
            filters.append({"start": months[-1], "end": months[-1], "inst": insts[0]})
        filters += [{"kind": "overdue_step"}, {"kind": "missing_step", "sev": "high"}]

        def first_page() -> None:
            assert client.get("/").status_code == 200
            client.get("/_dash-layout")
            client.get("/_dash-dependencies")
            post(_payload(app, "app-root", [{"id": "url", "property": "pathname", "value": "/"},
                                            {"id": "url", "property": "search", "value": ""}]))
            post(_payload(app, "ring-kpis", [{"id": "ring-ctx", "property": "data", "value": {}}]))

        first_page()  # warm-up: imports, DuckDB file open, plotly validators
        first = [_ms(first_page) for _ in range(rounds)]
        timings: dict[str, list[float]] = {}
        for _ in range(rounds):
            for f in filters:
                for page in PAGES:
                    search = "?" + "&".join(f"{k}={v}" for k, v in f.items()) if f else ""
                    timings.setdefault("router", []).append(_ms(lambda p=page.PATH, s=search: post(_payload(
                        app, "app-root", [{"id": "url", "property": "pathname", "value": p},
                                          {"id": "url", "property": "search", "value": s}]))))
                    if page.PATH in DATA_CALLBACKS:
                        frag, store = DATA_CALLBACKS[page.PATH]
                        timings.setdefault(page.PATH, []).append(_ms(lambda fr=frag, st=store, v=f: post(_payload(
                            app, fr, [{"id": st, "property": "data", "value": v}]))))
                timings.setdefault("/penyimpangan", []).append(_ms(lambda v=f: post(_payload(
                    app, "dev-grid", [{"id": "dev-grid", "property": "getRowsRequest",
                                       "value": {"startRow": 200, "endRow": 300,
                                                 "sortModel": [{"colId": "severity", "sort": "desc"}]}}],
                    [{"id": "dev-ctx", "property": "data", "value": v}]))))
        all_callbacks = [v for values in timings.values() for v in values]

        def stats(values: list[float]) -> dict[str, float]:
            ordered = sorted(values)
            return {"n": len(values), "p50": round(statistics.median(ordered), 1),
                    "p95": round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.95) - 1)], 1),
                    "max": round(ordered[-1], 1)}

        src.close()
        return {"published": str(queries.current_published_path(published_dir)),
                "first_page_ms": stats(first), "callbacks_ms": stats(all_callbacks),
                "per_callback_ms": {k: stats(v) for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--published", type=Path, required=True, help="the published folder (with CURRENT)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.published, rounds=args.rounds), indent=2))


if __name__ == "__main__":
    main()
