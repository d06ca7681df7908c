"""A multi-input model's fp16 and int8 graphs are a function of their inputs (issue 9, review).

Before the fix, two identical `trtbuild run --no-cache --only fp16` runs of a two-input model gave
two different fp16 graphs (`ec27e808…`, then `191435a6…`), and int8 alternated the same way:
ModelOpt inserts the inputs' casts in the order of a Python set, which follows the interpreter's
hash seed. `trtbuild verify` then called the precision graph, the engine and engine.json changed.
Here two runs under different PYTHONHASHSEED values give the same bytes.
"""

from __future__ import annotations

import hashlib

import onnx
import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODEL = '''
import torch


class TwoInputs(torch.nn.Module):
    """Two float inputs, each cast to fp16 by AutoCast and by the Q/DQ path (which also quantizes
    both convolutions: 8 output channels, as ModelOpt leaves narrower ones in float)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.depth = torch.nn.Conv2d(1, 8, 3, padding=1)

    def forward(self, image, depth):
        return torch.relu(self.image(image) + self.depth(depth)).mean(dim=(2, 3))
'''

CONFIG = """\
model: {name: two, source: "two:TwoInputs"}
inputs:
  image: {shape: [batch, 3, 8, 8], dtype: float32}
  depth: {shape: [batch, 1, 8, 8], dtype: float32}
outputs:
  y: {shape: [batch, 8]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    image: {min: [1, 3, 8, 8], opt: [1, 3, 8, 8], max: [2, 3, 8, 8]}
    depth: {min: [1, 1, 8, 8], opt: [1, 1, 8, 8], max: [2, 1, 8, 8]}
precision: [fp32, fp16, int8]
calibration: {source: random, samples: 4}
build: {targets: [SM89]}
validate: {samples: 2, tolerance: {int8: {cosine: 0.9}}}
"""


def precision_graphs(project: Project) -> dict[str, str]:
    """Run the fp16 and int8 cells afresh; the sha256 of each cell's precision graph."""
    document = project.run_json("--no-cache", "--only", "fp16", "int8")
    assert document["exit_status"] == 0, document
    return {
        cell: hashlib.sha256((project.out / "two" / cell / "model.onnx").read_bytes()).hexdigest()
        for cell in ("fp16", "int8")
    }


def test_precision_graphs_do_not_follow_the_hash_seed(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tiny_project.root / "two.py").write_text(MODEL)
    tiny_project.write_config(CONFIG)
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    first = precision_graphs(tiny_project)
    monkeypatch.setenv("PYTHONHASHSEED", "2")
    second = precision_graphs(tiny_project)
    assert second == first
    # The case the review found: both inputs cast, and the int8 graph really quantized.
    graphs = {c: onnx.load(str(tiny_project.out / "two" / c / "model.onnx")).graph for c in ("fp16", "int8")}
    for graph in graphs.values():
        names = {node.name for node in graph.node}
        assert {"image_cast_to_fp16", "depth_cast_to_fp16"} <= names, names
    assert "QuantizeLinear" in {node.op_type for node in graphs["int8"].node}
