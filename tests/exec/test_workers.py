"""Tasks run in worker processes (exec/worker.py, exec/workers.py): a task's pid is not the
executor's, a failure there reads as it did in-process, a worker killed mid-task fails only that
task and publishes nothing, `-j` beyond the CPUs is clamped with a note, keep-going holds at -j 2."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Project, in_fresh_interpreter, run_in_fresh_interpreter
from tests.e2e.test_run_cli import HEAVY_MODULES
from trtbuild import api
from trtbuild.errors import TaskError
from trtbuild.exec.local import longest_chain_first
from trtbuild.exec.slots import Slots, plan_slots
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.pipeline import From, Pipeline, Stage

OUTPUT = "out.json"


@dataclass(frozen=True)
class NoParams:
    pass


class Behaves(TaskKind[NoParams]):
    """A fixture kind whose run does one thing, by name: record where it ran, fail, die, log."""

    version = 1
    outputs = (OUTPUT,)

    def __init__(self, name: str, action: str, memory: int = 1 << 20) -> None:
        self.name = name
        self.action = action
        self.memory = memory

    def derive(self, spec: Spec, cell: Cell) -> Derived[NoParams]:
        return Derived(NoParams())

    def tools(self, params: NoParams) -> JsonDict:
        return {}

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        from trtbuild.tasks import onnx_tensors

        where: JsonDict = {
            "pid": os.getpid(),
            "ort": onnx_tensors.INTRA_OP_THREADS,
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "started": time.time(),
        }
        ctx.output(OUTPUT).write_text(json.dumps(where))  # a partial output, for "kill"
        if self.action == "fail":
            raise TaskError("the fixture failed on purpose", ["a detail line"])
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.action == "linger":  # long enough for two tasks to overlap, if they may
            time.sleep(2.0)
            where["ended"] = time.time()
        if self.action == "hang":  # until someone kills the worker
            Path(os.environ["TRTBUILD_TEST_PIDFILE"]).write_text(str(os.getpid()))
            time.sleep(60.0)
        if self.action == "log":
            logging.getLogger("trtbuild.task.fixture").warning("logged in the worker")
            ctx.warn("warned in the worker")
        return where


def stage(name: str, action: str, after: str | None = None, memory: int = 1 << 20) -> Stage:
    inputs = {"upstream.json": From((after,), OUTPUT)} if after else {}
    return Stage(Behaves(name, action, memory), inputs, shared=True)


def run(project: Project, *stages: Stage, **options: Any) -> api.RunResult:
    return api.run(
        [project.config], cache_dir=project.cache, out_dir=project.out, pipeline=Pipeline(stages), **options
    )


def test_a_task_runs_in_a_worker_process_and_its_logs_and_warnings_come_back(
    tiny_project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trtbuild.task"):
        result = run(tiny_project, stage("where", "log"))
    (event,) = result.events
    assert event.state == "ran", event.reason
    assert event.meta["pid"] != os.getpid()
    assert event.peak_memory is not None and event.peak_memory > 0  # the worker's, in --json
    assert event.warnings == ["warned in the worker"]
    assert "logged in the worker" in caplog.text  # re-emitted through this process's handlers


def test_a_failure_in_the_worker_reads_as_before_and_exits_1(tiny_project: Project) -> None:
    result = run(tiny_project, stage("fails", "fail"))
    (failed,) = result.failed_tasks
    assert failed.reason == "the fixture failed on purpose"
    assert failed.details == ["a detail line"]
    assert result.exit_status == 1


def test_a_killed_worker_fails_its_task_publishes_nothing_and_the_next_task_gets_a_new_one(
    tiny_project: Project,
) -> None:
    pipeline = (stage("dies", "kill"), stage("after-death", "pid"))
    result = run(tiny_project, *pipeline, keep_going=True)
    events = {event.id: event for event in result.events}
    dies, after = events["tiny/dies"], events["tiny/after-death"]
    assert dies.state == "failed"
    assert "was killed by SIGKILL" in dies.reason and "nothing of the task was kept" in dies.reason
    assert after.state == "ran" and after.meta["pid"] != os.getpid()
    assert result.exit_status == 1
    again = api.plan([tiny_project.config], cache_dir=tiny_project.cache, pipeline=Pipeline(pipeline))
    assert again.statuses["tiny/dies"].state == "run"  # no action entry was written
    assert again.statuses["tiny/after-death"].state == "cached"
    assert list((tiny_project.cache / "tmp").iterdir()) == []  # the partial output went with its folder


def test_keep_going_at_j2_runs_what_does_not_depend_on_the_failure(tiny_project: Project) -> None:
    stages = (stage("fails", "fail"), stage("dependent", "pid", after="fails"), stage("free", "pid"))
    result = run(tiny_project, *stages, jobs=2, keep_going=True)
    states = {event.id: (event.state, event.reason) for event in result.events}
    assert states["tiny/fails"][0] == "failed"
    assert states["tiny/dependent"] == ("skipped", "tiny/fails failed")
    assert states["tiny/free"][0] == "ran"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to share between slots")
def test_j_beyond_the_cpus_is_clamped_with_a_note_and_each_worker_gets_its_share_of_threads(
    tiny_project: Project,
) -> None:
    cpus = len(os.sched_getaffinity(0))
    result = run(tiny_project, stage("first", "pid"), stage("second", "pid"), jobs=cpus + 5)
    assert [note for note in result.notices if f"-j {cpus + 5} asked for more tasks" in note], result.notices
    for event in result.events:  # one thread each: ONNX Runtime's sessions and torch's (OMP)
        assert (event.meta["ort"], event.meta["omp"]) == (1, "1"), event.meta
    alone = run(tiny_project, stage("third", "pid"), jobs=1)
    assert alone.events[0].meta["ort"] == 0  # one slot keeps ONNX Runtime's own choice
    assert not [note for note in alone.notices if "asked for more tasks" in note]


def test_a_task_whose_memory_estimate_is_not_available_waits_for_the_running_one_with_a_note(
    tiny_project: Project,
) -> None:
    more_than_any_machine = 1 << 60
    stages = (stage("big", "linger", memory=more_than_any_machine), stage("bigger", "linger", memory=1 << 60))
    result = run(tiny_project, *stages, jobs=2)
    first, second = sorted(result.events, key=lambda event: event.meta["started"])
    assert second.meta["started"] >= first.meta["ended"]  # never both at once
    assert [note for note in result.notices if "waited for a running task to finish" in note], result.notices
    # A task alone always starts: one run at -j 1 of one such task succeeds.
    assert run(tiny_project, stage("alone", "pid", memory=more_than_any_machine)).exit_status == 0


def test_slots_share_the_cpus_and_never_outnumber_them() -> None:
    assert plan_slots(1, 4) == Slots(1, 0)
    assert plan_slots(2, 4) == Slots(2, 2)
    three = plan_slots(3, 2)
    assert (three.count, three.threads) == (2, 1)
    assert three.notes and "running at most 2 at once" in three.notes[0]
    assert plan_slots(2, 2).notes == ()


@pytest.mark.slow  # exports, builds and validates the tiny model
def test_a_cold_run_imports_no_heavy_library_in_trtbuilds_own_process(tiny_project: Project) -> None:
    """The preflights (which import the model's module, hence torch) and every task run in workers:
    the CLI's process stays small (it held 700 MB of torch and torchvision on a ResNet-50 run).
    numpy is left out: the report's plots (matplotlib) import it after the tasks."""
    heavy = tuple(name for name in HEAVY_MODULES if name != "numpy")
    report, completed = run_in_fresh_interpreter(tiny_project, heavy)
    assert report == {"status": 0, "loaded": []}, completed.stderr[-2000:]


@pytest.mark.slow  # a fresh interpreter
def test_a_kind_defined_in_main_runs_in_trtbuilds_process_with_a_note(tiny_project: Project) -> None:
    """A user's script may define a kind in __main__, which a worker cannot import: it runs in
    trtbuild's process, as before, and the run says so."""
    probe = f"""
        import json, os
        from dataclasses import dataclass
        from trtbuild import api
        from trtbuild.tasks.base import Derived, TaskKind
        from trtbuild.tasks.pipeline import Pipeline, Stage

        @dataclass(frozen=True)
        class NoParams:
            pass

        class Here(TaskKind[NoParams]):
            name = "here"
            version = 1
            outputs = ("pid.txt",)

            def derive(self, spec, cell):
                return Derived(NoParams())

            def tools(self, params):
                return {{}}

            def preflight(self, spec, tasks):
                return []

            def run(self, ctx):
                ctx.output("pid.txt").write_text(str(os.getpid()))
                return {{"pid": os.getpid()}}

        result = api.run([{str(tiny_project.config)!r}], out_dir={str(tiny_project.out)!r},
                         pipeline=Pipeline((Stage(Here(), shared=True),)))
        same = result.events[0].meta.get("pid") == os.getpid()
        print(json.dumps({{"status": result.exit_status, "same": same, "notices": result.notices}}))
        """
    completed = in_fresh_interpreter(tiny_project, probe)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["status"] == 0 and report["same"] is True
    assert any("tiny/here ran in trtbuild's own process" in note for note in report["notices"])


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow  # a fresh interpreter and a worker
def test_a_worker_ends_when_the_executor_is_killed_mid_task(tiny_project: Project, tmp_path: Path) -> None:
    """`kill PID` (a supervisor, a CI runner) sends SIGTERM to trtbuild's process alone, which dies at
    once: its busy worker must not go on running the task, orphaned, for minutes."""
    pidfile = tmp_path / "worker.pid"
    probe = f"""
        from pathlib import Path
        from tests.conftest import Project
        from tests.exec.test_workers import run, stage
        project = Project(Path({str(tiny_project.root)!r}), Path({str(tiny_project.config)!r}),
                          Path({str(tiny_project.cache)!r}), Path({str(tiny_project.out)!r}))
        run(project, stage("hangs", "hang"))
        """
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TRTBUILD_TEST_PIDFILE": str(pidfile)}
    executor = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(probe)], cwd=tiny_project.root, env=env
    )
    worker = 0
    try:
        deadline = time.monotonic() + 120
        while not pidfile.exists() and executor.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pidfile.exists(), "the task never started"
        worker = int(pidfile.read_text())
        executor.send_signal(signal.SIGTERM)
        executor.wait(30)
        deadline = time.monotonic() + 10
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the worker outlived the executor, still running its task"
    finally:
        executor.kill()
        if worker and _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_with_two_slots_the_longest_chain_starts_first(tiny_project: Project) -> None:
    """A free slot takes the ready task that heads the most work still ahead: the int8 calibration
    before the reference and the probe, which graph order starts first; fp32's precision (a copy)
    last. A cached task counts for nothing, so what follows it decides."""
    tiny_project.edit_config(
        "build:\n", "precision: [fp32, int8]\ncalibration: {source: random, samples: 2}\nbuild:\n"
    )
    graph = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    ordered = [node.id for node in longest_chain_first(list(graph.nodes.values()))]
    assert ordered.index("tiny/int8/precision") < ordered.index("tiny/reference")
    assert ordered.index("tiny/int8/precision") < ordered.index("tiny/probe")
    assert ordered.index("tiny/fp32/precision") > ordered.index("tiny/int8/precision")
    assert ordered[0] == "tiny/export"  # everything waits for it
    as_cached = [
        node.id for node in longest_chain_first(list(graph.nodes.values()), cached={"tiny/int8/precision"})
    ]
    assert as_cached.index("tiny/reference") < as_cached.index("tiny/int8/precision")
