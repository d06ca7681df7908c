"""Find where a model's module lives without importing it.

`importlib.util.find_spec("torchvision.models")` imports `torchvision` (and so torch, ~2 s) to learn
its `__path__`. Instead we ask `PathFinder` for one dotted part at a time, feeding it the
`submodule_search_locations` of the package found so far: no package `__init__` ever runs. This keeps
`trtbuild plan` and fully cached runs free of torch, and tells the planner whether the model code is a
local file (hash its content) or an installed distribution (key on its version).

Installed means: under site-packages or the standard library, or (wherever it lives: a `pip install
--target` folder on PYTHONPATH, a folder a `.pth` file adds) beside the `*.dist-info` folder that pip
writes for the distribution providing it. An `*.egg-info` folder does not count: outside
site-packages it is what `pip install -e` / `setup.py develop` leave in a source checkout, the user's
own code. Only the folder the module was found in is read (a directory listing, once per process),
never every distribution on sys.path (`importlib.metadata.packages_distributions()`, ~190 ms).
"""

from __future__ import annotations

import functools
import os
import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from trtbuild.toolchain import metadata_version


@dataclass(frozen=True)
class ModuleLocation:
    """Where `name` would be imported from."""

    name: str  # "torchvision.models"
    origin: Path | None  # the module file (a package's __init__.py); None for namespace/built-in modules
    is_package: bool
    # True inside site-packages or the standard library (versioned by a distribution or by Python);
    # False for a local file, e.g. a model.py next to the config, whose content is what matters.
    installed: bool
    # The `*.dist-info` folder of the distribution providing it, when one is beside its top-level
    # package (pip's metadata); for a module outside site-packages it is what makes it installed.
    metadata: Path | None = None

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
        spec = _find_submodule(".".join(parts[: depth + 1]), list(spec.submodule_search_locations))
    return spec


def _find_submodule(name: str, locations: list[str]) -> ModuleSpec | None:
    try:
        return PathFinder.find_spec(name, locations)
    except KeyError:
        # A namespace package (a folder without __init__.py) inside a package that is not imported:
        # importlib's `_NamespacePath` looks the parent up in sys.modules. No module or regular package
        # of that name was found in any location (those come first), so its portions are the folders.
        part = name.rpartition(".")[2]
        folders = [os.path.join(location, part) for location in locations]
        folders = [folder for folder in folders if os.path.isdir(folder)]
        if not folders:
            return None
        spec = ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = folders
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
    import pkgutil  # only a module that is not found needs it

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
    is_package = spec.submodule_search_locations is not None
    where = origin or _first_location(spec)
    if where is None:  # no location at all: built-in or frozen
        return ModuleLocation(name, origin, is_package, installed=True)
    in_site = _is_installed(where)
    root = _root_folder(name, where, is_init=origin is not None and is_package)
    metadata = None if root is None else _distribution_beside(name.partition(".")[0], root, in_site)
    return ModuleLocation(name, origin, is_package, in_site or metadata is not None, metadata)


def _root_folder(name: str, where: Path, is_init: bool) -> Path | None:
    """The search-path entry that holds `name`'s top-level package: `where` is the module's file, a
    package's `__init__.py` or a namespace package's folder."""
    depth = name.count(".") + (1 if is_init else 0)
    parents = where.parents
    return parents[depth] if depth < len(parents) else None


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
    import importlib.metadata  # the rare path: no metadata folder named after the module beside it

    for distribution in _packages_distributions().get(top_level, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def location_version(location: ModuleLocation) -> str | None:
    """Version of the distribution providing an installed module: from the metadata beside it when
    there is one (a directory listing), else by scanning every distribution (`distribution_version`)."""
    if location.metadata is not None:
        version = metadata_version(location.metadata)
        if version:
            return version
    return distribution_version(location.top_level)


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    import importlib.metadata

    # Scans every installed distribution's RECORD once; cached for the process.
    return dict(importlib.metadata.packages_distributions())


def _distribution_beside(top_level: str, root: Path, in_site: bool) -> Path | None:
    """The `*.dist-info` folder in `root` of the distribution providing `top_level`, if any.

    Matched by name first (`torch` -> `torch-2.14.1.dist-info`). Outside site-packages a distribution
    named otherwise (`PIL` from `pillow-*.dist-info`) is found from its `top_level.txt` or `RECORD`;
    in site-packages that is left to `distribution_version`, since everything there is installed anyway.
    """
    by_name = _dist_infos(str(root))
    if not by_name:
        return None
    found = by_name.get(_normalized(top_level))
    if found is not None or in_site:
        return found
    return _top_levels_provided(str(root)).get(top_level)


@functools.cache
def _dist_infos(root: str) -> dict[str, Path]:
    """Normalized distribution name -> its `*.dist-info` folder in `root` (a listing, once per folder)."""
    try:
        names = [entry.name for entry in os.scandir(root) if entry.name.endswith(".dist-info")]
    except OSError:
        return {}
    # pip names them `<name>-<version>.dist-info`, with `-` in the name written as `_`.
    return {_normalized(name.partition("-")[0]): Path(root, name) for name in sorted(names)}


@functools.cache
def _top_levels_provided(root: str) -> dict[str, Path]:
    """Top-level module -> the `*.dist-info` in `root` whose distribution provides it."""
    provided: dict[str, Path] = {}
    for metadata in _dist_infos(root).values():
        for top_level in _top_levels(metadata):
            provided.setdefault(top_level, metadata)
    return provided


def _top_levels(metadata: Path) -> set[str]:
    """The top-level modules a distribution installs: its `top_level.txt` (setuptools), else the first
    part of each path in its `RECORD` (every wheel has one)."""
    try:
        top_level_txt = (metadata / "top_level.txt").read_text(encoding="utf-8", errors="replace")
        return {line.strip() for line in top_level_txt.splitlines() if line.strip()}
    except OSError:
        pass
    try:
        record = (metadata / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    names = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines()}
    # `pkg/...` -> pkg; `mod.py`, `ext.cpython-311-x86_64-linux-gnu.so` -> mod, ext; not `../bin`,
    # `__pycache__`, nor the distribution's own `*.dist-info` and `*.data` folders.
    return {
        name.split(".", 1)[0]
        for name in names
        if name and not name.startswith((".", "__")) and not name.endswith((".dist-info", ".data"))
    }


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
