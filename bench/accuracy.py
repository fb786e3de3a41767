"""Accuracy on a large synthetic log: precision and recall per deviation kind against the ground truth.

    uv run python -m bench.accuracy --cases 20000 --out bench/results/accuracy.json

Generates a labelled log of the demo institutions (pipeline.synth), loads it into a fresh database, runs
the compliance check as of the export date and scores the reported deviations against the labels (the
same matching as tests/test_accuracy.py: a wrong_order report matches either step of its swap).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

KINDS = ["missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step", "case_sla_breach",
         "wrong_role", "missing_document", "stalled_case"]


def score(truth: list[tuple[str, str, str, frozenset[str]]],
          found: list[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """Per kind: precision, recall, labels and reports."""
    remaining = Counter((c, k, s) for c, k, s, _ in truth)
    alternatives = {(c, k, a): s for c, k, s, alts in truth for a in alts}
    hits: Counter[str] = Counter()
    for case_id, kind, step in found:
        key = (case_id, kind, step)
        alt = alternatives.get(key)
        if remaining[key] > 0:
            remaining[key] -= 1
            hits[kind] += 1
        elif alt is not None and remaining[(case_id, kind, alt)] > 0:
            remaining[(case_id, kind, alt)] -= 1
            hits[kind] += 1
    n_truth = Counter(k for _, k, _, _ in truth)
    n_found = Counter(k for _, k, _ in found)
    return {kind: {"precision": hits[kind] / n_found[kind] if n_found[kind] else 1.0,
                   "recall": hits[kind] / n_truth[kind] if n_truth[kind] else 1.0,
                   "labels": n_truth[kind], "reported": n_found[kind]}
            for kind in sorted(set(n_truth) | set(n_found))}


def run(cases: int, seed: int, deviation_rate: float) -> dict[str, object]:
    from pipeline.calendars import load_calendars, load_institutions
    from pipeline.config import get_settings, load_secret
    from pipeline.db import connect
    from pipeline.ingest import ingest_file, pseudonym
    from pipeline.run import run_compliance
    from pipeline.sop import load_catalogue
    from pipeline.synth import DEMO_INSTITUTIONS, generate

    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_dir)
    institutions = load_institutions(settings.institutions_file)
    with tempfile.TemporaryDirectory(prefix="patuh-accuracy-") as tmp:
        work = Path(tmp)
        result = generate(work / "synth", institutions=DEMO_INSTITUTIONS, cases=cases, seed=seed,
                          deviation_rate=deviation_rate)
        conn = connect(work / "patuh.duckdb")
        for f in result.files:
            ingest_file(conn, f.path, institution_id=f.institution_id, sop_id=f.sop_id, catalogue=catalogue,
                        calendars=institutions)
        started = time.perf_counter()
        summary = run_compliance(conn, catalogue, institutions, load_calendars(settings.institutions_file),
                                 as_of=result.as_of)
        seconds = time.perf_counter() - started
        key = load_secret()
        with result.ground_truth.open(encoding="utf-8") as handle:
            truth = [(pseudonym(r["case_id"], key), r["kind"], r["step_id"] or "",
                      frozenset(a for a in (r.get("alt_step_ids") or "").split(";") if a))
                     for r in csv.DictReader(handle)]
        found = [(c, k, s or "") for c, k, s in conn.execute(
            "SELECT case_id, kind, step_id FROM latest_deviations WHERE kind <> 'rule_breach'").fetchall()]
        conn.close()
    return {"cases": result.cases, "events": result.events, "seed": seed, "deviation_rate": deviation_rate,
            "run_seconds": round(seconds, 2), "compliance_rate": summary.compliance_rate,
            "machine": {"host": platform.node(), "python": platform.python_version(),
                        "processor": platform.processor() or platform.machine()},
            "kinds": score(truth, found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--deviation-rate", type=float, default=0.12)
    parser.add_argument("--out", type=Path, default=Path("bench/results/accuracy.json"))
    args = parser.parse_args()
    report = run(args.cases, args.seed, args.deviation_rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    kinds = report["kinds"]
    assert isinstance(kinds, dict)
    for kind, row in kinds.items():
        print(f"{kind:18s} precision {row['precision']:.4f} recall {row['recall']:.4f} "
              f"(labels {row['labels']}, reported {row['reported']})")
    print(f"{report['cases']} cases, {report['events']} events; written to {args.out}")


if __name__ == "__main__":
    main()
