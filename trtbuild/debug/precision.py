"""Precision triage: where in a cell's graph does the low-precision error come from?

Both graphs — the fp32 graph the precision task started from and the cell's graph — are run on
ONNX Runtime's CPU provider with every tensor exposed, on the inputs the cell's validation uses.
AutoCast keeps the tensor and node names of the nodes it does not rewrite and adds Cast nodes;
ModelOpt's quantizer adds Q/DQ pairs. Those added nodes only change how a value is carried, so they
are looked through: a candidate tensor is compared with the fp32 tensor of the same value.

A node is reported when its output error exceeds the threshold while the error of its inputs (as
their producers made them, before any added Cast or Q/DQ) does not: that is where the error is
introduced. Later nodes only carry it on. Errors a Cast or Q/DQ adds on the way in (an fp32 value
too large for fp16, a quantization step) are charged to the node that consumes them, which is the
node to keep in higher precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.debug import scopes
from trtbuild.debug.graphs import CellGraphs
from trtbuild.tasks import onnx_tensors as tensors
from trtbuild.tasks.validate import ValidateParams, random_samples

# Nodes the precision task inserts that only convert how a value is carried. An op of these types
# that the fp32 graph already had (same node name) is a real node and is compared like any other.
PASS_THROUGH_OPS = ("Cast", "CastLike", "QuantizeLinear", "DequantizeLinear")
FP16_MAX = 65504.0
DEFAULT_THRESHOLD = 1e-2
DEFAULT_TOP = 5


@dataclass
class NodeError:
    node: str
    op_type: str
    module: str | None  # the nn.Module path, when the exporter recorded it
    error: float  # worst relative error of the node's outputs over the samples; inf for NaN/Inf
    input_error: float  # the worst of its inputs', as their producers made them
    overflow: bool  # NaN/Inf where fp32 is finite, or an fp16 value beyond ±65504
    output: str  # the output tensor with the worst error

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("error", "input_error"):
            record[name] = _json_float(record[name])
        return record


@dataclass
class Triage:
    cell: str
    precision: str
    threshold: float
    samples: int
    compared: int  # candidate tensors compared with an fp32 tensor
    offenders: list[NodeError]  # the first `top` nodes that introduce an error, in graph order
    introducing: int  # how many nodes introduce an error past the threshold in all
    outputs: dict[str, float] = field(default_factory=dict)  # each graph output's error

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "precision": self.precision,
            "threshold": self.threshold,
            "samples": self.samples,
            "compared": self.compared,
            "introducing": self.introducing,
            "offenders": [o.to_json() for o in self.offenders],
            "outputs": {name: _json_float(error) for name, error in self.outputs.items()},
        }


def triage(graphs: CellGraphs, *, threshold: float = DEFAULT_THRESHOLD, top: int = DEFAULT_TOP) -> Triage:
    precision = graphs.cell.precision
    reference = tensors.load(graphs.reference)
    candidate = tensors.load(graphs.candidate)
    match = _match(graphs, reference, candidate)
    ref_runner = tensors.Runner(reference, "fp32", "fp32")
    cand_runner = tensors.Runner(candidate, f"cell {graphs.cell.name} ({precision})", precision)
    feeds_per_sample = _samples(graphs.validate_params, graphs.validate_files)
    errors, overflows = _measure(ref_runner, cand_runner, feeds_per_sample, match)
    introducing = _introducing(match, errors, overflows, threshold)
    graph_outputs = {
        output.name: errors.get(match.as_produced(output.name), math.nan) for output in candidate.graph.output
    }
    return Triage(
        cell=graphs.cell.name,
        precision=precision,
        threshold=threshold,
        samples=len(feeds_per_sample),
        compared=len(errors),
        offenders=introducing[:top],
        introducing=len(introducing),
        outputs=graph_outputs,
    )


@dataclass(frozen=True)
class _Match:
    """How the cell's graph lines up with the fp32 graph, before anything is run."""

    added: set[str]  # nodes the precision task inserted (Cast, Q/DQ): looked through, not compared
    producers: dict[str, Any]  # candidate tensor -> the node that makes it
    counterpart: dict[str, str]  # candidate tensor -> the fp32 tensor holding the same value
    compared: list[Any]  # the candidate's other nodes, in graph order
    wanted: set[str]  # their outputs that have an fp32 counterpart: the tensors measured
    exported_nodes: dict[str, Any]  # node name -> the exporter's node, for its module path

    def as_produced(self, name: str) -> str:
        return _producer_output(name, self.producers, self.added)


def _match(graphs: CellGraphs, reference: Any, candidate: Any) -> _Match:
    reference_nodes = {node.name: node for node in reference.graph.node}
    exported_nodes = (
        {node.name: node for node in tensors.load(graphs.exported).graph.node}
        if graphs.exported != graphs.reference
        else reference_nodes
    )
    reference_tensors = {name for node in reference.graph.node for name in node.output if name}
    added = {
        node.name
        for node in candidate.graph.node
        if node.op_type in PASS_THROUGH_OPS and node.name not in reference_nodes
    }
    counterpart = _counterparts(candidate.graph.node, added, reference_tensors)
    compared = [node for node in candidate.graph.node if node.name not in added]
    return _Match(
        added=added,
        producers={name: node for node in candidate.graph.node for name in node.output if name},
        counterpart=counterpart,
        compared=compared,
        wanted={name for node in compared for name in node.output if name in counterpart},
        exported_nodes=exported_nodes,
    )


