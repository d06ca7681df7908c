"""A variant of a config shares the cache without damaging it, and two configs never share an
output folder (issue 9, finding 5).

On d561ae9, running a config with fp32 and int8 cells and then a copy with `simplify: false`
exited 0 but printed `fp32: not built yet (precision)`, and the next run of the copy ran export
and fp32's precision again. ModelOpt's `quantize` rewrites the graph it is given in place (shape
inference); the int8 task was given a hard link to the export's cached blob, which was also
fp32's `model.onnx`, so the blob no longer matched its hash and the cache dropped it. The copy
also silently took over `build/tiny/` from the first config.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import blake3
import pytest

from tests.conftest import TINY_CONFIG, Project

pytestmark = pytest.mark.slow

CELLS = "precision: [fp32, int8]\ncalibration: {source: random, samples: 4}\n"
CELL_FILES = ("model.onnx", "model.engine", "engine.json", "validation.json")


def run(project: Project, config: Path, out: str, *args: str) -> subprocess.CompletedProcess[str]:
    return project.trtbuild("run", config.name, "--out", out, *args)


def variant(project: Project, text: str) -> Path:
    """A copy of the project's config with `simplify: false`, same model name, same folder."""
    copy = project.root / "tiny-nosimplify.yaml"
    copy.write_text(text + "simplify: false\n")
    return copy


def digest(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


def assert_cells_intact(model_dir: Path, cells: tuple[str, ...]) -> None:
    """Every cell is built, and each file in the folder is the one its report names."""
    report = json.loads((model_dir / "report.json").read_text())
    assert [cell["status"] for cell in report["cells"]] == ["built"] * len(cells), report["cells"]
    for cell in report["cells"]:
        for name in CELL_FILES:
            path = model_dir / cell["cell"] / name
            assert path.is_file(), f"{path} is missing"
            assert cell["artifacts"][name]["hash"] == digest(path), f"{path} is not what was built"


def test_a_variant_config_reuses_the_cache_without_damaging_it(tiny_project: Project) -> None:
    text = TINY_CONFIG + CELLS
    first = tiny_project.write_config(text)
    second = variant(tiny_project, text)
    assert run(tiny_project, first, "build").returncode == 0

    completed = run(tiny_project, second, "build-variant")
    assert completed.returncode == 0, completed.stderr
    assert "not built yet" not in completed.stdout, completed.stdout
    assert_cells_intact(tiny_project.root / "build-variant" / "tiny", ("fp32", "int8"))

    for config, out in ((second, "build-variant"), (first, "build")):
        again = run(tiny_project, config, out, "--json")
        tasks = json.loads(again.stdout)["tasks"]
        assert {task["id"]: task["state"] for task in tasks if task["state"] != "cached"} == {}
        assert_cells_intact(tiny_project.root / out / "tiny", ("fp32", "int8"))


def test_a_second_config_cannot_take_over_a_model_folder(tiny_project: Project) -> None:
    first = tiny_project.config  # fp32 only
    second = variant(tiny_project, first.read_text())
    assert run(tiny_project, first, "build").returncode == 0
    model_dir = tiny_project.out / "tiny"
    before = {path: path.stat().st_mtime_ns for path in model_dir.rglob("*")}

    refused = run(tiny_project, second, "build")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{second}:2:9: model.name" in refused.stderr
    assert f"holds the builds of {first}" in refused.stderr and "--out DIR" in refused.stderr
    assert "Traceback" not in refused.stderr
    # Nothing ran and nothing of the first config's was touched.
    assert {path: path.stat().st_mtime_ns for path in model_dir.rglob("*")} == before
    assert not second.with_suffix(".lock").exists()

    # The first config is renamed away: its folder passes to the second, and the run says so.
    first.rename(tiny_project.root / "retired.yaml.bak")
    taken = run(tiny_project, second, "build")
    assert taken.returncode == 0, taken.stderr
    assert f"belonged to {first}, which no longer exists" in " ".join(taken.stdout.split())
    assert_cells_intact(model_dir, ("fp32",))
