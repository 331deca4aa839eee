"""Rich text for statuses and ages, shared by the fleet and node screens."""

from __future__ import annotations

from rich.text import Text

STATUS_STYLES = {
    "ok": "bold green",
    "warn": "bold yellow",
    "fail": "bold red",
    "unknown": "magenta",
    "skip": "dim",
    "unreachable": "bold red reverse",
    "pending": "dim italic",
}
STATUS_LABELS = {"pending": "probing…"}
STATUS_RANK = {
    "unreachable": 0,
    "fail": 1,
    "warn": 2,
    "unknown": 3,
    "pending": 4,
    "ok": 5,
    "skip": 6,
}


def status_text(status: str) -> Text:
    return Text(STATUS_LABELS.get(status, status), style=STATUS_STYLES.get(status, ""))


def age_text(probed_at: float, now: float) -> str:
    """Return how long ago a probe ran, as 4s, 3m or 2h."""
    if not probed_at:
        return "-"
    seconds = max(0, int(now - probed_at))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
