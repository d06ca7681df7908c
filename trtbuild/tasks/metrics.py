"""Accuracy metrics between a reference output and a candidate, and the tolerance gate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def compare(reference: Any, candidate: Any) -> dict[str, float]:
    """max/mean abs error, relative L2 error, cosine similarity and the allclose excess ingredients."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(
            f"shape mismatch: reference {np.shape(reference)} vs candidate {np.shape(candidate)}"
        )
    finite = bool(np.isfinite(got).all())
    diff = np.abs(ref - got)
    ref_norm = float(np.linalg.norm(ref))
    got_norm = float(np.linalg.norm(got))
    if ref_norm == 0.0 and got_norm == 0.0:
        cosine = 1.0
    elif ref_norm == 0.0 or got_norm == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(ref, got) / (ref_norm * got_norm))
    return {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "rel_l2": float(np.linalg.norm(ref - got) / ref_norm) if ref_norm else float(np.linalg.norm(got)),
        "cosine": cosine,
        # For the atol/rtol gate: the largest |a - b| relative to |b|, so that a gate can be
        # checked after aggregation without the raw arrays.
        "max_rel": float((diff / np.maximum(np.abs(ref), 1e-30)).max()) if diff.size else 0.0,
        "finite": 1.0 if finite else 0.0,
    }


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities spelled "nan", "inf", "-inf": JSON has no such numbers, and a
    model that outputs NaN must still get its report (and its failed gate)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def topk_agreement(pairs: list[tuple[Any, Any]]) -> dict[str, float]:
    """Classifier agreement over every row of every sample (class scores on the last axis): top1, the
    fraction of rows with the same arg-max; top5, of rows whose reference top class is in the
    candidate's five best."""
    import numpy as np

    ref = np.concatenate([np.asarray(r, dtype=np.float64).reshape(-1, np.shape(r)[-1]) for r, _ in pairs])
    got = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1, np.shape(g)[-1]) for _, g in pairs])
    best = ref.argmax(axis=1)
    top5 = np.argsort(-got, axis=1)[:, :5]
    return {
        "top1": float((got.argmax(axis=1) == best).mean()),
        "top5": float((top5 == best[:, None]).any(axis=1).mean()),
    }


def within_tolerance(reference: Any, candidate: Any, atol: float, rtol: float) -> bool:
    import numpy as np

    return bool(
        np.all(np.abs(np.asarray(reference) - np.asarray(candidate)) <= atol + rtol * np.abs(reference))
    )


def aggregate(per_sample: list[dict[str, float]]) -> dict[str, float]:
    """Worst case over samples: the largest error, the smallest cosine; NaN if any sample's is."""
    worst: dict[str, float] = {}
    for metrics in per_sample:
        for name, value in metrics.items():
            seen = worst.get(name, value)
            if math.isnan(seen) or math.isnan(value):  # min() and max() would drop a NaN
                worst[name] = math.nan
            elif name in ("cosine", "finite", "top1", "top5"):
                worst[name] = min(seen, value)
            else:
                worst[name] = max(seen, value)
    return worst


def gate(
    output: str, metrics: Mapping[str, float], allclose: bool | None, tolerance: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The failed checks of one output, each as {output, metric, value, threshold}."""
    failures: list[dict[str, Any]] = []
    if metrics.get("finite", 1.0) < 1.0:
        failures.append({"output": output, "metric": "finite", "value": "NaN/Inf", "threshold": "all finite"})
    if allclose is False:
        failures.append(
            {
                "output": output,
                "metric": "max_abs",
                "value": metrics["max_abs"],
                "threshold": f"atol {tolerance.get('atol')} + rtol {tolerance.get('rtol')} x |ref|",
            }
        )
    for name in ("cosine", "top1", "top5"):
        threshold = tolerance.get(name)
        if threshold is not None and name in metrics and not metrics[name] >= threshold:  # NaN fails
            failures.append(
                {"output": output, "metric": name, "value": metrics[name], "threshold": threshold}
            )
    for name, bounds in (tolerance.get("custom") or {}).items():
        failures += _custom_failures(output, name, metrics.get(name), bounds)
    return failures


def _custom_failures(
    output: str, name: str, value: float | None, bounds: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    low, high = bounds.get("min"), bounds.get("max")
    threshold = " and ".join(
        text
        for text in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "")
        if text
    )
    if value is None:
        return [
            {
                "output": output,
                "metric": name,
                "value": "not returned by validate.metric",
                "threshold": threshold,
            }
        ]
    if (low is not None and value < low) or (high is not None and value > high):
        return [{"output": output, "metric": name, "value": value, "threshold": threshold}]
    return []
