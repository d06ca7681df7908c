"""precision.json: what a cell's graph really computes in, and why AutoCast kept nodes in fp32.

AutoCast keeps a node in fp32 when a rule fires (an initializer beyond `init_max`, a tensor beyond
`data_max`, a reduction deeper than `max_depth_of_reduction`, the user's exclusions) or when its op
type has no low-precision form; on some models that is nearly every node, and a "fp16" engine is
then an fp32 one. So the record is read off the graph the task made, not off what was asked for:
each compute node counts in the float type its tensors have (or as quantized when an input comes
through a DequantizeLinear), each weight in the type the graph feeds it to its consumers. The reason
for each kept node is ModelOpt's own: the line its node classifier logs when a rule fires.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trtbuild.tasks.base import JsonDict, TaskContext
from trtbuild.units import human_share

RECORD = "precision.json"
# The type each precision asks for, as the record names ONNX types.
LOW_PRECISION_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "int8": "int8", "fp8": "float8e4m3fn"}
# A share below this is "mostly not in the precision asked for": the task warns.
MOSTLY = 0.5

_AUTOCAST_LOGGER = "modelopt.onnx.autocast"
_SKIPPING = re.compile(r"^Skipping node (?P<node>.+?): (?P<reason>.+)$", re.DOTALL)
# ModelOpt's reason texts, by the spec field that sets the threshold they name.
_SETTINGS = (
    ("initializer ", "autocast.init_max"),
    ("reference IO out of range", "autocast.data_max"),
    ("depth of reduction", "autocast.max_depth_of_reduction"),
)
# Rules logged by class name only: say which part of the config fired them.
_RULE_NAMES = {
    "DisabledNodeNameRegexRule": ("its name matches autocast.exclude_nodes", "autocast.exclude_nodes"),
    "DisabledOpTypes": ("its op type is in autocast.exclude_op_types", "autocast.exclude_op_types"),
}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_FLOATS = ("float32", "float16", "bfloat16", "float64")
_QUANTIZED = ("int8", "uint8", "float8e4m3fn", "float8e5m2")
# What a node is when it computes nothing in a float or quantized type: counted apart.
_NOT_COMPUTE = ("q/dq", "cast", "constant", "no float data")


class _Reasons(logging.Handler):
    """Collects ModelOpt's "Skipping node NAME: REASON" records: node name -> reason."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _SKIPPING.match(record.getMessage())
        if match is not None:
            self.reasons.setdefault(match["node"], match["reason"].strip())


