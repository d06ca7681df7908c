"""Good configs load into fully defaulted Specs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trtbuild.spec.loader import load_spec, parse_size
from trtbuild.spec.model import (
    DEFAULT_TOLERANCES,
    BuildSpec,
    Cell,
    ExportSpec,
    Integers,
    OutputSpec,
    ShapeRange,
    TensorSpec,
    Tolerance,
    Uniform,
)

WriteConfig = Callable[..., Path]


def test_good_config_loads_with_defaults(write_config: WriteConfig, good_text: str) -> None:
    path = write_config(good_text)
    spec = load_spec(path)
    assert spec.path == path and spec.path.is_absolute()
    assert spec.model.module == "json" and spec.model.attr == "JSONDecoder"
    assert spec.model.kwargs == {} and spec.model.checkpoint is None
    assert spec.inputs == (TensorSpec("input", ("batch", 3, 224, 224), "float32", Uniform(0.0, 1.0)),)
    assert spec.outputs == (OutputSpec("logits"),)
    assert spec.export == ExportSpec(opset=17, exporter="torchscript")
    assert spec.simplify is True
    assert spec.profiles[0].name == "default"
    assert spec.profiles[0].shapes["input"] == ShapeRange(
        (1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224)
    )
    assert spec.build == BuildSpec()
    assert spec.validate.samples == 4 and spec.validate.seed == 0
    assert spec.validate.tolerance == {**DEFAULT_TOLERANCES, "fp32": Tolerance(atol=1e-4)}
    assert spec.cells == (Cell("fp32", "fp32"),)
    assert spec.location(("export", "opset")) is not None


def test_minimal_static_config(write_config: WriteConfig) -> None:
    spec = load_spec(
        write_config(
            """\
            model: {name: m, source: "json:loads"}
            inputs: {x: {shape: [2, 4]}}
            outputs: [y]
            """
        )
    )
    assert spec.profiles == ()
    assert spec.validate.tolerance == DEFAULT_TOLERANCES
    assert spec.export == ExportSpec()


def test_relative_path_is_made_absolute(
    write_config: WriteConfig, good_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(good_text)
    monkeypatch.chdir(path.parent)
    assert load_spec(Path(path.name)).path == path


def test_all_sections(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pt").write_bytes(b"\0")
    (tmp_path / "mynet.py").write_text("def build(width=1):\n    return None\n")
    spec = load_spec(
        write_config(
            """\
            version: 1
            model:
              name: my-net.v2
              source: mynet:build
              kwargs: {width: 2}
              checkpoint: weights/w.pt
            inputs:
              tokens: {shape: [batch, seq], dtype: int64, range: [0, 1000]}
              mask: {shape: [batch, seq], dtype: bool}
            outputs:
              logits: {shape: [batch, seq, 8]}
              pooled: {}
            export: {opset: 18, exporter: dynamo}
            simplify: false
            profiles:
              small:
                tokens: {min: [1, 1], opt: [1, 16], max: [2, 64]}
                mask: {min: [1, 1], opt: [1, 16], max: [2, 64]}
            precision: [fp32]
            build: {backend: tensorrt-rtx, workspace: 512MiB, optimization_level: 5, targets: [SM89, SM120]}
            validate: {samples: 2, seed: 7, tolerance: {fp32: {cosine: 0.99}}}
            """
        )
    )
    assert spec.model.checkpoint == tmp_path / "weights" / "w.pt"
    assert spec.model.kwargs == {"width": 2}
    assert spec.inputs[0].values == Integers(0, 1000)  # `range` on an integer input: whole numbers
    assert spec.outputs == (OutputSpec("logits", ("batch", "seq", 8)), OutputSpec("pooled", None))
    assert spec.export == ExportSpec(opset=18, exporter="dynamo")
    assert spec.simplify is False
    assert spec.build == BuildSpec("tensorrt-rtx", 512 * 2**20, 5, ("SM89", "SM120"))
    assert spec.validate.tolerance["fp32"] == Tolerance(cosine=0.99)
    assert spec.validate.seed == 7


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 * 2**30),
        ("512MiB", 512 * 2**20),
        ("1GB", 10**9),
        ("1.5 GiB", 3 * 2**29),
        ("100B", 100),
        ("2KB", 2000),
        ("1TiB", 2**40),
        (123, 123),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_workspace_string_in_config(edit_good: Callable[..., Path]) -> None:
    path = edit_good("outputs: [logits]", "outputs: [logits]\nbuild: {workspace: 4GiB}")
    assert load_spec(path).build.workspace == 4 * 2**30


def test_shared_tiny_config_loads(tiny_project: Any) -> None:
    spec = load_spec(tiny_project.config)
    assert spec.model.source == "tinynet:TinyNet"
    assert spec.outputs == (OutputSpec("logits", ("batch", 10)),)
    assert spec.build.targets == ("SM89",)
    assert spec.validate.tolerance["fp32"] == Tolerance(atol=1e-4, rtol=1e-3)


def test_autocast_thresholds_and_the_low_precision_gate(
    write_config: WriteConfig, good_text: str, edit_good: Callable[..., Path]
) -> None:
    """AutoCast's own defaults unless given; the gate off unless given, a number for every precision
    below fp32 or a mapping for the precisions it names."""
    spec = load_spec(write_config(good_text))
    autocast = spec.autocast
    assert (autocast.data_max, autocast.init_max, autocast.max_depth_of_reduction) == (512.0, 65504.0, None)
    assert spec.validate.min_low_precision == {}
    spec = load_spec(
        edit_good(
            "validate: {samples: 4,",
            "autocast: {data_max: 1000, init_max: 1.0e4, max_depth_of_reduction: 4096}\n"
            "validate: {min_low_precision: 0.9, samples: 4,",
        )
    )
    autocast = spec.autocast
    assert (autocast.data_max, autocast.init_max, autocast.max_depth_of_reduction) == (1000.0, 1.0e4, 4096)
    assert spec.validate.min_low_precision == {"fp16": 0.9, "bf16": 0.9, "int8": 0.9, "fp8": 0.9}
    spec = load_spec(
        edit_good("validate: {samples: 4,", "validate: {min_low_precision: {int8: 0.5}, samples: 4,")
    )
    assert spec.validate.min_low_precision == {"int8": 0.5}
