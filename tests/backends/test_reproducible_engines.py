"""TensorRT-RTX engine bytes are a function of the build inputs (backends/trt/recipe.py).

ResNet-50's fp32 and int8 engines are the cases that differed before the recipe: between the first
build after install and later ones, between virtualenvs at different paths, and (int8) under CPU
load. Here the same two graphs are built by a run in a fresh cache (the first build, which makes the
packages' fixed-path copy), again through the worker (a later build), from a second virtualenv at
another, longer path with its own copy of the packages and its own cache, and under CPU load
(and with TRTBUILD_LOG=debug, which must say it changes the bytes). Every fp32 build must give
the same bytes; int8 engines usually do, and are marked as not guaranteed to (the worker says why).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest

from tests.conftest import REPO
from trtbuild import api
from trtbuild.backends.base import BuildSettings
from trtbuild.backends.registry import TENSORRT_RTX, get_backend
from trtbuild.backends.trt import recipe
from trtbuild.tasks.pipeline import PIPELINE, Pipeline

pytestmark = pytest.mark.slow
CELLS = ("fp32", "int8")
# What a build of one graph takes: the same profile and targets as configs/resnet.yaml.
BUILD_SCRIPT = """
import hashlib, json, os, sys
from pathlib import Path
if "TRTBUILD_LOG" in os.environ:  # as the CLI does (not in the second virtualenv: it has no rich)
    from trtbuild.cli import configure_logging
    configure_logging(os.environ["TRTBUILD_LOG"].upper())
from trtbuild.backends.base import BuildSettings
from trtbuild.backends.registry import TENSORRT_RTX, get_backend
request = json.loads(sys.argv[1])
workdir = Path(request["workdir"])
workdir.mkdir(parents=True)
settings = BuildSettings(request["profiles"], targets=tuple(request["targets"]))
built = get_backend(TENSORRT_RTX).build(
    Path(request["onnx"]), workdir / "model.engine", settings, workdir, Path(request["toolchains"])
)
print(json.dumps({"sha256": hashlib.sha256((workdir / "model.engine").read_bytes()).hexdigest(),
                  "reproducibility": built.reproducibility.as_json(), "python": sys.prefix}))
"""


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/resnet.yaml's fp32 and int8 cells up to their engines, in a fresh cache."""
    root = tmp_path_factory.mktemp("resnet")
    config = root / "resnet.yaml"
    text = (REPO / "configs" / "resnet.yaml").read_text()
    config.write_text(text.replace("precision: [fp32, fp16, int8]", "precision: [fp32, int8]"))
    up_to_build = Pipeline(tuple(stage for stage in PIPELINE.stages if stage.name != "validate"))
    result = api.run([config], cache_dir=root / "cache", out_dir=root / "build", pipeline=up_to_build)
    assert result.exit_status == 0, [event.reason for event in result.failed_tasks]
    return root


def engine_json(root: Path, cell: str) -> dict[str, object]:
    document: dict[str, object] = json.loads((root / "build" / "resnet50" / cell / "engine.json").read_text())
    return document


def build_request(root: Path, cell: str, workdir: Path, toolchains: Path) -> str:
    described = engine_json(root, cell)
    return json.dumps(
        {
            "onnx": str(root / "build" / "resnet50" / cell / "model.onnx"),
            "profiles": described["profiles"],
            "targets": ["SM86", "SM89", "SM120"],
            "workdir": str(workdir),
            "toolchains": str(toolchains),
        }
    )


