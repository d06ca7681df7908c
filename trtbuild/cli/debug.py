"""`trtbuild debug precision CONFIG --cell NAME`: find the nodes where a cell's low-precision error starts.

Runs the fp32 graph and the cell's graph on ONNX Runtime (CPU) with every tensor exposed, on the
cell's validation inputs, and names the first nodes whose output error passes the threshold while
their inputs' does not. `--write-exclusions` keeps those nodes in fp32 (autocast.exclude_nodes).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from trtbuild.cli.console import error_console, output_console, stdout_reserved_for_json
from trtbuild.errors import EXIT_OK, UsageError
from trtbuild.exec.events import TaskEvent
from trtbuild.spec.model import AUTOCAST_PRECISIONS
from trtbuild.units import human_seconds

if TYPE_CHECKING:
    from trtbuild.debug import precision as triage_module


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("debug", help="debugging tools (precision triage)", description=__doc__)
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    precision = tools.add_parser(
        "precision",
        help="name the nodes where a cell's low-precision error is introduced",
        description=__doc__,
    )
    precision.add_argument("config", type=Path, metavar="CONFIG", help="spec file (YAML)")
    precision.add_argument("--cell", required=True, metavar="NAME", help="the matrix cell to triage")
    precision.add_argument(
        "--threshold",
        type=_positive_float,
        default=None,
        help="relative error (max |diff| / max |fp32|) past which a node is reported (default 1e-2)",
    )
    precision.add_argument(
        "--top", type=_positive_int, default=None, help="report at most N nodes (default 5)"
    )
    precision.add_argument(
        "--write-exclusions",
        action="store_true",
        help="add the reported nodes to the config's autocast.exclude_nodes (fp16/bf16 cells)",
    )
    precision.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the content-addressed cache (default: $TRTBUILD_CACHE_DIR, else ~/.cache/trtbuild)",
    )
    precision.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    precision.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.json:
        with stdout_reserved_for_json() as stream:
            document = _triage(args)
            stream.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    _triage(args)
    return EXIT_OK


def _triage(args: argparse.Namespace) -> dict[str, Any]:
    # Imported when this verb runs, not when the CLI starts: every other verb's start-up (a no-op
    # `run` above all) would otherwise pay for the triage machinery it never uses.
    from trtbuild.debug import precision as triage_module
    from trtbuild.debug.exclusions import write_exclusions
    from trtbuild.debug.graphs import cell_graphs

    threshold = args.threshold if args.threshold is not None else triage_module.DEFAULT_THRESHOLD
    top = args.top if args.top is not None else triage_module.DEFAULT_TOP
    graphs = cell_graphs(args.config, args.cell, cache_dir=args.cache_dir, on_event=_progress)
    if args.write_exclusions and graphs.cell.precision not in AUTOCAST_PRECISIONS:
        # Checked before the comparison, which can take a while on a large model.
        raise UsageError(
            f"--write-exclusions edits autocast.exclude_nodes, which only fp16 and bf16 cells use; "
            f"cell {args.cell} is {graphs.cell.precision}"
        )
    report = triage_module.triage(graphs, threshold=threshold, top=top)
    document = report.to_json()
    if not args.json:
        _print_report(report)
    if args.write_exclusions:
        edit = write_exclusions(args.config, args.cell, [o.node for o in report.offenders])
        document["exclusions"] = {"added": edit.added, "already_excluded": edit.covered}
        _print_edit(args.config, edit.added, edit.covered, bool(report.offenders))
    return document


def _progress(event: TaskEvent) -> None:
    if event.state == "ran":
        error_console().print(f"  ran     {event.id}  {human_seconds(event.seconds)}", highlight=False)


def _print_report(report: triage_module.Triage) -> None:
    console = output_console()
    outputs = ", ".join(f"{name} {_error(error)}" for name, error in report.outputs.items())
    console.print(
        f"cell {report.cell} ({report.precision}) vs fp32: {report.compared} tensors compared on "
        f"{report.samples} sample(s); graph outputs: {outputs}",
        highlight=False,
    )
    if report.first_inf_nan is not None:
        console.print(_inf_nan_text(report.first_inf_nan), highlight=False)
    if report.constants:
        console.print(
            f"Constants {report.precision} cannot hold (Inf there; a mask's fill value such as "
            f"finfo(float32).min, say): {', '.join(report.constants)}. AutoCast converts constants "
            "whatever exclude_nodes says; they matter only where every value they mask is masked.",
            highlight=False,
        )
    if not report.offenders:
        console.print(f"No node introduces a relative error above {report.threshold:g}.")
        return
    table = Table(show_edge=False, box=None, pad_edge=False)
    for column in ("node", "op", "module", "error", "input error", "overflow", "Inf/NaN"):
        table.add_column(column)
    for offender in report.offenders:
        table.add_row(
            offender.node,
            offender.op_type,
            offender.module or "-",
            _error(offender.error),
            _error(offender.input_error),
            "[red]yes[/]" if offender.overflow else "no",
            _INF_NAN_COLUMN.get(offender.inf_nan or "", "-"),
        )
    console.print(table)
    more = report.introducing - len(report.offenders)
    console.print(
        f"{report.introducing} node(s) introduce Inf/NaN or a relative error above {report.threshold:g}"
        + (f"; {more} more not shown (--top)." if more > 0 else "."),
        highlight=False,
    )


# Where a node's Inf/NaN comes from, as the table says it.
_INF_NAN_COLUMN = {"output": "[red]its output[/]", "input": "[red]cast input[/]"}


def _inf_nan_text(first: triage_module.InfNan) -> str:
    """Where the overflow gate's first Inf/NaN comes from, and what keeping which node does."""
    where = f"Inf/NaN first appears in {first.tensor}"
    if first.in_fp32:
        return (
            f"{where} ({first.made_by}), where the fp32 graph holds Inf/NaN or float32's fill value "
            "(finfo.min) too: the model makes it, not the precision; keeping nodes in fp32 cannot "
            "remove it."
        )
    if first.made_by != first.node:
        return (
            f"{where}, made from a finite fp32 value by a Cast or Q/DQ the precision task added on "
            f"the way into {first.node} ({first.op_type}): keep {first.node} in fp32 and it reads "
            "the fp32 value."
        )
    return f"{where}, the output of {first.node} ({first.op_type}): keep it in fp32."


def _print_edit(config: Path, added: list[str], covered: list[str], any_offenders: bool) -> None:
    console = error_console()
    if added:
        console.print(
            f"Added to autocast.exclude_nodes in {config}: {', '.join(added)}\n"
            f"  `trtbuild run {config}` rebuilds the affected cells.",
            highlight=False,
        )
    if covered:
        console.print(f"Already kept in fp32 by exclude_nodes: {', '.join(covered)}", highlight=False)
    if not any_offenders:
        console.print("Nothing to exclude.")


def _error(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "inf (NaN/Inf)" if math.isinf(value) else f"{value:.3g}"


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
