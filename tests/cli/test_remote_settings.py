"""How a user turns the remote cache on, through the real CLI (`trtbuild plan`: nothing builds).

Which remote a run chose shows in its one warning: the shared folders named here do not exist, so
the run says "remote cache file:///…/<name> cannot be used" and plans locally. The model is a
factory in a module that imports nothing, so a plan costs a third of a second, not torch's import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, Project
from tests.faults.config_fuzz import run_cli_in_process
from trtbuild.cli import build_parser
from trtbuild.cli.remote import remote_settings
from trtbuild.store.remote.files import RemoteFiles

LIGHT_MODEL = 'def make():\n    raise RuntimeError("a settings test plans, never builds")\n'
SECRET = "wJalrXUtnFEMIexampleSECRET"


class Checkout:
    """A git checkout (a `.git` folder) holding a config; the remote caches it may name are
    folders under `shares` that do not exist."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.root = top / "repo"
        (self.root / ".git").mkdir(parents=True)
        self.config = self.root / "tiny.yaml"
        self.config.write_text(TINY_CONFIG.replace("tinynet:TinyNet", "lightnet:make"))
        (self.root / "lightnet.py").write_text(LIGHT_MODEL)
        self.cache = top / "cache"

    def share(self, name: str) -> str:
        return f"file://{self.top / 'shares' / name}"

    def project_file(self, text: str, folder: Path | None = None) -> Path:
        path = (folder or self.root) / ".trtbuild.yaml"
        path.write_text(text)
        return path

    def plan(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return trtbuild(["plan", str(self.config), *args], cwd=self.root, env=self.env(env))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # The suite's own environment must not choose a remote for these runs.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TRTBUILD_REMOTE")}
        clean.pop("TRTBUILD_DEBUG", None)
        return {**clean, "TRTBUILD_CACHE_DIR": str(self.cache), **(extra or {})}


def trtbuild(argv: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trtbuild", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path)


def chosen(completed: subprocess.CompletedProcess[str]) -> str | None:
    """The remote the run used, as its warning describes it ("file:///… (read-only)"), or None."""
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    said = [line for line in completed.stderr.splitlines() if "remote cache " in line]
    assert len(said) <= 1, completed.stderr  # one warning, whatever the number of tasks
    if not said:
        return None
    return said[0].split("remote cache ", 1)[1].split(" cannot be used", 1)[0]


# -- which URL -------------------------------------------------------------------------------------
def test_the_flag_wins_over_the_variable_and_the_project_file(checkout: Checkout) -> None:
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('file')}\n")
    env = {"TRTBUILD_REMOTE_CACHE": checkout.share("variable")}
    assert chosen(checkout.plan("--remote-cache", checkout.share("flag"), env=env)) == checkout.share("flag")
    assert chosen(checkout.plan(env=env)) == checkout.share("variable")
    assert chosen(checkout.plan()) == checkout.share("file")
    assert chosen(checkout.plan("--no-remote-cache", env=env)) is None


def test_the_project_file_is_found_above_the_config_up_to_the_repository_root(checkout: Checkout) -> None:
    nested = checkout.root / "configs" / "vision"
    nested.mkdir(parents=True)
    checkout.config = checkout.config.rename(nested / "tiny.yaml")
    (checkout.root / "lightnet.py").rename(nested / "lightnet.py")
    assert chosen(checkout.plan()) is None
    # Above the folder holding .git: another project's (or a home folder's) file is not read.
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('outside')}\n", folder=checkout.top)
    assert chosen(checkout.plan()) is None
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('repo')}\n")
    assert chosen(checkout.plan()) == checkout.share("repo")
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('nearest')}\n", folder=nested.parent)
    assert chosen(checkout.plan()) == checkout.share("nearest")


def test_the_project_file_is_the_same_whatever_path_names_the_config(checkout: Checkout) -> None:
    """Before: `plan link/tiny.yaml` through a symlink to the repository's folder walked up the
    link's parents and used no remote, silently, while `cd link && plan tiny.yaml` used the file."""
    configs = checkout.root / "configs"
    configs.mkdir()
    checkout.config = checkout.config.rename(configs / "tiny.yaml")
    (checkout.root / "lightnet.py").rename(configs / "lightnet.py")
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('repo')}\n")
    link = checkout.top / "link"
    link.symlink_to(configs)
    env = checkout.env()
    by_link = trtbuild(["plan", str(link / "tiny.yaml")], cwd=checkout.top, env=env)
    inside_link = trtbuild(["plan", "tiny.yaml"], cwd=link, env=env)
    assert chosen(by_link) == chosen(inside_link) == checkout.share("repo")


