"""The precision matrix end to end: ModelOpt AutoCast and Q/DQ on a tiny real model, TensorRT-RTX builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Project, ran_kinds, states

pytestmark = pytest.mark.slow

CALIBRATION = "calibration: {source: random, samples: 8}\n"


def set_precisions(project: Project, precisions: str, calibration: str = CALIBRATION) -> None:
    text = project.config.read_text()
    head, _, tail = text.partition("build:\n")
    kept = [line for line in head.splitlines() if not line.startswith(("precision:", "calibration:"))]
    head = "".join(line + "\n" for line in kept)
    project.config.write_text(f"{head}precision: {precisions}\n{calibration}build:\n{tail}")


def test_cells_share_export_and_simplify(tiny_project: Project) -> None:
    set_precisions(tiny_project, "[fp32, fp16, int8]")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    assert ran_kinds(document) == {
        "export": 1,
        "simplify": 1,
        "probe": 1,
        "reference": 1,
        "precision": 3,
        "build": 3,
        "validate": 3,
    }
    import onnx

    int8_ops = {node.op_type for node in onnx.load(str(tiny_project.out / "tiny/int8/model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= int8_ops
    fp16_graph = onnx.load(str(tiny_project.out / "tiny/fp16/model.onnx")).graph
    fp16_weights = [t for t in fp16_graph.initializer if len(t.dims) > 1]
    assert fp16_weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16_weights)
    # Random calibration is allowed, and marked as not fit for production.
    int8_precision = next(t for t in document["tasks"] if t["id"] == "tiny/int8/precision")
    assert int8_precision["meta"]["production_ready"] is False
    assert any("not fit for production" in w for w in int8_precision["warnings"])
    # fp32 passes the graph through unchanged.
    fp32_precision = next(t for t in document["tasks"] if t["id"] == "tiny/fp32/precision")
    assert fp32_precision["meta"]["method"] == "pass-through"
    for cell in ("fp32", "fp16", "int8"):
        validation = json.loads((tiny_project.out / "tiny" / cell / "validation.json").read_text())
        assert validation["verdict"] == "passed"
    # precision.json: TinyNet is all fp16; int8 counts what ModelOpt fed through Q/DQ, and keeps no
    # list of "kept" nodes (ModelOpt quantizes by op type); fp32 converted nothing and claims no share.
    records = {
        c: json.loads((tiny_project.out / "tiny" / c / "precision.json").read_text())
        for c in ("fp32", "fp16", "int8")
    }
    assert records["fp16"]["share"] == {"nodes": 1.0, "weights": 1.0} and records["fp16"]["kept"] == []
    assert 0 < records["int8"]["share"]["nodes"] <= 1 and records["int8"]["nodes"].get("int8", 0) >= 1
    assert "kept" not in records["int8"] and records["int8"]["low_precision_dtype"] == "int8"
    assert "share" not in records["fp32"]


def test_adding_a_precision_runs_only_its_cell_and_removing_one_runs_nothing(tiny_project: Project) -> None:
    set_precisions(tiny_project, "[fp32, fp16]")
    tiny_project.run_json()
    set_precisions(tiny_project, "[fp32, fp16, int8]")
    document = tiny_project.run_json()
    assert {task_id for task_id, state in states(document).items() if state == "ran"} == {
        "tiny/int8/precision",
        "tiny/int8/build",
        "tiny/int8/validate",
    }
    set_precisions(tiny_project, "[fp32, int8]")
    assert set(states(tiny_project.run_json()).values()) == {"cached"}


def test_bf16_and_fp8_cells_build(tiny_project: Project) -> None:
    set_precisions(tiny_project, "[bf16, fp8]")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    for cell in ("bf16", "fp8"):
        engine = json.loads((tiny_project.out / "tiny" / cell / "engine.json").read_text())
        assert engine["precision"] == cell
        assert engine["engine_bytes"] > 10_000
    # ONNX Runtime's CPU provider has no bf16 Conv: the comparison is skipped with the reason, and
    # the cell is reported unverified, never passed.
    bf16 = json.loads((tiny_project.out / "tiny/bf16/validation.json").read_text())
    if bf16["candidates"]["onnxruntime"].get("status") == "skipped":
        assert bf16["verdict"] == "unverified"
        assert "ONNX Runtime" in bf16["candidates"]["onnxruntime"]["reason"]


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_npz_calibration_content_is_in_the_key(tiny_project: Project) -> None:
    rng = np.random.default_rng(0)
    npz = write_npz(tiny_project.root / "calib.npz", input=rng.random((8, 3, 16, 16), dtype=np.float32))
    set_precisions(tiny_project, "[fp16, int8]", "calibration: {source: npz, path: calib.npz}\n")
    assert tiny_project.run_json()["exit_status"] == 0
    write_npz(npz, input=rng.random((8, 3, 16, 16), dtype=np.float32))
    reran = {task_id for task_id, state in states(tiny_project.run_json()).items() if state == "ran"}
    assert "tiny/int8/precision" in reran
    assert not any(task_id.startswith("tiny/fp16/") for task_id in reran)


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"inputs": np.zeros((8, 3, 16, 16), np.float32)}, ["no array for input 'input'", "unknown inputs"]),
        ({"input": np.zeros((8, 3, 8, 8), np.float32)}, ["axis 2: 8 != 16"]),
        ({"input": np.zeros((8, 3, 16, 16), np.float64)}, ["float64", "float32"]),
    ],
    ids=["unknown input name", "wrong shape", "wrong dtype"],
)
def test_bad_calibration_npz_is_a_config_error_before_any_task(
    tiny_project: Project, arrays: dict[str, np.ndarray], words: list[str]
) -> None:
    write_npz(tiny_project.root / "calib.npz", **arrays)
    set_precisions(tiny_project, "[fp32, int8]", "calibration: {source: npz, path: calib.npz}\n")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr
    assert "calibration.path" in completed.stderr and "int8" in completed.stderr
    for word in words:
        assert word in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr
    assert not tiny_project.out.exists()


def test_missing_calibration_file_is_a_config_error(tiny_project: Project) -> None:
    set_precisions(tiny_project, "[int8]", "calibration: {source: npz, path: nowhere.npz}\n")
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2
    assert "calibration.path" in completed.stderr and "nowhere.npz" in completed.stderr


def test_quantized_cell_without_calibration_is_a_config_error(tiny_project: Project) -> None:
    set_precisions(tiny_project, "[fp32, int8]", "")
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2
    assert "int8" in completed.stderr and "calibration" in completed.stderr


WIDE_CONFIG = """\
model: {name: wide, source: "tinynet:WideNet"}
inputs:
  x: {shape: [batch, 1024]}
outputs: [y]
profiles:
  default: {x: {min: [1, 1024], opt: [4, 1024], max: [8, 1024]}}
precision: [fp32, fp16]
build: {targets: [SM89]}
"""


def test_fp16_engine_is_at_most_0_6x_the_fp32_engine(tiny_project: Project) -> None:
    tiny_project.write_config(WIDE_CONFIG)
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    sizes = {
        cell: (tiny_project.out / "wide" / cell / "model.engine").stat().st_size for cell in ("fp32", "fp16")
    }
    assert sizes["fp32"] > 8_000_000
    assert sizes["fp16"] <= 0.6 * sizes["fp32"], sizes
