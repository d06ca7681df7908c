"""The model as the exporters are given it (trtbuild/tasks/traceable.py), on small real modules."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trtbuild.errors import TaskError
from trtbuild.tasks.binding import Binding, bind
from trtbuild.tasks.traceable import traceable_model

torch = pytest.importorskip("torch")


class AnyKeywords(torch.nn.Module):
    def forward(self, **kw: Any) -> Any:
        return {"y": kw["input.1"] * 2.0 - kw["b"]}


def binding_of(model: Any, names: list[str]) -> Binding:
    found = bind(model.forward, names, "m.forward")
    assert isinstance(found, Binding)
    return found


def feeds() -> dict[str, Any]:
    return {"b": torch.ones(2, 1), "input.1": torch.full((2, 4), 3.0)}


def test_keyword_inputs_reach_torchscript_by_position_with_a_signature_it_reads() -> None:
    model = AnyKeywords()
    binding = binding_of(model, ["b", "input.1"])
    traced = traceable_model(model, binding, feeds(), ["y"], source="m", keywords=False)
    assert traced.kwargs == {} and len(traced.args) == 2
    assert traced.model is not model and traced.model.training == model.training
    # `input.1` is no Python name: the signature takes *inputs rather than failing to be built.
    assert str(inspect.signature(traced.model.forward)) == "(*inputs)"
    (y,) = traced.model(*traced.args)
    assert torch.equal(y, torch.full((2, 4), 5.0))


def test_dynamo_keeps_the_keywords() -> None:
    model = AnyKeywords()
    traced = traceable_model(
        model, binding_of(model, ["b", "input.1"]), feeds(), ["y"], source="m", keywords=True
    )
    assert traced.args == () and set(traced.kwargs) == {"b", "input.1"}


def test_the_torchscript_export_names_the_graphs_inputs_after_the_config(tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    model = AnyKeywords()
    traced = traceable_model(
        model, binding_of(model, ["b", "input.1"]), feeds(), ["y"], source="m", keywords=False
    )
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        traced.model, traced.args, str(path), input_names=traced.input_names, output_names=["y"], dynamo=False
    )
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["b", "input.1"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(["y"], {"b": np.ones((2, 1), np.float32), "input.1": np.full((2, 4), 3.0, np.float32)})
    np.testing.assert_allclose(y, np.full((2, 4), 5.0))


def test_a_model_refusing_a_keyword_fails_saying_it_was_passed_through_kwargs() -> None:
    class Strict(torch.nn.Module):
        def forward(self, image: Any) -> Any:
            return image

    class Wrapped(Strict):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return super().forward(*args, **kwargs)

    model = Wrapped()
    with pytest.raises(TaskError) as raised:
        traceable_model(
            model, binding_of(model, ["imgae"]), {"imgae": torch.ones(1)}, ["y"], source="m:W", keywords=False
        )
    assert "unexpected keyword argument 'imgae'" in str(raised.value)
    assert (
        "hint: m:W.forward takes **kwargs: the inputs imgae are passed to it by keyword"
        in raised.value.details[-1]
    )
