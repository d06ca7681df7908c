"""What each install pulls in: the remote cache's S3 support (s3fs and its aiobotocore stack) is the
`s3` extra's alone, so the default install and `[all]` stay without it (issue 14)."""

from __future__ import annotations

import re

import tomllib

from tests.conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def _names(requirements: list[str]) -> set[str]:
    """Distribution names an install of these requirements asks for, with trtbuild's own extras
    (`trtbuild[a,b]`) followed."""
    names: set[str] = set()
    for requirement in requirements:
        own = re.fullmatch(r"trtbuild\[([^\]]+)\]", requirement.strip())
        if own:
            for extra in own.group(1).split(","):
                names |= _names(EXTRAS[extra.strip()])
        else:
            names.add(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower())
    return names


def test_s3_support_is_its_own_extra() -> None:
    assert "s3fs" in _names(EXTRAS["s3"])
    assert "s3fs" not in _names(PROJECT["dependencies"])
    assert "s3fs" not in _names(EXTRAS["all"])


def test_the_test_extra_has_s3_and_a_real_s3_server() -> None:
    assert {"s3fs", "moto"} <= _names(EXTRAS["test"])


def test_s3fs_is_pinned() -> None:
    pins = (REPO / "constraints.txt").read_text().splitlines()
    assert any(line.lower().startswith("s3fs==") for line in pins)
