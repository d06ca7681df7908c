"""Benchmark: what a shared remote cache costs a builder and saves everyone else.

One config (default: configs/bert.yaml, three precisions) is run in subprocesses, each with an empty
local cache, side by side in this one run:

1. cold, no remote: the baseline build;
2. cold, publishing to an empty remote (write-through): the builder's overhead;
3. a second clone at another path with an empty local cache, served by that remote (read-through:
   every blob downloaded and hashed): what a teammate or CI job pays instead of building;
4. (shared folder) a third clone, cold, publishing to that remote after its entries were removed
   (its blobs kept): a writer that builds a task uploads every blob again, even those the remote
   holds (a blob of the right size may be damaged): compare with 2, which uploads them to an empty
   remote, and with 1.

Remotes: a shared folder (file://), and S3 when moto is installed (its standalone server, started
here on 127.0.0.1 and stopped after; loopback traffic only). Wall time and the CPU time of the
process tree (user + sys, from getrusage of the children) for each, the ratios against the cold
build, and the bytes moved.

Usage: python bench/remote_cache.py [--config PATH] [--no-s3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_run(config: Path, cache: Path, env: dict[str, str], *extra: str) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one `trtbuild run --json`, and its document."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "trtbuild", "run", str(config), "--json", *extra],
        cwd=config.parent,
        env={**env, "TRTBUILD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"trtbuild failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(completed.stdout)


def clone(source: Path, destination: Path) -> Path:
    """A copy of the config's folder (its model code beside it), without build output or lock."""
    shutil.copytree(
        source.parent, destination, ignore=shutil.ignore_patterns("build", "*.lock", "__pycache__")
    )
    return destination / source.name


def ran(document: dict) -> int:
    return sum(1 for task in document["tasks"] if task["state"] == "ran")


def remote_rows(config: Path, root: Path, url: str, env: dict[str, str], name: str) -> list[tuple]:
    publish = timed_run(
        clone(config, root / f"{name}-a"), root / f"{name}-cache-a", env, "--remote-cache", url
    )
    fetch = timed_run(clone(config, root / f"{name}-b"), root / f"{name}-cache-b", env, "--remote-cache", url)
    if ran(fetch[2]) != 0:
        raise SystemExit(f"{name}: the second clone ran {ran(fetch[2])} tasks; expected all cached")
    return [(f"{name}: cold, publishing", publish), (f"{name}: second clone, fetching", fetch)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "bert.yaml")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) remote")
    args = parser.parse_args()
    config = args.config.resolve()
    env = dict(os.environ)
    pyc = any(REPO.joinpath("trtbuild").rglob("*.pyc"))
    with tempfile.TemporaryDirectory(prefix="trtbuild-remote-bench-") as scratch:
        root = Path(scratch)
        rows = [("cold, no remote", timed_run(clone(config, root / "base"), root / "cache-base", env))]
        (root / "shared").mkdir()
        rows += remote_rows(config, root, f"file://{root / 'shared'}", env, "file")
        size = sum(p.stat().st_size for p in (root / "shared").rglob("*") if p.is_file())
        shutil.rmtree(root / "shared" / "ac")  # the blobs stay: a writer builds every task again
        again = clone(config, root / "file-c")
        url = f"file://{root / 'shared'}"
        rows.append(
            (
                "file: cold, blobs already there",
                timed_run(again, root / "cache-c", env, "--remote-cache", url),
            )
        )
        s3 = not args.no_s3 and _have_moto()
        if s3:
            from tests.remote.s3 import moto_server  # the tests' server: 127.0.0.1 only, stopped after

            with moto_server(root / "moto.log") as server:
                bucket = server.new_bucket()
                rows += remote_rows(config, root, bucket.url, bucket.environment(), "s3")
    cold_wall, cold_cpu = rows[0][1][0], rows[0][1][1]
    print(f"config: {config.relative_to(REPO) if config.is_relative_to(REPO) else config}")
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; .pyc files present: {pyc}")
    print(f"remote holds {size / 1e6:.1f} MB after publishing ({'S3 via moto too' if s3 else 'no S3 run'})")
    print(f"{'run':<32} {'wall s':>8} {'cpu s':>8} {'wall/cold':>10} {'cpu/cold':>9} {'tasks ran':>9}")
    for label, (wall, cpu, document) in rows:
        ratios = f"{wall / cold_wall:10.3f} {cpu / cold_cpu:9.3f}"
        print(f"{label:<32} {wall:8.2f} {cpu:8.2f} {ratios} {ran(document):9d}")


def _have_moto() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("moto", "boto3", "s3fs"))


if __name__ == "__main__":
    main()
