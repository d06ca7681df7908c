"""`--write-exclusions`: add node names to the config's `autocast.exclude_nodes`, editing its text.

A YAML round trip through a parser would drop the user's comments and layout, so this is a text
edit of the few lines involved; the result is loaded again with the normal loader, and on any
problem the original text is put back.

AutoCast matches `exclude_nodes` entries as regular expressions from the start of the node name
(`re.match`, see `tasks/node_patterns.py`), so a bare `/Mul` would also keep `/Mul_1` in fp32; each
name is written escaped and anchored (`/energy/Mul$`) to keep exactly the node triage named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trtbuild.errors import ConfigError, TrtbuildError, UsageError
from trtbuild.files import write_atomic
from trtbuild.spec.loader import load_spec
from trtbuild.tasks import node_patterns

_TOP_KEY = re.compile(r"^autocast\s*:(?P<rest>.*)$")
_CHILD_KEY = re.compile(r"^(?P<indent>[ ]+)exclude_nodes\s*:(?P<rest>.*)$")


@dataclass
class ExclusionEdit:
    added: list[str] = field(default_factory=list)  # patterns written
    covered: list[str] = field(default_factory=list)  # node names an existing pattern already matched


def write_exclusions(config: Path, cell_name: str, node_names: list[str]) -> ExclusionEdit:
    spec = load_spec(config)
    cell = next(c for c in spec.cells if c.name == cell_name)
    existing = list(cell.view.autocast.exclude_nodes)
    edit = ExclusionEdit()
    for name in dict.fromkeys(node_names):
        if any(node_patterns.matches(pattern, name) for pattern in existing + edit.added):
            edit.covered.append(name)
        else:
            edit.added.append(node_patterns.exact_pattern(name))
    if not edit.added:
        return edit
    original = config.read_text(encoding="utf-8")
    _write(config, add_to_text(original, edit.added))
    try:
        reloaded = load_spec(config)
    except ConfigError as error:
        _write(config, original)
        raise TrtbuildError(
            f"adding exclude_nodes made {config} invalid, so it was left unchanged; add by hand under "
            f"autocast.exclude_nodes: {', '.join(edit.added)}\n{error}"
        ) from error
    view = next(c for c in reloaded.cells if c.name == cell_name).view
    missing = [p for p in edit.added if p not in view.autocast.exclude_nodes]
    if missing:
        # The cell does not see the top-level list (a matrix axis sets autocast for it).
        _write(config, original)
        raise UsageError(
            f"cell {cell_name} does not take autocast.exclude_nodes from the top of {config} "
            f"(does the matrix set it?); left the config unchanged. Add by hand: {', '.join(missing)}"
        )
    return edit


def add_to_text(text: str, patterns: list[str]) -> str:
    """`text` with `patterns` appended to `autocast.exclude_nodes`, creating the keys if absent."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    top = next((i for i, line in enumerate(lines) if _TOP_KEY.match(line)), None)
    if top is None:
        items = "".join(f"    - {_quote(p)}\n" for p in patterns)
        return "".join(lines) + f"autocast:\n  exclude_nodes:\n{items}"
    raw = _TOP_KEY.match(lines[top]).group("rest")  # type: ignore[union-attr]
    rest = _value_text(raw)
    if rest.startswith("{"):
        lines[top] = _extend_flow_line(lines[top], raw, "autocast", patterns, mapping=True)
        return "".join(lines)
    if rest:
        raise UsageError(f"autocast: is not a mapping in the config ({rest!r}); fix it first")
    end = _block_end(lines, top, 0)
    children = [i for i in range(top + 1, end) if _is_content(lines[i])]
    indent = _indent(lines[children[0]]) if children else 2
    key = next(
        (i for i in children if (m := _CHILD_KEY.match(lines[i])) and len(m.group("indent")) == indent),
        None,
    )
    if key is None:
        items = "".join(f"{' ' * (indent + 2)}- {_quote(p)}\n" for p in patterns)
        lines.insert(top + 1, f"{' ' * indent}exclude_nodes:\n{items}")
        return "".join(lines)
    raw = _CHILD_KEY.match(lines[key]).group("rest")  # type: ignore[union-attr]
    rest = _value_text(raw)
    if rest.startswith("["):
        lines[key] = _extend_flow_line(lines[key], raw, "exclude_nodes", patterns, mapping=False)
        return "".join(lines)
    if rest:
        raise UsageError(f"autocast.exclude_nodes is not a list in the config ({rest!r}); fix it first")
    # A block list: its items may sit deeper than the key or, as YAML allows, at the key's indent.
    block: list[int] = []
    for i in range(key + 1, len(lines)):
        if not _is_content(lines[i]):
            continue
        deeper = _indent(lines[i]) > indent
        if not (deeper or (_indent(lines[i]) == indent and lines[i].lstrip().startswith("-"))):
            break
        block.append(i)
    dash = next((lines[i] for i in block if lines[i].lstrip().startswith("-")), None)
    prefix = " " * (_indent(dash) if dash else indent + 2)
    new = "".join(f"{prefix}- {_quote(p)}\n" for p in patterns)
    lines.insert((block[-1] if block else key) + 1, new)
    return "".join(lines)


def _extend_flow_line(line: str, value: str, key: str, patterns: list[str], *, mapping: bool) -> str:
    """Rewrite a one-line flow value (`{...}` or `[...]`), keeping the line's indent and comment."""
    body, comment = _split_comment(value)
    try:
        parsed = yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise UsageError(
            f"cannot edit `{key}:` in the config automatically (a flow value spread over several "
            f"lines?); add by hand under autocast.exclude_nodes: {', '.join(patterns)}"
        ) from error
    if mapping:
        if not isinstance(parsed, dict):
            raise UsageError(f"autocast: is not a mapping in the config ({body!r}); fix it first")
        parsed["exclude_nodes"] = [*parsed.get("exclude_nodes", []), *patterns]
    else:
        if not isinstance(parsed, list):
            raise UsageError(f"autocast.exclude_nodes is not a list in the config ({body!r}); fix it first")
        parsed = [*parsed, *patterns]
    flow = yaml.safe_dump(parsed, default_flow_style=True, width=1 << 30, sort_keys=False).strip()
    head = line[: line.index(":") + 1]
    return f"{head} {flow}{'  ' + comment if comment else ''}\n"


def _value_text(rest: str) -> str:
    """The value after `key:`, without a trailing comment."""
    return _split_comment(rest)[0]


def _split_comment(text: str) -> tuple[str, str]:
    """(value, comment): a `#` starts a comment at the start or after a space, outside quotes."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].strip(), text[index:].strip()
    return text.strip(), ""


def _block_end(lines: list[str], start: int, indent: int) -> int:
    for i in range(start + 1, len(lines)):
        if _is_content(lines[i]) and _indent(lines[i]) <= indent:
            return i
    return len(lines)


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _quote(pattern: str) -> str:
    # Single quotes: no escapes inside, so a regex's backslashes stay as they are.
    return "'" + pattern.replace("'", "''") + "'"


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its permissions: it is the user's file, edited in place."""
    write_atomic(path, text, fsync=False, keep_mode=True)
