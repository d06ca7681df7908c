"""An ONNX Runtime failure is a message, and stale shape annotations do not reach it (issue 9, finding 4).

On d561ae9 `session.run` failing in validate printed ORT's red C++ log line, then a failure whose
reason was ORT's raw string ("Fail: [ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned
while running Reshape node. Name:'/Reshape' Status Message: /onnxruntime_src/...") and, as its
details, the last lines of a Python traceback. And the graph given to the builder and to ORT kept
the `value_info` that ModelOpt AutoCast rewrote: one dim name, `unk`, for sizes 8 and 6 — the kind
of annotation that makes ORT fail with "Shape mismatch attempting to re-use buffer".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.conftest import Project
from tests.e2e.run_summary import summary_failure

pytestmark = pytest.mark.slow

MODELS = '''
import torch


class BakedSeq(torch.nn.Module):
    """Bakes the traced sequence length (3) into a Reshape: the graph takes no other."""

    def forward(self, x):
        return (x * 2.0).reshape(x.shape[0], int(x.shape[1]) * 4)


class Widths(torch.nn.Module):
    """Layers of different widths: AutoCast names their outputs' last dims all `unk`."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 6)
        self.c = torch.nn.Linear(6, 8)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))
'''

CONFIG = """\
model: {{name: {name}, source: "models:{source}"}}
inputs:
  x: {{shape: [batch, seq, 4], dtype: float32}}
outputs: [y]
export: {{opset: 17, exporter: torchscript}}
profiles:
  default: {{x: {{min: [1, 2, 4], opt: [2, 3, 4], max: [4, 8, 4]}}}}
precision: [{precision}]
build: {{targets: [SM89]}}
validate: {{samples: 4}}  # opt, batch alone at min and max, seq alone at its min
# The probe would stop this graph before the build (tests/e2e/test_shape_probe.py); off, so
# validation meets ORT's failure and must report it as a message.
probe: false
"""


def configure(project: Project, name: str, source: str, precision: str) -> None:
    (project.root / "models.py").write_text(MODELS)
    project.write_config(CONFIG.format(name=name, source=source, precision=precision))


def test_onnxruntime_failure_names_task_node_shapes_and_next_step(tiny_project: Project) -> None:
    configure(tiny_project, "baked", "BakedSeq", "fp32")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr + completed.stdout
    output = completed.stdout + completed.stderr
    assert 'File "' not in output, output  # no traceback, not even its last lines
    assert "[E:onnxruntime" not in completed.stderr  # ORT's own log line is not printed beside it
    failure = summary_failure(completed.stdout, "baked/fp32/validate")
    # The sample's shapes (seq alone at its min), the node and its op, ORT's reason without its sources.
    assert "on sample 4 of 4 (x: [2, 2, 4])" in failure[0], failure
    assert "at node '/Reshape' (Reshape): The input tensor cannot be reshaped" in failure[0], failure
    assert "onnxruntime_src" not in failure[0]
    assert any(line.startswith("hint: a size in the model was traced as a constant") for line in failure)


def test_graph_given_to_the_builder_has_no_stale_shape_annotations(tiny_project: Project) -> None:
    import onnx

    configure(tiny_project, "widths", "Widths", "fp16")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    graph = onnx.load(str(tiny_project.out / "widths" / "fp16" / "model.onnx"))
    # Every annotation left must hold for real shapes: at the profile's min and max, each dim value
    # as annotated, and each dim name one size throughout the graph.
    for shape in ([1, 2, 4], [4, 8, 4]):
        conflicts = list(annotation_conflicts(graph, {"x": np.ones(shape, np.float32)}))
        assert conflicts == [], f"at x {shape}: {conflicts[:5]}"
    names = {dim.dim_param for value in graph.graph.value_info for dim in value.type.tensor_type.shape.dim}
    assert not {name for name in names if name.startswith("unk")}


def annotation_conflicts(model: Any, feeds: dict[str, Any]) -> Iterator[str]:
    """Annotated shapes (value_info and graph outputs) that the graph's real tensors contradict."""
    from trtbuild.tasks.onnx_tensors import Runner

    actual = dict(Runner(model, "cell", "fp16").run(feeds))
    bound: dict[str, tuple[int, str]] = {}  # dim name -> (size, the tensor that fixed it)
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        array = feeds.get(value.name, actual.get(value.name))
        if array is None:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            size = array.shape[axis]
            if dim.HasField("dim_value") and dim.dim_value != size:
                yield f"{value.name} axis {axis}: annotated {dim.dim_value}, is {size}"
            elif dim.dim_param:
                first = bound.setdefault(dim.dim_param, (size, value.name))
                if first[0] != size:
                    yield f"'{dim.dim_param}' is {first[0]} in {first[1]} but {size} in {value.name}"
