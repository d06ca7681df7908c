"""The resolver and task keys: identical tasks are one node; keys change exactly when they should."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.plan.keys import KEY_SCHEME, key_material, task_key


def export_key(project: Project) -> str:
    the_plan = api.plan([project.config], cache_dir=project.cache)
    key = the_plan.statuses["tiny/export"].key
    assert key is not None
    return key


def test_graph_is_export_simplify_probe_precision_build_validate(tiny_project: Project) -> None:
    the_plan = api.plan([tiny_project.config], cache_dir=tiny_project.cache)
    graph = the_plan.graph
    assert list(graph.nodes) == [
        "tiny/export",
        "tiny/simplify",
        "tiny/probe",
        "tiny/reference",
        "tiny/fp32/precision",
        "tiny/fp32/build",
        "tiny/fp32/validate",
    ]
    assert graph.nodes["tiny/simplify"].deps["model.onnx"].node_id == "tiny/export"
    assert graph.nodes["tiny/probe"].deps["model.onnx"].node_id == "tiny/simplify"
    assert graph.nodes["tiny/fp32/precision"].deps["model.onnx"].node_id == "tiny/simplify"
    # The build waits for the probe: no engine of a graph that fails inside the profiles.
    assert graph.nodes["tiny/fp32/build"].deps["probe.json"].node_id == "tiny/probe"
    assert "probe.json" not in graph.nodes["tiny/fp32/precision"].deps
    assert graph.nodes["tiny/fp32/build"].deps["model.onnx"].node_id == "tiny/fp32/precision"
    assert {d.node_id for d in graph.nodes["tiny/fp32/validate"].deps.values()} == {
        "tiny/fp32/precision",
        "tiny/fp32/build",
        "tiny/reference",
    }
    assert [s.reason for s in the_plan.statuses.values()] == [
        "not in cache",
        "after tiny/export",
        "after tiny/simplify",
        "not in cache",
        "after tiny/simplify",
        "after tiny/fp32/precision, tiny/probe",
        "after tiny/fp32/precision, tiny/fp32/build, tiny/reference",
    ]


def test_simplify_off_builds_from_the_export(tiny_project: Project) -> None:
    tiny_project.edit_config(
        "export: {opset: 17, exporter: torchscript}", "export: {opset: 17}\nsimplify: false"
    )
    graph = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    assert "tiny/simplify" not in graph.nodes
    assert graph.nodes["tiny/fp32/precision"].deps["model.onnx"].node_id == "tiny/export"
    assert graph.nodes["tiny/probe"].deps["model.onnx"].node_id == "tiny/export"


def test_probe_off_leaves_the_probe_out(tiny_project: Project) -> None:
    tiny_project.edit_config(
        "export: {opset: 17, exporter: torchscript}", "export: {opset: 17}\nprobe: false"
    )
    graph = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    assert "tiny/probe" not in graph.nodes
    assert set(graph.nodes["tiny/fp32/build"].deps) == {"model.onnx"}


def test_identical_tasks_across_configs_are_one_node(tiny_project: Project) -> None:
    twin = tiny_project.root / "twin.yaml"
    twin.write_text(tiny_project.config.read_text().replace("name: tiny", "name: twin"))
    graph = api.plan([tiny_project.config, twin], cache_dir=tiny_project.cache).graph
    assert len(graph.nodes) == 7, list(graph.nodes)
    assert [(c.model, c.cell) for c in graph.cells] == [("tiny", "fp32"), ("twin", "fp32")]
    # A different opset in the twin: its export differs, so everything after it does too; the
    # PyTorch reference does not depend on the graph, and stays one node.
    twin.write_text(twin.read_text().replace("opset: 17", "opset: 18"))
    graph = api.plan([tiny_project.config, twin], cache_dir=tiny_project.cache).graph
    assert len(graph.nodes) == 13
    assert "twin/export" in graph.nodes


def test_a_shared_node_knows_each_configs_id_for_it(tiny_project: Project) -> None:
    """One node, named in the graph as the first config names it, and in each config's view as that
    config alone would (what its lock, --locked and verify use; on 64a0d54 only the first config's
    model was recorded, so the twin's lock came out empty)."""
    twin = tiny_project.root / "twin.yaml"
    twin.write_text(tiny_project.config.read_text().replace("name: tiny", "name: twin"))
    configs = [twin, tiny_project.config]
    graph = api.plan(configs, cache_dir=tiny_project.cache).graph
    export = graph.nodes["twin/export"]
    assert [(use.model, use.cell) for use in export.uses] == [("twin", "fp32"), ("tiny", "fp32")]
    assert export.names == {twin.resolve(): "twin/export", tiny_project.config.resolve(): "tiny/export"}
    alone = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    view = graph.view(tiny_project.config.resolve())
    assert list(view.nodes) == list(alone.nodes)
    for node_id, node in view.nodes.items():
        assert node.model == "tiny" and node.cells == ["fp32"]
        assert node.deps == alone.nodes[node_id].deps
        assert node.params_json == alone.nodes[node_id].params_json
    assert graph.ids_in(tiny_project.config.resolve())["tiny/fp32/build"] == "twin/fp32/build"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("opset: 17", "opset: 18"),
        ("exporter: torchscript", "exporter: dynamo"),
        ("kwargs: {classes: 10}", "kwargs: {classes: 11}"),
        ("opt: [2, 3, 16, 16]", "opt: [3, 3, 16, 16]"),  # the exporter traces at the opt shape
        ("dtype: float32", "dtype: float16"),
    ],
)
def test_export_key_changes_with_what_export_depends_on(tiny_project: Project, old: str, new: str) -> None:
    before = export_key(tiny_project)
    tiny_project.edit_config(old, new)
    assert export_key(tiny_project) != before


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("atol: 1.0e-4", "atol: 2.0e-4"),
        ("samples: 3", "samples: 5"),
        ("targets: [SM89]", "targets: [SM86]"),
        ("model:\n", "# a comment\nmodel:\n"),
        ("{min: [1, 3, 16, 16],", "{min: [1,   3, 16, 16],"),
    ],
)
def test_export_key_ignores_what_export_does_not_depend_on(tiny_project: Project, old: str, new: str) -> None:
    before = export_key(tiny_project)
    tiny_project.edit_config(old, new)
    assert export_key(tiny_project) == before


