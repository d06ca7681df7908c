"""`trtbuild graph CONFIG`: the task graph as Mermaid or Graphviz dot, with each task's state."""

from __future__ import annotations

import argparse
from typing import Any

from trtbuild import api
from trtbuild.cli.common import add_config_arguments


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("graph", help="print the task graph (mermaid or dot)", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--format", choices=("mermaid", "dot"), default="mermaid", help="default: mermaid")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    the_plan = api.plan(args.configs, cache_dir=args.cache_dir, only=args.only, use_cache=not args.no_cache)
    print(render_mermaid(the_plan) if args.format == "mermaid" else render_dot(the_plan), end="")
    return 0


def _nodes(the_plan: api.Plan) -> list[tuple[str, str, str, list[str]]]:
    """(short id, label, state, upstream short ids) per task, in graph order."""
    short = {node_id: f"t{index}" for index, node_id in enumerate(the_plan.graph.nodes)}
    return [
        (
            short[node.id],
            node.id,
            the_plan.statuses[node.id].state,
            sorted({short[dep.node_id] for dep in node.deps.values()}),
        )
        for node in the_plan.graph.nodes.values()
    ]


def render_mermaid(the_plan: api.Plan) -> str:
    lines = ["flowchart LR"]
    for short, label, state, upstream in _nodes(the_plan):
        lines.append(f'  {short}["{label}"]:::{state}')
        lines += [f"  {source} --> {short}" for source in upstream]
    lines.append("  classDef cached fill:#e8f5e9,stroke:#2e7d32")
    lines.append("  classDef run fill:#fff3e0,stroke:#ef6c00")
    return "\n".join(lines) + "\n"


def render_dot(the_plan: api.Plan) -> str:
    colours = {"cached": "#e8f5e9", "run": "#fff3e0"}
    lines = ["digraph trtbuild {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled"];']
    for short, label, state, upstream in _nodes(the_plan):
        lines.append(f'  {short} [label="{label}\\n{state}", fillcolor="{colours[state]}"];')
        lines += [f"  {source} -> {short};" for source in upstream]
    lines.append("}")
    return "\n".join(lines) + "\n"