@contextlib.contextmanager
def autocast_reasons() -> Iterator[dict[str, str]]:
    """Node name -> why AutoCast kept it in high precision, filled while the block converts.

    ModelOpt logs its classifier's decisions at INFO only. The logger is lowered to INFO for the
    block; the user's terminal still shows only what TRTBUILD_LOG asks for, since trtbuild's
    handlers filter by level and ModelOpt's own were removed when quiet."""
    logger = logging.getLogger(_AUTOCAST_LOGGER)
    handler = _Reasons()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    try:
        yield handler.reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def record(model: Any, precision: str, method: str, reasons: Mapping[str, str] | None) -> JsonDict:
    """The record of `model`, the graph the precision task made for a `precision` cell. `reasons`
    (AutoCast cells): ModelOpt's reasons by node; its kept nodes are listed with them."""
    low = LOW_PRECISION_DTYPES[precision]
    types = _tensor_types(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    nodes: dict[str, int] = {}
    other: dict[str, int] = {}
    high: list[tuple[Any, str]] = []
    for node in model.graph.node:
        dtype = _node_dtype(node, types, producers)
        counts = other if dtype in _NOT_COMPUTE else nodes
        counts[dtype] = counts.get(dtype, 0) + 1
        if dtype not in _NOT_COMPUTE and dtype != low:
            high.append((node, dtype))
    weights = _weights(model, types)
    document: JsonDict = {
        "precision": precision,
        "method": method,
        "low_precision_dtype": low,
        "nodes": dict(sorted(nodes.items())),
        "other_nodes": dict(sorted(other.items())),
        "weights": dict(sorted(weights.items())),
        "share": {
            "nodes": _share(nodes, low, lambda n: n),
            "weights": _share(weights, low, lambda w: w["parameters"]),
        },
    }
    if reasons is not None:
        document["kept"] = [_kept(node, dtype, reasons, precision) for node, dtype in high]
    return document


def write_record(ctx: TaskContext[Any], document: JsonDict) -> JsonDict:
    """precision.json, a warning when the graph is mostly not in the precision asked for, and the
    task's result: the record's summary."""
    ctx.output(RECORD).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    warning = mostly_not(document)
    if warning is not None:
        ctx.warn(warning)
    return {"precision": document["precision"], "method": document["method"], **summary(document)}


def summary(document: Mapping[str, Any]) -> JsonDict:
    """What the task's result carries (and the run prints): the shares and how many nodes were kept."""
    if "share" not in document:
        return {}  # fp32: nothing was converted
    kept = document.get("kept")
    return {
        "low_precision_dtype": document["low_precision_dtype"],
        "share": document["share"],
        **({"kept": len(kept)} if isinstance(kept, list) else {}),
    }


def mostly_not(document: Mapping[str, Any]) -> str | None:
    """A warning when under half the nodes or weights are in the precision asked for, else None."""
    share = document.get("share") or {}
    nodes, weights = share.get("nodes"), share.get("weights")
    if not any(value is not None and value < MOSTLY for value in (nodes, weights)):
        return None
    precision = document["precision"]
    kept = document.get("kept")
    why = (
        f"AutoCast kept {len(kept)} node(s) in higher precision, with its reasons in precision.json and the "
        "report (autocast.data_max, init_max and max_depth_of_reduction set its thresholds)"
        if isinstance(kept, list)
        else "ModelOpt quantized only part of the graph (see precision.json)"
    )
    shares = f"only {human_share(nodes)} of the nodes and {human_share(weights)} of the weights"
    return f"{shares} are in {precision}: {why}"


def share_failures(path: Path, least: float | None) -> list[JsonDict]:
    """The gate `validate.min_low_precision` on the record at `path`, as validation failures."""
    if least is None:
        return []
    document = json.loads(path.read_text())
    if "share" not in document:
        return []  # fp32: nothing is asked to be lower
    failures: list[JsonDict] = []
    for part in ("nodes", "weights"):
        share = document["share"].get(part)
        if share is not None and share < least:
            failures.append(
                {
                    "candidate": "graph",
                    "output": "(all)",
                    "metric": f"{document['precision']} share of {part}",
                    "value": share,
                    "threshold": f">= {least} (validate.min_low_precision)",
                }
            )
    return failures


def _share(counts: Mapping[str, Any], low: str, size: Any) -> float | None:
    total = sum(size(value) for value in counts.values())
    if not total:
        return None
    return round(size(counts[low]) / total if low in counts else 0.0, 4)


def _dtype_name(elem_type: int) -> str:
    import onnx

    name = str(onnx.TensorProto.DataType.Name(elem_type)).lower()
    return {"float": "float32", "double": "float64"}.get(name) or name


def _tensor_types(model: Any) -> dict[str, str]:
    """Tensor name -> its ONNX type, from the graph's declarations, inferring what they lack."""
    import onnx

    graph = model.graph
    declared = [*graph.input, *graph.output, *graph.value_info]
    names = {v.name for v in declared}
    if any(output not in names for node in graph.node for output in node.output):
        with contextlib.suppress(Exception):  # over 2 GB, or an op ONNX cannot infer: keep what is declared
            inferred = onnx.shape_inference.infer_shapes(model)
            declared = [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
    types = {
        v.name: _dtype_name(v.type.tensor_type.elem_type) for v in declared if v.type.HasField("tensor_type")
    }
    types.update({init.name: _dtype_name(init.data_type) for init in graph.initializer})
    return types


def _node_dtype(node: Any, types: Mapping[str, str], producers: Mapping[str, Any]) -> str:
    """The type a node computes in: quantized (its input's type before a DequantizeLinear), else
    the lowest float type among its tensors; or what it is when it computes nothing in floats."""
    if node.op_type in _QDQ:
        return "q/dq"
    if node.op_type in ("Cast", "Constant"):
        return "cast" if node.op_type == "Cast" else "constant"
    for name in node.input:
        producer = producers.get(name)
        if producer is not None and producer.op_type == "DequantizeLinear":
            return types.get(producer.input[0], "quantized")
    floats = {types.get(name) for name in [*node.input, *node.output] if name} & set(_FLOATS)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        if dtype in floats:
            return dtype
    return "no float data"


def _weights(model: Any, types: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Weights by the type their consumers get them in: parameters and bytes as stored. A weight
    that only feeds a Cast or a QuantizeLinear counts in that node's output type; quantization
    scales and zero points are not weights."""
    import numpy as np
    from onnx import numpy_helper

    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    tensors = [(init.name, init) for init in model.graph.initializer] + [
        (node.output[0], attribute.t)
        for node in model.graph.node
        if node.op_type == "Constant"
        for attribute in node.attribute
        if attribute.name == "value"
    ]
    totals: dict[str, dict[str, int]] = {}
    for name, tensor in tensors:
        uses = consumers.get(name, [])
        if uses and all(node.op_type in _QDQ and index > 0 for node, index in uses):
            continue  # a scale or a zero point
        dtype = _effective_dtype(_dtype_name(tensor.data_type), uses, types)
        if dtype not in _FLOATS and dtype not in _QUANTIZED:
            continue  # shapes, indices
        entry = totals.setdefault(dtype, {"parameters": 0, "bytes": 0})
        entry["parameters"] += int(np.prod(tensor.dims)) if tensor.dims else 1
        entry["bytes"] += (
            len(tensor.raw_data) if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).nbytes
        )
    return totals


def _effective_dtype(stored: str, uses: list[tuple[Any, int]], types: Mapping[str, str]) -> str:
    converters = [node for node, _ in uses if node.op_type in ("Cast", "QuantizeLinear")]
    if uses and len(converters) == len(uses):
        return types.get(converters[0].output[0], stored)
    return stored


def _kept(node: Any, dtype: str, reasons: Mapping[str, str], precision: str) -> JsonDict:
    reason = reasons.get(node.name)
    setting: str | None = None
    if reason is None:
        # No rule fired: AutoCast moves op types it cannot convert (Upsample, NonMaxSuppression,
        # Celu, ops without a low-precision schema in the opset) and logs that at DEBUG only.
        reason = f"no rule fired: AutoCast does not convert {node.op_type} to {precision}"
    elif reason in _RULE_NAMES:
        reason, setting = _RULE_NAMES[reason]
    else:
        setting = next((s for prefix, s in _SETTINGS if reason.startswith(prefix)), None)
    return {
        "node": node.name,
        "op_type": node.op_type,
        "dtype": dtype,
        "reason": reason,
        "setting": setting,
    }
