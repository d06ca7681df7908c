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

Inf and NaN are tracked on their own, as the fp16/bf16 overflow gate sees them: in every tensor,
the added ones included. Where one first appears from finite inputs is reported even when the next
node absorbs it (`tanh(inf)`, a softmax over `-inf`), which leaves every relative error small: the
node that makes it, or, when an added Cast or Q/DQ makes it (an fp32 value beyond fp16's range cast
down), the node that reads it, which is the node to keep in fp32. Where the fp32 graph holds
Inf/NaN at the same place the model makes it, not the precision: that is said, not reported as a
node to exclude.
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
from trtbuild.tasks.overflow import FILL_MAGNITUDE
from trtbuild.tasks.reference import ReferenceParams, random_samples

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
    # Where Inf/NaN first appears at this node: "output" (it makes it), "input" (an added Cast or
    # Q/DQ makes it on the way in); None: no Inf/NaN starts here.
    inf_nan: str | None = None

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("error", "input_error"):
            record[name] = _json_float(record[name])
        return record


@dataclass(frozen=True)
class InfNan:
    """A tensor where Inf/NaN appears although every input of its producer is finite."""

    tensor: str
    node: str  # the node to keep in fp32: the producer, or the reader when an added node made it
    op_type: str
    module: str | None
    made_by: str  # the node that computed the tensor (an added Cast or Q/DQ, or `node` itself)
    in_fp32: bool  # the fp32 graph holds Inf/NaN there too: the model makes it, not the precision

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Triage:
    cell: str
    precision: str
    threshold: float
    samples: int
    compared: int  # candidate tensors compared with an fp32 tensor
    # The first `top` nodes where Inf/NaN starts, then those that introduce an error, in graph order.
    offenders: list[NodeError]
    introducing: int  # how many nodes introduce Inf/NaN or an error past the threshold in all
    outputs: dict[str, float] = field(default_factory=dict)  # each graph output's error
    first_inf_nan: InfNan | None = None  # where the overflow gate's Inf/NaN starts, in graph order
    # Constants whose value the cell's type cannot hold (finfo(float32).min as an attention mask's
    # fill turns to -inf in fp16): not offenders, since AutoCast converts constants whatever
    # exclude_nodes says, but said.
    constants: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "precision": self.precision,
            "threshold": self.threshold,
            "samples": self.samples,
            "compared": self.compared,
            "introducing": self.introducing,
            "offenders": [o.to_json() for o in self.offenders],
            "first_inf_nan": self.first_inf_nan.to_json() if self.first_inf_nan else None,
            "constants": self.constants,
            "outputs": {name: _json_float(error) for name, error in self.outputs.items()},
        }


def triage(graphs: CellGraphs, *, threshold: float = DEFAULT_THRESHOLD, top: int = DEFAULT_TOP) -> Triage:
    precision = graphs.cell.precision
    reference = tensors.load(graphs.reference)
    candidate = tensors.load(graphs.candidate)
    match = _match(graphs, reference, candidate)
    ref_runner = tensors.Runner(reference, "fp32", "fp32")
    cand_runner = tensors.Runner(candidate, f"cell {graphs.cell.name} ({precision})", precision)
    feeds_per_sample = _samples(graphs.reference_params, graphs.reference_files)
    measured = _measure(ref_runner, cand_runner, feeds_per_sample, match)
    sources = _inf_nan_sources(match, measured.inf_nan)
    introducing = _introducing(match, measured, threshold, sources)
    graph_outputs = {
        output.name: measured.errors.get(match.as_produced(output.name), math.nan)
        for output in candidate.graph.output
    }
    return Triage(
        cell=graphs.cell.name,
        precision=precision,
        threshold=threshold,
        samples=len(feeds_per_sample),
        compared=len(measured.errors),
        offenders=introducing[:top],
        introducing=len(introducing),
        outputs=graph_outputs,
        first_inf_nan=sources[0] if sources else None,
        constants=[n.name for n in match.compared if n.op_type == "Constant" and _is_inf(measured, n)],
    )


