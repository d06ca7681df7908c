"""Nothing outside trtbuild/store/ builds cache paths (issue 14): the layout of a cache is the store's
business, so that a remote layer (or another layout) can sit behind the store protocol.

An AST check over every module of trtbuild/ outside store/: no path is joined onto a store's `root`
(`store.root / ...`, `the_plan.store.root.joinpath(...)`, `os.path.join(store.root, ...)`,
`Path(store.root, ...)`), and no string names one of the store's layout folders (`"cas"`, `"ac"`,
`"tmp"`, `"locks"`, `"validated"`, also as a segment such as `"ac/"` or in an f-string).
Naming `store.root` in a message is fine. Code that needs a file asks the store: `local_path`,
`materialize`, `temp_dir`, `lock`."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "trtbuild"
LAYOUT = frozenset({"cas", "ac", "tmp", "locks", "validated"})
JOINERS = frozenset({"joinpath", "join", "Path", "PurePath"})


def _is_root(node: ast.expr) -> bool:
    """`<something>.root`, except logging's root logger."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "root"
        and not (isinstance(node.value, ast.Name) and node.value.id == "logging")
    )


def _joins_onto_root(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _is_root(node.left) or _joins_onto_root(node.left)
    if isinstance(node, ast.Call):
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if name == "joinpath" and isinstance(function, ast.Attribute) and _is_root(function.value):
            return True
        return name in JOINERS and len(node.args) > 1 and _is_root(node.args[0])
    return False


def _names_layout(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    if node.value.startswith("/"):  # an absolute path ("/tmp") is the machine's, not a cache's
        return False
    return any(segment in LAYOUT for segment in node.value.split("/"))


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def cache_path_builders(package: Path) -> list[str]:
    """`file:line: code` of every place outside `package/store/` that builds a cache path."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            layout = _names_layout(node) and id(node) not in docstrings
            if layout or _joins_onto_root(node):
                line = getattr(node, "lineno", 0)
                found.append(f"{package.name}/{relative}:{line}: {ast.unparse(node)}")
    return found


def test_nothing_outside_the_store_builds_cache_paths() -> None:
    assert cache_path_builders(PACKAGE) == []


@pytest.mark.parametrize(
    ("module", "code"),
    [
        pytest.param("report/collect.py", "def planted(s):\n    return s.root / 'cas'\n", id="divide"),
        pytest.param("debug/graphs.py", "def planted(p):\n    return p.store.root / n\n", id="plan-store"),
        pytest.param("exec/local.py", "def planted(s):\n    return s.root.joinpath('x')\n", id="joinpath"),
        pytest.param("api.py", "def planted(s):\n    return os.path.join(s.root, 'x')\n", id="os-path"),
        pytest.param("plan/plan.py", "def planted(s):\n    return Path(s.root, 'x')\n", id="Path"),
        pytest.param("exec/local.py", "def planted(d, k):\n    return d / f'ac/{k}.json'\n", id="f-string"),
        pytest.param("report/collect.py", "def planted(d):\n    return d / 'tmp'\n", id="layout-name"),
    ],
)
def test_a_planted_cache_path_is_found(tmp_path: Path, module: str, code: str) -> None:
    copy = tmp_path / "trtbuild"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    lines = target.read_text().count("\n")
    target.write_text(target.read_text() + "\n\n" + code)
    found = cache_path_builders(copy)
    assert found, f"the planted code in {module} was not found"
    for where in found:  # only the planted lines, none of the real code
        assert where.startswith(f"trtbuild/{module}:") and int(where.split(":")[1]) > lines, found


def test_the_patterns_match_the_store_s_own_code() -> None:
    """store/store.py does build these paths (skipped, as it may): the patterns are not vacuous."""
    tree = ast.parse((PACKAGE / "store" / "store.py").read_text(encoding="utf-8"))
    assert any(_names_layout(node) for node in ast.walk(tree))
    assert any(_joins_onto_root(node) for node in ast.walk(tree))
