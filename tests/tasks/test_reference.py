"""The reference task on the tiny model: reference.npz holds the validation samples and the PyTorch
outputs in their order and dtype, and its bytes are a function of them (no zip timestamps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.conftest import Project
from trtbuild.spec.loader import load_specs
from trtbuild.tasks import reference
from trtbuild.tasks.base import TaskContext
from trtbuild.tasks.pipeline import PIPELINE
from trtbuild.tasks.torch_model import load_model


def run_reference(project: Project, outdir: Path) -> Path:
    spec = load_specs([project.config], checks=PIPELINE.spec_checks)[0]
    cell = spec.cells[0]
    derived = reference.KIND.derive(cell.view, cell)
    outdir.mkdir()
    ctx = TaskContext("tiny/reference", derived.params, dict(derived.files), outdir, derived.context)
    reference.KIND.run(ctx)
    return outdir / reference.OUTPUT


def test_reference_holds_the_samples_and_the_models_outputs(tiny_project: Project, tmp_path: Path) -> None:
    first = run_reference(tiny_project, tmp_path / "a")
    data = reference.read_reference(first)
    assert [feeds["input"].shape for feeds in data.feeds] == [(2, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16)]
    assert all(feeds["input"].dtype == np.float32 for feeds in data.feeds)
    spec = load_specs([tiny_project.config], checks=PIPELINE.spec_checks)[0]
    params = reference.KIND.derive(spec.cells[0].view, spec.cells[0]).params
    model = load_model(params.model, {}, [str(tiny_project.root)])
    with torch.inference_mode():
        for feeds, outputs in zip(data.feeds, data.outputs, strict=True):
            expected = model(torch.from_numpy(feeds["input"])).numpy()
            assert outputs[0].dtype == np.float32
            np.testing.assert_array_equal(outputs[0], expected)
    assert data.manifest["outputs"] == ["logits"] and data.manifest["generated"] is True
    # Written again later, the same bytes: numpy.savez would stamp each entry with the time.
    second = run_reference(tiny_project, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
