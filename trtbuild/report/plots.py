"""The figures of report.html, drawn with matplotlib as SVG text.

Imported only when report.html is (re)drawn: matplotlib (and numpy with it) costs about a second,
which a run that finds everything cached must not pay. Figures are made with `Figure` directly, not
pyplot, so no global backend or GUI state is touched; SVG ids and metadata are pinned so the same
report gives the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from trtbuild import units
from trtbuild.report import table
from trtbuild.tasks import build, export, precision, simplify, validate

STAGE_COLOURS = {
    export.NAME: "#4c72b0",
    simplify.NAME: "#8172b3",
    precision.NAME: "#dd8452",
    build.NAME: "#55a868",
    validate.NAME: "#c44e52",
}
OTHER_STAGE_COLOUR = "#937860"  # a kind added to the pipeline later
CANDIDATE_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#8172b3"]
FLOOR = 1e-16  # where an exact match (1 - cosine = 0, max |Δ| = 0) is drawn on a log axis: float64 eps
# Pinned SVG ids and text drawn as paths: same bytes for the same report, no font needed to view it.
RC: dict[Any, Any] = {
    "svg.hashsalt": "trtbuild",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def draw(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, SVG text) of each figure; rc settings apply while figures are made, not only saved."""
    with matplotlib.rc_context(RC):
        return [
            ("accuracy", accuracy(report)),
            ("sizes", sizes(report)),
            ("stage-times", stage_times(report)),
        ]


def accuracy(report: dict[str, Any]) -> str:
    """1 - cosine and max |Δ| per cell and candidate, log scale, with each cell's gate as a red tick."""
    cells = report["cells"]
    names = [n for n in table.candidates(report) if any(_metrics(c, n)[0] is not None for c in cells)]
    figure = _figure(cells, height=3.6, columns=2)
    axes = figure.subplots(1, 2)
    panels = (("1 − cosine (lower is better)", "cosine"), ("max |Δ| (lower is better)", "atol"))
    for ax, (title, gate) in zip(axes, panels, strict=True):
        _accuracy_panel(ax, cells, names, gate)
        ax.set_yscale("log")
        ax.set_title(title)
        _cell_ticks(ax, cells)
    _accuracy_legend(figure, axes[0], report, names)
    return _svg(figure)


def _accuracy_panel(ax: Any, cells: list[dict[str, Any]], names: list[str], gate: str) -> None:
    """The bars of one metric (the one `gate` checks), each cell's gate, and a note on cells without bars."""
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        xs, ys = [], []
        for i, cell in enumerate(cells):
            value = _accuracy_value(cell, name, gate)
            if value is not None:
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(max(value, FLOOR))
        ax.bar(
            xs,
            ys,
            width * 0.9,
            label=table.CANDIDATE_TITLES.get(name, name),
            color=CANDIDATE_COLOURS[k % len(CANDIDATE_COLOURS)],
        )
    for i, cell in enumerate(cells):
        threshold = _gate(cell, gate)
        if threshold is not None and threshold > 0:
            ax.hlines(threshold, i - 0.45, i + 0.45, colors="#c00000", linestyles="--", linewidth=1.2)
        if not any(_metrics(cell, name)[0] is not None for name in names):
            ax.text(
                i,
                0.02,
                "not compared",
                rotation=90,
                ha="center",
                va="bottom",
                color="#a05a00",
                transform=ax.get_xaxis_transform(),
            )


def _accuracy_value(cell: dict[str, Any], name: str, gate: str) -> float | None:
    """What the `gate` panel draws: 1 - cosine for the cosine gate, max |Δ| for atol."""
    cosine, max_abs = _metrics(cell, name)
    if gate == "cosine":
        return 1.0 - cosine if cosine is not None else None
    return max_abs


