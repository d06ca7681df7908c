"""The naive pipeline: what a user's script does for ONE cell of a config, in its own process, with no
cache and nothing shared with the other cells. `bench/cold_matrix.py` runs it once per cell and
compares it with a cold `trtbuild run`.

    python bench/naive_pipeline.py CONFIG CELL --workdir DIR [--toolchains DIR]

Deliberate choices (so that it is the same work as trtbuild's, neither more nor less):
- Each stage is the very code trtbuild runs for it: the task kinds' `run` (trtbuild/tasks/*.py),
  called directly with the params their `derive` makes from the cell. So the libraries, their
  versions and settings are the same by construction: torch.onnx export with the config's exporter
  and opset; onnxsim; ModelOpt AutoCast (fp16/bf16) or ModelOpt int8/fp8 Q/DQ with the same 16
  seeded random calibration samples; the same TensorRT-RTX build (same profiles, targets, builder
  settings, in the same build worker subprocess); and the same validation work: the same seeded
  samples, the PyTorch fp32 reference, the ONNX Runtime comparison, the metrics and the fp16
  overflow scan. Writing those calls out by hand would only risk a difference in settings.
- What it does NOT use: trtbuild's planner, content-addressed store, action cache, lock and
  executor. Files go to a scratch folder; nothing is hashed, linked, stored or locked (trtbuild does
  all of that, and it counts against trtbuild).
- Per cell, everything runs again: the export, the simplify and the PyTorch reference are computed
  by each cell's process, as a per-cell script does. (That, and the process start-up with its
  imports of torch, onnx, ModelOpt and TensorRT, is what a per-cell script repeats.)
- It leaves out the shape probe (a trtbuild check a user's script would not have; trtbuild pays for
  it) and the report; no sleeps, no extra runs.
- Thread settings are the libraries' defaults, as in trtbuild (ONNX Runtime intra-op threads 0 =
  its own choice; torch's default).
- The build worker keeps its copy of the TensorRT-RTX packages in `--toolchains`; the benchmark
  passes one folder to all three cells, so the copy is made once, as in a cold trtbuild run (which
  makes it once in its store). Leaving it out would make the naive pipeline copy 230 MB per cell.

Prints one JSON line: the stages' seconds and the process's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trtbuild.spec.loader import load_specs
from trtbuild.tasks import probe
from trtbuild.tasks.base import TaskContext
from trtbuild.tasks.pipeline import PIPELINE, Stage


def run_cell(config: Path, cell_name: str, workdir: Path, toolchains: Path) -> dict[str, float]:
    """Every stage of the cell but the probe, in pipeline order; returns seconds per stage."""
    spec = load_specs([config], checks=PIPELINE.spec_checks)[0]
    cell = next(c for c in spec.cells if c.name == cell_name)
    made: dict[str, dict[str, Path]] = {}  # stage -> its outputs
    seconds: dict[str, float] = {}
    for stage in PIPELINE.stages:
        derived = stage.kind.derive(cell.view, cell)
        if derived is None or stage.name == probe.NAME:
            continue
        outdir = workdir / stage.name
        outdir.mkdir(parents=True)
        ctx: TaskContext[Any] = TaskContext(
            task_id=f"naive/{cell_name}/{stage.name}",
            params=derived.params,
            inputs={**derived.files, **_upstream(stage, made)},
            outdir=outdir,
            context=derived.context,
            toolchains=toolchains,
        )
        started = time.perf_counter()
        stage.kind.run(ctx)
        seconds[stage.name] = round(time.perf_counter() - started, 3)
        made[stage.name] = {name: outdir / name for name in stage.kind.outputs}
    return seconds


def _upstream(stage: Stage, made: dict[str, dict[str, Path]]) -> dict[str, Path]:
    """The stage's inputs from earlier stages, as the pipeline declares them."""
    inputs = {}
    for name, source in stage.inputs.items():
        found = next((made[s][source.output] for s in source.stages if s in made), None)
        if found is None and not source.optional:
            raise SystemExit(f"{stage.name}: no {source.output} from {source.stages}")
        if found is not None:
            inputs[name] = found
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("cell")
    parser.add_argument("--workdir", type=Path, required=True, help="an empty scratch folder")
    parser.add_argument(
        "--toolchains", type=Path, help="the build worker's package copies (default: in workdir)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    seconds = run_cell(
        args.config.resolve(), args.cell, args.workdir, args.toolchains or args.workdir / "toolchains"
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "cell": args.cell,
                "stages": seconds,
                "wall": round(time.perf_counter() - started, 3),
                "cpu": round(usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
