"""The package's architecture, enforced.

Two checks, both over every import statement in trtbuild/**/*.py as grimp reads them: imports at
module level, imports inside functions (`def f(): from trtbuild.spec import loader`) and imports
under `if TYPE_CHECKING:` all count. An upward import that only mypy sees is still a layering bug,
and a function-level import still ties two modules together. Imports of third-party libraries
(torch, onnx, ...) are not in the graph at all: only trtbuild-internal imports matter here.

1. The import-linter contracts in pyproject.toml ([tool.importlinter]):
   * `layers`: bottom to top, errors : units : toolchain : files (may import each other)
     < spec | store (independent) < backends < tasks < plan < exec < report | debug (independent)
     < api < cli < __main__. `exhaustive`: every child of trtbuild must be in a layer. toolchain and
     files are optional layers, so the contract holds before and after those modules exist.
   * `bare-root`: trtbuild/__init__.py imports nothing of the package.
   Run by hand: `PYTHONPATH=. lint-imports` in the repository root.

2. No import cycles between trtbuild modules (`find_import_cycles`). The layers contract cannot see a
   cycle inside one layer (spec.loader <-> spec.semantic), so this check looks at single modules:
   every module is a node, a package's `__init__` included, and every import is an edge. What counts:
   * `trtbuild.x/__init__` importing `trtbuild.x.y` (a re-export) while `trtbuild.x.y` imports
     `trtbuild.x.z` is NOT a cycle: no module reaches itself.
   * `trtbuild.x.y` importing the package `trtbuild.x` (`from trtbuild.x import Name`) while
     `trtbuild/x/__init__.py` imports `trtbuild.x.y` IS a cycle: importing `trtbuild.x.y` first runs
     the package's `__init__`, which imports `trtbuild.x.y` while that module is half-initialised.
     (`from trtbuild.x import y` where `y` is a submodule is an import of `trtbuild.x.y` and does
     not touch the package.)
   * Importing `trtbuild.a.b.c` from outside `trtbuild.a.b` also runs `trtbuild/a/__init__.py` and
     `trtbuild/a/b/__init__.py` first, so it is an edge to those packages too, not just to the module
     named (an implicit edge; reported with the line of the import that causes it).
   Import-linter's own `acyclic_siblings` contract is not used for this: it compares the children of
   each package squashed into packages, so it misses cycles through a package's own `__init__`, and
   it reports cycle breakers of its choosing (sometimes the legal direction) without line numbers.
   Run by hand: `PYTHONPATH=. python tests/test_architecture.py` in the repository root.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "pyproject.toml"
PACKAGE = "trtbuild"

# `lint-imports`, run by this interpreter (importlinter.cli has no __main__).
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
)
# Where a subprocess finds the package: grimp looks it up the same way (importlib.util.find_spec).
WHERE = "import importlib.util; print(importlib.util.find_spec('trtbuild').submodule_search_locations[0])"

Edges = dict[str, dict[str, str]]  # importer -> imported -> where (line numbers)


# --- the cycle check ----------------------------------------------------------------------------


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def import_edges(graph: Any) -> Edges:
    """Every import between modules in `graph` (a grimp ImportGraph), with its line numbers.

    Importing `a.b.c` from outside `a.b` first runs the `__init__` of every enclosing package the
    importer is not already inside, so those packages get an edge too.
    """
    edges: Edges = {module: {} for module in graph.modules}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            details = graph.get_import_details(importer=importer, imported=imported)
            lines = ", ".join(f"l.{line}" for line in sorted({d["line_number"] for d in details}))
            edges[importer][imported] = lines
            for package in _ancestors(imported):
                if package in graph.modules and not _is_within(importer, package):
                    implicit = f"{lines}: importing {imported} runs {package.replace('.', '/')}/__init__.py"
                    edges[importer].setdefault(package, implicit)
    return edges


def strongly_connected_components(edges: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of two or more modules, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, {})):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _shortest_cycle_through(
    start: str, members: set[str], edges: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """start -> ... -> start, staying inside one strongly connected component."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(edges[node]):
            if successor not in members:
                continue
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise AssertionError(f"{start} is on no cycle")  # cannot happen inside a component


