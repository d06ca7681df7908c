"""Reading the lock file: formats, the migration rule, and unreadable locks named with their line.

Plain files on disk; no task runs. The end-to-end behaviour (exit statuses, the run summary's
notice) is in tests/e2e/test_locked.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trtbuild.errors import EXIT_USAGE, NewerLockFormat, UnreadableLock
from trtbuild.plan.keys import key_material, task_key
from trtbuild.plan.lock import FORMAT_VERSION, lock_entry, older_format, read_lock, render
from trtbuild.store import ActionResult, FileDigest

SOURCE = "blake3:" + "ef" * 32
MATERIAL = key_material("export", 3, {"opset": 17}, {"source:net.py": SOURCE}, {"torch": "2.14.1"})
ENTRY = lock_entry(
    MATERIAL,
    task_key(MATERIAL),
    ActionResult({"model.onnx": FileDigest("blake3:" + "cd" * 32, 3)}, {}),
    ["fp32"],
)
# What trtbuild wrote before format 3: the same entry with bare sha256 hex content hashes.
SHA256_ENTRY = {
    **ENTRY,
    "inputs": {"source:net.py": "ef" * 32},
    "outputs": {"model.onnx": {"hash": "cd" * 32, "size": 3}},
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.lock"
    path.write_text(text)
    return path


def test_a_written_lock_has_format_3_and_reads_back(tmp_path: Path) -> None:
    path = write(tmp_path, render(tmp_path / "tiny.yaml", {"tiny/export": ENTRY}))
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION == 3
    lock = read_lock(path)
    assert lock is not None and lock.format_version == 3 and lock.tasks == {"tiny/export": ENTRY}
    assert older_format(lock) is None


@pytest.mark.parametrize("header", [{"version": 1}, {"format_version": 2}])
def test_a_sha256_lock_of_format_1_or_2_is_read_and_said_to_be_older(
    tmp_path: Path, header: dict[str, int]
) -> None:
    """Read (a plain run replaces it and says so), and every message about it says why it is older."""
    document = {**header, "config": "tiny.yaml", "tasks": {"tiny/export": SHA256_ENTRY}}
    lock = read_lock(write(tmp_path, json.dumps(document)))
    version = next(iter(header.values()))
    assert lock is not None and lock.format_version == version and lock.tasks["tiny/export"] == SHA256_ENTRY
    assert older_format(lock) == f"lock format {version} with sha256 hashes, older than 3 (BLAKE3 hashes)"


def test_format_3_takes_no_sha256_hashes_nor_format_2_blake3_ones(tmp_path: Path) -> None:
    """A hash's spelling and the lock's format go together: a mix is an edited lock, not one to compare."""
    mixed = json.dumps({"format_version": 3, "tasks": {"tiny/export": SHA256_ENTRY}}, indent=2)
    with pytest.raises(UnreadableLock, match=r'`outputs.*` is "cdcd.*not a content digest \(blake3:'):
        read_lock(write(tmp_path, mixed))
    backwards = json.dumps({"format_version": 2, "tasks": {"tiny/export": ENTRY}}, indent=2)
    with pytest.raises(UnreadableLock, match="not a sha256 hex digest"):
        read_lock(write(tmp_path, backwards))


def test_no_lock_is_none(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "absent.lock") is None


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (
            '{\n  "format_version": 2,\n<<<<<<< HEAD\n  "tasks": {}\n=======\n  "tasks": {"a": 1}\n'
            ">>>>>>> theirs\n}\n",
            "3:1",
            "git merge-conflict marker '<<<<<<<'",
        ),
        ('{\n  "format_version": 2,\n  "tasks": {\n}', "4:2", "not JSON: Expecting ',' delimiter"),
        ("[1, 2]\n", "1:1", "a JSON list, not a lock (an object)"),
        ('{"format_version": 2, "tasks": []}', "1:23", "`tasks` is not an object of task entries"),
        ('{"format_version": 2,\n "tasks": {"t": {"key": 5}}}', "2:12", "task t: `kind` is missing"),
        ('{"tasks": {}}', "1:1", "no lock format version: None"),
        ("", "1:1", "not JSON: Expecting value"),
    ],
)
def test_an_unreadable_lock_names_its_line_and_what_to_do(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UnreadableLock) as raised:
        read_lock(path, tmp_path / "tiny.yaml")
    message = str(raised.value)
    assert message.startswith(f"{path}:{where}: the lock is unreadable: {what}"), message
    assert f"`trtbuild run {tmp_path / 'tiny.yaml'}` (without --locked" in message
    assert raised.value.exit_status == EXIT_USAGE


def test_a_newer_format_is_refused_naming_both_formats(tmp_path: Path) -> None:
    path = write(tmp_path, '{"format_version": 4, "tasks": {"t": {"whatever": true}}}')
    with pytest.raises(NewerLockFormat) as raised:
        read_lock(path)
    message = str(raised.value)
    assert f"{path}:1:2: lock format 4 is newer than this trtbuild reads (format 3 at most)" in message
    assert "upgrade trtbuild" in message and raised.value.exit_status == EXIT_USAGE


def test_the_reproducibility_record_is_copied_and_is_no_key_material() -> None:
    material = key_material("build", 1, {}, {"model.onnx": "blake3:" + "ab" * 32}, {})
    record = {"byte_reproducible": False, "reason": "no setarch", "environment": "cpython-3.11/1a2b"}
    outputs = {"model.engine": FileDigest("blake3:" + "ef" * 32, 7)}
    entry = lock_entry(material, task_key(material), ActionResult(outputs, {"reproducibility": record}), [])
    assert entry["reproducibility"] == record and entry["key"] == task_key(material)
    assert "reproducibility" not in material
    assert "reproducibility" not in lock_entry(material, task_key(material), ActionResult(outputs, {}), [])


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        (["tools"], None, "`tools` is null, not an object"),
        (["inputs"], [], "`inputs` is a list, not an object of {input: content hash}"),
        (["inputs", "source:net.py"], 7, '`inputs["source:net.py"]` is 7, not a string'),
        (["cells"], 7, "`cells` is 7, not a list of cell names"),
        (["cells"], [None], "`cells[0]` is null, not a string"),
        (["params"], "opset 17", '`params` is "opset 17", not an object'),
        (["version"], True, "`version` is true, not an integer"),
        (["key"], "ab", '`key` is "ab", not a sha256 hex digest (64 characters 0-9a-f)'),
        (["outputs", "model.onnx"], None, '`outputs["model.onnx"]` is null, not an object of {hash, size}'),
        (["outputs", "model.onnx", "size"], "3", '`outputs["model.onnx"]["size"]` is "3", not an integer'),
        (
            ["outputs", "model.onnx", "hash"],
            "cd" * 32,
            f'`outputs["model.onnx"]["hash"]` is "{"cd" * 18}..., not a content digest '
            "(blake3: and 64 characters 0-9a-f)",
        ),
        (["reproducibility"], [], "`reproducibility` is a list, not an object"),
        (["scheme"], None, "`scheme` is null, not an integer"),
    ],
)
def test_a_malformed_field_of_an_entry_is_an_unreadable_lock_naming_task_field_and_line(
    tmp_path: Path, field: list[str], value: Any, what: str
) -> None:
    """On 64a0d54 such a lock read as usable; `--locked`, `plan --explain` and `verify` then crashed
    ("internal error: TypeError: 'NoneType' object is not iterable") or compared nothing."""
    document = json.loads(render(tmp_path / "tiny.yaml", {"tiny/probe": ENTRY, "tiny/export": ENTRY}))
    holder = document["tasks"]["tiny/export"]
    for name in field[:-1]:
        holder = holder[name]
    holder[field[-1]] = value
    text = json.dumps(document, indent=2, sort_keys=True)
    path = write(tmp_path, text)
    with pytest.raises(UnreadableLock) as raised:
        read_lock(path, tmp_path / "tiny.yaml")
    # The line of the field inside tiny/export's entry (after tiny/probe's entry, which has one too).
    lines = text.splitlines()
    entry_at = next(n for n, line in enumerate(lines) if '"tiny/export"' in line)
    line = next(n for n in range(entry_at, len(lines)) if f'"{field[-1]}"' in lines[n]) + 1
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert f"the lock is unreadable: task tiny/export: {what}\n" in message
    assert raised.value.exit_status == EXIT_USAGE


def test_a_missing_field_is_named_at_its_entry(tmp_path: Path) -> None:
    entry = {name: value for name, value in ENTRY.items() if name != "tools"}
    path = write(tmp_path, json.dumps({"format_version": 3, "tasks": {"tiny/export": entry}}, indent=2))
    with pytest.raises(
        UnreadableLock, match=r"tiny.lock:4:5: the lock is unreadable: task tiny/export: `tools` is missing"
    ):
        read_lock(path)
