"""The comparison table, once: report.md, report.html and the terminal all render these rows.

Each entry carries a tone besides its text so every renderer marks the same things: a skipped
comparison is "warn" and says "skipped", never "passed".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from trtbuild.tasks.precision_record import MOSTLY
from trtbuild.units import human_bytes, human_seconds, human_share

Tone = Literal["", "ok", "bad", "warn", "muted"]
CANDIDATE_ORDER = ("onnxruntime", "engine")
CANDIDATE_TITLES = {"onnxruntime": "ONNX Runtime", "engine": "engine run"}
VERDICT_TONES: dict[str, Tone] = {"passed": "ok", "failed": "bad", "unverified": "warn"}
KEPT_LISTED = 5  # kept nodes a note names; precision.json lists them all


@dataclass(frozen=True)
class Entry:
    text: str
    tone: Tone = ""


def candidates(report: dict[str, Any]) -> list[str]:
    """Every candidate any cell names, the usual ones first."""
    names = {
        name for cell in report["cells"] for name in ((cell["validation"] or {}).get("candidates") or {})
    }
    return [n for n in CANDIDATE_ORDER if n in names] + sorted(names - set(CANDIDATE_ORDER))


def configs(report: dict[str, Any]) -> list[str]:
    """The configs the report's cells come from, by absolute path."""
    return sorted({cell["config"] for cell in report["cells"]})


def headers(report: dict[str, Any]) -> list[str]:
    return [
        "cell",
        *_axes(report),
        "verdict",
        "in precision",
        *(CANDIDATE_TITLES.get(name, name) for name in candidates(report)),
        "engine",
        "ONNX",
        "backend",
        "task time",
    ]


def rows(report: dict[str, Any]) -> list[list[Entry]]:
    names = candidates(report)
    return [
        [
            Entry(cell["cell"]),
            *(Entry(_text(_axis_value(cell, axis))) for axis in _axes(report)),
            verdict(cell),
            low_precision(cell),
            *(candidate_entry(cell, name) for name in names),
            Entry(
                human_bytes(cell["engine"]["bytes"]) if cell["engine"] else "—",
                "" if cell["engine"] else "muted",
            ),
            _onnx(cell),
            _backend(cell),
            Entry(_seconds_text(cell)),
        ]
        for cell in report["cells"]
    ]


def verdict(cell: dict[str, Any]) -> Entry:
    if cell["status"] == "failed" and cell["validation"] is None:
        return Entry("task failed", "bad")
    text = cell["verdict"]
    skipped = [
        name
        for name, candidate in ((cell["validation"] or {}).get("candidates") or {}).items()
        if candidate["status"] == "skipped"
    ]
    # "passed" covers what was compared only: say what was not, next to it.
    if skipped and text == "passed":
        text += f" ({', '.join(skipped)} skipped)"
    return Entry(text, VERDICT_TONES.get(cell["verdict"], "muted"))


def low_precision(cell: dict[str, Any]) -> Entry:
    """How much of the cell is in its precision: a "fp16" cell AutoCast left mostly in fp32 says so."""
    record = cell.get("low_precision")
    if not record:
        return Entry("—", "muted")
    share = record.get("share") or {}
    nodes, weights = share.get("nodes"), share.get("weights")
    mostly_not = any(value is not None and value < MOSTLY for value in (nodes, weights))
    return Entry(
        f"{human_share(nodes)} of nodes · {human_share(weights)} of weights", "warn" if mostly_not else ""
    )


def kept_note(cell: dict[str, Any]) -> str | None:
    """The nodes AutoCast kept in higher precision, with ModelOpt's reason and the setting it names."""
    kept = (cell.get("low_precision") or {}).get("kept") or []
    if not kept:
        return None
    total = sum(((cell["low_precision"].get("nodes")) or {}).values())
    named = "; ".join(
        f"{k['node']} ({k['op_type']}): {k['reason']}" + (f" [{k['setting']}]" if k.get("setting") else "")
        for k in kept[:KEPT_LISTED]
    )
    more = f"; and {len(kept) - KEPT_LISTED} more" if len(kept) > KEPT_LISTED else ""
    return (
        f"AutoCast kept {len(kept)} of {total} nodes in higher precision (all in precision.json): "
        f"{named}{more}"
    )


def candidate_entry(cell: dict[str, Any], name: str) -> Entry:
    candidate = ((cell["validation"] or {}).get("candidates") or {}).get(name)
    if candidate is None:
        return Entry("—", "muted")
    if candidate["status"] == "skipped":
        return Entry("skipped", "warn")
    cosine, max_abs = worst_metrics(candidate)
    metrics = f"cos {_num(cosine, 'cos')} · max|Δ| {_num(max_abs)}"
    verdict = f"{'passed' if candidate['passed'] else 'FAILED'}{_fewer_samples(cell, candidate)}"
    return Entry(f"{verdict} · {metrics}", "ok" if candidate["passed"] else "bad")


