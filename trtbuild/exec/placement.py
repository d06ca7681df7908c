"""Where a task may run: what it needs (`TaskKind.resources`) against what machines offer.

Offers and needs are Ray's vocabulary, whichever executor asks: `CPU`, `memory` (bytes), `GPU`, and
one custom resource per GPU type, `trtbuild-gpu-sm89` for a GPU of compute capability 8.9, as a
cluster's nodes advertise them (docs/scale.md). The local executor asks this machine (its CPUs,
nvidia-smi's GPUs); the Ray executor asks the cluster's live nodes. Either way a task that no
machine can take fails the run before anything starts, naming its cell, the GPU type and what the
machines offer: on Ray such a task would wait for a node forever, locally it would fail at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trtbuild import toolchain
from trtbuild.errors import Problem
from trtbuild.plan.graph import TaskNode
from trtbuild.tasks.base import ANY_GPU, Resources
from trtbuild.units import human_bytes

GPU_RESOURCE_PREFIX = "trtbuild-gpu-"


def gpu_resource(gpu_type: str) -> str:
    """The custom resource a node with a GPU of this type advertises: SM89 -> trtbuild-gpu-sm89."""
    return GPU_RESOURCE_PREFIX + gpu_type.lower()


def needs(resources: Resources, *, memory: bool = True) -> dict[str, float]:
    """A task's resources as Ray resources. `memory` False: the local executor, which treats the
    memory estimate as a reason to wait for a running task, never to refuse one that runs alone."""
    needed: dict[str, float] = {"CPU": resources.cpus}
    if memory:
        needed["memory"] = float(resources.memory)
    if resources.gpu is not None:
        needed["GPU"] = 1.0
        if resources.gpu != ANY_GPU:
            needed[gpu_resource(resources.gpu)] = 1.0
    return needed


@dataclass(frozen=True)
class Offer:
    """One machine: its name as the user knows it and the resources it has."""

    name: str
    resources: Mapping[str, float]

    def takes(self, needed: Mapping[str, float]) -> bool:
        return all(self.resources.get(name, 0.0) >= amount for name, amount in needed.items())

    def describe(self) -> str:
        shown = {k: v for k, v in sorted(self.resources.items()) if not k.startswith("node:")}
        parts = [f"{k} {human_bytes(int(v)) if 'memory' in k else _number(v)}" for k, v in shown.items()]
        return f"{self.name}: {', '.join(parts) or 'nothing'}"


def this_machine() -> Offer:
    """What the local executor can give a task: this process's CPUs and nvidia-smi's GPUs."""
    resources: dict[str, float] = {"CPU": float(toolchain.usable_cpus())}
    for gpu in toolchain.nvidia_gpus():
        resources["GPU"] = resources.get("GPU", 0.0) + 1
        capability = gpu.get("compute_capability", "").replace(".", "")
        if capability.isdigit():
            name = gpu_resource(f"SM{capability}")
            resources[name] = resources.get(name, 0.0) + 1
    return Offer("this machine", resources)


def unplaceable(
    nodes: Iterable[TaskNode], offers: Sequence[Offer], *, where: str, memory: bool = True
) -> list[Problem]:
    """One problem per cell and need that none of `offers` meets (`where`: "the cluster",
    "this machine"), naming the cell's tasks, what they need and what each machine has."""
    missing: dict[tuple[str, tuple[tuple[str, float], ...]], list[TaskNode]] = {}
    for node in nodes:
        resources = node.task.resources(node.params)
        needed = needs(resources, memory=memory)
        if not any(offer.takes(needed) for offer in offers):
            missing.setdefault((resources.gpu or "", tuple(sorted(needed.items()))), []).append(node)
    return [_problem(gpu, dict(needed), tasks, offers, where) for (gpu, needed), tasks in missing.items()]


def _problem(
    gpu: str, needed: dict[str, float], tasks: list[TaskNode], offers: Sequence[Offer], where: str
) -> Problem:
    cells = sorted({f"{task.model}/{cell}" for task in tasks for cell in task.cells})
    what = f"a GPU of type {gpu}" if gpu and gpu != ANY_GPU else ("a GPU" if gpu else "more than it has")
    shown = ", ".join(
        f"{k} {human_bytes(int(v)) if k == 'memory' else _number(v)}" for k, v in needed.items()
    )
    machines = "; ".join(offer.describe() for offer in offers) or "no live node"
    hint = (
        f"add a node that advertises {gpu_resource(gpu)} (docs/scale.md: how nodes advertise GPU types), "
        "or leave these cells out (--only, or the matrix's exclude)"
        if gpu and gpu != ANY_GPU
        else "run where such a machine is, or leave these cells out (--only, or the matrix's exclude)"
    )
    return Problem(
        f"cell(s) {', '.join(cells)}: {', '.join(sorted(t.id for t in tasks))} need(s) {what} "
        f"({shown}), which nothing in {where} offers; {where} has: {machines}",
        hint=hint,
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
