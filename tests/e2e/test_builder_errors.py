"""The builder's own errors reach the user (issue 9, finding 3).

On d561ae9 a build the builder refused said only "the builder returned no engine" with "rerun with
TRTBUILD_LOG=debug for the builder's log"; that log held 2,191 lines of matplotlib font lookups and
no builder output, because the worker process's TensorRT log went nowhere. A graph the parser
refused was summarised as "the ONNX parser rejected the graph (1 error(s))", the node only in the
progress lines above. Here TensorRT's error is in the failure and the summary, the parser's node and
op in the summary, and TRTBUILD_LOG=debug shows TensorRT's log and no other library's debug records.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Project
from tests.e2e.run_summary import summary_failure

pytestmark = pytest.mark.slow

MODELS = '''
import torch


class BakedSeq(torch.nn.Module):
    """Bakes the traced sequence length (3, the first profile's opt) into a Reshape."""

    def forward(self, x):
        return (x * 2.0).reshape(x.shape[0], int(x.shape[1]), 2, 2)


class _Custom(torch.autograd.Function):
    """Exported as one node of a domain of its own, which no TensorRT parser knows."""

    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def symbolic(g, x):
        return g.op("example.custom::Squares", x)


class CustomOp(torch.nn.Module):
    def forward(self, x):
        return _Custom.apply(x) + 1.0
'''

# The second profile's opt has a sequence length of 8: the Reshape to (-1, 3, 2, 2) cannot take it.
BAKED_CONFIG = """\
model: {name: baked, source: "models:BakedSeq"}
inputs:
  x: {shape: [batch, seq, 4], dtype: float32}
outputs: [y]
export: {opset: 17, exporter: torchscript}
profiles:
  short: {x: {min: [1, 2, 4], opt: [2, 3, 4], max: [4, 4, 4]}}
  long: {x: {min: [1, 5, 4], opt: [2, 8, 4], max: [4, 8, 4]}}
build: {targets: [SM89]}
validate: {samples: 2}
# The probe would stop this graph before the build (tests/e2e/test_shape_probe.py); off, so the
# builder meets it and its own error is what the summary must show.
probe: false
"""

CUSTOM_CONFIG = """\
model: {name: custom, source: "models:CustomOp"}
inputs:
  x: {shape: [batch, 16], dtype: float32}
outputs: [y]
export: {opset: 17, exporter: torchscript}
profiles:
  default: {x: {min: [1, 16], opt: [2, 16], max: [4, 16]}}
build: {targets: [SM89]}
validate: {samples: 2}
"""


def configure(project: Project, config: str) -> None:
    (project.root / "models.py").write_text(MODELS)
    project.write_config(config)


def test_builder_failure_quotes_tensorrt_in_the_summary(tiny_project: Project) -> None:
    configure(tiny_project, BAKED_CONFIG)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr + completed.stdout
    failure = summary_failure(completed.stdout, "baked/fp32/build")
    # The builder's own error, in the summary's line itself.
    assert "the builder returned no engine: " in failure[0], failure
    assert "kOPT values for profile 1 violate shape constraints" in failure[0], failure
    assert "IShuffleLayer /Reshape" in failure[0], failure
    assert "shapeMachine.cpp" not in failure[0]  # TensorRT's source locations are dropped
    # What to try comes with it.
    assert any(
        line.startswith("hint: a profile's shapes contradict a size the graph fixes") for line in failure
    )


def test_debug_log_shows_the_builder_and_no_other_library(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tiny_project, BAKED_CONFIG)
    monkeypatch.setenv("TRTBUILD_LOG", "debug")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr[-3000:]
    records = re.findall(r"^(DEBUG|INFO|WARNING|ERROR) (\S+): (.*)$", completed.stderr, re.MULTILINE)
    builder = [text for _, name, text in records if name == "trtbuild.builder"]
    assert any("violate shape constraints" in text for text in builder), completed.stderr[-3000:]
    assert len(builder) > 10  # TensorRT's info and verbose messages, not only its errors
    others = {name for level, name, _ in records if level == "DEBUG" and not name.startswith("trtbuild")}
    assert others == set(), f"other libraries' debug records: {sorted(others)}"


def test_parser_rejection_names_the_node_and_op_in_the_summary(tiny_project: Project) -> None:
    configure(tiny_project, CUSTOM_CONFIG)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr + completed.stdout
    failure = summary_failure(completed.stdout, "custom/fp32/build")
    assert "the tensorrt_rtx ONNX parser rejected node '/Squares' (Squares)" in failure[0], failure
    assert any("hint: tensorrt_rtx has no importer for Squares" in line for line in failure), failure
    assert "Traceback" not in completed.stderr
