"""Marks the report writer and the HTML renderer agree on, importable without either's dependencies."""

from __future__ import annotations

# Opens report.html when matplotlib was missing: the next run redraws the page once it is there.
NO_PLOTS_MARK = "<!-- trtbuild: plots missing -->"
