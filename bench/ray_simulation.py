"""Simulation: 1,000 cells over 5 GPU types on a Ray cluster, with the measured overhead per task.

No Ray, no tasks: a list-scheduling simulation of the DAG trtbuild plans, deterministic, in about a
second. Run by bench/ray_executor.py with the overhead it measured, or alone:
    python bench/ray_simulation.py [--overhead S] [--fixed S] [--gpu-nodes 4] [--cpu-nodes 8]

**The matrix.** 50 models (ResNet-50-sized) x 4 precisions (fp32, fp16, bf16, int8) x 5 GPU types
= 1,000 cells, 200 per type; `--skewed`: 400/200/200/100/100 cells per type (a model targets the
first k types). The sharing is the real pipeline's (tasks/pipeline.py): export, simplify, reference
and probe once per model; precision once per (model, precision), whatever the GPU; build and
validate once per cell.

**Task seconds** are ResNet-50's, bench/RESULTS.md section 4 (df86b1b, idle, `-j 1`, two threads
per task) where it lists the task: int8 precision 14.6, fp16 validate 9.9, int8 validate 6.4,
reference 5.3, fp32 validate 5.0, fp16 precision 4.6. The others from DESIGN.md section 1's tool
times (export 1.2, onnxsim 1.6, builds 0.6 / 0.5 / 2.8; fp32 precision 0.3, a pass-through), and
the probe is the rest of section 4's sum of task times (59.0 s). bf16 is taken as fp16 (the same
AutoCast path). A Ray task runs at one thread (its declared CPU): the times are multiplied by 1.50,
section 5's sum of task seconds at -j 2 (one thread each) over -j 1 (two threads): 89.5 / 59.5.

**The cluster.** Per GPU type `--gpu-nodes` nodes, each with `--cpus-per-node` CPUs (2: the
machine the times were measured on) and one GPU; plus `--cpu-nodes` CPU-only nodes. Every task
declares 1 CPU (tasks/base.py: Resources). Two flavours, as exec/placement.py places them:
- datacenter TensorRT: build and validate need a GPU of their cell's type (build_gpu);
- TensorRT-RTX: builds are ahead of time on a CPU, so every task is a CPU task that runs anywhere.
CPU tasks go to CPU-only nodes first (Ray avoids GPU nodes for tasks that need no GPU,
RAY_scheduler_avoid_gpu_nodes), then to a GPU node's free CPUs. Among ready tasks the one with the
most work still ahead of it goes first (exec/local.py: longest_chain_first), as the Ray executor's
driver submits them. The overhead per task is added to each task's time on its node (an upper
bound: part of it is the driver's, while the node waits); the fixed cost (Ray's start-up) once.

**Baselines.** One 2-CPU machine at -j 1 (tasks one after another, two threads each, no overhead),
at -j 2, and a single machine with as many CPUs as the whole cluster (and every GPU) at -j N, no
overhead: the cluster's makespan over that one is what placement and the overhead cost.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

GPU_TYPES = ("SM75", "SM80", "SM86", "SM89", "SM120")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
MODELS = 50
EVEN = (200, 200, 200, 200, 200)
SKEWED = (400, 200, 200, 100, 100)
# Seconds of a ResNet-50 task at -j 1 (two threads) on the 2-core machine (module doc: sources).
SECONDS = {
    "export": 1.2,
    "simplify": 1.6,
    "reference": 5.3,
    "precision/fp32": 0.3,
    "precision/fp16": 4.6,
    "precision/bf16": 4.6,
    "precision/int8": 14.6,
    "build/fp32": 0.6,
    "build/fp16": 0.5,
    "build/bf16": 0.5,
    "build/int8": 2.8,
    "validate/fp32": 5.0,
    "validate/fp16": 9.9,
    "validate/bf16": 9.9,
    "validate/int8": 6.4,
}
SECONDS["probe"] = 59.0 - sum(
    SECONDS[name]
    for name in SECONDS
    if not name.endswith("bf16")  # section 4's matrix is fp32, fp16, int8
)
ONE_THREAD = 89.5 / 59.5  # RESULTS.md section 5: sum of task s at -j 2 over -j 1
# Measured by bench/ray_executor.py (bench/RESULTS.md section 9); --overhead / --fixed override.
OVERHEAD_S = 0.14
FIXED_S = 8.1
SENSITIVITY_S = (1.0, 3.0)


@dataclass
class Task:
    id: str
    seconds: float  # at -j 1 (two threads)
    gpu: str | None  # the GPU type it needs, None: a CPU task
    deps: list[Task] = field(default_factory=list)
    ahead: float = 0.0  # the longest chain of work from this task's start to the end


def matrix(split: tuple[int, ...], datacenter: bool) -> list[Task]:
    """The planned tasks of the 1,000 cells, dependencies first."""
    tasks: list[Task] = []

    def add(name: str, kind: str, gpu: str | None, *deps: Task) -> Task:
        tasks.append(Task(name, SECONDS[kind], gpu, list(deps)))
        return tasks[-1]

    models_per_type = [cells // len(PRECISIONS) for cells in split]
    for model in range(max(models_per_type)):
        types = [gpu for gpu, count in zip(GPU_TYPES, models_per_type, strict=True) if model < count]
        export = add(f"m{model}/export", "export", None)
        simplify = add(f"m{model}/simplify", "simplify", None, export)
        reference = add(f"m{model}/reference", "reference", None)
        probe = add(f"m{model}/probe", "probe", None, simplify)
        for precision in PRECISIONS:
            graph = add(f"m{model}/{precision}/precision", f"precision/{precision}", None, simplify)
            for gpu in types:
                on = gpu if datacenter else None
                cell = f"m{model}/{precision}-{gpu}"
                build = add(f"{cell}/build", f"build/{precision}", on, graph, probe)
                add(f"{cell}/validate", f"validate/{precision}", on, graph, build, reference)
    return tasks


@dataclass
class Node:
    name: str
    cpus: int
    gpu: str | None  # its GPU's type; None: a CPU-only node
    gpu_free: bool = True


def cluster(gpu_nodes: int, cpu_nodes: int, cpus_per_node: int) -> list[Node]:
    nodes = [Node(f"cpu{i}", cpus_per_node, None) for i in range(cpu_nodes)]
    nodes += [Node(f"{t}-{i}", cpus_per_node, t) for t in GPU_TYPES for i in range(gpu_nodes)]
    return nodes


def schedule(tasks: list[Task], nodes: list[Node], scale: float, overhead: float) -> float:
    """The makespan of list-scheduling `tasks` on `nodes`: each task `seconds * scale + overhead`."""
    _work_ahead(tasks, scale, overhead)
    waiting = {id(task): len(task.deps) for task in tasks}
    dependents: dict[int, list[Task]] = {}
    for task in tasks:
        for dep in task.deps:
            dependents.setdefault(id(dep), []).append(task)
    order = itertools.count()
    ready: dict[str | None, list[tuple[float, int, Task]]] = {}
    for task in tasks:
        if not task.deps:
            heapq.heappush(ready.setdefault(task.gpu, []), (-task.ahead, next(order), task))
    running: list[tuple[float, int, Task, Node]] = []
    now = 0.0
    while True:
        _start_ready(ready, nodes, running, now, scale, overhead, order)
        if not running:
            break
        now, _, task, node = heapq.heappop(running)
        node.cpus += 1
        if task.gpu is not None:
            node.gpu_free = True
        for dependent in dependents.get(id(task), []):
            waiting[id(dependent)] -= 1
            if waiting[id(dependent)] == 0:
                entry = (-dependent.ahead, next(order), dependent)
                heapq.heappush(ready.setdefault(dependent.gpu, []), entry)
    if any(waiting.values()) or any(ready.values()):
        raise RuntimeError("a task never started: no node can take it")
    return now


def _start_ready(
    ready: dict[str | None, list[tuple[float, int, Task]]],
    nodes: list[Node],
    running: list[tuple[float, int, Task, Node]],
    now: float,
    scale: float,
    overhead: float,
    order: Iterable[int],
) -> None:
    """GPU tasks first (only their type's nodes take them), then CPU tasks: CPU-only nodes first."""
    counter = iter(order)
    for gpu in sorted((g for g in ready if g is not None), key=str):
        for node in (n for n in nodes if n.gpu == gpu):
            if ready[gpu] and node.gpu_free and node.cpus > 0:
                _, _, task = heapq.heappop(ready[gpu])
                node.cpus, node.gpu_free = node.cpus - 1, False
                end = now + task.seconds * scale + overhead
                heapq.heappush(running, (end, next(counter), task, node))
    queue = ready.get(None, [])
    for node in sorted(nodes, key=lambda n: n.gpu is not None):
        while queue and node.cpus > 0:
            _, _, task = heapq.heappop(queue)
            node.cpus -= 1
            heapq.heappush(running, (now + task.seconds * scale + overhead, next(counter), task, node))


def _work_ahead(tasks: list[Task], scale: float, overhead: float) -> None:
    for task in tasks:
        task.ahead = 0.0
    for task in reversed(tasks):  # dependents come after their dependencies
        task.ahead += task.seconds * scale + overhead
        for dep in task.deps:
            dep.ahead = max(dep.ahead, task.ahead)


def one_machine(tasks: list[Task], cpus: int) -> float:
    """-j 1 on the measured machine: one task at a time, two threads; -j N: N slots, one thread."""
    if cpus == 1:
        return sum(task.seconds for task in tasks)
    cpu_only = [Task(t.id, t.seconds, None) for t in tasks]
    copies = {t.id: c for t, c in zip(tasks, cpu_only, strict=True)}
    for task, copy in zip(tasks, cpu_only, strict=True):
        copy.deps = [copies[dep.id] for dep in task.deps]
    return schedule(cpu_only, [Node("one", cpus, None)], ONE_THREAD, 0.0)


def makespans(tasks: list[Task], nodes: list[Node], overhead: float, fixed: float) -> tuple[float, float]:
    """The cluster's makespan with Ray's overhead (per task, and once per run) and without it."""
    return schedule(tasks, nodes, ONE_THREAD, overhead) + fixed, schedule(tasks, nodes, ONE_THREAD, 0.0)


def simulate(
    overhead: float, fixed: float, *, gpu_nodes: int, cpu_nodes: int, cpus_per_node: int, skewed: bool
) -> list[str]:
    split = SKEWED if skewed else EVEN
    lines = [
        f"1,000 cells ({'skewed' if skewed else 'even'}: {'/'.join(map(str, split))} per GPU type "
        f"{', '.join(GPU_TYPES)}); cluster: {gpu_nodes} GPU nodes per type + {cpu_nodes} CPU nodes, "
        f"{cpus_per_node} CPUs each; overhead {overhead * 1000:.0f} ms per task, {fixed:.1f} s per run"
    ]
    header = f"{'flavour':<22}{'tasks':>7}{'makespan s':>12}{'no overhead':>13}{'Ray share':>11}"
    lines.append(header + f"{'1 machine -j1':>15}{'-j2':>9}{'-jN (N=all)':>13}{'vs -j1':>8}{'vs -jN':>8}")
    for datacenter in (True, False):
        tasks = matrix(split, datacenter)
        nodes = cluster(gpu_nodes, cpu_nodes, cpus_per_node)
        total_cpus = sum(node.cpus for node in nodes)
        with_overhead, bare = makespans(tasks, nodes, overhead, fixed)
        serial, two, wide = one_machine(tasks, 1), one_machine(tasks, 2), one_machine(tasks, total_cpus)
        name = "datacenter TensorRT" if datacenter else "TensorRT-RTX (CPU)"
        share = 1 - bare / with_overhead
        lines.append(
            f"{name:<22}{len(tasks):>7}{with_overhead:>12.0f}{bare:>13.0f}{share:>11.1%}{serial:>15.0f}"
            f"{two:>9.0f}{wide:>13.0f}{serial / with_overhead:>7.0f}x{with_overhead / wide:>7.2f}x"
        )
    return lines


def simulate_and_print(
    overhead: float,
    fixed_s: float = FIXED_S,
    *,
    gpu_nodes: int = 4,
    cpu_nodes: int = 8,
    cpus_per_node: int = 2,
) -> None:
    settings = {"gpu_nodes": gpu_nodes, "cpu_nodes": cpu_nodes, "cpus_per_node": cpus_per_node}
    print(f"task seconds (ResNet-50, -j 1; x{ONE_THREAD:.2f} at one thread on Ray):")
    print("  " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in SECONDS.items()))
    for skewed in (False, True):
        print("\n".join(simulate(overhead, fixed_s, skewed=skewed, **settings)))
    # On a real cluster each task also fetches its inputs from the remote cache and publishes its
    # outputs (a local instance shares this machine's cache): what a larger overhead would cost.
    print("Ray's share of the makespan if each task cost more (even split):")
    for more in SENSITIVITY_S:
        shares = []
        for datacenter in (True, False):
            nodes = cluster(gpu_nodes, cpu_nodes, cpus_per_node)
            with_overhead, bare = makespans(matrix(EVEN, datacenter), nodes, more, fixed_s)
            shares.append(f"{1 - bare / with_overhead:.1%} ({with_overhead:.0f} s)")
        print(f"  {more:.1f} s per task: datacenter TensorRT {shares[0]}, TensorRT-RTX {shares[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--overhead", type=float, default=OVERHEAD_S, help="seconds per task")
    parser.add_argument("--fixed", type=float, default=FIXED_S, help="seconds per run (Ray's start-up)")
    parser.add_argument("--gpu-nodes", type=int, default=4, help="nodes per GPU type")
    parser.add_argument("--cpu-nodes", type=int, default=8)
    parser.add_argument("--cpus-per-node", type=int, default=2)
    args = parser.parse_args()
    simulate_and_print(
        args.overhead,
        args.fixed,
        gpu_nodes=args.gpu_nodes,
        cpu_nodes=args.cpu_nodes,
        cpus_per_node=args.cpus_per_node,
    )


if __name__ == "__main__":
    main()
