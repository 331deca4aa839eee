"""Prometheus text exposition format 0.0.4, written the way Go's client_golang does.

Used by the doubles of programs whose metrics endpoint is a Go
``promhttp`` handler. The output follows expfmt's text writer. Families
are sorted by name and series by label values. Label pairs are sorted by
name, with ``le`` last. Numbers take Go's shortest ``%g`` form (``1e+06``,
not ``1000000.0``). A family without series gets no HELP or TYPE line.
Python 3.11 standard library only; it runs inside test nodes too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    """One gauge or counter sample of a family."""

    labels: Labels
    value: float


@dataclass(frozen=True)
class HistogramSeries:
    """One histogram of a family.

    bucket_counts contains the count of each bucket of the family (not
    cumulative) and one more entry for the observations above the largest
    bucket, which only the ``+Inf`` bucket counts.
    """

    labels: Labels
    bucket_counts: Sequence[int]
    sum: float


@dataclass
class Family:
    """A metric family: its name, HELP text, type and series."""

    name: str
    help: str
    type: str  # "gauge", "counter" or "histogram"
    series: list[Series] = field(default_factory=list)
    histograms: list[HistogramSeries] = field(default_factory=list)
    buckets: Sequence[float] = ()


def format_go_float(value: float) -> str:
    """Format value like expfmt: strconv.FormatFloat(value, 'g', -1, 64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip, as Go's shortest
    # formatting does. Decimal separates them from the exponent.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(digit) for digit in digit_tuple)
    point = len(digits) + exponent  # digits before the decimal point
    # Go uses %e when the decimal exponent is below -4 or at least 6, the
    # precision it assumes for shortest formatting.
    if point - 1 < -4 or point - 1 >= 6:
        return sign + _exponent_form(digits, point - 1)
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _exponent_form(digits: str, exponent: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exponent_sign = "-" if exponent < 0 else "+"
    return f"{mantissa}e{exponent_sign}{abs(exponent):02d}"


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [(name, labels[name]) for name in sorted(labels)]
    if extra is not None:
        pairs.append(extra)
    if not pairs:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}"


def _sort_key(labels: Labels) -> list[str]:
    return [labels[name] for name in sorted(labels)]


def _histogram_lines(family: Family, histogram: HistogramSeries) -> list[str]:
    if len(histogram.bucket_counts) != len(family.buckets) + 1:
        raise ValueError(
            f"{family.name} needs {len(family.buckets) + 1} bucket counts "
            f"({len(family.buckets)} buckets and +Inf), "
            f"got {len(histogram.bucket_counts)}"
        )
    name = family.name
    labels = histogram.labels
    lines = []
    cumulative = 0
    for bound, count in zip(family.buckets, histogram.bucket_counts, strict=False):
        cumulative += count
        le = _label_text(labels, ("le", format_go_float(float(bound))))
        lines.append(f"{name}_bucket{le} {cumulative}")
    total = sum(histogram.bucket_counts)
    lines.append(f"{name}_bucket{_label_text(labels, ('le', '+Inf'))} {total}")
    lines.append(f"{name}_sum{_label_text(labels)} {format_go_float(histogram.sum)}")
    lines.append(f"{name}_count{_label_text(labels)} {total}")
    return lines


def render_family(family: Family) -> str:
    """Return the HELP, TYPE and sample lines of family, or "" without series."""
    if not family.series and not family.histograms:
        return ""
    lines = [
        f"# HELP {family.name} {escape_help(family.help)}",
        f"# TYPE {family.name} {family.type}",
    ]
    for series in sorted(family.series, key=lambda item: _sort_key(item.labels)):
        lines.append(
            f"{family.name}{_label_text(series.labels)} {format_go_float(series.value)}"
        )
    for histogram in sorted(family.histograms, key=lambda h: _sort_key(h.labels)):
        lines += _histogram_lines(family, histogram)
    return "\n".join(lines) + "\n"


def render(families: Iterable[Family]) -> str:
    """Return the exposition text of families, sorted by name as Go gathers them."""
    ordered = sorted(families, key=lambda family: family.name)
    return "".join(render_family(family) for family in ordered)
