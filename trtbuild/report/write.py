"""Write build/<model>/report.{json,md,html}: atomically, and only when something changed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.exec.events import TaskEvent
from trtbuild.files import write_atomic
from trtbuild.plan.plan import Plan
from trtbuild.report.collect import collect
from trtbuild.report.marks import NO_PLOTS_MARK
from trtbuild.store import ActionResult

NAMES = ("report.json", "report.md", "report.html")


def write_reports(
    plan: Plan,
    events: Sequence[TaskEvent] | None,
    out_dir: Path | str,
    results: Mapping[str, ActionResult] | None = None,
) -> list[Path]:
    """Each model's report files under `out_dir`/<model>/; `events` None reports what the cache holds;
    `results`: the run's, by task id (report/collect.py: collect). Returns every model's report
    paths (json, md, html), whether rewritten or already current."""
    paths: list[Path] = []
    for model, document in collect(plan, events, results).items():
        paths += write_model_report(document, Path(out_dir) / model)
    return paths


def write_model_report(document: dict[str, Any], directory: Path) -> list[Path]:
    json_path, md_path, html_path = (directory / name for name in NAMES)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    if _unchanged(json_path, text) and md_path.is_file() and _complete(html_path):
        # md and html are functions of report.json alone: a no-op run stops here, before
        # matplotlib (a second of imports) is ever loaded.
        return [json_path, md_path, html_path]
    from trtbuild.report.render_html import render_html
    from trtbuild.report.render_md import render_markdown

    directory.mkdir(parents=True, exist_ok=True)
    # Atomic: readers (a browser, a CI artifact upload) see the old file or the new one, never half
    # of one. No fsync: reports are derived files, cheap to redraw (`trtbuild report`).
    write_atomic(md_path, render_markdown(document), fsync=False)
    write_atomic(html_path, render_html(document), fsync=False)
    # Last: a current report.json vouches for the other two, so an interruption before this line
    # leaves an old or missing report.json, and the next run redraws everything.
    write_atomic(json_path, text, fsync=False)
    return [json_path, md_path, html_path]


def load_report(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded


def _unchanged(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


def _complete(html_path: Path) -> bool:
    """The page exists and has its plots (it was not drawn while matplotlib was missing)."""
    try:
        with html_path.open("r", encoding="utf-8") as stream:
            return NO_PLOTS_MARK not in stream.read(256)
    except (OSError, UnicodeDecodeError):
        return False
