"""The Ray cluster a run uses: one at `--ray-address`, or a local instance this run starts and stops.

Ray is imported here only, when a run asks for it (the `ray` extra). Its own output stays out of
the user's terminal and out of `--json`'s stdout: the driver does not forward the workers' logs
(the node sends back what trtbuild logged, exec/ray/node.py) and Ray's own logging is kept to
errors.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trtbuild.errors import UsageError
from trtbuild.exec.placement import Offer, needs
from trtbuild.tasks.base import Resources
from trtbuild.toolchain import usable_cpus

log = logging.getLogger("trtbuild.exec")
INSTALL_HINT = "pip install 'trtbuild[ray]'"
# Only small records travel through Ray (exec/ray/node.py): its object store needs little memory
# (Ray's default takes 30% of the machine's).
OBJECT_STORE_BYTES = 100 << 20
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Ray replaces a loopback address with the machine's interface address before connecting
# (services.resolve_ip_for_localhost); a cluster listening on 127.0.0.1 only is not there. Ray
# keeps loopback when this is 0; it is read when ray is first imported, and changes nothing else.
KEEP_LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # host:port of a running cluster; None: start one on this machine

    @property
    def local(self) -> bool:
        return self.address is None

    def describe(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"


def ray_options(resources: Resources) -> dict[str, Any]:
    """A task's resources as `ray.remote(...).options(...)` arguments (exec/placement.py: needs)."""
    needed = needs(resources)
    options: dict[str, Any] = {"num_cpus": needed.pop("CPU"), "memory": int(needed.pop("memory"))}
    if "GPU" in needed:
        options["num_gpus"] = needed.pop("GPU")
    if needed:
        options["resources"] = needed
    return options


class RayCluster:
    """A connection to a Ray cluster, made by `connect` and ended by `disconnect`."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.connected = False

    def connect(self) -> None:
        if self.settings.address is not None:
            check_reachable(self.settings.address)
        ray = import_ray(self.settings.address)
        common: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "namespace": "trtbuild",
        }
        if self.settings.local:
            arguments = {**common, **_local_instance()}
        else:
            arguments = {**common, "address": self.settings.address}
        try:
            ray.init(**arguments)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            raise UsageError(
                f"--ray-address {self.settings.address}: no Ray cluster could be reached there ({error}); "
                "check the address (host:port of the head node's GCS, `ray status` there shows it)"
            ) from None
        self.connected = True
        log.debug("connected to %s", self.settings.describe())

    def offers(self) -> list[Offer]:
        """The live nodes and their resources, as Ray's scheduler sees them."""
        import ray

        return [
            Offer(f"node {node['NodeID'][:8]} ({node.get('NodeManagerAddress', '?')})", node["Resources"])
            for node in ray.nodes()  # type: ignore[no-untyped-call]
            if node.get("Alive")
        ]

    def cpus(self) -> int:
        return int(sum(offer.resources.get("CPU", 0.0) for offer in self.offers()))

    def disconnect(self) -> None:
        if self.connected:
            import ray

            ray.shutdown()  # a local instance this run started stops with it
            self.connected = False


def import_ray(address: str | None) -> Any:
    """The ray module; UsageError naming the extra when it is not installed."""
    loopback = address is None or address.rsplit(":", 1)[0] in LOOPBACK
    if loopback:
        os.environ.setdefault(KEEP_LOOPBACK, "0")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    if loopback:  # imported before this run set the variable (a user's script): the flag itself
        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def check_reachable(address: str) -> None:
    """UsageError unless something listens at `address`: ray.init retries a wrong address for
    minutes before it gives up."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address}: expected HOST:PORT (the head node's GCS address)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(
            f"--ray-address {address}: nothing answers there ({error}); check the address "
            "(host:port of the head node's GCS: `ray status` on the head shows it)"
        ) from None


def _local_instance() -> dict[str, Any]:
    """A Ray instance on this machine for this run only: listening on loopback, its workers
    importing what this process imports (a task kind defined in a user's module)."""
    return {
        "address": "local",
        "num_cpus": usable_cpus(),
        "include_dashboard": False,
        "object_store_memory": OBJECT_STORE_BYTES,
        "_node_ip_address": "127.0.0.1",
        "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(_search_path())}},
    }


def _search_path() -> Iterator[str]:
    for entry in sys.path:
        yield entry or os.getcwd()
