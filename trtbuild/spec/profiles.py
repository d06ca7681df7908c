"""Profiles by dim name, expanded to the min/opt/max shapes per input that TensorRT takes.

    inputs:
      ids:  {shape: [batch, seq], dtype: int64}
      mask: {shape: [batch, seq]}
    profiles:
      short: {batch: [1, 4, 8], seq: [1, 16, 32]}            # by dim name: [min, opt, max] per dim
      long:  {batch: [1, 4, 8], seq: {min: 32, opt: 64, max: 128}}
      exact:                                                 # by input name, as TensorRT spells it
        ids:  {min: [1, 1], opt: [4, 16], max: [8, 32]}
        mask: {min: [1, 1], opt: [4, 16], max: [8, 32]}

An entry is a dim's sizes when it is [min, opt, max] or {min, opt, max} of integers, an input's shapes
when its min/opt/max are lists; a profile is written one way. The loader expands a profile by dim
name into the shapes of every input that uses its dims (fixed axes keep their size) before the spec
is normalised, so the resolver, the keys and the lock know one form: a profile by dim name and its
expansion written by hand are the same tasks. An input whose sizes are all fixed is added to every
profile at its shape, as TensorRT takes it, so no profile has to repeat it.

The checks here need the dim form as written (its file:line marks); a profile by input name is
checked after normalisation, with the spec (`semantic.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from trtbuild.errors import Location, Problem
from trtbuild.spec.model import FieldPath
from trtbuild.spec.validate import did_you_mean
from trtbuild.spec.yamlmarks import problem_at

KINDS = ("min", "opt", "max")
Marks = Mapping[FieldPath, Location]
# Input name -> {"min": shape, "opt": shape, "max": shape}: a profile by input name, as the schema has it.
InputShapes = dict[str, dict[str, list[int]]]


def per_input_profiles(document: Mapping[str, Any]) -> dict[str, InputShapes]:
    """Every profile of a schema-valid document by input name, fully fixed inputs included.

    A profile by dim name must have passed `profile_problems`: each of its dims is known and given."""
    inputs: dict[str, Any] = document["inputs"]
    fixed = {
        name: [int(d) for d in raw["shape"]]
        for name, raw in inputs.items()
        if not any(isinstance(d, str) for d in raw["shape"])
    }
    result: dict[str, InputShapes] = {}
    for name, entries in document.get("profiles", {}).items():
        shapes = _expand(entries, inputs) if _by_dim(entries) else dict(entries)
        for input_name, shape in fixed.items():
            shapes.setdefault(input_name, dict.fromkeys(KINDS, shape))
        result[name] = shapes
    return result


def _expand(entries: Mapping[str, Any], inputs: Mapping[str, Any]) -> InputShapes:
    sizes = {dim: _sizes(value) for dim, value in entries.items()}
    return {
        name: {
            kind: [sizes[d][index] if isinstance(d, str) else int(d) for d in raw["shape"]]
            for index, kind in enumerate(KINDS)
        }
        for name, raw in inputs.items()
        if any(isinstance(d, str) for d in raw["shape"])
    }


def _is_sizes(value: Any) -> bool:
    """[min, opt, max] or {min, opt, max} of integers: a dim's entry (else an input's shapes)."""
    return isinstance(value, list) or not any(isinstance(value[kind], list) for kind in KINDS)


def _by_dim(entries: Mapping[str, Any]) -> bool:
    return all(_is_sizes(value) for value in entries.values())


def _sizes(value: list[int] | dict[str, int]) -> tuple[int, int, int]:
    low, opt, high = value if isinstance(value, list) else [value[kind] for kind in KINDS]
    return int(low), int(opt), int(high)


def _dims(inputs: Mapping[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Symbolic dim name -> the (input, axis) pairs that use it, in the order of the inputs."""
    dims: dict[str, list[tuple[str, int]]] = {}
    for name, raw in inputs.items():
        for axis, dim in enumerate(raw["shape"]):
            if isinstance(dim, str):
                dims.setdefault(dim, []).append((name, axis))
    return dims


def profile_problems(document: Mapping[str, Any], marks: Marks) -> list[Problem]:
    """What keeps a schema-valid document's profiles by dim name from expanding to shapes per input."""
    dims = _dims(document["inputs"])
    problems: list[Problem] = []
    for name, entries in document.get("profiles", {}).items():
        problems += _profile_problems(name, entries, dims, document["inputs"], marks)
    return problems


def _profile_problems(
    name: str,
    entries: Mapping[str, Any],
    dims: dict[str, list[tuple[str, int]]],
    inputs: Mapping[str, Any],
    marks: Marks,
) -> list[Problem]:
    path: FieldPath = ("profiles", name)
    mixed = [_mixed_entry(marks, (*path, e), v) for e, v in entries.items() if _mixes_kinds(v)]
    if mixed:
        return mixed
    by_dim = [entry for entry, value in entries.items() if _is_sizes(value)]
    if not by_dim:
        return []  # by input name: checked with the normalised spec
    if len(by_dim) < len(entries):
        by_input = [entry for entry in entries if entry not in by_dim]
        return [_two_forms(marks, path, by_dim, by_input)]
    unknown = [entry for entry in entries if entry not in dims]
    if any(entry in KINDS for entry in unknown):
        return [_left_out_input(marks, path, [entry for entry in entries if entry in KINDS], inputs)]
    return [
        *(_unknown_dim(marks, path, entry, entries[entry], dims, inputs) for entry in unknown),
        *_unordered(marks, path, entries, dims),
        *_missing_dims(marks, path, entries, dims, unknown, inputs),
    ]


