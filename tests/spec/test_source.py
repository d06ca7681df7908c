"""Locating a model's module without importing it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trtbuild.spec.source import distribution_version, locate_module, location_version, missing_part

REPO = Path(__file__).resolve().parents[2]


def test_local_module(tmp_path: Path) -> None:
    (tmp_path / "mynet_for_source_test.py").write_text("raise RuntimeError('must not be imported')\n")
    location = locate_module("mynet_for_source_test", [str(tmp_path), *sys.path])
    assert location is not None
    assert location.origin == tmp_path / "mynet_for_source_test.py"
    assert not location.installed and not location.is_package


def test_local_package_init_is_not_run(tmp_path: Path) -> None:
    package = tmp_path / "pkg_for_source_test"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "sub" / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "sub" / "net.py").write_text("")
    location = locate_module("pkg_for_source_test.sub.net", [str(tmp_path)])
    assert location is not None and location.origin == package / "sub" / "net.py"
    assert "pkg_for_source_test" not in sys.modules


def test_stdlib_module_is_installed() -> None:
    location = locate_module("json.decoder", sys.path)
    assert location is not None and location.installed and not location.is_package
    package = locate_module("json", sys.path)
    assert package is not None and package.is_package


def test_missing_modules() -> None:
    assert locate_module("nonexistent_module_xyz.mod", sys.path) is None
    assert locate_module("json.decoder.x", sys.path) is None  # json.decoder is not a package
    assert missing_part("nonexistent_module_xyz.mod", sys.path) == ("nonexistent_module_xyz", False)
    assert missing_part("json.decoder.x", sys.path) == ("json.decoder.x", True)


def test_distribution_version() -> None:
    assert distribution_version("yaml")  # PyYAML, a core dependency
    assert distribution_version("json") is None
    assert distribution_version("nonexistent_module_xyz") is None


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_locating_torchvision_models_imports_no_torch() -> None:
    script = textwrap.dedent(
        """\
        import sys
        from trtbuild.spec.source import distribution_version, locate_module
        location = locate_module("torchvision.models", sys.path)
        assert location is not None and location.is_package and location.installed, location
        assert distribution_version("torchvision")
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
        assert not leaked, leaked
        print("ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"


def test_loading_a_spec_imports_no_heavy_library(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: {name: m, source: 'torchvision.models:resnet50'}\n"
        "inputs: {x: {shape: [1, 3]}}\n"
        "outputs: [y]\n"
    )
    script = textwrap.dedent(
        f"""\
        import sys
        from trtbuild.errors import ConfigError
        from trtbuild.spec.loader import load_spec
        try:
            load_spec(__import__("pathlib").Path({str(config)!r}))
        except ConfigError:
            pass  # torchvision may be absent; the point is what got imported
        heavy = {{"torch", "torchvision", "onnx", "numpy"}}
        leaked = sorted({{m.split(".")[0] for m in sys.modules}} & heavy)
        assert not leaked, leaked
        print("ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr


def dist_info(folder: Path, name: str, version: str, record: list[str] | None = None) -> Path:
    """What pip writes beside a package it installs (`pip install --target` writes the same)."""
    metadata = folder / f"{name}-{version}.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (metadata / "RECORD").write_text("".join(f"{line},,\n" for line in record or []))
    return metadata


def test_a_package_with_pip_metadata_beside_it_is_installed_wherever_it_lives(tmp_path: Path) -> None:
    target = tmp_path / "target"  # not a site dir: a folder on PYTHONPATH
    (target / "thirdlib_for_source_test" / "sub").mkdir(parents=True)
    (target / "thirdlib_for_source_test" / "__init__.py").write_text("")
    (target / "thirdlib_for_source_test" / "sub" / "mod.py").write_text("")
    metadata = dist_info(target, "thirdlib_for_source_test", "1.2")
    for name in ("thirdlib_for_source_test", "thirdlib_for_source_test.sub.mod"):
        location = locate_module(name, [str(target)])
        assert location is not None and location.installed and location.metadata == metadata, location
    assert location_version(location) == "1.2"


def test_a_distribution_named_otherwise_is_found_from_its_record(tmp_path: Path) -> None:
    (tmp_path / "pil_for_source_test").mkdir()
    (tmp_path / "pil_for_source_test" / "__init__.py").write_text("")
    (tmp_path / "mine_for_source_test.py").write_text("")
    record = ["pil_for_source_test/__init__.py", "pillowish-10.0.dist-info/METADATA", "../../bin/tool"]
    metadata = dist_info(tmp_path, "pillowish", "10.0", record)
    location = locate_module("pil_for_source_test", [str(tmp_path)])
    assert location is not None and location.installed and location.metadata == metadata
    # The user's own module beside installed ones is still the user's.
    mine = locate_module("mine_for_source_test", [str(tmp_path)])
    assert mine is not None and not mine.installed and mine.metadata is None


def test_an_egg_info_beside_a_package_is_a_source_checkout_not_an_install(tmp_path: Path) -> None:
    # `pip install -e .` and `setup.py develop` leave <name>.egg-info in the user's own checkout.
    (tmp_path / "devpkg_for_source_test").mkdir()
    (tmp_path / "devpkg_for_source_test" / "__init__.py").write_text("")
    (tmp_path / "devpkg_for_source_test.egg-info").mkdir()
    (tmp_path / "devpkg_for_source_test.egg-info" / "PKG-INFO").write_text("Name: devpkg\nVersion: 0.1\n")
    location = locate_module("devpkg_for_source_test", [str(tmp_path)])
    assert location is not None and not location.installed


def test_a_folder_without_init_inside_a_package_is_located(tmp_path: Path) -> None:
    # importlib builds such a namespace package's path from its imported parent: nothing is imported here.
    (tmp_path / "nspkg_for_source_test" / "sub").mkdir(parents=True)
    (tmp_path / "nspkg_for_source_test" / "__init__.py").write_text("")
    (tmp_path / "nspkg_for_source_test" / "sub" / "net.py").write_text("")
    location = locate_module("nspkg_for_source_test.sub.net", [str(tmp_path)])
    assert location is not None and location.origin == tmp_path / "nspkg_for_source_test" / "sub" / "net.py"
    assert not location.installed
    namespace = locate_module("nspkg_for_source_test.sub", [str(tmp_path)])
    assert namespace is not None and namespace.origin is None and namespace.is_package
    assert locate_module("nspkg_for_source_test.nothing", [str(tmp_path)]) is None
