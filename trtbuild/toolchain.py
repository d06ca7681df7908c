"""Toolchain facts that enter task keys, read without importing the tools.

Versions come from installed distribution metadata (`importlib.metadata`), which costs a few
milliseconds; importing torch to ask `torch.__version__` costs two seconds and would break the
promise that a fully cached run imports neither torch, onnx nor TensorRT.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

# Distributions that provide `import tensorrt_rtx`, newest CUDA first.
TENSORRT_RTX_DISTRIBUTIONS = ("tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt-rtx")
TENSORRT_DISTRIBUTIONS = ("tensorrt-cu13", "tensorrt-cu12", "tensorrt")


@functools.cache
def version_of(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def first_installed(distributions: tuple[str, ...]) -> tuple[str, str] | None:
    """(distribution, version) of the first installed one of several alternative distributions."""
    for name in distributions:
        version = version_of(name)
        if version is not None:
            return name, version
    return None


def versions(distributions: tuple[str, ...]) -> dict[str, str | None]:
    return {name: version_of(name) for name in distributions}


def module_available(module: str) -> bool:
    """True when a top-level module can be imported, found without importing it."""
    return importlib.util.find_spec(module) is not None


@functools.cache
def nvidia_gpus() -> tuple[dict[str, str], ...]:
    """The machine's NVIDIA GPUs as nvidia-smi reports them (name, compute capability, driver).

    Empty on a machine without a GPU or driver. Asked of nvidia-smi rather than CUDA so that
    planning stays free of heavy imports.
    """
    if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
        return ()
    try:
        completed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in completed.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 3:
            gpus.append({"name": fields[0], "compute_capability": fields[1], "driver": fields[2]})
    return tuple(gpus)


def interpreter_version() -> str:
    """This interpreter as key material, e.g. `cpython-3.11.7`: the TensorRT-RTX build worker runs
    its base interpreter, whose version shapes the engine's bytes (backends/trt/recipe.py)."""
    return f"{sys.implementation.name}-{platform.python_version()}"
