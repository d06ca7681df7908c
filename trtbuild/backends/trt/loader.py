"""Steps that make an engine, named after what they produce from what (Polygraphy's habit)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.backends.base import BuildSettings, EngineIO
from trtbuild.backends.trt.failures import builder_failure, parser_failure
from trtbuild.errors import TaskError


@dataclass
class Network:
    trt: Any  # the flavour's module
    logger: Any
    builder: Any
    network: Any
    parser: Any  # owns weights the network refers to: keep it alive until the build is done


def network_from_onnx_path(module: str, path: Path, *, ahead_of_time: bool, logger: Any = None) -> Network:
    """`module`: tensorrt or tensorrt_rtx, the flavour's Python module. `logger`: a
    `builder_logger`, one of its own by default."""
    trt = importlib.import_module(module)
    logger = logger if logger is not None else builder_logger(trt)
    builder = trt.Builder(logger)
    # Strongly typed networks are the only kind TensorRT 11 and TensorRT-RTX build: precision
    # comes from the ONNX graph's types, not from builder flags. TensorRT-RTX (ahead of time) has
    # no other kind and takes no flag; datacenter TensorRT 10 must be asked for it.
    flags = 0
    if not ahead_of_time and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        raise parser_failure(module, [parser.get_error(i) for i in range(parser.num_errors)])
    return Network(trt=trt, logger=logger, builder=builder, network=network, parser=parser)


def builder_logger(trt: Any, *, verbose: bool = False) -> Any:
    """A TensorRT logger that keeps its messages instead of printing them from C++: errors and
    warnings (Q/DQ graphs get warnings by the hundred), and info and verbose ones too if `verbose`.
    A failure quotes them; the build worker hands them to trtbuild's log (TRTBUILD_LOG)."""
    keep = int(trt.ILogger.Severity.VERBOSE if verbose else trt.ILogger.Severity.WARNING)

    class KeptLog(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: list[tuple[str, str]] = []  # (severity name, message)

        def log(self, severity: Any, message: str) -> None:
            if int(severity) <= keep:
                self.lines.append((severity.name, message))

    return KeptLog()


def builder_config_from_settings(net: Network, settings: BuildSettings, *, ahead_of_time: bool) -> Any:
    trt = net.trt
    config = net.builder.create_builder_config()
    if settings.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace)
    if settings.optimization_level is not None:
        config.builder_optimization_level = settings.optimization_level
    for profile_spec in settings.profiles:
        profile = net.builder.create_optimization_profile()
        for name, shape in profile_spec["shapes"].items():
            profile.set_shape(name, tuple(shape["min"]), tuple(shape["opt"]), tuple(shape["max"]))
        config.add_optimization_profile(profile)
    if settings.targets:
        if not ahead_of_time:
            raise TaskError(
                "build.targets applies only to a backend that builds ahead of time (tensorrt-rtx)"
            )
        config.num_compute_capabilities = len(settings.targets)
        for index, target in enumerate(settings.targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, target), index)
    return config


def engine_bytes_from_network(net: Network, config: Any) -> bytes:
    serialized = net.builder.build_serialized_network(net.network, config)
    if serialized is None:
        raise builder_failure(net.logger.lines)
    return bytes(memoryview(serialized))


def describe_io(net: Network) -> EngineIO:
    """The network's inputs and outputs: names, dtypes and shapes (-1 for a dynamic dim)."""

    def describe(tensor: Any) -> dict[str, Any]:
        return {"name": tensor.name, "dtype": dtype_name(tensor.dtype), "shape": list(tensor.shape)}

    network = net.network
    return {
        "inputs": [describe(network.get_input(i)) for i in range(network.num_inputs)],
        "outputs": [describe(network.get_output(i)) for i in range(network.num_outputs)],
    }


# TensorRT data types by their numpy / torch names.
DTYPE_NAMES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}


def dtype_name(dtype: Any) -> str:
    name: str = dtype.name
    return DTYPE_NAMES.get(name, name.lower())
