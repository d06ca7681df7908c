"""What a task kind is, what it derives from a matrix cell, and what its `run` receives.

A task kind is one unit (one module under `trtbuild/tasks/`): a frozen params dataclass, the
function deriving those params and the task's file inputs from a matrix cell, its preflight checks,
the tool versions that enter its key, and `run`. Keys, lock entries and `--explain` are computed
from the params dataclass (`params_json`), so a misspelt field is a type error wherever it is read.
Heavy libraries are imported inside `run`, never at module import, so planning stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from trtbuild.errors import Problem
from trtbuild.spec.model import Cell, Spec

JsonDict = dict[str, Any]
# A gate document's verdicts (validate's validation.json): `passed` only with no failures.
GATE_VERDICTS = ("passed", "failed", "unverified")
# A frozen dataclass of a kind's params; `Any`-bound because dataclasses share no base class.
P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)


def params_json(params: Any) -> JsonDict:
    """The canonical JSON form of a params dataclass: what enters the key and the lock."""
    converted = _json_value(params)
    assert isinstance(converted, dict), f"params must be a dataclass, not {type(params).__name__}"
    return converted


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # dataclass -> its fields' names, looked up once


def _json_value(value: Any) -> Any:
    """Dataclasses as dicts of their fields, tuples as lists, anything else not JSON as a string.
    (`dataclasses.asdict` deep-copies every leaf: this runs for every task of every cell of a plan,
    so a dataclass's field names are looked up once per class.)"""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _json_value(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)


class DamagedGate(ValueError):
    """A gate document that is not one a task wrote: the verdict cannot be taken from it."""


def gate_verdict(data: bytes) -> JsonDict:
    """The verdict and failures a gate document (a kind's `gate` output) records, checked for shape:
    `{"verdict": ..., "failures": [...], "passed": bool}`, what the run decides from. DamagedGate if
    it is not JSON, its verdict is not one of GATE_VERDICTS, or verdict and failures disagree."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise DamagedGate(f"not JSON ({type(error).__name__})") from None
    return checked_gate(document)


def checked_gate(document: object) -> JsonDict:
    """gate_verdict of a parsed document."""
    verdict = document.get("verdict") if isinstance(document, dict) else None
    failures = document.get("failures") if isinstance(document, dict) else None
    if verdict not in GATE_VERDICTS or not isinstance(failures, list):
        raise DamagedGate(f"no verdict of {list(GATE_VERDICTS)} with a list of failures")
    if (verdict == "failed") != bool(failures) or not all(isinstance(f, dict) for f in failures):
        raise DamagedGate(f"verdict {verdict!r} with {len(failures)} failure(s)")
    return {"verdict": verdict, "failures": failures, "passed": not failures}


@dataclass(frozen=True)
class Derived(Generic[P]):
    """What a cell asks of one task kind: its params and its inputs that are files on disk."""

    params: P
    files: Mapping[str, Path] = field(default_factory=dict)  # input name -> file hashed by content
    # Facts that must not change the output, and so stay out of the key (the import search path).
    context: Mapping[str, Any] = field(default_factory=dict)


class Planned(Protocol[P_co]):
    """A task as planned: what a kind's preflight sees of each of its tasks that must run."""

    @property
    def params(self) -> P_co: ...

    @property
    def files(self) -> Mapping[str, Path]: ...

    @property
    def context(self) -> Mapping[str, Any]: ...

    @property
    def cells(self) -> Sequence[str]: ...


@dataclass
class TaskContext(Generic[P]):
    """Everything a task's `run` may touch."""

    task_id: str
    params: P  # exactly what entered the key
    inputs: Mapping[str, Path]  # input name -> a read-only file (a link to the cache: never write it)
    outdir: Path  # write each declared output here, under its declared name
    context: Mapping[str, Any] = field(default_factory=dict)
    # Kept across runs (the store's toolchains folder): copies of tools a task needs at a fixed
    # place. None when the task runs outside a store, e.g. called directly in a test.
    toolchains: Path | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("trtbuild.task"))
    warnings: list[str] = field(default_factory=list)

    def output(self, name: str) -> Path:
        return self.outdir / name

    @property
    def search_path(self) -> list[str]:
        """Where the user's modules are imported from (the config's folder first)."""
        return list(self.context.get("search_path", []))

    def warn(self, message: str) -> None:
        """A condition the user must see (recorded in the task's result and printed)."""
        self.warnings.append(message)
        # Printed by the CLI from the task's event; logged at INFO so it is not shown twice.
        self.logger.info("%s: %s", self.task_id, message)


ANY_GPU = "any"  # Resources.gpu: any NVIDIA GPU will do


@dataclass(frozen=True)
class Resources:
    """What one task needs of the machine it runs on: the Ray executor places it by these
    (exec/ray/placement.py); the local executor starts a task beside others only if `memory` is
    available. Not in the key: they change no output."""

    cpus: float = 1.0
    memory: int = 3 << 30  # bytes, estimated for a ResNet-50-sized model
    # A GPU of this compute capability ("SM89"), ANY_GPU for any NVIDIA GPU, None for no GPU.
    gpu: str | None = None


class TaskKind(ABC, Generic[P]):
    """One kind of task. Subclasses set the class attributes and implement the methods."""

    name: str
    version: int  # bump whenever the output for the same params and inputs would change
    outputs: tuple[str, ...]
    # The output (a JSON document, see gate_verdict) a run takes this kind's verdict from, if the
    # kind is a gate: read from the hash-checked blob, never from the result's metadata.
    gate: str | None = None
    # Peak memory of one task, estimated for a ResNet-50-sized model: a task starts beside others
    # only if this much is available (exec/slots.py). Not in the key: it changes no output.
    memory: int = 3 << 30

    def resources(self, params: P) -> Resources:
        """What one task of this kind needs to run (CPUs, memory, a GPU and its type)."""
        return Resources(memory=self.memory)

    def cost(self, params: P) -> float:
        """The task's work relative to other tasks', for ordering only: with several slots, the tasks
        on the longest chain of work still ahead start first (exec/local.py). Seconds of a
        ResNet-50 task on one thread (bench/RESULTS.md) are the scale; only ratios matter. Not in
        the key: it changes no output."""
        return 2.0

    @abstractmethod
    def derive(self, spec: Spec, cell: Cell) -> Derived[P] | None:
        """This kind's task for `cell` (`spec` is the cell's own view); None: the cell has none."""

    @abstractmethod
    def tools(self, params: P) -> JsonDict:
        """Tool facts (versions, from package metadata) that enter the key."""

    @abstractmethod
    def run(self, ctx: TaskContext[P]) -> JsonDict:
        """Make the outputs; returns metadata stored beside them."""

    def check_spec(self, spec: Spec) -> list[Problem]:
        """Problems of the config this kind reads, found when it is loaded (for each cell's view):
        what the schema cannot say and needs no data read (a file that must exist, say)."""
        return []

    def preflight(self, spec: Spec, tasks: Sequence[Planned[P]]) -> list[Problem]:
        """Problems found before anything runs, in what the tasks that must run need (a missing
        library, unreadable calibration data). May import what planning may not."""
        return []

    def __repr__(self) -> str:
        return f"<task kind {self.name} v{self.version}>"
