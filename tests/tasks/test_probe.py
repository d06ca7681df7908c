"""The probe task on hand-built ONNX graphs run by the real ONNX Runtime, and the shape points it and
validation share."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from trtbuild.errors import TaskError
from trtbuild.spec.model import ProfileSpec, ShapeRange, TensorSpec
from trtbuild.tasks.base import TaskContext
from trtbuild.tasks.params import OutputParams
from trtbuild.tasks.probe import GRAPH, KIND, OUTPUT, ProbeParams
from trtbuild.tasks.sampling import profile_points, sample_shapes

X = TensorSpec("x", ("batch", "seq"))
PROFILE = ProfileSpec("default", {"x": ShapeRange(min=(1, 1), opt=(2, 8), max=(4, 16))})


def graph(node: onnx.NodeProto, *initializers: onnx.TensorProto) -> onnx.ModelProto:
    return helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            list(initializers),
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )


def probe(tmp_path: Path, model: onnx.ModelProto) -> TaskContext[ProbeParams]:
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    ctx = TaskContext(
        task_id="m/probe",
        params=ProbeParams((X,), (OutputParams("y", ("batch", "seq")),), (PROFILE,)),
        inputs={GRAPH: path},
        outdir=tmp_path,
    )
    KIND.run(ctx)
    return ctx


def test_an_output_dim_that_does_not_follow_its_input_fails(tmp_path: Path) -> None:
    # y = x[:, :8]: runs at every shape, but its seq dim is 8 whatever seq is.
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [8])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    sliced = graph(helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"]), starts, ends, axes)
    with pytest.raises(TaskError) as failure:
        probe(tmp_path, sliced)
    # Only seq at its max disagrees with the output: at 1 and at opt (8) the slice keeps all of it.
    assert str(failure.value).startswith("the graph fails at 1 of the 5 shape sets")
    assert failure.value.details[0] == (
        "profile 'default', dim 'seq' (input 'x' axis 1) at its max 16, others at opt [x [2, 16]]: "
        "output 'y' axis 1 is 8, not 'seq' = 16"
    )


def test_a_graph_onnxruntime_cannot_load_is_skipped_and_said(tmp_path: Path) -> None:
    # An op of a domain ORT does not know (a TensorRT plugin, say): TensorRT may still build it.
    plugin = helper.make_node("MyPlugin", ["x"], ["y"], domain="com.example.plugins")
    model = graph(plugin)
    model.opset_import.append(helper.make_opsetid("com.example.plugins", 1))
    ctx = probe(tmp_path, model)
    assert len(ctx.warnings) == 1
    assert ctx.warnings[0].startswith("shape probe skipped: ONNX Runtime (CPU) cannot load the graph")
    assert "MyPlugin" in ctx.warnings[0]
    assert json.loads((tmp_path / OUTPUT).read_text())["status"] == "skipped"


def test_points_move_one_dim_at_a_time_and_share_a_dim_across_inputs() -> None:
    mask = TensorSpec("mask", ("batch", "seq"), dtype="int64")
    profile = ProfileSpec(
        "p",
        {
            "x": ShapeRange(min=(1, 1), opt=(2, 8), max=(4, 16)),
            "mask": ShapeRange(min=(1, 1), opt=(2, 8), max=(4, 16)),
        },
    )
    points = profile_points((X, mask), profile)
    assert [(p.dim, p.bound, p.shapes) for p in points] == [
        (None, "opt", {"x": [2, 8], "mask": [2, 8]}),
        ("batch", "min", {"x": [1, 8], "mask": [1, 8]}),
        ("batch", "max", {"x": [4, 8], "mask": [4, 8]}),
        ("seq", "min", {"x": [2, 1], "mask": [2, 1]}),
        ("seq", "max", {"x": [2, 16], "mask": [2, 16]}),
    ]


def test_a_dim_whose_min_is_its_opt_is_not_probed_twice() -> None:
    profile = ProfileSpec("p", {"x": ShapeRange(min=(2, 8), opt=(2, 8), max=(2, 16))})
    assert [(p.dim, p.bound) for p in profile_points((X,), profile)] == [(None, "opt"), ("seq", "max")]


def test_validation_samples_with_one_dynamic_dim_are_unchanged() -> None:
    """Opt, min, max then seeded random: what samples were before dims moved on their own, so
    single-dim specs (ResNet's batch) validate on the same shapes as before."""
    x = TensorSpec("x", ("batch", 3))
    profile = ProfileSpec("p", {"x": ShapeRange(min=(1, 3), opt=(8, 3), max=(32, 3))})
    shapes = [s["x"] for s in sample_shapes((x,), (profile,), 6, seed=0)]
    assert shapes[:3] == [[8, 3], [1, 3], [32, 3]]
    assert all(1 <= batch <= 32 for batch, _ in shapes[3:])
    assert shapes == [s["x"] for s in sample_shapes((x,), (profile,), 6, seed=0)]


def test_points_a_sample_count_leaves_out_are_named_with_the_count_that_takes_them_all() -> None:
    from trtbuild.tasks.sampling import points_not_sampled

    two = (PROFILE, ProfileSpec("long", {"x": ShapeRange(min=(1, 16), opt=(2, 32), max=(4, 64))}))
    # Each profile has 5 points (opt, batch min/max, seq min/max), taken round-robin: 10 take all.
    missed, needed = points_not_sampled((X,), two, 4)
    assert needed == 10
    assert [p.describe() for p in missed] == [
        "profile 'default' batch at its max 4",
        "profile 'default' seq at its min 1",
        "profile 'default' seq at its max 16",
        "profile 'long' batch at its max 4",
        "profile 'long' seq at its min 16",
        "profile 'long' seq at its max 64",
    ]
    assert points_not_sampled((X,), two, 10) == ([], 10)
    assert [p.describe() for p in points_not_sampled((X,), two, 1)[0]][
        -5
    ] == "profile 'long' every dim at opt"
