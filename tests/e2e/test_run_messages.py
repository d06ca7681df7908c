"""What `run` and `plan` say, said once, whole and true (issue 9, finding 11).

On d561ae9: `run --only fp16` rewrote report.md as "1 cells: 1 passed." for a two-cell config; the
dynamo exporter's error reached the terminal as "TorchExportError: Failed to export the model with
torch.export. \\x1b[96mThis is step 1/3\\x1b[0m of exporting the model to ONNX. Next steps:", cut off
there and printed three times (progress, the table's notes, a closing "failed:" line); "Finished
tasks are cached" closed runs in which nothing finished; a cell whose tasks were all skipped got the
note "not built yet (): run `trtbuild run` for it"; report.html's header said "2 cells from
../../tiny.yaml"; and `plan` exited 0 on `model.source: tinynet:NoSuchNet`, which only `run` caught.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL, Project, in_fresh_interpreter

pytestmark = pytest.mark.slow

BRANCHY = '''

class Branchy(torch.nn.Module):
    """Data-dependent control flow: torch.export cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)
'''

BRANCHY_CONFIG = """\
model: {name: branchy, source: "tinynet:Branchy"}
inputs:
  x: {shape: [batch, 4], dtype: float32}
outputs: [y]
export: {opset: 18, exporter: dynamo}
profiles:
  default:
    x: {min: [1, 4], opt: [2, 4], max: [4, 4]}
precision: [fp32, fp16]
build: {targets: [SM89]}
validate: {samples: 2}
"""


def new_project(root: Path, config: str) -> Project:
    root.mkdir()
    (root / "tinynet.py").write_text(TINY_MODEL + BRANCHY)
    path = root / "tiny.yaml"
    path.write_text(config)
    return Project(root=root, config=path, cache=root.parent / "cache", out=root / "build")


@dataclass
class Run:
    completed: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    markdown: str
    html: str


def run_and_read(project: Project, model: str, *args: str) -> Run:
    completed = project.trtbuild("run", *args)
    directory = project.out / model
    return Run(
        completed,
        json.loads((directory / "report.json").read_text()),
        (directory / "report.md").read_text(),
        (directory / "report.html").read_text(),
    )


@pytest.fixture(scope="module")
def only_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run, Run]:
    """fp32 + fp16, run as a user would from the project folder: `--only fp16`, then `--only fp32`."""
    head, _, tail = TINY_CONFIG.partition("build:\n")
    project = new_project(
        tmp_path_factory.mktemp("only") / "project", f"{head}precision: [fp32, fp16]\nbuild:\n{tail}"
    )
    fp16 = run_and_read(project, "tiny", "tiny.yaml", "--only", "fp16")
    assert fp16.completed.returncode == 0, fp16.completed.stderr
    fp32 = run_and_read(project, "tiny", "tiny.yaml", "--only", "fp32")
    assert fp32.completed.returncode == 0, fp32.completed.stderr
    return project, fp16, fp32


def test_only_one_cell_still_reports_every_cell_of_the_config(only_runs: tuple[Project, Run, Run]) -> None:
    _, fp16, fp32 = only_runs
    assert [cell["cell"] for cell in fp16.report["cells"]] == ["fp32", "fp16"]
    statuses = {cell["cell"]: cell["status"] for cell in fp16.report["cells"]}
    assert statuses == {"fp32": "not built", "fp16": "built"}
    # The shared export and simplify ran for fp16: fp32 still lacks its own three tasks.
    assert "fp32: not built yet (precision, build, validate)" in fp16.markdown
    assert "not run in this invocation (--only): fp32" in fp16.completed.stdout
    # The second run builds fp32; fp16 is reported from the cache, not dropped.
    assert [cell["status"] for cell in fp32.report["cells"]] == ["built", "built"]
    assert "2 cells from " in fp32.markdown and ": 2 passed." in fp32.markdown
    assert "not run in this invocation (--only): fp16" in fp32.completed.stdout


def test_report_header_names_the_config_by_its_absolute_path(only_runs: tuple[Project, Run, Run]) -> None:
    project, _, run = only_runs
    config = str(project.config)  # absolute; the CLI was given "tiny.yaml" in the project folder
    assert all(cell["config"] == config for cell in run.report["cells"])
    assert f"2 cells from {config}" in run.markdown
    assert f'2 cells from <a href="{project.config.as_uri()}">{config}</a>' in run.html
    assert "../../tiny.yaml" not in run.html


@pytest.fixture(scope="module")
def failed_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    project = new_project(tmp_path_factory.mktemp("dynamo") / "project", BRANCHY_CONFIG)
    run = run_and_read(project, "branchy", "tiny.yaml")
    assert run.completed.returncode == 1, run.completed.stderr
    return project, run


HEADLINE = "torch.onnx.export (dynamo, opset 18) failed"


def test_dynamo_export_error_arrives_whole_and_without_colour_codes(
    failed_export: tuple[Project, Run],
) -> None:
    _, run = failed_export
    out, err = run.completed.stdout, run.completed.stderr
    assert "\x1b" not in out + err + run.markdown
    # The headline is torch.export's own reason, not the wrapper's "Next steps:" cut off mid-list.
    assert f"{HEADLINE}: GuardOnDataDependentSymNode: Could not guard on data-dependent expression" in out
    assert "Next steps:" not in out
    # The details show where in the user's code it happened.
    assert "if x.sum() > 0:" in err and "tinynet.py" in err


def test_export_failure_is_reported_once(failed_export: tuple[Project, Run]) -> None:
    _, run = failed_export
    out, err = run.completed.stdout, run.completed.stderr
    assert out.count(HEADLINE) == 1  # the summary
    assert err.count(HEADLINE) == 1  # the progress log
    assert run.markdown.count(HEADLINE) == 1
    # Its dependents are listed as skipped, naming the failure without repeating it.
    assert "fp32, fp16: simplify, probe, precision, build, validate skipped: branchy/export failed" in out


def test_nothing_finished_so_nothing_is_said_to_be_cached(failed_export: tuple[Project, Run]) -> None:
    _, run = failed_export
    assert "10 tasks: 1 failed, 9 skipped" in run.completed.stdout
    assert "Finished tasks are cached" not in run.completed.stdout
    assert "Nothing was built: fix the cause and run again." in run.completed.stdout


def test_a_cell_skipped_after_a_failure_says_what_it_lacks(tmp_path: Path) -> None:
    # Two cells; the first (classes: -1) cannot even instantiate the model. Without --keep-going the
    # second is not started: it lacks every task, and the note says which and why.
    head, _, tail = TINY_CONFIG.partition("build:\n")
    matrix = "matrix:\n  model.kwargs.classes: [-1, 10]\n"
    project = new_project(tmp_path / "project", f"{head}{matrix}build:\n{tail}")
    stopped = run_and_read(project, "tiny", "tiny.yaml")
    assert stopped.completed.returncode == 1, stopped.completed.stderr
    for text in (stopped.completed.stdout, stopped.markdown):
        assert "()" not in text
        assert (
            "10: export, simplify, probe, reference, precision, build, validate skipped: not started after "
            "tiny/-1/export failed (--keep-going runs what does not depend on it)"
        ) in text
    assert "Finished tasks are cached" not in stopped.completed.stdout
    # With --keep-going the good cell is built: now something finished and is cached.
    going = run_and_read(project, "tiny", "tiny.yaml", "--keep-going")
    assert going.completed.returncode == 1, going.completed.stderr
    assert [cell["status"] for cell in going.report["cells"]] == ["failed", "built"]
    assert "Finished tasks are cached: fix the cause and run again to continue." in going.completed.stdout


def test_plan_names_a_factory_that_does_not_exist(tiny_project: Project) -> None:
    tiny_project.edit_config("source: tinynet:TinyNet", "source: tinynet:NoSuchNet")
    for args in ((), ("--json",)):
        completed = tiny_project.trtbuild("plan", str(tiny_project.config), *args)
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert f"{tiny_project.config}:3:" in completed.stderr
        assert "model.source: module 'tinynet' has no attribute 'NoSuchNet'" in completed.stderr
        assert "Traceback" not in completed.stderr
        assert completed.stdout == ""


def test_plan_of_a_cached_config_still_imports_no_torch(only_runs: tuple[Project, Run, Run]) -> None:
    # plan now runs run's checks, but like run only for kinds with tasks to run.
    project, _, _ = only_runs
    probe = f"""
        import json, sys
        from trtbuild.cli import main
        status = main(["plan", {str(project.config)!r}])
        print(json.dumps({{"status": status, "torch": "torch" in sys.modules}}), file=sys.stderr)
        """
    completed = in_fresh_interpreter(project, probe)
    assert json.loads(completed.stderr.strip().splitlines()[-1]) == {"status": 0, "torch": False}
    assert "Everything is cached." in completed.stdout
