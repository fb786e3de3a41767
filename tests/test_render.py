"""`patuh sop render`: every catalogue model draws as the paper table (HTML, SVG) and as a process graph;
one HTML page is screenshotted in headless Chromium and must not be blank."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.render import CHROMIUM, html_to_png, render_graph_svg, render_html, render_svg, render_to_file
from pipeline.sop import SopModel, load_catalogue

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = load_catalogue(REPO / "sop_models")
MODELS = sorted(CATALOGUE.models)
PROCEDURES = [m for m in MODELS if CATALOGUE.models[m].kind == "procedure"]
SVG_NS = "{http://www.w3.org/2000/svg}"


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def drawn_texts(svg: str, cls: str) -> dict[str, str]:
    """data-step -> the text of the <text class=cls> element, its wrapped lines joined."""
    root = ET.fromstring(svg)
    return {el.attrib["data-step"]: "".join(el.itertext())
            for el in root.iter(f"{SVG_NS}text") if el.attrib.get("class") == cls}


def test_catalogue_is_loaded() -> None:
    assert not CATALOGUE.errors
    assert len(PROCEDURES) >= 10 and any(CATALOGUE.models[m].kind == "rules" for m in MODELS)


@pytest.mark.parametrize("sop_id", MODELS)
def test_every_model_renders_as_the_paper_table(sop_id: str) -> None:
    model = CATALOGUE.models[sop_id]
    svg = render_svg(model, "Nama Instansi")
    page = render_html(model, "Nama Instansi")
    root = ET.fromstring(svg.split("\n", 1)[1])  # well-formed standalone SVG
    assert root.tag == f"{SVG_NS}svg" and float(root.attrib["width"]) >= 900
    texts = "".join(root.itertext())
    for label in ("Nomor SOP", "Disahkan oleh", "Nama SOP", "NAMA INSTANSI"):
        assert label in texts
    inline = page[page.index("<svg"):page.index("</svg>") + 6]
    assert inline in svg  # the page shows the same drawing
    assert "<script" not in page.lower() and " src=" not in page and " href=" not in page
    if model.kind == "rules":
        drawn = drawn_texts(inline, "rule-text")
        assert [squash(drawn[r.id]) for r in model.rules] == [squash(r.text) for r in model.rules]
        return
    for label in ("Pelaksana", "Mutu Baku", "Kelengkapan", "Waktu", "Output", "Keterangan"):
        assert label in texts
    for role in model.roles.values():  # one column per lane
        assert squash(role.label) in squash(texts)
    drawn = drawn_texts(inline, "activity")
    assert [squash(drawn[s.id]) for s in model.steps] == [squash(s.activity) for s in model.steps]
    # one flowchart symbol per step (each carries the step's text as its tooltip)
    titles = [squash(t.text or "") for t in root.iter(f"{SVG_NS}title")]
    for step in model.steps:
        assert squash(f"{step.no or ''} {step.activity}") in titles
    arrows = [p for p in root.iter(f"{SVG_NS}path") if p.attrib.get("marker-end")]
    assert len(arrows) >= len(model.steps) - 1


@pytest.mark.parametrize("sop_id", PROCEDURES)
def test_every_procedure_renders_as_a_process_graph(sop_id: str) -> None:
    model = CATALOGUE.models[sop_id]
    root = ET.fromstring(render_graph_svg(model, standalone=False))
    groups = [g for g in root.iter(f"{SVG_NS}g") if g.attrib.get("class", "").startswith("node ")]
    kinds = [g.attrib["class"].split()[1] for g in groups]
    assert kinds.count("task") == len(model.steps)
    assert kinds.count("start") == 1 and kinds.count("end") == 1
    if model.flow or any(s.optional or s.repeat for s in model.steps):
        assert "xor" in kinds  # decisions, skips and loops show as gateways


def test_text_is_escaped() -> None:
    evil = "<script>alert('x')</script> & \"quotes\""
    model = SopModel.model_validate({
        "id": "test/escape", "institution": "test", "title": evil, "source": {"file": "x.txt", "table": evil},
        "roles": {"a": {"label": evil}},
        "steps": [{"id": "s1", "activity": evil, "role": "a", "documents": [evil], "output": evil, "notes": evil}],
        "notes": [evil],
    })
    for text in (render_html(model, evil), render_svg(model, evil), render_graph_svg(model)):
        assert "<script>" not in text
        assert "&lt;script&gt;" in text or "&lt;SCRIPT&gt;" in text


def test_rules_model_has_no_graph() -> None:
    model = CATALOGUE.models["smkn1-petasia/peraturan-akademik"]
    with pytest.raises(Exception, match="rules model"):
        render_graph_svg(model)


def test_cli_render_writes_files(tmp_path: Path) -> None:
    runner = CliRunner()
    for fmt, graph in (("html", False), ("svg", False), ("svg", True), ("html", True)):
        out = tmp_path / f"out-{graph}.{fmt}"
        args = ["sop", "render", "smpn2-ngawi/bk001-prosedur", "--format", fmt, "--out", str(out),
                "--sop-dir", str(REPO / "sop_models")]
        result = runner.invoke(app, [*args, "--graph"] if graph else args)
        assert result.exit_code == 0, result.output
        text = out.read_text(encoding="utf-8")
        assert "<svg" in text
        if not graph:
            assert "SMP NEGERI 2 NGAWI" in text  # the institution's name from institutions.yaml


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope/missing", "--out", "x.html"], "no SOP model 'nope/missing'"),
        (["smpn2-ngawi/bk001-prosedur", "--format", "pdf", "--out", "x.pdf"], "use html, svg or png"),
        (["smkn1-petasia/peraturan-akademik", "--graph", "--out", "x.svg"], "rules model"),
    ],
)
def test_cli_render_mistakes(tmp_path: Path, args: list[str], message: str) -> None:
    script = Path(sys.executable).with_name("patuh")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    proc = subprocess.run([*cmd, "sop", "render", *args, "--sop-dir", str(REPO / "sop_models")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_png_screenshot_is_not_blank(tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    model = CATALOGUE.models["ipdn-jatinangor/terapi"]
    out = render_to_file(model, "png", tmp_path / "terapi.png")
    with Image.open(out) as image:
        gray = image.convert("L")
        width, height = gray.size
        assert width >= 900 and height >= 800
        stat = ImageStat.Stat(gray)
        assert stat.stddev[0] > 20  # lines and text on white, not a blank page
        # the step table's lower half has ink too (the page was not cut off)
        lower = ImageStat.Stat(gray.crop((0, height // 2, width, height)))
        assert lower.stddev[0] > 20
    page = render_html(model)
    for step in model.steps:
        assert squash(step.activity) in squash(re.sub(r"<[^>]+>", "", page))


def test_html_to_png_reports_a_missing_browser(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="needs Chromium"):
        html_to_png("<p>x</p>", tmp_path / "x.png", 100, 100, chromium=tmp_path / "no-chromium")
