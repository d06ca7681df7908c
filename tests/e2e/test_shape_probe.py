"""Dims baked inside the graph are caught before any build (issue 9, finding 2).

On 7722d02 (and d561ae9) a model that reshapes with the traced sequence length as a Python int
exported with symbolic input and output dims, so the lint passed; the engine was built, and the
failure came at validation as an ONNX Runtime traceback (the report in the issue: a transformer's
build failed with "the builder returned no engine"). Here a shared `probe` task runs the fp32 graph
at each profile's opt shapes and with each dynamic dim moved on its own to its min and its max, and
stops the model's cells before any build, naming the dim, the input, the shapes and the
node. Validation samples move each dim on its own too.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project, states
from trtbuild import api

pytestmark = pytest.mark.slow

MODELS = '''
import torch


class BakedSeq(torch.nn.Module):
    """Splits heads with the traced sequence length as a Python int: the torchscript exporter
    writes it into a Reshape as a constant while the output's seq dim stays symbolic."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        batch, seq = x.shape[0], int(x.shape[1])
        heads = self.proj(x).reshape(batch, seq, 2, 4).transpose(1, 2)
        scores = torch.softmax(heads @ heads.transpose(-1, -2), dim=-1)
        return (scores @ heads).transpose(1, 2).reshape(batch, x.shape[1], 8)


class Scaled(torch.nn.Module):
    def forward(self, x):
        return x * 2.0
'''

CONFIG = """\
model: {{name: seq, source: "models:{source}"}}
inputs:
  x: {{shape: [batch, seq, 8], dtype: float32}}
outputs:
  y: {{shape: [batch, seq, 8]}}
export: {{opset: 17, exporter: torchscript}}
profiles:
  default:
    x: {{min: [1, 1, 8], opt: [2, 16, 8], max: [4, 32, 8]}}
precision: [fp32, fp16]
build: {{targets: [SM89]}}
validate: {{samples: 5}}
"""


def configure(project: Project, source: str) -> None:
    (project.root / "models.py").write_text(MODELS)
    project.write_config(CONFIG.format(source=source))


def test_a_dim_baked_inside_the_graph_stops_the_model_before_any_build(tiny_project: Project) -> None:
    configure(tiny_project, "BakedSeq")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr
    output = completed.stdout + completed.stderr
    # The dim alone, the input and axis it belongs to, the shapes, and the node ORT stopped at.
    assert "dim 'seq' (input 'x' axis 1) at its min 1, others at opt [x [2, 1, 8]]" in output
    assert "node '/Reshape' (Reshape) failed: The input tensor cannot be reshaped" in output
    assert "Traceback" not in output
    # Moving batch alone is fine, so the probe does not blame it.
    assert "dim 'batch'" not in output
    document = tiny_project.run_json()
    found = states(document)
    assert found["seq/probe"] == "failed"  # one probe for both cells
    assert [task for task in found if task.endswith("/probe")] == ["seq/probe"]
    for cell in ("fp32", "fp16"):
        assert found[f"seq/{cell}/build"] == "skipped"
        assert not (tiny_project.out / "seq" / cell / "model.engine").exists()


def test_the_probe_moves_each_dim_alone_is_shared_and_cached(tiny_project: Project) -> None:
    configure(tiny_project, "Scaled")
    first = tiny_project.run_json()
    assert states(first)["seq/probe"] == "ran", first
    probe = read_output(tiny_project, "seq/probe", "probe.json")
    assert probe["status"] == "passed"
    moves = [(point["dim"], point["bound"], point["shapes"]["x"]) for point in probe["points"]]
    assert moves == [
        (None, "opt", [2, 16, 8]),
        ("batch", "min", [1, 16, 8]),
        ("batch", "max", [4, 16, 8]),
        ("seq", "min", [2, 1, 8]),
        ("seq", "max", [2, 32, 8]),
    ]
    assert all(point["outputs"]["y"] == point["shapes"]["x"] for point in probe["points"])
    # Validation's samples move each dim on its own too (5 samples: opt, then each dim's min, max).
    validation = json.loads((tiny_project.out / "seq" / "fp32" / "validation.json").read_text())
    assert [shapes["x"] for shapes in validation["shapes"]] == [m[2] for m in moves]
    # Cached while the graph and profiles stay; a profile edit reruns it.
    assert states(tiny_project.run_json())["seq/probe"] == "cached"
    tiny_project.edit_config("max: [4, 32, 8]", "max: [4, 24, 8]")
    statuses = api.plan([tiny_project.config], cache_dir=tiny_project.cache).statuses
    assert statuses["seq/probe"].state != "cached"


def test_probe_false_builds_without_it(tiny_project: Project) -> None:
    configure(tiny_project, "BakedSeq")
    tiny_project.edit_config("precision: [fp32, fp16]", "precision: fp32\nprobe: false")
    document = tiny_project.run_json()
    found = states(document)
    assert "seq/probe" not in found
    # What the probe prevents: the graph's failure surfaces only after the build, at validation.
    assert found["seq/fp32/build"] == "ran"
    assert found["seq/fp32/validate"] == "failed"


def read_output(project: Project, task: str, output: str) -> dict:
    plan = api.plan([project.config], cache_dir=project.cache)
    key = plan.statuses[task].key
    assert key is not None
    result = plan.store.get_action(key)
    assert result is not None, f"{task} is not in the cache"
    data = plan.store.read_blob(result.outputs[output].hash)
    return json.loads(data)  # type: ignore[no-any-return]


def test_too_few_samples_to_move_every_dim_is_said(tiny_project: Project) -> None:
    """A reviewer's case: with `probe: false` and 3 samples, seq was never moved and the cell said
    "passed" with no word about it."""
    configure(tiny_project, "Scaled")
    tiny_project.edit_config("precision: [fp32, fp16]", "precision: fp32\nprobe: false")
    tiny_project.edit_config("samples: 5", "samples: 3")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr
    assert (
        "validate.samples: 3 leaves out 2 of the shape sets that move each dynamic dim on its own: "
        "profile 'default' seq at its min 1, profile 'default' seq at its max 32; "
        "set validate.samples: 5 to compare them all"
    ) in completed.stdout + completed.stderr
