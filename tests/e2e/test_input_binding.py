"""Inputs reach `forward` by name, whatever order the config lists them in (issue 9, finding 1).

On 7722d02 a config listing `scale` before `x` for `forward(self, x, scale)` exported the `scale`
tensor into `x`; validation compared the same mistake on both sides and passed. Here the exported
graph's input named `x` is forward's `x`, names forward does not take are a config error before
anything runs, and a `forward(*args)` model is fed by position with a warning.

Review of finding 1: under the torchscript exporter, inputs passed by keyword failed for
`forward(self, *args, **kwargs)` ("Base.forward() missing 2 required positional arguments"),
`forward(self, **kw)` ("KeyError: 'a'") and keyword-only parameters ("takes 2 positional arguments
but 3 were given"); a misspelt name passed through **kwargs ended in "trtbuild does not handle this
failure yet".
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODELS = '''
import torch


class Ordered(torch.nn.Module):
    """Not symmetric in its inputs: feeding one into the other shows."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(4))

    def forward(self, x, scale):
        return x * self.weight * 2.0 - scale


class Gapped(torch.nn.Module):
    """BERT's shape of signature: the config leaves out a parameter between two it declares."""

    def forward(self, x, mask=None, scale=None):
        return x * 2.0 - scale


class ByPosition(torch.nn.Module):
    def forward(self, *tensors):
        return tensors[0] * 2.0 - tensors[1]


class Base(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        with torch.no_grad():  # the identity: the value below is image * 2 - depth
            self.fc.weight.copy_(torch.eye(4))
            self.fc.bias.zero_()

    def forward(self, image, depth):
        return self.fc(image) * 2.0 - depth


class Wrapped(Base):
    """The common wrapper pattern: a forward that passes everything through."""

    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs)


class AnyKeywords(torch.nn.Module):
    def forward(self, **kw):
        return kw["a"] * 2.0 - kw["b"]


class KwOnly(torch.nn.Module):
    def forward(self, x, *, scale):
        return x * 2.0 - scale


class KwOnlyDefault(torch.nn.Module):
    """A keyword-only option the config leaves at its default: the torchscript exporter appended
    the default as a third positional argument ("takes 3 positional arguments but 4 were given")."""

    def forward(self, x, scale, *, bias=0.0):
        return x * 2.0 - scale + bias
'''

CONFIG = """\
model: {{name: ordered, source: "models:{source}"}}
inputs:
  {first}: {{shape: [batch, {first_width}], dtype: float32}}
  {second}: {{shape: [batch, {second_width}], dtype: float32}}
outputs:
  y: {{shape: [batch, 4]}}
export: {{opset: 17, exporter: {exporter}}}
profiles:
  default:
    {first}: {{min: [1, {first_width}], opt: [2, {first_width}], max: [4, {first_width}]}}
    {second}: {{min: [1, {second_width}], opt: [2, {second_width}], max: [4, {second_width}]}}
build: {{targets: [SM89]}}
validate: {{samples: 2}}
"""


def configure(project: Project, source: str, first: str, second: str, exporter: str = "torchscript") -> None:
    (project.root / "models.py").write_text(MODELS)
    widths = {"x": 4, "scale": 1, "a": 4, "b": 1, "image": 4, "depth": 1, "depht": 1}
    project.write_config(
        CONFIG.format(
            source=source,
            first=first,
            second=second,
            first_width=widths.get(first, 4),
            second_width=widths.get(second, 1),
            exporter=exporter,
        )
    )


@pytest.mark.parametrize(
    ("source", "exporter"),
    [("Ordered", "torchscript"), ("Ordered", "dynamo"), ("Gapped", "torchscript"), ("Gapped", "dynamo")],
)
def test_inputs_listed_out_of_order_reach_forward_by_name(
    tiny_project: Project, source: str, exporter: str
) -> None:
    import onnxruntime

    configure(tiny_project, source, "scale", "x", exporter)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr + completed.stdout
    graph = tiny_project.out / "ordered" / "fp32" / "model.onnx"
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    x = np.full((2, 4), 3.0, np.float32)
    scale = np.full((2, 1), 1.0, np.float32)
    (y,) = session.run(["y"], {"x": x, "scale": scale})
    np.testing.assert_allclose(y, np.full((2, 4), 5.0), rtol=1e-6)  # 3 * 2 - 1, not 1 * 2 - 3


def test_a_name_forward_does_not_take_is_a_config_error_before_anything_runs(tiny_project: Project) -> None:
    configure(tiny_project, "Ordered", "x", "scal")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr
    assert "tiny.yaml:4:" in completed.stderr  # the line of the input `scal`
    assert "input 'scal' is not a parameter of models:Ordered.forward (it takes x, scale)" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tiny_project.out / "ordered").exists()


def test_a_forward_taking_args_is_fed_by_position_with_a_warning(tiny_project: Project) -> None:
    configure(tiny_project, "ByPosition", "a", "b")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr + completed.stdout
    text = textwrap.dedent(completed.stdout + completed.stderr)
    assert (
        "models:ByPosition.forward takes (*args): the inputs a, b are fed by position, in that order" in text
    )


@pytest.mark.parametrize(
    ("source", "first", "second"),
    [
        ("Wrapped", "depth", "image"),
        ("AnyKeywords", "b", "a"),
        ("KwOnly", "scale", "x"),
        ("KwOnlyDefault", "scale", "x"),
    ],
)
def test_inputs_passed_by_keyword_export_under_torchscript(
    tiny_project: Project, source: str, first: str, second: str
) -> None:
    """forward(*args, **kwargs), forward(**kw) and a keyword-only parameter: the torchscript exporter
    only maps keyword inputs onto named positional parameters, so these failed at export."""
    import onnx
    import onnxruntime

    configure(tiny_project, source, first, second)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr + completed.stdout
    path = tiny_project.out / "ordered" / "fp32" / "model.onnx"
    graph = onnx.load(str(path)).graph
    assert sorted(i.name for i in graph.input) == sorted((first, second))
    if source == "Wrapped":  # node names are the model's own hierarchy, not a wrapper's
        assert "/fc/Gemm" in [node.name for node in graph.node]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wide = np.full((2, 4), 3.0, np.float32)
    narrow = np.full((2, 1), 1.0, np.float32)
    (y,) = session.run(["y"], {second: wide, first: narrow})
    np.testing.assert_allclose(y, np.full((2, 4), 5.0), rtol=1e-6)  # 3 * 2 - 1


def test_a_misspelt_name_passed_through_kwargs_fails_the_export_saying_which(tiny_project: Project) -> None:
    configure(tiny_project, "Wrapped", "depht", "image")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stderr + completed.stdout
    text = completed.stdout + completed.stderr
    assert "unexpected keyword argument 'depht'" in text
    assert (
        "models:Wrapped.forward takes **kwargs: the inputs depht, image are passed to it by keyword" in text
    )
    assert "does not handle this failure" not in text
    assert "Traceback" not in text
