"""Steps that make an engine, named after what they produce from what (Polygraphy's habit).

This module imports nothing but the standard library and the flavour's own module: the build
worker (worker.py) runs a copy of it as a script beside a copy of the TensorRT packages, in an
interpreter that sees nothing else, because TensorRT-RTX's engine bytes depend on what the process
allocated before the build (worker.py says why). Failures are raised as this module's own
exceptions; `failures.py` turns them into messages a user can act on.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# One tensor of the engine's I/O: {"name", "dtype" (numpy/torch name), "shape" (-1: dynamic)}.
EngineIO = dict[str, list[dict[str, Any]]]


class Settings(Protocol):
    """What the builder config is made from (`trtbuild.backends.base.BuildSettings` is one)."""

    @property
    def profiles(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def workspace(self) -> int | None: ...
    @property
    def optimization_level(self) -> int | None: ...
    @property
    def targets(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class RequestSettings:
    """Settings as the worker's request file gives them."""

    profiles: Sequence[Mapping[str, Any]]
    workspace: int | None
    optimization_level: int | None
    targets: Sequence[str]


class ParserRejected(Exception):
    """The ONNX parser made no network: (node name, op, description) per rejected node."""

    def __init__(self, module: str, rejected: list[tuple[str, str, str]]) -> None:
        super().__init__(f"the {module} ONNX parser rejected {len(rejected)} node(s)")
        self.module = module
        self.rejected = rejected


class NoEngine(Exception):
    """The builder returned no engine; it says why only through its logger."""


@dataclass
class Network:
    trt: Any  # the flavour's module
    logger: Any
    builder: Any
    network: Any
    parser: Any  # owns weights the network refers to: keep it alive until the build is done


def network_from_onnx_path(module: str, path: Path, *, ahead_of_time: bool, logger: Any = None) -> Network:
    """`module`: tensorrt or tensorrt_rtx, the flavour's Python module. `logger`: a
    `builder_logger`, one of its own by default. Raises ParserRejected."""
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
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        rejected = [
            (e.node_name() or f"#{e.node()}", e.node_operator() or "unknown op", e.desc()) for e in errors
        ]
        raise ParserRejected(module, rejected)
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


def builder_config_from_settings(net: Network, settings: Settings, *, ahead_of_time: bool) -> Any:
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
            raise ValueError(
                "build.targets applies only to a backend that builds ahead of time (tensorrt-rtx)"
            )
        config.num_compute_capabilities = len(settings.targets)
        for index, target in enumerate(settings.targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, target), index)
    return config


def engine_bytes_from_network(net: Network, config: Any) -> bytes:
    """Raises NoEngine when the builder returns none (its logger's lines say why)."""
    serialized = net.builder.build_serialized_network(net.network, config)
    if serialized is None:
        raise NoEngine()
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


def has_quantize_layers(net: Network) -> bool:
    """Whether the network has Q/DQ layers (an int8 or fp8 graph)."""
    kinds = {net.trt.LayerType.QUANTIZE, net.trt.LayerType.DEQUANTIZE}
    return any(net.network.get_layer(i).type in kinds for i in range(net.network.num_layers))


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


def build_from_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The worker's job: build what the request file describes, write the engine where it says;
    returns the response (the network's I/O, or the failure) with what TensorRT logged."""
    preload_libraries(request["module"])
    trt = importlib.import_module(request["module"])
    # Info and verbose messages only when the user asked for them (TRTBUILD_LOG=debug): they carry
    # timings, and keeping them changes what the build allocates, so such a build is marked as not
    # byte-reproducible (worker.py).
    logger = builder_logger(trt, verbose=request["verbose_log"])
    response: dict[str, Any]
    try:
        ahead_of_time = bool(request["ahead_of_time"])
        net = network_from_onnx_path(
            request["module"], Path(request["onnx"]), ahead_of_time=ahead_of_time, logger=logger
        )
        settings = RequestSettings(
            request["profiles"], request["workspace"], request["optimization_level"], request["targets"]
        )
        config = builder_config_from_settings(net, settings, ahead_of_time=ahead_of_time)
        Path(request["engine"]).write_bytes(engine_bytes_from_network(net, config))
        # Looked at after the build, so that looking does not change what the build allocated.
        response = {"io": describe_io(net), "quantized": has_quantize_layers(net)}
    except ParserRejected as rejected:
        response = {"failure": "parser", "rejected": rejected.rejected}
    except NoEngine:
        response = {"failure": "builder"}
    except Exception as error:  # the builder's own exceptions: report them, print no traceback
        response = {"failure": "exception", "error": f"{type(error).__name__}: {error}"}
    return {**response, "log": logger.lines}


def preload_libraries(module: str) -> None:
    """Load the flavour's libraries in a fixed order before its package does. The package loads them
    in the order its folder lists them, which depends on the filesystem (ext4 hashes names with a
    per-filesystem seed; tmpfs lists by creation): another order maps them at other addresses, and
    that changed fp32 engines' bytes. Loaded once, the package's own loads are no-ops."""
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec(f"{module}_libs")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = Path(next(iter(spec.submodule_search_locations)))
    pending = sorted(str(path) for path in folder.glob("*.so*"))
    while pending:  # a library whose dependency is not loaded yet waits for the next round
        failed = []
        for library in pending:
            try:
                ctypes.CDLL(library)
            except OSError:
                failed.append(library)
        if len(failed) == len(pending):
            return  # the package's own loading reports what is wrong
        pending = failed


def main(argv: list[str]) -> int:
    """`python loader.py REQUEST.json`: the response goes to the file the request names."""
    request = json.loads(Path(argv[0]).read_text())
    Path(request["response"]).write_text(json.dumps(build_from_request(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
