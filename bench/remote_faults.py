"""Benchmark: what an S3 remote cache's faults cost a cold `trtbuild run` of the tiny model.

Side by side in this one run, each condition a cold run (empty local cache) of the same project,
repeated in turns (A, B, C, ... then again), medians of wall and CPU seconds (user+sys of the
trtbuild process tree, from RUSAGE_CHILDREN):

- no remote (the baseline);
- a healthy S3 remote (moto's server on 127.0.0.1, a fresh bucket per run: the run publishes);
- a second clone fully cached from that remote (what the remote saves);
- the remote down (a port nothing listens on), an endpoint answering 503 to everything, and one
  that accepts connections and never answers: each is one warning and a local build; the extra
  wall over the baseline is what the fault costs (at most ATTEMPTS * READ_TIMEOUT_S for a silent
  server, files.py).

Prints ratios to the baseline and whether .pyc files were present for trtbuild's modules.

Usage: python bench/remote_faults.py [--repeat N]       (needs moto[server], s3fs; 2-4 minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.remote.fault_servers import answering_503, never_answering  # noqa: E402
from tests.remote.s3 import (  # noqa: E402
    LOOPBACK,
    Clone,
    S3Remote,
    S3Server,
    aws_environment,
    copy_clone,
    free_port,
    make_clone,
    moto_server,
    run_clone,
)
from trtbuild.store.remote.files import ATTEMPTS  # noqa: E402
from trtbuild.store.remote.settings import READ_TIMEOUT_S  # noqa: E402

Endpoint = Callable[[], contextlib.AbstractContextManager[str]]


@contextlib.contextmanager
def _nothing_listens() -> Iterator[str]:
    yield f"http://{LOOPBACK}:{free_port()}"


@contextlib.contextmanager
def _first(manager: contextlib.AbstractContextManager[tuple[str, object]]) -> Iterator[str]:
    with manager as (endpoint, _):
        yield endpoint


def _measure(run: Callable[[], bool]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    assert run(), "a run failed or printed other than expected"
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclass(frozen=True)
class Condition:
    endpoint: Endpoint  # where the run's AWS_ENDPOINT_URL points
    bucket: Callable[[], S3Remote] | None  # a fresh bucket per run; None: the seed's
    warnings: int = 0
    cold: bool = True  # False: every task must come from the remote
    remote: bool = True  # False: the run is given no remote cache


def _conditions(server: S3Server) -> dict[str, Condition]:
    def moto() -> contextlib.AbstractContextManager[str]:
        return contextlib.nullcontext(server.endpoint)

    return {
        "no remote": Condition(moto, None, remote=False),
        "healthy S3 (publishes)": Condition(moto, server.new_bucket),
        "cached from S3": Condition(moto, None, cold=False),
        "remote down": Condition(_nothing_listens, None, warnings=1),
        "503 to everything": Condition(lambda: _first(answering_503()), None, warnings=1),
        "never answers": Condition(lambda: _first(never_answering()), None, warnings=1),
    }


def _run(condition: Condition, seed: Clone, seed_url: str, where: Path) -> bool:
    """One run of the condition in a new clone with an empty cache: whether it did what it should."""
    clone = copy_clone(seed, where, "clone")
    url = condition.bucket().url if condition.bucket else seed_url
    try:
        with condition.endpoint() as endpoint:
            done = run_clone(clone, url if condition.remote else None, aws_environment(endpoint))
        if done.completed.returncode == 0:
            ran = any(task["state"] == "ran" for task in json.loads(done.completed.stdout)["tasks"])
            if len(done.warnings) == condition.warnings and ran == condition.cold:
                return True
        print(done.completed.stderr, file=sys.stderr)
        return False
    finally:
        shutil.rmtree(where)  # a cold cache holds a 230 MB copy of the TensorRT packages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pyc = any((REPO / "trtbuild").rglob("__pycache__"))
    times: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="trtbuild-bench-remote-") as scratch:
        root = Path(scratch)
        with moto_server(root / "moto.log") as server:
            seed = make_clone(root, "seed")
            seed_bucket = server.new_bucket()
            published = run_clone(seed, seed_bucket.url, seed_bucket.environment())
            assert published.completed.returncode == 0, published.completed.stderr
            shutil.rmtree(seed.cache)
            conditions = _conditions(server)
            for index in range(args.repeat):  # in turns, so that load changes hit every condition
                for name, condition in conditions.items():
                    run = functools.partial(
                        _run, condition, seed, seed_bucket.url, root / f"{index}-{len(times.get(name, []))}"
                    )
                    times.setdefault(name, []).append(_measure(run))
    _report(times, args.repeat, pyc)


def _report(times: dict[str, list[tuple[float, float]]], repeat: int, pyc: bool) -> None:
    base_wall, base_cpu = (statistics.median(t[i] for t in times["no remote"]) for i in (0, 1))
    print(
        f"tiny model, cold local cache each run, {repeat} repetitions in turns, medians; "
        f"trtbuild .pyc files {'present' if pyc else 'absent'}; "
        f"ATTEMPTS={ATTEMPTS}, READ_TIMEOUT_S={READ_TIMEOUT_S}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'condition':<24} {'wall s':>7} {'cpu s':>7} {'wall/base':>9} {'cpu/base':>9} {'+wall s':>8}")
    for name, measured in times.items():
        wall, cpu = (statistics.median(t[i] for t in measured) for i in (0, 1))
        ratios = f"{wall / base_wall:9.2f} {cpu / base_cpu:9.2f} {wall - base_wall:8.2f}"
        print(f"{name:<24} {wall:7.2f} {cpu:7.2f} {ratios}")


if __name__ == "__main__":
    main()
