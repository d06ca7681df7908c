"""Bounds on what a YAML config may expand to, checked on the parser's event stream before any node
is built.

Aliases let a file of a kilobyte describe billions of values (`a: &a [x, x]`, `b: &b [*a, *a]` ...,
the "billion laughs"); merge keys (`<<: *a`) do the same to mappings; and nesting a few hundred
levels deep exhausts Python's recursion in every walk of the document (schema validation, the
matrix, JSON). The event stream is flat and aliases are events, so one pass knows, for every
anchor, how many nodes and how many levels it stands for, and stops at the first event that goes
past a bound: a config error at that event's line, in milliseconds, before anything is expanded.
The characters of scalars are bounded too: an anchor on a long string repeated by aliases is a few
objects in memory, but every JSON spelling of the document (the parse cache, keys) writes it out
in full: a 176 KB config (a 100,000-character string, 19,000 aliases) left a 1.8 GB file in the
cache and ended in a MemoryError.

Both bounds are far above any real config: trtbuild's own examples have a few hundred nodes and
nest 6 levels deep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import ConfigError, Location, Problem

if TYPE_CHECKING:
    import yaml
    from yaml.events import Event

MAX_NODES = 20_000  # scalars, lists and mappings (keys included), aliases expanded
MAX_DEPTH = 40  # levels of lists and mappings, aliases expanded
MAX_CHARS = 1_000_000  # characters of scalars (keys included), aliases expanded


@dataclass
class _Open:
    """A list or mapping whose end event has not come yet."""

    anchor: str | None
    nodes: int = 1
    height: int = 1
    chars: int = 0


def check_yaml_bounds(text: str, path: Path, loader: type[yaml.SafeLoader]) -> None:
    """Raise ConfigError at the first event past MAX_NODES or MAX_DEPTH. Syntax errors are left to
    the composer, which words them: this pass stops quietly at one."""
    import yaml

    try:
        _scan(yaml.parse(text, Loader=loader), path)
    except yaml.YAMLError:
        return


def _scan(events: object, path: Path) -> None:
    from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

    sizes: dict[str, tuple[int, int, int]] = {}  # anchor -> (nodes, height, chars) it stands for
    stack: list[_Open] = []
    total = chars = 0
    for event in events:  # type: ignore[attr-defined]
        if isinstance(event, CollectionStartEvent):
            total += 1
            stack.append(_Open(event.anchor))
            _check(total, len(stack), chars, event, path)
        elif isinstance(event, CollectionEndEvent) and stack:
            done = stack.pop()
            if done.anchor is not None:
                sizes[done.anchor] = (done.nodes, done.height, done.chars)
            _add(stack, done.nodes, done.height, done.chars)
        elif isinstance(event, (ScalarEvent, AliasEvent)):
            # An alias to an anchor not (yet) known is an error the composer reports; count it as one.
            if isinstance(event, AliasEvent):
                nodes, height, length = sizes.get(event.anchor or "", (1, 1, 0))
            else:
                nodes, height, length = 1, 1, len(event.value)
                if event.anchor is not None:
                    sizes[event.anchor] = (1, 1, length)
            total += nodes
            chars += length
            _check(total, len(stack) + height, chars, event, path)
            _add(stack, nodes, height, length)


def _add(stack: list[_Open], nodes: int, height: int, chars: int) -> None:
    if stack:
        stack[-1].nodes += nodes
        stack[-1].height = max(stack[-1].height, height + 1)
        stack[-1].chars += chars


def _check(total: int, depth: int, chars: int, event: Event, path: Path) -> None:
    mark = event.start_mark
    at = Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path, 1, 1)
    if chars > MAX_CHARS:
        raise ConfigError(
            Problem(
                f"the config expands to more than {MAX_CHARS:,} characters of text (aliases and "
                "`<<` merges counted as what they repeat)",
                at,
                hint="a trtbuild config holds a few thousand characters: remove the aliases that "
                "repeat long strings, or shorten the value here",
            )
        )
    if total > MAX_NODES:
        raise ConfigError(
            Problem(
                f"the config expands to more than {MAX_NODES:,} values (lists, mappings and scalars, "
                "aliases and `<<` merges counted as what they repeat)",
                at,
                hint="a trtbuild config needs a few hundred values: remove the aliases that repeat "
                "other aliases, or split the config",
            )
        )
    if depth > MAX_DEPTH:
        raise ConfigError(
            Problem(
                f"the config nests lists and mappings more than {MAX_DEPTH} levels deep "
                "(aliases counted as what they repeat)",
                at,
                hint="no trtbuild field nests that deep: flatten the value here",
            )
        )


def within_bounds(document: Any) -> bool:
    """Whether a document (a remembered parse, not re-checked on the event stream) keeps the
    bounds. Iterative: a document past them must not exhaust the recursion checking it."""
    stack = [(document, 1)]
    nodes = chars = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        chars += len(value) if isinstance(value, str) else 0
        if nodes > MAX_NODES or depth > MAX_DEPTH or chars > MAX_CHARS:
            return False
        if isinstance(value, dict):
            stack += [(key, depth + 1) for key in value] + [(item, depth + 1) for item in value.values()]
        elif isinstance(value, list):
            stack += [(item, depth + 1) for item in value]
    return True