def find_import_cycles(graph: Any) -> list[str]:
    """One entry per strongly connected component: its modules, then for each module a shortest
    cycle through it (duplicates dropped), one import per line with its line numbers."""
    edges = import_edges(graph)
    reports = []
    for component in strongly_connected_components(edges):
        members = set(component)
        cycles: list[list[str]] = []
        for module in component:
            cycle = _shortest_cycle_through(module, members, edges)[:-1]
            first = cycle.index(min(cycle))
            canonical = cycle[first:] + cycle[:first]
            if canonical not in cycles:
                cycles.append(canonical)
        text = [f"import cycle among {', '.join(component)}:"]
        for cycle in cycles:
            text.append("  " + " -> ".join([*cycle, cycle[0]]))
            for importer, imported in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
                text.append(f"      {importer} -> {imported} ({edges[importer][imported]})")
        reports.append("\n".join(text))
    return reports


def main() -> int:
    """Check the trtbuild found on sys.path; print where it is, then any cycles. Exit 1 on cycles."""
    import importlib.util

    import grimp

    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, f"{PACKAGE} is not importable"
    print(f"analysed: {spec.submodule_search_locations[0]}")
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=False, cache_dir=None)
    cycles = find_import_cycles(graph)
    for cycle in cycles:
        print(cycle)
    return 1 if cycles else 0


# --- running the checks on a tree ---------------------------------------------------------------


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)  # replaced, not prepended: no other trtbuild may come first
    env.pop("PYTHONSAFEPATH", None)
    return env


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=_env(root), capture_output=True, text=True, timeout=300
    )


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """The contracts in this repository's pyproject.toml, checked against the trtbuild in `root`."""
    return _run(["-c", LINT_IMPORTS, "--no-cache", "--no-logo", str(CONFIG)], root)


def cycle_check(root: Path) -> subprocess.CompletedProcess[str]:
    """This module's cycle check, run as a script against the trtbuild in `root`. Run as a script,
    sys.path[0] is tests/, which holds no trtbuild."""
    return _run([str(Path(__file__).resolve())], root)


def _analysed_package(root: Path) -> Path:
    where = _run(["-c", WHERE], root)
    assert where.returncode == 0, where.stderr
    return Path(where.stdout.strip()).resolve()


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.stdout}\n{result.stderr}"


@pytest.fixture
def copied_tree(tmp_path: Path) -> Path:
    """A copy of the package, analysed instead of the real one."""
    shutil.copytree(REPO / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    assert _analysed_package(tmp_path) == (tmp_path / PACKAGE).resolve()
    return tmp_path


def plant(root: Path, relative: str, code: str) -> int:
    """Add `code` to a module of the copied tree, after its `from __future__` import if any (else at
    the end), and return the line number of the planted line marked `# planted`."""
    path = root / PACKAGE / relative
    lines = path.read_text().splitlines() if path.exists() else []
    future = [i for i, line in enumerate(lines) if line.startswith("from __future__ import")]
    at = future[0] + 1 if future else len(lines)
    lines[at:at] = code.strip("\n").splitlines()
    path.write_text("\n".join(lines) + "\n")
    return next(i for i, line in enumerate(lines, start=1) if line.endswith("# planted"))


# --- the tests ----------------------------------------------------------------------------------


def test_checks_analyse_this_checkout() -> None:
    assert _analysed_package(REPO) == (REPO / PACKAGE).resolve()


def test_import_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, _output(result)
    assert "0 broken" in result.stdout, _output(result)


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        pytest.param(
            "spec/model.py",
            "import trtbuild.cli  # planted",
            ["trtbuild.spec is not allowed to import trtbuild.cli", "trtbuild.spec.model -> trtbuild.cli"],
            id="upward",
        ),
        pytest.param(
            "store/cas.py",
            "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            "    from trtbuild.plan.graph import Graph  # planted",
            [
                "trtbuild.store is not allowed to import trtbuild.plan",
                "trtbuild.store.cas -> trtbuild.plan.graph",
            ],
            id="type-checking",
        ),
        pytest.param(
            "tasks/base.py",
            "def _planted() -> None:\n    from trtbuild.exec import local  # planted",
            [
                "trtbuild.tasks is not allowed to import trtbuild.exec",
                "trtbuild.tasks.base -> trtbuild.exec.local",
            ],
            id="function-level",
        ),
        pytest.param(
            "spec/model.py",
            "from trtbuild.store import hashing  # planted",
            [
                "trtbuild.spec is not allowed to import trtbuild.store",
                "trtbuild.spec.model -> trtbuild.store.hashing",
            ],
            id="independent-sibling",
        ),
        pytest.param(
            "__init__.py",
            "from trtbuild import errors  # planted",
            ["trtbuild -> trtbuild.errors"],
            id="package-root",
        ),
    ],
)
def test_a_planted_import_breaks_the_contracts(
    copied_tree: Path, module: str, code: str, expected: list[str]
) -> None:
    line = plant(copied_tree, module, code)
    result = lint_imports(copied_tree)
    output = _output(result)
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, output
    assert f"{expected[-1]} (l.{line})" in output, output


