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
    """A fraction as a whole percentage, rounded, but never onto a line it has not reached: 99.6% of
    the weights is not "100%", 49.6% of the nodes not "50%" (the line below which the run warns),
    and above 0 but under 1% is "<1%". None (nothing to share out) as n/a."""
    if share is None:
        return "n/a"
    if 0 < share < 0.01:
        return "<1%"
    percent = round(share * 100)
    for line in (50, 100):
        if percent == line and share < line / 100:
            percent = line - 1
    return f"{percent}%"


def human_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
