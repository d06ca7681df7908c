"""`autocast.exclude_nodes` patterns read as ModelOpt AutoCast reads them (re.match)."""

from __future__ import annotations

from modelopt.onnx.autocast.nodeclassifier import DisabledNodeNameRegexRule
from onnx import helper

from trtbuild.tasks import node_patterns

NAMES = ["/fc1/Gemm", "/energy/Mul", "/energy/Mul_1", "/Tanh"]


def test_matching_is_autocasts_own() -> None:
    # Anchored at the start, not at the end: `/energy/Mul` keeps `/energy/Mul_1` too.
    for pattern in ("/energy/Mul", "energy/Mul", "/energy/Mul$", ".*Mul", "/Tanh"):
        rule = DisabledNodeNameRegexRule([pattern])
        kept = [name for name in NAMES if rule.check(helper.make_node("Identity", ["a"], ["b"], name=name))]
        assert kept == [name for name in NAMES if node_patterns.matches(pattern, name)], pattern
    assert node_patterns.matches(node_patterns.exact_pattern("/energy/Mul"), "/energy/Mul")
    assert not node_patterns.matches(node_patterns.exact_pattern("/energy/Mul"), "/energy/Mul_1")


def test_unmatched_patterns_say_what_they_were_meant_for() -> None:
    missed = node_patterns.unmatched(["/energy/Mul$", "energy/Mul", "/fc1/Gem", "/fc3/Gemm", "zzz"], NAMES)
    assert [(m.index, m.pattern) for m in missed] == [(1, "energy/Mul"), (3, "/fc3/Gemm"), (4, "zzz")]
    inside, close, unrelated = (m.hint for m in missed)
    assert "it matches inside '/energy/Mul', '/energy/Mul_1'" in inside and "'/energy/Mul$'" in inside
    assert "close node names: '/fc1/Gemm'" in close
    assert "re.match" in unrelated and "'/fc1/Gemm'" in unrelated


def test_regex_errors() -> None:
    assert node_patterns.regex_error("/conv/Conv[") is not None
    assert node_patterns.regex_error("/conv/Conv$") is None


def test_a_hints_pattern_pasted_into_the_config_is_the_pattern_meant() -> None:
    # Review 2: the hint showed Python's repr, '/blk/blk\\.0/Gemm$'; pasted between the single
    # quotes --write-exclusions itself uses, that pattern keeps nothing and fails the task again.
    import yaml

    names = ["/blk/blk.0/Gemm", "/Exp"]
    (missed,) = node_patterns.unmatched(["blk.0/Gemm$"], names)
    written = "'/blk/blk\\.0/Gemm$'"
    assert f"({written} keeps exactly that node)" in missed.hint
    pasted = yaml.safe_load(f"exclude_nodes: [{written}]")["exclude_nodes"]
    assert node_patterns.unmatched(pasted, names) == []
    assert node_patterns.quoted("it's") == "'it''s'"
