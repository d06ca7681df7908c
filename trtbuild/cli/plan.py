"""`trtbuild plan CONFIG...`: what would run and why, running nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trtbuild import api
from trtbuild.cli.common import add_config_arguments
from trtbuild.cli.console import output_console
from trtbuild.cli.remote import add_remote_arguments, remote_settings
from trtbuild.cli.terminal import Table, Terminal, escape
from trtbuild.tasks.code import CodeIdentity


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("plan", help="show the task graph and what would run", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--explain",
        action="store_true",
        help="say why each task must run (the param, input or tool that changed) and which files of "
        "your code the keys hash",
    )
    parser.add_argument(
        "--locked",
        action="store_true",
        help="compare every task's key (and the cached outputs' hashes) with the lock, on an empty "
        "cache too; exit 1 listing each difference, 0 when the plan agrees; never writes the lock",
    )
    add_remote_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    the_plan = api.plan(
        args.configs,
        cache_dir=args.cache_dir,
        only=args.only,
        use_cache=not args.no_cache,
        remote=remote_settings(args),
    )
    # The checks `run` makes before starting (a model factory that does not exist, a missing
    # backend): a plan that says "would run" must not hide what `run` refuses. Like run, it checks
    # only kinds with tasks to run, so a fully cached plan still imports no torch.
    api.preflight(the_plan)
    reasons = api.explain_plan(the_plan) if args.explain else None
    code = api.explain_code(the_plan) if args.explain else None
    check = api.lock_check(the_plan) if args.locked else None
    if args.json:
        document = to_json(the_plan, reasons)
        if code is not None:
            document["code"] = {
                model: [{"field": name, **identity.as_json()} for name, identity in uses]
                for model, uses in code.items()
            }
        if check is not None:
            document["lock"] = {"differences": check.differences, "notices": check.notices}
        print(json.dumps(document, indent=2, sort_keys=True))
        return check.exit_status if check is not None else 0
    table = Table(rule=False)
    for column in ("task", "state", "why", "inputs from", "cells"):
        table.add_column(column)
    for node in the_plan.graph.nodes.values():
        status = the_plan.statuses[node.id]
        state = "[dim]cached[/]" if status.state == "cached" else "[green]will run[/]"
        upstream = ", ".join(dict.fromkeys(dep.node_id for dep in node.deps.values())) or "-"
        why = "\n".join(reasons[node.id]) if reasons else status.reason
        table.add_row(node.id, state, why, upstream, ", ".join(node.cells))
    console = output_console()
    console.print(table)
    if code is not None:
        print_code(console, code)
    count = len(the_plan.to_run())
    console.print(
        f"{count} of {len(the_plan.statuses)} tasks would run." if count else "Everything is cached."
    )
    for note in the_plan.store.notes():  # what a remote cache holds
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if check is None:
        return 0
    print_lock_check(console, check)
    return check.exit_status


def print_lock_check(console: Terminal, check: api.LockCheck) -> None:
    for notice in check.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)
    if not check.differences:
        console.print("The plan agrees with the lock.")
        return
    console.print(f"[bold red]The plan differs from the lock ({len(check.differences)}):[/]")
    for line in check.differences:
        console.print(f"  {line}", markup=False, highlight=False)
    console.print("  hint: run without --locked to rebuild and update the lock, then commit it")


def print_code(console: Terminal, code: dict[str, list[tuple[str, CodeIdentity]]]) -> None:
    """The user's code the keys hash, per model and config field; what the walk did not follow."""
    console.print("Your code, hashed into the keys (following imports, up to installed packages):")
    for model, uses in code.items():
        for name, identity in uses:
            first, *rest = identity.describe()
            console.print(f"  {model} {name}: {first}", markup=False, highlight=False)
            for line in rest:
                console.print(f"    {line}", markup=False, highlight=False)


def to_json(the_plan: api.Plan, reasons: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "id": node.id,
                "kind": node.kind,
                "model": node.model,
                "cells": node.cells,
                "state": the_plan.statuses[node.id].state,
                "reason": the_plan.statuses[node.id].reason,
                **({"reasons": reasons[node.id]} if reasons else {}),
                "key": the_plan.statuses[node.id].key,
                "deps": sorted({dep.node_id for dep in node.deps.values()}),
            }
            for node in the_plan.graph.nodes.values()
        ]
    }
