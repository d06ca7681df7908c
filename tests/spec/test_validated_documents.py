"""An unchanged config is not validated against the schema again: the cache remembers documents that
passed, so a fully cached run does not even import jsonschema. A changed config is always validated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO, Project, in_fresh_interpreter
from trtbuild.spec.validate import document_digest
from trtbuild.store import Store


def plan_in_fresh_interpreter(project: Project) -> dict[str, object]:
    """`trtbuild plan` in a new interpreter: its exit status and whether jsonschema got imported."""
    probe = f"""
        import json, sys
        from trtbuild.cli import main
        status = main(["plan", {str(project.config)!r}])
        print(json.dumps({{"status": status, "jsonschema": "jsonschema" in sys.modules}}), file=sys.stderr)
        """
    completed = in_fresh_interpreter(project, probe)
    report: dict[str, object] = json.loads(completed.stderr.strip().splitlines()[-1])
    return report


def test_an_unchanged_config_is_not_validated_again(tiny_project: Project) -> None:
    assert plan_in_fresh_interpreter(tiny_project) == {"status": 0, "jsonschema": True}
    markers = list((tiny_project.cache / "validated").rglob("*"))
    assert [m for m in markers if m.is_file()], "the valid document was remembered"
    assert plan_in_fresh_interpreter(tiny_project) == {"status": 0, "jsonschema": False}


def test_a_changed_config_is_validated_and_its_error_reported(tiny_project: Project) -> None:
    assert plan_in_fresh_interpreter(tiny_project)["status"] == 0
    tiny_project.edit_config("opset: 17", "opset: seventeen")
    assert plan_in_fresh_interpreter(tiny_project) == {"status": 2, "jsonschema": True}
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2 and "opset" in completed.stderr


def test_the_digest_covers_the_document_and_the_schema(tiny_project: Project) -> None:
    document = {"model": {"name": "tiny"}, "export": {"opset": 17}}
    assert document_digest(document) == document_digest(json.loads(json.dumps(document)))
    assert document_digest(document) != document_digest({**document, "export": {"opset": 18}})
    # Types JSON would merge stay apart: an int and a float, an int key and a str key, True and "true".
    assert document_digest({"opset": 17}) != document_digest({"opset": 17.0})
    assert document_digest({1: "x"}) != document_digest({"1": "x"})
    assert document_digest({"simplify": True}) != document_digest({"simplify": "true"})
    validated = Store(tiny_project.cache).validated_documents()
    digest = document_digest(document)
    assert digest not in validated
    validated.add(digest)
    assert digest in validated
    assert "not-a-digest" not in validated


def test_an_unreadable_marker_means_validating_again(tiny_project: Project) -> None:
    validated = Store(tiny_project.cache).validated_documents()
    digest = document_digest({"a": 1})
    validated.add(digest)
    shard = tiny_project.cache / "validated" / digest[:2]
    marker = shard / digest
    marker.unlink()
    marker.mkdir()  # a directory where the marker should be: not a marker
    assert digest not in validated


def test_no_cache_validates_even_a_remembered_config(tiny_project: Project) -> None:
    assert plan_in_fresh_interpreter(tiny_project)["status"] == 0
    probe = textwrap.dedent(
        f"""
        import pathlib, sys
        from trtbuild import api
        cache = pathlib.Path({str(tiny_project.cache)!r})
        api.plan([{str(tiny_project.config)!r}], cache_dir=cache, use_cache=False)
        print("jsonschema" in sys.modules, file=sys.stderr)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.stderr.strip().splitlines()[-1] == "True", completed.stderr


def test_gc_removes_markers_unused_for_a_day(tiny_project: Project) -> None:
    import os
    import time

    from trtbuild.store.gc import collect_garbage

    store = Store(tiny_project.cache)
    validated = store.validated_documents()
    old, new = document_digest({"old": 1}), document_digest({"new": 1})
    validated.add(old)
    validated.add(new)
    day_ago = time.time() - 2 * 86400
    os.utime(tiny_project.cache / "validated" / old[:2] / old, (day_ago, day_ago))
    report = collect_garbage(store)
    assert report.validated_removed == 1
    assert old not in validated and new in validated
