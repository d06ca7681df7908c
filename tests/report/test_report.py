"""Reports from a real fp32 + fp16 run of the tiny model: report.json, report.md, and report.html as
headless Chromium renders it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL, Project
from trtbuild import api
from trtbuild.report import write_reports

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Appended to a copy of the page: after load, records what is rendered where --dump-dom shows it.
PROBE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
  const result = {
    rows: [...document.querySelectorAll("#comparison tbody tr")].map(
      (tr) => [...tr.cells].map((td) => td.textContent)),
    headers: [...document.querySelectorAll("#comparison thead th")].map((th) => th.textContent),
    plots: [...document.querySelectorAll("img.plot")].map((img) => ({
      complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, box: box(img)})),
    table: box(document.getElementById("comparison")),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The tiny model in fp32 and fp16, built once for this module, with its reports written."""
    root = tmp_path_factory.mktemp("report") / "project"
    root.mkdir()
    (root / "tinynet.py").write_text(TINY_MODEL)
    head, _, tail = TINY_CONFIG.partition("build:\n")
    config = root / "tiny.yaml"
    config.write_text(f"{head}precision: [fp32, fp16]\nbuild:\n{tail}")
    project = Project(root=root, config=config, cache=root.parent / "cache", out=root / "build")
    result = api.run([config], cache_dir=project.cache, out_dir=project.out)
    assert result.exit_status == 0, [e.to_json() for e in result.failed_tasks]
    assert {e.state for e in result.events} == {"ran"}
    write_reports(result.plan, result.events, project.out)
    return project


def report_json(project: Project) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project.out / "tiny" / "report.json").read_text())
    return loaded


def test_report_json_has_each_cells_metrics_sizes_and_times(built: Project) -> None:
    report = report_json(built)
    assert report["model"] == "tiny" and report["axes"] == ["precision"]
    assert [cell["cell"] for cell in report["cells"]] == ["fp32", "fp16"]
    for cell in report["cells"]:
        assert cell["values"] == {"precision": cell["cell"]} and cell["precision"] == cell["cell"]
        assert cell["status"] == "built" and cell["verdict"] == "passed"
        assert cell["config"] == str(built.config)  # absolute: it names the file wherever it is read
        candidates = cell["validation"]["candidates"]
        logits = candidates["onnxruntime"]["outputs"]["logits"]
        assert logits["cosine"] > 0.999 and logits["max_abs"] < 1e-2
        # No GPU here: the engine comparison is skipped with its reason, never passed.
        if candidates["engine"]["status"] == "skipped":
            assert candidates["engine"]["reason"] and "passed" not in candidates["engine"]
        assert cell["gate_failures"] == []
        engine_file = built.out / "tiny" / cell["cell"] / "model.engine"
        assert cell["engine"]["bytes"] == engine_file.stat().st_size
        assert cell["engine"]["backend"] == "tensorrt-rtx" and cell["engine"]["targets"] == ["SM89"]
        onnx_file = built.out / "tiny" / cell["cell"] / "model.onnx"
        assert cell["artifacts"]["model.onnx"]["bytes"] == onnx_file.stat().st_size
        tasks = {task["kind"]: task for task in cell["tasks"]}
        assert list(tasks) == ["export", "simplify", "probe", "reference", "precision", "build", "validate"]
        assert all(task["state"] == "built" and task["seconds"] >= 0 for task in tasks.values())
        assert tasks["export"]["shared_with"] == [c for c in ("fp32", "fp16") if c != cell["cell"]]
        assert cell["seconds"] == pytest.approx(sum(t["seconds"] for t in tasks.values()), abs=1e-3)


def test_report_md_has_one_row_per_cell(built: Project) -> None:
    text = (built.out / "tiny" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| fp")]
    assert [row.split("|")[1].strip() for row in rows] == ["fp32", "fp16"]
    for row in rows:
        assert "passed" in row and "skipped" in row and "KiB" in row
    assert "engine comparison skipped" in text


def test_cached_run_and_report_verb_leave_the_reports_untouched(built: Project) -> None:
    directory = built.out / "tiny"
    before = {name: (directory / name).read_bytes() for name in ("report.json", "report.md", "report.html")}
    html_mtime = (directory / "report.html").stat().st_mtime_ns
    again = api.run([built.config], cache_dir=built.cache, out_dir=built.out)
    assert {e.state for e in again.events} == {"cached"}
    write_reports(again.plan, again.events, built.out)
    # What `trtbuild report` does: no events, states from the plan.
    write_reports(api.plan([built.config], cache_dir=built.cache), None, built.out)
    assert (directory / "report.json").read_bytes() == before["report.json"]
    assert (directory / "report.html").stat().st_mtime_ns == html_mtime
    # Redrawn from the same report.json, the page is the same bytes: figures are deterministic.
    (directory / "report.json").unlink()
    write_reports(again.plan, again.events, built.out)
    assert {name: (directory / name).read_bytes() for name in before} == before


def test_report_verb_prints_the_table_and_the_paths(built: Project) -> None:
    from trtbuild.cli.report import comparison_table
    from trtbuild.cli.terminal import render_table

    text = "\n".join(render_table(comparison_table(report_json(built)), 200, colour=False))
    assert "fp32" in text and "fp16" in text and "skipped" in text and "backend" not in text


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium: apt-get install chromium")
def test_report_html_renders_table_and_plots_in_chromium(built: Project, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="report.html's plots need matplotlib (the report extra)")
    html = (built.out / "tiny" / "report.html").read_text()
    # Self-contained: nothing to fetch, so it renders the same from an attachment or offline.
    for external in ("http://", "https://", "<script", "<link"):
        assert external not in html
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    dumped = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri(), user_data=tmp_path / "p1")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    probe_text = dumped.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    probe = json.loads(probe_text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<"))
    assert [row[0] for row in probe["rows"]] == ["fp32", "fp16"]
    assert "verdict" in probe["headers"] and probe["table"][2] > 500
    visible = [p for p in probe["plots"] if p["complete"] and p["width"] > 0 and p["box"][2] > 300]
    assert len(visible) >= 2, probe["plots"]

    # And on screen: the plots' areas of a screenshot are drawn, not blank.
    import numpy as np
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    taken = chromium(
        f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri(), user_data=tmp_path / "p2"
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    pixels = np.asarray(imread(str(shot)))[..., :3]
    drawn = 0
    for plot in visible:
        left, top, width, height = (int(v) for v in plot["box"])
        if top + height > pixels.shape[0]:
            continue  # below the window
        area = pixels[top : top + height, left : left + width]
        ink = (area < 0.9).any(axis=-1).mean()  # share of pixels that are not (near) white
        drawn += int(ink > 0.02)
    assert drawn >= 2
