"""Load a YAML config into plain Python objects, remembering where every node came from.

PyYAML's constructors throw marks away, so we compose the node graph ourselves and build dicts,
lists and scalars from it, recording the 1-based line/column of each node under its field path.

How marks are keyed (one dict, `dict[FieldPath, Location]`):

* `marks[path]` is the mark of the VALUE at `path`, e.g. `("export", "opset")` -> where `17` starts.
  The root document is `marks[()]`.
* `marks[path + (KEY_MARK,)]` is the mark of the mapping KEY that introduced `path`, e.g.
  `("export", "opsett", KEY_MARK)` -> where `opsett` is written, so an unknown-field error points at
  the key rather than at its value. Use `key_location()` instead of building that tuple by hand.

Two deliberate departures from PyYAML's YAML 1.1 resolution, so that trtbuild reads a file the way
editors' YAML 1.2 tooling (and the JSON Schema they validate it with) does:

* `1e-4`, `5E3` are floats (YAML 1.1 only knows floats with a dot, so PyYAML returns the string '1e-4').
* only true/false (any case) are booleans: `yes`, `no`, `on`, `off` stay strings; and dates stay
  strings (JSON has no date type, and no trtbuild field is a date).

Mapping keys are always the key's source text (`1:` gives the key "1"), because every key in a
trtbuild config is a name.

A config parsed before is not parsed again: `load_yaml(path, parsed)` keeps the document and its
marks as JSON under the digest of the file's bytes, this module's code and PyYAML's version
(`ParsedConfigs`, the store keeps them). A document holds only str keys and str, int, float, bool,
None, list and dict values, all of which JSON spells back exactly. Importing PyYAML (its regular
expressions compile at import: 18 ms) is then left to a config that changed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from trtbuild.errors import ConfigError, Location, Problem
from trtbuild.spec import yamlbounds
from trtbuild.spec.model import FieldPath, format_field_path
from trtbuild.spec.yamlbounds import check_yaml_bounds
from trtbuild.toolchain import version_of

if TYPE_CHECKING:
    import yaml
    from yaml.nodes import Node, ScalarNode

KEY_MARK = "<key>"

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_DROPPED_TAGS = (_BOOL, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")

# YAML 1.2 core schema floats that YAML 1.1 misses: an exponent without a dot.
_FLOAT_EXPONENT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class ParsedConfigs(Protocol):
    """Parsed configs by digest (the store keeps them between runs): JSON bytes, or None."""

    def get(self, digest: str) -> bytes | None: ...

    def put(self, digest: str, data: bytes) -> None: ...


@functools.cache
def _loader() -> type[yaml.SafeLoader]:
    """SafeLoader (C-accelerated when available) with YAML 1.2 floats and booleans."""
    import yaml

    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: type[yaml.SafeLoader] = type("_Loader", (base,), {})
    # add_implicit_resolver copies the inherited table on first use, so yaml.SafeLoader is untouched.
    loader.add_implicit_resolver(_FLOAT, _FLOAT_EXPONENT, list("-+0123456789."))
    loader.add_implicit_resolver(_BOOL, _BOOL_12, list("tTfF"))
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]] = loader.yaml_implicit_resolvers
    for first, resolvers in table.items():
        table[first] = [
            (tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS or regexp is _BOOL_12
        ]
    return loader


@functools.cache
def _scalar_constructors() -> dict[str, Callable[[ScalarNode], Any]]:
    from yaml.constructor import SafeConstructor

    scalars = SafeConstructor()
    # Called directly rather than through construct_object, which would cache every node it sees.
    return {
        _INT: scalars.construct_yaml_int,
        _FLOAT: scalars.construct_yaml_float,
        _BOOL: scalars.construct_yaml_bool,
    }


def location_of(node: Node, file: Path) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def key_location(marks: Mapping[FieldPath, Location], path: FieldPath) -> Location | None:
    """Where the key that introduced `path` is written, falling back to its value's mark."""
    return marks.get((*path, KEY_MARK)) or marks.get(path)


def problem_at(
    marks: Mapping[FieldPath, Location], path: FieldPath, message: str, hint: str, *, at_key: bool = False
) -> Problem:
    """A problem at `path` of a loaded document (at its key, for an entry that should not be there),
    or at its nearest ancestor with a mark: checks made before the document is normalised use it."""
    location = key_location(marks, path) if at_key else None
    for end in range(len(path), -1, -1):
        location = location or marks.get(path[:end])
    return Problem(message, location, format_field_path(path), hint)


def load_yaml(path: Path, parsed: ParsedConfigs | None = None) -> tuple[Any, dict[FieldPath, Location]]:
    """Parse `path` into plain dicts/lists/scalars plus the marks described in the module docstring;
    from `parsed` when these very bytes were parsed before (see the module docstring).

    Raises ConfigError (never a YAML or OS exception) for unreadable files, syntax errors, duplicate
    keys, unsupported tags, an empty document or a top level that is not a mapping.
    """
    data = _read(path)
    return _remembered(data, path, parsed, lambda: _parse(_text(data, path), path))


