"""`verify` and `run --locked` on outputs that are not byte-reproducible (issue 11).

Fixture task kinds, defined here and added with `PIPELINE.with_stage`, write random bytes after the
build: one marks its result `{"reproducibility": {"byte_reproducible": False, ...}}` (the interface
the build worker uses), one says it is reproducible but reports a new build environment each time,
one says nothing. A fourth kind digests the marked kind's bytes: it follows them. Nothing is faked:
the tiny model is exported, built and validated for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks import build
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.pipeline import PIPELINE, From, Pipeline, Stage

pytestmark = pytest.mark.slow  # builds the tiny model three times per test

NOT_REPRODUCIBLE = "not byte-reproducible (inputs identical)"


@dataclass(frozen=True)
class NoParams:
    pass


class RandomBytes(TaskKind[NoParams]):
    """Random bytes, marked as such: what a build that cannot repeat its bytes reports."""

    name = "random-bytes"
    version = 1
    outputs = ("random.bin",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[NoParams]:
        return Derived(NoParams())

    def tools(self, params: NoParams) -> JsonDict:
        return {}

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        ctx.output("random.bin").write_bytes(os.urandom(32))
        return {"reproducibility": self.reproducibility()}

    def reproducibility(self) -> JsonDict:
        return {"byte_reproducible": False, "reason": "fixture: random bytes", "environment": "x"}


class NewEnvironment(RandomBytes):
    """Claims reproducible bytes, but every build runs in another environment."""

    name = "new-environment"

    def reproducibility(self) -> JsonDict:
        return {"byte_reproducible": True, "environment": uuid.uuid4().hex}


class Unmarked(RandomBytes):
    """Random bytes without a word about it: a task that is simply not deterministic."""

    name = "unmarked"

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        ctx.output("random.bin").write_bytes(os.urandom(32))
        return {}


class Digest(RandomBytes):
    """Deterministic in its input: its bytes change only when random-bytes' do."""

    name = "digest"
    outputs = ("digest.txt",)

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        digest = hashlib.sha256(ctx.inputs["random.bin"].read_bytes()).hexdigest()
        ctx.output("digest.txt").write_text(digest)
        return {}


class DigestInNewEnvironment(Digest):
    """Follows random-bytes' bytes, and reports another environment each build: validate's case when
    the int8 engine's bytes moved and the CPUs did too. The reason must name both causes."""

    name = "digest-new-environment"

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        super().run(ctx)
        return {"reproducibility": NewEnvironment().reproducibility()}


def after_build(kind: TaskKind[NoParams]) -> Stage:
    return Stage(kind, {"engine.json": From((build.NAME,), build.ENGINE_JSON)})


def lock_text(project: Project) -> str:
    return project.config.with_suffix(".lock").read_text()


def run(project: Project, pipeline: Pipeline, **options: bool) -> api.RunResult:
    return api.run(
        [project.config], cache_dir=project.cache, out_dir=project.out, pipeline=pipeline, **options
    )


def test_marked_bytes_are_not_byte_reproducible_and_what_follows_them_says_so(tiny_project: Project) -> None:
    pipeline = (
        PIPELINE.with_stage(after_build(RandomBytes()))
        .with_stage(Stage(Digest(), {"random.bin": From((RandomBytes.name,), "random.bin")}))
        .with_stage(after_build(NewEnvironment()))
        .with_stage(Stage(DigestInNewEnvironment(), {"random.bin": From((RandomBytes.name,), "random.bin")}))
    )
    first = run(tiny_project, pipeline)
    assert first.exit_status == 0, [event.reason for event in first.failed_tasks]
    locked = lock_text(tiny_project)
    entry = json.loads(locked)["tasks"]["tiny/fp32/random-bytes"]
    assert entry["reproducibility"] == RandomBytes().reproducibility()

    # Everything again from scratch against the lock: other random bytes, a notice and no failure.
    again = run(tiny_project, pipeline, locked=True, use_cache=False)
    assert again.exit_status == 0, (again.lock_differences, [e.reason for e in again.failed_tasks])
    assert again.lock_differences == []
    notices = "\n".join(again.notices)
    assert (
        "tiny/fp32/random-bytes: random.bin is not byte-reproducible (this build: fixture: random" in notices
    )
    assert "tiny/fp32/digest: its key differs from tiny.lock's only through tiny/fp32/random-bytes" in notices
    assert lock_text(tiny_project) == locked

    verification = api.verify([tiny_project.config], pipeline=pipeline)
    verdicts = {(a.task, a.output): a for a in verification.artifacts}
    assert verdicts.pop(("tiny/fp32/random-bytes", "random.bin")).verdict == NOT_REPRODUCIBLE
    digest = verdicts.pop(("tiny/fp32/digest", "digest.txt"))
    assert digest.verdict == "not byte-reproducible (follows tiny/fp32/random-bytes/random.bin)"
    assert digest.reason == "its inputs differ only through tiny/fp32/random-bytes/random.bin"
    both = verdicts.pop(("tiny/fp32/digest-new-environment", "digest.txt"))
    assert both.verdict == digest.verdict
    assert both.reason.startswith(f"{digest.reason}; and it was built in another environment (")
    environment = verdicts.pop(("tiny/fp32/new-environment", "random.bin"))
    assert environment.verdict == NOT_REPRODUCIBLE and "built in another environment" in environment.reason
    assert {a.verdict for a in verdicts.values()} == {"identical"} and len(verdicts) == 9  # + reference.npz
    assert verification.exit_status == 0
    assert lock_text(tiny_project) == locked


def test_unmarked_random_bytes_are_different(tiny_project: Project) -> None:
    pipeline = PIPELINE.with_stage(after_build(Unmarked()))
    assert run(tiny_project, pipeline).exit_status == 0
    locked = lock_text(tiny_project)

    again = run(tiny_project, pipeline, locked=True, use_cache=False)
    assert again.exit_status == 1 and not again.failed_tasks
    [difference] = again.lock_differences
    assert difference.startswith("tiny/fp32/unmarked: random.bin: this run has ")
    assert "same key (inputs, params and tools as locked), other bytes" in difference
    assert lock_text(tiny_project) == locked

    verification = api.verify([tiny_project.config], pipeline=pipeline)
    verdicts = {(a.task, a.output): a.verdict for a in verification.artifacts}
    assert verdicts.pop(("tiny/fp32/unmarked", "random.bin")) == "different"
    assert set(verdicts.values()) == {"identical"}
    assert verification.exit_status == 1
    assert lock_text(tiny_project) == locked
