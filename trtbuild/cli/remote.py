"""Which remote cache `run` and `plan` use: `--remote-cache URL`, else `$TRTBUILD_REMOTE_CACHE`, else
the project's `.trtbuild.yaml` (in the first config's folder or a folder above it, up to the
repository's root). `--no-remote-cache` uses none; read-only from `--remote-read-only`,
`TRTBUILD_REMOTE_READ_ONLY=1`, or `read_only: true` in the project file.

The project file, checked into git beside the configs::

    remote_cache:
      url: s3://team-bucket/trtbuild     # or file:///mnt/team-cache
      read_only: true                    # laptops read; CI, which publishes, passes a flag or env
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trtbuild.errors import UsageError
from trtbuild.store.remote.settings import RemoteSettings, parse_remote_url

URL_VARIABLE = "TRTBUILD_REMOTE_CACHE"
READ_ONLY_VARIABLE = "TRTBUILD_REMOTE_READ_ONLY"
PROJECT_FILE = ".trtbuild.yaml"
PROJECT_FILE_LIMIT = 64 * 1024  # bytes: a settings file, not a config
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote cache (README: Sharing a cache)")
    chosen = group.add_mutually_exclusive_group()
    chosen.add_argument(
        "--remote-cache",
        metavar="URL",
        default=None,
        help=f"a shared cache behind the local one: file:///shared/folder or s3://bucket/prefix "
        f"(default: ${URL_VARIABLE}, else {PROJECT_FILE}'s remote_cache.url)",
    )
    chosen.add_argument("--no-remote-cache", action="store_true", help="use only the local cache")
    group.add_argument(
        "--remote-read-only",
        action="store_true",
        default=None,
        help=f"read from the remote cache, publish nothing to it (also ${READ_ONLY_VARIABLE}=1)",
    )


def remote_settings(args: argparse.Namespace) -> RemoteSettings | None:
    if args.no_remote_cache:
        return None
    project = _project_settings(args.configs)
    read_only = _read_only(args, project)
    if args.remote_cache is not None:
        return parse_remote_url(args.remote_cache, source="--remote-cache", read_only=read_only)
    from_environment = os.environ.get(URL_VARIABLE, "").strip()
    if from_environment:
        return parse_remote_url(from_environment, source=f"${URL_VARIABLE}", read_only=read_only)
    if project is not None and "url" in project[1]:
        path, settings = project
        return parse_remote_url(settings["url"], source=f"{path}: remote_cache.url", read_only=read_only)
    return None


def _read_only(args: argparse.Namespace, project: tuple[Path, dict[str, Any]] | None) -> bool:
    if args.remote_read_only:
        return True
    value = os.environ.get(READ_ONLY_VARIABLE)
    if value is not None:
        if value.strip().lower() not in _TRUE + _FALSE:
            raise UsageError(f"${READ_ONLY_VARIABLE}={value!r}: expected 1 or 0 (true or false)")
        return value.strip().lower() in _TRUE
    return bool(project is not None and project[1].get("read_only", False))


def _project_settings(configs: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The first config's project file's `remote_cache` mapping, checked; None if there is none."""
    path = find_project_file(Path(configs[0])) if configs else None
    if path is None:
        return None
    import yaml  # only when the project has a settings file: a no-op run otherwise loads no YAML parser

    try:
        with open(path, "rb") as handle:
            text = handle.read(PROJECT_FILE_LIMIT + 1)
        if len(text) > PROJECT_FILE_LIMIT:
            raise UsageError(f"{path}: more than {PROJECT_FILE_LIMIT} bytes; it holds a few settings")
        document = yaml.safe_load(text) if text.strip() else {}
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or set(document) - {"remote_cache"}:
        raise UsageError(
            f"{path}: expected a mapping with the one field remote_cache (README: Sharing a cache)"
        )
    section = document.get("remote_cache")
    if section is None:
        return None
    if not isinstance(section, dict) or set(section) - {"url", "read_only"}:
        raise UsageError(f"{path}: remote_cache takes url (a string) and read_only (true or false)")
    if "url" in section and not isinstance(section["url"], str):
        raise UsageError(f"{path}: remote_cache.url must be a string, such as s3://bucket/prefix")
    if not isinstance(section.get("read_only", False), bool):
        raise UsageError(f"{path}: remote_cache.read_only must be true or false")
    return path, section


def find_project_file(config: Path) -> Path | None:
    """`.trtbuild.yaml` in the config's folder or the nearest folder above it, not above the
    repository's root (the folder holding `.git`)."""
    folder = config.absolute().parent
    for candidate in (folder, *folder.parents):
        settings = candidate / PROJECT_FILE
        if settings.is_file():
            return settings
        if (candidate / ".git").exists():
            return None
    return None
