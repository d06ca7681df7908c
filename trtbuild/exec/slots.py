"""How many tasks run at once (`-j N`), with how many threads each, and whether memory lets one
more start.

A slot is one worker process. The slots are at most the CPUs this process may use (its affinity
mask: `taskset`, a container's cpuset), and the CPUs are shared out between them: with two slots on
two CPUs each worker's torch (OMP_NUM_THREADS) and ONNX Runtime sessions (float_environment.py:
THREADS_VARIABLE) run one intra-op thread instead of two each. Workers are not pinned to CPUs: on a
machine others use too, a pinned worker waits for its own busy CPU while another is idle (measured:
a first, unclean measurement of a cold ResNet-50 run at -j 2 pinned gave 1.19x the wall of -j 1,
with other work on the machine). With one slot the
worker keeps the libraries' defaults, as the process itself would. Memory is checked when a task
would start beside others: it starts only if the memory available (MemAvailable, or a cgroup's limit
less its usage, whichever is lower) covers its kind's estimate (`TaskKind.memory`). A task that runs
alone always starts: waiting would not free anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtbuild.toolchain import usable_cpus
from trtbuild.units import human_bytes

MEMINFO = Path("/proc/meminfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_memory() -> int | None:
    """Bytes a new task may use: the lower of the kernel's MemAvailable and this process's cgroup
    (v2) limit less its usage; None if neither can be read."""
    found = [value for value in (_meminfo_available(), _cgroup_room()) if value is not None]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    try:
        relative = Path("/proc/self/cgroup").read_text().splitlines()[0].split(":", 2)[2].lstrip("/")
        group = CGROUP_ROOT / relative
        limit = (group / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((group / "memory.current").read_text().strip())
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Slots:
    count: int
    threads: int  # each worker's intra-op threads; 0 = the libraries' own choice (one slot)
    notes: tuple[str, ...] = ()  # why there are fewer slots than asked


def plan_slots(jobs: int, cpus: int | None = None) -> Slots:
    """`jobs` slots, at most one per usable CPU (a note says so when that is fewer than asked)."""
    cpus = usable_cpus() if cpus is None else cpus
    count = max(1, min(jobs, cpus))
    notes: tuple[str, ...] = ()
    if count < jobs:
        notes = (
            f"-j {jobs} asked for more tasks at once than the {cpus} CPU(s) this process may use: "
            f"running at most {count} at once, since more would only share the same CPUs",
        )
    return Slots(count, 0 if count == 1 else cpus // count, notes)


def memory_note(jobs: int, needed: int, available: int) -> str:
    """Said once per run, the first time a task waits for memory rather than a slot."""
    return (
        f"ran fewer tasks at once than -j {jobs} at times: a task's memory estimate ({human_bytes(needed)}) "
        f"was more than the memory available ({human_bytes(available)}), so it waited for a running "
        "task to finish"
    )
