"""`patuh conform` and `patuh sop export` on the files a QA engineer tried: each mistake is a clear message and a
non-zero exit (no traceback, no Rust panic text), each accepted layout gives pm4py's results.

Real files in tmp_path, the real CLI in a subprocess, real pm4py.
"""

from __future__ import annotations

import csv
import gzip
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_process import ROOT, patuh

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pm4py-tests"
SOP = ROOT / "sop_models" / "smpn2-ngawi" / "bk001-prosedur.yaml"
RULES = ROOT / "sop_models" / "smkn1-petasia" / "peraturan-akademik.yaml"

needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason=f"reference data not found at {REFERENCE}")


def conform(log: Path, model: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return patuh("conform", "--log", str(log), "--model", str(model), "--out", str(out), secret="x" * 32)


def said(result: subprocess.CompletedProcess[str]) -> str:
    """stderr as one line (the console wraps long messages)."""
    return " ".join(result.stderr.split())


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 1 with 'Galat: ...' (Bahasa Indonesia) then 'Error: ...' (English) and every phrase, no traceback
    and nothing of a Rust panic."""
    text = said(result)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert text.startswith("Galat: ") and text.count(" Error: ") == 1 and "Traceback" not in text, result.stderr
    for noise in ("panicked", "PanicException", "RUST_BACKTRACE", "pyo3"):
        assert noise not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in text, (phrase, result.stderr)


def rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return {r["case_id"]: r for r in csv.DictReader(handle)}


def write_csv(path: Path, header: list[str], body: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return path


PM4PY = ["case:concept:name", "concept:name", "time:timestamp"]  # the CSV columns conform read before too
# running-example.pnml's labels: case 1 fits, case 2 skips 'check ticket'
EVENTS = [["1", "register request", "2026-03-02 08:00:00"], ["1", "examine casually", "2026-03-02 09:00:00"],
          ["1", "check ticket", "2026-03-02 10:00:00"], ["1", "decide", "2026-03-02 11:00:00"],
          ["1", "reject request", "2026-03-02 12:00:00"],
          ["2", "register request", "2026-03-03 08:00:00"], ["2", "examine thoroughly", "2026-03-03 09:00:00"],
          ["2", "decide", "2026-03-03 10:00:00"], ["2", "pay compensation", "2026-03-03 11:00:00"]]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`patuh synth --format csv` of bk001-prosedur (columns case_id, activity, ts_start, ts_end, ...)."""
    folder = tmp_path_factory.mktemp("synth")
    made = patuh("synth", "--out", str(folder), "--sop", "smpn2-ngawi/bk001-prosedur", "--cases", "60",
                 "--deviation-rate", "0.4", "--format", "csv", secret="x" * 32)
    assert made.returncode == 0, made.stderr
    return folder / "smpn2-ngawi" / "bk001-prosedur.csv"


# --- 1: a damaged XES is ingest's message, not a Rust panic


@needs_reference
@pytest.mark.parametrize(("name", "content", "says"), [
    ("truncated.xes", lambda xes: xes[:3000], "not a complete XES file"),
    # complete-looking (ends with </log>), so past the pre-scan: pm4py's reader panics, the panic is caught
    ("cut.xes", lambda xes: xes[:3000] + b"\n</log>\n", "not a complete XES file"),
    ("x.xes.gz", lambda xes: b"case,activity\n1,a\n", "not a gz file, whatever its name says"),
    ("plain.xes.gz", lambda xes: xes, "not a .xes.gz file, whatever its name says (the content is XES): rename it"),
    ("cut.xes.gz", lambda xes: gzip.compress(xes)[:600], "it may be truncated"),
    ("empty.xes", lambda xes: xes[:xes.index(b"<trace>")] + b"</log>\n", "the XES file has no events"),
])
def test_a_damaged_xes_is_a_message_without_a_panic(tmp_path: Path, name: str, content: Callable[[bytes], bytes],
                                                    says: str) -> None:
    log = tmp_path / name
    log.write_bytes(content((REFERENCE / "running-example.xes").read_bytes()))
    result = conform(log, REFERENCE / "running-example.pnml", tmp_path / "out.csv")
    assert_refused(result, name, says)
    assert not (tmp_path / "out.csv").exists()


# --- 2: Patuh's own CSV column names


@needs_reference
@pytest.mark.parametrize("header", [["case_id", "activity", "timestamp"], ["Case_ID", "Activity", "ts_end"]])
def test_a_csv_with_patuh_column_names_gives_the_pm4py_named_results(tmp_path: Path, header: list[str]) -> None:
    """The names ingest knows without a mapping (any case) give the same rows as pm4py's own column names."""
    pnml = REFERENCE / "running-example.pnml"
    theirs = write_csv(tmp_path / "pm4py.csv", PM4PY, EVENTS)
    ours = write_csv(tmp_path / "ours.csv", header, EVENTS)
    expected, got = conform(theirs, pnml, tmp_path / "a.csv"), conform(ours, pnml, tmp_path / "b.csv")
    assert expected.returncode == 0 and got.returncode == 0, got.stderr
    assert rows(tmp_path / "a.csv") == rows(tmp_path / "b.csv")
    assert [r["deviation_moves"] for r in rows(tmp_path / "b.csv").values()] == ["0", "1"]


def test_a_synthetic_csv_is_read_as_it_is(tmp_path: Path, synthetic: Path) -> None:
    result = conform(synthetic, SOP, tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    assert "60 kasus/cases" in result.stdout and len(rows(tmp_path / "out.csv")) == 60


def test_a_csv_with_other_columns_says_which_names_conform_accepts(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "ekspor.csv", ["No Kasus", "Kegiatan", "Waktu"], [["1", "a", "2026-03-02 08:00"]])
    result = conform(log, SOP, tmp_path / "out.csv")
    assert_refused(result, "ekspor.csv", "needs a case, an activity and a timestamp column", "'No Kasus'",
                   "case_id", "case:concept:name", "activity", "concept:name", "timestamp", "time:timestamp",
                   "ts_end", "Rename the columns")
    assert "--mapping" not in said(result)


# --- 3: sop export


def test_an_exported_pnml_gives_the_results_of_the_sop_yaml(tmp_path: Path, synthetic: Path) -> None:
    """bk001-prosedur as PNML (labels: the activity texts of the log) aligns every case as the YAML does; the
    BPMN export finds the same deviations (its silent moves differ, so its costs do)."""
    pnml, bpmn = tmp_path / "bk001.pnml", tmp_path / "bk001.bpmn"
    for args in (("smpn2-ngawi/bk001-prosedur", "--out", str(pnml)),
                 (str(SOP), "--format", "bpmn", "--out", str(bpmn))):
        exported = patuh("sop", "export", *args, secret="x" * 32)
        assert exported.returncode == 0, exported.stderr
    assert "<pnml" in pnml.read_text(encoding="utf-8") and "Wali kelas berkoordinasi" in pnml.read_text("utf-8")
    for model, out in ((SOP, "yaml.csv"), (pnml, "pnml.csv"), (bpmn, "bpmn.csv")):
        result = conform(synthetic, model, tmp_path / out)
        assert result.returncode == 0, result.stderr
    by_yaml, by_pnml, by_bpmn = (rows(tmp_path / n) for n in ("yaml.csv", "pnml.csv", "bpmn.csv"))
    assert len(by_yaml) == 60 and any(r["cost"] != "2" for r in by_yaml.values())  # some cases deviate
    assert {c: (r["fitness"], r["cost"]) for c, r in by_pnml.items()} == \
        {c: (r["fitness"], r["cost"]) for c, r in by_yaml.items()}
    assert {c: r["deviation_moves"] for c, r in by_bpmn.items()} == \
        {c: r["deviation_moves"] for c, r in by_yaml.items()}


def test_sop_export_mistakes_are_messages(tmp_path: Path) -> None:
    assert_refused(patuh("sop", "export", "smpn2-ngawi/bk001-prosedur", "--format", "bpmn", "--out",
                         str(tmp_path / "x.pnml"), secret="x" * 32), "must end in .bpmn")
    assert_refused(patuh("sop", "export", "smpn2-ngawi/bk001-prosedur", "--out", str(tmp_path / "x.txt"),
                         secret="x" * 32), "use pnml or bpmn")
    assert_refused(patuh("sop", "export", "smpn2-ngawi/nope", "--out", str(tmp_path / "x.pnml"), secret="x" * 32),
                   "no SOP model 'smpn2-ngawi/nope'")


# --- 4: bad input no longer accepted or dropped without a word


@needs_reference
def test_a_log_with_no_activity_of_the_model_is_named_and_exits_1(tmp_path: Path) -> None:
    """Results are written all the same, but exit 1: almost always the wrong pair of files."""
    out = tmp_path / "out.csv"
    result = conform(REFERENCE / "running-example.xes", SOP, out)
    assert_refused(result, "no activity of running-example.xes", "is a step of the model bk001-prosedur.yaml",
                   "'check ticket'", "'Wali kelas berkoordinasi dengan guru BK'", "--log and --model")
    assert len(rows(out)) == 6 and all(r["fitness"] == "0.0" for r in rows(out).values())


@needs_reference
def test_csv_rows_without_an_activity_or_a_date_are_left_out_and_reported(tmp_path: Path) -> None:
    """Case 3's only row has no activity (the case vanished silently); case 1's undated row was kept (and,
    the timestamps staying text, sorted as text)."""
    body = [*EVENTS[:2], ["1", "pay compensation", "kemarin"], *EVENTS[2:], ["3", "", "2026-03-04 08:00:00"]]
    log = write_csv(tmp_path / "log.csv", PM4PY, body)
    result = conform(log, REFERENCE / "running-example.pnml", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    assert ("Peringatan / Warning: log.csv: left out 2 of 11 rows: 1 with a timestamp that is not a date "
            "(line 4: 'kemarin'); 1 with no activity (line 12)") in said(result)
    got = rows(tmp_path / "out.csv")
    assert set(got) == {"1", "2"} and got["1"]["deviation_moves"] == "0"


def test_a_csv_with_only_a_header_is_an_error(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "kosong.csv", PM4PY, [])
    assert_refused(conform(log, SOP, tmp_path / "out.csv"), "kosong.csv", "no rows")
    assert not (tmp_path / "out.csv").exists()


def test_a_csv_whose_rows_are_all_unusable_is_an_error(tmp_path: Path) -> None:
    log = write_csv(tmp_path / "log.csv", PM4PY, [["1", "s1", "besok"]])
    assert_refused(conform(log, SOP, tmp_path / "out.csv"), "none of the 1 rows can be used",
                   "not a date (line 2: 'besok')")


@needs_reference
def test_out_may_not_be_the_log_or_the_model(tmp_path: Path) -> None:
    log, model = tmp_path / "log.xes", tmp_path / "model.pnml"
    shutil.copyfile(REFERENCE / "running-example.xes", log)
    shutil.copyfile(REFERENCE / "running-example.pnml", model)
    before = log.read_bytes(), model.read_bytes()
    assert_refused(conform(log, model, log), "--out is the file given as --log")
    assert_refused(conform(log, model, tmp_path / "." / "model.pnml"), "--out is the file given as --model")
    assert (log.read_bytes(), model.read_bytes()) == before


@needs_reference
def test_an_xes_with_a_doctype_is_refused_as_ingest_refuses_it(tmp_path: Path) -> None:
    xes = (REFERENCE / "running-example.xes").read_text(encoding="utf-8")
    end = xes.index("?>") + 2
    log = tmp_path / "bomb.xes"
    log.write_text(xes[:end] + '\n<!DOCTYPE log [<!ENTITY a "aaaa">]>' + xes[end:], encoding="utf-8")
    assert_refused(conform(log, REFERENCE / "running-example.pnml", tmp_path / "out.csv"),
                   "bomb.xes", "declares a DTD or entities")


@needs_reference
def test_a_rules_model_says_it_has_no_process_and_names_procedures(tmp_path: Path) -> None:
    for result in (conform(REFERENCE / "running-example.xes", RULES, tmp_path / "out.csv"),
                   patuh("sop", "export", "smkn1-petasia/peraturan-akademik", "--out", str(tmp_path / "x.pnml"),
                         secret="x" * 32)):
        assert_refused(result, "smkn1-petasia/peraturan-akademik is a rules model (kind: rules)",
                       "no process of steps", "use a procedure SOP instead, e.g. bontang-bk/",
                       "'patuh sop list' shows each SOP's kind")
        assert "IndexError" not in said(result)
