"""Accuracy: on a synthetic log with ground truth, precision and recall >= 0.95 for every deviation kind."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.accuracy import KINDS, score
from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings, load_secret
from pipeline.db import connect
from pipeline.ingest import ingest_file, pseudonym
from pipeline.run import run_compliance
from pipeline.sop import load_catalogue
from pipeline.synth import generate


def test_precision_and_recall_on_synthetic_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATUH_SECRET", "accuracy-test-secret-not-a-real-key")
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
    report = "\n".join(f"{k:18s} precision {v['precision']:.3f} recall {v['recall']:.3f} "
                       f"(labels {v['labels']}, reported {v['reported']})" for k, v in scores.items())
    for kind in KINDS:
        assert kind in scores, f"no {kind} labelled or reported:\n{report}"
        assert scores[kind]["precision"] >= 0.95 and scores[kind]["recall"] >= 0.95, f"{kind}:\n{report}"
