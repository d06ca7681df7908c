"""`trtbuild run CONFIG...`: build everything that is out of date."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trtbuild import api
from trtbuild.cli.common import add_config_arguments
from trtbuild.cli.console import error_console, output_console, stdout_reserved_for_json
from trtbuild.cli.remote import add_remote_arguments, remote_settings
from trtbuild.cli.report import print_comparisons
from trtbuild.cli.terminal import Table, Terminal, escape
from trtbuild.errors import LockMismatch, UsageError
from trtbuild.exec.events import TaskEvent
from trtbuild.exec.protocol import EXECUTORS
from trtbuild.exec.ray.cluster import RaySettings
from trtbuild.tasks.precision_record import MOSTLY, RECORD
from trtbuild.units import human_bytes, human_seconds, human_share

STATE_STYLES = {"ran": "green", "cached": "dim", "failed": "bold red", "skipped": "yellow"}
SUMMARY_DETAILS = 10  # a failure's detail lines repeated in the final summary


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("run", help="build everything out of date", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="tasks run at once (default 1; with --executor ray, at least the cluster's CPUs)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="after a failure, run what does not depend on it"
    )
    parser.add_argument(
        "--out", type=str, default="build", metavar="DIR", help="artifacts go to DIR/<model>/<cell>/"
    )
    parser.add_argument(
        "--locked",
        action="store_true",
        help="fail (exit 1) before running anything if the plan's keys or cached outputs differ from "
        "the lock, and after the run if a task made another key or other bytes than the lock records "
        "(a notice for outputs marked not byte-reproducible); never writes the lock",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where tasks run: worker processes on this machine (local, the default), or the nodes of "
        "a Ray cluster (ray: needs the ray extra; see README, Running on a cluster)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="with --executor ray: the cluster's head node (its GCS address); default: start a Ray "
        "instance on this machine for this run. A cluster needs a --remote-cache its nodes reach",
    )
    add_remote_arguments(parser)
    parser.set_defaults(handler=handle)


def ray_settings(args: argparse.Namespace) -> RaySettings | None:
    if args.executor != "ray":
        if args.ray_address:
            raise UsageError("--ray-address is for --executor ray: add it, or drop --ray-address")
        return None
    return RaySettings(args.ray_address or None)


def handle(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {args.jobs}")
    if args.json:
        with stdout_reserved_for_json() as stream:
            try:
                result = _run(args, progress=error_console())
            except LockMismatch as mismatch:  # nothing ran: still the one document, with the why
                json.dump(mismatch_json(mismatch), stream, indent=2, sort_keys=True)
                stream.write("\n")
                raise
            json.dump(to_json(result), stream, indent=2, sort_keys=True)
            stream.write("\n")
        return result.exit_status
    result = _run(args, progress=error_console())
    print_summary(result, output_console())
    return result.exit_status


def _run(args: argparse.Namespace, progress: Terminal) -> api.RunResult:
    def on_event(event: TaskEvent) -> None:
        style = STATE_STYLES[event.state]
        seconds = f"  {human_seconds(event.seconds)}" if event.state == "ran" else ""
        why = f"  ({escape(event.reason)})" if event.state in ("failed", "skipped") else ""
        progress.print(f"  [{style}]{event.state:<7}[/] {event.id}{seconds}{why}", highlight=False)
        for detail in event.details:
            progress.print(f"            {detail}", markup=False, highlight=False)
        for warning in event.warnings:
            progress.print(f"            [yellow]warning:[/] {warning}", highlight=False)

    return api.run(
        args.configs,
        cache_dir=args.cache_dir,
        out_dir=args.out,
        jobs=args.jobs,
        keep_going=args.keep_going,
        use_cache=not args.no_cache,
        only=args.only,
        on_event=on_event,
        locked=args.locked,
        remote=remote_settings(args),
        ray=ray_settings(args),
    )


def print_summary(result: api.RunResult, console: Terminal) -> None:
    counts = {state: sum(1 for e in result.events if e.state == state) for state in STATE_STYLES}
    total = len(result.events)
    if counts["ran"] == 0 and counts["cached"] == total:
        console.print(f"Nothing to do: all {total} tasks are cached.")
    else:
        seconds = sum(e.seconds for e in result.events)
        parts = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        console.print(f"{total} tasks: {parts} ({human_seconds(seconds)} of task time)")
    for notice in result.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)
    if result.lock_differences:
        console.print(f"[bold red]The run differs from the lock ({len(result.lock_differences)}):[/]")
        for line in result.lock_differences:
            console.print(f"  {line}", markup=False, highlight=False)
    _print_cells(result, console)
    _print_cells_not_run(result, console)
    print_comparisons(result.reports, console)
    if result.gate_failures:
        table = Table(title="Validation gates failed", title_style="bold red")
        for column in ("cell", "candidate", "output", "metric", "value", "threshold"):
            table.add_column(column)
        for failure in result.gate_failures:
            table.add_row(
                *(
                    _cell_text(failure.get(c, ""))
                    for c in ("cell", "candidate", "output", "metric", "value", "threshold")
                )
            )
        console.print(table)
        for hint in _triage_hints(result):
            console.print(hint, highlight=False)
    # A failure's message is in the comparison table's notes above, once; what the library said
    # with it (the parser's other nodes, the builder's errors, the hint) scrolled past with the
    # progress lines, so it follows here: the summary is where the user looks.
    for event in result.failed_tasks:
        if event.details:
            console.print(f"[bold red]{event.id}[/] failed; with it:", highlight=False)
        for detail in event.details[:SUMMARY_DETAILS]:
            console.print(f"  {detail}", markup=False, highlight=False)
        if len(event.details) > SUMMARY_DETAILS:
            console.print(f"  ... {len(event.details) - SUMMARY_DETAILS} more above", highlight=False)
    _print_next_step(result, counts["ran"], console)


def _print_next_step(result: api.RunResult, ran: int, console: Terminal) -> None:
    """What to do about a failure: a lock difference is not fixed by running again."""
    if result.lock_differences:
        console.print(
            "The lock was left alone. If these differences are intended (a changed input or tool), run "
            "without --locked to update the lock, review it with `git diff` and commit it; if not, "
            "`trtbuild verify CONFIG` rebuilds from scratch and gives each artifact a verdict.",
            highlight=False,
        )
    failed = result.failed_tasks or result.gate_failures
    if failed and ran:
        console.print("Finished tasks are cached: fix the cause and run again to continue.")
    elif failed:
        console.print("Nothing was built: fix the cause and run again.")


def _triage_hints(result: api.RunResult) -> list[str]:
    """The command that names the nodes behind a low-precision cell's failed gate. Not for a NaN in
    the PyTorch reference (the inputs are the cause: `values:`) or a low-precision share (AutoCast's
    choice, listed in precision.json): triage finds neither."""
    hints: dict[str, None] = {}
    for failure in result.gate_failures:
        if failure.get("candidate") not in ("onnxruntime", "engine"):
            continue
        node = result.plan.graph.nodes.get(failure.get("task", ""))
        if node is None or getattr(node.params, "precision", "fp32") == "fp32":
            continue
        for cell in result.plan.graph.cells:
            if cell.model == node.model and cell.cell in node.cells:
                command = f"trtbuild debug precision {cell.config} --cell {cell.cell}"
                hints[f"  hint: `{command}` names the nodes where the error or Inf/NaN starts"] = None
    return list(hints)


def _cell_text(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_cells(result: api.RunResult, console: Terminal) -> None:
    events = {e.id: e for e in result.events}
    for cell in result.plan.graph.cells:
        directory = result.out_dir / cell.model / cell.cell
        engine = directory / "model.engine"
        if not engine.exists():
            continue
        validation = next(
            (events.get(a.node_id) for a in cell.artifacts if a.filename == "validation.json"), None
        )
        verdict = _verdict(validation)
        precision = next((events.get(a.node_id) for a in cell.artifacts if a.filename == RECORD), None)
        console.print(
            f"[bold]{cell.model}/{cell.cell}[/]: {engine} ({human_bytes(engine.stat().st_size)}), "
            f"{directory / 'engine.json'}; validation {verdict}{_shares(precision)}",
            highlight=False,
        )


def _print_cells_not_run(result: api.RunResult, console: Terminal) -> None:
    models: dict[str, list[str]] = {}
    for cell in result.cells_not_run:
        models.setdefault(cell.model, []).append(cell.cell)
    for model, cells in models.items():
        console.print(
            f"[bold]{model}[/]: not run in this invocation (--only): {escape(', '.join(cells))}; "
            "the report shows them as the cache holds them",
            highlight=False,
        )


def _shares(event: TaskEvent | None) -> str:
    """How much of the cell is in its precision (not said of fp32 cells: nothing was converted)."""
    share = event.meta.get("share") if event is not None else None
    if event is None or not share:
        return ""
    nodes, weights = share.get("nodes"), share.get("weights")
    style = "yellow" if any(v is not None and v < MOSTLY for v in (nodes, weights)) else "default"
    return (
        f"; [{style}]{event.meta.get('precision')} in {human_share(nodes)} of nodes, "
        f"{human_share(weights)} of weights[/]"
    )


def _verdict(event: TaskEvent | None) -> str:
    if event is None or event.state not in ("ran", "cached"):
        return "not run"
    styles = {
        "passed": "[green]passed[/]",
        "failed": "[bold red]failed[/]",
        "unverified": "[yellow]unverified[/]",
    }
    # The executor took the verdict from the hash-checked validation.json (tasks/base.py: gate_verdict).
    passed = styles.get(str(event.meta.get("verdict")), styles["failed"])
    engine = event.meta.get("engine")
    return f"{passed} (ONNX Runtime vs PyTorch; engine run {engine})" if engine else passed


def mismatch_json(mismatch: LockMismatch) -> dict[str, Any]:
    """`run --locked --json` when the plan differs from the lock: to_json's shape, nothing run."""
    return {
        "exit_status": mismatch.exit_status,
        "tasks": [],
        "cells": [],
        "gate_failures": [],
        "notices": [],
        "lock_differences": mismatch.differences,
        "reports": [],
    }


def to_json(result: api.RunResult) -> dict[str, Any]:
    return {
        "exit_status": result.exit_status,
        "tasks": [event.to_json() for event in result.events],
        "cells": [
            {
                "model": cell.model,
                "cell": cell.cell,
                "config": str(cell.config),
                "dir": str(result.out_dir / cell.model / cell.cell),
                "artifacts": [artifact.filename for artifact in cell.artifacts],
            }
            for cell in result.plan.graph.cells
        ],
        "gate_failures": result.gate_failures,
        "notices": result.notices,
        "lock_differences": result.lock_differences,
        "reports": [str(path) for path in result.reports],
    }
