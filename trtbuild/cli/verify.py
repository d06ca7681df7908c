"""`trtbuild verify CONFIG...`: rebuild everything without the cache and compare with the lock."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from trtbuild import api
from trtbuild.cli.console import error_console, output_console, stdout_reserved_for_json
from trtbuild.tasks.validate import OUTPUT as VALIDATION


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser(
        "verify", help="rebuild from scratch and compare every artifact with the lock", description=__doc__
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
    for column in ("task", "artifact", "verdict", "sha256 (lock)"):
        table.add_column(column)
    for artifact in verification.artifacts:
        verdict = "[green]identical[/]" if artifact.identical else _difference(artifact)
        table.add_row(artifact.task, artifact.output, verdict, (artifact.locked or "")[:16])
    console = output_console()
    console.print(table)
    same = sum(a.identical for a in verification.artifacts)
    total = len(verification.artifacts)
    if same == total:
        console.print(f"All {total} artifacts are identical to the lock: the build is reproducible.")
    else:
        console.print(f"[bold red]{total - same} of {total} artifacts differ from the lock.[/]")
        console.print(
            "A task whose output differs is not deterministic, or an input or tool changed since the lock "
            "was written (`trtbuild plan --explain` says which); the rebuilt cells' validation: "
            + ", ".join(_validations(verification))
        )
    return verification.exit_status


def _difference(artifact: api.VerifiedArtifact) -> str:
    return "[bold red]not rebuilt[/]" if artifact.rebuilt is None else "[bold red]different[/]"


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
                "rebuilt": a.rebuilt,
                "identical": a.identical,
            }
            for a in verification.artifacts
        ],
        "validation": _validations(verification),
    }
