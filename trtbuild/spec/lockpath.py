"""Where a config's lock file lives, and the configs that cannot have one.

The lock lives beside its config, the config's suffix replaced: `configs/resnet.yaml` ->
`configs/resnet.lock`. A config whose own suffix is `.lock` would be its own lock, overwritten by
its first run (`cp tiny.yaml cfg.lock; trtbuild run cfg.lock` destroyed it); two configs of one
command that differ only in their suffix (`a.yaml`, `a.yml`) would write one lock, also when they
are named through different paths to one folder (`d1/a.yaml`, `d2/a.yml` with `d2` a symlink to
`d1`: compared by the folder's real path). Both are refused when the configs are loaded, before
anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from trtbuild.errors import Location, Problem

LOCK_SUFFIX = ".lock"
# The lock is written through a temp file beside it, `.<name>.<pid>.<12 hex>.tmp` (files.temp_path):
# 26 bytes more than its name, within the 255 bytes a file name may have (NAME_MAX). A longer
# config name built every task and then failed at the lock ("File name too long").
MAX_LOCK_NAME_BYTES = 255 - 32


def lock_path(config: Path) -> Path:
    return config.with_suffix(LOCK_SUFFIX)


def lock_path_problems(configs: Sequence[Path]) -> list[Problem]:
    """Configs whose lock would overwrite a config: their own file, or another config's lock."""
    problems: list[Problem] = []
    first: dict[Path, Path] = {}
    for config in configs:
        if config.suffix.casefold() == LOCK_SUFFIX:
            problems.append(
                Problem(
                    f"a config cannot be named *{LOCK_SUFFIX}: its lock file is {lock_path(config).name}, "
                    "beside it, so its first run would overwrite it",
                    Location(config, 1, 1),
                    hint=f"rename it, e.g. mv {config} {config.with_suffix('.yaml')}",
                )
            )
            continue
        if len(lock_path(config).name.encode()) > MAX_LOCK_NAME_BYTES:
            problems.append(
                Problem(
                    f"the config's file name is too long for its lock {lock_path(config).name!r}: a "
                    f"lock's name has at most {MAX_LOCK_NAME_BYTES} bytes (it is written through a "
                    "temp file beside it, and a file name has at most 255)",
                    Location(config, 1, 1),
                    hint="give the config a shorter name",
                )
            )
            continue
        real = Path(os.path.realpath(config.parent)) / config.name  # the file the lock would be
        other = first.setdefault(lock_path(real), config)
        if other != config:
            problems.append(
                Problem(
                    f"{config.name} and {other.name} would both write the lock {lock_path(config)}",
                    Location(config, 1, 1),
                    hint="give the configs different names (not only different suffixes)",
                )
            )
    return problems
