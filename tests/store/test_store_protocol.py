"""The store protocol is the whole of what the rest of trtbuild asks of a cache.

Both caches implement every member of `CacheStore` with its signature (mypy checks it too, through
`store.open_store`'s return type), and every `store.<name>` the executor, planner, reports, debug
tools, the API and the CLI use is a protocol member: a call the protocol lacks would work on the
local store and fail, or bypass the remote, behind `--remote-cache`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Iterable
from pathlib import Path

import pytest

from trtbuild.store import protocol
from trtbuild.store.fsck import StoreCheck
from trtbuild.store.protocol import CacheStore
from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import parse_remote_url
from trtbuild.store.store import Store

PACKAGE = Path(protocol.__file__).resolve().parents[1]
CALLERS = ("exec", "plan", "report", "debug", "cli", "tasks", "api.py")
# `FsckResult.store` (api.py) is fsck's StoreCheck, not a cache: fsck takes the local Store itself.
NOT_A_CACHE = {"checked", "findings"}


def protocol_members() -> set[str]:
    tree = ast.parse(Path(protocol.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CacheStore")
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}


def store_uses() -> dict[str, list[str]]:
    """Attribute name -> where it is used on something called `store` (`store.x`, `self.store.x`,
    `the_plan.store.x`), in the modules outside store/ that get a cache."""
    uses: dict[str, list[str]] = {}
    for top in CALLERS:
        path = PACKAGE / top
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.Attribute) and _is_store(node.value):
                    where = f"{module.relative_to(PACKAGE.parent)}:{node.lineno}"
                    uses.setdefault(node.attr, []).append(where)
    return uses


def _is_store(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "store") or (
        isinstance(node, ast.Attribute) and node.attr == "store"
    )


def test_the_protocol_lists_what_the_callers_use() -> None:
    members = protocol_members()
    uses = store_uses()
    assert {"get_action", "put_action", "materialize", "local_path", "read_verified"} <= set(uses)
    missing = {name: where for name, where in uses.items() if name not in members | NOT_A_CACHE}
    assert not missing, f"used on a store but not in CacheStore: {missing}"
    assert {field.name for field in dataclasses.fields(StoreCheck)} >= NOT_A_CACHE


@pytest.fixture(params=["local", "remote"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    local = Store(tmp_path / "cache")
    if request.param == "local":
        return local
    return RemoteStore(local, parse_remote_url(f"file://{tmp_path / 'share'}", source="test"))


def test_both_caches_implement_every_member_with_its_signature(cache: object) -> None:
    for name in sorted(protocol_members()):
        declared = inspect.getattr_static(CacheStore, name)
        assert hasattr(cache, name), f"{type(cache).__name__} lacks {name}"
        if isinstance(declared, property):
            assert not callable(getattr(cache, name)), name
            continue
        bound = inspect.signature(getattr(cache, name))
        unbound = list(inspect.signature(declared).parameters.values())[1:]  # without self
        assert _spelled(bound.parameters.values()) == _spelled(unbound), (type(cache).__name__, name)


def _spelled(parameters: Iterable[inspect.Parameter]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in parameters]