def _mixes_kinds(value: Any) -> bool:
    return isinstance(value, dict) and len({isinstance(value[kind], list) for kind in KINDS}) == 2


def _mixed_entry(marks: Marks, path: FieldPath, value: dict[str, Any]) -> Problem:
    lists = [kind for kind in KINDS if isinstance(value[kind], list)]
    numbers = [kind for kind in KINDS if kind not in lists]
    entry = path[-1]
    return problem_at(
        marks,
        path,
        f"'{entry}' mixes shapes and sizes: {'/'.join(lists)} a list, {'/'.join(numbers)} a number",
        f"a dim's min, opt and max are sizes ({entry}: {{min: 1, opt: 8, max: 32}}); an input's are "
        "shapes, one size per axis of its shape",
    )


def _two_forms(marks: Marks, path: FieldPath, by_dim: list[str], by_input: list[str]) -> Problem:
    return problem_at(
        marks,
        path,
        f"profile '{path[-1]}' gives sizes by dim name ({', '.join(by_dim)}) and shapes by input name "
        f"({', '.join(by_input)}): a profile is written one way",
        f"give {', '.join(by_input)} by the names of its dims ([min, opt, max] each), or every dynamic "
        "input its min/opt/max shapes; each profile may choose its own way",
        at_key=True,
    )


def _unknown_dim(
    marks: Marks,
    path: FieldPath,
    entry: str,
    value: Any,
    dims: dict[str, list[tuple[str, int]]],
    inputs: Mapping[str, Any],
) -> Problem:
    message = f"profile '{path[-1]}' names '{entry}', which is no dim of any input"
    if entry in inputs:
        own = [d for d in inputs[entry]["shape"] if isinstance(d, str)]
        message = f"profile '{path[-1]}' gives input '{entry}' the sizes {list(_sizes(value))}"
        hint = f"an input takes min/opt/max shapes ({entry}: {{min: [...], opt: [...], max: [...]}})"
        hint += f", or name its dims instead: {', '.join(own)}" if own else "; it is fixed: leave it out"
    else:
        suggestion = did_you_mean(entry, dims)
        hint = f"did you mean '{suggestion}'? " if suggestion else ""
        hint += f"the inputs' dims: {', '.join(dims)}" if dims else "no input has a named (dynamic) dim"
    return problem_at(marks, (*path, entry), message, hint, at_key=True)


def _left_out_input(marks: Marks, path: FieldPath, kinds: list[str], inputs: Mapping[str, Any]) -> Problem:
    """`short: {min: [...], opt: [...], max: [...]}`: the input's name left out, not three dims."""
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    example = next(iter(inputs))
    return problem_at(
        marks,
        (*path, kinds[0]),
        f"{listed} {'is a field' if len(kinds) == 1 else 'are fields'} of an input's entry in profile "
        f"'{path[-1]}', not dim names",
        f"put them under the input's name ({example}: {{min: [...], opt: [...], max: [...]}}), or give "
        "each dim its sizes by name ([min, opt, max])",
        at_key=True,
    )


def _unordered(
    marks: Marks, path: FieldPath, entries: Mapping[str, Any], dims: Mapping[str, Any]
) -> Iterator[Problem]:
    for dim, value in entries.items():
        low, opt, high = _sizes(value)
        if dim not in dims or low <= opt <= high:
            continue
        index = 0 if low > opt or low > high else 1
        where = index if isinstance(value, list) else KINDS[index]
        yield problem_at(
            marks,
            (*path, dim, where),
            f"min/opt/max of dim '{dim}' are {low}/{opt}/{high}: need min <= opt <= max",
            "min is the smallest size the engine accepts, max the largest, opt the one it is tuned for",
        )


def _missing_dims(
    marks: Marks,
    path: FieldPath,
    entries: Mapping[str, Any],
    dims: dict[str, list[tuple[str, int]]],
    unknown: list[str],
    inputs: Mapping[str, Any],
) -> Iterator[Problem]:
    if any(entry in inputs for entry in unknown):
        return  # an input given sizes: the dims it leaves out are that one mistake
    for dim, uses in dims.items():
        # A misspelt dim was reported as unknown with "did you mean": that is the one mistake.
        if dim in entries or did_you_mean(dim, unknown):
            continue
        used = ", ".join(f"axis {axis} of '{name}'" for name, axis in uses)
        yield problem_at(
            marks,
            path,
            f"profile '{path[-1]}' has no sizes for dim '{dim}' ({used})",
            f"add `{dim}: [min, opt, max]` under profiles.{path[-1]}",
            at_key=True,
        )