def test_export_key_follows_model_code_and_checkpoint_content(tiny_project: Project) -> None:
    before = export_key(tiny_project)
    module = tiny_project.root / "tinynet.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    edited = export_key(tiny_project)
    assert edited != before
    module.write_text(original)
    assert export_key(tiny_project) == before
    checkpoint = tiny_project.root / "weights.pt"
    checkpoint.write_bytes(b"first")
    tiny_project.edit_config(
        "  kwargs: {classes: 10}\n", "  kwargs: {classes: 10}\n  checkpoint: weights.pt\n"
    )
    with_checkpoint = export_key(tiny_project)
    checkpoint.write_bytes(b"second")
    assert export_key(tiny_project) != with_checkpoint


def test_export_key_does_not_depend_on_where_the_project_lives(tiny_project: Project, tmp_path: Path) -> None:
    before = export_key(tiny_project)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_project.root, moved)
    relocated = Project(root=moved, config=moved / "tiny.yaml", cache=tiny_project.cache, out=moved / "build")
    assert export_key(relocated) == before


def test_key_covers_scheme_kind_version_params_inputs_and_tools() -> None:
    base = key_material("export", 1, {"opset": 17}, {"checkpoint": "a" * 64}, {"torch": "2.14.1"})
    assert base["scheme"] == KEY_SCHEME
    variants = [
        key_material("simplify", 1, {"opset": 17}, {"checkpoint": "a" * 64}, {"torch": "2.14.1"}),
        key_material("export", 2, {"opset": 17}, {"checkpoint": "a" * 64}, {"torch": "2.14.1"}),
        key_material("export", 1, {"opset": 18}, {"checkpoint": "a" * 64}, {"torch": "2.14.1"}),
        key_material("export", 1, {"opset": 17}, {"checkpoint": "b" * 64}, {"torch": "2.14.1"}),
        key_material("export", 1, {"opset": 17}, {"checkpoint": "a" * 64}, {"torch": "2.15.0"}),
    ]
    keys = {task_key(base), *(task_key(v) for v in variants)}
    assert len(keys) == 6
    # Canonical: the order params were written in does not matter.
    assert task_key(key_material("k", 1, {"a": 1, "b": 2}, {}, {})) == task_key(
        key_material("k", 1, {"b": 2, "a": 1}, {}, {})
    )


def test_only_selects_cells_and_rejects_unknown_ones(tiny_project: Project) -> None:
    from trtbuild.errors import UsageError

    assert len(api.plan([tiny_project.config], cache_dir=tiny_project.cache, only=["fp32"]).graph.nodes) == 7
    with pytest.raises(UsageError, match="--only names no cell: fp64"):
        api.plan([tiny_project.config], cache_dir=tiny_project.cache, only=["fp64"])


def test_export_key_follows_imported_helper_modules_and_namespace_packages(tiny_project: Project) -> None:
    """The model's imports are followed (statically): a helper module beside it, a sibling package,
    and a model inside a folder without __init__.py are all keyed by content."""
    models = tiny_project.root / "models"
    models.mkdir()
    helpers = tiny_project.root / "helpers"
    helpers.mkdir()
    (helpers / "__init__.py").write_text("")
    (helpers / "scale.py").write_text("SCALE = 1.0\n")
    (tiny_project.root / "settings.py").write_text("WIDTH = 8\n")
    (models / "net.py").write_text(
        "import settings\nfrom helpers.scale import SCALE\nfrom tinynet import TinyNet as Net\n"
    )
    tiny_project.edit_config("source: tinynet:TinyNet", "source: models.net:Net")
    the_plan = api.plan([tiny_project.config], cache_dir=tiny_project.cache)
    assert set(the_plan.graph.nodes["tiny/export"].files) == {
        "source:models/net.py",
        "source:helpers/__init__.py",
        "source:helpers/scale.py",
        "source:settings.py",
        "source:tinynet.py",
    }
    before = export_key(tiny_project)
    for path, text in (
        (helpers / "scale.py", "SCALE = 5.0\n"),
        (tiny_project.root / "settings.py", "WIDTH = 9\n"),
    ):
        path.write_text(text)
        after = export_key(tiny_project)
        assert after != before, path
        before = after


def test_the_example_config_plans_one_export_simplify_and_probe_and_three_of_the_rest(tmp_path: Path) -> None:
    from tests.conftest import REPO

    graph = api.plan([REPO / "configs" / "resnet.yaml"], cache_dir=tmp_path / "cache").graph
    per_cell = [f"resnet50/{cell}/{kind}" for cell in ("fp32", "fp16", "int8") for kind in KINDS_PER_CELL]
    assert list(graph.nodes) == [
        "resnet50/export",
        "resnet50/simplify",
        "resnet50/probe",
        "resnet50/reference",
        *per_cell,
    ]
    assert graph.nodes["resnet50/export"].cells == ["fp32", "fp16", "int8"]


KINDS_PER_CELL = ("precision", "build", "validate")
