"""Which remote cache `run` and `plan` use: `--remote-cache URL`, else `$TRTBUILD_REMOTE_CACHE`, else
the project's `.trtbuild.yaml` (cli/project_file.py). `--no-remote-cache` uses none and reads
neither. Read-only (publish nothing): `--remote-read-only`, else `TRTBUILD_REMOTE_READ_ONLY` (1 or
0), else the project file's `read_only`, wherever the URL came from: so a project can make every
checkout a reader, and CI publishes with `TRTBUILD_REMOTE_READ_ONLY=0`. A read-only run that built
something says so in its summary, naming where read-only came from. `TRTBUILD_REMOTE_TIMEOUT`
(seconds) sets how long an S3 request waits for the server (store/remote/settings.py).
"""

from __future__ import annotations

import argparse
import math
import os

from trtbuild.cli.project_file import PROJECT_FILE, ProjectSettings, read_project_file
from trtbuild.errors import UsageError
from trtbuild.store import Store, default_cache_dir
from trtbuild.store.remote.settings import READ_TIMEOUT_S, RemoteSettings, parse_remote_url

URL_VARIABLE = "TRTBUILD_REMOTE_CACHE"
READ_ONLY_VARIABLE = "TRTBUILD_REMOTE_READ_ONLY"
TIMEOUT_VARIABLE = "TRTBUILD_REMOTE_TIMEOUT"
# An hour: beyond it a silent server would hold a run for hours (ATTEMPTS tries), never a choice.
_LONGEST_TIMEOUT_S = 3600.0
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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
    chosen.add_argument(
        "--no-remote-cache",
        action="store_true",
        help=f"use only the local cache, whatever ${URL_VARIABLE} or {PROJECT_FILE} say",
    )
    group.add_argument(
        "--remote-read-only",
        action="store_true",
        default=None,
        help=f"read from the remote cache, publish nothing to it (also ${READ_ONLY_VARIABLE}=1)",
    )


def remote_settings(args: argparse.Namespace) -> RemoteSettings | None:
    if args.no_remote_cache:
        return None
    # Remembered parses as the configs' (not with --no-cache, which trusts nothing cached).
    parsed = None if args.no_cache else Store(args.cache_dir or default_cache_dir()).parsed_configs()
    project = read_project_file(args.configs, parsed)
    read_only_from = _read_only_from(args, project)
    chosen = _url(args, project)
    if chosen is None:
        return None
    url, source = chosen
    return parse_remote_url(
        url,
        source=source,
        read_only=bool(read_only_from),
        read_only_from=read_only_from,
        timeout_s=_timeout_s(),
    )


def _timeout_s() -> float:
    """$TRTBUILD_REMOTE_TIMEOUT in seconds, else READ_TIMEOUT_S; UsageError for anything else than
    a number of seconds above 0 and up to an hour."""
    value = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:  # unset or empty (a CI template's unset variable): the default
        return READ_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= _LONGEST_TIMEOUT_S:  # NaN fails this too
        raise UsageError(
            f"${TIMEOUT_VARIABLE}={value!r}: expected how many seconds an S3 request may wait for the "
            f"server, a number above 0 and up to {_LONGEST_TIMEOUT_S:.0f} (default {READ_TIMEOUT_S:.0f}); "
            "unset it for the default"
        )
    return seconds


def _url(args: argparse.Namespace, project: ProjectSettings | None) -> tuple[str, str] | None:
    """The URL and where it came from: the flag, else the variable, else the project file."""
    if args.remote_cache is not None:
        return args.remote_cache, "--remote-cache"
    from_environment = os.environ.get(URL_VARIABLE, "").strip()
    if from_environment:
        return from_environment, f"${URL_VARIABLE}"
    if project is not None and project.url is not None:
        return project.url, project.url_at
    return None


def _read_only_from(args: argparse.Namespace, project: ProjectSettings | None) -> str:
    """Where read-only was asked for, or "" when this machine may publish."""
    if args.remote_read_only:
        return "--remote-read-only"
    value = os.environ.get(READ_ONLY_VARIABLE, "")
    if value.strip():  # an empty value (a CI template's unset variable) is no answer: only 0 publishes
        if value.strip().lower() not in _TRUE + _FALSE:
            raise UsageError(
                f"${READ_ONLY_VARIABLE}={value!r}: expected 1 (read from the remote cache, publish "
                "nothing) or 0 (publish what this machine builds); unset it to take the project "
                "file's read_only"
            )
        return f"${READ_ONLY_VARIABLE}={value.strip()}" if value.strip().lower() in _TRUE else ""
    return project.read_only_at if project is not None and project.read_only else ""