def _remembered(
    data: bytes,
    path: Path,
    parsed: ParsedConfigs | None,
    parse: Callable[[], tuple[Any, dict[FieldPath, Location]]],
) -> tuple[Any, dict[FieldPath, Location]]:
    """`parse()`'s result for `data`, from `parsed` when these bytes were parsed before."""
    digest = _parse_digest(data) if parsed is not None else ""
    if parsed is not None:
        remembered = _decode(parsed.get(digest), path)
        if remembered is not None:
            return remembered
    document, marks = parse()
    if parsed is not None and document is not None:
        with contextlib.suppress(TypeError, ValueError):  # not plain JSON: parsed again next time
            parsed.put(digest, _encode(document, marks))
    return document, marks


def _parse_digest(data: bytes) -> str:
    return hashlib.sha256(_parser_identity() + data).hexdigest()


@functools.cache
def _parser_identity() -> bytes:
    """What a parse depends on besides the bytes: this module's code, its bounds' and PyYAML's version."""
    own = hashlib.sha256(Path(__file__).read_bytes() + Path(yamlbounds.__file__).read_bytes()).hexdigest()
    return f"trtbuild parsed config 1\n{own}\n{version_of('PyYAML')}\n".encode()


def _encode(document: Any, marks: Mapping[FieldPath, Location]) -> bytes:
    spelled = [[list(path), at.line, at.column] for path, at in marks.items()]
    return json.dumps({"document": document, "marks": spelled}, allow_nan=True).encode()


def _decode(data: bytes | None, path: Path) -> tuple[Any, dict[FieldPath, Location]] | None:
    """A remembered parse, or None for no entry or one that is not what `_encode` writes."""
    if data is None:
        return None
    try:
        doc = json.loads(data)
        marks = {tuple(at): Location(path, line, column) for at, line, column in doc["marks"]}
        document = doc["document"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    # The bounds hold for what the cache hands back too: an entry past them is parsed again.
    return (document, marks) if isinstance(document, dict) and yamlbounds.within_bounds(document) else None


def _parse(text: str, path: Path) -> tuple[Any, dict[FieldPath, Location]]:
    root = _compose(text, path)
    if root is None:
        raise ConfigError(
            Problem(
                "the config file is empty",
                Location(path, 1, 1),
                hint=(
                    "a config needs at least `model`, `inputs` and `outputs`: start from "
                    "configs/resnet.yaml; `trtbuild schema` lists every field"
                ),
            )
        )
    if _kind(root) != "mapping":
        raise ConfigError(
            Problem(
                f"expected a mapping at the top level, found {_node_kind(root)}",
                location_of(root, path),
                hint="the top level holds fields such as `model:`, `inputs:` and `outputs:`, one per line",
            )
        )
    return _build(root, path)


def parse_yaml(
    data: bytes, path: Path, parsed: ParsedConfigs | None = None
) -> tuple[Any, dict[FieldPath, Location]]:
    """`data`, the bytes of `path`, read as a config is (bounds, YAML 1.2 scalars, marks; from
    `parsed` when parsed before), for a YAML file that is not a config (the project's
    `.trtbuild.yaml`): any top level, and an empty document (only comments) is None. ConfigError as
    load_yaml raises it."""
    return _remembered(data, path, parsed, lambda: _parse_any(_text(data, path), path))


def _parse_any(text: str, path: Path) -> tuple[Any, dict[FieldPath, Location]]:
    root = _compose(text, path)
    return (None, {}) if root is None else _build(root, path)


def _build(root: Node, path: Path) -> tuple[Any, dict[FieldPath, Location]]:
    builder = _Builder(path)
    value = builder.build(root, ())
    if builder.problems:
        raise ConfigError(builder.problems)
    return value, builder.marks


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            Problem(
                f"config file not found: {path}",
                hint="check the path; it is relative to the current directory",
            )
        ) from None
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read config {path}: {exc.strerror or exc}")) from None


def _text(data: bytes, path: Path) -> str:
    try:
        # Universal newlines, as reading the file as text did: marks count lines the same way.
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            Problem(
                f"the config is not valid UTF-8 (byte {exc.start})",
                Location(path, 1, 1),
                hint="save the file as UTF-8",
            )
        ) from None


def _compose(text: str, path: Path) -> Node | None:
    import yaml

    # Before composing: the builder below expands every alias, and every later walk recurses.
    check_yaml_bounds(text, path, _loader())
    try:
        node: Node | None = yaml.compose(text, Loader=_loader())
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_problem(exc, path, text)) from None
    except yaml.YAMLError as exc:  # e.g. a ReaderError for a control character: no problem_mark
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        raise ConfigError(
            Problem(f"invalid YAML: {exc}", Location(path, line, 1), hint="remove non-printable characters")
        ) from None
    return node


