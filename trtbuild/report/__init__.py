"""Per-model reports: build/<model>/report.json, report.md and report.html.

Cheap to import: matplotlib is imported only when report.html has to be drawn, and nothing here
imports torch, onnx or TensorRT.
"""

from trtbuild.report.collect import collect
from trtbuild.report.write import load_report, write_reports

__all__ = ["collect", "load_report", "write_reports"]