def _accuracy_legend(figure: Figure, ax: Any, report: dict[str, Any], names: list[str]) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="none", edgecolor="#c00000", linestyle="--"))
    labels.append("gate (tolerance)")
    # A candidate no cell could compare has no bars: say so where the bars would be named.
    for name in table.candidates(report):
        if name not in names:
            handles.append(Patch(facecolor="#fff4dc", edgecolor="#a05a00"))
            labels.append(f"{table.CANDIDATE_TITLES.get(name, name)}: skipped")
    figure.legend(handles, labels, loc="outside right upper", frameon=False)


def sizes(report: dict[str, Any]) -> str:
    """Engine and ONNX bytes per cell, in MiB."""
    cells = report["cells"]
    figure = _figure(cells, height=3.2)
    ax = figure.subplots()
    series = [
        ("engine", "#55a868", [(c["engine"] or {}).get("bytes") for c in cells]),
        (
            "ONNX",
            "#4c72b0",
            [((c.get("artifacts") or {}).get("model.onnx") or {}).get("bytes") for c in cells],
        ),
    ]
    for k, (label, colour, values) in enumerate(series):
        xs = [i - 0.2 + 0.4 * k for i, v in enumerate(values) if v is not None]
        ys = [v / 2**20 for v in values if v is not None]
        bars = ax.bar(xs, ys, 0.36, label=label, color=colour)
        ax.bar_label(bars, labels=[units.human_bytes(v) for v in values if v is not None], fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title("Engine and ONNX size")
    ax.margins(y=0.15)
    _cell_ticks(ax, cells)
    figure.legend(frameon=False, loc="outside right upper")
    return _svg(figure)


def _stage_colour(stages: list[str], stage: str) -> str:
    return STAGE_COLOURS.get(stage, OTHER_STAGE_COLOUR)


def stage_times(report: dict[str, Any]) -> str:
    """Seconds per stage, stacked per cell; shared stages hatched (they ran once for all cells)."""
    cells = report["cells"]
    stages = list(dict.fromkeys(t["kind"] for c in cells for t in c["tasks"]))
    figure = _figure(cells, height=3.4)
    ax = figure.subplots()
    bottoms = [0.0] * len(cells)
    for stage in stages:
        for i, cell in enumerate(cells):
            tasks = [t for t in cell["tasks"] if t["kind"] == stage and t["seconds"] is not None]
            for task in tasks:
                ax.bar(
                    i,
                    task["seconds"],
                    0.6,
                    bottom=bottoms[i],
                    color=_stage_colour(stages, stage),
                    hatch="//" if task["shared_with"] else None,
                    edgecolor="white",
                    linewidth=0.5,
                )
                bottoms[i] += task["seconds"]
    for i, total in enumerate(bottoms):
        ax.text(
            i,
            total,
            units.human_seconds(total) if total else "not built",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("seconds")
    ax.set_title("Time per stage (each stage's own run time, cached or not)")
    ax.margins(y=0.12)
    _cell_ticks(ax, cells)
    handles = [Patch(color=_stage_colour(stages, s), label=s) for s in stages]
    handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="//", label="shared with other cells"))
    figure.legend(handles=handles, frameon=False, loc="outside right upper")
    return _svg(figure)


def _figure(cells: list[Any], height: float, columns: int = 1) -> Figure:
    # Grow with the matrix so bar labels stay legible; cap so a huge matrix still fits a page.
    width = min(max(10.0, 1.1 * len(cells) * columns + 4.0), 16.0)
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _cell_ticks(ax: Any, cells: list[dict[str, Any]]) -> None:
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([c["cell"] for c in cells], rotation=30 if len(cells) > 6 else 0, ha="center")
    ax.set_xlim(-0.6, len(cells) - 0.4)


def _metrics(cell: dict[str, Any], name: str) -> tuple[float | None, float | None]:
    candidate = ((cell["validation"] or {}).get("candidates") or {}).get(name)
    if candidate is None or candidate["status"] != "compared":
        return None, None
    return table.worst_metrics(candidate)


def _gate(cell: dict[str, Any], gate: str) -> float | None:
    tolerance = (cell["validation"] or {}).get("tolerance") or {}
    value = tolerance.get(gate)
    if value is None:
        return None
    return 1.0 - float(value) if gate == "cosine" else float(value)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()
