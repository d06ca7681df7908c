"""The PyTorch reference is one task per model, shared by every cell's validation: a precision
change reruns neither it nor the export, and a change of the samples reruns it and the validations
but no build."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project, ran_kinds, states
from trtbuild import api

pytestmark = pytest.mark.slow


def test_one_reference_serves_every_precision_and_reruns_only_with_the_samples(tiny_project: Project) -> None:
    tiny_project.edit_config("build:\n", "precision: [fp32, fp16]\nbuild:\n")
    tiny_project.edit_config(
        "    fp32: {atol: 1.0e-4, rtol: 1.0e-3}\n", "    fp32: {atol: 1.0e-4}\n    fp16: {cosine: 0.99}\n"
    )
    graph = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    references = [node for node in graph.nodes.values() if node.kind == "reference"]
    assert [node.id for node in references] == ["tiny/reference"]
    for cell in ("fp32", "fp16"):
        assert graph.nodes[f"tiny/{cell}/validate"].deps["reference.npz"].node_id == "tiny/reference"
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    assert ran_kinds(document)["reference"] == 1 and ran_kinds(document)["validate"] == 2
    # Both cells compared against the same samples.
    shapes = {
        cell: json.loads((tiny_project.out / "tiny" / cell / "validation.json").read_text())["shapes"]
        for cell in ("fp32", "fp16")
    }
    assert shapes["fp32"] == shapes["fp16"] and len(shapes["fp32"]) == 3
    # No overflow: one ONNX Runtime run served the fp16 comparison and its overflow scan.
    fp16 = json.loads((tiny_project.out / "tiny" / "fp16" / "validation.json").read_text())
    assert fp16["overflow_scan"]["status"] == "checked" and fp16["overflow_scan"]["compared"] == "this run"

    # A precision change (another precision in the matrix): export and reference stay cached.
    tiny_project.edit_config("precision: [fp32, fp16]", "precision: [fp32, fp16, bf16]")
    statuses = api.plan([tiny_project.config], cache_dir=tiny_project.cache).statuses
    assert statuses["tiny/export"].state == "cached" and statuses["tiny/reference"].state == "cached"
    assert statuses["tiny/bf16/validate"].state != "cached"
    tiny_project.edit_config("precision: [fp32, fp16, bf16]", "precision: [fp32, fp16]")

    # More samples: the reference and both validations rerun, no precision or build does.
    tiny_project.edit_config("  samples: 3\n", "  samples: 4\n")
    after = states(tiny_project.run_json())
    assert after["tiny/reference"] == "ran"
    assert {after[f"tiny/{cell}/validate"] for cell in ("fp32", "fp16")} == {"ran"}
    rest = {task: state for task, state in after.items() if not task.endswith(("/reference", "/validate"))}
    assert set(rest.values()) == {"cached"}, rest
