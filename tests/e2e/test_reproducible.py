"""Reproducible builds: the lock, run --locked, plan --explain, verify, graph and gc, end to end."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow


def lock_of(project: Project) -> str:
    return project.config.with_suffix(".lock").read_text()


def test_lock_is_written_sorted_and_byte_identical_when_nothing_changed(tiny_project: Project) -> None:
    tiny_project.run_json()
    first = lock_of(tiny_project)
    document = json.loads(first)
    assert list(document["tasks"]) == sorted(document["tasks"])
    export = document["tasks"]["tiny/export"]
    assert export["params"]["opset"] == 17
    assert export["tools"]["torch"]
    assert set(export["inputs"]) == {"source:tinynet.py"}
    assert export["outputs"]["model.onnx"]["hash"].startswith("blake3:")
    assert len(export["outputs"]["model.onnx"]["hash"]) == len("blake3:") + 64
    assert not any(word in first for word in ('"time"', '"timestamp"', '"date"'))
    tiny_project.run_json()
    assert lock_of(tiny_project) == first


def test_locked_run_fails_on_a_changed_opset_and_explain_says_why(warm_project: Project) -> None:
    warm_project.run_json()
    assert warm_project.trtbuild("run", str(warm_project.config), "--locked").returncode == 0
    warm_project.edit_config("opset: 17", "opset: 18")
    locked = warm_project.trtbuild(
        "run", str(warm_project.config), "--locked", "--out", str(warm_project.out)
    )
    assert locked.returncode == 1
    assert "tiny/export: export.opset: 17 -> 18" in locked.stderr
    assert "nothing ran" in locked.stderr
    explained = warm_project.trtbuild("plan", str(warm_project.config), "--explain", "--json", check=True)
    reasons = {task["id"]: task["reasons"] for task in json.loads(explained.stdout)["tasks"]}
    assert reasons["tiny/export"] == ["export.opset: 17 -> 18"]
    for task_id in ("tiny/simplify", "tiny/fp32/precision", "tiny/fp32/build", "tiny/fp32/validate"):
        assert any("which runs" in reason for reason in reasons[task_id]), reasons[task_id]


def test_explain_names_a_changed_model_file(warm_project: Project) -> None:
    warm_project.run_json()
    module = warm_project.root / "tinynet.py"
    module.write_text(module.read_text() + "\n# edited\n")
    explained = warm_project.trtbuild("plan", str(warm_project.config), "--explain", "--json", check=True)
    reasons = {task["id"]: task["reasons"] for task in json.loads(explained.stdout)["tasks"]}
    assert "input changed: tinynet.py" in reasons["tiny/export"]


def test_verify_rebuilds_identically(tiny_project: Project) -> None:
    tiny_project.edit_config("build:\n", "precision: [fp32, fp16]\nbuild:\n")
    tiny_project.run_json()
    lock_before = lock_of(tiny_project)
    completed = tiny_project.trtbuild("verify", str(tiny_project.config), "--json")
    assert completed.returncode == 0, completed.stderr
    artifacts = json.loads(completed.stdout)["artifacts"]
    assert len(artifacts) == 14 and all(a["identical"] for a in artifacts)  # 13 + reference.npz
    assert lock_of(tiny_project) == lock_before


def test_graph_formats(tiny_project: Project) -> None:
    mermaid = tiny_project.trtbuild("graph", str(tiny_project.config), check=True).stdout
    assert mermaid.startswith("flowchart LR")
    assert '["tiny/export"]:::run' in mermaid and "t0 --> t1" in mermaid
    dot = tiny_project.trtbuild("graph", str(tiny_project.config), "--format", "dot", check=True).stdout
    assert dot.startswith("digraph trtbuild {") and "t0 -> t1;" in dot


def test_gc_keeps_what_the_lock_needs_and_frees_the_rest(warm_project: Project) -> None:
    warm_project.edit_config("opset: 17", "opset: 18")
    warm_project.run_json()  # an older build: not in the lock once the config changes back
    warm_project.edit_config("opset: 18", "opset: 17")
    warm_project.run_json()
    gc = warm_project.trtbuild(
        "gc", "--keep-last", "0", "--max-age", "0", "--grace", "0", "--json", check=True
    )
    report = json.loads(gc.stdout)
    assert report["actions_removed"] >= 5 and report["blobs_removed"] >= 1
    # Everything the lock names is still cached: a run finds nothing to do.
    document = warm_project.run_json()
    assert {task["state"] for task in document["tasks"]} == {"cached"}
