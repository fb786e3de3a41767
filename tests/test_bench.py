"""Smoke test of the benchmark harness: a tiny run writes the results JSON and the markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run as bench_run
from bench.common import ROOT, parse_size, size_label, summarize


def test_sizes_and_statistics() -> None:
    assert [parse_size(s) for s in ("10k", "100k", "1M", "2500", "1.5M")] == [10_000, 100_000, 1_000_000, 2500,
                                                                             1_500_000]
    assert size_label(1_000_000) == "1M" and size_label(10_000) == "10k"
    stats = summarize([2.0, 1.0, 4.0])
    assert (stats["median_s"], stats["spread"], stats["n"]) == (2.0, 1.5, 3)
    with pytest.raises(ValueError):
        parse_size("lots")


def test_a_tiny_run_writes_the_json_and_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATUH_SECRET", "bench-test-secret-not-a-real-key-0000")
    readme_before = (ROOT / "README.md").read_bytes()
    out = tmp_path / "results"
    code = bench_run.main(["--sizes", "2k", "--quick", "--no-pm4py-sample", "--in-process", "--calls", "3",
                           "--no-plot", "--institutions", "smpn2-ngawi", "--out", str(out),
                           "--cache", str(tmp_path / "cache")])
    assert code == 0
    (json_file,) = out.glob("*.json")
    res = json.loads(json_file.read_text())
    assert res["errors"] == []
    machine = res["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"] and machine["memory_gib"]
    assert {"python", "duckdb", "pm4py", "pandas"} <= set(machine["versions"])
    assert "git_commit" in machine
    assert res["config"]["sizes"] == [2000] and res["config"]["reps"] == 1
    # ingest: Patuh and pm4py side by side for each format, with a ratio and the pm4py variant named
    formats = {r["format"]: r for r in res["ingest"]}
    assert set(formats) == {"csv", "parquet", "xes"}
    for row in formats.values():
        assert row["patuh"]["median_s"] > 0 and row["pm4py"]["median_s"] > 0 and row["ratio"] > 0
        assert row["patuh"]["rows"] == 2000 == row["pm4py"]["rows"]
    assert "rustxes" in formats["xes"]["pm4py"]["variant"]
    # the compliance run, the incremental run after +1% (new cases only) and the dashboard latency
    (run,) = res["compliance"]
    assert run["patuh"]["mode"] == "full" and run["patuh"]["cases"] == run["cases"] > 0
    assert run["incremental"]["mode"] == "incremental" and run["incremental"]["added_cases"] >= 1
    assert run["incremental"]["aligned"] <= run["incremental"]["cases_checked"] < run["cases"]
    # a run with no new events: the fixed cost of any run; it checks and aligns nothing
    idle = run["incremental_nothing_new"]
    assert idle["mode"] == "incremental" and idle["added_events"] == idle["cases_checked"] == idle["aligned"] == 0
    (dash,) = res["dashboard"]
    assert dash["callbacks"]["all"]["filter_change"]["n"] == 3 * 5
    assert dash["first_page"]["cold_ms"] > 0 and dash["queries"]["ringkasan"]["p95_ms"] > 0
    assert res["dashboard_10m"]["skipped"].startswith("QUICK")
    goals = {g["goal"]: g["status"] for g in res["goals"]}
    assert goals["run_1m"] == "not measured" and goals["dash_p95"] == "not measured"
    assert set(goals.values()) <= {"met", "NOT met", "not measured"}
    table = json_file.with_suffix(".md").read_text()
    assert "| goal | status | measured | why |" in table and "**Compliance run**" in table
    assert "2k" in table and "A run with no new events" in table
    assert (ROOT / "README.md").read_bytes() == readme_before  # only the default --out updates the README


def test_a_regenerated_performance_section_keeps_the_hand_written_notes(tmp_path: Path) -> None:
    """The README's Performance section is rewritten by every full run; the notes on repeated runs and
    accuracy (bench/notes.md) come back after the goals table instead of being lost, and the rest stays."""
    from bench import report

    readme = tmp_path / "README.md"
    readme.write_text("# Patuh\n\n## Performance\n\nold table\n\n## Licence\n\nAGPL\n", encoding="utf-8")
    report.update_readme("**Goals**\n\n| goal |\n\n**Ingest**\n\n| events |\n", readme)
    text = readme.read_text(encoding="utf-8")
    notes = report.NOTES.read_text(encoding="utf-8").strip()
    assert "old table" not in text and text.endswith("## Licence\n\nAGPL\n")
    assert text.index("**Goals**") < text.index(notes) < text.index("**Ingest**")
