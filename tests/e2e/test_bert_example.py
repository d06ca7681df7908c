"""The transformer example beside ResNet (issue 10): `configs/bert.yaml`, a tiny random-init BERT
from transformers (configs/tiny_bert.py), builds and passes its gates in fp32, fp16 and int8.

On eb08931 its export failed: "torch.onnx.export (torchscript, opset 17) failed: TypeError:
BertModel.forward() got multiple values for argument 'use_cache'" (the exporter appends the
defaults of forward's parameters after the inputs by position; transformers 5's decorator passes
use_cache by keyword as well).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

CELLS = ("fp32", "fp16", "int8")


def test_bert_example_builds_and_passes_every_cell(tmp_path: Path) -> None:
    # The committed files, copied so the run's lock lands in tmp and not beside the repo's config.
    for name in ("bert.yaml", "tiny_bert.py"):
        shutil.copy(REPO / "configs" / name, tmp_path / name)
    out = tmp_path / "build"
    completed = run_cli("run", "bert.yaml", "--out", str(out), cwd=tmp_path, cache=tmp_path / "cache")
    assert completed.returncode == 0, completed.stdout + completed.stderr

    report = json.loads((out / "tinybert" / "report.json").read_text())
    cells = {cell["cell"]: cell for cell in report["cells"]}
    assert sorted(cells) == sorted(CELLS)
    for name in CELLS:
        assert (out / "tinybert" / name / "model.engine").stat().st_size > 0
        assert cells[name]["verdict"] == "passed", cells[name]["gate_failures"]
        outputs = cells[name]["validation"]["candidates"]["onnxruntime"]["outputs"]
        assert sorted(outputs) == ["last_hidden_state", "pooler_output"]
    # The fp16 cell is fp16, not an fp32 engine by another name: its share is in the report.
    assert cells["fp16"]["low_precision"]["share"]["nodes"] >= 0.9
    assert "fp16 in " in completed.stdout  # the run summary shows it on the cell's line
    # Triage agrees with the gate: the mask's fill constant (finfo(float32).min, -inf in fp16) is a
    # fill, not an overflow. Before, it named /Constant_29 as the node to keep in fp32, and the
    # exclusion it wrote changed nothing.
    triage = run_cli(
        "debug", "precision", "bert.yaml", "--cell", "fp16", cwd=tmp_path, cache=tmp_path / "cache"
    )
    assert triage.returncode == 0, triage.stdout + triage.stderr
    assert "Constant_29" not in triage.stdout
    assert "No node introduces a relative error above 0.01." in triage.stdout
