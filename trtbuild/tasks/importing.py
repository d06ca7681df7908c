"""Import user code named "module:attr" (a model factory, a calibration function)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

from trtbuild.errors import TaskError


def import_attribute(target: str, search_path: Sequence[str], field: str) -> Any:
    """The object named by "module:attr", importing with the config's directory on sys.path.

    `field` is the config field that named it (model.source, calibration.function), for messages.
    """
    module_name, _, attr = target.partition(":")
    for entry in reversed(search_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
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
