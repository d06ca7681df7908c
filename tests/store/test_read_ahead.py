"""Big files are read ahead by a second thread: the chunks are the file's bytes in order, the reader
never outlives the read (the caller closes the file next), and a failure on either side is raised
in the caller's thread."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from trtbuild.store import read_ahead
from trtbuild.store.hashing import digest_file, digest_stream
from trtbuild.store.read_ahead import CHUNK_SIZE, READ_AHEAD_FROM, read_chunks


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "trtbuild-read-ahead"]


@pytest.mark.parametrize("size", [0, CHUNK_SIZE - 1, READ_AHEAD_FROM, READ_AHEAD_FROM + 3 * CHUNK_SIZE + 7])
def test_the_chunks_are_the_file_in_order_with_and_without_read_ahead(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as f:
        assert b"".join(bytes(chunk) for chunk in read_chunks(f, size)) == data
    assert readers() == []


def test_a_failing_consumer_stops_the_reader_before_the_file_is_closed(tmp_path: Path) -> None:
    """E.g. the copy into the CAS hits a full disk: the error is the caller's, and no thread is left
    reading a file that is about to be closed."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(READ_AHEAD_FROM + 5 * CHUNK_SIZE))

    def full_disk(chunk: memoryview) -> None:
        raise OSError(28, "No space left on device")

    with open(path, "rb", buffering=0) as f, pytest.raises(OSError, match="No space left"):
        digest_stream(f, full_disk)
    assert readers() == []


def test_a_read_error_in_the_reader_is_raised_in_the_caller(tmp_path: Path) -> None:
    """A file open for writing only: its first read fails, in the reader thread."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(READ_AHEAD_FROM))
    with open(path, "ab", buffering=0) as f, pytest.raises(io.UnsupportedOperation, match=r"not .*reading"):
        list(read_chunks(f, READ_AHEAD_FROM))
    assert readers() == []


def test_digests_agree_across_the_read_ahead_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 * CHUNK_SIZE + 11))
    in_turn = digest_file(path)
    monkeypatch.setattr(read_ahead, "READ_AHEAD_FROM", 1)
    assert digest_file(path) == in_turn
