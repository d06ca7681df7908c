"""Human-readable sizes and durations, shared by the terminal output and the reports."""

from __future__ import annotations


def human_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def human_share(share: float | None) -> str:
    """A fraction as a whole percentage; None (nothing to share out) as n/a."""
    return "n/a" if share is None else f"{share:.0%}"


def human_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
