"""`trtbuild gc`: free cache entries that no lock file and no recent run references."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trtbuild.cli.console import output_console
from trtbuild.store import Store, default_cache_dir
from trtbuild.store.gc import GcReport, collect_garbage
from trtbuild.units import human_bytes


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser(
        "gc",
        help="free cache entries no lock file or recent run needs",
        description=__doc__
        + " Everything the lock files beside your configs name is kept, plus the keep-last newest runs and"
        " runs younger than max-age; anything touched in the last hour is spared.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the content-addressed cache (default: $TRTBUILD_CACHE_DIR, else ~/.cache/trtbuild)",
    )
    parser.add_argument(
        "--keep-last",
        type=non_negative(int),
        default=3,
        metavar="N",
        help="keep the N newest runs (default 3)",
    )
    parser.add_argument(
        "--max-age",
        type=non_negative(float),
        default=14.0,
        metavar="DAYS",
        help="also keep runs younger than DAYS days (default 14; 0 keeps only the --keep-last newest)",
    )
    parser.add_argument(
        "--grace",
        type=non_negative(float),
        default=3600.0,
        metavar="SECONDS",
        help="spare entries touched this recently: a run in progress may be using them (default 3600; "
        "a run marks the entries it reads at most every 10 minutes, so keep it well above 600)",
    )
    parser.add_argument("--dry-run", action="store_true", help="remove nothing; say what would be freed")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = Store(args.cache_dir if args.cache_dir is not None else default_cache_dir())
    report = collect_garbage(
        store,
        keep_last=args.keep_last,
        max_age_days=args.max_age,
        grace_seconds=args.grace,
        dry_run=args.dry_run,
    )
    if args.json:
        print(json.dumps({"cache_dir": str(store.root), **report.to_json()}, indent=2, sort_keys=True))
    else:
        output_console().print(summary(report), highlight=False)
    return 0


def summary(report: GcReport) -> str:
    """E.g. "freed 412.3 MiB: 14 action entries, 9 blobs (kept 11 entries, 8 blobs for 1 lock and 3 runs)"."""
    verb = "would free" if report.dry_run else "freed"
    text = (
        f"{verb} {human_bytes(report.bytes_freed)}: {_count(report.actions_removed, 'action entry')}, "
        f"{_count(report.blobs_removed, 'blob')}"
    )
    if report.temp_removed:
        text += f", {_count(report.temp_removed, 'temp leftover')}"
    if report.validated_removed:
        text += f", {_count(report.validated_removed, 'validated-config marker')}"
    if report.toolchains_removed:
        text += f", {_count(report.toolchains_removed, 'unused toolchain copy')}"
    text += (
        f" (kept {_count(report.actions_kept, 'entry')}, {_count(report.blobs_kept, 'blob')}"
        f" for {_count(report.locks_kept, 'lock')} and {_count(report.runs_kept, 'run')})"
    )
    if report.bytes_still_linked:
        text += (
            f"; {human_bytes(report.bytes_still_linked)} more comes back once the build directories that"
            " link those blobs are deleted"
        )
    return text


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {plural}"


def non_negative(kind: type[int] | type[float]) -> Any:
    """An argparse ``type`` that parses ``kind`` and refuses negatives (argparse then exits with 2)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
