"""The shape of a lock's task entry, checked when the lock is read.

`--locked`, `plan --explain` and `verify` read every field of an entry; one of another shape
(`"tools": null`, `"inputs": []`, `"cells": 7`) would crash them far from the line to fix, or let a
check pass unread. So a lock with such an entry is unreadable, named with its task, field and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trtbuild.store.hashing import is_digest

_HEX = re.compile(r"[0-9a-f]{64}")  # sha256 hex: keys, and content hashes before lock format 3
BLAKE3_FORMAT = 3  # the first lock format whose content hashes are BLAKE3 digests (`blake3:<hex>`)

MISSING = "is missing"
Where = list[str | int]  # where in a value: object members by name, list items by index
# None when the value is right, else (where inside it, what is wrong).
Check = Callable[[Any], tuple[Where, str] | None]


@dataclass(frozen=True)
class Field:
    name: str
    check: Check
    optional: bool = False


def describe(value: Any) -> str:
    """A value as a message quotes it: short, and a container by its kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is(test: Callable[[Any], bool], expected: str) -> Check:
    return lambda value: None if test(value) else ([], f"is {describe(value)}, not {expected}")


def _each(member: Check, expected: str, container: type = dict) -> Check:
    """An object (or list) each of whose members passes `member`."""

    def check(value: Any) -> tuple[Where, str] | None:
        items: list[tuple[str | int, Any]]
        if isinstance(value, dict) and container is dict:
            items = list(value.items())
        elif isinstance(value, list) and container is list:
            items = list(enumerate(value))
        else:
            return [], f"is {describe(value)}, not {expected}"
        for name, item in items:
            wrong = member(item)
            if wrong is not None:
                return [name, *wrong[0]], wrong[1]
        return None

    return check


def _object(fields: Sequence[Field], expected: str) -> Check:
    """An object with these fields (others are allowed: a newer minor addition is not an error)."""

    def check(value: Any) -> tuple[Where, str] | None:
        if not isinstance(value, dict):
            return [], f"is {describe(value)}, not {expected}"
        for field in fields:
            if field.name not in value:
                if field.optional:
                    continue
                return [field.name], MISSING
            wrong = field.check(value[field.name])
            if wrong is not None:
                return [field.name, *wrong[0]], wrong[1]
        return None

    return check


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex(value: Any) -> bool:
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


_STRING = _is(lambda value: isinstance(value, str), "a string")
_INTEGER = _is(_integer, "an integer")
_SHA256 = _is(_hex, "a sha256 hex digest (64 characters 0-9a-f)")
_BLAKE3 = _is(is_digest, "a content digest (blake3: and 64 characters 0-9a-f)")
_ANY_OBJECT = _is(lambda value: isinstance(value, dict), "an object")


def _entry(content_hash: Check) -> Check:
    """What lock.py: lock_entry writes, as the comparisons read it, with content hashes of this shape."""
    output = _object((Field("hash", content_hash), Field("size", _INTEGER)), "an object of {hash, size}")
    return _object(
        (
            Field("kind", _STRING),
            Field("version", _INTEGER),
            Field("scheme", _INTEGER),
            Field("key", _SHA256),
            Field("params", _ANY_OBJECT),
            Field("tools", _ANY_OBJECT),
            Field("inputs", _each(_STRING, "an object of {input: content hash}")),
            Field("outputs", _each(output, "an object of {output: {hash, size}}")),
            Field("cells", _each(_STRING, "a list of cell names", list)),
            Field("reproducibility", _ANY_OBJECT, optional=True),
        ),
        "an object",
    )


_ENTRY = _entry(_BLAKE3)
_SHA256_ENTRY = _entry(_SHA256)  # formats 1 and 2: read so that a plain run can say it replaces them


def entry_problem(entry: Any, format_version: int) -> tuple[Where, str] | None:
    """(where, what is wrong) for the first field of a task entry of a lock of `format_version` that
    is missing or of another shape (where [] for an entry that is not an object), or None."""
    return (_ENTRY if format_version >= BLAKE3_FORMAT else _SHA256_ENTRY)(entry)


def spell(where: Where) -> str:
    """`outputs["model.onnx"]["hash"]`: the first name as it is, the rest as JSON subscripts."""
    if not where:
        return ""
    head, *rest = where
    return str(head) + "".join(f"[{json.dumps(name)}]" for name in rest)