def test_a_file_with_only_comments_or_no_section_names_no_remote(checkout: Checkout) -> None:
    checkout.project_file("# remote_cache: {url: s3://team/trtbuild}\n")
    assert chosen(checkout.plan()) is None
    checkout.project_file("remote_cache:\n")
    assert chosen(checkout.plan()) is None


# -- read-only -------------------------------------------------------------------------------------
def test_read_only_from_the_flag_the_variable_or_the_file(checkout: Checkout) -> None:
    share = checkout.share("team")
    assert chosen(checkout.plan("--remote-cache", share)) == share
    assert chosen(checkout.plan("--remote-cache", share, "--remote-read-only")) == f"{share} (read-only)"
    env = {"TRTBUILD_REMOTE_CACHE": share, "TRTBUILD_REMOTE_READ_ONLY": "1"}
    assert chosen(checkout.plan(env=env)) == f"{share} (read-only)"
    checkout.project_file(f"remote_cache:\n  url: {share}\n  read_only: true\n")
    assert chosen(checkout.plan()) == f"{share} (read-only)"
    # CI, which publishes, overrides the project's read_only with the variable.
    assert chosen(checkout.plan(env={"TRTBUILD_REMOTE_READ_ONLY": "0"})) == share


def test_an_empty_read_only_variable_leaves_the_files_read_only(checkout: Checkout) -> None:
    """`TRTBUILD_REMOTE_READ_ONLY=` (a CI template whose value is unset) is no answer: it must not turn a
    project's readers into writers; only an explicit 0 does (review of issue 14)."""
    share = checkout.share("team")
    checkout.project_file(f"remote_cache:\n  url: {share}\n  read_only: true\n")
    for empty in ("", " "):
        assert chosen(checkout.plan(env={"TRTBUILD_REMOTE_READ_ONLY": empty})) == f"{share} (read-only)"


# -- bad input: exit 2, where the value came from, what to do, never a traceback ---------------------
def refused(completed: subprocess.CompletedProcess[str], *words: str) -> str:
    assert completed.returncode == 2, (completed.returncode, completed.stderr)
    assert "Traceback" not in completed.stderr and "internal error" not in completed.stderr
    assert completed.stdout == ""
    for word in words:
        assert word in completed.stderr, (word, completed.stderr)
    return completed.stderr


BAD_URLS = [
    ("unknown scheme", "ftp://host/cache", ["'ftp://host/cache'", "file:///", "s3://bucket/prefix"]),
    ("relative path", "team-cache", ["absolute path", "file:///"]),
    ("relative file URL", "file:team-cache", ["absolute path"]),
    ("file URL with a host", "file://nas/cache", ["file:///path"]),
    ("query string", "s3://bucket/prefix?versionId=3", ["no query"]),
    ("fragment", "file:///mnt/cache#x", ["no query or fragment"]),
    ("no bucket", "s3:///prefix", ["names a bucket"]),
]


@pytest.mark.parametrize(("what", "url", "words"), BAD_URLS, ids=[b[0] for b in BAD_URLS])
def test_a_bad_url_names_where_it_came_from(
    checkout: Checkout, what: str, url: str, words: list[str]
) -> None:
    refused(checkout.plan("--remote-cache", url), "--remote-cache: ", *words)
    refused(checkout.plan(env={"TRTBUILD_REMOTE_CACHE": url}), "$TRTBUILD_REMOTE_CACHE: ", *words)
    path = checkout.project_file(f"remote_cache:\n  read_only: false\n  url: '{url}'\n")
    refused(checkout.plan(), f"{path}:3:8: remote_cache.url: ", *words)


CREDENTIALS = [f"s3://AKIDEXAMPLE:{SECRET}@bucket/p", f"file://me:{SECRET}@/mnt/x", f"AKID:{SECRET}@bucket/p"]


