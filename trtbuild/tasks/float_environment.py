"""What a task's float results depend on besides its inputs: the CPUs it computes on.

ONNX Runtime and torch split long reductions across as many threads as the process may use, and the
order of a float sum changes its last bits: validation.json's cosine, max_rel, mean_abs and rel_l2
moved under `taskset -c 1` against a lock written with two CPUs. Pinning one thread would make the
numbers repeat everywhere but slow validation on every machine; instead the result says which
environment computed them, and `verify` calls a difference between two environments
"not byte-reproducible (inputs identical)" rather than "different" (plan/locked.py).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

from trtbuild.toolchain import usable_cpus

CPUINFO = Path("/proc/cpuinfo")
# Set by the executor in each worker process at `-j N` (exec/slots.py): the worker's share of the
# CPUs, which ONNX Runtime's sessions and torch (OMP_NUM_THREADS) use as their intra-op threads.
THREADS_VARIABLE = "TRTBUILD_WORKER_THREADS"


def worker_threads() -> int:
    """This worker's share of the CPUs; 0 when it has them all (ONNX Runtime's own choice)."""
    value = os.environ.get(THREADS_VARIABLE, "")
    return int(value) if value.isdigit() else 0


def cpu_model() -> str:
    """`model name` from /proc/cpuinfo (the instruction set decides which kernels run), else what
    the platform module knows."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def float_environment(torch_threads: int, onnxruntime_threads: int) -> str:
    """`cpus-2/torch-2/ort-auto/cpu-1a2b3c4d`: the CPUs the process may use, torch's and ONNX Runtime's
    intra-op threads, and a hash of the CPU model (readable counts, no machine named).
    `onnxruntime_threads` 0 is ONNX Runtime's own choice, made from the CPUs it may use."""
    ort = str(onnxruntime_threads) if onnxruntime_threads > 0 else "auto"
    cpu = hashlib.sha256(cpu_model().encode()).hexdigest()[:8]
    return f"cpus-{usable_cpus()}/torch-{torch_threads}/ort-{ort}/cpu-{cpu}"
