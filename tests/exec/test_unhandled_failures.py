"""A library failure no task turns into a message still prints no traceback: the failure says where
it was raised and what to do, and the traceback goes to the debug log."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.pipeline import Pipeline, Stage


@dataclass(frozen=True)
class NoParams:
    pass


class ReadsGarbage(TaskKind[NoParams]):
    """Hands onnx.load a file that is not a model: protobuf raises a DecodeError nobody catches."""

    name = "reads-garbage"
    version = 1
    outputs = ("never.json",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[NoParams]:
        return Derived(NoParams())

    def tools(self, params: NoParams) -> JsonDict:
        return {}

    def run(self, ctx: TaskContext[NoParams]) -> JsonDict:
        import onnx

        garbage = ctx.outdir / "garbage.onnx"
        garbage.write_bytes(b"\xff" * 64)
        onnx.load(str(garbage))
        return {}


def test_an_unhandled_library_failure_says_where_and_what_to_do(
    tiny_project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline((Stage(ReadsGarbage(), shared=True),))
    with caplog.at_level(logging.DEBUG, logger="trtbuild.exec"):
        result = api.run(
            [tiny_project.config], cache_dir=tiny_project.cache, out_dir=tiny_project.out, pipeline=pipeline
        )
    (failed,) = result.failed_tasks
    assert failed.id == "tiny/reads-garbage"
    assert failed.reason.startswith("DecodeError: "), failed.reason
    assert not any(detail.lstrip().startswith(("File ", "Traceback", "^")) for detail in failed.details)
    assert any(detail.startswith("raised at ") and "onnx" in detail for detail in failed.details), (
        failed.details
    )
    assert "TRTBUILD_LOG=debug" in failed.details[-1]
    assert "Traceback (most recent call last)" in caplog.text  # kept for whoever debugs it
