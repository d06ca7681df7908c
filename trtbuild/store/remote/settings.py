"""Which remote cache a run uses: a URL, and whether this machine may publish to it.

Two kinds of URL, both through fsspec:

- a shared folder: ``file:///mnt/team-cache`` (or the absolute path ``/mnt/team-cache``). The folder
  must exist: a missing mount would otherwise fill a local folder of that name.
- S3 or an S3-compatible server: ``s3://bucket/prefix``, with the endpoint from the standard
  ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) and credentials from the standard AWS environment
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role). Needs the
  ``s3`` extra (s3fs).

A URL never carries credentials: one with a user or password part is refused, so that no secret
reaches a log, a lock, a report or a shell history through it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from trtbuild.errors import UsageError

SCHEMES = ("file", "s3")
# How long an S3 request waits for the server, to connect (at most CONNECT_TIMEOUT_S in files.py)
# and between two bytes of an answer; `TRTBUILD_REMOTE_TIMEOUT` sets it (cli/remote.py). A server
# that never answers costs ATTEMPTS (files.py) times this, once per run.
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RemoteSettings:
    url: str  # normalised: file:///abs/path or s3://bucket/prefix, no trailing slash
    read_only: bool = False
    source: str = "--remote-cache"  # where the URL came from, for messages
    read_only_from: str = ""  # where read_only came from (a flag, a variable, the project file)
    timeout_s: float = READ_TIMEOUT_S  # S3 only: a shared folder's reads are the mount's

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def path(self) -> str:
        """The URL without its scheme: a folder (file) or ``bucket/prefix`` (s3)."""
        return self.url.split("://", 1)[1]

    def describe(self) -> str:
        return f"remote cache {self.url}" + (" (read-only)" if self.read_only else "")


def parse_remote_url(
    url: str,
    *,
    source: str,
    read_only: bool = False,
    read_only_from: str = "",
    timeout_s: float = READ_TIMEOUT_S,
) -> RemoteSettings:
    """The settings for ``url``; UsageError naming ``source`` when it cannot be a remote cache."""
    text = url.strip()
    if text.startswith("/"):
        text = "file://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if not scheme and "@" not in text:
        raise UsageError(
            f"{source}: {_shown(url)}: a shared folder is an absolute path, file:///path/to/folder "
            "(a relative one would mean another folder in each checkout)"
        )
    if scheme not in SCHEMES:
        raise UsageError(
            f"{source}: {_shown(url)} is not a remote cache URL this trtbuild reads; use "
            "file:///path/to/shared/folder or s3://bucket/prefix"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UsageError(
            f"{source}: the remote cache URL must not carry credentials; give them the standard AWS way "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role)"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{source}: the remote cache URL takes no query or fragment ('?' or '#')")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{source}: {_shown(url)}: a file URL names a local folder: file:///path")
        folder = os.path.normpath(unquote(parts.path))  # file:///mnt/team%20cache
        if not os.path.isabs(folder):
            raise UsageError(f"{source}: {_shown(url)}: the shared folder must be an absolute path")
        return RemoteSettings(f"file://{folder}", read_only, source, read_only_from, timeout_s)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise UsageError(f"{source}: {_shown(url)}: an S3 URL names a bucket: s3://bucket/prefix")
    if importlib.util.find_spec("s3fs") is None:
        raise UsageError(
            f"{source}: an s3:// remote cache needs s3fs, which this installation lacks: "
            "pip install 'trtbuild[s3]'"
        )
    return RemoteSettings(f"s3://{bucket}/{prefix}".rstrip("/"), read_only, source, read_only_from, timeout_s)


def _shown(url: str) -> str:
    """The URL for a message, without anything that could be a secret: whatever comes before an
    '@' (a user or password part, also in a URL whose scheme is misspelt or missing)."""
    text = url.strip()
    if "@" in text:
        scheme, _, rest = text.rpartition("://")
        text = f"{scheme}://" * bool(scheme) + "…@" + rest.rsplit("@", 1)[1]
    return repr(text)
