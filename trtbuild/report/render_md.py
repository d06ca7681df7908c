"""report.md: the comparison table across cells, and what it cannot say in a word."""

from __future__ import annotations

from typing import Any

from trtbuild.report import table

# Markdown has no colour: a skipped or failed entry keeps its word, and notes get a marker.
NOTE_MARKS = {"bad": "**failed** ", "warn": "**note** ", "muted": "", "ok": "", "": ""}


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['model']}: build report", ""]
    summary = ", ".join(f"{n} {verdict}" for verdict, n in report["summary"].items())
    lines += [f"{len(report['cells'])} cells from {', '.join(table.configs(report))}: {summary}.", ""]
    headers = table.headers(report)
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join("---" for _ in headers) + " |")
    for row in table.rows(report):
        lines.append("| " + " | ".join(_escape(entry.text) for entry in row) + " |")
    lines.append("")
    lines.append(
        "Accuracy: worst over outputs and samples of each candidate against the PyTorch fp32 reference "
        "(lowest cosine, largest max |Δ|). Task time: each stage's own run time, whether it ran now or "
        "was cached; stages shared by several cells count in each."
    )
    notes = table.notes(report)
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {NOTE_MARKS[note.tone]}{_escape(note.text)}" for note in notes]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
