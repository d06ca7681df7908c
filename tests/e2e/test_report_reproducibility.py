"""Reports and the run's summary say which cells' engines are not byte-reproducible (issue 11,
review defect 3).

The build marks an engine built from a Q/DQ graph (int8) as not guaranteed to repeat its bytes
(`reproducibility.byte_reproducible: false` in its result and the lock). On 1b84e6f only the
build's progress warning said so: report.md, report.json, report.html and the run's closing
summary did not.
"""

from __future__ import annotations

import html
import json

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

NOTE = "int8: not byte-reproducible (build): "


def test_reports_and_summary_name_the_int8_engine_as_not_byte_reproducible(tiny_project: Project) -> None:
    tiny_project.edit_config(
        "build:\n", "precision: [fp32, int8]\ncalibration: {source: random, samples: 4}\nbuild:\n"
    )
    completed = tiny_project.trtbuild(
        "run", str(tiny_project.config), "--out", str(tiny_project.out), check=True
    )
    lock = json.loads(tiny_project.config.with_suffix(".lock").read_text())
    marked = lock["tasks"]["tiny/int8/build"]["reproducibility"]
    assert marked["byte_reproducible"] is False and marked["reason"]
    assert lock["tasks"]["tiny/fp32/build"]["reproducibility"]["byte_reproducible"] is True

    # The closing summary (on stdout, after the progress lines on stderr) lists the cell once.
    assert completed.stdout.count(NOTE) == 1, completed.stdout
    assert "fp32: not byte-reproducible" not in completed.stdout

    folder = tiny_project.out / "tiny"
    cells = {cell["cell"]: cell for cell in json.loads((folder / "report.json").read_text())["cells"]}
    assert cells["fp32"]["not_byte_reproducible"] == []
    assert cells["int8"]["not_byte_reproducible"] == [
        {"task": "tiny/int8/build", "kind": "build", "reason": marked["reason"]}
    ]
    assert f"- **note** {NOTE}{marked['reason']}" in (folder / "report.md").read_text()
    assert html.escape(f"{NOTE}{marked['reason']}") in (folder / "report.html").read_text()
