"""What `--executor ray` refuses before anything runs, each with exit 2 and a message naming the flag
and what to do: Ray flags without the Ray executor, a cluster without a remote cache its nodes share,
a read-only remote (the nodes publish), an address nothing answers at (ray.init would retry it for
minutes), and Ray not installed."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, Project


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ray_address_without_the_ray_executor_is_refused(tiny_project: Project) -> None:
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--ray-address", "127.0.0.1:6379")
    assert completed.returncode == 2, completed.stderr
    assert "--ray-address is for --executor ray" in completed.stderr


def test_a_cluster_without_a_remote_cache_is_refused(tiny_project: Project) -> None:
    completed = tiny_project.trtbuild(
        "run", str(tiny_project.config), "--executor", "ray", "--ray-address", "127.0.0.1:6379"
    )
    assert completed.returncode == 2, completed.stderr
    assert "--remote-cache" in completed.stderr and "none is set" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_read_only_remote_is_refused(tiny_project: Project, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    completed = tiny_project.trtbuild(
        "run", str(tiny_project.config), "--executor", "ray",
        "--remote-cache", f"file://{shared}", "--remote-read-only",
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    assert "read-only" in completed.stderr and "--remote-read-only" in completed.stderr


def test_an_address_where_nothing_answers_fails_fast(tiny_project: Project, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    address = f"127.0.0.1:{closed_port()}"
    completed = tiny_project.trtbuild(
        "run", str(tiny_project.config), "--executor", "ray", "--ray-address", address,
        "--remote-cache", f"file://{shared}",
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    assert f"--ray-address {address}: nothing answers there" in completed.stderr
    assert not (tiny_project.root / "build" / "tiny" / "fp32").exists() or not any(
        (tiny_project.root / "build" / "tiny" / "fp32").iterdir()
    )


def test_without_ray_installed_the_message_names_the_extra(tiny_project: Project) -> None:
    # `import ray` fails as in an environment without the extra (a None entry in sys.modules).
    probe = (
        "import sys\nsys.modules['ray'] = None\nfrom trtbuild.cli import main\n"
        f"sys.exit(main(['run', {str(tiny_project.config)!r}, '--executor', 'ray']))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tiny_project.root,
        env={"PATH": "/usr/bin:/bin", "TRTBUILD_CACHE_DIR": str(tiny_project.cache), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr
    assert "pip install 'trtbuild[ray]'" in completed.stderr
