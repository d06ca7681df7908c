"""The Python API: what the CLI, tests and users' scripts call. The CLI only parses and prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.errors import EXIT_FAILED, EXIT_OK, LockMismatch, UnreadableLock, UsageError
from trtbuild.exec.events import TaskEvent
from trtbuild.exec.local import LocalExecutor
from trtbuild.exec.owners import OWNER_FILE, check_owners, claim_owners
from trtbuild.exec.protocol import Executor, RunOptions
from trtbuild.exec.ray.cluster import RaySettings
from trtbuild.exec.read_only import check_read_only
from trtbuild.plan import lock as lockfile
from trtbuild.plan import locked as lockcheck
from trtbuild.plan.explain import explain, keyed_code
from trtbuild.plan.graph import CellPlan
from trtbuild.plan.locked import ArtifactVerdict
from trtbuild.plan.plan import Plan, make_plan, preflight, preflight_checks
from trtbuild.report import write_reports
from trtbuild.report.write import NAMES as REPORT_NAMES
from trtbuild.spec.loader import load_specs
from trtbuild.spec.model import Spec
from trtbuild.store import ActionResult, Store, default_cache_dir, digest_file
from trtbuild.store.fsck import Finding, StoreCheck, check_store
from trtbuild.store.remote.settings import RemoteSettings
from trtbuild.store.roots import lock_root_name
from trtbuild.store.scratch import remove_temp_files
from trtbuild.tasks.code import CodeIdentity
from trtbuild.tasks.pipeline import PIPELINE, Pipeline


@dataclass
class RunResult:
    plan: Plan
    events: list[TaskEvent]
    out_dir: Path
    gate_failures: list[dict[str, Any]] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)  # build/<model>/report.{json,md,html}
    locks: list[Path] = field(default_factory=list)  # written (or confirmed unchanged) lock files
    materials: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (key, material)
    results: dict[str, ActionResult] = field(default_factory=dict)  # id -> outputs of finished tasks
    notices: list[str] = field(default_factory=list)  # what the user should know, though nothing failed
    # run --locked: what the run made that the lock does not record (each line names its task).
    lock_differences: list[str] = field(default_factory=list)
    # Cells of the configs that --only left out: the reports show them as the cache holds them.
    cells_not_run: list[CellPlan] = field(default_factory=list)

    @property
    def failed_tasks(self) -> list[TaskEvent]:
        return [event for event in self.events if event.state == "failed"]

    @property
    def exit_status(self) -> int:
        failed = self.failed_tasks or self.gate_failures or self.lock_differences
        return EXIT_FAILED if failed else EXIT_OK

    def cell_dirs(self) -> list[Path]:
        return [self.out_dir / cell.model / cell.cell for cell in self.plan.graph.cells]


def load(configs: Iterable[Path | str]) -> list[Spec]:
    """Load and check every config; all problems of all configs are reported together."""
    return load_specs(configs, checks=PIPELINE.spec_checks)


def plan(
    configs: Iterable[Path | str],
    *,
    cache_dir: Path | None = None,
    only: Sequence[str] = (),
    use_cache: bool = True,
    pipeline: Pipeline = PIPELINE,
    remote: RemoteSettings | None = None,
    fetch: bool = False,
) -> Plan:
    """What would run and why, running nothing. `pipeline`: the stages to plan (a program may add
    its own task kinds to the standard ones with `PIPELINE.with_stage`). With `remote`, a task the
    local cache lacks is looked up in that shared cache: its checked entry makes it cached, and with
    `fetch` its outputs are downloaded (verified) into the local cache, as a run needs them."""
    return make_plan(
        configs,
        cache_dir=cache_dir,
        only=only,
        use_cache=use_cache,
        pipeline=pipeline,
        remote=remote,
        fetch=fetch,
    )


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
    locked: bool = False,
    write_lock: bool = True,
    pipeline: Pipeline = PIPELINE,
    remote: RemoteSettings | None = None,
    ray: RaySettings | None = None,
) -> RunResult:
    """Build everything out of date, in local worker processes or, with `ray`, on that cluster's
    nodes. Config errors raise ConfigError before any task runs (as does an `out_dir/<model>/` that
    another config's runs own, or a lock of a newer format); with `locked`, a plan that differs from
    the lock raises LockMismatch before any task runs, the run is compared with the lock afterwards
    (`lock_differences`), and no lock is written."""
    configs, make_executor = list(configs), _executor_factory(ray, remote)  # refusals come first
    the_plan = plan(
        configs,
        cache_dir=cache_dir,
        only=only,
        use_cache=use_cache,
        pipeline=pipeline,
        remote=remote,
        fetch=True,
    )
    notices = _checks_before_running(the_plan, locked=locked, use_cache=use_cache, out_dir=Path(out_dir))
    read_only = the_plan.store.read_only  # a consumer's cache: only read, all must be cached
    to_replace = _locks_to_replace(the_plan) if write_lock and not locked else {}
    options = RunOptions(out_dir=Path(out_dir), jobs=jobs, keep_going=keep_going, use_cache=use_cache)
    executor, events = _execute(the_plan, options, on_event, make_executor)
    notices += executor.notices  # -j clamped to the CPUs, tasks waiting for memory
    result = RunResult(the_plan, events, Path(out_dir), _gate_failures(events), notices=notices)
    result.materials, result.results = dict(executor.materials), dict(executor.results)
    _write_reports(result, configs, pipeline, only)
    keys = sorted({key for key, _ in executor.materials.values()})
    if not read_only:  # its writer keeps what it needs
        the_plan.store.add_run_root(keys)
    if locked:
        _check_run_locked(result)
    elif result.exit_status == EXIT_OK and not only and write_lock:
        result.locks = write_locks(the_plan, executor)
    result.notices += _replaced(to_replace, result.locks)
    result.notices += the_plan.store.notes()  # what a remote cache served and was given
    return result


def _checks_before_running(the_plan: Plan, *, locked: bool, use_cache: bool, out_dir: Path) -> list[str]:
    """What `run` refuses before anything runs (raised), and the notices its checks leave."""
    notices = check_locked(the_plan) if locked else []
    if the_plan.store.read_only:  # a consumer's cache: only read, all must be cached
        notices += check_read_only(the_plan, use_cache=use_cache)
    # Another config's build folder is a config error before anything runs (exec/owners.py).
    return notices + check_owners(the_plan.specs, out_dir)


def _write_reports(
    result: RunResult, configs: list[Path | str], pipeline: Pipeline, only: Sequence[str]
) -> None:
    # A report covers every cell of its configs, so a run of some cells must not rewrite it as if
    # the config had no others: planned again, without --only, those come from the cache. Nothing
    # is downloaded for them (fetch=False): a remote cache's results for cells the user left out
    # stay there, and the report says so (report/collect.py).
    the_plan = result.plan
    every_cell = (
        make_plan(configs, pipeline=pipeline, store=the_plan.store, fetch=False) if only else the_plan
    )
    result.reports = write_reports(every_cell, result.events, result.out_dir, result.results)
    planned = {(cell.model, cell.cell) for cell in the_plan.graph.cells}
    result.cells_not_run = [c for c in every_cell.graph.cells if (c.model, c.cell) not in planned]


def remove_leftovers(specs: list[Spec], out_dir: Path) -> None:
    """The temp files a killed run left beside the configs' locks and in their model folders."""
    for spec in specs:
        lock = lockfile.lock_path(spec.path)
        remove_temp_files(lock.parent, [lock.name])
        remove_temp_files(out_dir / spec.model.name, [*REPORT_NAMES, OWNER_FILE])


ExecutorFactory = Callable[..., Executor]


def check_ray_settings(ray: RaySettings | None, remote: RemoteSettings | None) -> None:
    """What the Ray executor cannot do, refused before anything is planned (exit 2)."""
    if ray is None:
        return
    if ray.address is not None and remote is None:
        raise UsageError(
            f"--executor ray --ray-address {ray.address}: the nodes share results through a remote "
            "cache, and none is set: add --remote-cache s3://bucket/prefix (or a shared folder every "
            "node mounts at the same path), or TRTBUILD_REMOTE_CACHE, or remote_cache in .trtbuild.yaml"
        )
    if remote is not None and remote.read_only:
        raise UsageError(
            f"--executor ray with a read-only {remote.describe()} "
            f"(from {remote.read_only_from or remote.source}): "
            "the nodes publish what they build there for this machine to fetch; drop the read-only "
            "setting, or run without --executor ray"
        )


def _executor_factory(ray: RaySettings | None, remote: RemoteSettings | None) -> ExecutorFactory:
    check_ray_settings(ray, remote)
    if ray is None:
        return LocalExecutor
    from trtbuild.exec.ray.cluster import RayCluster
    from trtbuild.exec.ray.executor import RayExecutor

    def make(graph: Any, store: Any, hasher: Any, options: Any, on_event: Any, cached: Any) -> Executor:
        cluster = RayCluster(ray)  # connected when a task must run (RayExecutor.preflight)
        return RayExecutor(
            graph,
            store,
            hasher,
            options,
            on_event,
            cached,
            cluster=cluster,
            cache_dir=store.root,
            remote=remote,
        )

    return make


def _execute(
    the_plan: Plan,
    options: RunOptions,
    on_event: Callable[[TaskEvent], None] | None,
    make_executor: ExecutorFactory = LocalExecutor,
) -> tuple[Executor, list[TaskEvent]]:
    """Preflight (in a worker: it imports the model's libraries), claim the build folders, run."""
    cached = _cached_results(the_plan)
    graph, store, hasher = the_plan.graph, the_plan.store, the_plan.hasher
    with make_executor(graph, store, hasher, options, on_event, cached) as executor:
        executor.preflight(preflight_checks(the_plan))
        claim_owners(the_plan.specs, options.out_dir)
        events = executor.run()
        if executor.alone:  # no other run can be writing them: a killed run's temp files go
            remove_leftovers(the_plan.specs, options.out_dir)
        return executor, events


def _cached_results(the_plan: Plan) -> dict[str, tuple[str, ActionResult]]:
    """Node id -> (key, result) of what the plan found cached: the executor uses these entries, and
    keeps their artifacts in place, instead of reading each entry a second time."""
    return {
        node_id: (status.key, status.result)
        for node_id, status in the_plan.statuses.items()
        if status.state == "cached" and status.key is not None and status.result is not None
    }


def _gate_failures(events: list[TaskEvent]) -> list[dict[str, Any]]:
    """A gate's failures are in its task's result (validate's, today), cached or not."""
    return [
        {"task": event.id, "cell": event.cells[0] if event.cells else "", **failure}
        for event in events
        if event.state in ("ran", "cached")
        for failure in event.meta.get("failures", [])
    ]


def _check_run_locked(result: RunResult) -> None:
    """What the run made against the lock it was checked against before: keys and output bytes. A
    lock the run agrees with becomes a GC root, as a plain run's lock does: gc keeps what a
    committed lock needs in a cache that only ever ran it with --locked."""
    for spec in result.plan.specs:
        found, notices = lockcheck.check_run(result.plan.graph, spec, result.materials, result.results)
        result.lock_differences += found
        result.notices += [line for line in notices if line not in result.notices]
        lock = lockfile.config_lock(spec.path)
        if not found and lock is not None:
            _add_lock_root(result.plan, lock.path, [entry["key"] for entry in lock.tasks.values()])


def _locks_to_replace(the_plan: Plan) -> dict[Path, str]:
    """Lock path -> what is wrong with it, for the locks a plain run replaces: an unreadable one, or
    one of an older format. A newer format raises NewerLockFormat: replacing it would drop what this
    trtbuild does not know."""
    found: dict[Path, str] = {}
    for spec in the_plan.specs:
        path = lockfile.lock_path(spec.path)
        try:
            lock = lockfile.config_lock(spec.path)
        except UnreadableLock as error:
            where = error.problem.location
            what = error.problem.message.removeprefix("the lock is unreadable: ")
            at = f" at line {where.line}:{where.column}" if where else ""
            found[path] = f"unreadable{at}: {what}"
            continue
        older = lockfile.older_format(lock) if lock is not None else None
        if older is not None:
            found[path] = older
    return found


def _replaced(to_replace: dict[Path, str], written: list[Path]) -> list[str]:
    """Say loudly what became of each lock that had to be replaced: replaced, or still there."""
    return [
        f"replaced {path} ({what}) with a new lock: review and commit it"
        if path in written
        else f"{path} is {what}: a successful run of all its cells replaces it"
        for path, what in to_replace.items()
    ]


def write_locks(the_plan: Plan, executor: Executor) -> list[Path]:
    """Each config's lock, after a successful run of all its cells; registered as a GC root. A
    config's lock names its tasks as the config alone would, whatever else was planned with it."""
    written = []
    for spec in the_plan.specs:
        mine = lockfile.config_tasks(the_plan.graph, spec.path)
        materials, results = mine.rekey(executor.materials), mine.rekey(executor.results)
        entries = {
            task: lockfile.lock_entry(
                materials[task][1], materials[task][0], results[task], sorted(node.cells)
            )
            for task, node in mine.view.nodes.items()
        }
        path = lockfile.lock_path(spec.path)
        lockfile.write_if_changed(path, lockfile.render(spec.path, entries))
        _add_lock_root(the_plan, path, [entry["key"] for entry in entries.values()])
        written.append(path)
    return written


def _add_lock_root(the_plan: Plan, path: Path, keys: list[str]) -> None:
    """gc keeps what the lock at `path` names (it reads the file itself; `keys` are a fallback)."""
    if not the_plan.store.read_only:
        the_plan.store.add_root(lock_root_name(path), keys, lock_path=path)


def locks_of(the_plan: Plan) -> dict[str, lockfile.Lock | None]:
    """Task id -> the lock of the first config that uses it: the graph gives a shared task the id
    that config gives it (plan/resolver.py), so it is the id to look up in that lock."""
    locks = {spec.path: lockfile.config_lock(spec.path) for spec in the_plan.specs}
    return {node.id: locks.get(node.uses[0].config) for node in the_plan.graph.nodes.values()}


def explain_plan(the_plan: Plan) -> dict[str, list[str]]:
    """Task id -> why it is cached or must run, measured against the lock."""
    return explain(the_plan.graph.nodes, the_plan.statuses, the_plan.hasher, locks_of(the_plan))


def explain_code(the_plan: Plan) -> dict[str, list[tuple[str, CodeIdentity]]]:
    """Model -> (config field, the user's code it names): the files hashed into the keys."""
    return keyed_code(the_plan.specs, the_plan.graph)


@dataclass
class LockCheck:
    """The plan against its configs' locks, before anything runs."""

    differences: list[str]  # each line names its task (or the lock file)
    notices: list[str]  # not failures: outputs known not to be byte-reproducible

    @property
    def exit_status(self) -> int:
        return EXIT_FAILED if self.differences else EXIT_OK


def lock_check(the_plan: Plan) -> LockCheck:
    """Compare the plan's keys (and the cached outputs' hashes) with each config's lock. Unreadable
    locks and newer formats raise LockError (exit 2)."""
    check = LockCheck([], [])
    for spec in the_plan.specs:
        found, notices = lockcheck.check_plan(the_plan, spec)
        check.differences += found
        check.notices += [line for line in notices if line not in check.notices]
    return check


def check_locked(the_plan: Plan) -> list[str]:
    """Raise LockMismatch listing every difference between the plan and the locks; else return the
    notices (outputs that differ from the lock but are marked not byte-reproducible)."""
    check = lock_check(the_plan)
    if check.differences:
        raise LockMismatch(check.differences)
    return check.notices


@dataclass
class Verification:
    artifacts: list[ArtifactVerdict]
    run: RunResult
    # Checked before the rebuild, as --locked does: keys the lock records that this checkout does not
    # build from (each line names its task). The verdicts are about bytes only.
    key_differences: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        accepted = all(a.accepted for a in self.artifacts) and not self.key_differences
        return EXIT_OK if accepted else EXIT_FAILED


def verify(configs: Iterable[Path | str], *, jobs: int = 1, pipeline: Pipeline = PIPELINE) -> Verification:
    """Check every task's key against the lock (as `plan --locked` does on an empty cache), rebuild
    every task of the configs from scratch, in a temporary store, and give each output the lock
    records one verdict (plan/locked.py). The lock and the user's cache and build folder are left
    alone."""
    import tempfile

    configs = list(configs)
    locks = {}
    for spec in load(configs):
        lock = lockfile.config_lock(spec.path)
        path = lockfile.lock_path(spec.path)
        if lock is None:
            raise UsageError(f"{path}: no lock to verify against; run `trtbuild run {spec.path}` first")
        older = lockfile.older_format(lock)
        if older is not None:  # its keys and hashes cannot be compared with this trtbuild's
            raise UsageError(
                f"{path}: {older}: run `trtbuild run {spec.path}` once to rewrite it, commit it, then verify"
            )
        locks[spec.path] = lock
    with tempfile.TemporaryDirectory(prefix="trtbuild-verify-") as scratch:
        cache = Path(scratch) / "cache"
        before = plan(configs, cache_dir=cache, pipeline=pipeline)
        key_differences = [
            line
            for spec in before.specs
            for line in lockcheck.compare_plan(before, spec, locks[spec.path])[0]
        ]
        rebuilt = run(
            configs,
            cache_dir=cache,
            out_dir=Path(scratch) / "build",
            jobs=jobs,
            write_lock=False,
            pipeline=pipeline,
        )
    artifacts = []
    for spec in rebuilt.plan.specs:
        artifacts += lockcheck.verify_artifacts(
            rebuilt.plan.graph, spec, locks[spec.path], rebuilt.materials, rebuilt.results
        )
    return Verification(artifacts, rebuilt, key_differences)


@dataclass
class FsckResult:
    """`fsck`: the cache's bad files and the output folder's, each named with what is wrong."""

    store: StoreCheck
    outputs: list[Finding] = field(default_factory=list)  # build/ files that are not the lock's bytes
    outputs_checked: int = 0
    missing: list[Path] = field(default_factory=list)  # outputs the lock records that are not there

    @property
    def findings(self) -> list[Finding]:
        return [*self.store.findings, *self.outputs]

    @property
    def exit_status(self) -> int:
        return EXIT_FAILED if self.findings else EXIT_OK


def fsck(
    configs: Iterable[Path | str] = (),
    *,
    cache_dir: Path | None = None,
    out_dir: Path | str = "build",
    repair: bool = False,
) -> FsckResult:
    """Re-hash the cache (store/fsck.py) and, for `configs`, every output under `out_dir` against
    the hash the config's lock records for it. Nothing is trusted: no stat cache, no entry's word.
    With `repair`, bad files are removed, so the next run rebuilds (or relinks) them."""
    store = Store(cache_dir or default_cache_dir())
    if not store.root.is_dir():  # a mistyped --cache-dir checks nothing: not a clean bill
        raise UsageError(
            f"no cache at {store.root}: give the cache to check with --cache-dir or TRTBUILD_CACHE_DIR"
        )
    result = FsckResult(check_store(store, repair=repair))
    configs = list(configs)
    if not configs:
        return result
    the_plan = plan(configs, cache_dir=cache_dir, use_cache=False)
    try:
        locks = locks_of(the_plan)
    except UnreadableLock as error:  # the next plain run replaces it, and says so
        where = error.problem.location
        result.outputs.append(Finding(where.file if where else Path("lock"), error.problem.message))
        return result
    for cell in the_plan.graph.cells:
        for artifact in cell.artifacts:
            expected = _locked_hash(locks.get(artifact.node_id), artifact.node_id, artifact.output)
            path = Path(out_dir) / cell.model / cell.cell / artifact.filename
            _check_output(result, path, expected, repair)
    return result


def _locked_hash(lock: lockfile.Lock | None, node_id: str, output: str) -> str | None:
    """The hash the lock records for a task's output (None without a lock or an entry for it)."""
    entry = lock.tasks.get(node_id, {}) if lock is not None else {}
    outputs = entry.get("outputs")
    recorded = outputs.get(output) if isinstance(outputs, dict) else None
    found = recorded.get("hash") if isinstance(recorded, dict) else None
    return found if isinstance(found, str) else None


def _check_output(result: FsckResult, path: Path, expected: str | None, repair: bool) -> None:
    if expected is None:
        return
    try:
        actual = digest_file(path)
    except FileNotFoundError:
        result.missing.append(path)
        return
    except OSError as error:
        actual = f"unreadable ({error.strerror or error})"
    result.outputs_checked += 1
    if actual != expected:
        problem, kept = f"is {actual}, the lock records {expected}", False
        if repair:
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                problem, kept = f"{problem} (not removed: {error.strerror or error})", True
        result.outputs.append(Finding(path, problem, kept))


__all__ = [
    "ArtifactVerdict",
    "FsckResult",
    "LockCheck",
    "Plan",
    "RunResult",
    "Verification",
    "check_locked",
    "explain_code",
    "explain_plan",
    "fsck",
    "load",
    "lock_check",
    "locks_of",
    "plan",
    "preflight",
    "run",
    "verify",
    "write_locks",
]