@dataclass(frozen=True)
class _Match:
    """How the cell's graph lines up with the fp32 graph, before anything is run."""

    nodes: list[Any]  # every node of the cell's graph, in graph order
    added: set[str]  # nodes the precision task inserted (Cast, Q/DQ): looked through, not compared
    producers: dict[str, Any]  # candidate tensor -> the node that makes it
    consumers: dict[str, list[Any]]  # candidate tensor -> the nodes that read it, in graph order
    counterpart: dict[str, str]  # candidate tensor -> the fp32 tensor holding the same value
    compared: list[Any]  # the candidate's other nodes, in graph order
    wanted: set[str]  # their outputs that have an fp32 counterpart: the tensors measured
    exported_nodes: dict[str, Any]  # node name -> the exporter's node, for its module path

    def as_produced(self, name: str) -> str:
        return _producer_output(name, self.producers, self.added)

    def module(self, node: Any) -> str | None:
        return _module(node, self.exported_nodes.get(node.name))


def _match(graphs: CellGraphs, reference: Any, candidate: Any) -> _Match:
    reference_nodes = {node.name: node for node in reference.graph.node}
    exported_nodes = (
        {node.name: node for node in tensors.load(graphs.exported).graph.node}
        if graphs.exported != graphs.reference
        else reference_nodes
    )
    reference_tensors = {name for node in reference.graph.node for name in node.output if name}
    nodes = list(candidate.graph.node)
    added = {
        node.name for node in nodes if node.op_type in PASS_THROUGH_OPS and node.name not in reference_nodes
    }
    counterpart = _counterparts(nodes, added, reference_tensors)
    compared = [node for node in nodes if node.name not in added]
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    return _Match(
        nodes=nodes,
        added=added,
        producers={name: node for node in nodes for name in node.output if name},
        consumers=consumers,
        counterpart=counterpart,
        compared=compared,
        wanted={name for node in compared for name in node.output if name in counterpart},
        exported_nodes=exported_nodes,
    )


@dataclass
class _Measured:
    errors: dict[str, float] = field(default_factory=dict)  # measured tensor -> worst relative error
    overflows: set[str] = field(default_factory=set)  # measured tensors that overflowed
    # Every candidate tensor holding Inf/NaN -> whether the fp32 graph holds it there too.
    inf_nan: dict[str, bool] = field(default_factory=dict)


def _measure(
    ref_runner: tensors.Runner,
    cand_runner: tensors.Runner,
    feeds_per_sample: list[dict[str, Any]],
    match: _Match,
) -> _Measured:
    """Each measured tensor's worst relative error over the samples, and where Inf/NaN is."""
    measured = _Measured()
    for feeds in feeds_per_sample:
        ref_values = dict(ref_runner.run(feeds))
        for name, value in cand_runner.run(feeds):
            reference = ref_values.get(match.counterpart.get(name, ""))
            in_fp32 = inf_nan(reference, value)
            if in_fp32 is not None:
                # Across samples, "only where fp32 has it too" holds if it holds in every sample.
                measured.inf_nan[name] = measured.inf_nan.get(name, True) and in_fp32
            if name not in match.wanted:
                continue
            result = relative_error(reference, value)
            if result is None:
                continue
            error, overflow = result
            measured.errors[name] = max(measured.errors.get(name, 0.0), error)
            if overflow:
                measured.overflows.add(name)
        # Every tensor of the fp32 graph: drop this sample's before the next sample's are made.
        del ref_values
    return measured


def _inf_nan_sources(match: _Match, inf_nan: Mapping[str, bool]) -> list[InfNan]:
    """Each tensor, in graph order, where Inf/NaN appears from finite inputs, with the node to blame:
    its producer, or the nodes reading it when an added Cast or Q/DQ made it."""
    sources: list[InfNan] = []
    for node in match.nodes:
        if node.op_type == "Constant":
            # A fill value the graph holds (an attention mask's finfo(float32).min, -inf in fp16):
            # no exclusion changes it, and the validate task's overflow scan does not count it either.
            continue
        # Whether each input holding Inf/NaN holds it only where the fp32 graph does too.
        inputs = [inf_nan[name] for name in node.input if name in inf_nan]
        for tensor in (name for name in node.output if name in inf_nan):
            in_fp32 = inf_nan[tensor]
            if inputs and (in_fp32 or not all(inputs)):
                continue  # carried on from an earlier source
            blamed = _readers(match, tensor) if node.name in match.added else [node]
            sources += [
                InfNan(tensor, b.name, b.op_type, match.module(b), node.name, in_fp32) for b in blamed
            ]
    return sources


