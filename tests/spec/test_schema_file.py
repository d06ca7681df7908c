"""The JSON Schema itself: valid, documented, closed, and in step with model.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from trtbuild.backends import registry
from trtbuild.spec import model
from trtbuild.spec.validate import SCHEMA_PATH, load_schema

REPO = Path(__file__).resolve().parents[2]


def walk(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from walk(value, f"{where}/{index}")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]


def test_every_property_is_described_and_objects_are_closed() -> None:
    for where, node in walk(load_schema()):
        for name, prop in node.get("properties", {}).items() if where.split("/")[-1] != "properties" else ():
            assert "description" in prop, f"{where}/properties/{name} has no description"
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} allows unknown fields"


def test_enums_match_model_constants() -> None:
    schema = load_schema()
    defs = schema["$defs"]
    assert tuple(defs["input"]["properties"]["dtype"]["enum"]) == model.DTYPES
    assert tuple(defs["precision"]["enum"]) == model.PRECISIONS
    assert tuple(schema["properties"]["export"]["properties"]["exporter"]["enum"]) == model.EXPORTERS
    build = schema["properties"]["build"]["properties"]
    # The schema spells the backend names for editors; the registry is where they are defined.
    assert tuple(build["backend"]["enum"]) == (registry.AUTO, *registry.BACKEND_NAMES)
    assert tuple(build["targets"]["items"]["enum"]) == model.COMPUTE_CAPABILITIES
    tolerance = schema["properties"]["validate"]["properties"]["tolerance"]["properties"]
    assert tuple(tolerance) == model.PRECISIONS


def test_repo_schema_link() -> None:
    link = REPO / "schemas" / "trtbuild.schema.json"
    assert link.is_symlink()
    assert not Path(link.readlink()).is_absolute()
    assert link.resolve() == SCHEMA_PATH.resolve()
    assert json.loads(link.read_text()) == load_schema()
