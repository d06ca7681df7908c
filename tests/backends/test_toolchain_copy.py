"""The cache's copy of the TensorRT-RTX packages, which every build runs, is checked before each use:
an edited worker script or an added file is found, said, and the copy made again. Before, an edit of
the copied script (writing engines that end in 64 zero bytes) was run by every later build: exit 0,
the wrong engine cached and locked, and `fsck` found nothing."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from trtbuild.backends.trt import recipe

pytest.importorskip("tensorrt_rtx")


def test_an_edited_copy_is_made_again_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toolchains = tmp_path / "toolchains"
    copy = recipe.packages_at_fixed_path("tensorrt_rtx", "test", toolchains)
    script = copy / recipe.SCRIPT
    original = script.read_bytes()
    assert recipe.copy_damage(copy) is None
    assert recipe.packages_at_fixed_path("tensorrt_rtx", "test", toolchains) == copy  # reused as it is

    # The script is a copy, not a link to trtbuild's own loader.py, so it can be edited safely here.
    st = script.stat()
    script.write_bytes(original.replace(b"engine", b"enginE", 1))
    os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as they were
    assert recipe.copy_damage(copy) == f"{recipe.SCRIPT} changed"
    with caplog.at_level(logging.WARNING, logger="trtbuild.backends.trt.recipe"):
        again = recipe.packages_at_fixed_path("tensorrt_rtx", "test", toolchains)
    assert again == copy and (again / recipe.SCRIPT).read_bytes() == original
    assert f"{recipe.SCRIPT} changed): made again" in caplog.text
    assert recipe.copy_damage(again) is None


@pytest.mark.parametrize("damage", ["added file", "manifest edited", "manifest removed"])
def test_a_copy_whose_files_or_manifest_changed_is_damaged(tmp_path: Path, damage: str) -> None:
    copy = recipe.packages_at_fixed_path("tensorrt_rtx", "test", tmp_path / "toolchains")
    manifest = recipe.manifest_path(copy)
    if damage == "added file":
        (copy / "tensorrt_rtx" / "planted.py").write_text("import os\n")
    elif damage == "manifest edited":
        manifest.write_bytes(manifest.read_bytes().replace(b'"blake3:', b'"blake3:0', 1))
    else:
        manifest.unlink()
    assert recipe.copy_damage(copy) is not None


def test_fsck_rehashes_the_tool_copies_and_repair_removes_a_bad_one(tmp_path: Path) -> None:
    from trtbuild.store import Store
    from trtbuild.store.fsck import check_store

    store = Store(tmp_path / "cache")
    copy = recipe.packages_at_fixed_path("tensorrt_rtx", "test", store.toolchains_dir)
    check = check_store(store)
    assert check.checked["tool copies"] == 1 and check.findings == []
    (copy / recipe.SCRIPT).write_text("# edited\n")
    (finding,) = check_store(store, repair=True).findings
    assert finding.path == copy and f"{recipe.SCRIPT} changed" in finding.problem
    assert not copy.exists()


def test_a_copy_an_older_trtbuild_made_is_made_again_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Copies made before manifests existed have none: made again on upgrade, without a warning."""
    toolchains = tmp_path / "toolchains"
    copy = recipe.packages_at_fixed_path("tensorrt_rtx", "test", toolchains)
    recipe.manifest_path(copy).unlink()
    with caplog.at_level(logging.WARNING):
        assert recipe.packages_at_fixed_path("tensorrt_rtx", "test", toolchains) == copy
    assert caplog.text == "" and recipe.copy_damage(copy) is None
