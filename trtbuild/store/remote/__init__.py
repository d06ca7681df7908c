"""A shared remote cache (fsspec: a shared folder, S3) behind the local store: see layer.py."""

from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import RemoteSettings, parse_remote_url

__all__ = ["RemoteSettings", "RemoteStore", "parse_remote_url"]
