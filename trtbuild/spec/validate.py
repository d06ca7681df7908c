"""Validate a loaded config against the JSON Schema and explain each error like a compiler would.

jsonschema's own messages ("'seventeen' is not of type 'integer'", "Additional properties are not
allowed") name neither the line nor what to do, and an anyOf failure arrives as one error wrapping
every branch's complaints. Here each error becomes one `Problem` with the file:line:col of the
offending node (of the key, for an unknown field), the field path, expected vs found, and a hint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

from trtbuild.errors import Location, Problem, printable
from trtbuild.spec.model import FieldPath, format_field_path
from trtbuild.spec.yamlmarks import key_location
from trtbuild.toolchain import version_of

SCHEMA_PATH = Path(__file__).with_name("trtbuild.schema.json")

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@functools.cache
def load_schema() -> dict[str, Any]:
    """The config schema (the same file `schemas/trtbuild.schema.json` links to)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


class ValidatedDocuments(Protocol):
    """Digests of documents that passed schema validation (the cache keeps them between runs)."""

    def __contains__(self, digest: object) -> bool: ...

    def add(self, digest: str) -> None: ...


@functools.cache
def _validator() -> Draft202012Validator:
    # jsonschema is imported only when a document must be validated: with its format checkers it is
    # a sixth of a fully cached run's start-up, and an unchanged config needs no second look.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


def validate_document(
    document: Any,
    marks: dict[FieldPath, Location],
    file: Path,
    validated: ValidatedDocuments | None = None,
) -> list[Problem]:
    """Every schema violation in `document`, one Problem per mistake, in file order. A document whose
    digest is in `validated` passed this very schema before, with this jsonschema: it is not checked
    again; one that passes now is added."""
    digest = document_digest(document) if validated is not None else None
    if validated is not None and digest in validated:
        return []
    explainer = _Explainer(marks, file)
    errors = _drop_consequences(list(_validator().iter_errors(document)))
    problems, errors = explainer.skipped_levels(errors)
    for error in errors:
        problems.extend(explainer.explain(error))
    if validated is not None and digest is not None and not problems:
        validated.add(digest)
    return sort_problems(_unique(problems))


def document_digest(document: Any) -> str:
    """What a schema verdict depends on: the schema, the validator's version and the document.

    The document is spelled by `repr`, which keeps every type apart (1, 1.0, True and "1"; an int
    key and a str key; a date and a string), unlike JSON. Its key order is kept too: the same
    document written in another order is only validated once more."""
    material = f"{_schema_digest()}\n{_jsonschema_version()}\n{document!r}"
    return hashlib.sha256(material.encode()).hexdigest()


@functools.cache
def _schema_digest() -> str:
    """The schema and this module's own code: what the schema check accepts depends on both."""
    return hashlib.sha256(SCHEMA_PATH.read_bytes() + Path(__file__).read_bytes()).hexdigest()


@functools.cache
def _jsonschema_version() -> str:
    return version_of("jsonschema") or "unknown"


def _drop_consequences(errors: list[ValidationError]) -> list[ValidationError]:
    """A value of the wrong type also fails its range, const or pattern: report only the type."""
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    return [e for e in errors if e.validator == "type" or tuple(e.absolute_path) not in mistyped]


def _line_column(location: Location | None) -> tuple[int, int]:
    return (location.line, location.column) if location else (1 << 30, 0)


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems in the order of the file, as a compiler lists them."""
    return sorted(problems, key=lambda problem: (*_line_column(problem.location), problem.field_path))


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, str]] = set()
    result = []
    for problem in problems:
        identity = (str(problem.location), problem.field_path, problem.message)
        if identity not in seen:
            seen.add(identity)
            result.append(problem)
    return result


def describe_value(value: Any) -> str:
    """How a found value is named in messages: `string 'seventeen'`, `integer 5`, `a list`."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    return "a list" if value else "an empty list"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib  # only a misspelt word needs suggestions

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _quoted(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else json.dumps(v) for v in values)


# types-jsonschema types these attributes as `X | Unset` (for errors made by hand); the validator
# always sets them, so read them through these accessors.
def _schema(error: ValidationError) -> dict[str, Any]:
    schema = error.schema
    return dict(schema) if isinstance(schema, Mapping) else {}


def _instance(error: ValidationError) -> Any:
    return error.instance


def _value(error: ValidationError) -> Any:
    return error.validator_value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


