"""`trtbuild schema`: print the spec's JSON Schema (for editors and other tools)."""

from __future__ import annotations

import argparse
from importlib import resources
from typing import Any


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("schema", help="print the config JSON Schema", description=__doc__)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    print(resources.files("trtbuild.spec").joinpath("trtbuild.schema.json").read_text(), end="")
    return 0