def build_with(python: Path, request: str, **environment: str) -> dict[str, object]:
    """One build through the worker, in a process of `python` (a virtualenv's interpreter)."""
    completed = subprocess.run(
        [str(python), "-c", BUILD_SCRIPT, request],
        env={**os.environ, "PYTHONPATH": str(REPO), **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    built: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return built


@pytest.fixture(scope="module")
def second_virtualenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv at another, longer path holding its own copy of TensorRT-RTX's packages and of
    blake3, which trtbuild needs to check the packages' copy in the cache before a build (nothing
    else: trtbuild comes from PYTHONPATH). Returns its interpreter."""
    target = tmp_path_factory.mktemp("a-second-virtualenv-at-a-longer-path") / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    site = next((target / "lib").glob("python3*/site-packages"))
    blake3_package = Path(blake3.__file__).parent
    shutil.copytree(blake3_package, site / "blake3", ignore=shutil.ignore_patterns("__pycache__"))
    for package in recipe.package_dirs("tensorrt_rtx"):
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
        for info in package.parent.glob("tensorrt_rtx*.dist-info"):
            if not (site / info.name).exists():
                shutil.copytree(info, site / info.name)
    return target / "bin" / "python"


@contextmanager
def cpu_load() -> Iterator[None]:
    """Twice as many busy processes as the machine has cores, for as long as the block runs."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_resnet50_fp32_engines_are_identical_and_int8_marked_across_builds_virtualenvs_and_load(
    resnet_run: Path, second_virtualenv: Path, tmp_path: Path
) -> None:
    _, refused = recipe.isolation_prefix(0)
    if refused is not None:
        # Then engine.json must say so (test_an_engine_says_when_the_recipe_cannot_hold).
        pytest.skip(f"the build recipe cannot hold on this machine: {refused}")
    this_python = Path(sys.executable)
    for cell in CELLS:
        first = engine_json(resnet_run, cell)
        # int8 repeats here too, but memory pressure can still change a Q/DQ engine (worker.py):
        # it is marked as not guaranteed, so that verify never calls such a difference "different".
        assert first["byte_reproducible"] is (cell != "int8"), first
        if cell == "int8":
            assert "Q/DQ" in str(first["not_reproducible_because"])
        builds = {
            "first build, in the run": hashlib.sha256(
                (resnet_run / "build" / "resnet50" / cell / "model.engine").read_bytes()
            ).hexdigest(),
            "a later build": build_with(
                this_python,
                build_request(
                    resnet_run, cell, tmp_path / f"{cell}-later", resnet_run / "cache" / "toolchains"
                ),
            )["sha256"],
            "another virtualenv, first build": build_with(
                second_virtualenv,
                build_request(resnet_run, cell, tmp_path / f"{cell}-venv", tmp_path / "venv-cache"),
            )["sha256"],
        }
        # The builder's verbose log (TRTBUILD_LOG=debug) changes the bytes: such a build says so.
        debug = build_with(
            this_python,
            build_request(resnet_run, cell, tmp_path / f"{cell}-debug", resnet_run / "cache" / "toolchains"),
            TRTBUILD_LOG="debug",
        )
        assert debug["reproducibility"]["byte_reproducible"] is False  # type: ignore[index]
        assert "TRTBUILD_LOG=debug" in debug["reproducibility"]["reason"]  # type: ignore[index]
        with cpu_load():
            builds["under CPU load"] = build_with(
                this_python,
                build_request(resnet_run, cell, tmp_path / f"{cell}-load", tmp_path / "load-cache"),
            )["sha256"]
        seen = json.dumps({cell: {k: v[:12] for k, v in builds.items()}}, indent=1)
        if cell == "int8":
            # Usually one hash here too, but not always: in a CI run right after the install (pip
            # still writing gigabytes back to disk), 1 of 5 int8 builds differed. What is promised
            # is the verdict: such an engine is marked, so verify says "not byte-reproducible
            # (inputs identical)", never "different" (tests/plan/test_lock_verdicts.py).
            print(f"int8 builds: {len(set(builds.values()))} distinct engine(s) in {len(builds)}: {seen}")
            continue
        assert len(set(builds.values())) == 1, seen


