"""What user code is, for keys: local files by content, installed distributions by version.

The model's module is followed through its imports, read statically (`ast`, nothing is imported): a
helper module beside it, a sibling package, a namespace package (a folder without `__init__.py`) are
keyed by the content of each file the model can reach. The walk stops at installed code, which is
not the user's: the standard library, site-packages, and a package with pip's metadata beside it
wherever it lives (a `pip install --target` folder on PYTHONPATH, a folder a `.pth` file adds: see
`spec.source`). An installed model module is keyed by its distribution's version, and so is every
installed package the user's code imports (`packages()`: "transformers==5.24.0"), so that upgrading
a library the model is built with is a new key, here and on every machine a remote cache serves (a
run that kept the old result was one of a model that no longer exists). Modules the config lists in
`code.exclude` are not followed. Dynamic imports
(`importlib.import_module(name)` with a computed name) are not seen.

The walk is capped (`MAX_FILES`, `MAX_BYTES`): more code than that is someone else's library without
package metadata (a source checkout of torch on PYTHONPATH), and hashing it took minutes while
nothing was printed. Planning stops instead, with a config error naming the packages walked.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.errors import ConfigError
from trtbuild.spec.model import Spec
from trtbuild.spec.semantic import field_problem
from trtbuild.spec.source import ModuleLocation, locate_module, location_version, module_search_path
from trtbuild.units import human_bytes

# Far more than a model's own code reaches (a detection framework's checkout is ~1000 files); less
# than torch (2,352 files, 40 MB of Python) or sympy.
MAX_FILES = 2000
MAX_BYTES = 32 * 2**20
SHOWN_FILES = 8  # files listed by `plan --explain`; the rest are counted


@dataclass(frozen=True)
class CodeIdentity:
    """What a module's code is, as keys see it."""

    module: str
    package: str | None = None  # "name==version" when `module` itself is installed: no files then
    files: Mapping[str, Path] = field(default_factory=dict)  # path relative to its search-path entry
    roots: tuple[Path, ...] = ()  # the search-path entries those files are under
    size: int = 0  # bytes
    # Installed top-level modules the user's code imports -> their distribution, "name==version"
    # ("name" when no version is found, "site-packages" when no distribution is).
    installed: Mapping[str, str] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()  # `code.exclude` entries the walk met

    def keyed(self, prefix: str) -> dict[str, Path]:
        """The files as a task's file inputs, `<prefix><relative path>` (no absolute path in a key)."""
        return {f"{prefix}{name}": path for name, path in self.files.items()}

    def packages(self) -> tuple[str, ...]:
        """The installed distributions the user's code imports, by version: key material."""
        return tuple(sorted(set(self.installed.values())))

    def describe(self) -> list[str]:
        """What `plan --explain` says: the files hashed, where, and what the walk did not follow."""
        if self.package is not None:
            return [f"{self.module}: installed, keyed by {self.package}"]
        lines = [f"{self.module}: {_files_text(list(self.files), self.size, self.roots)}"]
        if self.installed:
            why = ", ".join(f"{name} ({reason})" for name, reason in sorted(self.installed.items()))
            lines.append(f"installed, keyed by version, not hashed: {why}")
        if self.excluded:
            lines.append(f"not hashed, code.exclude: {', '.join(self.excluded)}")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "package": self.package,
            "files": list(self.files),
            "roots": [str(root) for root in self.roots],
            "bytes": self.size,
            "installed": dict(self.installed),
            "excluded": list(self.excluded),
        }


def _files_text(names: list[str], size: int, roots: tuple[Path, ...]) -> str:
    if not names:
        return "no file hashed"
    listed = ", ".join(names[:SHOWN_FILES])
    if len(names) > SHOWN_FILES:
        listed += f" and {len(names) - SHOWN_FILES} more"
    count = f"{len(names)} file{'s' if len(names) > 1 else ''}"
    return f"{count}, {human_bytes(size)}, under {', '.join(map(str, roots))}: {listed}"


