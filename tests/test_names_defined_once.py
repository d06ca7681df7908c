"""Task-kind names and backend names are spelled out in one place each.

The names come from the registries, at test time:
* task kinds: `kind.name for kind in trtbuild.tasks.pipeline.KINDS.values()`. A kind's name may be
  written in its own module, trtbuild/tasks/<name>.py (whose module-level `KIND` is that object),
  and in the registry, trtbuild/tasks/pipeline.py.
* backends: `trtbuild.backends.registry.BACKEND_NAMES`, written only in trtbuild/backends/registry.py.
Everywhere else (every trtbuild/**/*.py), code refers to them through those modules.

What is flagged, outside a name's homes: a str constant equal to a name that is
  (i) compared: an operand of a comparison (`==`, `!=`, `in`, `not in`, ...), directly or as an
      element of a tuple/list/set literal that is the operand; a `case "name":` of a `match` too;
 (ii) a key: a key of a dict literal, a subscript index (`KINDS["export"]`, `d["tensorrt"]`), or the
      key passed to `.get()`, `.pop()` or `.setdefault()`;
(iii) listed: an element of a tuple/list/set literal, or a key of a dict literal, that holds two or
      more names of the same registry making up more than half of its elements (a spelled-out
      list of kinds or backends: `("export", "simplify")`, `{"export": ..., "validate": ...}`).
A string anywhere else is left alone: messages, f-strings, docstrings, call arguments, defaults.

Kind names double as ordinary field names: every kind is also a section of the spec (`export:`,
`simplify:`, `precision:`, `build:`, `validate:`), and "precision" is also a cell's field, a task
param and a key of engine.json. So for a kind name, (i) and (ii) need evidence that the code is
about kinds, and a field of a document is not flagged:
* a comparison is flagged when another operand names something "kind" (an identifier containing
  "kind": `node.kind == "validate"`, `"build" in kinds`), not `axis == "precision"`;
* a subscript or `.get()` is flagged when the subscripted expression names something "kind"
  (`KINDS["export"]`, `kind_colours["build"]`), not `params["precision"]` or `document["build"]`;
* a dict key is flagged only under (iii), when the dict is keyed by kinds: `{"export": a,
  "validate": b}` is, `{"precision": cell.precision, "backend": b}` is not.
Backend names are no field's name, so (i) and (ii) flag them wherever they appear.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "trtbuild"
KIND_REGISTRY = "trtbuild/tasks/pipeline.py"
BACKEND_REGISTRY = "trtbuild/backends/registry.py"
LOOKUPS = {"get", "pop", "setdefault"}


@dataclass(frozen=True)
class Vocabulary:
    label: str  # "task kind", "backend"
    homes: Mapping[str, frozenset[str]]  # name -> the files (relative to the repository) that may write it
    # An identifier fragment that must appear on the other side of a comparison or in a subscripted
    # expression for a name to be flagged there (the names double as field names); None: always.
    evidence: str | None


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    label: str
    name: str
    why: str
    snippet: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.label} name {self.name!r} {self.why}: {self.snippet}"


def _mentions(expression: ast.AST, fragment: str) -> bool:
    """Whether an identifier in `expression` (a name or an attribute) contains `fragment`."""
    for node in ast.walk(expression):
        identifier = (
            node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        )
        if fragment in identifier.lower():
            return True
    return False


def find_spelled_out_names(source: str, path: str, vocabularies: Sequence[Vocabulary]) -> list[Finding]:
    """The names of `vocabularies` that `source` (the file at `path`) spells out, by the rules above."""
    lines = source.splitlines()
    found: dict[tuple[int, int], Finding] = {}

    def lookup(node: ast.AST | None) -> tuple[Vocabulary, str] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for vocabulary in vocabularies:
                if node.value in vocabulary.homes:
                    return vocabulary, node.value
        return None

    def flag(node: ast.AST | None, why: str, *, needs: ast.AST | None = None) -> None:
        """Flag `node` if it is a name written outside its homes; for a vocabulary that needs
        evidence, only if `needs` (the other side) mentions it."""
        hit = lookup(node)
        if hit is None or node is None:
            return
        vocabulary, name = hit
        if path in vocabulary.homes[name]:
            return
        if vocabulary.evidence is not None and (needs is None or not _mentions(needs, vocabulary.evidence)):
            return
        line = getattr(node, "lineno", 0)
        snippet = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        found.setdefault(
            (line, getattr(node, "col_offset", 0)), Finding(path, line, vocabulary.label, name, why, snippet)
        )

    def flag_lists(elements: Sequence[ast.expr | None], why: str) -> None:
        """(iii): elements of one literal holding two or more names of a vocabulary, over half of it."""
        elements = [element for element in elements if element is not None]
        for vocabulary in vocabularies:
            names = [element for element in elements if (hit := lookup(element)) and hit[0] is vocabulary]
            if len(names) >= 2 and 2 * len(names) > len(elements):
                for element in names:
                    hit = lookup(element)
                    assert hit is not None
                    if path not in vocabulary.homes[hit[1]]:
                        line = element.lineno
                        found.setdefault(
                            (line, element.col_offset),
                            Finding(path, line, vocabulary.label, hit[1], why, lines[line - 1].strip()),
                        )

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for index, operand in enumerate(operands):
                others = ast.Tuple(elts=operands[:index] + operands[index + 1 :], ctx=ast.Load())
                elements = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                for element in elements:
                    flag(element, "is compared", needs=others)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                for pattern in ast.walk(case.pattern):
                    if isinstance(pattern, ast.MatchValue):
                        flag(pattern.value, "is matched", needs=node.subject)
        elif isinstance(node, ast.Dict):
            flag_lists(node.keys, "is a key of a dict keyed by names")
            for key in node.keys:
                flag(key, "is a dict key")  # a kind name only under (iii), just above
        elif isinstance(node, ast.Subscript):
            flag(node.slice, "is a subscript", needs=node.value)
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOOKUPS
        ):
            if node.args:
                flag(node.args[0], f"is looked up with .{node.func.attr}()", needs=node.func.value)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            flag_lists(node.elts, "is listed with other names")
    return sorted(found.values(), key=lambda finding: (finding.path, finding.line, finding.snippet))


def registry_vocabularies() -> list[Vocabulary]:
    """The names, from the registries of the trtbuild in this checkout."""
    import trtbuild

    where = Path(trtbuild.__file__).resolve().parent
    assert where == PACKAGE.resolve(), f"trtbuild is imported from {where}, not {PACKAGE}: set PYTHONPATH"
    pipeline = importlib.import_module("trtbuild.tasks.pipeline")
    registry = importlib.import_module("trtbuild.backends.registry")

    kinds: dict[str, frozenset[str]] = {}
    for kind in pipeline.KINDS.values():
        name = kind.name
        module = importlib.import_module(f"trtbuild.tasks.{name}")
        assert getattr(module, "KIND", None) is kind, (
            f"task kind {name!r} is expected as the module-level KIND of trtbuild/tasks/{name}.py"
        )
        kinds[name] = frozenset({KIND_REGISTRY, f"trtbuild/tasks/{name}.py"})
    backends = {name: frozenset({BACKEND_REGISTRY}) for name in registry.BACKEND_NAMES}
    assert kinds, "trtbuild.tasks.pipeline.KINDS is empty"
    assert backends and all(isinstance(name, str) for name in backends), registry.BACKEND_NAMES
    return [Vocabulary("task kind", kinds, evidence="kind"), Vocabulary("backend", backends, evidence=None)]


def test_task_kind_and_backend_names_are_spelled_out_once() -> None:
    vocabularies = registry_vocabularies()
    findings: list[Finding] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        findings += find_spelled_out_names(path.read_text(encoding="utf-8"), relative, vocabularies)
    assert not findings, (
        "task-kind and backend names belong to their registries (trtbuild/tasks/pipeline.py and each "
        "kind's module; trtbuild/backends/registry.py): refer to them through those modules instead of "
        "spelling them out:\n" + "\n".join(str(finding) for finding in findings)
    )


# --- the checker, on planted source ---------------------------------------------------------------

PLANTED_KINDS = ("export", "simplify", "precision", "build", "validate")
PLANTED_BACKENDS = ("tensorrt", "tensorrt-rtx")
PLANTED = [
    Vocabulary(
        "task kind",
        {name: frozenset({KIND_REGISTRY, f"trtbuild/tasks/{name}.py"}) for name in PLANTED_KINDS},
        evidence="kind",
    ),
    Vocabulary("backend", {name: frozenset({BACKEND_REGISTRY}) for name in PLANTED_BACKENDS}, evidence=None),
]
# Each line is marked: `# flag` lines must be reported, every other line must not.
PLANTED_SOURCE = textwrap.dedent(
    '''
    """Docstring: export, then build; "validate" too."""
    import logging

    SHARED = ("export", "simplify")  # flag
    COLOURS = {"export": "#4c72b0", "validate": "#c44e52"}  # flag
    DOCUMENT = {"precision": 1}
    FIELDS = (
        "model", "inputs", "outputs", "export", "simplify", "profiles",
        "precision", "calibration", "build", "validate", "matrix",
    )
    ONE_BACKEND = ("tensorrt-cu13", "tensorrt-cu12", "tensorrt")
    BACKENDS = ("auto", "tensorrt", "tensorrt-rtx")  # flag


    def f(node, kinds, axis, params, document, x, d, KINDS, flavour):
        print("export failed")
        logging.info(f"{node.kind} export failed")
        if node.kind == "validate":  # flag
            pass
        if node.kind in ("export", "simplify"):  # flag
            pass
        if "build" in kinds:  # flag
            pass
        if axis == "precision" or params["precision"] != "fp32":
            pass
        entry = {"precision": x, "backend": flavour}
        section = document["build"]
        kind = KINDS["export"]  # flag
        found = KINDS.get("simplify")  # flag
        facts = d["tensorrt"]  # flag
        if flavour == "tensorrt-rtx":  # flag
            pass
        versions = {"tensorrt": x, "gpus": []}  # flag
        match node.kind:
            case "build":  # flag
                pass
        match axis:
            case "precision":
                pass
        return node("export", params)
    '''
)


def _flagged_lines(source: str, path: str) -> set[int]:
    return {finding.line for finding in find_spelled_out_names(source, path, PLANTED)}


def _marked_lines(source: str) -> set[int]:
    return {number for number, line in enumerate(source.splitlines(), start=1) if line.endswith("# flag")}


def test_checker_flags_spelled_out_names_and_not_fields_or_messages() -> None:
    assert _flagged_lines(PLANTED_SOURCE, "trtbuild/api.py") == _marked_lines(PLANTED_SOURCE)


def test_checker_examples() -> None:
    def flagged(line: str) -> bool:
        return bool(find_spelled_out_names(line, "trtbuild/api.py", PLANTED))

    assert flagged('node.kind == "validate"')
    assert flagged('("export", "simplify")')
    assert not flagged('{"precision": x}')
    assert not flagged('print("export failed")')


def test_checker_lets_names_live_at_home() -> None:
    source = (
        'SHARED = ("export", "simplify")\n'
        'if node.kind == "export":\n'
        "    pass\n"
        'B = ("tensorrt", "tensorrt-rtx")\n'
    )
    assert _flagged_lines(source, KIND_REGISTRY) == {4}
    assert _flagged_lines(source, BACKEND_REGISTRY) == {1, 2}
    # The export kind's own module may write "export", not "simplify".
    [finding] = find_spelled_out_names(source.splitlines()[0], "trtbuild/tasks/export.py", PLANTED)
    assert (finding.name, finding.line) == ("simplify", 1)
    assert str(finding) == (
        "trtbuild/tasks/export.py:1: task kind name 'simplify' is listed with other names: "
        'SHARED = ("export", "simplify")'
    )
