"""How much of a low-precision cell is really in its precision (issue 9, finding 6).

On d561ae9 AutoCast could keep every node but the last Gemm in fp32 and every report still said
"fp16 passed": nothing counted what the graph computes in. Here the precision task writes
precision.json (nodes and weights per type, each kept node with AutoCast's reason), the run's
summary and report.md / report.html show the shares and name the kept nodes,
`validate.min_low_precision` fails a cell below it (exit 1), and AutoCast's thresholds
(`autocast.data_max`, `init_max`, `max_depth_of_reduction`) reach AutoCast and its key.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODELS = '''
import torch


class Hot(torch.nn.Module):
    """One weight beyond fp16's range: AutoCast keeps its Gemm in fp32, and every node its huge
    activations reach up to the Tanh; only the head, after the Tanh, is left to fp16."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a1 = torch.nn.Linear(16, 16)
        self.a2 = torch.nn.Linear(16, 16)
        self.a3 = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 4)
        with torch.no_grad():
            self.a1.weight[0, 0] = 1.0e5

    def forward(self, x):
        return self.head(torch.tanh(self.a3(self.a2(self.a1(x)))))


class Tame(torch.nn.Module):
    """Small weights and activations: AutoCast converts every node unless told otherwise."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    def forward(self, x):
        return self.body(x)
'''

CONFIG = """\
model: {{name: {name}, source: "models:{source}"}}
inputs:
  x: {{shape: [batch, 16], dtype: float32}}
outputs: [y]
export: {{opset: 17, exporter: torchscript}}
profiles:
  default:
    x: {{min: [1, 16], opt: [2, 16], max: [4, 16]}}
precision: [fp16]
build: {{targets: [SM89]}}
validate:
  samples: 2
"""

KEPT_BY_HOT = ["/a1/Gemm", "/a2/Gemm", "/a3/Gemm", "/Tanh"]


def configure(project: Project, source: str) -> None:
    (project.root / "models.py").write_text(MODELS)
    project.write_config(CONFIG.format(name=source.lower(), source=source))


def record(project: Project, model: str) -> dict:
    return json.loads((project.out / model / "fp16" / "precision.json").read_text())


def test_a_mostly_fp32_fp16_cell_says_so_and_the_gate_fails_it(tiny_project: Project) -> None:
    configure(tiny_project, "Hot")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    precision = record(tiny_project, "hot")
    assert precision["nodes"] == {"float16": 1, "float32": 4}
    assert precision["share"]["nodes"] == 0.2
    assert precision["share"]["weights"] < 0.1  # the head's 68 parameters of 884
    assert [k["node"] for k in precision["kept"]] == KEPT_BY_HOT
    reasons = {k["node"]: (k["reason"], k["setting"]) for k in precision["kept"]}
    assert reasons["/a1/Gemm"][0].startswith("initializer a1.weight out of range")
    assert reasons["/a1/Gemm"][1] == "autocast.init_max"
    assert reasons["/Tanh"][1] == "autocast.data_max"
    # Said where the user looks: the run's progress (a warning), its closing table, the reports.
    assert "only 20% of the nodes and 8% of the weights are in fp16" in completed.stderr
    assert (
        "validation passed (ONNX Runtime vs PyTorch; engine run skipped); fp16 in 20% of nodes, 8% of weights"
        in completed.stdout
    )
    summary = " ".join(completed.stdout.split())  # rich folds the table's cells over lines
    assert "in precision" in summary and "20% of nodes" in summary
    assert "AutoCast kept 4 of 5 nodes in higher precision" in summary
    report_md = (tiny_project.out / "hot/report.md").read_text()
    assert "| fp16 | fp16 | passed (engine skipped) | 20% of nodes · 8% of weights |" in report_md
    assert "/a1/Gemm (Gemm): initializer a1.weight out of range" in report_md
    assert "[autocast.init_max]" in report_md and "/Tanh (Tanh)" in report_md
    report_html = (tiny_project.out / "hot/report.html").read_text()
    assert "AutoCast kept 4 of 5 nodes in higher precision" in report_html
    cell = json.loads((tiny_project.out / "hot/report.json").read_text())["cells"][0]
    assert cell["low_precision"]["share"] == precision["share"]

    # The gate, off by default, fails the cell like an accuracy gate; only validate reruns.
    tiny_project.edit_config("  samples: 2\n", "  samples: 2\n  min_low_precision: {fp16: 0.5}\n")
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "cached  hot/fp16/precision" in completed.stderr
    assert "ran     hot/fp16/validate" in completed.stderr
    gates = " ".join(completed.stdout.split())
    assert "Validation gates failed" in gates
    assert "fp16 share of nodes" in gates and "fp16 share of weights" in gates
    assert ">= 0.5 (validate.min_low_precision)" in gates
    assert "validation failed" in gates


# One cell per threshold (the first: AutoCast's default, written out), from one export.
THRESHOLDS = """\
matrix:
  autocast: [{data_max: 512}, {max_depth_of_reduction: 8}, {init_max: 0.2}, {data_max: 0.01}]
"""
GEMMS = ["/body/body.0/Gemm", "/body/body.2/Gemm"]
EXPECTED_KEPT = {
    "fp16-data_max512": [],
    "fp16-max_depth_of_reduction8": [
        (g, "autocast.max_depth_of_reduction", "depth of reduction 16") for g in GEMMS
    ],
    "fp16-init_max0.2": [(g, "autocast.init_max", "initializer body.") for g in GEMMS],
    "fp16-data_max0.01": [
        (node, "autocast.data_max", "reference IO out of range")
        for node in (GEMMS[0], "/body/body.1/Relu", GEMMS[1])
    ],
}


def test_autocast_thresholds_reach_autocast(tiny_project: Project) -> None:
    """Each threshold changes the precision task's key (four distinct tasks, where equal params would
    be one) and what AutoCast keeps, for the reason that names it."""
    configure(tiny_project, "Tame")
    tiny_project.edit_config("precision: [fp16]\n", f"precision: [fp16]\n{THRESHOLDS}")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    precision_tasks = [t for t in document["tasks"] if t["kind"] == "precision"]
    assert len({t["key"] for t in precision_tasks}) == len(EXPECTED_KEPT)
    for cell, expected in EXPECTED_KEPT.items():
        kept = json.loads((tiny_project.out / "tame" / cell / "precision.json").read_text())["kept"]
        assert [(k["node"], k["setting"]) for k in kept] == [(node, setting) for node, setting, _ in expected]
        assert all(k["reason"].startswith(why) for k, (_, _, why) in zip(kept, expected, strict=True)), kept
