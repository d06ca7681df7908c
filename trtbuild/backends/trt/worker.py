"""Build one engine in a process of its own: `python -m trtbuild.backends.trt.worker REQUEST.json`.

TensorRT-RTX names the internal tensors of its Myelin graphs in an order that follows memory
addresses (`__mye5421` in one build, `__mye5133` in the next, for ResNet-50): with the kernel's
address-space layout randomisation, two builds of the same network give functionally identical
engines with different bytes. The worker therefore runs with randomisation off for its own process
(`setarch -R`, Linux), which makes the bytes depend on the ONNX graph and the builder config alone —
what the cache key says — so `trtbuild verify` can compare engines bit for bit. A process of its own
also keeps a crash or a leak inside the builder away from the run.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trtbuild.backends.base import EngineIO
from trtbuild.errors import TaskError

# Everything the worker process sees is the same from one build to the next: its folder holds the
# inputs under fixed names, its arguments and environment are fixed. With address randomisation off,
# the heap then lays out the same way each time, so TensorRT-RTX names tensors the same way.
FIXED_NAMES = {"onnx": "model.onnx", "engine": "model.engine", "response": "build-response.json"}
WORKER = "import sys; from trtbuild.backends.trt.worker import main; sys.exit(main(['build-request.json']))"
KEPT_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "TRTBUILD_LOG")
# What TensorRT logged while building, shown at TRTBUILD_LOG=info (warnings) and debug (everything).
builder_log = logging.getLogger("trtbuild.builder")


def build_in_subprocess(request: Mapping[str, Any], workdir: Path) -> EngineIO:
    """Build the engine `request` describes in a fresh process; returns the network's I/O
    description and leaves the engine at request["engine"]. Raises TaskError."""
    folder = workdir / "builder"
    folder.mkdir()
    os.link(request["onnx"], folder / FIXED_NAMES["onnx"])
    fixed = {
        **request,
        "onnx": FIXED_NAMES["onnx"],
        "engine": FIXED_NAMES["engine"],
        "response": FIXED_NAMES["response"],
        # TensorRT's info and verbose messages are kept only when they will be shown.
        "verbose_log": builder_log.isEnabledFor(logging.DEBUG),
    }
    (folder / "build-request.json").write_text(json.dumps(fixed, sort_keys=True))
    environment = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    # The package must be importable whatever the working folder: point at where it is installed.
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    # Compile every module afresh into the worker's own folder: whether a .pyc was cached or not
    # changes what the interpreter allocated before TensorRT starts, and so the heap's layout.
    environment["PYTHONPYCACHEPREFIX"] = "pycache"
    command = [_interpreter(), "-c", WORKER]
    completed = subprocess.run(
        [*_no_aslr(), *command], cwd=folder, env=environment, capture_output=True, text=True, check=False
    )
    response_path = folder / FIXED_NAMES["response"]
    if not response_path.exists() and "setarch" in completed.stderr:
        # A sandbox that forbids personality(2): build anyway; only byte-reproducibility suffers.
        completed = subprocess.run(
            command, cwd=folder, env=environment, capture_output=True, text=True, check=False
        )
    for stream in (completed.stdout, completed.stderr):
        if stream.strip():
            builder_log.debug("the builder process printed:\n%s", stream.strip())
    try:
        response: dict[str, Any] = json.loads(response_path.read_text())
    except (OSError, ValueError):
        log = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        raise TaskError(
            f"the engine builder process died (exit status {completed.returncode})", log
        ) from None
    replay_builder_log(response.pop("log", []))
    if "error" in response:
        raise TaskError(response["error"], response.get("details", []))
    os.replace(folder / FIXED_NAMES["engine"], request["engine"])
    return response


def replay_builder_log(lines: list[list[str]]) -> None:
    """TensorRT's messages from the worker into trtbuild's log: warnings and errors at INFO (a
    failure quotes the relevant ones itself), info and verbose messages at DEBUG."""
    for severity, message in lines:
        level = logging.DEBUG if severity in ("INFO", "VERBOSE") else logging.INFO
        builder_log.log(level, "[%s] %s", severity, message)


def _interpreter() -> str:
    """This interpreter, always by the same name: `python` and `python3` of one virtualenv are one
    program, but a different argv[0] shifts the heap."""
    canonical = Path(sys.prefix) / "bin" / "python"
    try:
        if canonical.samefile(sys.executable):
            return str(canonical)
    except OSError:
        pass
    return sys.executable


def _no_aslr() -> list[str]:
    """The prefix that runs a command without address-space randomisation, where there is one."""
    setarch = shutil.which("setarch")
    return [setarch, platform.machine(), "-R"] if setarch and sys.platform.startswith("linux") else []


def main(argv: list[str]) -> int:
    from trtbuild.backends.trt.loader import builder_logger

    request = json.loads(Path(argv[0]).read_text())
    lines: list[tuple[str, str]] = []  # what TensorRT logged, for the parent's log and the failure
    try:
        logger = builder_logger(importlib.import_module(request["module"]), verbose=request["verbose_log"])
        lines = logger.lines
        response: dict[str, Any] = _engine_from_request(request, logger)
    except TaskError as error:
        response = {"error": str(error), "details": error.details}
    except Exception as error:  # the builder's own exceptions: report them, do not print a traceback
        response = {"error": f"{type(error).__name__}: {error}", "details": []}
    Path(request["response"]).write_text(json.dumps({**response, "log": lines}))
    return 0


def _engine_from_request(request: Mapping[str, Any], logger: Any) -> EngineIO:
    """Build the engine `request` describes, write it to request["engine"]; returns its I/O."""
    from trtbuild.backends.base import BuildSettings
    from trtbuild.backends.trt.loader import (
        builder_config_from_settings,
        describe_io,
        engine_bytes_from_network,
        network_from_onnx_path,
    )

    ahead_of_time = bool(request["ahead_of_time"])
    net = network_from_onnx_path(
        request["module"], Path(request["onnx"]), ahead_of_time=ahead_of_time, logger=logger
    )
    settings = BuildSettings(
        profiles=request["profiles"],
        workspace=request["workspace"],
        optimization_level=request["optimization_level"],
        targets=request["targets"],
    )
    config = builder_config_from_settings(net, settings, ahead_of_time=ahead_of_time)
    Path(request["engine"]).write_bytes(engine_bytes_from_network(net, config))
    return describe_io(net)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
