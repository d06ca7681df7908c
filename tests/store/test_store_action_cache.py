"""Action cache entries: roundtrip, format, damaged entries and missing/corrupt blobs are misses."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from trtbuild.errors import StoreError
from trtbuild.store import ActionResult, FileDigest, Store

KEY = "3f" + "a1" * 31


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def put_outputs(store: Store, tmp_path: Path, **files: bytes) -> dict[str, FileDigest]:
    out: dict[str, FileDigest] = {}
    for name, data in files.items():
        p = tmp_path / "src" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[f"{name}.bin"] = store.put_file(p)
    return out


def ac_file(store: Store, key: str = KEY) -> Path:
    return store.root / "ac" / key[:2] / f"{key}.json"


def test_roundtrip_and_format(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, model=b"onnx bytes", engine=b"plan bytes")
    meta = {"seconds": 1.5, "warnings": ["w1"], "nested": {"b": 1, "a": None}}
    store.put_action(KEY, ActionResult(outputs=outputs, meta=meta))
    got = store.get_action(KEY)
    assert got == ActionResult(outputs=outputs, meta=meta)
    text = ac_file(store).read_text()
    doc = json.loads(text)
    body = {
        "version": 3,
        "outputs": {n: {"hash": d.hash, "size": d.size} for n, d in outputs.items()},
        "meta": meta,
    }
    # The digest covers the key the entry is filed under, too.
    filed = {"key": KEY, "entry": body}
    canonical = json.dumps(filed, sort_keys=True, separators=(",", ":")).encode()
    assert doc == {**body, "digest": "sha256:" + hashlib.sha256(canonical).hexdigest()}
    assert text == json.dumps(doc, sort_keys=True, indent=2) + "\n"
    assert list((store.root / "tmp").iterdir()) == []


def test_miss(store: Store) -> None:
    assert store.get_action(KEY) is None


def test_overwrite(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, a=b"1")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={"run": 1}))
    store.put_action(KEY, ActionResult(outputs=outputs, meta={"run": 2}))
    got = store.get_action(KEY)
    assert got is not None and got.meta == {"run": 2}


def test_empty_outputs(store: Store) -> None:
    store.put_action(KEY, ActionResult(outputs={}, meta={}))
    assert store.get_action(KEY) == ActionResult(outputs={}, meta={})


def test_put_action_requires_blobs(store: Store, tmp_path: Path) -> None:
    missing = {"model.onnx": FileDigest("blake3:" + "0" * 64, 3)}
    with pytest.raises(StoreError, match=r"model\.onnx"):
        store.put_action(KEY, ActionResult(outputs=missing, meta={}))
    outputs = put_outputs(store, tmp_path, a=b"abc")
    wrong_size = {n: FileDigest(d.hash, d.size + 1) for n, d in outputs.items()}
    with pytest.raises(StoreError, match="bytes"):
        store.put_action(KEY, ActionResult(outputs=wrong_size, meta={}))
    assert not ac_file(store).exists()


def test_put_action_rejects_non_json_meta(store: Store) -> None:
    with pytest.raises(StoreError, match="JSON"):
        store.put_action(KEY, ActionResult(outputs={}, meta={"x": object()}))
    with pytest.raises(StoreError, match="JSON"):
        store.put_action(KEY, ActionResult(outputs={}, meta={"x": float("nan")}))
    assert not ac_file(store).exists()
    assert not (store.root / "tmp").exists() or list((store.root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "outputs": {}, "meta": {}}',
        b'{"version": 1, "outputs": [], "meta": {}}',
        b'{"version": 1, "outputs": {}, "meta": []}',
        b'{"version": 1, "outputs": {"a": {"hash": "xyz", "size": 1}}, "meta": {}}',
        b'{"version": 1, "outputs": {"a": {"hash": "blake3:' + b"0" * 64 + b'", "size": -1}}, "meta": {}}',
        b'{"version": 1, "outputs": {"a": {"hash": "blake3:' + b"0" * 64 + b'"}}, "meta": {}}',
        # An older trtbuild's entry: bare sha256 hex (of b"abc"), with its blob's name.
        b'{"version": 1, "outputs": {"a": {"hash": "'
        + b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        + b'", "size": 3}}, "meta": {}}',
    ],
)
def test_damaged_entry_is_a_miss_and_removed(store: Store, content: bytes) -> None:
    path = ac_file(store)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert store.get_action(KEY) is None
    assert not path.exists()


def test_truncated_entry_is_a_miss(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, a=b"abc")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={"k": "v"}))
    path = ac_file(store)
    path.write_bytes(path.read_bytes()[:-10])
    assert store.get_action(KEY) is None
    assert not path.exists()


def test_missing_blob_is_a_miss(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, a=b"abc", b=b"def")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={}))
    os.unlink(store.blob_path(outputs["b.bin"].hash))
    assert store.get_action(KEY) is None
    assert not ac_file(store).exists()
    assert store.has_blob(outputs["a.bin"].hash)  # healthy blobs stay


def test_corrupt_blob_is_a_miss_and_blob_removed(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, a=b"good")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={}))
    blob = store.blob_path(outputs["a.bin"].hash)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil")  # same size
    assert store.get_action(KEY) is None
    assert not blob.exists()
    assert not ac_file(store).exists()


def test_in_place_edit_through_materialized_output_is_a_miss(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, model=b"weights")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={}))
    dest = tmp_path / "build" / "model.bin"
    store.materialize(outputs["model.bin"].hash, dest)
    assert store.get_action(KEY) is not None
    os.chmod(dest, 0o644)
    with open(dest, "ab") as f:
        f.write(b" and more")
    assert store.get_action(KEY) is None


def test_invalid_keys(store: Store) -> None:
    for bad in ["", "a", "../etc", "a/b", ".hidden", "x" * 201, "ab..cd"]:
        with pytest.raises(StoreError, match="invalid action key"):
            store.get_action(bad)


@pytest.mark.parametrize(
    ("old", "new"),
    [('"k": "v"', '"kz": "v"'), ('"a.bin"', '"a.biN"'), ('"size": 3', '"size": 4')],
)
def test_a_valid_json_edit_is_a_miss_with_one_warning(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture, old: str, new: str
) -> None:
    """Issue 13: an entry edited into other valid JSON was a hit (or a KeyError later)."""
    outputs = put_outputs(store, tmp_path, a=b"abc")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={"k": "v"}))
    path = ac_file(store)
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace(old, new))
    assert store.get_action(KEY, task="m/c/build") is None
    assert store.get_action(KEY, task="m/c/build") is None
    assert not path.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("m/c/build: the cache's result cannot be trusted")


def test_an_entry_must_name_its_kinds_outputs(store: Store, tmp_path: Path) -> None:
    outputs = put_outputs(store, tmp_path, a=b"abc")
    store.put_action(KEY, ActionResult(outputs=outputs, meta={}))
    assert store.get_action(KEY, outputs=("a.bin",)) is not None
    assert store.get_action(KEY, outputs=("a.bin", "b.bin")) is None
    assert not ac_file(store).exists()
