"""Placement (trtbuild/exec/placement.py): a task's declared resources against what machines offer.
The local executor asks this machine; a task it cannot take fails the run before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project
from tests.exec.ray_cluster import kinds
from trtbuild import api, toolchain
from trtbuild.errors import ConfigError
from trtbuild.exec.placement import Offer, gpu_resource, needs, this_machine
from trtbuild.tasks.base import ANY_GPU, Resources


def test_needs_are_ray_resources() -> None:
    assert needs(Resources(cpus=2, memory=1 << 30)) == {"CPU": 2.0, "memory": float(1 << 30)}
    typed = needs(Resources(memory=1, gpu="SM89"), memory=False)
    assert typed == {"CPU": 1.0, "GPU": 1.0, "trtbuild-gpu-sm89": 1.0}
    assert needs(Resources(gpu=ANY_GPU), memory=False) == {"CPU": 1.0, "GPU": 1.0}
    assert gpu_resource("SM120") == "trtbuild-gpu-sm120"


def test_an_offer_takes_a_task_only_with_every_resource_in_quantity() -> None:
    node = Offer("n", {"CPU": 4, "memory": 8 << 30, "GPU": 1, "trtbuild-gpu-sm89": 1})
    assert node.takes(needs(Resources(cpus=4, memory=8 << 30, gpu="SM89")))
    assert not node.takes(needs(Resources(cpus=5, memory=1)))
    assert not node.takes(needs(Resources(memory=9 << 30)))
    assert not node.takes(needs(Resources(memory=1, gpu="SM80")))


def test_this_machine_offers_its_cpus_and_no_gpu_type_it_lacks() -> None:
    offer = this_machine()
    assert offer.resources["CPU"] == toolchain.usable_cpus()
    if not toolchain.nvidia_gpus():
        assert "GPU" not in offer.resources


@pytest.mark.skipif(bool(toolchain.nvidia_gpus()), reason="this machine has a GPU: it may take SM89 tasks")
def test_a_gpu_task_this_machine_cannot_take_fails_before_anything_runs(
    tiny_project: Project, tmp_path: Path
) -> None:
    tiny_project.write_config(
        tiny_project.config.read_text().replace("build:\n  targets: [SM89]\n", "")
        + "matrix:\n  build.targets: [[SM89]]\n"
    )
    with pytest.raises(ConfigError) as raised:
        api.run(
            [tiny_project.config],
            cache_dir=tiny_project.cache,
            out_dir=tiny_project.out,
            pipeline=kinds.PLACED,
        )
    message = str(raised.value)
    assert "tiny/SM89/placed" in message and "a GPU of type SM89" in message
    assert "which nothing in this machine offers" in message and "this machine: CPU" in message
    assert not tiny_project.out.exists() or not any(tiny_project.out.rglob("*.json"))  # nothing ran


def test_a_cluster_without_a_cpu_node_fails_before_anything_runs_instead_of_waiting(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head-only cluster (0 CPUs, its workers not up): the kinds' checks, a Ray task of one CPU,
    waited for a node forever (the run hung); now the placement problems fail it, exit 2."""
    import sys

    from trtbuild.exec.ray.cluster import RayCluster, RaySettings

    def connect(cluster: RayCluster) -> None:
        cluster.connected = True

    head = Offer("node 0a1b2c3d (127.0.0.1)", {"CPU": 0.0, "memory": float(8 << 30)})
    monkeypatch.setattr(RayCluster, "connect", connect)
    monkeypatch.setattr(RayCluster, "disconnect", lambda cluster: None)
    monkeypatch.setattr(RayCluster, "offers", lambda cluster: [head])
    monkeypatch.setitem(sys.modules, "ray", None)  # nothing may be sent to the cluster
    with pytest.raises(ConfigError) as raised:
        api.run(
            [tiny_project.config],
            cache_dir=tiny_project.cache,
            out_dir=tiny_project.out,
            ray=RaySettings(),
        )
    message = str(raised.value)
    assert "which nothing in the cluster offers" in message and "node 0a1b2c3d" in message


def test_a_task_that_failed_on_a_ray_node_says_which_node_in_its_event(tiny_project: Project) -> None:
    """README: --json says on which node each task ran. A failed one had `node` null, the node
    only in its reason's text."""
    from trtbuild.exec.ray.executor import RayExecutor
    from trtbuild.exec.ray.node import NodeDone

    the_plan = api.plan([tiny_project.config], cache_dir=tiny_project.cache)
    node = the_plan.graph.nodes["tiny/export"]
    executor = RayExecutor.__new__(RayExecutor)  # _adopt reads nothing but the answer and notices
    executor.notices = []
    event = executor._adopt(
        node, NodeDone("failed", "k" * 64, {}, reason="boom", node="gpu-7 (node 0a1b2c3d)")
    )
    assert event.state == "failed" and event.node == "gpu-7 (node 0a1b2c3d)", event
    assert event.to_json()["node"] == "gpu-7 (node 0a1b2c3d)"
