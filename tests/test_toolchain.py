"""Tool versions read from distribution metadata without importlib.metadata, and seen to change."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import pytest

from trtbuild import toolchain

KEYED_DISTRIBUTIONS = (
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "nvidia-modelopt",
    "jsonschema",
    *toolchain.TENSORRT_RTX_DISTRIBUTIONS,
    *toolchain.TENSORRT_DISTRIBUTIONS,
    "no-such-distribution-here",
)


def importlib_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("name", KEYED_DISTRIBUTIONS)
def test_versions_agree_with_importlib_metadata(name: str) -> None:
    assert toolchain.version_of(name) == importlib_version(name)


def install(site: Path, name: str, version: str) -> Path:
    """What pip leaves for a distribution: `<name>-<version>.dist-info/METADATA`."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nText\n")
    return dist_info


def test_an_upgrade_or_reinstall_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert toolchain.version_of("tiny-tool") is None
    old = install(site, "tiny-tool", "1.0")
    assert toolchain.version_of("tiny-tool") == "1.0" == importlib_version("tiny-tool")
    # An upgrade: pip removes the old folder and writes the new one (the folder listing changes).
    shutil.rmtree(old)
    new = install(site, "tiny-tool", "2.0")
    assert toolchain.version_of("tiny_tool") == "2.0" == importlib_version("tiny-tool")
    # A reinstall of a build whose folder keeps its name but whose metadata changes.
    (new / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-tool\nVersion: 2.0.post1\n")
    assert toolchain.version_of("Tiny.Tool") == "2.0.post1" == importlib_version("tiny-tool")
    shutil.rmtree(new)
    os.utime(site)
    assert toolchain.version_of("tiny-tool") is None


def test_a_zip_on_the_path_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    archive = tmp_path / "tools.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped_tool-3.1.dist-info/METADATA", "Name: zipped-tool\nVersion: 3.1\n")
    monkeypatch.syspath_prepend(str(archive))
    assert toolchain.version_of("zipped-tool") == "3.1"
