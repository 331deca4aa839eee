"""Short human units for metric figures, shared by the CLI and the screens."""

from __future__ import annotations

import math

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: float | None) -> str:
    """Bytes as "1.5 MiB"; "-" when unknown."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return "-"


def kib(value: float | None) -> str:
    return size(None if value is None else value * 1024)


def per_second(value: float | None) -> str:
    return "-" if value is None else f"{size(value)}/s"


def percent(value: float | None, digits: int = 1) -> str:
    """A 0..1 ratio as a percentage."""
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def latency_bound(value: float | None) -> str:
    """A bucket bound in microseconds as "≤20ms"; the open bucket as ">2s"."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "> top bucket"
    return "≤" + duration_us(value)


def duration_us(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}µs"
    if value < 1_000_000:
        return f"{value / 1000:.4g}ms"
    return f"{value / 1_000_000:.4g}s"


def count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
