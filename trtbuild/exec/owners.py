"""Which config owns each model's output folder, `<out>/<model>/`.

Two configs with the same `model.name` build into one folder. A run clears and relinks its own
cells' files there and rewrites the folder's report, so a second config would silently replace the
first's engines and graphs, or leave the first's other cells beside its own report. `load_specs`
refuses two such configs in one command. Across commands the folder records its config in
`owner.json`; a run of another config is then a config error, before anything runs, that names both
files and the fixes. If the recorded config no longer exists (renamed or moved), the new config
takes the folder over, with a notice.

The record is the config's path relative to the folder, so a project moved or cloned as a whole
(configs and build folder together) keeps its owners.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from trtbuild.errors import ConfigError, Problem
from trtbuild.files import write_if_changed
from trtbuild.spec.model import Spec

OWNER_FILE = "owner.json"


def check_owners(specs: Sequence[Spec], out_dir: Path) -> list[str]:
    """ConfigError if a folder the specs build into belongs to another config that still exists;
    otherwise the notices for folders whose recorded config is gone (and will change hands)."""
    problems: list[Problem] = []
    notices: list[str] = []
    for spec in specs:
        folder = Path(out_dir) / spec.model.name
        owner = recorded_owner(folder)
        if owner is None or owner == spec.path.resolve():
            continue
        if owner.is_file():
            problems.append(_taken(spec, folder, owner))
        else:
            notices.append(f"{folder}/ belonged to {owner}, which no longer exists: it is now {spec.path}'s")
    if problems:
        raise ConfigError(problems)
    return notices


def claim_owners(specs: Sequence[Spec], out_dir: Path) -> None:
    """Record each spec's config as the owner of its model's folder (unchanged files are left alone,
    so a run that changes nothing writes nothing). Call `check_owners` first."""
    for spec in specs:
        folder = Path(out_dir) / spec.model.name
        folder.mkdir(parents=True, exist_ok=True)
        config = os.path.relpath(spec.path.resolve(), folder.resolve())
        text = json.dumps({"config": Path(config).as_posix()}, indent=2) + "\n"
        write_if_changed(folder / OWNER_FILE, text, fsync=False)


def recorded_owner(folder: Path) -> Path | None:
    """The config recorded as the folder's owner, resolved; None if none is (or it is unreadable,
    which an earlier trtbuild, from before owners were recorded, leaves the same way)."""
    try:
        config = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(config, str):
        return None
    return (folder.resolve() / config).resolve()


def _taken(spec: Spec, folder: Path, owner: Path) -> Problem:
    return Problem(
        f"{folder}/ holds the builds of {owner} (recorded in {folder / OWNER_FILE}); running "
        f"{spec.path} would replace them",
        location=spec.location(("model", "name")),
        field_path="model.name",
        hint=f"give this config's model another name, or build it into another folder "
        f"(`trtbuild run {spec.path} --out DIR`); if the builds of {owner.name} are no longer "
        f"wanted, delete {folder}/",
    )
