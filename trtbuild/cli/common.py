"""Arguments several verbs share."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="spec files (YAML)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the content-addressed cache (default: $TRTBUILD_CACHE_DIR, else ~/.cache/trtbuild)",
    )
    parser.add_argument("--only", nargs="+", default=[], metavar="CELL", help="only these matrix cells")
    parser.add_argument("--no-cache", action="store_true", help="run every task; still store the results")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