class _Explainer:
    def __init__(self, marks: dict[FieldPath, Location], file: Path) -> None:
        self.marks = marks
        self.file = file

    def skipped_levels(self, errors: list[ValidationError]) -> tuple[list[Problem], list[ValidationError]]:
        """Collapse "entry 'shape' is not a mapping" for each field of a name -> fields map into one problem.

        `inputs: {shape: [...], dtype: float32}` (the input's name left out) makes every field an
        entry of the wrong type; that is one mistake, a missing level, and is reported once.
        """
        fields_by_parent: dict[FieldPath, list[str]] = {}
        rest = []
        for error in errors:
            path = tuple(error.absolute_path)
            fields = self._fields(error)
            if fields and path and isinstance(path[-1], str) and path[-1] in fields:
                fields_by_parent.setdefault(path[:-1], []).append(path[-1])
            else:
                rest.append(error)
        problems = [self._skipped_level(parent, keys) for parent, keys in fields_by_parent.items()]
        return problems, rest

    def _fields(self, error: ValidationError) -> dict[str, Any]:
        """The fields of the mapping expected where `error` found something else, if it was one."""
        if error.validator == "type":
            return dict(_schema(error).get("properties", {}))
        if error.validator == "anyOf" and not isinstance(_instance(error), dict):
            # An entry written one of several ways (a profile's: [min, opt, max] or a mapping).
            branches = [self._resolve(branch) for branch in _value(error)]
            return {key: field for branch in branches for key, field in branch.get("properties", {}).items()}
        return {}

    def _skipped_level(self, parent: FieldPath, keys: list[str]) -> Problem:
        keys = sorted(keys, key=lambda key: _line_column(key_location(self.marks, (*parent, key))))
        name = format_field_path(parent)
        listed = ", ".join(f"'{key}'" for key in keys)
        example = ", ".join(f"{key}: ..." for key in keys)
        return Problem(
            f"{listed} {'is a field' if len(keys) == 1 else 'are fields'} of each entry of {name}, "
            "not an entry name",
            key_location(self.marks, (*parent, keys[0])) or self._location(parent),
            name,
            f"{name} maps names to their fields: put the fields under a name, e.g. {{<name>: {{{example}}}}}",
        )

    def explain(self, error: ValidationError) -> Iterator[Problem]:
        handler = getattr(self, f"_on_{error.validator}", None)
        if handler is not None:
            yield from handler(error)
        else:
            yield self._problem(error, f"{error.message}", self._description(error))

    # -- helpers -------------------------------------------------------------------------------

    def _location(self, path: FieldPath) -> Location:
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return Location(self.file, 1, 1)

    def _problem(
        self, error: ValidationError, message: str, hint: str = "", path: FieldPath | None = None
    ) -> Problem:
        where = tuple(error.absolute_path) if path is None else path
        return Problem(message, self._location(where), format_field_path(where), hint)

    def _description(self, error: ValidationError) -> str:
        """The `description` of the nearest schema around the error: what the field is for."""
        current: Any = error
        while current is not None:
            description = _schema(current).get("description")
            if description:
                return str(description)
            current = current.parent
        return ""

    def _resolve(self, schema: Any) -> dict[str, Any]:
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        if ref.startswith("#/$defs/"):
            resolved: dict[str, Any] = {**load_schema()["$defs"][ref.removeprefix("#/$defs/")], **schema}
            return resolved
        return schema if isinstance(schema, dict) else {}

    # -- one method per JSON Schema keyword ------------------------------------------------------

    def _on_additionalProperties(self, error: ValidationError) -> Iterator[Problem]:
        allowed = list(_schema(error).get("properties", {}))
        path = tuple(error.absolute_path)
        for key in _instance(error):
            if key in allowed:
                continue
            suggestion = did_you_mean(key, allowed)
            hint = f"did you mean '{suggestion}'? " if suggestion else ""
            hint += (
                f"allowed fields here: {', '.join(allowed)}" if allowed else "this mapping takes no fields"
            )
            location = key_location(self.marks, (*path, key)) or self._location(path)
            yield Problem(
                f"unknown field '{printable(key, newlines=False)}'",
                location,
                format_field_path((*path, key)),
                hint,
            )

    def _on_required(self, error: ValidationError) -> Iterator[Problem]:
        properties = _schema(error).get("properties", {})
        unknown = [key for key in _instance(error) if key not in properties]
        for name in _value(error):
            # A misspelt required key is already reported as an unknown field with "did you mean".
            if name in _instance(error) or did_you_mean(name, unknown):
                continue
            description = properties.get(name, {}).get("description", "")
            hint = f"add `{name}:`" + (f" — {description}" if description else "")
            yield self._problem(error, f"missing required field '{name}'", hint)

    def _on_type(self, error: ValidationError) -> Iterator[Problem]:
        expected = _value(error)
        names = [_TYPE_NAMES.get(t, t) for t in ([expected] if isinstance(expected, str) else expected)]
        found = _instance(error)
        message = f"expected {' or '.join(names)}, found {describe_value(found)}"
        yield self._problem(error, message, self._type_hint(expected, found, error))

    def _type_hint(self, expected: Any, found: Any, error: ValidationError) -> str:
        if found is None:
            return "give the field a value, or remove it to use the default"
        if expected in ("integer", "number") and isinstance(found, str):
            try:
                float(found.replace("_", ""))
            except ValueError:
                pass
            else:
                return f"remove the quotes: write {found.strip()}, not '{found}'"
        if expected == "string" and isinstance(found, (int, float)) and not isinstance(found, bool):
            return f"put it in quotes: '{found}'"
        if expected == "boolean" and isinstance(found, str):
            return "write true or false (yes/no/on/off are plain strings here)"
        return self._description(error)

    def _on_enum(self, error: ValidationError) -> Iterator[Problem]:
        allowed = _value(error)
        message = f"expected one of {_quoted(allowed)}, found {describe_value(_instance(error))}"
        suggestion = (
            did_you_mean(_instance(error), [str(v) for v in allowed])
            if isinstance(_instance(error), str)
            else None
        )
        hint = f"did you mean '{suggestion}'?" if suggestion else self._description(error)
        yield self._problem(error, message, hint)

    def _on_const(self, error: ValidationError) -> Iterator[Problem]:
        message = f"expected {_quoted([_value(error)])}, found {describe_value(_instance(error))}"
        yield self._problem(error, message, self._description(error))

    def _on_pattern(self, error: ValidationError) -> Iterator[Problem]:
        wanted = _schema(error).get("patternErrorMessage") or f"text matching {_value(error)}"
        yield self._problem(
            error, f"expected {wanted}, found {describe_value(_instance(error))}", self._description(error)
        )

    def _bounds(self, error: ValidationError) -> Iterator[Problem]:
        schema = _schema(error)
        kind = "an integer" if schema.get("type") == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            wanted = f"{kind} from {low} to {high}"
        elif low is not None:
            wanted = f"{kind} >= {low}"
        elif high is not None:
            wanted = f"{kind} <= {high}"
        else:
            wanted = error.message
        yield self._problem(error, f"expected {wanted}, found {_instance(error)}", self._description(error))

    _on_minimum = _bounds
    _on_maximum = _bounds

    def _on_minItems(self, error: ValidationError) -> Iterator[Problem]:
        yield self._count(error, "item")

    _on_maxItems = _on_minItems

    def _count(self, error: ValidationError, unit: str) -> Problem:
        low = _schema(error).get(f"min{unit.title()}s")
        high = _schema(error).get(f"max{unit.title()}s")
        if low is not None and low == high:
            wanted = f"exactly {low} {unit}s"
        elif str(error.validator).startswith("min"):
            wanted = f"at least {low} {unit}{'s' if low != 1 else ''}"
        else:
            wanted = f"at most {high} {unit}s"
        found = len(_instance(error))
        return self._problem(error, f"expected {wanted}, found {found}", self._description(error))

    def _on_minProperties(self, error: ValidationError) -> Iterator[Problem]:
        fields = list(_schema(error).get("properties", {}))
        wanted = f"at least one of {', '.join(fields)}" if fields else "at least one entry"
        yield self._problem(error, f"expected {wanted}, found an empty mapping", self._description(error))

    def _on_uniqueItems(self, error: ValidationError) -> Iterator[Problem]:
        seen: list[Any] = []
        for index, item in enumerate(_instance(error)):
            if item in seen:
                path = (*error.absolute_path, index)
                yield self._problem(
                    error, f"{describe_value(item)} is listed twice", "list each value once", path
                )
                return
            seen.append(item)

    def _on_propertyNames(self, error: ValidationError) -> Iterator[Problem]:
        yield self._problem(
            error, f"invalid name {_instance(error)!r}: {error.message}", self._description(error)
        )

    def _on_anyOf(self, error: ValidationError) -> Iterator[Problem]:
        branches: Sequence[Any] = _value(error)
        resolved = [self._resolve(branch) for branch in branches]
        fitting = [i for i, branch in enumerate(resolved) if self._type_fits(branch, _instance(error))]
        if len(fitting) == 1:
            # The value has the shape of exactly one alternative: explain why that one failed.
            sub_errors = [e for e in error.context or () if e.relative_schema_path[0] == fitting[0]]
            from jsonschema.exceptions import best_match  # only on an anyOf failure

            chosen = best_match(sub_errors) if sub_errors else None
            if chosen is not None:
                yield from self.explain(chosen)
                return
        wanted = " or ".join(self._branch_name(branch) for branch in resolved)
        yield self._problem(
            error, f"expected {wanted}, found {describe_value(_instance(error))}", self._description(error)
        )

    _on_oneOf = _on_anyOf

    def _type_fits(self, schema: dict[str, Any], value: Any) -> bool:
        found = _json_type(value)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            return found in types or (found == "integer" and "number" in types)
        if "enum" in schema:
            return any(_json_type(v) == found for v in schema["enum"])
        return True

    def _branch_name(self, schema: dict[str, Any]) -> str:
        if "enum" in schema:
            return f"one of {_quoted(schema['enum'])}"
        if schema.get("type") == "string" and "patternErrorMessage" in schema:
            return str(schema["patternErrorMessage"])
        return _TYPE_NAMES.get(str(schema.get("type")), "a value")
