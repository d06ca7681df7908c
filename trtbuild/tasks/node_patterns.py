"""`autocast.exclude_nodes` read the way ModelOpt AutoCast reads it.

AutoCast keeps a node in fp32 when `re.match(pattern, node.name)` succeeds
(modelopt/onnx/autocast/nodeclassifier.py, `DisabledNodeNameRegexRule`): a regular expression
anchored at the start of the name but not at its end. So `/Mul` also keeps `/Mul_1`, and `Mul` or
`energy/Mul` keeps nothing of `/energy/Mul`. A pattern that keeps nothing is almost always such a
slip, or a name from another export of the model; the precision task refuses it (see
`unmatched`), since a silently ignored exclusion leaves the node the user meant in fp16.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

ANCHORING = "AutoCast matches each pattern from the start of a node name (Python's re.match)"


@dataclass(frozen=True)
class Unmatched:
    index: int  # the pattern's position in exclude_nodes
    pattern: str
    hint: str  # the names it was probably meant for, and how to write it


def matches(pattern: str, name: str) -> bool:
    """Whether AutoCast keeps the node `name` in fp32 for `pattern`."""
    try:
        return re.match(pattern, name) is not None
    except re.error:
        return pattern == name


def exact_pattern(name: str) -> str:
    """The pattern that keeps exactly the node `name`."""
    return re.escape(name) + "$"


def quoted(pattern: str) -> str:
    """`pattern` as a YAML single-quoted scalar, the way `--write-exclusions` writes it: a hint's
    pattern pasted into the config is the pattern shown (Python's repr doubles each backslash, and
    `'/blk\\\\.0/Gemm$'` pasted between single quotes is a pattern that matches nothing)."""
    return "'" + pattern.replace("'", "''") + "'"


def regex_error(pattern: str) -> str | None:
    """Why `pattern` is not a regular expression, or None."""
    try:
        re.compile(pattern)
    except re.error as error:
        return str(error)
    return None


def unmatched(patterns: Sequence[str], names: Sequence[str]) -> list[Unmatched]:
    """The patterns that keep no node of a graph whose node names are `names`."""
    return [
        Unmatched(index, pattern, _hint(pattern, names))
        for index, pattern in enumerate(patterns)
        if not any(matches(pattern, name) for name in names)
    ]


def _hint(pattern: str, names: Sequence[str]) -> str:
    inside = [name for name in names if _searches(pattern, name)]
    if inside:
        shown = ", ".join(repr(name) for name in inside[:3])
        return (
            f"it matches inside {shown}, but {ANCHORING}: write the name from its start "
            f"({quoted(exact_pattern(inside[0]))} keeps exactly that node) or prefix the pattern with '.*'"
        )
    import difflib  # only a pattern that matches nothing needs suggestions

    close = difflib.get_close_matches(pattern.rstrip("$"), names, n=3, cutoff=0.5)
    if close:
        return f"close node names: {', '.join(repr(name) for name in close)} ({ANCHORING})"
    return f"{ANCHORING}; the graph's nodes include {', '.join(repr(name) for name in names[:3])}"


def _searches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False
