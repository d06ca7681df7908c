"""Calibration from a folder of images and from a Python callable, end to end through the CLI:
real export, ModelOpt Q/DQ and TensorRT-RTX builds of the tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Project, states

pytestmark = pytest.mark.slow

CALIB_MODULE = """
import numpy as np


def batches():
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield {"input": rng.random((2, 3, 16, 16), dtype=np.float32)}


def wrong_shape():
    yield np.zeros((2, 3, 8, 8), np.float32)
"""


def set_calibration(project: Project, calibration: str) -> None:
    text = project.config.read_text()
    head, _, tail = text.partition("build:\n")
    head = head.partition("precision: ")[0]
    project.config.write_text(f"{head}precision: [fp32, int8]\ncalibration: {calibration}\nbuild:\n{tail}")


def write_images(folder: Path, count: int) -> list[Path]:
    """Small RGB PNGs of different sizes and colours, so resize and crop have work to do."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"img{index}.png"
        image = Image.linear_gradient("L").resize((20 + index, 24)).convert("RGB")
        image.paste((30 * index, 80, 160), (0, 0, 6, 6))
        image.save(path)
        paths.append(path)
    return paths


def ran(document: dict[str, Any]) -> set[str]:
    return {task_id for task_id, state in states(document).items() if state == "ran"}


def assert_reran_only_int8(document: dict[str, Any]) -> None:
    """New calibration data reruns the int8 precision task; its build and validate rerun too unless
    the quantized graph came out byte for byte the same (then they are cached: early cut-off)."""
    assert document["exit_status"] == 0, document
    reran = ran(document)
    assert "tiny/int8/precision" in reran
    assert reran <= {"tiny/int8/precision", "tiny/int8/build", "tiny/int8/validate"}, reran


def assert_quantized(project: Project) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(str(project.out / "tiny/int8/model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


IMAGES = "{source: images, path: calib, preprocess: {resize: 16, crop: 16, mean: 0.5, std: 0.25}}"


def test_images_calibrate_int8_and_one_changed_image_reruns_only_int8(tiny_project: Project) -> None:
    images = write_images(tiny_project.root / "calib", 6)
    set_calibration(tiny_project, IMAGES)
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    assert_quantized(tiny_project)
    precision = next(t for t in document["tasks"] if t["id"] == "tiny/int8/precision")
    assert precision["meta"]["calibration"] == "images"
    assert "production_ready" not in precision["meta"]

    Image.new("RGB", (30, 30), (200, 10, 10)).save(images[3])
    assert_reran_only_int8(tiny_project.run_json())


def test_callable_calibrates_int8(tiny_project: Project) -> None:
    (tiny_project.root / "calib_data.py").write_text(CALIB_MODULE)
    set_calibration(tiny_project, "{source: callable, function: calib_data:batches, samples: 6}")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    assert_quantized(tiny_project)
    (tiny_project.root / "calib_data.py").write_text(CALIB_MODULE.replace("range(4)", "range(5)"))
    assert_reran_only_int8(tiny_project.run_json())


@pytest.mark.parametrize(
    ("calibration", "words"),
    [
        ("{source: images, path: calib}", ["calibration.path", "has no images"]),
        ("{source: images, path: calib, input: image}", ["calibration.input", "unknown input 'image'"]),
        (
            "{source: callable, function: calib_data:wrong_shape}",
            ["calibration.function", "int8", "axis 2: 8 != 16"],
        ),
    ],
    ids=["empty folder", "unknown input", "callable yields the wrong shape"],
)
def test_bad_calibration_is_a_config_error_before_any_task(
    tiny_project: Project, calibration: str, words: list[str]
) -> None:
    (tiny_project.root / "calib").mkdir()
    (tiny_project.root / "calib_data.py").write_text(CALIB_MODULE)
    set_calibration(tiny_project, calibration)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr
    for word in words:
        assert word in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr
    assert not tiny_project.out.exists()
