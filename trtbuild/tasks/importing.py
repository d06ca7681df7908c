"""Import user code named "module:attr" (a model factory, a calibration function)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from importlib.machinery import PathFinder
from typing import Any

from trtbuild.errors import TaskError


def import_attribute(target: str, search_path: Sequence[str], field: str) -> Any:
    """The object named by "module:attr", importing with the config's directory on sys.path.

    `field` is the config field that named it (model.source, calibration.function), for messages.
    """
    module_name, _, attr = target.partition(":")
    _search_first(search_path)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure of user code
        raise TaskError(
            f"cannot import '{module_name}' ({field}): {type(error).__name__}: {error}",
            [f"check {field} and that the module's dependencies are installed"],
        ) from error
    try:
        return getattr(module, attr)
    except AttributeError:
        names = sorted(name for name in vars(module) if not name.startswith("_"))[:20]
        raise TaskError(
            f"module '{module_name}' has no attribute '{attr}'",
            [f"check {field}; names in {module_name} include: {', '.join(names)}"],
        ) from None


# The config folders (each search path's first entry: spec/source.py's module_search_path) that user
# code was imported from in this process.
_config_folders: dict[str, None] = {}


def _search_first(search_path: Sequence[str]) -> None:
    """Put `search_path` first on sys.path, in its order, and forget the modules imported from another
    config's folder that it now shadows. A worker serves every config of a run, and two config
    folders may each hold a module of one name (`models/net.py`, a `helpers.py`): without this the
    second config got the first one's module, and its export was cached under its own key."""
    if not search_path:
        return
    sys.path[:] = list(dict.fromkeys([*search_path, *sys.path]))
    _config_folders[os.path.abspath(search_path[0])] = None
    for name in [name for name in sys.modules if "." not in name]:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if not isinstance(where, str) or not _in_a_config_folder(name, where):
            continue
        found = PathFinder.find_spec(name, sys.path)
        if found is None or found.origin is None or os.path.abspath(found.origin) != os.path.abspath(where):
            for loaded in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
                del sys.modules[loaded]


def _in_a_config_folder(name: str, where: str) -> bool:
    """Whether top-level module `name` was loaded from `where` directly inside a config folder."""
    folder = os.path.dirname(os.path.abspath(where))
    if os.path.basename(where) == "__init__.py":
        folder = os.path.dirname(folder)
    return folder in _config_folders
