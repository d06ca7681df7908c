"""Which TensorRT flavour builds an engine, and what that choice depends on. No heavy imports."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from trtbuild.plan import toolchain

TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"
MODULES = {TENSORRT: "tensorrt", TENSORRT_RTX: "tensorrt_rtx"}
INSTALL_HINTS = {
    TENSORRT: "pip install 'trtbuild[tensorrt]' on a machine with an NVIDIA GPU",
    TENSORRT_RTX: "pip install 'trtbuild[build]' (tensorrt-rtx-cu13)",
}
# Compute capabilities a TensorRT-RTX engine runs on when no targets are set (its documented
# default: Ampere, Ada and Blackwell; Turing only when targeted explicitly).
RTX_DEFAULT_TARGETS = ("SM80", "SM86", "SM89", "SM120")


def resolve(requested: str) -> str:
    """`auto` means datacenter TensorRT when it is installed and a GPU is present, else TensorRT-RTX."""
    if requested != "auto":
        return requested
    if toolchain.module_available(MODULES[TENSORRT]) and toolchain.nvidia_gpus():
        return TENSORRT
    return TENSORRT_RTX


def installed(flavour: str) -> bool:
    return toolchain.module_available(MODULES[flavour])


def tool_facts(flavour: str) -> dict[str, Any]:
    """What a build's output depends on besides its params and inputs.

    A datacenter TensorRT engine is tuned for the GPU it is built on, so the GPU model, compute
    capability and driver enter the key. TensorRT-RTX builds ahead of time for declared targets,
    so the host's GPU does not matter.
    """
    if flavour == TENSORRT:
        found = toolchain.first_installed(toolchain.TENSORRT_DISTRIBUTIONS)
        return {"tensorrt": found[1] if found else None, "gpus": list(toolchain.nvidia_gpus())}
    found = toolchain.first_installed(toolchain.TENSORRT_RTX_DISTRIBUTIONS)
    return {"tensorrt_rtx": found[1] if found else None}


def import_module(flavour: str) -> ModuleType:
    import importlib

    return importlib.import_module(MODULES[flavour])


def sm_number(target: str) -> int:
    """ "SM89" -> 89."""
    return int(target.removeprefix("SM"))
