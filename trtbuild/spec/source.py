"""Find where a model's module lives without importing it.

`importlib.util.find_spec("torchvision.models")` imports `torchvision` (and so torch, ~2 s) to learn
its `__path__`. Instead we ask `PathFinder` for one dotted part at a time, feeding it the
`submodule_search_locations` of the package found so far: no package `__init__` ever runs. This keeps
`trtbuild plan` and fully cached runs free of torch, and tells the planner whether the model code is a
local file (hash its content) or an installed distribution (key on its version).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pkgutil
import site
import sys
import sysconfig
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path


@dataclass(frozen=True)
class ModuleLocation:
    """Where `name` would be imported from."""

    name: str  # "torchvision.models"
    origin: Path | None  # the module file (a package's __init__.py); None for namespace/built-in modules
    is_package: bool
    # True inside site-packages or the standard library (versioned by a distribution or by Python);
    # False for a local file, e.g. a model.py next to the config, whose content is what matters.
    installed: bool

    @property
    def top_level(self) -> str:
        return self.name.partition(".")[0]


def module_search_path(config_dir: Path) -> list[str]:
    """Where a model's `source` module is looked for: beside the config, the current directory, sys.path."""
    return [str(config_dir), os.getcwd(), *sys.path]


def locate_module(module: str, search_path: list[str]) -> ModuleLocation | None:
    """Locate dotted `module` on `search_path` part by part, importing nothing; None if not found."""
    spec = _find_spec(module, search_path)
    return None if spec is None else _location(module, spec)


def _find_spec(module: str, search_path: list[str]) -> ModuleSpec | None:
    parts = module.split(".")
    spec = _find_top_level(parts[0], search_path)
    for depth in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return None  # the parent is missing or is a plain module, which has no submodules
        spec = PathFinder.find_spec(".".join(parts[: depth + 1]), list(spec.submodule_search_locations))
    return spec


def missing_part(module: str, search_path: list[str]) -> tuple[str, bool]:
    """The first prefix of `module` that cannot be found, and whether its parent is a plain module.

    `missing_part("json.nope", ...)` -> ("json.nope", False); ("nonexistent", False) for
    "nonexistent.mod"; ("json.decoder.x", True) since json.decoder is not a package.
    """
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if locate_module(prefix, search_path) is None:
            parent = locate_module(".".join(parts[: depth - 1]), search_path) if depth > 1 else None
            return prefix, parent is not None and not parent.is_package
    return module, False


def close_module_names(module: str, search_path: list[str]) -> list[str]:
    """Modules beside where `module` would be, for a "did you mean" (lists directories, imports nothing)."""
    parent, _, _ = module.rpartition(".")
    if not parent:
        return sorted(
            {info.name for info in pkgutil.iter_modules(search_path)} | set(sys.builtin_module_names)
        )
    spec = _find_spec(parent, search_path)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return sorted(f"{parent}.{info.name}" for info in pkgutil.iter_modules(locations))


def _find_top_level(name: str, search_path: list[str]) -> ModuleSpec | None:
    spec = PathFinder.find_spec(name, search_path)
    if spec is not None:
        return spec
    # Built-in and frozen modules, and editable installs served by a meta path finder rather than a
    # sys.path entry. A top-level find_spec imports nothing (there is no parent package to import).
    for finder in sys.meta_path:
        if finder is PathFinder or not hasattr(finder, "find_spec"):
            continue
        try:
            spec = finder.find_spec(name, None)
        except Exception:  # a third-party finder's bug must not turn into a traceback for the user
            continue
        if spec is not None:
            return spec
    return None


def _location(name: str, spec: ModuleSpec) -> ModuleLocation:
    has_file = spec.has_location and spec.origin not in (None, "built-in", "frozen")
    origin = Path(spec.origin) if has_file and spec.origin else None
    where = origin or _first_location(spec)
    installed = where is None or _is_installed(where)  # no location at all: built-in or frozen
    return ModuleLocation(name, origin, spec.submodule_search_locations is not None, installed)


def _first_location(spec: ModuleSpec) -> Path | None:
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def _is_installed(path: Path) -> bool:
    resolved = os.path.realpath(path)
    return any(resolved == root or resolved.startswith(root + os.sep) for root in _installed_roots())


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = [paths[key] for key in ("purelib", "platlib", "stdlib", "platstdlib") if key in paths]
    # Debian's dist-packages and the user site are not sysconfig scheme paths but are installed code too.
    roots += getattr(site, "getsitepackages", list)()
    if site.ENABLE_USER_SITE and hasattr(site, "getusersitepackages"):
        roots.append(site.getusersitepackages())
    return tuple(sorted({os.path.realpath(root) for root in roots}))


def distribution_version(top_level: str) -> str | None:
    """Version of the installed distribution providing top-level module `top_level`, from its metadata.

    `distribution_version("torchvision")` -> "0.29.1". None for local files and the standard library.
    """
    for distribution in _packages_distributions().get(top_level, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    # Scans every installed distribution's RECORD once; cached for the process.
    return dict(importlib.metadata.packages_distributions())
