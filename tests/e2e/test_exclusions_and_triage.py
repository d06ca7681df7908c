"""The fp16 gate, `debug precision` and `autocast.exclude_nodes` agree (issue 9, finding 7).

On d561ae9 a cell could fail its gate on an Inf that a Cast made (an fp32 value beyond fp16's range
cast down for the next node) while triage said "No node introduces a relative error above 0.01",
since the next node's output stayed finite; an `exclude_nodes` pattern matching no node was ignored
in silence; and a model returning a dict was exported through a wrapper whose attribute prefixed
every node name (`/inner/energy/Mul`), so the names a user wrote matched nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.conftest import Project, states
from trtbuild.spec.loader import load_spec

pytestmark = pytest.mark.slow

# fc2's outputs reach a few hundred on inputs in [-1000, 1000]: their square passes fp16's 65504.
# AutoCast's own reference run (inputs in (-1, 1)) sees small values, so it puts it all in fp16.
MODELS = """
import torch


class Square(torch.nn.Module):
    def forward(self, h):
        return h * h


class SoftCapped(torch.nn.Module):
    def __init__(self, as_dict: bool = False, soft_cap: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)
        self.energy = Square()
        self.as_dict, self.soft_cap = as_dict, soft_cap

    def forward(self, x):
        y = self.energy(self.fc2(torch.relu(self.fc1(x))))
        if self.soft_cap:
            y = torch.tanh(y)  # tanh(inf) is 1: the next node absorbs an Inf
        return {"logits": y} if self.as_dict else y
"""

CONFIG = """\
model:
  name: capped
  source: capped:SoftCapped
  kwargs: {kwargs}
inputs:
  input: {{shape: [batch, 8], dtype: float32, range: [-1000, 1000]}}
outputs:
  logits: {{shape: [batch, 4]}}
export: {{opset: 17, exporter: torchscript}}
profiles:
  default:
    input: {{min: [1, 8], opt: [4, 8], max: [8, 8]}}
precision: [fp32, fp16]
build: {{targets: [SM89]}}
validate: {{samples: 3}}
"""


@pytest.fixture
def capped(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    (root / "capped.py").write_text(MODELS)
    return Project(root=root, config=root / "capped.yaml", cache=tmp_path / "cache", out=root / "build")


def configure(project: Project, kwargs: str, autocast: str = "") -> None:
    project.write_config(CONFIG.format(kwargs=kwargs) + autocast)


def triage(project: Project, *args: str) -> dict:
    completed = project.trtbuild("debug", "precision", str(project.config), "--cell", "fp16", "--json", *args)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def fp16_failures(project: Project) -> list[dict]:
    return json.loads((project.out / "capped/fp16/validation.json").read_text())["failures"]


def test_triage_names_the_node_where_the_gates_inf_first_appears(capped: Project) -> None:
    # The square is already kept in fp32 (a first round of triage named it); tanh, in fp16, reads
    # it through a Cast that turns its largest values into Inf, and tanh(Inf) = 1.
    configure(capped, "{}", "autocast:\n  exclude_nodes: ['/energy/Mul$']\n")
    first = capped.trtbuild("run", str(capped.config), "--out", str(capped.out))
    assert first.returncode == 1, first.stderr
    assert [f["metric"] for f in fp16_failures(capped)] == ["fp16 overflow"]

    report = triage(capped)
    # d561ae9: offenders == [] ("No node introduces a relative error above 0.01").
    assert [o["node"] for o in report["offenders"]] == ["/Tanh"]
    tanh = report["offenders"][0]
    assert tanh["overflow"] is True
    assert tanh["inf_nan"] == "input"  # the Cast on its way in makes the Inf, not tanh itself
    assert tanh["error"] < 1e-2  # its output is fine: relative error alone cannot find it
    assert report["first_inf_nan"]["node"] == "/Tanh"
    assert report["first_inf_nan"]["tensor"] == "/energy/Mul_output_0_cast_to_fp16"
    # The gate's table points at the triage.
    assert f"`trtbuild debug precision {capped.config} --cell fp16`" in first.stdout

    table = capped.trtbuild("debug", "precision", str(capped.config), "--cell", "fp16", check=True)
    assert "No node introduces" not in table.stdout
    assert "Inf/NaN first appears in /energy/Mul_output_0_cast_to_fp16" in " ".join(table.stdout.split())

    capped.trtbuild(
        "debug", "precision", str(capped.config), "--cell", "fp16", "--write-exclusions", check=True
    )
    assert load_spec(capped.config).autocast.exclude_nodes == ("/energy/Mul$", "/Tanh$")
    second = capped.run_json()
    assert second["exit_status"] == 0, fp16_failures(capped)


def test_an_exclude_nodes_pattern_that_matches_no_node_fails_its_cell(tiny_project: Project) -> None:
    project = tiny_project
    # AutoCast matches from the start of the name (re.match): `conv/Conv` misses `/conv/Conv`.
    project.edit_config(
        "build:\n", "precision: [fp32, fp16]\nautocast:\n  exclude_nodes: ['conv/Conv']\nbuild:\n"
    )
    completed = project.trtbuild("run", str(project.config), "--out", str(project.out), "--keep-going")
    # d561ae9: exit 0, the pattern ignored in silence and the conv converted to fp16.
    assert completed.returncode == 1, completed.stdout + completed.stderr
    text = " ".join((completed.stdout + completed.stderr).split())
    assert "tiny.yaml:15:" in text  # the pattern's line
    assert "autocast.exclude_nodes[0] 'conv/Conv' matches no node of the graph" in text
    assert "'/conv/Conv'" in text  # the name it was meant for, found by an unanchored search
    assert "Traceback" not in completed.stderr
    assert (project.out / "tiny/fp32/model.engine").is_file()  # the other cell is built
    assert not (project.out / "tiny/fp16").exists()

    # Not a regular expression: a config error before anything runs, at its line.
    project.edit_config("['conv/Conv']", "['/conv/Conv[']")
    completed = project.trtbuild("run", str(project.config), "--out", str(project.out))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "tiny.yaml:15:" in completed.stderr and "not a regular expression" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_node_names_carry_no_wrapper_prefix_and_written_exclusions_fix_the_gate(capped: Project) -> None:
    # A model returning a dict, as Hugging Face models do: the export reorders its outputs.
    configure(capped, "{as_dict: true, soft_cap: false}")
    first = capped.run_json()
    assert first["exit_status"] == 1
    assert [f["metric"] for f in fp16_failures(capped)] == ["fp16 overflow"]
    names = [node.name for node in onnx.load(str(capped.out / "capped/fp32/model.onnx")).graph.node]
    # d561ae9: ['/inner/fc1/Gemm', '/inner/Relu', '/inner/fc2/Gemm', '/inner/energy/Mul'].
    assert names == ["/fc1/Gemm", "/Relu", "/fc2/Gemm", "/energy/Mul"]

    report = triage(capped, "--write-exclusions")
    assert [(o["node"], o["module"]) for o in report["offenders"]] == [("/energy/Mul", "energy")]
    assert report["exclusions"]["added"] == ["/energy/Mul$"]
    second = capped.run_json()
    ran = {task_id for task_id, state in states(second).items() if state == "ran"}
    assert ran == {"capped/fp16/precision", "capped/fp16/build", "capped/fp16/validate"}
    assert second["exit_status"] == 0, fp16_failures(capped)