def test_a_cache_on_another_kind_of_filesystem_is_another_build_environment(
    resnet_run: Path, tmp_path: Path
) -> None:
    """tmpfs maps the libraries elsewhere (aligned for huge pages) and fp32 ResNet-50 comes out
    other bytes: the fingerprint names the filesystem, so verify says "not byte-reproducible (inputs
    identical)" rather than "different" when the bytes differ for that reason."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)) or recipe.filesystem_type(shm) != "tmpfs":
        pytest.skip("needs a writable tmpfs at /dev/shm")
    on_tmpfs = Path(tempfile.mkdtemp(dir=shm, prefix="trtbuild-test-"))
    try:
        here = build_with(
            Path(sys.executable),
            build_request(resnet_run, "fp32", tmp_path / "disk", resnet_run / "cache" / "toolchains"),
        )
        there = build_with(
            Path(sys.executable), build_request(resnet_run, "fp32", tmp_path / "shm", on_tmpfs)
        )
    finally:
        shutil.rmtree(on_tmpfs)
    environments = [build["reproducibility"]["environment"] for build in (here, there)]  # type: ignore[index]
    assert "/tmpfs/" in environments[1] and environments[0] != environments[1]
    assert recipe.filesystem_type(resnet_run) in environments[0]


def test_a_non_ascii_cache_path_says_the_recipe_cannot_hold(resnet_run: Path, tmp_path: Path) -> None:
    built = build_with(
        Path(sys.executable), build_request(resnet_run, "fp32", tmp_path / "work", tmp_path / "cache-é")
    )
    assert built["reproducibility"]["byte_reproducible"] is False  # type: ignore[index]
    assert "non-ASCII" in built["reproducibility"]["reason"]  # type: ignore[index]


def test_an_engine_says_when_the_recipe_cannot_hold(resnet_run: Path, tmp_path: Path) -> None:
    """A cache folder too long to pad to the fixed length: the engine is still built, and the
    result and the run say it is not byte-reproducible here, and why."""
    toolchains = tmp_path / ("x" * 150) / "toolchains"
    workdir = tmp_path / "work"
    workdir.mkdir()
    described = engine_json(resnet_run, "fp32")
    settings = BuildSettings(described["profiles"], targets=("SM89",))  # type: ignore[arg-type]
    onnx = resnet_run / "build" / "resnet50" / "fp32" / "model.onnx"
    built = get_backend(TENSORRT_RTX).build(onnx, workdir / "model.engine", settings, workdir, toolchains)
    assert built.reproducibility.byte_reproducible is False
    assert "fixed-length path" in (built.reproducibility.reason or "")
    assert "use a shorter --cache-dir" in (built.reproducibility.detail or "")
    assert hashlib.sha256((workdir / "model.engine").read_bytes()).hexdigest()


def test_without_real_time_priority_the_engine_is_built_and_says_why_it_may_not_repeat(
    tmp_path: Path,
) -> None:
    """As in a container without CAP_SYS_NICE: `chrt -f 1` is refused, so the recipe cannot hold.
    The build goes on; the result says why its bytes may differ, and so do engine.json and the run."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and util-linux's setpriv to take CAP_SYS_NICE away from a process")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "relu.onnx")
    )
    request = json.dumps(
        {
            "onnx": str(tmp_path / "relu.onnx"),
            "profiles": [{"name": "default", "shapes": {"x": {"min": [1, 4], "opt": [2, 4], "max": [8, 4]}}}],
            "targets": ["SM89"],
            "workdir": str(tmp_path / "work"),
            "toolchains": str(tmp_path / "toolchains"),
        }
    )
    completed = subprocess.run(
        ["setpriv", "--bounding-set=-sys_nice", sys.executable, "-c", BUILD_SCRIPT, request],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    built = json.loads(completed.stdout.strip().splitlines()[-1])
    assert built["reproducibility"]["byte_reproducible"] is False
    assert "chrt -f 1: " in built["reproducibility"]["reason"], built
    assert (tmp_path / "work" / "model.engine").stat().st_size > 1000
