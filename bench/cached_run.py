"""Benchmark: a fully cached `trtbuild run` against a cold one and against `import torch`.

Prints ratios measured side by side in this one run (medians of several repetitions):
- cached run / cold run: what the content-addressed cache saves;
- cached run / `python -c "import torch"`: a no-op run must cost less than importing torch, which
  it never does.

Usage: python bench/cached_run.py [--repeat N] [--config PATH]   (default: the tiny test model)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import TINY_CONFIG, TINY_MODEL


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--config", type=Path, default=None, help="a config to benchmark instead of the tiny model"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trtbuild-bench-") as scratch:
        root = Path(scratch)
        if args.config is None:
            (root / "tinynet.py").write_text(TINY_MODEL)
            config = root / "tiny.yaml"
            config.write_text(TINY_CONFIG)
        else:
            config = args.config.resolve()
        trtbuild = [sys.executable, "-m", "trtbuild", "run", str(config), "--out", str(root / "build")]
        cold, cached = [], []
        for index in range(args.repeat):
            env = {**os.environ, "TRTBUILD_CACHE_DIR": str(root / f"cache{index}")}
            cold.append(timed(trtbuild, root, env))
            cached.append(timed(trtbuild, root, env))
        torch_import = [
            timed([sys.executable, "-c", "import torch"], root, dict(os.environ)) for _ in range(args.repeat)
        ]
    cold_s, cached_s, torch_s = (statistics.median(v) for v in (cold, cached, torch_import))
    print(f"config: {config.name}, {args.repeat} repetitions, medians")
    print(f"  cold run           {cold_s:8.3f} s")
    print(f"  fully cached run   {cached_s:8.3f} s")
    print(f"  import torch       {torch_s:8.3f} s")
    print(f"ratio cached/cold         {cached_s / cold_s:6.3f}")
    print(f"ratio cached/import-torch {cached_s / torch_s:6.3f}  (< 1: a no-op run never imports torch)")


if __name__ == "__main__":
    main()
