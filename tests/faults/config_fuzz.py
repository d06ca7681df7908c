"""Configs near the valid space, for property-based fuzzing (issue 13, done-when item 3), and the
property they must keep through the CLI's own entry point.

The strategy starts from real configs (the tests' tiny config, configs/resnet.yaml, configs/bert.yaml)
and mutates them: wrong types, deleted and unknown keys, deep nesting, huge numbers, unicode and
control characters, long and reserved names, big matrices; then, on the YAML text, alias and
merge-key bombs, raw control characters, tabs, truncation, several documents, invalid UTF-8.

The property (`check`): `trtbuild plan` (or `run`) exits 0, 1 or 2; never "internal error" nor a
traceback; every config problem names file:line:col; within TIME_LIMIT_S of CPU and PEAK_LIMIT_MB.
`tests/faults/test_config_fuzz.py` runs a seeded subset; `bench/fuzz_configs.py` runs thousands.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.conftest import TINY_CONFIG, TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 5.0
PEAK_LIMIT_MB = 500.0
Draw = Callable[[st.SearchStrategy[Any]], Any]

CONTROLS = "".join(chr(c) for c in (*range(0, 32), 127, 0x9B, 0x202E))
WEIRD_STRINGS = [
    ".",
    "..",
    "report.json",
    "owner.json",
    "tiny\n",
    "x" * 300,
    "\x1b[2J",
    "a/b",
    "\u202egnp.exe",
    "ünïcødé-名前",
    "{precision}",
    "fp16",
    "int8",
    "SM89",
    "",
    " ",
    "-1",
    "1e309",
]
SCALARS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 3, 17, 2**31, 2**63, 10**100]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.text(alphabet=CONTROLS + "ab/.{}[]:", max_size=8),
    st.sampled_from(WEIRD_STRINGS),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=5),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
)


def bases() -> list[tuple[str, dict[str, Any]]]:
    """(model module folder, document) for each real config the mutations start from."""
    tiny = yaml.safe_load(TINY_CONFIG)
    tiny_matrix = copy.deepcopy(tiny)
    tiny_matrix["matrix"] = {"validate.seed": [0, 1], "name": "seed{validate.seed}"}
    return [
        ("tiny", tiny),
        ("tiny", tiny_matrix),
        ("configs", yaml.safe_load((REPO / "configs" / "resnet.yaml").read_text())),
        ("configs", yaml.safe_load((REPO / "configs" / "bert.yaml").read_text())),
    ]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _replace(draw: Draw, doc: dict[str, Any]) -> None:
    path = draw(st.sampled_from(_paths(doc)[1:]))
    _parent(doc, path)[path[-1]] = draw(VALUES)


def _delete(draw: Draw, doc: dict[str, Any]) -> None:
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = _parent(doc, path)
    if isinstance(parent, dict):
        del parent[path[-1]]
    elif len(parent) > 1:
        parent.pop(path[-1])


def _unknown_key(draw: Draw, doc: dict[str, Any]) -> None:
    mappings = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
    target = _get(doc, draw(st.sampled_from(mappings)))
    target[draw(st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(WEIRD_STRINGS[:10])))] = draw(
        VALUES
    )


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _nest(draw: Draw, doc: dict[str, Any]) -> None:
    path = draw(st.sampled_from(_paths(doc)[1:]))
    value = _get(doc, path)
    for _ in range(draw(st.integers(min_value=1, max_value=120))):
        value = [value] if draw(st.booleans()) else {"k": value}
    _parent(doc, path)[path[-1]] = value


def _name(draw: Draw, doc: dict[str, Any]) -> None:
    doc.setdefault("model", {})
    if isinstance(doc["model"], dict):
        doc["model"]["name"] = draw(st.one_of(st.sampled_from(WEIRD_STRINGS), st.text(max_size=300)))


def _matrix(draw: Draw, doc: dict[str, Any]) -> None:
    leaves = [".".join(map(str, p)) for p in _paths(doc) if p and all(isinstance(x, str) for x in p)]
    leaves = [leaf for leaf in leaves if not leaf.startswith("matrix")] + ["precision", "model.kwargs.tag"]
    matrix: dict[str, Any] = {}
    for axis in draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=4, unique=True)):
        size = draw(st.sampled_from([1, 2, 3, 10, 30, 40]))
        pool = draw(st.sampled_from(["ints", "values", "names"]))
        if pool == "ints":
            matrix[axis] = list(range(size))
        elif pool == "names":
            matrix[axis] = [draw(st.sampled_from(WEIRD_STRINGS)) for _ in range(size)]
        else:
            matrix[axis] = [draw(SCALARS) for _ in range(size)]
    if draw(st.booleans()):
        matrix["name"] = draw(
            st.sampled_from(["{precision}", "c{" + next(iter(matrix)) + "}", "x", "{", "report.json"])
        )
    if draw(st.booleans()):
        matrix["max_cells"] = draw(st.sampled_from([1, 5000, 0, "many", 10**9]))
    if draw(st.booleans()):
        matrix[draw(st.sampled_from(["include", "exclude"]))] = [{next(iter(matrix)): draw(SCALARS)}]
    doc["matrix"] = matrix


def _valid_matrix(draw: Draw, doc: dict[str, Any]) -> None:
    """A matrix a plan accepts, up to and past the default cap of 1,000 cells."""
    seeds, samples = draw(st.sampled_from([(10, 10), (100, 10), (250, 4), (501, 2), (40, 30)]))
    doc["matrix"] = {"validate.seed": list(range(seeds)), "validate.samples": list(range(1, samples + 1))}


DOC_MUTATIONS = [_replace, _replace, _delete, _unknown_key, _nest, _name, _matrix, _valid_matrix]


def _alias_bomb(draw: Draw, text: str) -> str:
    fan, levels = draw(st.integers(2, 10)), draw(st.integers(2, 12))
    lines = [f"b0: &b0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * fan)}]" for i in range(1, levels)]
    return text + "\n".join(lines) + "\n"


def _merge_bomb(draw: Draw, text: str) -> str:
    levels = draw(st.integers(2, 30))
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: {{<<: *m{i - 1}}}}}" for i in range(1, levels)]
    return text + "\n".join(lines) + "\n"


def _insert(draw: Draw, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    piece = draw(
        st.sampled_from(["\t", "\x1b[2J", "\x00", "\x85", "---\n", "*undefined", "&a", "<<: 1\n", '"'])
    )
    return text[:at] + piece + text[at:]


def _truncate(draw: Draw, text: str) -> str:
    return text[: draw(st.integers(0, len(text)))]


def _duplicate_line(draw: Draw, text: str) -> str:
    lines = text.splitlines(keepends=True)
    index = draw(st.integers(0, max(len(lines) - 1, 0)))
    return "".join([*lines[: index + 1], *lines[index : index + 1], *lines[index + 1 :]])


TEXT_MUTATIONS = [_alias_bomb, _merge_bomb, _insert, _truncate, _duplicate_line]


@dataclass(frozen=True)
class FuzzConfig:
    home: str  # "tiny" or "configs": which folder's model modules the config needs
    data: bytes


@st.composite
def fuzzed_configs(draw: Draw) -> FuzzConfig:
    home, base = draw(st.sampled_from(bases()))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3, 4]))):
        mutate = draw(st.sampled_from(DOC_MUTATIONS))
        with contextlib.suppress(IndexError, KeyError, TypeError):
            mutate(draw, doc)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        text = draw(st.sampled_from(TEXT_MUTATIONS))(draw, text)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 30)) == 0:
        data = data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2 :]
    return FuzzConfig(home, data)


@st.composite
def runnable_configs(draw: Draw) -> FuzzConfig:
    """The tiny config with changes a run can take (most reach the tasks; some fail a gate)."""
    doc = yaml.safe_load(TINY_CONFIG)
    doc["model"]["name"] = draw(st.sampled_from(["tiny", "tiny-2", "Tiny.net_3", "t" * 128]))
    doc["validate"]["seed"] = draw(st.integers(0, 3))
    doc["validate"]["samples"] = draw(st.integers(1, 3))
    doc["validate"]["tolerance"]["fp32"] = draw(
        st.sampled_from([{"atol": 1.0e-4}, {"cosine": 1.0, "atol": 1.0e-30}, {"atol": 1.0, "rtol": 0.5}])
    )
    if draw(st.booleans()):
        doc["matrix"] = {
            "validate.samples": draw(st.lists(st.integers(1, 3), min_size=1, max_size=2, unique=True))
        }
    if draw(st.integers(0, 4)) == 0:
        with contextlib.suppress(IndexError, KeyError, TypeError):
            draw(st.sampled_from(DOC_MUTATIONS))(draw, doc)
    return FuzzConfig("tiny", yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode())


class Workspace:
    """Folders holding the configs' model modules: the tiny model, and a copy of configs/."""

    def __init__(self, root: Path) -> None:
        self.homes = {"tiny": root / "tiny", "configs": root / "configs"}
        self.homes["tiny"].mkdir(parents=True, exist_ok=True)
        (self.homes["tiny"] / "tinynet.py").write_text(TINY_MODEL)
        if not self.homes["configs"].exists():
            shutil.copytree(REPO / "configs", self.homes["configs"])
        self.out = root / "build"

    def warm_up(self) -> None:
        """Plan each base config once: what every later plan of it shares (torch, torchvision and
        transformers imported to hash the models' code, the parse and schema caches) is then not
        counted against the first fuzzed config's time and memory."""
        for home, doc in bases():
            path = self.write(FuzzConfig(home, yaml.safe_dump(doc, sort_keys=False).encode()))
            run_cli_in_process(["plan", str(path)])

    def write(self, config: FuzzConfig) -> Path:
        # One path per home, rewritten: the output folder's owner stays the same config.
        path = self.homes[config.home] / "fuzz.yaml"
        path.write_bytes(config.data)
        return path


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    violations: list[str] = field(default_factory=list)


