"""Profiles by dim name (issue 9, finding 9): `short: {batch: [1, 2, 4], seq: [1, 8, 16]}`.

On d561ae9 a profile had to repeat min/opt/max shapes for every input, and a profile by dim name was a
schema error ("profiles.short.batch: expected a mapping, found a list", exit 2). Here it expands to
the shapes of every input that uses the dims, at load time: the engine gets those profiles, and the
same config written by input name is the same tasks, so after one is built the other is cached. An
input of fixed shape needs no entry in either form (on d561ae9, leaving it out of a profile by input
name was "internal error: KeyError: 'scale'").
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODEL = '''
import torch


class TokenNet(torch.nn.Module):
    """A scaled, masked mean of token embeddings: two inputs of shape [batch, seq], one of shape [1]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(16, 8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, ids, mask, scale):
        hidden = self.embed(ids) * mask.unsqueeze(-1)
        return self.head(hidden.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)) * scale
'''

HEAD = """\
model: {name: tokens, source: "tokennet:TokenNet"}
inputs:
  ids: {shape: [batch, seq], dtype: int64}
  mask: {shape: [batch, seq], range: [0.5, 1]}
  scale: {shape: [1], range: [1, 2]}
outputs:
  logits: {shape: [batch, 4]}
export: {opset: 17, exporter: torchscript}
build: {targets: [SM89]}
validate: {samples: 3}
profiles:
"""

BY_DIM = """\
  short: {batch: [1, 2, 4], seq: [1, 8, 16]}
  long: {batch: [1, 2, 4], seq: {min: 16, opt: 32, max: 64}}
"""

# The expansion, written by hand; `scale`, of fixed shape, needs no entry.
BY_INPUT = """\
  short:
    ids: {min: [1, 1], opt: [2, 8], max: [4, 16]}
    mask: {min: [1, 1], opt: [2, 8], max: [4, 16]}
  long:
    ids: {min: [1, 16], opt: [2, 32], max: [4, 64]}
    mask: {min: [1, 16], opt: [2, 32], max: [4, 64]}
"""


def write(project: Project, profiles: str, name: str) -> str:
    (project.root / "tokennet.py").write_text(MODEL)
    config = project.root / name
    config.write_text(HEAD + profiles)
    return str(config)


def plan_keys(project: Project, config: str) -> dict[str, tuple[str, str]]:
    completed = project.trtbuild("plan", config, "--json")
    assert completed.returncode == 0, completed.stderr
    return {task["id"]: (task["key"], task["state"]) for task in json.loads(completed.stdout)["tasks"]}


def test_two_profiles_by_dim_name_build_validate_and_equal_their_expansion(tiny_project: Project) -> None:
    by_dim = write(tiny_project, BY_DIM, "by_dim.yaml")
    by_input = write(tiny_project, BY_INPUT, "by_input.yaml")
    assert plan_keys(tiny_project, by_dim) == plan_keys(tiny_project, by_input)

    completed = tiny_project.trtbuild("run", by_dim, "--out", str(tiny_project.out))
    assert completed.returncode == 0, completed.stderr + completed.stdout
    cell = tiny_project.out / "tokens" / "fp32"
    engine = json.loads((cell / "engine.json").read_text())
    profiles = {profile["name"]: profile["shapes"] for profile in engine["profiles"]}
    assert profiles["long"]["ids"] == {"min": [1, 16], "opt": [2, 32], "max": [4, 64]}
    assert profiles["long"]["mask"] == profiles["long"]["ids"]
    assert profiles["short"]["mask"] == {"min": [1, 1], "opt": [2, 8], "max": [4, 16]}
    assert profiles["short"]["scale"] == profiles["long"]["scale"] == {"min": [1], "opt": [1], "max": [1]}
    validation = json.loads((cell / "validation.json").read_text())
    assert validation["passed"], validation
    # Samples cover both profiles: short's opt, long's opt, then short's batch alone at its min.
    assert [shape["ids"] for shape in validation["shapes"]] == [[2, 8], [2, 32], [1, 8]]
    # The same profiles written by input name are the same tasks: all cached now.
    assert {state for _, state in plan_keys(tiny_project, by_input).values()} == {"cached"}


def test_profile_mistakes_by_dim_name_are_config_errors_with_their_lines(tiny_project: Project) -> None:
    mistakes = """\
  short: {batch: [4, 2, 1], seq: [1, 8, 16]}
  long: {batch: [1, 2, 4], sqe: [16, 32, 64]}
  mixed: {batch: [1, 2, 4], mask: {min: [1, 1], opt: [2, 8], max: [4, 16]}}
"""
    config = write(tiny_project, mistakes, "mistakes.yaml")
    completed = tiny_project.trtbuild("run", config, "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    errors = completed.stderr
    assert "mistakes.yaml:12:19: profiles.short.batch[0]: min/opt/max of dim 'batch' are 4/2/1" in errors
    assert "mistakes.yaml:13:28: profiles.long.sqe: profile 'long' names 'sqe'" in errors
    assert "did you mean 'seq'?" in errors
    assert "mistakes.yaml:14:3: profiles.mixed: profile 'mixed' gives sizes by dim name (batch)" in errors
    assert not (tiny_project.out / "tokens").exists()
