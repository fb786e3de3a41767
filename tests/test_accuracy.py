"""Accuracy: on a synthetic log with ground truth, precision and recall >= 0.95 for every deviation kind."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings, load_secret
from pipeline.db import connect
from pipeline.ingest import ingest_file, pseudonym
from pipeline.run import run_compliance
from pipeline.sop import load_catalogue
from pipeline.synth import generate

KINDS = ["missing_step", "unexpected_step", "wrong_order", "repeated_step", "overdue_step", "case_sla_breach",
         "wrong_role", "missing_document", "stalled_case"]


def score(truth: list[tuple[str, str, str, frozenset[str]]],
          found: list[tuple[str, str, str]]) -> dict[str, tuple[float, float, int, int]]:
    """Per kind: precision, recall, labels, reports. A wrong_order report matches any step of its swap."""
    remaining = Counter((c, k, s) for c, k, s, _ in truth)
    alternatives = {(c, k, a): s for c, k, s, alts in truth for a in alts}
    tp: Counter[str] = Counter()
    for case_id, kind, step in found:
        key = (case_id, kind, step)
        if remaining[key] > 0:
            remaining[key] -= 1
            tp[kind] += 1
            continue
        alt = alternatives.get(key)
        if alt is not None and remaining[(case_id, kind, alt)] > 0:
            remaining[(case_id, kind, alt)] -= 1
            tp[kind] += 1
    n_truth = Counter(k for _, k, _, _ in truth)
    n_found = Counter(k for _, k, _ in found)
    return {kind: (tp[kind] / n_found[kind] if n_found[kind] else 1.0,
                   tp[kind] / n_truth[kind] if n_truth[kind] else 1.0, n_truth[kind], n_found[kind])
            for kind in sorted(set(n_truth) | set(n_found))}


def test_precision_and_recall_on_synthetic_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATUH_SECRET", "accuracy-test-secret")
    settings = get_settings()
    result = generate(tmp_path / "synth", institutions=["smpn2-ngawi", "bontang-bk", "ipdn-jatinangor"],
                      cases=400, deviation_rate=0.35, seed=11, months=6)
    catalogue = load_catalogue(settings.catalogue_dir)
    institutions = load_institutions(settings.institutions_file)
    conn = connect(tmp_path / "patuh.duckdb")
    for f in result.files:
        ingest_file(conn, f.path, institution_id=f.institution_id, sop_id=f.sop_id, catalogue=catalogue,
                    calendars=institutions)
    run_compliance(conn, catalogue, institutions, load_calendars(settings.institutions_file), as_of=result.as_of)
    key = load_secret()
    truth = []
    with result.ground_truth.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            alts = frozenset(a for a in (row.get("alt_step_ids") or "").split(";") if a)
            truth.append((pseudonym(row["case_id"], key), row["kind"], row["step_id"] or "", alts))
    found = [(c, k, s or "") for c, k, s in conn.execute(
        "SELECT case_id, kind, step_id FROM latest_deviations").fetchall()]
    scores = score(truth, found)
    report = "\n".join(f"{k:18s} precision {p:.3f} recall {r:.3f} (labels {nt}, reported {nf})"
                       for k, (p, r, nt, nf) in scores.items())
    for kind in KINDS:
        assert kind in scores, f"no {kind} labelled or reported:\n{report}"
        precision, recall, _, _ = scores[kind]
        assert precision >= 0.95 and recall >= 0.95, f"{kind}:\n{report}"
