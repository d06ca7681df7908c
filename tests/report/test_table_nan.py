"""The comparison table shows a NaN metric (validation.json spells it "nan") instead of failing."""

from __future__ import annotations

import math

from trtbuild.report import table


def test_nan_metrics_are_shown_as_nan() -> None:
    candidate = {
        "status": "compared",
        "passed": False,
        "outputs": {"a": {"cosine": 0.5, "max_abs": 0.1}, "b": {"cosine": "nan", "max_abs": "inf"}},
    }
    cosine, max_abs = table.worst_metrics(candidate)
    assert cosine is not None and math.isnan(cosine) and max_abs == math.inf
    cell = {"validation": {"samples": 2, "candidates": {"onnxruntime": candidate}}}
    assert table.candidate_entry(cell, "onnxruntime").text == "FAILED · cos nan · max|Δ| inf"