@pytest.mark.parametrize("url", CREDENTIALS)
def test_credentials_in_a_url_are_refused_and_never_echoed(checkout: Checkout, url: str) -> None:
    for completed in (
        checkout.plan("--remote-cache", url),
        checkout.plan(env={"TRTBUILD_REMOTE_CACHE": url}),
    ):
        refused(completed)
        assert SECRET not in completed.stderr + completed.stdout
    said = refused(checkout.plan("--remote-cache", CREDENTIALS[0]), "must not carry credentials")
    assert "AWS_ACCESS_KEY_ID" in said  # what to do instead


def test_a_read_only_variable_that_is_not_a_boolean(checkout: Checkout) -> None:
    env = {"TRTBUILD_REMOTE_CACHE": checkout.share("team"), "TRTBUILD_REMOTE_READ_ONLY": "maybe"}
    refused(checkout.plan(env=env), "$TRTBUILD_REMOTE_READ_ONLY='maybe'", "expected 1", "or 0")


def test_a_timeout_variable_that_is_not_seconds(checkout: Checkout, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"TRTBUILD_REMOTE_CACHE": checkout.share("team"), "TRTBUILD_REMOTE_TIMEOUT": "ten"}
    refused(checkout.plan(env=env), "$TRTBUILD_REMOTE_TIMEOUT='ten'", "seconds", "above 0", "3600")
    # The other values through the CLI's entry point in this process, not an interpreter each.
    for name in [name for name in os.environ if name.startswith("TRTBUILD_REMOTE")]:
        monkeypatch.delenv(name)
    for name, value in {**checkout.env(), **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRTBUILD_DEBUG", raising=False)
    monkeypatch.chdir(checkout.root)
    for value in ("0", "-3", "nan", "inf", "7200"):
        monkeypatch.setenv("TRTBUILD_REMOTE_TIMEOUT", value)
        outcome = run_cli_in_process(["plan", str(checkout.config)])
        assert (outcome.status, outcome.stdout) == (2, ""), (value, outcome.stderr)
        assert f"$TRTBUILD_REMOTE_TIMEOUT={value!r}: expected how many seconds" in outcome.stderr
        assert "above 0 and up to 3600" in outcome.stderr and "Traceback" not in outcome.stderr


@pytest.mark.parametrize(
    ("value", "read", "connect", "limit"), [("", 10, 5, 30), ("2.5", 2.5, 2.5, 30), ("60", 60, 5, 130)]
)
def test_the_timeout_variable_bounds_each_s3_request(
    monkeypatch: pytest.MonkeyPatch, value: str, read: float, connect: float, limit: float
) -> None:
    """What s3fs is given: the read timeout, the connect timeout (5 s at most), and a request's total
    limit, which stays above ATTEMPTS tries of a silent server (30 s, or 2 x 60 + 10 s)."""
    monkeypatch.setenv("TRTBUILD_REMOTE_TIMEOUT", value)
    monkeypatch.delenv("TRTBUILD_REMOTE_CACHE", raising=False)
    args = build_parser(["run"]).parse_args(["run", "tiny.yaml", "--remote-cache", "s3://bucket/prefix"])
    settings = remote_settings(args)
    assert settings is not None and settings.timeout_s == read
    files = RemoteFiles(settings)
    config = files._filesystem().config_kwargs
    assert (config["read_timeout"], config["connect_timeout"]) == (read, connect)
    assert files._limit(0) == limit


def alias_bomb() -> str:
    """Ten values, each level ten times the one before: 10**9 values from 9 short lines."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    return "\n".join(lines) + "\n"


BAD_FILES = [
    ("malformed", 'remote_cache:\n  url: "s3://b/p\n', 3, ["invalid YAML", "not closed", "line 2"]),
    ("tab", "remote_cache:\n\turl: s3://b/p\n", 2, ["tab"]),
    ("unknown top field", "cache:\n  url: s3://b/p\n", 1, ["unknown field 'cache'", "remote_cache"]),
    ("unknown field", "remote_cache:\n  uri: s3://b/p\n", 2, ["remote_cache.uri", "url and read_only"]),
    ("url not a string", "remote_cache:\n  url: [s3://b/p]\n", 2, ["remote_cache.url", "a string"]),
    ("read_only yes", "remote_cache:\n  read_only: yes\n", 2, ["remote_cache.read_only", "true or false"]),
    ("section a list", "remote_cache: [s3://b/p]\n", 1, ["remote_cache", "expected a mapping"]),
    ("top a list", "- remote_cache\n", 1, ["expected a mapping"]),
    ("duplicate key", "remote_cache:\n  url: s3://a/p\n  url: s3://b/p\n", 3, ["url"]),
    ("alias bomb", alias_bomb(), 5, ["more than 20,000 values", "aliases"]),
]


@pytest.mark.parametrize(("what", "text", "line", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_project_file_names_its_line(
    checkout: Checkout, what: str, text: str, line: int, words: list[str]
) -> None:
    path = checkout.project_file(text)
    said = refused(checkout.plan(), str(path), *words)
    if line:
        assert f"{path}:{line}:" in said, said
    # --no-remote-cache does not read it: a broken file never stops a local build.
    assert checkout.plan("--no-remote-cache").returncode == 0


def test_an_oversized_or_unreadable_project_file(checkout: Checkout) -> None:
    path = checkout.project_file("# padding\n" * 7000 + "remote_cache: {url: s3://b/p}\n")
    refused(checkout.plan(), f"{path}:1:1", "64 KiB", "settings file")
    path.write_bytes(b"remote_cache: {url: \xff}\n")
    refused(checkout.plan(), f"{path}:1:1", "UTF-8")


def test_an_s3_url_without_s3fs_names_the_extra(checkout: Checkout) -> None:
    """s3fs hidden from this one interpreter (a None in sys.modules makes its import fail), not
    uninstalled: the URL is refused before anything is planned, naming the `s3` extra."""
    hide = (
        "import sys; sys.modules['s3fs'] = None; from trtbuild.cli import main; "
        f"sys.exit(main(['plan', {str(checkout.config)!r}, '--remote-cache', 's3://team/trtbuild']))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", hide], cwd=checkout.root, env=checkout.env(), capture_output=True, text=True
    )
    refused(completed, "--remote-cache: ", "s3fs", "pip install 'trtbuild[s3]'")


def test_an_unchanged_project_file_is_not_parsed_again(checkout: Checkout) -> None:
    """Like a config, its parse is remembered in the local cache: a fully cached run in a project
    with a `.trtbuild.yaml` imports no PyYAML (tests/e2e/test_noop.py pins that without one)."""
    checkout.project_file(f"remote_cache:\n  url: {checkout.share('team')}\n")
    probe = (
        "import sys; from pathlib import Path; from trtbuild.cli.project_file import read_project_file; "
        "from trtbuild.store import Store, default_cache_dir; "
        "parsed = Store(default_cache_dir()).parsed_configs(); "
        f"found = read_project_file([Path({str(checkout.config)!r})], parsed); "
        "print(found.url, 'yaml' in sys.modules)"
    )
    said = [
        subprocess.run(
            [sys.executable, "-c", probe], env=checkout.env(), capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert said == [[checkout.share("team"), "True"], [checkout.share("team"), "False"]]


@pytest.mark.slow
def test_a_read_only_run_that_builds_says_what_it_did_not_publish(tiny_project: Project) -> None:
    """Read-only from the project file applies to a URL from the flag too: a CI job meant to publish
    that inherits it must see, in its summary, that it published nothing, and why."""
    share = tiny_project.root.parent / "share"
    share.mkdir()
    settings = tiny_project.root / ".trtbuild.yaml"
    settings.write_text("remote_cache:\n  url: /nowhere\n  read_only: true\n")
    completed = tiny_project.trtbuild(
        "run", str(tiny_project.config), "--out", str(tiny_project.out), "--remote-cache", str(share)
    )
    assert completed.returncode == 0, completed.stderr
    said = f"remote cache file://{share} (read-only): 7 result(s) built here not published: read-only"
    assert f"{said} ({settings}:3:14: remote_cache.read_only)" in completed.stdout, completed.stdout
    assert not list(share.rglob("*.json"))  # no entry published
