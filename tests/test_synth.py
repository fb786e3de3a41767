"""Synthetic logs: determinism, fitting clean logs, labelled deviations, working time, open cases, messy mode."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import pm4py_adapter
from pipeline.calendars import load_calendars, load_institutions
from pipeline.config import get_settings
from pipeline.sop import load_catalogue, parse_time
from pipeline.synth import CONTROL_FLOW, KINDS, SynthResult, activity_labels, generate, labels_from_moves

SETTINGS = get_settings()
CATALOGUE = load_catalogue(SETTINGS.catalogue_dir)
TWO = ["smpn2-ngawi", "bontang-bk"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _truth(result: SynthResult) -> pd.DataFrame:
    return pd.read_csv(result.ground_truth, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """Two schools with SLAs, decisions, loops, optional steps and documents; many deviations."""
    return generate(tmp_path_factory.mktemp("labelled"), institutions=TWO, cases=900, deviation_rate=0.3,
                    seed=11, fmt="csv", messy=True)


def test_same_seed_same_bytes_and_other_seed_other_log(tmp_path: Path) -> None:
    for fmt in ("parquet", "xlsx", "xes"):
        a = generate(tmp_path / f"a-{fmt}", sops=["smpn2-ngawi/bk001-prosedur"], cases=60, seed=5, fmt=fmt)
        b = generate(tmp_path / f"b-{fmt}", sops=["smpn2-ngawi/bk001-prosedur"], cases=60, seed=5, fmt=fmt)
        assert _digest(a.out_dir) == _digest(b.out_dir)
    c = generate(tmp_path / "c", sops=["smpn2-ngawi/bk001-prosedur"], cases=60, seed=6, fmt="parquet")
    log_a = _digest(tmp_path / "a-parquet")["smpn2-ngawi/bk001-prosedur.parquet"]
    assert _digest(c.out_dir)["smpn2-ngawi/bk001-prosedur.parquet"] != log_a


def test_rate_zero_closed_cases_fit_every_procedure_model(tmp_path: Path) -> None:
    procedures = sorted(m.id for m in CATALOGUE.models.values() if m.kind == "procedure")
    result = generate(tmp_path, sops=procedures, cases=6 * len(procedures), deviation_rate=0.0, seed=3,
                      weights={s: 1.0 for s in procedures}, fmt="parquet")
    truth = _truth(result)
    assert set(truth["injected"]) <= {"false"}
    assert not set(truth["kind"]) & {"unexpected_step", "wrong_order", "repeated_step", "wrong_role",
                                     "missing_document"}
    checked = 0
    for f in result.files:
        log = pd.read_parquet(f.path)
        closed = log[log["status"] == "closed"].sort_values(["case_id", "ts_end"], kind="stable")
        model = CATALOGUE.get(f.sop_id)
        labels = dict(zip(activity_labels(model), model.step_ids, strict=True))
        variants = sorted({tuple(labels[a] for a in g["activity"]) for _, g in closed.groupby("case_id")})
        compiled = pm4py_adapter.compile_sop(model)
        for res in pm4py_adapter.align_variants(compiled, [list(v) for v in variants]):
            assert res.fitness == 1.0, f.sop_id
        checked += len(variants)
        # closed cases carry no control-flow label
        closed_ids = set(closed["case_id"])
        cf = truth[(truth["sop_id"] == f.sop_id) & truth["kind"].isin(CONTROL_FLOW)]
        assert not set(cf["case_id"]) & closed_ids
    assert checked >= len(procedures)


def test_every_kind_is_injected_and_labelled_as_asked(labelled: SynthResult) -> None:
    truth = _truth(labelled)
    meta = json.loads(labelled.meta.read_text())
    for kind in KINDS:
        counts = meta["labels"][kind]
        assert counts["asked"] > 0, kind
        assert counts["injected"] == counts["asked"], (kind, counts)
        injected = truth[(truth["kind"] == kind) & (truth["injected"] == "true")]
        assert len(injected) == counts["asked"]
    swaps = truth[(truth["kind"] == "wrong_order") & (truth["injected"] == "true")]
    assert (swaps["alt_step_ids"] != "").all()
    foreign = truth[(truth["kind"] == "unexpected_step") & (truth["injected"] == "true")]
    assert (foreign["step_id"] == "").all() and (foreign["activity"] != "").all()
    assert meta["as_of"] == "2026-11-01T00:00:00+07:00"


def test_time_labels_match_a_measurement_of_the_written_log(labelled: SynthResult) -> None:
    """Overdue steps and SLA breaches recomputed from the CSV files equal the labels, event by event."""
    truth = _truth(labelled)
    calendars = load_calendars(SETTINGS.institutions_file)
    for f in labelled.files:
        model = CATALOGUE.get(f.sop_id)
        log = pd.read_csv(f.path, dtype=str, keep_default_na=False)
        for col in ("ts_start", "ts_end"):
            log[col] = pd.to_datetime(log[col], utc=True)
        step_of = dict(zip(activity_labels(model), model.step_ids, strict=True))
        log["step"] = log["activity"].map(step_of)
        cal = calendars[model.institution]
        expected: list[tuple[str, str]] = []
        for step in model.steps:
            std = parse_time(step.time, model.clock)
            rows = log[log["step"] == step.id]
            if std is None or rows.empty:
                continue
            over = cal.exceeds(std, rows["ts_start"], rows["ts_end"])
            expected += [(c, step.id) for c in rows["case_id"][over]]
        got = truth[(truth["sop_id"] == f.sop_id) & (truth["kind"] == "overdue_step")]
        assert sorted(expected) == sorted(zip(got["case_id"], got["step_id"], strict=True))
        for sla in model.slas:
            std = parse_time(sla.time, model.clock)
            assert std is not None
            a = log[log["step"] == sla.from_].groupby("case_id")["ts_start"].min()
            b = log[log["step"] == sla.to].groupby("case_id")["ts_end"].min()
            both = a.index.intersection(b.index)
            over = cal.exceeds(std, pd.DatetimeIndex(a[both]), pd.DatetimeIndex(b[both]))
            got = truth[(truth["sop_id"] == f.sop_id) & (truth["kind"] == "case_sla_breach")
                        & (truth["step_id"] == sla.id)]
            assert sorted(both[over]) == sorted(got["case_id"])


def test_events_fall_in_working_time_and_open_cases_exist(labelled: SynthResult) -> None:
    institutions = load_institutions(SETTINGS.institutions_file)
    national = holidays.country_holidays("ID", years=range(2025, 2028), categories=("public", "government"))
    as_of = pd.Timestamp(labelled.as_of)
    total_open = 0
    for f in labelled.files:
        inst = institutions[f.institution_id]
        log = pd.read_csv(f.path, dtype=str, keep_default_na=False)
        total_open += log.loc[log["status"] == "open", "case_id"].nunique()
        for col in ("ts_start", "ts_end"):
            ts = pd.to_datetime(log[col], utc=True)
            assert (ts <= as_of).all()
            local = ts.dt.tz_convert(inst.timezone)
            assert not (local.dt.dayofweek == 6).any()
            assert not local.dt.date.isin(list(national)).any()
            days = np.array(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])[local.dt.dayofweek]
            assert set(days) <= set(inst.working_days)
            minutes = local.dt.hour * 60 + local.dt.minute
            inside = np.zeros(len(log), dtype=bool)
            for wd in set(days):
                for interval in inst.hours.get(wd, inst.hours["default"]):
                    a, b = ((int(x[:2]) * 60 + int(x[3:])) for x in interval.split("-"))
                    inside |= (days == wd) & (minutes >= a) & (minutes <= b)
            assert inside.all(), f.sop_id
        assert (pd.to_datetime(log["ts_end"]) >= pd.to_datetime(log["ts_start"])).all()
    assert total_open > 0
    truth = _truth(labelled)
    assert (truth["kind"] == "stalled_case").sum() > 0


def test_messy_exports_load_with_the_expected_counts(labelled: SynthResult, tmp_path: Path) -> None:
    from pipeline.db import connect
    from pipeline.ingest import ingest_file

    assert labelled.expected is not None
    expected = json.loads(labelled.expected.read_text())
    assert any(k.endswith(".xlsx") for k in expected) and any(k.endswith("-latin1.csv") for k in expected)
    conn = connect(tmp_path / "messy.duckdb")
    try:
        for rel, exp in sorted(expected.items()):
            got = ingest_file(conn, labelled.out_dir / rel, institution_id=exp["institution_id"],
                              sop_id=exp["sop_id"], mapping=labelled.out_dir / exp["mapping"], key=b"test")
            assert (got.rows_loaded, got.rows_quarantined, got.rows_duplicate) == (
                exp["loaded"], exp["quarantined"], exp["duplicates"]), rel
        names = conn.execute("SELECT count(*) FROM events WHERE activity ILIKE '%Saputra%' "
                             "OR resource ILIKE '%Saputra%'").fetchone()
        assert names is not None and names[0] == 0
    finally:
        conn.close()


def test_label_rule_on_alignment_moves() -> None:
    moves: list[tuple[str, str | None]] = [("s1", "s1"), (">>", "s2"), ("s3", "s3"), ("s2", ">>"),
                                           ("s3", ">>"), ("?Rapat", ">>"), (">>", "s5"), (">>", None)]
    assert labels_from_moves(moves, {"s1", "s2", "s3", "s4", "s5"}) == [
        ("missing_step", "s5", ""), ("repeated_step", "s3", ""), ("unexpected_step", "", "Rapat"),
        ("wrong_order", "s2", ""),
    ]


def test_cli_synth_writes_logs_and_rejects_a_bad_format(tmp_path: Path) -> None:
    from pipeline.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["synth", "--sop", "bontang-bk/pengaduan", "--cases", "30", "--start", "2025-11-01",
                             "--months", "3", "--deviation-rate", "0.2", "--seed", "1", "--out",
                             str(tmp_path / "o"), "--format", "xes"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "bontang-bk" / "pengaduan.xes").exists()
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["as_of"].startswith(str(dt.date(2026, 2, 1)))
    bad = runner.invoke(app, ["synth", "--sop", "bontang-bk/pengaduan", "--out", str(tmp_path / "x"),
                              "--format", "docx"])
    assert bad.exit_code != 0
