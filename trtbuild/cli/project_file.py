"""The project's settings file, `.trtbuild.yaml`, checked into git beside the configs::

    remote_cache:
      url: s3://team-bucket/trtbuild     # or file:///mnt/team-cache
      read_only: true                    # laptops read; CI sets TRTBUILD_REMOTE_READ_ONLY=0 to publish

It is found in the first config's folder (its real path: symlinks resolved) or the nearest folder
above it, never above the repository's root (the folder holding `.git`): a file in a home folder or
a parent checkout is not this project's. It is read as a config is (spec/yamlmarks.py: bounds on
aliases and nesting, YAML 1.2 booleans, line marks), so every problem names file:line:col and the
field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import ConfigError, Location, Problem
from trtbuild.spec.yamlmarks import ParsedConfigs, parse_yaml, problem_at

PROJECT_FILE = ".trtbuild.yaml"
PROJECT_FILE_LIMIT = 64 * 1024  # bytes: a settings file, not a config
SECTION = "remote_cache"
FIELDS = {"url": "a string, such as s3://bucket/prefix", "read_only": "true or false"}
_FORM = "remote_cache: {url: s3://bucket/prefix, read_only: true} (README: Sharing a cache)"


@dataclass(frozen=True)
class ProjectSettings:
    """The `remote_cache` section of a project file; `url_at` names where the URL is written."""

    path: Path
    url: str | None = None
    url_at: str = ""
    read_only: bool | None = None
    read_only_at: str = ""


def read_project_file(configs: list[Path], parsed: ParsedConfigs | None = None) -> ProjectSettings | None:
    """The first config's project settings, checked; None when there is no file or no section.
    `parsed`: the local cache's remembered parses, so an unchanged file imports no PyYAML."""
    path = find_project_file(Path(configs[0])) if configs else None
    if path is None:
        return None
    document, marks = parse_yaml(_read(path), path, parsed)
    if document is None:
        return None  # nothing but comments: no settings
    if not isinstance(document, dict):
        raise ConfigError(problem_at(marks, (), "expected a mapping at the top level", f"write {_FORM}"))
    for name in document:
        if name != SECTION:
            raise ConfigError(
                problem_at(marks, (name,), f"unknown field {name!r}", f"the file holds {_FORM}", at_key=True)
            )
    section = document.get(SECTION)
    if section is None:
        return None
    return _section(path, section, marks)


def _section(path: Path, section: Any, marks: dict[Any, Location]) -> ProjectSettings:
    if not isinstance(section, dict):
        raise ConfigError(problem_at(marks, (SECTION,), "expected a mapping", f"write {_FORM}"))
    for name, value in section.items():
        where = (SECTION, name)
        if name not in FIELDS:
            hint = f"{SECTION} takes {' and '.join(FIELDS)}: {_FORM}"
            raise ConfigError(problem_at(marks, where, f"unknown field {name!r}", hint, at_key=True))
        expected = str if name == "url" else bool
        if not isinstance(value, expected):
            raise ConfigError(
                problem_at(marks, where, f"expected {FIELDS[name]}, found {value!r}", f"write {_FORM}")
            )
    return ProjectSettings(
        path,
        url=section.get("url"),
        url_at=f"{marks.get((SECTION, 'url')) or path}: {SECTION}.url",
        read_only=section.get("read_only"),
        read_only_at=f"{marks.get((SECTION, 'read_only')) or path}: {SECTION}.read_only",
    )


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(PROJECT_FILE_LIMIT + 1)
    except OSError as error:
        raise ConfigError(Problem(f"cannot read {path}: {error.strerror or error}")) from None
    if len(data) > PROJECT_FILE_LIMIT:
        raise ConfigError(
            Problem(
                f"more than {PROJECT_FILE_LIMIT // 1024} KiB: this is a settings file, not a config",
                Location(path, 1, 1),
                hint=f"keep only {_FORM}",
            )
        )
    return data


def find_project_file(config: Path) -> Path | None:
    """`.trtbuild.yaml` in the config's folder or the nearest folder above it, not above the
    repository's root (the folder holding `.git`). The folder's symlinks are resolved first, so
    every path that names the config finds the same file: a relative path is already read from
    the real current folder (the kernel's), and `link/tiny.yaml` must walk up from where `cd link`
    would. The config's own name is not resolved, as `cd` into its folder would not."""
    folder = config.absolute().parent.resolve()
    for candidate in (folder, *folder.parents):
        settings = candidate / PROJECT_FILE
        if settings.is_file():
            return settings
        if (candidate / ".git").exists():
            return None
    return None
