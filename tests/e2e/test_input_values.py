"""Inputs a model can use (issue 9, finding 8): per-input value generators, and a NaN reference said.

On d561ae9 an attention mask could only be a flat random range: `range: [0, 2]` on an int64 mask
gave a row of zeros in validation sample 1 (a one-token row), masked softmax made PyTorch's output
NaN, and the gate table blamed ONNX Runtime with a row well inside its threshold:

    fp32 │ onnxruntime │ y │ max_abs │ 1.192e-07 │ atol 0.0001 + rtol 0.001 x |ref|

Now `values: {kind: mask}` makes padded masks that validate, an .npz can give the values, and a
NaN/Inf reference fails the cell saying so, with no metric computed around it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODEL = '''
import math

import torch


class MaskedAttention(torch.nn.Module):
    """One head of self-attention whose padded keys are filled with -inf before the softmax: a row
    with no valid key is NaN, in PyTorch as in ONNX Runtime."""

    def __init__(self, width: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.q = torch.nn.Linear(width, width)
        self.k = torch.nn.Linear(width, width)
        self.v = torch.nn.Linear(width, width)
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, x, mask):
        scores = self.q(x) @ self.k(x).transpose(1, 2) * self.scale
        scores = scores.masked_fill(mask[:, None, :] == 0, float("-inf"))
        return torch.softmax(scores, dim=-1) @ self.v(x)
'''

# Seed 4 draws an all-zero mask for sample 4 (seq alone at its min: shape [2, 1]) from
# `range: [0, 2]`, and finite samples around it: the old aggregate kept their numbers and dropped
# the NaN. 5 samples: opt, then batch and seq each alone at min and max.
CONFIG = """\
model: {{name: attn, source: "attention:MaskedAttention"}}
inputs:
  x: {{shape: [batch, seq, 8]}}
  mask: {{shape: [batch, seq], dtype: int64, {mask}}}
outputs:
  y: {{shape: [batch, seq, 8]}}
export: {{opset: 17, exporter: torchscript}}
profiles:
  default:
    x: {{min: [1, 1, 8], opt: [2, 4, 8], max: [4, 6, 8]}}
    mask: {{min: [1, 1], opt: [2, 4], max: [4, 6]}}
precision: {precision}
build: {{targets: [SM89]}}
validate: {{samples: 5, seed: 4}}
"""


def configure(project: Project, mask: str, precision: str = "fp32") -> None:
    (project.root / "attention.py").write_text(MODEL)
    project.write_config(CONFIG.format(mask=mask, precision=precision))


def run(project: Project) -> tuple[int, str]:
    completed = project.trtbuild("run", str(project.config), "--out", str(project.out))
    assert "Traceback" not in completed.stderr and "internal error" not in completed.stderr, completed.stderr
    return completed.returncode, completed.stdout + completed.stderr


def validation(project: Project, cell: str = "fp32") -> dict:
    return json.loads((project.out / "attn" / cell / "validation.json").read_text())


def test_a_nan_reference_fails_the_cell_saying_so(tiny_project: Project) -> None:
    configure(tiny_project, "range: [0, 2]", "[fp32, fp16]")
    status, output = run(tiny_project)
    assert status == 1, output
    # The inputs are the cause, not the precision: no pointer to precision triage (a reviewer saw one).
    assert "trtbuild debug precision" not in output
    text = " ".join(output.split())  # the table wraps long cells
    assert "the reference (PyTorch) produced NaN/Inf for sample 4 of 5 (x [2, 1, 8], mask [2, 1])" in text
    assert "declare them with `values:`" in text
    report = validation(tiny_project)
    # Nothing is measured against the NaN sample: ONNX Runtime is compared on the other four, and
    # no failure is charged to it.
    assert [f["candidate"] for f in report["failures"]] == ["reference"]
    assert report["candidates"]["onnxruntime"]["outputs"]["y"]["compared"] == 4
    assert "passed on 4 of 5 samples" in text


def test_a_mask_with_a_valid_prefix_validates(tiny_project: Project) -> None:
    configure(tiny_project, "values: {kind: mask}", "[fp32, fp16]")
    status, output = run(tiny_project)
    assert status == 0, output
    for cell in ("fp32", "fp16"):
        report = validation(tiny_project, cell)
        assert report["verdict"] == "passed" and report["failures"] == []
        assert report["candidates"]["onnxruntime"]["outputs"]["y"]["compared"] == 5
    # The -inf that masks the padding is the graph's own, not an fp16 overflow.
    assert validation(tiny_project, "fp16")["overflow_scan"] == {
        "status": "checked",
        "count": 0,
        "overflowed": [],
        "compared": "this run",  # no overflow: the scan's run served the comparison
    }


def test_mask_values_from_an_npz(tiny_project: Project) -> None:
    # Rows of the profiles' max length, the last one padded after two tokens; samples take the
    # leading part, so every row keeps its first token.
    masks = np.ones((4, 6), np.int64)
    masks[3, 2:] = 0
    np.savez(tiny_project.root / "masks.npz", attention=masks)
    configure(tiny_project, "values: {kind: npz, path: masks.npz, key: attention}")
    status, output = run(tiny_project)
    assert status == 0, output
    assert validation(tiny_project)["verdict"] == "passed"
    # The file's content is keyed: a new mask reruns what reads it, and says which file changed.
    masks[0, 3:] = 0
    np.savez(tiny_project.root / "masks.npz", attention=masks)
    explained = tiny_project.trtbuild("plan", str(tiny_project.config), "--explain").stdout
    assert "input changed: masks.npz" in explained


def test_an_npz_array_that_cannot_fill_the_input_is_a_config_error(tiny_project: Project) -> None:
    np.savez(tiny_project.root / "masks.npz", mask=np.ones((4, 3), np.int32))
    configure(tiny_project, "values: {kind: npz, path: masks.npz}")
    status, output = run(tiny_project)
    assert status == 2, output
    assert "inputs.mask.values.path" in output
    assert "array 'mask' of masks.npz (input 'mask') is int32, the input is int64" in output
    assert "has 3 along axis 1 ('seq'), a sample takes up to 6" in output
    assert not (tiny_project.out / "attn").exists()


TOKENS = """
import torch


class Tokens(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)

    def forward(self, input_ids):
        return self.embed(input_ids).mean(dim=1)
"""


def test_token_ids_past_the_vocabulary_fail_the_export_pointing_at_values(tiny_project: Project) -> None:
    """A reviewer's case: ids drawn up to 1000 for a vocabulary of 50 failed the export with
    "trtbuild does not handle this failure yet ... report it", pointing into torch."""
    (tiny_project.root / "tokens.py").write_text(TOKENS)
    tiny_project.write_config(
        """\
        model: {name: tokens, source: "tokens:Tokens"}
        inputs:
          input_ids: {shape: [batch, seq], dtype: int64, values: {kind: integers, low: 0, high: 1000}}
        outputs: [y]
        profiles:
          default: {batch: [1, 2, 4], seq: [1, 4, 8]}
        build: {targets: [SM89]}
        """
    )
    status, output = run(tiny_project)
    assert status == 1, output
    assert "the PyTorch model failed on the example inputs (input_ids: [2, 4]): IndexError" in output
    assert f"raised at {tiny_project.root / 'tokens.py'}:11 in forward" in output
    assert "token ids below its vocabulary size" in output
    assert "does not handle this failure" not in output
