"""docs/catalogue.md against the model files, and every procedure model as a sound workflow net.

The checked-in table is what a supervisor reads beside the paper: a model missing from it, or a step count
that differs from the model file, would send them to check the wrong thing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from pipeline import pm4py_adapter
from pipeline.sop import Catalogue, load_catalogue

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "catalogue.md"
ROOT = REPO / "sop_models"
REBUILD = "uv run python docs/build_catalogue.py"
Table = dict[str, dict[str, str]]  # model id -> column -> cell
COLUMNS = ["id", "number", "title", "source", "steps", "time standards", "lanes"]

SEED_000 = "000_992ee82b51fc57c1.txt"  # SMP N 2 Ngawi: the 6-step procedure and the 10-step flow
SEED_001 = "001_76d2082b3c3fc8ad.txt"  # Bontang counselling service standard
SEED_002 = "002_24a35e392b7cc955.txt"  # SMK N 1 Petasia academic rules
SEED_003 = "003_75ed8eb02a175991.txt"  # RPPSA Putra Utama Mataram: 51 SOPs
SEED_004 = "004_184da0867f7808c4.txt"  # IPDN Jatinangor: 4 SOPs


def parse_table(text: str) -> list[dict[str, str]]:
    """The first markdown table whose header is exactly COLUMNS, as one dict per row."""
    rows: list[dict[str, str]] = []
    header_seen = False
    for line in text.splitlines():
        if not line.startswith("|"):
            if header_seen:
                break
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not header_seen:
            header_seen = cells == COLUMNS
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---| separator
        assert len(cells) == len(COLUMNS), f"docs/catalogue.md: row with {len(cells)} cells: {line[:80]}"
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    assert header_seen, f"docs/catalogue.md has no table with the columns | {' | '.join(COLUMNS)} |"
    return rows


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    cat = load_catalogue(ROOT)
    assert not cat.errors, "\n".join(p.render() for p in cat.errors)
    return cat


@pytest.fixture(scope="module")
def table() -> Table:
    rows = parse_table(DOC.read_text(encoding="utf-8"))
    ids = [r["id"] for r in rows]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not duplicates, f"docs/catalogue.md lists these models twice: {duplicates}"
    return {r["id"]: r for r in rows}


def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_catalogue", REPO / "docs" / "build_catalogue.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_model_has_a_row_and_every_row_a_model(catalogue: Catalogue, table: Table) -> None:
    missing = sorted(set(catalogue.models) - set(table))
    extra = sorted(set(table) - set(catalogue.models))
    assert not missing, f"models missing from docs/catalogue.md: {missing}; run '{REBUILD}'"
    assert not extra, f"docs/catalogue.md lists models that do not exist in sop_models/: {extra}"


def test_models_per_seed_source_match_the_table(catalogue: Catalogue, table: Table) -> None:
    in_models = Counter(m.source.file for m in catalogue.models.values())
    in_table = Counter(re.split(r"[\s,]", row["source"])[0] for row in table.values())
    for source in sorted(set(in_models) | set(in_table)):
        assert in_table[source] == in_models[source], (
            f"seed {source}: {in_models[source]} model file(s) but {in_table[source]} row(s) in "
            "docs/catalogue.md"
        )


def test_step_rows_per_model_match_the_table(catalogue: Catalogue, table: Table) -> None:
    wrong = []
    for sop_id, model in sorted(catalogue.models.items()):
        if sop_id not in table:
            continue  # reported by the test above
        expected = len(model.rules) if model.kind == "rules" else len(model.steps)
        shown = table[sop_id]["steps"]
        if shown != str(expected):
            what = "rules" if model.kind == "rules" else "step rows"
            wrong.append(f"{sop_id}: the model has {expected} {what}, docs/catalogue.md says {shown!r}")
    assert not wrong, "\n".join(wrong)


def test_time_standards_column_lists_each_row(catalogue: Catalogue, table: Table) -> None:
    """The time column has one entry per step row, as printed in the model (blank = '—')."""
    for sop_id, model in catalogue.models.items():
        if model.kind != "procedure":
            continue
        steps_part = table[sop_id]["time standards"].split(";")[0]
        expected = [s.time if s.time is not None else "—" for s in model.steps]
        assert [t.strip() for t in steps_part.split(",")] == expected, sop_id


def test_the_catalogue_holds_every_seed(catalogue: Catalogue) -> None:
    """Issue 4: at least 56 SOP tables (seeds 000, 003, 004), the Bontang standard and the Petasia rules."""
    per_seed = Counter(m.source.file for m in catalogue.models.values() if m.kind == "procedure")
    assert per_seed[SEED_000] == 2  # both tables
    assert per_seed[SEED_003] == 51  # 9.2.01-9.2.16 and 9.1.01-9.1.35
    assert per_seed[SEED_004] == 4  # all four IPDN SOPs
    assert per_seed[SEED_000] + per_seed[SEED_003] + per_seed[SEED_004] >= 56
    assert per_seed[SEED_001] >= 1
    rules = [m for m in catalogue.models.values() if m.kind == "rules"]
    assert [m.source.file for m in rules] == [SEED_002]
    numbers = {m.number for m in catalogue.models.values() if m.source.file == SEED_003}
    expected = {f"9.2.{i:02d}/2010" for i in range(1, 17)} | {f"9.1.{i:02d}/2010" for i in range(1, 36)}
    assert numbers == expected


def test_table_is_up_to_date(catalogue: Catalogue) -> None:
    """The checked-in table equals what the generator builds from the models now."""
    script = build_script()
    text = DOC.read_text(encoding="utf-8")
    start = text.index(script.TABLE_BEGIN) + len(script.TABLE_BEGIN)
    end = text.index(script.TABLE_END)
    assert text[start:end].strip() == script.render_table(catalogue).strip(), (
        f"docs/catalogue.md is out of date: run '{REBUILD}'"
    )


def test_every_model_has_a_judgement_calls_entry(catalogue: Catalogue) -> None:
    script = build_script()
    text = DOC.read_text(encoding="utf-8")
    missing = [w for w in script.missing_judgements(catalogue, text) if "no heading" in w]
    assert not missing, "\n".join(missing)
    assert "Keputusan transkripsi / Judgement calls" in text


def test_generator_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 0 on the checked-in document (the real script) and 1, naming the fix, on a stale copy."""
    script = REPO / "docs" / "build_catalogue.py"
    ok = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "catalogue.md"
    stale.write_text(re.sub(r"\| 9\.2\.01/2010 \|", "| 9.2.99/2010 |", DOC.read_text(encoding="utf-8")),
                     encoding="utf-8")
    assert build_script().main(["--check", "--doc", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert build_script().main(["--doc", str(stale)]) == 0  # rebuilding fixes it
    assert stale.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


_CAT = load_catalogue(ROOT)
PROCEDURES = sorted(sid for sid, m in _CAT.models.items() if m.kind == "procedure")


@pytest.mark.parametrize("sop_id", PROCEDURES)
def test_model_compiles_to_a_sound_workflow_net(sop_id: str) -> None:
    model = _CAT.models[sop_id]
    net = pm4py_adapter.compile_sop(model)
    assert pm4py_adapter.is_sound(net), f"{sop_id}: the compiled net is not a sound workflow net"
    assert net.labels == set(model.step_ids), f"{sop_id}: visible transitions are not the step ids"


def test_validate_exits_0_on_the_catalogue() -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["sop", "validate", "--sop-dir", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert f"{len(_CAT.models)} model(s), {len(PROCEDURES)} sound net(s), 0 error(s)" in result.output


def test_the_catalogue_reads_whole_in_an_80_column_terminal() -> None:
    """``patuh sop list`` and ``patuh sop show`` in a default 80-column terminal: every SOP id can be copied
    as it is and no word of a step is cut off with an ellipsis (before: "bontang-bk/konse…", "berkoordi…")."""
    from tests.cli_process import patuh

    listed = patuh("sop", "list", secret="x" * 32, columns=80)
    shown = patuh("sop", "show", "smpn2-ngawi/bk001-prosedur", secret="x" * 32, columns=80)
    assert listed.returncode == 0 and shown.returncode == 0, listed.stderr + shown.stderr
    for out in (listed.stdout, shown.stdout):
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    assert set(_CAT.models) <= set(listed.stdout.splitlines())
    assert "judul / title: Prosedur Layanan Penanganan Siswa" in listed.stdout
    assert "berkoordinasi" in shown.stdout.replace("│", "").replace(" ", "").replace("\n", "")