def run_cli_in_process(args: list[str]) -> Outcome:
    """`trtbuild ARGS` through `trtbuild.cli.main`, as the CLI runs it, in this process: its exit
    status, output, wall and CPU time, and the growth of this process's peak RSS during the call."""
    from trtbuild.cli import main

    baseline = _reset_peak_rss()
    out, err = io.StringIO(), io.StringIO()
    wall, cpu = time.perf_counter(), _cpu()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _logging_restored():
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(err)  # type: ignore[arg-type]
        try:
            status = main(args)
        except SystemExit as exit_:  # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return Outcome(status, out.getvalue(), err.getvalue(), wall, cpu, max(_peak_rss_mb() - baseline, 0.0))


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """The CLI configures logging for its process (levels, formatters and filters on the root's
    handlers, trtbuild's level): in this process, that would outlive the call and change what later
    tests' `caplog` sees. Everything it may change is put back."""
    root, ours = logging.getLogger(), logging.getLogger("trtbuild")
    handlers = [(h, h.level, list(h.filters), h.formatter, getattr(h, "stream", None)) for h in root.handlers]
    levels = (root.level, ours.level)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in [saved[0] for saved in handlers]:
                root.removeHandler(handler)
        for handler, level, filters, formatter, stream in handlers:
            handler.setLevel(level)
            handler.filters[:] = filters
            handler.setFormatter(formatter)
            if stream is not None and isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak_rss() -> float:
    """Reset VmHWM to the current RSS (Linux: clear_refs 5); the current RSS in MB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _status_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


_HEADER = re.compile(r"^error: (\d+) problem\(s\) in the config$")


def check(outcome: Outcome, config: Path, *, timed: bool = True) -> list[str]:
    """What the outcome breaks of the property in the module docstring (empty: nothing).
    `timed=False`: a run that reached its tasks, whose exports and builds the time bound is not for."""
    violations = []
    text = outcome.stdout + outcome.stderr
    if outcome.status not in (0, 1, 2):
        violations.append(f"exit status {outcome.status}")
    if "internal error" in text or "Traceback" in text:
        violations.append("internal error or traceback: " + outcome.stderr[-500:])
    if outcome.status == 2:
        violations += _unlocated(outcome.stderr, config)
    # CPU time: the machine is shared, and wall time measures the neighbours as much as the plan.
    if timed and outcome.cpu_s > TIME_LIMIT_S:
        violations.append(f"took {outcome.cpu_s:.1f} CPU s ({outcome.wall_s:.1f} s wall)")
    if outcome.peak_mb > PEAK_LIMIT_MB:
        violations.append(f"peak memory grew by {outcome.peak_mb:.0f} MB")
    return violations


def _unlocated(stderr: str, config: Path) -> list[str]:
    """Problems (lines that start a problem, after the header) that do not start with file:line:col."""
    lines = stderr.splitlines()
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if header is None:
        return [] if re.search(rf"{re.escape(str(config))}:\d+", stderr) else ["an error without file:line"]
    where = re.compile(rf"^{re.escape(str(config))}:\d+:\d+: ")
    starts = [line for line in lines[header + 1 :] if line and not line.startswith(" ")]
    return [f"a problem without file:line: {line[:200]}" for line in starts if not where.match(line)]