class CodeWalkTooLarge(Exception):
    """Following a module's imports reached more code than is plausibly the user's."""

    def __init__(self, module: str, walked: Mapping[str, tuple[int, int, Path]]) -> None:
        self.module = module
        self.walked = walked  # top-level module -> (files, bytes, where), largest first
        parts = [
            f"{name} ({count} file{'s' if count > 1 else ''}, {human_bytes(size)}, {where})"
            for name, (count, size, where) in walked.items()
        ]
        super().__init__(
            f"following the imports of {module} reached more than {MAX_FILES} files or "
            f"{human_bytes(MAX_BYTES)} of Python without package metadata, which would all be hashed "
            f"into the keys as your code: {', '.join(parts)}"
        )

    @property
    def hint(self) -> str:
        others = [name for name in self.walked if name != self.module.partition(".")[0]] or list(self.walked)
        return (
            "your own code is hashed, installed packages are not: install a package that is not yours "
            "with pip (`pip install --target DIR` also writes the *.dist-info metadata that marks it "
            f"installed), or list it in the config: `code: {{exclude: [{others[0]}]}}`"
        )


def code_of(spec: Spec, field_path: tuple[str, ...], module: str) -> CodeIdentity:
    """`code_identity` of a module the config names at `field_path`, with the config's `code.exclude`;
    a walk past the cap is a config error at that field (exit 2), before anything runs."""
    try:
        return code_identity(module, module_search_path(spec.directory), spec.code.exclude)
    except CodeWalkTooLarge as error:
        raise ConfigError(field_problem(spec, field_path, str(error), error.hint)) from None


def code_named_by(spec: Spec) -> dict[str, CodeIdentity]:
    """Config field -> the code of the user's module it names (model, calibration function, metric)."""
    named = {("model", "source"): spec.model.module}
    if spec.calibration is not None and spec.calibration.function is not None:
        named[("calibration", "function")] = spec.calibration.function.partition(":")[0]
    if spec.validate.metric is not None:
        named[("validate", "metric")] = spec.validate.metric.partition(":")[0]
    return {".".join(path): code_of(spec, path, module) for path, module in named.items()}


# (module, search path, exclusions) -> (the walk's result, the state of the files it read)
_walks: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[CodeIdentity, tuple[int, ...] | None]] = {}


def code_identity(module: str, search_path: list[str], exclude: Iterable[str] = ()) -> CodeIdentity:
    """The identity of dotted `module`'s code (see the module doc).

    Export and validate both ask for the model's, in every cell: the walk is remembered for the
    process, and redone when a file it hashed, or a folder holding one, has changed since.
    """
    cache_key = (module, tuple(search_path), tuple(sorted(set(exclude))))
    cached = _walks.get(cache_key)
    if cached is not None and cached[1] is not None and _state(cached[0]) == cached[1]:
        return cached[0]
    location = locate_module(module, search_path)
    if location is not None and location.installed:
        version = location_version(location)
        identity = CodeIdentity(module, f"{location.top_level}=={version}" if version else location.top_level)
    else:
        identity = _Walk(module, search_path, cache_key[2]).identity()
    _walks[cache_key] = (identity, _state(identity))
    return identity


def _state(identity: CodeIdentity) -> tuple[int, ...] | None:
    """mtime and size of every file hashed and mtime of its folder (a module added beside it)."""
    state: list[int] = []
    try:
        for path in identity.files.values():
            file_stat, folder_stat = path.stat(), path.parent.stat()
            state += [file_stat.st_mtime_ns, file_stat.st_size, folder_stat.st_mtime_ns]
    except OSError:
        return None
    return tuple(state)


