"""A Ray cluster of one head and three worker nodes on 127.0.0.1, started once for the module's
tests and stopped after: the head runs nothing (0 CPUs, as on a production head node); the workers
have one CPU and a small object store each, so that they fit on 2 cores, and advertise GPU types as
docs/scale.md tells nodes to (no GPU exists here: the fixture kinds do no GPU work)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OBJECT_STORE = 80 << 20  # Ray's least is 75 MiB
# A node killed in a test is marked dead after ~2 s instead of Ray's default of about 15 s.
QUICK_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
}
WORKERS = {
    "w80": {"trtbuild-gpu-sm80": 1.0},
    "w89": {"trtbuild-gpu-sm89": 1.0},
    "w86-89": {"trtbuild-gpu-sm86": 1.0, "trtbuild-gpu-sm89": 1.0},
}


@dataclass
class RayTestCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, Any]  # worker name -> its ray._private.node.Node
    caches: dict[str, Path]  # worker name -> its own local cache (TRTBUILD_CACHE_DIR there)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def name_of(self, node_id: str) -> str:
        """The worker name of a Ray node id (or its first 8 hex digits, as TaskEvent.node shows it)."""
        for name, node in self.nodes.items():
            if node.node_id.startswith(node_id):
                return name
        raise KeyError(node_id)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayTestCluster]:
    pytest.importorskip("ray", reason="the Ray executor's tests need the ray extra")
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("ray-nodes")
    loopback = {"node_ip_address": "127.0.0.1", "object_store_memory": OBJECT_STORE}
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={**loopback, "num_cpus": 0, "include_dashboard": False, "_system_config": QUICK_DEATH},
    )
    nodes, caches = {}, {}
    try:
        for name, resources in WORKERS.items():
            caches[name] = root / f"{name}-cache"
            env = {"TRTBUILD_CACHE_DIR": str(caches[name])}
            nodes[name] = cluster.add_node(
                **loopback, num_cpus=1, num_gpus=1, resources=resources, env_vars=env
            )
        cluster.wait_for_nodes()
        yield RayTestCluster(cluster, nodes, caches)
    finally:
        cluster.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
