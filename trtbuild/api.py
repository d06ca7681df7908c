"""The Python API: what the CLI, tests and users' scripts call. The CLI only parses and prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.backends.trt import flavour as flavours
from trtbuild.errors import EXIT_FAILED, EXIT_OK, ConfigError, Problem, TaskError
from trtbuild.exec.events import TaskEvent
from trtbuild.exec.local import LocalExecutor, RunOptions
from trtbuild.plan.graph import Graph
from trtbuild.plan.preflight import check_precision_inputs
from trtbuild.plan.resolver import resolve, search_path
from trtbuild.plan.status import NodeStatus, plan_status
from trtbuild.report import write_reports
from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import Spec
from trtbuild.store import Store, default_cache_dir


@dataclass
class Plan:
    specs: list[Spec]
    graph: Graph
    statuses: dict[str, NodeStatus]
    store: Store

    def to_run(self) -> list[str]:
        return [node_id for node_id, status in self.statuses.items() if status.state == "run"]


@dataclass
class RunResult:
    plan: Plan
    events: list[TaskEvent]
    out_dir: Path
    gate_failures: list[dict[str, Any]] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)  # build/<model>/report.{json,md,html}

    @property
    def failed_tasks(self) -> list[TaskEvent]:
        return [event for event in self.events if event.state == "failed"]

    @property
    def exit_status(self) -> int:
        return EXIT_FAILED if self.failed_tasks or self.gate_failures else EXIT_OK

    def cell_dirs(self) -> list[Path]:
        return [self.out_dir / cell.model / cell.cell for cell in self.plan.graph.cells]


def load(configs: Iterable[Path | str]) -> list[Spec]:
    """Load and check every config; all problems of all configs are reported together."""
    specs: list[Spec] = []
    problems: list[Problem] = []
    for config in configs:
        try:
            specs.append(load_spec(Path(config)))
        except ConfigError as error:
            problems += error.problems
    if problems:
        raise ConfigError(problems)
    return specs


def plan(
    configs: Iterable[Path | str],
    *,
    cache_dir: Path | None = None,
    only: Sequence[str] = (),
    use_cache: bool = True,
) -> Plan:
    specs = load(configs)
    graph = resolve(specs, only)
    store = Store(cache_dir or default_cache_dir())
    return Plan(specs, graph, plan_status(graph, store, use_cache=use_cache), store)


def run(
    configs: Iterable[Path | str],
    *,
    cache_dir: Path | None = None,
    out_dir: Path | str = "build",
    jobs: int = 1,
    keep_going: bool = False,
    use_cache: bool = True,
    only: Sequence[str] = (),
    on_event: Callable[[TaskEvent], None] | None = None,
) -> RunResult:
    """Build everything out of date. Config errors raise ConfigError before any task runs."""
    the_plan = plan(configs, cache_dir=cache_dir, only=only, use_cache=use_cache)
    preflight(the_plan)
    options = RunOptions(out_dir=Path(out_dir), jobs=jobs, keep_going=keep_going, use_cache=use_cache)
    events = LocalExecutor(the_plan.graph, the_plan.store, options, on_event).run()
    gate_failures = [
        {"task": event.id, "cell": event.cells[0] if event.cells else "", **failure}
        for event in events
        if event.kind == "validate" and event.state in ("ran", "cached")
        for failure in event.meta.get("failures", [])
    ]
    reports = write_reports(the_plan, events, Path(out_dir))
    return RunResult(the_plan, events, Path(out_dir), gate_failures, reports)


def preflight(the_plan: Plan) -> None:
    """Check what the tasks that must run need, before any runs: a bad model source or a missing
    backend is a config error (exit 2), not a task failure an hour into a build."""
    problems: list[Problem] = []
    kinds_to_run = {(the_plan.graph.nodes[n].model, the_plan.graph.nodes[n].kind) for n in the_plan.to_run()}
    for spec in the_plan.specs:
        kinds = {kind for model, kind in kinds_to_run if model == spec.model.name}
        if kinds & {"export", "validate"}:
            problems += _check_model_source(spec)
        if "build" in kinds:
            problems += _check_backend(the_plan, spec)
        if "precision" in kinds:
            problems += check_precision_inputs(the_plan, spec)
    if problems:
        raise ConfigError(problems)


def _check_model_source(spec: Spec) -> list[Problem]:
    from trtbuild.tasks.importing import import_attribute

    try:
        import_attribute(spec.model.source, search_path(spec), "model.source")
    except TaskError as error:
        return [
            Problem(
                str(error),
                location=spec.location(("model", "source")),
                field_path="model.source",
                hint=" ".join(error.details)
                or "check the module path and that its dependencies are installed",
            )
        ]
    return []


def _check_backend(the_plan: Plan, spec: Spec) -> list[Problem]:
    backends = {
        node.params["backend"]
        for node in the_plan.graph.nodes.values()
        if node.kind == "build" and node.model == spec.model.name
    }
    return [
        Problem(
            f"the {backend} backend is not installed",
            location=spec.location(("build", "backend")),
            field_path="build.backend",
            hint=flavours.INSTALL_HINTS[backend],
        )
        for backend in sorted(backends)
        if not flavours.installed(backend)
    ]
