"""`trtbuild fsck [CONFIG...]`: re-hash the cache, and the configs' outputs, trusting nothing.

A run checks what it reads cheaply: action entries by their own digest, blobs by the stat cache
(size, mtime, ctime, inode, device) and in full when it links them into build/. fsck re-hashes
everything instead: each blob against its name, each action entry against its digest and its
blobs, each remembered config against its checksum, and, for each CONFIG, each output under
build/<model>/<cell>/ against the hash its lock records. It finds what no metadata shows (bit rot).
Exit status: 0 when nothing is wrong, 1 naming each bad file, 2 for a config that cannot be read.
With --repair, bad files are removed: the next `trtbuild run` rebuilds or relinks them.
(`trtbuild verify` is another check: it rebuilds everything from scratch and compares with the lock.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trtbuild import api
from trtbuild.cli.console import error_console, output_console


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser(
        "fsck",
        help="re-hash the cache and the configs' outputs; name every bad file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("configs", nargs="*", type=Path, metavar="CONFIG", help="also check their outputs")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the content-addressed cache (default: $TRTBUILD_CACHE_DIR, else ~/.cache/trtbuild)",
    )
    parser.add_argument("--out", type=Path, default=Path("build"), help="the output folder (default build)")
    parser.add_argument("--repair", action="store_true", help="remove the bad files; the next run rebuilds")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    result = api.fsck(args.configs, cache_dir=args.cache_dir, out_dir=args.out, repair=args.repair)
    if args.json:
        print(json.dumps(to_json(result), indent=2, sort_keys=True))
        return result.exit_status
    checked = [f"{count} {what}" for what, count in result.store.checked.items()]
    if args.configs:
        checked.append(f"{result.outputs_checked} outputs under {args.out}")
    output_console().print(f"checked {', '.join(checked)}", markup=False, highlight=False)
    for path in result.missing:
        output_console().print(f"missing: {_shown(str(path))} (`trtbuild run` makes it)", markup=False)
    errors = error_console()
    for finding in result.findings:
        errors.print(f"bad: {_shown(str(finding.path))}: {_shown(finding.problem)}", markup=False)
    if result.findings:
        kept = sum(finding.kept for finding in result.findings)
        what_next = (
            "removed them: run `trtbuild run` to rebuild"
            if args.repair and not kept
            else f"{kept} could not be removed: run `trtbuild fsck --repair` where they can be written"
            if args.repair
            else "run `trtbuild fsck --repair` to remove them, then `trtbuild run` to rebuild"
        )
        errors.print(f"{len(result.findings)} bad file(s): {what_next}", markup=False)
    return result.exit_status


def to_json(result: api.FsckResult) -> dict[str, Any]:
    return {
        "checked": {**result.store.checked, "outputs": result.outputs_checked},
        "bad": [{"path": str(f.path), "problem": f.problem} for f in result.findings],
        "missing": [str(path) for path in result.missing],
        "exit_status": result.exit_status,
    }


def _shown(text: str) -> str:
    """Control characters escaped: a path may hold a config's model or cell name."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
