"""Running an engine: needs an NVIDIA GPU that the engine's flavour and targets support.

This code is real and is exercised by tests marked `gpu`, which are skipped (with the reason
below) on machines without such a GPU.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.backends.trt.loader import dtype_name

NO_GPU = "no CUDA GPU is available on this machine"
# The driver's device nodes (Linux, containers given a GPU) and WSL2's GPU paravirtualisation.
GPU_DEVICE_PATTERNS = ("nvidia[0-9]*", "dxg")


def _nvidia_device_nodes() -> bool:
    return any(next(Path("/dev").glob(pattern), None) is not None for pattern in GPU_DEVICE_PATTERNS)


def why_engine_cannot_run(supported: Sequence[str] | None) -> str | None:
    """None when this machine has a GPU that can run the engine, else the reason it cannot.
    `supported`: the compute capabilities the engine was built for (None: the GPU it was built on)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (needed to hold engine inputs and outputs on the GPU)"
    if not _nvidia_device_nodes():  # what torch.cuda would say, without its 2 s import
        return NO_GPU
    import torch

    if not torch.cuda.is_available():
        return NO_GPU
    major, minor = torch.cuda.get_device_capability(0)
    device = f"SM{major}{minor}"
    if supported is not None and device not in supported:
        name = torch.cuda.get_device_name(0)
        return f"the GPU ({name}, {device}) is not among the engine's targets {list(supported)}"
    return None


def run_engine(module: str, engine_path: Path, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Run the engine once on numpy `feeds` with the flavour's `module`; numpy outputs by name."""
    import importlib

    import torch

    trt = importlib.import_module(module)
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise RuntimeError(f"{module} could not deserialize {engine_path.name}")
    context = engine.create_execution_context()
    device_tensors: dict[str, Any] = {}
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            tensor = torch.from_numpy(feeds[name]).cuda().contiguous()
            context.set_input_shape(name, tuple(tensor.shape))
            device_tensors[name] = tensor
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = getattr(torch, dtype_name(engine.get_tensor_dtype(name)))
            shape = tuple(context.get_tensor_shape(name))
            device_tensors[name] = torch.empty(shape, dtype=dtype, device="cuda")
    for name, tensor in device_tensors.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("execute_async_v3 reported failure")
    stream.synchronize()
    return {
        name: device_tensors[name].float().cpu().numpy()
        for name in names
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT
    }
