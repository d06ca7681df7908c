"""The TensorRT backends with the real TensorRT-RTX: builds, targets, parser errors, engine runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trtbuild import toolchain
from trtbuild.backends.base import BuildSettings, BuiltEngine
from trtbuild.backends.registry import TENSORRT, TENSORRT_RTX, get_backend, resolve
from trtbuild.backends.trt.loader import (
    builder_config_from_settings,
    describe_io,
    engine_bytes_from_network,
    network_from_onnx_path,
)
from trtbuild.errors import TaskError

RTX = get_backend(TENSORRT_RTX)
MODULE = "tensorrt_rtx"
PROFILE = {"name": "default", "shapes": {"x": {"min": [1, 4], "opt": [2, 4], "max": [8, 4]}}}


def write_onnx(path: Path, op: str = "Relu", domain: str = "") -> Path:
    """A one-node ONNX graph y = op(x) with a dynamic batch dim, made with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], name="the_node", domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def build(path: Path, targets: tuple[str, ...] = ("SM89",)) -> bytes:
    net = network_from_onnx_path(MODULE, path, ahead_of_time=True)
    config = builder_config_from_settings(
        net, BuildSettings(profiles=[PROFILE], targets=targets), ahead_of_time=True
    )
    return engine_bytes_from_network(net, config)


def test_builds_a_real_engine_on_the_cpu(tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "relu.onnx")
    first = build(path)
    assert len(first) > 1000
    assert build(path, targets=("SM86",)) != first  # the target is part of the engine


def test_describe_io_reports_names_dtypes_and_dynamic_dims(tmp_path: Path) -> None:
    net = network_from_onnx_path(MODULE, write_onnx(tmp_path / "relu.onnx"), ahead_of_time=True)
    assert describe_io(net) == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 4]}],
    }


def build_in_worker(path: Path, profile: dict[str, Any], workdir: Path) -> BuiltEngine:
    """Through the build worker, as a run builds: its failures come back as data, made into a
    TaskError here."""
    workdir.mkdir()
    settings = BuildSettings(profiles=[profile], targets=("SM89",))
    return RTX.build(path, workdir / "model.engine", settings, workdir, workdir / "toolchains")


def test_parser_error_names_the_node_and_its_op(tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "custom.onnx", op="NoSuchOp", domain="com.example")
    with pytest.raises(TaskError) as caught:
        build_in_worker(path, PROFILE, tmp_path / "work")
    # The node and its op in the message itself: a run's summary shows the message.
    assert "ONNX parser rejected node 'the_node' (NoSuchOp)" in str(caught.value)
    assert any("no importer for NoSuchOp" in detail for detail in caught.value.details), caught.value.details


def test_builder_failure_quotes_the_builders_error(tmp_path: Path) -> None:
    """A Reshape to a constant (5, 12) cannot take the profile's opt (2, 3, 4): the builder returns no
    engine and says why only through its logger."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([5, 12], dtype=np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="baked_reshape")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[shape],
    )
    path = tmp_path / "baked.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    profile = {"name": "default", "shapes": {"x": {"min": [1, 2, 4], "opt": [2, 3, 4], "max": [4, 8, 4]}}}
    with pytest.raises(TaskError) as caught:
        build_in_worker(path, profile, tmp_path / "work")
    message = str(caught.value)
    assert message.startswith("the builder returned no engine: "), message
    assert "violate shape constraints: IShuffleLayer baked_reshape" in message
    assert " at /_src/" not in message  # TensorRT's source locations are dropped
    assert caught.value.details[-1].startswith("hint: a profile's shapes contradict")


def test_auto_picks_tensorrt_rtx_without_a_gpu() -> None:
    if get_backend(TENSORRT).installed() and toolchain.nvidia_gpus():
        pytest.skip("this machine has datacenter TensorRT and a GPU: auto picks tensorrt here")
    assert resolve("auto", ()) == TENSORRT_RTX
    assert resolve("auto", ("SM89",)) == TENSORRT_RTX  # targets need a backend that builds ahead of time


@pytest.mark.gpu
def test_engine_runs_and_matches_relu(tmp_path: Path) -> None:
    reason = RTX.why_engine_cannot_run(("SM86", "SM89", "SM120"))
    if reason is not None:
        pytest.skip(f"cannot run a TensorRT-RTX engine here: {reason}")
    import numpy as np

    path = write_onnx(tmp_path / "relu.onnx")
    engine_path = tmp_path / "relu.engine"
    engine_path.write_bytes(build(path, targets=("SM86", "SM89", "SM120")))
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    outputs = RTX.run_engine(engine_path, {"x": x})
    np.testing.assert_allclose(outputs["y"], np.maximum(x, 0))


def test_no_gpu_reason_is_stated() -> None:
    reason = RTX.why_engine_cannot_run(("SM89",))
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert reason == "no CUDA GPU is available on this machine"


def test_the_worker_script_imports_only_the_standard_library() -> None:
    """The build worker runs a copy of loader.py in an interpreter that sees only the standard
    library and the TensorRT packages (recipe.py): an import of trtbuild or of a third-party
    package there would fail in the worker, not here."""
    import ast
    import sys

    from trtbuild.backends.trt import loader

    tree = ast.parse(Path(loader.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_a_change_to_the_worker_script_bumps_the_build_version() -> None:
    """The worker script's own code is part of what the builder process allocates, so any edit of
    loader.py changes engine bytes (a comment too: the interpreter reads the whole source). Bump
    the build task's version, then update both numbers here."""
    import hashlib

    from trtbuild.backends.trt import loader
    from trtbuild.tasks.build import KIND

    script = hashlib.sha256(Path(loader.__file__).read_bytes()).hexdigest()[:16]
    assert (script, KIND.version) == (WORKER_SCRIPT, 11)


WORKER_SCRIPT = "1ab37b65a2cfa451"


def test_the_cpu_lock_never_follows_a_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The builders' CPU locks live in the machine's shared /tmp: a symlink planted there must not
    make trtbuild open (and chmod) the file it points at."""
    from trtbuild.backends.trt import recipe

    victim = tmp_path / "victim"
    victim.write_text("mine")
    victim.chmod(0o600)
    monkeypatch.setattr(recipe, "CPU_LOCKS", tmp_path)
    (tmp_path / "trtbuild-builder-cpu0.lock").symlink_to(victim)
    with recipe.one_builder_per_cpu() as (cpu, held):
        assert cpu == 0 or held  # CPU 0's lock is refused, not followed; another CPU's may be held
    assert victim.stat().st_mode & 0o777 == 0o600 and victim.read_text() == "mine"
