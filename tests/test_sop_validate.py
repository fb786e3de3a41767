"""`patuh sop validate`: one bad file per error kind exits 1 with file, step and fix; the catalogue exits 0.

Each fixture in tests/fixtures/bad_sop/ states what it expects in its first comment lines:
``# expect: <message fragment>``, ``# step: <step id>``, ``# fix: <fix fragment>``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BAD = sorted((HERE / "fixtures" / "bad_sop").glob("*.yaml"))
KINDS = {"unknown_role", "unparseable_time", "flow_missing_step", "duplicate_step_id", "unreachable_step",
         "unsound_loop", "unknown_field"}


def expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        out[key.strip()] = value.strip()
    return out


def patuh(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (the real entry point, with its error handling)."""
    script = Path(sys.executable).with_name("patuh")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=180, check=False)


def test_one_fixture_per_error_kind() -> None:
    assert {p.stem for p in BAD} == KINDS
    for path in BAD:
        assert set(expectations(path)) >= {"expect", "step", "fix"}, path.name


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_fixture_exits_1_with_file_step_and_fix(path: Path) -> None:
    expected = expectations(path)
    result = CliRunner().invoke(app, ["sop", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if expected["expect"] in line]
    assert lines, f"{path.name}: no line with {expected['expect']!r} in\n{result.output}"
    line = lines[0]
    assert path.name in line  # the file
    assert f"[step {expected['step']}]" in line  # the step
    assert "error:" in line and f"Fix: {expected['fix']}" in line  # what to do


def test_every_bad_file_reported_at_once_by_the_real_cli() -> None:
    """One run over all bad files: every problem is listed, exit 1, no traceback."""
    proc = patuh("sop", "validate", *(str(p.relative_to(REPO)) for p in BAD))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for path in BAD:
        expected = expectations(path)
        assert any(path.name in line and expected["expect"] in line and "Fix:" in line
                   for line in proc.stderr.splitlines()), path.name
    assert f"{len(BAD)} error(s)" in proc.stdout  # one each: the loop fixture names its edge, not each stuck step


def test_catalogue_is_valid() -> None:
    result = CliRunner().invoke(app, ["sop", "validate", "--sop-dir", str(REPO / "sop_models")])
    assert result.exit_code == 0, result.output
    assert " 0 error(s)" in result.output


def test_a_yaml_syntax_error_names_its_line_and_what_the_parser_found(tmp_path: Path) -> None:
    """An SOP author who forgets a closing quote is told the line, what the parser found and where the quote
    opened, not only the parser's class name ("ScannerError") as before."""
    model = tmp_path / "kutip.yaml"
    model.write_text('id: smpn2-ngawi/kutip\ntitle: "Prosedur tanpa kutip penutup\nsteps: []\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["sop", "validate", str(model)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if "kutip.yaml" in line)
    assert "not valid YAML (found unexpected end of stream, while scanning a quoted scalar that starts on line 2)" \
        in " ".join(result.output.split())
    assert ":4" in line or "line 4" in line, line
