"""Benchmark: what the fp16 overflow scan costs next to the cell's ONNX Runtime comparison.

On the cell's graph and validate's own samples (the config's seeded samples, as the reference task
makes them), each in a fresh process, printing CPU seconds and peak RSS side by side:
- comparison: ONNX Runtime's own run of the graph (what an fp32 or int8 cell's comparison costs);
- shared run: the run with every tensor in its own type that serves an fp16 cell's comparison
  (validate v18), without the scan's checks;
- shared run + scan: what validate does for an fp16 cell now: a sample whose exposed tensors pass
  overflow_parts.PART_BYTES (1 GiB; ResNet-50's batch 32) runs in parts, each one run of
  the graph up to a slice's end, to bound the memory (validate v18 after issue 12's memory part);
- shared run + scan, one run (before): the same with every sample in one exposed run (v18 before
  the parts, but with the parts' arena-free session: main's kept ONNX Runtime's arena, 4477 MiB);
- separate scan (before): the scan as its own run, beside the comparison (validate v17; its
  finiteness check is today's, which no longer copies each tensor to float32, so "before" is a bit
  cheaper here than it was).
The scan's cost is (shared run + scan) - comparison now, and the separate scan before. Peak RSS is
the process's own: the parts exist for it (issue 12's target of 4 GiB for the cold run at -j 1).

Usage: python bench/overflow_scan.py GRAPH [--config configs/resnet.yaml] [--repeat 1]
GRAPH: the fp16 cell's model.onnx, e.g. build/resnet50/fp16/model.onnx after `trtbuild run`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ONE_RUN = "shared run + scan, one run (before)"
MODES = ("comparison", "shared run", "shared run + scan", ONE_RUN, "separate scan (before)")


def samples(config: Path) -> list[dict[str, Any]]:
    from trtbuild.spec.loader import load_specs
    from trtbuild.tasks import reference
    from trtbuild.tasks.pipeline import PIPELINE

    spec = load_specs([config], checks=PIPELINE.spec_checks)[0]
    params = reference.KIND.derive(spec.cells[0].view, spec.cells[0]).params
    return reference.random_samples(params.inputs, params.profiles, params.samples, params.seed, {})


def measure(mode: str, graph: Path, config: Path) -> dict[str, float]:
    """(In a fresh process.) One mode's work on every sample."""
    from trtbuild.tasks.onnx_tensors import Runner, cpu_session
    from trtbuild.tasks.onnx_tensors import load as load_onnx
    from trtbuild.tasks.overflow import ExposedRun, finite, overflow_starts

    feeds = samples(config)
    started = time.process_time()
    if mode == "comparison":
        session = cpu_session(str(graph))
        names = [output.name for output in session.get_outputs()]
        for sample in feeds:
            session.run(names, sample)
    elif mode == "separate scan (before)":
        model = load_onnx(graph)
        runner = Runner(model, "cell", "fp16")
        held = {i.name for i in model.graph.initializer if not finite(_array(i))}
        for sample in feeds:
            overflow_starts(model, dict(runner.run(sample)), held)
    else:
        model = load_onnx(graph)
        budget = {"part_bytes": 2**62} if mode == ONE_RUN else {}  # 2**62: no sample is split
        exposed = ExposedRun(graph, "fp16", [output.name for output in model.graph.output], **budget)
        for sample in feeds:
            exposed.run(sample, scanned=mode != "shared run")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": time.process_time() - started, "peak_rss_mib": usage.ru_maxrss / 1024}


def _array(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        print(json.dumps(measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("graph", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "resnet.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):  # the modes alternate: a load change hits them alike
        for mode in MODES:
            command = [sys.executable, __file__, "--inner", mode, str(args.graph.resolve()), str(args.config)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    cpu = {mode: statistics.median(r["cpu"] for r in runs) for mode, runs in results.items()}
    print(f"graph: {args.graph}, {len(samples(args.config))} samples from {args.config.name}, medians")
    print(f"load {os.getloadavg()}; {pyc_present()}")
    print(f"{'':36}{'CPU s':>8}{'peak RSS MiB':>14}")
    for mode, runs in results.items():
        print(f"{mode:36}{cpu[mode]:8.2f}{statistics.median(r['peak_rss_mib'] for r in runs):14.0f}")
    now = cpu["shared run + scan"] - cpu["comparison"]
    before = cpu["separate scan (before)"]
    print(f"scan / comparison: now {now / cpu['comparison']:.2f} (shared run + scan - comparison), ", end="")
    print(f"before {before / cpu['comparison']:.2f} (a separate scan)")
    one_run = cpu[ONE_RUN] - cpu["comparison"]
    print(
        f"scan / comparison, one exposed run per sample (before the parts): {one_run / cpu['comparison']:.2f}"
    )
    peak = {mode: statistics.median(r["peak_rss_mib"] for r in runs) for mode, runs in results.items()}
    print(f"peak RSS, parts / one run: {peak['shared run + scan'] / peak[ONE_RUN]:.2f}")


def pyc_present() -> str:
    caches = list((REPO / "trtbuild").rglob("__pycache__/*.pyc"))
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.flags.dont_write_bytecode
    return f"trtbuild .pyc files: {len(caches)}; PYTHONDONTWRITEBYTECODE={'set' if dont_write else 'unset'}"


if __name__ == "__main__":
    main()
