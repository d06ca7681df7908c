"""What user code is, for keys: an installed distribution's version, or local files' content."""

from __future__ import annotations

from pathlib import Path

from trtbuild.spec.source import distribution_version, locate_module


def code_identity(module: str, search_path: list[str], prefix: str) -> tuple[str | None, dict[str, Path]]:
    """(package, files) identifying the code of dotted `module`, found without importing it.

    Code from an installed distribution is identified by "name==version"; local code (next to the
    config, in the project) by the content of every .py file of its top-level package, so a change
    to a helper module is seen too. Files are keyed `<prefix><path relative to the package's parent>`,
    which does not depend on where the project lives.
    """
    top_level = module.split(".")[0]
    location = locate_module(top_level, search_path)
    if location is None or location.origin is None:
        return None, {}
    if location.installed:
        version = distribution_version(top_level)
        return (f"{top_level}=={version}" if version else top_level), {}
    root = location.origin.parent if location.is_package else location.origin
    paths = sorted(root.rglob("*.py")) if location.is_package else [root]
    return None, {
        f"{prefix}{path.relative_to(root.parent).as_posix()}": path
        for path in paths
        if "__pycache__" not in path.parts
    }
