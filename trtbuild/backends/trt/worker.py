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

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError

REQUEST_FIELDS = ("flavour", "onnx", "engine", "profiles", "workspace", "optimization_level", "targets")


def build_in_subprocess(request: Mapping[str, Any], workdir: Path) -> dict[str, Any]:
    """Run the worker on `request`; returns the network's I/O description. Raises TaskError."""
    request_path = workdir / "build-request.json"
    response_path = workdir / "build-response.json"
    request_path.write_text(json.dumps({**request, "response": str(response_path)}))
    command = [sys.executable, "-m", "trtbuild.backends.trt.worker", str(request_path)]
    completed = subprocess.run([*_no_aslr(), *command], capture_output=True, text=True, check=False)
    if not response_path.exists() and "setarch" in completed.stderr:
        # A sandbox that forbids personality(2): build anyway; only byte-reproducibility suffers.
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        response: dict[str, Any] = json.loads(response_path.read_text())
    except (OSError, ValueError):
        log = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        raise TaskError(
            f"the engine builder process died (exit status {completed.returncode})", log
        ) from None
    if "error" in response:
        raise TaskError(response["error"], response.get("details", []))
    return response


def _no_aslr() -> list[str]:
    """The prefix that runs a command without address-space randomisation, where there is one."""
    setarch = shutil.which("setarch")
    return [setarch, platform.machine(), "-R"] if setarch and sys.platform.startswith("linux") else []


def main(argv: list[str]) -> int:
    from trtbuild.backends.trt.loader import (
        BuildSettings,
        builder_config_from_settings,
        describe_io,
        engine_bytes_from_network,
        network_from_onnx_path,
    )

    request = json.loads(Path(argv[0]).read_text())
    response_path = Path(request["response"])
    try:
        net = network_from_onnx_path(request["flavour"], Path(request["onnx"]))
        settings = BuildSettings(
            profiles=request["profiles"],
            workspace=request["workspace"],
            optimization_level=request["optimization_level"],
            targets=request["targets"],
        )
        config = builder_config_from_settings(net, request["flavour"], settings)
        Path(request["engine"]).write_bytes(engine_bytes_from_network(net, config))
        response: dict[str, Any] = describe_io(net)
    except TaskError as error:
        response = {"error": str(error), "details": error.details}
    except Exception as error:  # the builder's own exceptions: report them, do not print a traceback
        response = {"error": f"{type(error).__name__}: {error}", "details": []}
    response_path.write_text(json.dumps(response))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
