"""A config parsed before is read back from the cache, exactly, and only while its bytes are the same."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trtbuild.errors import ConfigError
from trtbuild.spec.yamlmarks import load_yaml
from trtbuild.store import Store

CONFIG = """\
model: {name: tiny, source: "tinynet:TinyNet"}
numbers: [1, 1.0, 1e-4, -0.0, .inf, true, null, "1", '2024-01-01', yes]
nested:
  - {a: [x, {b: 2}]}
"""


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "validated").glob("*/*.json"))


def test_an_unchanged_config_is_read_back_exactly(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    parsed = Store(tmp_path / "cache").parsed_configs()
    fresh = load_yaml(config)
    assert load_yaml(config, parsed) == fresh and len(entries(tmp_path / "cache")) == 1
    remembered = load_yaml(config, parsed)
    assert repr(remembered) == repr(fresh)  # same types too: 1, 1.0, True, None and "1" stay apart
    # It is the cache that answered (and whoever can write the cache decides, as for action entries,
    # by writing a matching checksum line); an edit without it is a miss, parsed again (issue 13).
    (entry,) = entries(tmp_path / "cache")
    doc = json.loads(entry.read_bytes().split(b"\n", 1)[1])
    doc["document"]["model"]["name"] = "planted"
    body = json.dumps(doc).encode()
    entry.write_bytes(body)
    assert load_yaml(config, parsed)[0]["model"]["name"] == "tiny"
    entry.write_bytes(
        b"named-sha256:"
        + hashlib.sha256(entry.stem.encode() + b"\n" + body).hexdigest().encode()
        + b"\n"
        + body
    )
    assert load_yaml(config, parsed)[0]["model"]["name"] == "planted"


def test_a_changed_config_is_parsed_again(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    parsed = Store(tmp_path / "cache").parsed_configs()
    load_yaml(config, parsed)
    config.write_text(CONFIG.replace("name: tiny", "name: tinier"))
    assert load_yaml(config, parsed)[0]["model"]["name"] == "tinier"


def test_a_damaged_entry_is_parsed_again(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    parsed = Store(tmp_path / "cache").parsed_configs()
    load_yaml(config, parsed)
    (entry,) = entries(tmp_path / "cache")
    entry.write_text('{"document": ')
    assert load_yaml(config, parsed) == load_yaml(config)


def test_another_configs_remembered_parse_in_its_place_is_not_used(tmp_path: Path) -> None:
    """A remembered parse checks its own name too: another config's file copied (or swapped) over
    it, checksum line and all, is a miss. Before, `cp` of a lenient config's entry over a strict
    one's made `run strict.yaml` build and gate with the lenient tolerances, exit 0, lock written."""
    strict, lenient = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    strict.write_text(CONFIG)
    lenient.write_text(CONFIG.replace("name: tiny", "name: planted"))
    parsed = Store(tmp_path / "cache").parsed_configs()
    load_yaml(lenient, parsed)
    (lenient_entry,) = entries(tmp_path / "cache")
    load_yaml(strict, parsed)
    (strict_entry,) = [entry for entry in entries(tmp_path / "cache") if entry != lenient_entry]
    strict_entry.write_bytes(lenient_entry.read_bytes())
    assert load_yaml(strict, parsed)[0]["model"]["name"] == "tiny"


def test_a_config_with_an_error_is_not_remembered(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model:\n\tname: x\n")
    parsed = Store(tmp_path / "cache").parsed_configs()
    for _ in range(2):
        with pytest.raises(ConfigError) as raised:
            load_yaml(config, parsed)
        assert "tab" in raised.value.problems[0].message
    assert entries(tmp_path / "cache") == []


def test_a_remembered_parse_past_the_bounds_is_parsed_again(tmp_path: Path) -> None:
    """The parse cache hands back only documents within yamlbounds' limits: an entry nesting 900
    levels (or holding 30,000 values) is not used; the file is parsed again, its bounds checked."""
    config = tmp_path / "c.yaml"
    config.write_text("a: 1\n")
    parsed = Store(tmp_path / "cache").parsed_configs()
    load_yaml(config, parsed)
    (entry,) = entries(tmp_path / "cache")
    deep: object = 1
    for _ in range(900):
        deep = [deep]
    for document in ({"a": deep}, {"a": list(range(30_000))}, {"a": 2}):
        body = json.dumps({"document": document, "marks": [[[], 1, 1]]}).encode()
        # With a matching checksum line, as whoever can write the cache could plant it.
        entry.write_bytes(
            b"named-sha256:"
            + hashlib.sha256(entry.stem.encode() + b"\n" + body).hexdigest().encode()
            + b"\n"
            + body
        )
        expected = 2 if document == {"a": 2} else 1  # the last: within bounds, so it is used
        assert load_yaml(config, parsed)[0] == {"a": expected}
