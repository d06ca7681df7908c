"""validation.json on fewer CPUs than the lock was written with (issue 11, review defect 2).

ONNX Runtime and torch split long float reductions across the CPUs the process may use, so the last
bits of validation.json's metrics follow the CPU count. On 1b84e6f `taskset -c 0 trtbuild verify`
after a run on two CPUs called validation.json `different` ("same key (inputs, params and tools as
locked), other bytes") and failed. The validate task now records its float environment, and verify
says `not byte-reproducible (inputs identical)`, naming the environments, or `identical`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

# Sums of 262144 floats: their last bits follow how the reduction is split across threads.
SUM_MODEL = """
import torch


class SumNet(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.sum(dim=1), (x * x).mean(dim=1)], dim=1)
"""

SUM_CONFIG = """\
model:
  name: tiny
  source: sumnet:SumNet
inputs:
  input: {shape: [batch, 262144], dtype: float32}
outputs:
  total: {shape: [batch, 2]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    input: {min: [1, 262144], opt: [2, 262144], max: [4, 262144]}
build:
  targets: [SM89]
validate:
  samples: 2
  tolerance:
    fp32: {atol: 1.0}
"""


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
    reason="needs two CPUs and taskset: the lock is written on two CPUs, verify runs on one",
)
def test_verify_on_one_cpu_never_calls_validation_different(tiny_project: Project) -> None:
    (tiny_project.root / "sumnet.py").write_text(SUM_MODEL)
    tiny_project.write_config(SUM_CONFIG)
    tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out), check=True)
    on_one_cpu = ["taskset", "-c", "0", sys.executable, "-m", "trtbuild"]
    verify = subprocess.run(
        [*on_one_cpu, "verify", tiny_project.config.name, "--json"],
        cwd=tiny_project.root,
        env={**os.environ, "TRTBUILD_CACHE_DIR": str(tiny_project.cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    artifacts = {(a["task"], a["output"]): a for a in json.loads(verify.stdout)["artifacts"]}
    validation = artifacts.pop(("tiny/fp32/validate", "validation.json"))
    # The PyTorch sums (reference.npz) follow the CPU count too: never "different" either.
    reference = artifacts.pop(("tiny/reference", "reference.npz"))
    assert reference["verdict"] in ("identical", "not byte-reproducible (inputs identical)"), reference
    if reference["verdict"] != "identical":
        assert "-> cpus-1/torch-1/" in reference["reason"], reference
    assert validation["verdict"] != "different", validation
    # The PyTorch sums are the reference task's (reference.npz, validate v18): when their bits moved,
    # validate's key follows them; when only ONNX Runtime's did, its own environment says so.
    follows = "not byte-reproducible (follows tiny/reference/reference.npz)"
    if validation["verdict"] not in ("identical", follows):
        assert validation["verdict"] == "not byte-reproducible (inputs identical)", validation
        assert validation["reason"].startswith("built in another environment (cpus-2/"), validation
        assert "-> cpus-1/" in validation["reason"], validation
    assert {a["verdict"] for a in artifacts.values()} == {"identical"}, artifacts
    assert verify.returncode == 0, verify.stderr
    lock = json.loads(tiny_project.config.with_suffix(".lock").read_text())
    locked_environment = lock["tasks"]["tiny/fp32/validate"]["reproducibility"]["environment"]
    assert locked_environment.startswith(f"cpus-{len(os.sched_getaffinity(0))}/")
