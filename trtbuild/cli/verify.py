"""`trtbuild verify CONFIG...`: rebuild everything without the cache and compare with the lock.

First, as `plan --locked` does on an empty cache, every task's key is compared with the lock's: a
key difference (an input, param or tool that is not what the lock records, or a lock entry edited
by hand) is listed, naming its task, and makes verify exit 1 even when the rebuilt bytes happen
to be the lock's. Then each output the lock records gets one verdict:
  identical                                  the rebuild made the lock's bytes
  not byte-reproducible (inputs identical)   same key as the lock (inputs, params, tools), other bytes,
                                             and the task marks its output as not byte-reproducible
                                             (in the lock or in the rebuild), or the two builds ran in
                                             different build environments
  not byte-reproducible (follows TASK/OUT)   the key differs only through inputs that got one of the
                                             not-byte-reproducible verdicts
  different                                  other bytes, for any other reason (the reason column says
                                             which key material changed, if any)
  not rebuilt                                the task failed, was skipped or is no longer planned
Exit status: 0 when every key agrees and every output is identical or not byte-reproducible; 1 when
a key differs or any output is different or not rebuilt; 2 for a config or lock that cannot be read
(no lock, unreadable, newer format).
verify leaves the cache and build/ alone: `trtbuild fsck CONFIG` re-hashes those.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from trtbuild import api
from trtbuild.cli.console import error_console, output_console, stdout_reserved_for_json
from trtbuild.plan.locked import DIFFERENT, IDENTICAL, NOT_REBUILT, short
from trtbuild.tasks.validate import OUTPUT as VALIDATION

VERDICT_STYLES = {IDENTICAL: "green", DIFFERENT: "bold red", NOT_REBUILT: "bold red"}


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser(
        "verify",
        help="rebuild from scratch and give every artifact of the lock a verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="spec files (YAML) with their locks")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="tasks run at once (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    progress = error_console()
    progress.print("Rebuilding every task in a temporary store (the cache is not used)...")
    if args.json:
        with stdout_reserved_for_json() as stream:
            verification = api.verify(args.configs, jobs=args.jobs)
            json.dump(to_json(verification), stream, indent=2, sort_keys=True)
            stream.write("\n")
        return verification.exit_status
    verification = api.verify(args.configs, jobs=args.jobs)
    table = Table(show_edge=False, box=None)
    for column in ("task", "artifact", "verdict", "lock", "rebuilt", "reason"):
        table.add_column(column)
    for a in verification.artifacts:
        style = VERDICT_STYLES.get(a.verdict, "yellow")
        verdict = f"[{style}]{escape(a.verdict)}[/]"
        table.add_row(a.task, a.output, verdict, short(a.locked), short(a.actual), escape(a.reason))
    console = output_console()
    console.print(table)
    _print_key_differences(verification)
    _print_summary(verification)
    return verification.exit_status


def _print_key_differences(verification: api.Verification) -> None:
    if not verification.key_differences:
        return
    console = output_console()
    count = len(verification.key_differences)
    console.print(f"[bold red]The keys differ from the lock ({count}):[/] (checked before the rebuild)")
    for line in verification.key_differences:
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(
        "  The lock does not record what this checkout builds from: if that change is intended, "
        "`trtbuild run CONFIG` updates the lock; review it with `git diff` and commit it."
    )


def _print_summary(verification: api.Verification) -> None:
    console = output_console()
    total = len(verification.artifacts)
    same = sum(a.verdict == IDENTICAL for a in verification.artifacts)
    failed = [a for a in verification.artifacts if not a.accepted]
    if same == total and verification.key_differences:
        console.print(f"All {total} artifacts are identical to the lock, but the keys above differ.")
        return
    if same == total:
        console.print(f"All {total} artifacts are identical to the lock: the build is reproducible.")
        return
    unrepeatable = total - same - len(failed)
    if unrepeatable:
        console.print(
            f"[yellow]{unrepeatable} of {total} artifacts are not byte-reproducible[/] (their inputs are "
            "the lock's; the reason column says why their bytes may differ)."
        )
    if failed:
        console.print(f"[bold red]{len(failed)} of {total} artifacts differ from the lock.[/]")
        console.print(
            "An input or tool changed since the lock was written (`trtbuild plan --locked` lists "
            "each difference), or a task is not deterministic; the rebuilt cells' validation: "
            + ", ".join(_validations(verification))
        )
    elif verification.key_differences:
        console.print(f"The other {same} are identical, but the keys above differ.")
    else:
        console.print(f"The other {same} are identical: the build matches the lock.")


def _validations(verification: api.Verification) -> list[str]:
    """Each rebuilt cell's verdict, from the task that made its validation.json."""
    events = {event.id: event for event in verification.run.events}
    verdicts = []
    for cell in verification.run.plan.graph.cells:
        for artifact in cell.artifacts:
            event = events.get(artifact.node_id)
            if artifact.filename == VALIDATION and event is not None:
                verdicts.append(f"{cell.cell} {event.meta.get('verdict', 'unknown')}")
    return verdicts


def to_json(verification: api.Verification) -> dict[str, Any]:
    return {
        "exit_status": verification.exit_status,
        "artifacts": [
            {
                "task": a.task,
                "output": a.output,
                "locked": a.locked,
                "rebuilt": a.actual,
                "identical": a.verdict == IDENTICAL,
                "verdict": a.verdict,
                "reason": a.reason,
            }
            for a in verification.artifacts
        ],
        "key_differences": verification.key_differences,
        "validation": _validations(verification),
    }
