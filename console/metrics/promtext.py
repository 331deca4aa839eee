"""Prometheus samples from exposition text and from PromQL answers, named alike.

prometheus_client's parser renames a counter sample that lacks ``_total``
(Go's ``nydusd_lifetime_event_counts``) to ``..._total``, while PromQL keeps the
name as scraped. Both paths therefore drop a trailing ``_total`` and the
``_created`` series, so a lookup by name finds the same samples either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from nydus_console.metrics.model import PromFamilies, PromSample


class PromTextError(ValueError):
    """The text is not in the Prometheus exposition format."""


def canonical_name(name: str) -> str:
    return name.removesuffix("_total")


def _sample(name: str, labels: Mapping[str, str], value: float) -> PromSample | None:
    if name.endswith("_created"):
        return None
    pairs = tuple(sorted((k, str(v)) for k, v in labels.items() if k != "__name__"))
    return PromSample(canonical_name(name), pairs, float(value))


def parse_exposition(text: str, prefixes: tuple[str, ...] = ()) -> PromFamilies:
    """Parse exposition text; keep only names starting with one of `prefixes`."""
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            if prefixes and not family.name.startswith(prefixes):
                continue
            for raw in family.samples:
                sample = _sample(raw.name, raw.labels, raw.value)
                if sample is not None:
                    samples.append(sample)
    except (ValueError, TypeError, IndexError) as exc:
        raise PromTextError(str(exc)) from None
    return PromFamilies(samples)


def families_from_vector(result: Iterable[Mapping[str, object]]) -> PromFamilies:
    """Convert the `result` list of a PromQL instant-vector answer."""
    samples = []
    for series in result:
        metric = series.get("metric")
        value = series.get("value")
        if not isinstance(metric, dict) or not isinstance(value, list):
            continue
        try:
            number = float(value[1])
        except (IndexError, TypeError, ValueError):
            continue
        sample = _sample(str(metric.get("__name__", "")), metric, number)
        if sample is not None:
            samples.append(sample)
    return PromFamilies(samples)