class _Walk:
    """One walk from a module through the imports of the user's code, counting what it hashes."""

    def __init__(self, module: str, search_path: list[str], exclude: tuple[str, ...]) -> None:
        self.module = module
        self.search_path = search_path
        self.entries = [Path(entry).resolve() for entry in search_path]
        self.exclude = exclude
        self.files: dict[str, Path] = {}
        self.roots: dict[Path, None] = {}
        self.size = 0
        self.per_top: dict[str, tuple[int, int, Path]] = {}  # top-level module -> files, bytes, folder
        self.installed: dict[str, str] = {}
        self.excluded: dict[str, None] = {}
        self.followed: dict[str, bool] = {}  # module -> whether the walk went into it
        self.globbed: list[Path] = []  # regular packages' folders, all of whose files are in

    def identity(self) -> CodeIdentity:
        pending = [self.module]
        while pending:
            name = pending.pop()
            # A package before its modules: importing a.b.c runs a's and a.b's __init__ first, and
            # nothing under an installed or excluded package is followed.
            for part in reversed(_self_and_parents(name)):
                followed = self.followed.get(part)
                if followed is None:
                    followed = self.followed[part] = self._visit(part, pending)
                if not followed:
                    break
        return CodeIdentity(
            self.module,
            files=dict(sorted(self.files.items())),
            roots=tuple(self.roots),
            size=self.size,
            installed=dict(sorted(self.installed.items())),
            excluded=tuple(self.excluded),
        )

    def _visit(self, name: str, pending: list[str]) -> bool:
        """Hash `name`'s files and queue its imports; False when the walk does not go into it."""
        excluded_by = next((e for e in self.exclude if name == e or name.startswith(f"{e}.")), None)
        if excluded_by is not None:
            self.excluded[excluded_by] = None
            return False
        found = locate_module(name, self.search_path)
        if found is None:
            return False
        if found.installed:
            if found.top_level not in sys.stdlib_module_names:
                self.installed[found.top_level] = _distribution(found)
            return False
        for path in self._sources(found):
            self._add(found.top_level, path)
        if found.origin is not None and found.origin.suffix == ".py":
            pending.extend(_imports(found))
        return True

    def _sources(self, location: ModuleLocation) -> list[Path]:
        """The module's file; for a regular package, every .py file in it, which also covers modules
        the package imports dynamically."""
        origin = location.origin
        if origin is None or origin.suffix != ".py":
            return []  # a namespace package (no file of its own) or an extension module
        if any(origin.is_relative_to(folder) for folder in self.globbed):
            return []  # in a package whose files are all in already
        if not location.is_package:
            return [origin]
        self.globbed.append(origin.parent)
        return sorted(p for p in origin.parent.rglob("*.py") if "__pycache__" not in p.parts)

    def _add(self, top: str, path: Path) -> None:
        root, relative = self._relative(path)
        if relative in self.files:
            return
        self.files[relative] = path
        self.roots[root] = None
        size = path.stat().st_size
        self.size += size
        # Where the top-level module is: its package's folder, or the module's own file.
        where = root / top if "/" in relative else path
        count, total, _ = self.per_top.get(top, (0, 0, where))
        self.per_top[top] = (count + 1, total + size, where)
        if len(self.files) > MAX_FILES or self.size > MAX_BYTES:
            largest = sorted(self.per_top.items(), key=lambda item: -item[1][1])
            raise CodeWalkTooLarge(self.module, dict(largest))

    def _relative(self, path: Path) -> tuple[Path, str]:
        """(search-path entry, path relative to it), so a key does not depend on where the project lives."""
        for entry in self.entries:
            try:
                return entry, path.relative_to(entry).as_posix()
            except ValueError:
                continue
        return path.parent, path.name


def _distribution(location: ModuleLocation) -> str:
    """ "name==version" of the distribution providing an installed module (see `installed`)."""
    version = location_version(location)
    if location.metadata is not None:
        name = location.metadata.name.split("-", 1)[0]  # "fakelib-2.0.dist-info" -> "fakelib"
    elif version:
        name = location.top_level
    else:
        return "site-packages"
    return f"{name}=={version}" if version else name


def _self_and_parents(module: str) -> list[str]:
    """`a.b.c` -> ["a.b.c", "a.b", "a"]: importing a module runs its packages' __init__ too."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _imports(location: ModuleLocation) -> tuple[str, ...]:
    assert location.origin is not None
    try:
        stat = location.origin.stat()
    except OSError:
        return ()
    return imports_of(
        str(location.origin), location.name, location.is_package, (stat.st_mtime_ns, stat.st_size)
    )


@functools.cache
def imports_of(path: str, module: str, is_package: bool, state: tuple[int, int] = (0, 0)) -> tuple[str, ...]:
    """Absolute names of the modules a source file imports (relative imports resolved). `state` (the
    file's mtime and size) is part of the cache key, so an edited file is read again."""
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
