"""What user code is, for keys: local files by content, installed distributions by version.

The model's module is followed through its imports, read statically (`ast`, nothing is imported): a
helper module beside it, a sibling package, a namespace package (a folder without `__init__.py`) are
keyed by the content of each file the model can reach; the first module outside the project (in
site-packages or the standard library) ends the walk and is keyed by its distribution's version.
Dynamic imports (`importlib.import_module(name)` with a computed name) are not seen.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from trtbuild.spec.source import ModuleLocation, distribution_version, locate_module


def code_identity(module: str, search_path: list[str], prefix: str) -> tuple[str | None, dict[str, Path]]:
    """(package, files) identifying the code of dotted `module`.

    `package` is "name==version" of the distribution that provides `module` when it is installed;
    `files` maps `<prefix><path relative to its search-path entry>` to every local source file the
    module reaches, so a key does not depend on where the project lives.
    """
    location = locate_module(module, search_path)
    if location is not None and location.installed:
        top_level = module.split(".")[0]
        version = distribution_version(top_level)
        return (f"{top_level}=={version}" if version else top_level), {}
    files: dict[str, Path] = {}
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for prefix_name in _self_and_parents(name):
            found = locate_module(prefix_name, search_path)
            if found is None or found.installed:
                break
            for path in _sources(found):
                files.setdefault(f"{prefix}{_relative(path, search_path)}", path)
            if found.origin is not None and found.origin.suffix == ".py":
                pending.extend(imports_of(str(found.origin), prefix_name, found.is_package))
    return None, dict(sorted(files.items()))


def _self_and_parents(module: str) -> list[str]:
    """`a.b.c` -> ["a.b.c", "a.b", "a"]: importing a module runs its packages' __init__ too."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _sources(location: ModuleLocation) -> list[Path]:
    """The module's file; for a regular package, every .py file in it, which also covers modules the
    package imports dynamically."""
    if location.origin is None or location.origin.suffix != ".py":
        return []  # a namespace package (no file of its own) or an extension module
    if location.is_package:
        return sorted(p for p in location.origin.parent.rglob("*.py") if "__pycache__" not in p.parts)
    return [location.origin]


def _relative(path: Path, search_path: list[str]) -> str:
    for entry in search_path:
        try:
            return path.relative_to(Path(entry).resolve()).as_posix()
        except ValueError:
            continue
    return path.name


@functools.cache
def imports_of(path: str, module: str, is_package: bool) -> tuple[str, ...]:
    """Absolute names of the modules a source file imports (relative imports resolved)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"), filename=path)
    except (OSError, SyntaxError, ValueError):
        return ()
    package = module if is_package else module.rpartition(".")[0]
    return tuple(_names(tree, package))


def _names(tree: ast.AST, package: str) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            yield base
            # `from pkg import sub` may import the submodule pkg.sub.
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _absolute(module: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, *([module] if module else [])]) or None
