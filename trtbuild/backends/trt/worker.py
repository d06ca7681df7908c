"""Build one engine in a process of its own, under the conditions recipe.py describes.

For TensorRT-RTX (which builds ahead of time, on any machine) the process runs loader.py's copy
beside a copy of the packages at a fixed-length path, in the base interpreter with an empty
environment and no address randomisation: the engine's bytes then depend on the build's inputs and
the interpreter installation alone. Where part of that recipe cannot hold, the engine is still
built, and the returned Reproducibility says why its bytes may differ from another build's. A
process of its own also keeps a crash or a leak inside the builder away from the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trtbuild.backends.base import BuiltEngine, Reproducibility
from trtbuild.backends.trt import recipe
from trtbuild.backends.trt.failures import from_response
from trtbuild.errors import TaskError

# The worker's folder holds its files under fixed names: its arguments are the same every build.
FIXED_NAMES = {"onnx": "model.onnx", "engine": "model.engine", "response": "build-response.json"}
# Datacenter TensorRT builds on a GPU: it needs the CUDA environment, and is not byte-reproducible.
KEPT_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES")
# What TensorRT logged while building, shown at TRTBUILD_LOG=info (warnings) and debug (everything).
builder_log = logging.getLogger("trtbuild.builder")
# Measured on ResNet-50 int8 (recipe.py): 5 of 5 and 8 of 8 builds under CPU load identical, but 2
# of 10 differed while other builds filled the machine's memory, and so did 1 of 6 pairs of builds
# run at once. fp32 and fp16 engines never did. So a Q/DQ engine is not promised byte-identical:
# verify says "not byte-reproducible (inputs identical)" rather than "different" when it differs.
NOT_GUARANTEED_QDQ = (
    "TensorRT-RTX numbers a Q/DQ (int8, fp8) graph's internal tensors in an order that depends on how "
    "its two builder threads interleave; the recipe makes that repeat under CPU load, but memory "
    "pressure or concurrent builds can still change it (measured: 2 of 10 ResNet-50 int8 builds)"
)
# Keeping TensorRT's info and verbose messages (which carry timings) changes what the build
# allocates: fp32 ResNet-50 came out other bytes with TRTBUILD_LOG=debug, and int8 builds stopped
# repeating when every message was kept.
VERBOSE_LOG = "TRTBUILD_LOG=debug keeps the builder's verbose log, which changes what the build allocates"
NOT_AHEAD_OF_TIME = (
    "datacenter TensorRT times its tactics on the GPU it builds on: engines differ between builds"
)


def build_in_subprocess(
    request: Mapping[str, Any], workdir: Path, toolchains: Path, version: str | None
) -> BuiltEngine:
    """Build the engine `request` describes in a fresh process; leaves the engine at
    request["engine"]. `toolchains`: where the packages' fixed-path copies live. Raises TaskError."""
    folder = workdir / "builder"
    folder.mkdir()
    os.link(request["onnx"], folder / FIXED_NAMES["onnx"])
    fixed = {
        **request,
        "onnx": FIXED_NAMES["onnx"],
        "engine": FIXED_NAMES["engine"],
        "response": FIXED_NAMES["response"],
        "verbose_log": builder_log.isEnabledFor(logging.DEBUG),
    }
    (folder / "build-request.json").write_text(json.dumps(fixed, sort_keys=True))
    with recipe.one_builder_per_cpu() as (cpu, held):
        command, environment, reproducibility = _command(request, toolchains, version, cpu)
        # It inherits the CPU's lock, and dies with its parent (which cannot free a CPU it runs on).
        completed = subprocess.run(
            command,
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            pass_fds=held,
            preexec_fn=recipe.dies_with_parent(),
        )
    for stream in (completed.stdout, completed.stderr):
        if stream.strip():
            builder_log.debug("the builder process printed:\n%s", stream.strip())
    try:
        response: dict[str, Any] = json.loads((folder / FIXED_NAMES["response"]).read_text())
    except (OSError, ValueError):
        log = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        raise TaskError(
            f"the engine builder process died (exit status {completed.returncode})", log
        ) from None
    replay_builder_log(response.get("log", []))
    if "failure" in response:
        raise from_response(request["module"], response)
    os.replace(folder / FIXED_NAMES["engine"], request["engine"])
    return BuiltEngine(response["io"], _as_built(reproducibility, fixed["verbose_log"], response))


def _as_built(planned: Reproducibility, verbose_log: bool, response: Mapping[str, Any]) -> Reproducibility:
    """What only the build itself shows: the log it kept, the kind of graph it was."""
    why_not = VERBOSE_LOG if verbose_log else NOT_GUARANTEED_QDQ if response.get("quantized") else None
    found = planned
    if why_not and planned.byte_reproducible:
        found = Reproducibility(False, why_not, planned.environment)
    if verbose_log:  # the log level is not key material: this engine is this run's only
        found = dataclasses.replace(found, not_shared="built with TRTBUILD_LOG=debug")
    return found


def _command(
    request: Mapping[str, Any], toolchains: Path, version: str | None, cpu: int
) -> tuple[list[str], dict[str, str], Reproducibility]:
    """The worker's command line and environment, and whether its bytes will be reproducible."""
    environment = recipe.environment_fingerprint(toolchains)
    fallback = [
        sys.executable,
        "-c",
        "import sys; from trtbuild.backends.trt.loader import main; sys.exit(main(sys.argv[1:]))",
        "build-request.json",
    ]
    # The fallback imports trtbuild from where it is installed, whatever the working folder.
    kept = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    fallback_environment = {**kept, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    if not request["ahead_of_time"]:
        return fallback, fallback_environment, Reproducibility(False, NOT_AHEAD_OF_TIME, environment)
    prefix, refused = recipe.isolation_prefix(cpu)
    try:
        folder = recipe.packages_at_fixed_path(request["module"], version or "unknown", toolchains)
    except (recipe.RecipeUnavailable, OSError) as error:
        reason = "the TensorRT packages could not be placed at a fixed-length path"
        return (
            [*prefix, *fallback],
            fallback_environment,
            Reproducibility(False, reason, environment, str(error)),
        )
    recipe.warm_page_cache(folder)
    command = [*prefix, *recipe.worker_command(folder)]
    if refused is not None:
        reason = "the builder could not be isolated as the recipe needs"
        return command, {}, Reproducibility(False, reason, environment, refused)
    return command, {}, Reproducibility(True, None, environment)


def replay_builder_log(lines: list[list[str]]) -> None:
    """TensorRT's messages from the worker into trtbuild's log: warnings and errors at INFO (a
    failure quotes the relevant ones itself), info and verbose messages at DEBUG."""
    for severity, message in lines:
        level = logging.DEBUG if severity in ("INFO", "VERBOSE") else logging.INFO
        builder_log.log(level, "[%s] %s", severity, message)
