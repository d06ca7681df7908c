"""The machine's GPUs are the validate task's key material (validate v19).

Whether the engine candidate runs, and on which GPU, is decided by the machine the task runs on.
Before, a validation made where no GPU exists (engine comparison skipped) had the same key as one
made on a GPU machine: shared through a remote cache, a GPU box took the CPU box's result and never
compared its engine. The GPUs are faked here as nvidia-smi would list them; nothing runs on them."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from trtbuild import api, toolchain

L4 = {"name": "NVIDIA L4", "compute_capability": "8.9", "driver": "580.65.06"}
H100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "580.65.06"}


def test_validate_tools_name_the_gpus_that_would_run_the_engine(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    the_plan = api.plan([tiny_project.config], cache_dir=tiny_project.cache, use_cache=False)
    validate = next(node for node in the_plan.graph.nodes.values() if node.kind == "validate")
    monkeypatch.setattr(toolchain, "nvidia_gpus", lambda: ())
    assert validate.task.tools(validate.params)["engine_gpus"] == []
    monkeypatch.setattr(toolchain, "nvidia_gpus", lambda: (L4,))
    assert validate.task.tools(validate.params)["engine_gpus"] == [L4]
    monkeypatch.setattr(toolchain, "nvidia_gpus", lambda: (H100,))
    assert validate.task.tools(validate.params)["engine_gpus"] == [H100]


@pytest.mark.slow
def test_a_gpu_machine_does_not_take_a_gpu_less_machines_validation(
    warm_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out), check=True)
    monkeypatch.setattr(toolchain, "nvidia_gpus", lambda: ())
    here = api.plan([warm_project.config], cache_dir=warm_project.cache).statuses
    assert {status.state for status in here.values()} == {"cached"}
    # The same cache (as a remote would serve it) seen from a machine with an L4: TensorRT-RTX
    # builds for declared targets, so everything up to the engine is shared; validation is not.
    monkeypatch.setattr(toolchain, "nvidia_gpus", lambda: (L4,))
    there = api.plan([warm_project.config], cache_dir=warm_project.cache).statuses
    to_run = {node_id for node_id, status in there.items() if status.state == "run"}
    assert to_run == {"tiny/fp32/validate"}
