"""The walk through the user's code: what it hashes, where it stops, and its per-process cache."""

from __future__ import annotations

from pathlib import Path

from trtbuild.tasks.code import code_identity


def test_the_walk_is_remembered_until_a_file_it_read_changes(tmp_path: Path) -> None:
    (tmp_path / "net_for_code_test.py").write_text("import json\nimport helper_a_for_code_test\n")
    (tmp_path / "helper_a_for_code_test.py").write_text("")
    (tmp_path / "helper_b_for_code_test.py").write_text("")
    search = [str(tmp_path)]
    first = code_identity("net_for_code_test", search)
    assert list(first.files) == ["helper_a_for_code_test.py", "net_for_code_test.py"]
    assert code_identity("net_for_code_test", search) is first  # export and validate share one walk
    # A new import in the same process (a notebook, a watch loop) is followed, not served stale.
    (tmp_path / "net_for_code_test.py").write_text("import helper_b_for_code_test  # now b\n")
    second = code_identity("net_for_code_test", search)
    assert list(second.files) == ["helper_b_for_code_test.py", "net_for_code_test.py"]


def test_excluded_modules_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "net_for_exclude_test.py").write_text("import vendored_for_exclude_test.deep\n")
    (tmp_path / "vendored_for_exclude_test").mkdir()
    (tmp_path / "vendored_for_exclude_test" / "__init__.py").write_text("")
    (tmp_path / "vendored_for_exclude_test" / "deep.py").write_text("")
    search = [str(tmp_path)]
    walked = code_identity("net_for_exclude_test", search)
    assert list(walked.files) == [
        "net_for_exclude_test.py",
        "vendored_for_exclude_test/__init__.py",
        "vendored_for_exclude_test/deep.py",
    ]
    excluded = code_identity("net_for_exclude_test", search, ["vendored_for_exclude_test"])
    assert list(excluded.files) == ["net_for_exclude_test.py"]
    assert excluded.excluded == ("vendored_for_exclude_test",)