def _measure(
    ref_runner: tensors.Runner,
    cand_runner: tensors.Runner,
    feeds_per_sample: list[dict[str, Any]],
    match: _Match,
) -> tuple[dict[str, float], set[str]]:
    """Each measured tensor's worst relative error over the samples, and the tensors that overflowed."""
    errors: dict[str, float] = {}
    overflows: set[str] = set()
    for feeds in feeds_per_sample:
        ref_values = dict(ref_runner.run(feeds))
        for name, value in cand_runner.run(feeds):
            if name not in match.wanted:
                continue
            measured = relative_error(ref_values[match.counterpart[name]], value)
            if measured is None:
                continue
            error, overflow = measured
            errors[name] = max(errors.get(name, 0.0), error)
            if overflow:
                overflows.add(name)
        # Every tensor of the fp32 graph: drop this sample's before the next sample's are made.
        del ref_values
    return errors, overflows


def _introducing(
    match: _Match, errors: Mapping[str, float], overflows: set[str], threshold: float
) -> list[NodeError]:
    """The compared nodes, in graph order, whose error passes `threshold` while their inputs' does not."""

    def source_error(name: str) -> float:
        # Graph inputs and weights carry no error.
        return errors.get(match.as_produced(name), 0.0)

    introducing: list[NodeError] = []
    for node in match.compared:
        outputs = [name for name in node.output if name in errors]
        if not outputs:
            continue
        worst = max(outputs, key=lambda name: errors[name])
        input_error = max((source_error(name) for name in node.input if name), default=0.0)
        if errors[worst] > threshold and not input_error > threshold:
            introducing.append(
                NodeError(
                    node=node.name,
                    op_type=node.op_type,
                    module=_module(node, match.exported_nodes.get(node.name)),
                    error=errors[worst],
                    input_error=input_error,
                    overflow=any(name in overflows for name in outputs),
                    output=worst,
                )
            )
    return introducing


def relative_error(reference: Any, candidate: Any) -> tuple[float, bool] | None:
    """max |candidate - reference| / max |reference| over the elements where the fp32 value is
    finite, and whether the candidate overflowed; None when the shapes differ (not the same value)."""
    import numpy as np

    got = np.asarray(candidate)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != got.shape:
        return None
    low_precision = got.dtype == np.float16
    got = got.astype(np.float64)
    finite = np.isfinite(ref)
    ref, got = ref[finite], got[finite]
    if ref.size == 0:
        return 0.0, False
    if not np.isfinite(got).all():
        return math.inf, True
    scale = float(np.abs(ref).max())
    diff = float(np.abs(got - ref).max())
    error = 0.0 if diff == 0.0 else diff / max(scale, float(np.finfo(np.float32).tiny))
    return error, low_precision and scale > FP16_MAX


def _counterparts(nodes: Iterable[Any], added: set[str], reference_tensors: set[str]) -> dict[str, str]:
    """Candidate tensor -> the fp32 tensor holding the same value: its own name, or the name of the
    value an added Cast or Q/DQ carries (AutoCast renames a graph output's producer to `<name>_pre_cast`
    and gives the name to the Cast after it)."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for node in nodes:
        if node.name in added and node.input and node.output:
            parent[find(node.output[0])] = find(node.input[0])
    named: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name in {*parent, *parent.values(), *reference_tensors}:
        members.setdefault(find(name), []).append(name)
    for group in members.values():
        in_reference = [name for name in group if name in reference_tensors]
        if len(in_reference) == 1:
            named.update(dict.fromkeys(group, in_reference[0]))
    for name in reference_tensors:
        named[name] = name  # a tensor that kept its name is always its own counterpart
    return named


def _producer_output(name: str, producers: Mapping[str, Any], added: set[str]) -> str:
    """The tensor as its producer made it: looks back through added Casts and Q/DQ."""
    node = producers.get(name)
    while node is not None and node.name in added:
        name = node.input[0]
        node = producers.get(name)
    return name


def _module(node: Any, exported_node: Any) -> str | None:
    # Metadata first (dynamo), from the exporter's own graph if later passes dropped it; then the name.
    for source in (node, exported_node):
        if source is None:
            continue
        path = scopes.module_path(source.name, {p.key: p.value for p in source.metadata_props})
        if path is not None:
            return path
    return None


def _samples(params: ValidateParams, files: Mapping[str, Path]) -> list[dict[str, Any]]:
    """The inputs validate compares on (seeded, inside the profiles)."""
    return random_samples(params.inputs, params.profiles, params.samples, params.seed, files)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
