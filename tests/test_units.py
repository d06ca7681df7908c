"""Human-readable numbers: what the run's lines and the reports print."""

from __future__ import annotations

from trtbuild.units import human_share


def test_a_share_never_reads_as_more_than_it_is() -> None:
    # Review 2: squeezenet's int8 cell, 99.59% of its weights in int8, read "100% of weights";
    # an fp16 cell with one fp32 constant, 99.97%, too.
    assert human_share(0.9959) == "99%"
    assert human_share(0.9997) == "99%"
    assert human_share(0.49996) == "49%"  # not "50%" beside the warning about less than half
    assert human_share(1.0) == "100%"
    assert human_share(0.495) == "49%"
    assert human_share(0.29) == "29%" and human_share(0.0769) == "8%" and human_share(0.8571) == "86%"
    assert human_share(0.004) == "<1%" and human_share(0.0) == "0%"
    assert human_share(None) == "n/a"
