"""Fuzz configs through `trtbuild plan` and `trtbuild run` (issue 13, done-when item 3).

    python bench/fuzz_configs.py --plan 10000 --run 200 [--seed 13] [--workdir DIR]

Configs come from tests/faults/config_fuzz.py (mutations of the real configs). Each goes through
`trtbuild.cli.main`, the CLI's own entry point, in this process (to be fast: torch is imported once),
with a private cache under the work folder. For each config: exit status, no internal error or
traceback, file:line on every config problem, under 5 CPU s (the machine is shared: wall time is
printed too) and this process's peak RSS growth under 500 MB. `run` configs are counted as reaching
the run when the run's summary was printed (exit 0 or 1); configs are drawn until --run of them did.
Prints counts, violations and the worst time and memory, and whether .pyc files were written
(PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.faults.config_fuzz import (  # noqa: E402
    FuzzConfig,
    Outcome,
    Workspace,
    check,
    fuzzed_configs,
    run_cli_in_process,
    runnable_configs,
)


class Tally:
    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.count = 0
        self.reached = 0
        self.statuses: Counter[int] = Counter()
        self.violations: list[tuple[bytes, list[str]]] = []
        self.worst_wall = (0.0, b"")
        self.worst_peak = (0.0, b"")
        self.cpu = 0.0
        self.run_wall = 0.0
        self.worst_cpu = (0.0, b"")

    def add(self, config: FuzzConfig, outcome: Outcome, violations: list[str]) -> None:
        self.count += 1
        self.statuses[outcome.status] += 1
        self.cpu += outcome.cpu_s
        if self.verb == "run" and outcome.status in (0, 1) and "tasks" in outcome.stdout:
            self.reached += 1
        if violations:
            self.violations.append((config.data, violations))
            print(f"VIOLATION {violations}\n{config.data!r}", flush=True)
        if self.verb == "plan" or outcome.status == 2:  # a run's tasks are timed in run_wall
            self.worst_wall = max(self.worst_wall, (outcome.wall_s, config.data))
            self.worst_cpu = max(self.worst_cpu, (outcome.cpu_s, config.data))
        else:
            self.run_wall = max(self.run_wall, outcome.wall_s)
        self.worst_peak = max(self.worst_peak, (outcome.peak_mb, config.data))

    def report(self) -> None:
        print(f"\n== {self.verb}: {self.count} configs, exit statuses {dict(sorted(self.statuses.items()))}")
        if self.verb == "run":
            print(f"   reached the run (tasks planned and executed or cached): {self.reached}")
            print(f"   longest run that reached its tasks: {self.run_wall:.1f} s (not bounded: builds)")
        print(f"   violations: {len(self.violations)}")
        print(
            f"   CPU in this process: {self.cpu:.1f} s, "
            f"{self.cpu / max(self.count, 1) * 1000:.0f} ms per config"
        )
        print(f"   worst CPU: {self.worst_cpu[0]:.2f} s  config: {self.worst_cpu[1][-300:]!r}")
        print(f"   worst wall: {self.worst_wall[0]:.2f} s  config: {self.worst_wall[1][-300:]!r}")
        print(f"   worst peak RSS growth: {self.worst_peak[0]:.0f} MB  config: {self.worst_peak[1][:160]!r}")


def fuzz(
    verb: str, strategy: st.SearchStrategy[FuzzConfig], count: int, seed_: int, work: Workspace
) -> Tally:
    """`count` configs through plan; for run, configs until `count` reached the run (at most 3x)."""
    tally = Tally(verb)

    @seed(seed_)
    @settings(
        max_examples=count if verb == "plan" else count * 3,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(config: FuzzConfig) -> None:
        if verb == "run" and tally.reached >= count:
            return
        path = work.write(config)
        args = ["plan", str(path)] if verb == "plan" else ["run", str(path), "--out", str(work.out)]
        outcome = run_cli_in_process(args)
        # A run that reached its tasks exports and builds: the time bound is for handling the config.
        reached = verb == "run" and outcome.status in (0, 1) and "tasks" in outcome.stdout
        tally.add(config, outcome, check(outcome, path, timed=not reached))
        if tally.count % (500 if verb == "plan" else 20) == 0:
            print(f"  {verb}: {tally.count} configs, {len(tally.violations)} violations", flush=True)

    one()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", type=int, default=10_000, help="configs through plan")
    parser.add_argument("--run", type=int, default=200, help="configs that must reach run")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed after")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="trtbuild-fuzz-"))
    os.environ["TRTBUILD_CACHE_DIR"] = str(root / "cache")
    work = Workspace(root)
    pyc = "not written (PYTHONDONTWRITEBYTECODE=1)" if sys.dont_write_bytecode else "written and read"
    print(f"work folder {root}; .pyc files {pyc}; {os.cpu_count()} CPUs, load {os.getloadavg()}")
    work.warm_up()
    started = time.perf_counter()
    tallies = []
    try:
        if args.plan:
            tallies.append(fuzz("plan", fuzzed_configs(), args.plan, args.seed, work))
        if args.run:
            # Mostly runnable configs, and some of the general mutations; drawn until --run reach the run.
            mixed = st.one_of(runnable_configs(), runnable_configs(), runnable_configs(), fuzzed_configs())
            tallies.append(fuzz("run", mixed, args.run, args.seed, work))
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    for tally in tallies:
        tally.report()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"\nwall {time.perf_counter() - started:.0f} s; "
        f"worker processes' CPU {children.ru_utime + children.ru_stime:.0f} s,"
    )
    print(f"their largest peak RSS {children.ru_maxrss / 1024:.0f} MB; load now {os.getloadavg()}")
    return 1 if any(t.violations for t in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
