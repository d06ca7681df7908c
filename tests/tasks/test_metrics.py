"""Metrics over samples keep a NaN: a NaN sample must not vanish behind finite ones."""

from __future__ import annotations

import math

from trtbuild.tasks import metrics


def test_a_nan_sample_survives_aggregation_and_fails_its_gate() -> None:
    finite = {"max_abs": 1e-7, "cosine": 1.0, "finite": 1.0}
    nan = {"max_abs": math.nan, "cosine": math.nan, "finite": 0.0}
    for order in ([finite, nan], [nan, finite]):
        worst = metrics.aggregate(order)
        assert math.isnan(worst["max_abs"]) and math.isnan(worst["cosine"])
    failures = metrics.gate("y", metrics.aggregate([finite, nan]), None, {"cosine": 0.99})
    assert [f["metric"] for f in failures] == ["finite", "cosine"]
