"""End to end: the real CLI on a tiny real model (torch export, onnxsim, TensorRT-RTX, ONNX Runtime)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project, run_in_fresh_interpreter, states
from trtbuild.store import digest_file

pytestmark = pytest.mark.slow

HEAVY_MODULES = (
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "tensorrt",
    "tensorrt_rtx",
    "numpy",
)


def test_run_builds_engine_and_prints_where(tiny_project: Project) -> None:
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr
    cell = tiny_project.out / "tiny" / "fp32"
    engine = cell / "model.engine"
    assert engine.stat().st_size > 10_000
    assert str(engine) in completed.stdout
    assert str(cell / "engine.json") in completed.stdout
    description = json.loads((cell / "engine.json").read_text())
    assert description["backend"] == "tensorrt-rtx"
    assert description["targets"] == ["SM89"]
    # Its hashes are the lock's and the cache's kind: BLAKE3, named (build version 11).
    assert description["engine_hash"] == digest_file(engine) and description["onnx_hash"].startswith(
        "blake3:"
    )
    assert description["inputs"] == [{"name": "input", "dtype": "float32", "shape": [-1, 3, 16, 16]}]
    assert description["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 10]}]
    validation = json.loads((cell / "validation.json").read_text())
    assert validation["passed"] is True
    assert validation["candidates"]["onnxruntime"]["outputs"]["logits"]["max_abs"] < 1e-4
    # No GPU here: the engine comparison must say it was skipped and why, never that it passed.
    engine_check = validation["candidates"]["engine"]
    if engine_check.get("status") == "skipped":
        assert engine_check["reason"]
    # The ONNX graph handed to the builder keeps the dynamic batch dim.
    import onnx

    graph = onnx.load(str(cell / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_second_run_runs_nothing_and_imports_no_heavy_library(tiny_project: Project) -> None:
    first = tiny_project.run_json()
    assert set(states(first).values()) == {"ran"}
    # Run the CLI in-process in a fresh interpreter, then list which heavy modules got imported.
    report, completed = run_in_fresh_interpreter(tiny_project, HEAVY_MODULES)
    assert report == {"status": 0, "loaded": []}
    assert "Nothing to do: all 7 tasks are cached." in completed.stdout


def test_changing_opset_reruns_export_and_everything_after(tiny_project: Project) -> None:
    assert set(states(tiny_project.run_json()).values()) == {"ran"}
    tiny_project.edit_config("opset: 17", "opset: 18")
    assert states(tiny_project.run_json()) == {
        "tiny/export": "ran",
        "tiny/simplify": "ran",
        "tiny/probe": "ran",
        "tiny/reference": "cached",  # the opset changes the graph, not the PyTorch outputs
        "tiny/fp32/precision": "ran",
        "tiny/fp32/build": "ran",
        "tiny/fp32/validate": "ran",
    }


def test_changing_only_a_tolerance_reruns_only_validate(tiny_project: Project) -> None:
    assert set(states(tiny_project.run_json()).values()) == {"ran"}
    tiny_project.edit_config("atol: 1.0e-4", "atol: 2.0e-4")
    document = tiny_project.run_json()
    assert states(document) == {
        "tiny/export": "cached",
        "tiny/simplify": "cached",
        "tiny/probe": "cached",
        "tiny/reference": "cached",
        "tiny/fp32/precision": "cached",
        "tiny/fp32/build": "cached",
        "tiny/fp32/validate": "ran",
    }
    assert document["exit_status"] == 0


def test_json_document_fields(tiny_project: Project) -> None:
    document = tiny_project.run_json()
    task = document["tasks"][0]
    assert {"id", "kind", "cell", "state", "reason", "seconds"} <= set(task)
    assert document["cells"][0]["dir"].endswith("tiny/fp32")


def test_impossible_tolerance_fails_the_gate_with_exit_1(tiny_project: Project) -> None:
    tiny_project.edit_config("fp32: {atol: 1.0e-4, rtol: 1.0e-3}", "fp32: {atol: 0.0, rtol: 0.0}")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr
    assert "Validation gates failed" in completed.stdout
    assert "max_abs" in completed.stdout
    # Everything before the gate was built and kept.
    assert (tiny_project.out / "tiny" / "fp32" / "model.engine").exists()


def test_dynamo_exporter(tiny_project: Project) -> None:
    tiny_project.edit_config("exporter: torchscript", "exporter: dynamo")
    tiny_project.edit_config("opset: 17", "opset: 18")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    assert set(states(document).values()) == {"ran"}


def test_editing_the_model_code_reruns_export(warm_project: Project) -> None:
    warm_project.run_json()
    module = warm_project.root / "tinynet.py"
    module.write_text(module.read_text().replace("padding=1", "padding=1, bias=False"))
    assert states(warm_project.run_json())["tiny/export"] == "ran"


def test_unimportable_attribute_is_a_config_error_before_any_task(tiny_project: Project) -> None:
    tiny_project.edit_config("source: tinynet:TinyNet", "source: tinynet:NoSuchNet")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2
    assert f"{tiny_project.config}:3:" in completed.stderr
    assert "NoSuchNet" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not tiny_project.out.exists()


OUTPUT_MODELS = """
import torch


class DictOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        return {"a": y, "b": y * 2}


class Nested(torch.nn.Module):
    def forward(self, x):
        return x + 1, (x * 2, x * 3)
"""

OUTPUT_CONFIG = """\
model: {{name: {name}, source: "outmodels:{cls}"}}
inputs: {{x: {{shape: [batch, 4]}}}}
outputs: {outputs}
profiles: {{p: {{x: {{min: [1, 4], opt: [2, 4], max: [4, 4]}}}}}}
build: {{targets: [SM89]}}
"""


@pytest.mark.parametrize(
    ("cls", "outputs", "status", "words"),
    [
        ("DictOut", "[b, a]", 0, []),  # a dict is exported in the declared order, by name
        ("Nested", "[p, q, r]", 0, []),  # nested tuples are flattened as the exporter does
        ("Nested", "[p, q]", 1, ["returns 3 output tensor(s) but the config names 2"]),
        ("DictOut", "[a, c]", 1, ["outputs ['c'] are not among them"]),
    ],
)
def test_declared_outputs_are_checked_at_export(
    tiny_project: Project, cls: str, outputs: str, status: int, words: list[str]
) -> None:
    (tiny_project.root / "outmodels.py").write_text(OUTPUT_MODELS)
    tiny_project.write_config(OUTPUT_CONFIG.format(name="out", cls=cls, outputs=outputs))
    document = tiny_project.run_json()
    assert document["exit_status"] == status, document
    export = next(task for task in document["tasks"] if task["id"] == "out/export")
    for word in words:
        assert export["state"] == "failed" and word in export["reason"], export
    if status == 0:
        import onnx

        graph = onnx.load(str(tiny_project.out / "out/fp32/model.onnx")).graph
        assert [o.name for o in graph.output] == outputs.strip("[]").split(", ")
