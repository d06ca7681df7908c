"""Pre-build lint: a dynamic dim the exporter baked in is caught, by input and dim, before any build."""

from __future__ import annotations

import pytest

from tests.conftest import Project, states

BAKED_MODEL = """
import torch


class BakesBatch(torch.nn.Module):
    def forward(self, x):
        return x.reshape(2, -1).sum(dim=1, keepdim=True)  # 2: the traced batch size, as a constant
"""

CONFIG = """\
model: {{name: baked, source: "bakes:BakesBatch"}}
inputs:
  input: {{shape: [batch, 3, 4]}}
outputs:
  y: {{shape: [batch, 1]}}
export: {{exporter: {exporter}, opset: 18}}
profiles:
  default: {{input: {{min: [1, 3, 4], opt: [2, 3, 4], max: [8, 3, 4]}}}}
build: {{targets: [SM89]}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_baked_batch_dim_fails_export_naming_input_and_dim(tiny_project: Project, exporter: str) -> None:
    (tiny_project.root / "bakes.py").write_text(BAKED_MODEL)
    tiny_project.write_config(CONFIG.format(exporter=exporter))
    document = tiny_project.run_json()
    assert document["exit_status"] == 1
    assert states(document)["baked/export"] == "failed"
    assert states(document)["baked/fp32/build"] == "skipped"
    export = next(task for task in document["tasks"] if task["id"] == "baked/export")
    assert "lost dynamic dims" in export["reason"]
    assert any("input 'input' axis 0 ('batch')" in detail for detail in export["details"]), export["details"]
