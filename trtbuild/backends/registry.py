"""The backends by name: the one place their names are spelled, and how `auto` picks one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trtbuild.backends.base import Backend
from trtbuild.backends.trt.flavours import TensorRTFlavour

TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"
AUTO = "auto"  # not a backend: the spec's request to choose one (see `resolve`)

BACKENDS: Mapping[str, Backend] = {
    TENSORRT: TensorRTFlavour(
        name=TENSORRT,
        module="tensorrt",
        distributions=("tensorrt-cu13", "tensorrt-cu12", "tensorrt"),
        builds_ahead_of_time=False,
        hint="pip install 'trtbuild[tensorrt]' on a machine with an NVIDIA GPU",
    ),
    TENSORRT_RTX: TensorRTFlavour(
        name=TENSORRT_RTX,
        module="tensorrt_rtx",
        distributions=("tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt-rtx"),
        builds_ahead_of_time=True,
        hint="pip install 'trtbuild[build]' (tensorrt-rtx-cu13)",
        # The compute capabilities an engine runs on when no targets are set (TensorRT-RTX's
        # documented default: Ampere, Ada and Blackwell; Turing only when targeted explicitly).
        default_targets=("SM80", "SM86", "SM89", "SM120"),
    ),
}
BACKEND_NAMES = tuple(BACKENDS)


def get_backend(name: str) -> Backend:
    return BACKENDS[name]


def resolve(requested: str, targets: Sequence[str]) -> str:
    """The backend `requested` names; for `auto`: one that builds ahead of time when targets are
    declared, else one that can build here (datacenter TensorRT with a GPU), else TensorRT-RTX."""
    if requested != AUTO:
        return requested
    if targets:
        return next(name for name, backend in BACKENDS.items() if backend.builds_ahead_of_time)
    usable = [name for name, backend in BACKENDS.items() if not backend.builds_ahead_of_time]
    return next((name for name in usable if BACKENDS[name].usable_here()), TENSORRT_RTX)