def test_a_new_top_level_module_must_be_given_a_layer(copied_tree: Path) -> None:
    (copied_tree / PACKAGE / "misc.py").write_text('"""Planted: in no layer."""\n')
    result = lint_imports(copied_tree)
    assert result.returncode != 0, _output(result)
    assert "- trtbuild.misc" in result.stdout, _output(result)


def test_no_import_cycles() -> None:
    result = cycle_check(REPO)
    assert result.stdout.startswith(f"analysed: {(REPO / PACKAGE).resolve()}\n"), _output(result)
    assert result.returncode == 0, _output(result)


def test_a_planted_cycle_inside_one_package_is_found(copied_tree: Path) -> None:
    store = copied_tree / PACKAGE / "store"
    (store / "cycle_a.py").write_text(
        '"""Planted: half of a cycle."""\n\nfrom trtbuild.store import cycle_b\n'
    )
    (store / "cycle_b.py").write_text(
        '"""Planted: the other half, imported in a function."""\n\n\n'
        "def value() -> object:\n"
        "    from trtbuild.store import cycle_a\n\n"
        "    return cycle_a\n"
    )
    result = cycle_check(copied_tree)
    output = _output(result)
    assert result.stdout.startswith(f"analysed: {store.parent.resolve()}\n"), output
    assert result.returncode != 0, output
    assert "import cycle among trtbuild.store.cycle_a, trtbuild.store.cycle_b:" in output, output
    assert "trtbuild.store.cycle_a -> trtbuild.store.cycle_b (l.3)" in output, output
    assert "trtbuild.store.cycle_b -> trtbuild.store.cycle_a (l.5)" in output, output


def test_a_module_importing_its_own_package_is_a_cycle(copied_tree: Path) -> None:
    # trtbuild/store/__init__.py imports trtbuild.store.store, which imports trtbuild.store.roots.
    line = plant(copied_tree, "store/roots.py", "from trtbuild.store import Store  # planted")
    result = cycle_check(copied_tree)
    output = _output(result)
    assert result.returncode != 0, output
    assert f"trtbuild.store.roots -> trtbuild.store (l.{line})" in output, output


def _graph(imports: list[tuple[str, str]]) -> Any:
    import grimp

    graph = grimp.ImportGraph()
    for number, (importer, imported) in enumerate(imports, start=1):
        graph.add_import(importer=importer, imported=imported, line_number=number, line_contents="import ...")
    return graph


def test_a_package_re_exporting_its_modules_is_not_a_cycle() -> None:
    graph = _graph([("p", "p.x"), ("p", "p.x.y"), ("p.x.y", "p.x.z"), ("p.x", "p.x.y"), ("p.x.z", "p.w")])
    assert find_import_cycles(graph) == []


def test_cycles_through_a_package_init_are_found() -> None:
    # p.x.y imports the package p.x (a name it re-exports); p.x imports p.x.y.
    graph = _graph([("p", "p.x"), ("p.x", "p.x.y"), ("p.x.y", "p.x")])
    assert find_import_cycles(graph) == [
        "import cycle among p.x, p.x.y:\n"
        "  p.x -> p.x.y -> p.x\n"
        "      p.x -> p.x.y (l.2)\n"
        "      p.x.y -> p.x (l.3)"
    ]
    # p.a imports p.b.c, which runs p/b/__init__.py, which imports p.b.d, which imports p.a.
    graph = _graph([("p.a", "p.b.c"), ("p.b", "p.b.d"), ("p.b.d", "p.a")])
    [cycle] = find_import_cycles(graph)
    assert "p.a -> p.b (l.1: importing p.b.c runs p/b/__init__.py)" in cycle, cycle


if __name__ == "__main__":
    sys.exit(main())


def test_no_function_is_over_50_lines() -> None:
    """Functions fit on a screen: none in the package is longer than 50 lines (decorators aside)."""
    long = []
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 50:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)
