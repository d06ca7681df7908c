"""Validation gates end to end: top-1/top-5 on classifier outputs, custom metrics, user data, and a
failing gate in one cell that leaves the other cells finished."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

METRIC_MODULE = """
import numpy as np


def peak_error(reference, candidate):
    return {"peak": float(np.abs(reference - candidate).max()), "always_one": 1.0}
"""


def test_classifier_topk_and_custom_metric_gates(tiny_project: Project) -> None:
    (tiny_project.root / "mymetrics.py").write_text(METRIC_MODULE)
    tiny_project.edit_config("logits: {shape: [batch, 10]}", "logits: {shape: [batch, 10], classifier: true}")
    tiny_project.edit_config(
        "  samples: 3\n",
        "  samples: 3\n  metric: mymetrics:peak_error\n",
    )
    tiny_project.edit_config(
        "fp32: {atol: 1.0e-4, rtol: 1.0e-3}",
        "fp32: {atol: 1.0e-4, rtol: 1.0e-3, top1: 1.0, top5: 1.0, custom: {always_one: {min: 0.5}}}",
    )
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    logits = json.loads((tiny_project.out / "tiny/fp32/validation.json").read_text())["candidates"][
        "onnxruntime"
    ]["outputs"]["logits"]
    assert logits["top1"] == 1.0 and logits["top5"] == 1.0
    assert logits["always_one"] == 1.0
    assert 0 <= logits["peak"] < 1e-4
    # A custom gate that cannot hold fails the run with exit 1, naming the metric.
    tiny_project.edit_config("custom: {always_one: {min: 0.5}}", "custom: {always_one: {max: 0.5}}")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1
    assert "always_one" in completed.stdout and "<= 0.5" in completed.stdout


def test_validation_on_user_data(tiny_project: Project) -> None:
    rng = np.random.default_rng(1)
    np.savez(tiny_project.root / "val.npz", input=rng.random((6, 3, 16, 16), dtype=np.float32))
    tiny_project.edit_config("  samples: 3\n", "  samples: 3\n  data: {path: val.npz, batch: 2}\n")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    validation = json.loads((tiny_project.out / "tiny/fp32/validation.json").read_text())
    assert validation["inputs"] == "validate.data"
    assert validation["shapes"] == [{"input": [2, 3, 16, 16]}] * 3


def test_failing_gate_in_one_cell_lets_the_others_finish(tiny_project: Project) -> None:
    tiny_project.edit_config("build:\n", "precision: [fp32, fp16]\nbuild:\n")
    tiny_project.edit_config(
        "fp32: {atol: 1.0e-4, rtol: 1.0e-3}", "fp32: {atol: 0.0, rtol: 0.0}\n    fp16: {cosine: 0.9}"
    )
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1
    table = completed.stdout[completed.stdout.index("Validation gates failed") :]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert any(row[:1] == ["fp32"] and "max_abs" in row for row in rows), table
    assert not any(row[:1] == ["fp16"] for row in rows), table  # the fp16 cell passed its gates
    for cell in ("fp32", "fp16"):
        assert (tiny_project.out / "tiny" / cell / "model.engine").is_file()
    assert json.loads((tiny_project.out / "tiny/fp16/validation.json").read_text())["verdict"] == "passed"
    assert json.loads((tiny_project.out / "tiny/fp32/validation.json").read_text())["verdict"] == "failed"
    report = json.loads((tiny_project.out / "tiny/report.json").read_text())
    assert {cell["cell"]: cell["verdict"] for cell in report["cells"]} == {"fp32": "failed", "fp16": "passed"}
    assert "| fp16 | fp16 | passed" in (tiny_project.out / "tiny/report.md").read_text()


def test_custom_gate_without_metric_is_a_config_error(tiny_project: Project) -> None:
    tiny_project.edit_config("fp32: {atol: 1.0e-4, rtol: 1.0e-3}", "fp32: {custom: {psnr: {min: 30}}}")
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2
    assert "validate.metric" in completed.stderr and "psnr" in completed.stderr


def test_fp16_intermediate_overflow_fails_the_gate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ONNX Runtime's CPU provider computes these fp16 ops in fp32, so the outputs match PyTorch; the
    overflow scan still sees the tensor a GPU engine would overflow."""
    from tests.debug.test_precision_triage import OVERFLOW_CONFIG, OVERFLOW_MODEL

    root = tmp_path / "project"
    root.mkdir()
    (root / "overflownet.py").write_text(OVERFLOW_MODEL)
    config = root / "overflow.yaml"
    config.write_text(OVERFLOW_CONFIG)
    project = Project(root=root, config=config, cache=tmp_path / "cache", out=root / "build")
    document = project.run_json()
    assert document["exit_status"] == 1
    failures = [f for f in document["gate_failures"] if f["cell"] == "fp16"]
    assert failures and failures[0]["metric"] == "fp16 overflow"
    validation = json.loads((project.out / "overflow/fp16/validation.json").read_text())
    scan = validation["overflow_scan"]
    assert scan["status"] == "checked" and scan["count"] >= 1
    # The scan's run carries the overflow to the outputs: ONNX Runtime's own run is the one compared.
    assert scan["compared"] == "own run"
    # The overflow is the ONNX Runtime candidate's failure: the report's column must not say "passed"
    # beside it (a reviewer saw "passed · cos 0.999994" next to the failed gate).
    assert validation["candidates"]["onnxruntime"]["passed"] is False
    report = (project.out / "overflow" / "report.md").read_text()
    fp16_row = next(line for line in report.splitlines() if line.startswith("| fp16"))
    assert "passed ·" not in fp16_row, fp16_row
    assert json.loads((project.out / "overflow/fp32/validation.json").read_text())["verdict"] == "passed"


def test_validation_on_calibration_samples_held_out(tiny_project: Project) -> None:
    rng = np.random.default_rng(2)
    np.savez(tiny_project.root / "calib.npz", input=rng.random((12, 3, 16, 16), dtype=np.float32))
    tiny_project.edit_config(
        "build:\n", "precision: [fp32, int8]\ncalibration: {source: npz, path: calib.npz}\nbuild:\n"
    )
    tiny_project.edit_config("  samples: 3\n", "  samples: 3\n  data: {holdout: 4, batch: 2}\n")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    for cell in ("fp32", "int8"):
        validation = json.loads((tiny_project.out / "tiny" / cell / "validation.json").read_text())
        assert validation["inputs"] == "last 4 calibration samples"
        assert validation["shapes"] == [{"input": [2, 3, 16, 16]}] * 2  # 4 held-out rows, batches of 2
    # The held-out samples are not calibrated on: holding out more changes the int8 graph's key.
    tiny_project.edit_config("holdout: 4", "holdout: 6")
    ran = {task["id"] for task in tiny_project.run_json()["tasks"] if task["state"] == "ran"}
    assert "tiny/int8/precision" in ran and "tiny/fp32/precision" not in ran


def test_holdout_without_real_calibration_data_is_a_config_error(tiny_project: Project) -> None:
    tiny_project.edit_config("  samples: 3\n", "  samples: 3\n  data: {holdout: 4}\n")
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2
    assert "validate.data.holdout" in completed.stderr and "calibration" in completed.stderr