# Substrings of PyYAML's problem texts -> what usually causes them.
_SYNTAX_HINTS = (
    ("a tab", "YAML does not allow tabs for indentation; indent with spaces"),
    (
        "mapping values are not allowed",
        "a value containing ': ' must be quoted, or a key is indented too far",
    ),
    ("could not find expected ':'", "a key is missing its ':' or a quoted string is not closed"),
    ("expected a single document", "the file holds several YAML documents (---); keep one config per file"),
    ("found undefined alias", "an alias *name needs a matching anchor &name earlier in the file"),
    ("did not find expected key", "check the indentation: keys of one mapping must line up"),
    ("expected <block end>", "check the indentation: keys of one mapping must line up"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
    ("did not find expected ',' or ']'", "a [ list ] is not closed or lacks a comma"),
    ("did not find expected ',' or '}'", "a { mapping } is not closed or lacks a comma"),
)


def _syntax_problem(exc: yaml.MarkedYAMLError, path: Path, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
    message = "invalid YAML: " + "; ".join(part for part in (exc.context, exc.problem) if part)
    if mark and _tab_before(text, mark.line, mark.column) and "tab" not in message:
        # libyaml says "found character that cannot start any token" without naming the tab.
        message += " (a tab)"
    hint = next((h for needle, h in _SYNTAX_HINTS if needle in message), "check indentation and quoting here")
    if exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        hint += f" (the construct started at line {exc.context_mark.line + 1})"
    return Problem(message, location, hint=hint)


def _tab_before(text: str, line: int, column: int) -> bool:
    lines = text.splitlines()
    return line < len(lines) and "\t" in lines[line][: column + 1]


def _kind(node: Node) -> str:
    """ "scalar", "sequence" or "mapping": PyYAML's node classes name themselves in `id`, so nodes
    are told apart without importing yaml.nodes here."""
    return str(getattr(node, "id", ""))


def _node_kind(node: Node) -> str:
    if _kind(node) == "sequence":
        return "a list"
    if _kind(node) == "scalar":
        return f"the scalar {node.value!r}"
    return "a mapping"


class _Builder:
    """Turns a composed node graph into plain objects, collecting marks and problems."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.marks: dict[FieldPath, Location] = {}
        self.problems: list[Problem] = []
        self._active: set[int] = set()  # ids of nodes being built: an alias to one of them is a cycle

    def build(self, node: Node, path: FieldPath) -> Any:
        self.marks[path] = location_of(node, self.file)
        if id(node) in self._active:
            self._problem(node, path, "an alias refers to a node that contains it", "remove the cyclic alias")
            return None
        self._active.add(id(node))
        try:
            if _kind(node) == "mapping":
                return self._mapping(node, path)
            if _kind(node) == "sequence":
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: Node, path: FieldPath) -> dict[str, Any]:
        # Merge keys (`<<: *anchor`) first, so that keys written in the mapping itself override them
        # and their marks win.
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if _kind(key_node) == "scalar" and key_node.tag == _MERGE:
                result.update(self._merge(value_node, path))
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if _kind(key_node) == "scalar" and key_node.tag == _MERGE:
                continue
            if _kind(key_node) != "scalar":
                self._problem(key_node, path, "a mapping key must be a plain name", "write the key as text")
                continue
            key = str(key_node.value)
            if key in first_seen:
                self._duplicate(key, first_seen[key], key_node, path)
                continue
            first_seen[key] = key_node
            self.marks[(*path, key, KEY_MARK)] = location_of(key_node, self.file)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge(self, node: Node, path: FieldPath) -> dict[str, Any]:
        sources = node.value if _kind(node) == "sequence" else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as YAML's merge key spec says
            if _kind(source) != "mapping":
                self._problem(
                    source, path, "`<<` must merge a mapping (an alias to one)", "use `<<: *anchor`"
                )
            elif id(source) in self._active:
                self._problem(source, path, "a `<<` merge refers to a mapping that contains it", "remove it")
            else:
                self._active.add(id(source))
                merged.update(self._mapping(source, path))
                self._active.discard(id(source))
        return merged

    def _duplicate(self, key: str, first: Node, second: Node, path: FieldPath) -> None:
        where = format_field_path((*path, key))
        self.problems.append(
            Problem(
                f"duplicate key '{key}': first given at line {first.start_mark.line + 1}, "
                f"again at line {second.start_mark.line + 1}",
                location_of(second, self.file),
                where,
                hint="a key may appear once per mapping; delete or merge one of them",
            )
        )

    def _scalar(self, node: Node, path: FieldPath) -> Any:
        from yaml.constructor import ConstructorError

        if node.tag == _STR:
            return node.value
        if node.tag == _NULL:
            return None
        constructor = _scalar_constructors().get(node.tag)
        if constructor is not None:
            try:
                return constructor(cast("ScalarNode", node))
            except (ConstructorError, ValueError, KeyError):  # e.g. `!!int abc`
                self._problem(
                    node,
                    path,
                    f"not a valid {node.tag.rsplit(':', 1)[-1]}: {node.value!r}",
                    "write a plain value without a tag",
                )
                return None
        self._problem(node, path, f"unsupported YAML tag {node.tag}", "remove the tag; write a plain value")
        return None

    def _problem(self, node: Node, path: FieldPath, message: str, hint: str) -> None:
        self.problems.append(Problem(message, location_of(node, self.file), format_field_path(path), hint))
