"""`trtbuild report CONFIG...`: write build/<model>/report.{json,md,html} from what the cache holds."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trtbuild import api
from trtbuild.cli.console import output_console
from trtbuild.cli.terminal import Table, Terminal, escape
from trtbuild.exec.owners import check_owners
from trtbuild.report import load_report, write_reports
from trtbuild.report import table as rows

# Wide and the same in every cell of a run: report.md and report.html keep it.
TERMINAL_OMITS = {"backend"}
TONE_STYLES = {"": "", "ok": "green", "bad": "bold red", "warn": "yellow", "muted": "dim"}


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser(
        "report", help="write the per-model comparison reports (json, md, html)", description=__doc__
    )
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="spec files (YAML)")
    parser.add_argument(
        "--out", type=str, default="build", metavar="DIR", help="reports go to DIR/<model>/ (default build)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the content-addressed cache (default: $TRTBUILD_CACHE_DIR, else ~/.cache/trtbuild)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Runs nothing: cells whose tasks are not in the cache are reported as not built.
    the_plan = api.plan(args.configs, cache_dir=args.cache_dir)
    # A folder another config's runs own keeps its report: the same config error as `run`'s.
    notices = check_owners(the_plan.specs, Path(args.out))
    paths = write_reports(the_plan, None, Path(args.out))
    console = output_console()
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}", highlight=False)
    print_comparisons(paths, console)
    for path in paths:
        console.print(str(path), markup=False, highlight=False)
    return 0


def print_comparisons(paths: Iterable[Path], console: Terminal) -> None:
    """The comparison table of each report.json among `paths` (what `run` prints at its end)."""
    for path in paths:
        if path.name == "report.json":
            console.print(comparison_table(load_report(path)))


def comparison_table(report: dict[str, Any]) -> Table:
    """The report's comparison table for a terminal: report.md's, less the backend column."""
    headers = rows.headers(report)
    keep = [i for i, header in enumerate(headers) if header not in TERMINAL_OMITS]
    table = Table(
        title=f"{report['model']}: comparison across cells",
        caption="\n".join(note.text for note in rows.notes(report)),
    )
    for i in keep:
        table.add_column(headers[i], no_wrap=i == 0)
    for row in rows.rows(report):
        table.add_row(*(_styled(row[i]) for i in keep))
    return table


def _styled(entry: rows.Entry) -> str:
    return f"[{TONE_STYLES[entry.tone]}]{escape(entry.text)}[/]" if entry.tone else escape(entry.text)