def _readers(match: _Match, tensor: str) -> list[Any]:
    """The compared nodes that read `tensor`, through added nodes; its producer's value's producer
    when none does (an added Cast straight into a graph output)."""
    readers: list[Any] = []
    pending = [tensor]
    while pending:
        for node in match.consumers.get(pending.pop(), []):
            if node.name in match.added:
                pending += [name for name in node.output if name]
            elif node not in readers:
                readers.append(node)
    producer = match.producers.get(match.as_produced(tensor))
    if not readers and producer is not None and producer.name not in match.added:
        readers.append(producer)
    return readers


def _is_inf(measured: _Measured, node: Any) -> bool:
    return any(measured.errors.get(name) == math.inf for name in node.output)


def _introducing(
    match: _Match, measured: _Measured, threshold: float, sources: list[InfNan]
) -> list[NodeError]:
    """The compared nodes whose error passes `threshold` while their inputs' does not, and those
    where Inf/NaN first appears (first, in graph order: they fail the overflow gate)."""
    errors = measured.errors
    blamed = {source.node: source for source in reversed(sources) if not source.in_fp32}

    def source_error(name: str) -> float:
        # Graph inputs and weights carry no error.
        return errors.get(match.as_produced(name), 0.0)

    introducing: list[NodeError] = []
    for node in match.compared:
        if node.op_type == "Constant":
            continue  # `Triage.constants`: no exclusion changes a constant
        outputs = [name for name in node.output if name in errors]
        source = blamed.get(node.name)
        worst = max(outputs, key=lambda name: errors[name]) if outputs else None
        error = errors[worst] if worst is not None else math.nan
        input_error = max((source_error(name) for name in node.input if name), default=0.0)
        if source is None and not (error > threshold and not input_error > threshold):
            continue
        introducing.append(
            NodeError(
                node=node.name,
                op_type=node.op_type,
                module=match.module(node),
                error=error,
                input_error=input_error,
                overflow=source is not None or any(name in measured.overflows for name in outputs),
                output=worst or (source.tensor if source is not None else ""),
                inf_nan=None if source is None else "output" if source.made_by == node.name else "input",
            )
        )
    return sorted(introducing, key=lambda offender: offender.inf_nan is None)


def inf_nan(reference: Any, candidate: Any) -> bool | None:
    """None when `candidate` holds no Inf/NaN; else whether `reference` (the fp32 tensor of the same
    value, None if there is none) holds Inf/NaN wherever the candidate does, a float32 fill value
    (finfo.min, as Hugging Face's masks use) counting as infinite, as the overflow scan counts it."""
    import numpy as np

    got = np.asarray(candidate)
    if got.dtype.kind not in "fV":  # floats, and ml_dtypes' bfloat16 / fp8
        return None
    bad = ~np.isfinite(got.astype(np.float32))
    if not bad.any():
        return None
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is None or ref.shape != got.shape:
        return False
    return not bool((bad & (np.abs(ref) < FILL_MAGNITUDE)).any())


def relative_error(reference: Any, candidate: Any) -> tuple[float, bool] | None:
    """max |candidate - reference| / max |reference| over the elements where the fp32 value is
    finite and not a fill value (finfo.min: -inf in fp16 says the same), and whether the candidate
    overflowed; None when the shapes differ (not the same value)."""
    import numpy as np

    got = np.asarray(candidate)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != got.shape:
        return None
    low_precision = got.dtype == np.float16
    got = got.astype(np.float64)
    finite = np.abs(ref) < FILL_MAGNITUDE  # also False where ref is Inf or NaN
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


def _samples(params: ReferenceParams, files: Mapping[str, Path]) -> list[dict[str, Any]]:
    """The inputs validate compares on (seeded, inside the profiles)."""
    return random_samples(params.inputs, params.profiles, params.samples, params.seed, files)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
