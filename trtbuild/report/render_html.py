"""report.html: one self-contained page — inline CSS, figures as data: URIs, no scripts, no fetches —
so it can be mailed, attached to a CI run or opened from a file:// URL as it is."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from trtbuild.report import table
from trtbuild.report.marks import NO_PLOTS_MARK

# Written at the top of a page drawn without matplotlib, so that the next run redraws it once
# matplotlib is installed even though report.json has not changed.
FIGURE_CAPTIONS = {
    "accuracy": "Accuracy of each candidate against the PyTorch fp32 reference: worst over outputs and "
    "samples, log scale. Dashed red: the cell's gate. A candidate that was not compared has no bar.",
    "sizes": "Size of the serialized engine and of the ONNX graph given to the builder.",
    "stage-times": "Run time of each stage, stacked per cell. Cached stages count with the time they took "
    "when they ran; hatched stages are shared with other cells and ran once for all of them.",
}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
 padding:0 16px;color:#1d1d1f}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f6;font-weight:600}
.ok{color:#17663a}.bad{color:#b00020;font-weight:600}.warn{color:#8a5300;background:#fff4dc}
.muted{color:#888}
.chip{display:inline-block;border-radius:10px;padding:1px 9px;margin-right:6px;font-size:12px;background:#eee}
figure{margin:16px 0 24px}figure img{display:block;max-width:100%;height:auto}
figcaption{color:#555;font-size:12.5px;margin-top:4px}
ul.notes li{margin:2px 0}
"""


def render_html(report: dict[str, Any]) -> str:
    figures, missing = _figures(report)
    parts = [
        "<!DOCTYPE html>",
        NO_PLOTS_MARK if missing else "<!-- trtbuild report -->",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report['model'])} — trtbuild report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(report['model'])}</h1>",
        f'<p class="sub">{_summary(report)}</p>',
        "<h2>Comparison</h2>",
        _table(report),
        _notes(report),
        "<h2>Plots</h2>",
    ]
    if missing:
        parts.append(f'<p class="warn">{escape(missing)}</p>')
    for figure_id, svg in figures:
        data = base64.b64encode(svg.encode()).decode("ascii")
        parts.append(
            f'<figure id="{figure_id}"><img alt="{figure_id} plot" class="plot" '
            f'src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{escape(FIGURE_CAPTIONS.get(figure_id, ''))}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figures(report: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """The figures, or none and why: a build must not fail for want of a plotting library."""
    try:
        from trtbuild.report import plots
    except ImportError as error:
        return [], f"Plots need matplotlib ({error}): pip install 'trtbuild[report]' and rerun."
    return plots.draw(report), ""


def _summary(report: dict[str, Any]) -> str:
    configs = ", ".join(
        f'<a href="{escape(Path(config).as_uri())}">{escape(config)}</a>' for config in table.configs(report)
    )
    chips = "".join(
        f'<span class="chip {table.VERDICT_TONES.get(verdict, "muted")}">{n} {escape(verdict)}</span>'
        for verdict, n in report["summary"].items()
    )
    return f"{len(report['cells'])} cells from {configs} {chips}"


def _table(report: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers(report))
    body = "".join("<tr>" + "".join(_td(entry) for entry in row) + "</tr>" for row in table.rows(report))
    return f'<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(entry: table.Entry) -> str:
    css = f' class="{entry.tone}"' if entry.tone else ""
    return f"<td{css}>{escape(entry.text)}</td>"


def _notes(report: dict[str, Any]) -> str:
    notes = table.notes(report)
    if not notes:
        return ""
    items = "".join(
        f'<li class="{note.tone}">{escape(note.text)}</li>' if note.tone else f"<li>{escape(note.text)}</li>"
        for note in notes
    )
    return f'<ul class="notes">{items}</ul>'