def _fewer_samples(cell: dict[str, Any], candidate: dict[str, Any]) -> str:
    """ " on 1 of 3 samples" when some samples were not compared (their reference was NaN/Inf)."""
    samples = (cell["validation"] or {}).get("samples")
    counts = [o["compared"] for o in (candidate.get("outputs") or {}).values() if "compared" in o]
    if samples is None or not counts or min(counts) >= samples:
        return ""
    return f" on {min(counts)} of {samples} samples"


def worst_metrics(candidate: dict[str, Any]) -> tuple[float | None, float | None]:
    """The lowest cosine and the largest max |Δ| over the candidate's outputs (None: unknown)."""
    outputs = list((candidate.get("outputs") or {}).values())
    return _worst([o.get("cosine") for o in outputs], min), _worst([o.get("max_abs") for o in outputs], max)


def _worst(values: list[Any], pick: Callable[[list[float]], float]) -> float | None:
    """NaN when any output's is (validation.json spells it "nan": a comparison with NaN would just
    drop it), None when any is unknown."""
    if not values or None in values:
        return None
    numbers = [float(value) for value in values]  # float() reads the "nan" / "inf" spellings
    return math.nan if any(math.isnan(n) for n in numbers) else pick(numbers)


def notes(report: dict[str, Any]) -> list[Entry]:
    """What the table cannot say in a word — skip reasons, failed gates and tasks — each said once
    for all the cells it concerns (every cell usually skips the engine run for the same reason)."""
    found: dict[tuple[str, Tone], list[str]] = {}
    for cell in report["cells"]:
        for text, tone in _cell_notes(cell):
            cells = found.setdefault((text, tone), [])
            if cell["cell"] not in cells:
                cells.append(cell["cell"])
    return [Entry(f"{', '.join(cells)}: {text}", tone) for (text, tone), cells in found.items()]


def _cell_notes(cell: dict[str, Any]) -> list[tuple[str, Tone]]:
    found: list[tuple[str, Tone]] = []
    for candidate, record in ((cell["validation"] or {}).get("candidates") or {}).items():
        if record["status"] == "skipped":
            found.append((f"{candidate} comparison skipped: {record['reason']}", "warn"))
    kept = kept_note(cell)
    if kept is not None:
        found.append((kept, "warn"))
    for failure in cell["gate_failures"]:
        found.append(
            (
                f"gate failed: {failure.get('candidate', '?')} {failure.get('output', '?')} "
                f"{failure.get('metric', '?')} = {_text(failure.get('value'))}, "
                f"threshold {_text(failure.get('threshold'))}",
                "bad",
            )
        )
    for task in cell.get("not_byte_reproducible", []):  # reports of format 2 have none
        found.append((f"not byte-reproducible ({task['kind']}): {task['reason']}", "warn"))
    return found + _task_notes(cell["tasks"])


def _task_notes(tasks: list[dict[str, Any]]) -> list[tuple[str, Tone]]:
    """A failure once, with its message; the tasks it kept from running as one line per reason,
    which names the failure without repeating it; then what was never built at all."""
    found: list[tuple[str, Tone]] = [
        (f"{task['id']} failed: {task.get('reason') or 'no reason recorded'}", "bad")
        for task in tasks
        if task["state"] == "failed"
    ]
    skipped: dict[str, list[str]] = {}
    for task in tasks:
        if task["state"] == "skipped":
            skipped.setdefault(task.get("reason") or "not run", []).append(task["kind"])
    found += [(f"{', '.join(kinds)} skipped: {reason}", "warn") for reason, kinds in skipped.items()]
    missing = [task["kind"] for task in tasks if task["state"] == "not built"]
    if missing:
        found.append((f"not built yet ({', '.join(missing)}): run `trtbuild run` for it", "muted"))
    remote = [task["kind"] for task in tasks if task["state"] == "not fetched"]
    if remote:
        found.append(
            (f"in the remote cache, not fetched ({', '.join(remote)}): `trtbuild run` fetches it", "muted")
        )
    return found


def _axes(report: dict[str, Any]) -> list[str]:
    axes: list[str] = list(report.get("axes", []))
    return axes if "precision" in axes else ["precision", *axes]


def _axis_value(cell: dict[str, Any], axis: str) -> Any:
    return (
        cell["precision"] if axis == "precision" and axis not in cell["values"] else cell["values"].get(axis)
    )


def _onnx(cell: dict[str, Any]) -> Entry:
    artifact = (cell.get("artifacts") or {}).get("model.onnx")
    return Entry(human_bytes(artifact["bytes"]), "") if artifact else Entry("—", "muted")


def _backend(cell: dict[str, Any]) -> Entry:
    engine = cell["engine"]
    if not engine:
        return Entry("—", "muted")
    version = f" {engine['backend_version']}" if engine.get("backend_version") else ""
    targets = f" · {', '.join(engine['targets'])}" if engine.get("targets") else ""
    return Entry(f"{engine['backend']}{version}{targets}")


def _seconds_text(cell: dict[str, Any]) -> str:
    known = [t for t in cell["tasks"] if t["seconds"] is not None]
    return human_seconds(cell["seconds"]) if known else "—"


def _num(value: float | None, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if kind == "cos":
        return f"{value:.6f}" if value < 0.999999 else f"1−{max(1.0 - value, 0.0):.1e}"
    return f"{value:.2g}" if value else "0"


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
