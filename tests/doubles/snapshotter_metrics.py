"""The Prometheus metric families of nydus-snapshotter and a registry of their values.

Names, types, label names, buckets and HELP texts follow nydus-snapshotter's
pkg/metrics/data. The registry behaves like the Go one that the
snapshotter serves with promhttp. Families without labels are always
present, with 0 until set. Families with labels appear with their first
series. The ``ttl.GaugeVec`` families drop a series that was not set again
within the TTL (3 minutes in the snapshotter).

``MetricsRegistry.state()`` and ``load_state()`` use a JSON shape that test
code and state files share::

    {"samples": [{"name": "nydusd_read_hits", "labels": {"image_ref": "x"},
                  "value": 12}],
     "histograms": [{"name": "nydusd_read_latency_microseconds",
                     "labels": {"image_ref": "x"},
                     "bucket_counts": [0, 3, 0, 0, 0, 0, 0, 0, 0], "sum": 60}]}

``bucket_counts`` are per bucket, not cumulative, with one extra entry for
observations above the largest bucket. Python 3.11 standard library only;
it runs inside test nodes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_text import Family, HistogramSeries, Series, render

METRICS_PATH = "/v1/metrics"
DEFAULT_COLLECT_INTERVAL = "1m"
HUNG_IO_INTERVAL = 10.0  # seconds, fixed in the snapshotter
# The snapshotter sets this TTL on its ttl.GaugeVec families.
# NOTE: its sweeper runs every 10 minutes, so a real series can outlive the
# TTL by up to that much. The registry drops it at the TTL exactly.
DEFAULT_TTL = 180.0


@dataclass(frozen=True)
class FamilySpec:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    ttl: bool = False


def _gauge(name: str, help_text: str, *labels: str, ttl: bool = False) -> FamilySpec:
    return FamilySpec(name, "gauge", help_text, labels, ttl=ttl)


def _image_gauge(name: str, help_text: str) -> FamilySpec:
    return _gauge(name, help_text, "image_ref", ttl=True)


OPERATION_BUCKETS = (0.5, 1, 5, 10, 50, 100, 150, 200, 250, 300, 350, 400, 600, 1000)
BLOCK_SIZE_BUCKETS = (1, 4, 16, 64, 128, 512, 1024, 2048)
READ_LATENCY_BUCKETS = (1, 20, 50, 100, 500, 1000, 2000, 4000)

_PREFETCH_TIME_HELP = (
    "Cumulative time latencies in milliseconds of each prefetch request which can "
    "be handled in parallel. It starts when the request is born including nydusd "
    "processing and schedule and end when the chunk is downloaded and stored. The "
    "average prefetch latency can be calculated by "
    "`prefetch_cumulative_time_millis / prefetch_requests_count`"
)

_SPECS = (
    FamilySpec(
        "snapshotter_snapshot_operation_elapsed_milliseconds",
        "histogram",
        "The elapsed time for snapshot events.",
        ("snapshot_operation",),
        OPERATION_BUCKETS,
    ),
    _gauge(
        "snapshotter_cache_usage_kilobytes", "Disk usage of snapshotter local cache."
    ),
    _gauge("snapshotter_cpu_usage_percentage", "CPU usage percentage of snapshotter."),
    _gauge("snapshotter_cpu_system_time_seconds", "CPU time of snapshotter in system."),
    _gauge("snapshotter_cpu_user_time_seconds", "CPU time of snapshotter in user."),
    _gauge("snapshotter_memory_usage_kilobytes", "Memory usage (RSS) of snapshotter."),
    _gauge("snapshotter_fd_counts", "Fd counts of snapshotter."),
    _gauge("snapshotter_thread_counts", "Thread counts of snapshotter."),
    _gauge(
        "snapshotter_run_time_seconds", "Running time of snapshotter from starting."
    ),
    # NOTE: the HELP texts of the three cache blob families are the double's
    # own wording, not checked against the snapshotter's source.
    _gauge(
        "snapshotter_cache_blobs_in_use",
        "Number of cache blobs in use by running daemons.",
    ),
    FamilySpec(
        "snapshotter_cache_blobs_deleted_total",
        "counter",
        "Total number of cache blobs deleted by cache cleanup.",
    ),
    FamilySpec(
        "snapshotter_cache_blob_deletion_errors_total",
        "counter",
        "Total number of errors while deleting cache blobs.",
    ),
    FamilySpec(
        "snapshotter_credential_renewals_total",
        "counter",
        "Total number of credential renewal attempts, labeled by image ref and "
        "result (success or failure).",
        ("image_ref", "result"),
    ),
    _gauge(
        "snapshotter_credential_store_entries",
        "Number of credentials currently tracked in the renewal store per image ref.",
        "image_ref",
        ttl=True,
    ),
    FamilySpec(
        "nydusd_lifetime_event_counts",
        "counter",
        "The lifetime events of nydus daemon.",
        ("nydusd_event",),
    ),
    _gauge("nydusd_counts", "The counts of nydus daemon.", "version"),
    _gauge(
        "nydusd_rss_kilobytes",
        "Memory usage (RSS) of nydus daemon.",
        "daemon_id",
        ttl=True,
    ),
    _gauge(
        "nydusd_image_info",
        "Mapping of nydus daemon to served image references.",
        "daemon_id",
        "image_ref",
    ),
    _image_gauge(
        "nydusd_total_read_bytes", "Total bytes read against the nydus filesystem"
    ),
    _image_gauge("nydusd_read_hits", "Total number of successful read operations."),
    _image_gauge("nydusd_read_errors", "Total number of failed read operations."),
    _image_gauge(
        "nydusd_cache_partial_hits",
        "Number of partial cache hits (IO needs a part of the chunk)",
    ),
    _image_gauge(
        "nydusd_cache_whole_hits",
        "Number of whole cache hits (IO needs the entire chunk)",
    ),
    _image_gauge(
        "nydusd_cache_total_requests",
        "Total number of cache read requests. Cache hit percentage = "
        "(partial_hits + whole_hits) / total",
    ),
    _image_gauge("nydusd_cache_entries_count", "Number of chunks in ready status"),
    _image_gauge(
        "nydusd_cache_prefetch_data_bytes", "Total amount of data prefetched, in bytes"
    ),
    _image_gauge(
        "nydusd_cache_prefetch_requests_count",
        "Total prefetch requests issued from storage/blobs or rafs filesystem layer "
        "for each file that needs prefetch",
    ),
    _image_gauge("nydusd_cache_prefetch_workers", "Number of prefetch workers"),
    _image_gauge("nydusd_cache_prefetch_unmerged_chunks", "Number of unmerged chunks"),
    _image_gauge("nydusd_cache_prefetch_cumulative_time_millis", _PREFETCH_TIME_HELP),
    _image_gauge(
        "nydusd_cache_prefetch_duration_millis",
        "Total wall clock duration of the prefetch, in milliseconds",
    ),
    _image_gauge(
        "nydusd_cache_buffered_backend_size", "Size of the buffered backend, in bytes"
    ),
    _gauge("nydusd_hung_io_counts", "Total number of hung IOs."),
    FamilySpec(
        "nydusd_cumulative_read_block_bytes",
        "histogram",
        "Cumulative read size histogram for different block size, in bytes.",
        ("image_ref",),
        BLOCK_SIZE_BUCKETS,
    ),
    FamilySpec(
        "nydusd_read_latency_microseconds",
        "histogram",
        "Read latency histogram, in microseconds",
        ("image_ref",),
        READ_LATENCY_BUCKETS,
    ),
)

FAMILIES: dict[str, FamilySpec] = {spec.name: spec for spec in _SPECS}


def family_spec(name: str) -> FamilySpec:
    """Return the spec of the family called name or raise ValueError."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown metric family {name!r}") from None


def histogram_from_counters(
    buckets: Sequence[float], counters: Sequence[int]
) -> tuple[list[int], float]:
    """Return (bucket_counts, sum) of a const histogram built from nydusd counters.

    nydusd reports one counter per bucket. The snapshotter's sum counts
    every read at its bucket's upper bound, and nothing lands above the
    largest bucket.
    """
    if len(counters) != len(buckets):
        raise ValueError(
            f"length of counters({len(counters)}) and buckets({len(buckets)}) not equal"
        )
    total = sum(bound * count for bound, count in zip(buckets, counters, strict=True))
    return [int(count) for count in counters] + [0], float(total)


# --- registry ------------------------------------------------------------------

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class _Value:
    labels: dict[str, str]
    value: float
    expires: float | None


@dataclass
class _Histogram:
    labels: dict[str, str]
    bucket_counts: list[int]
    sum: float


def _check_labels(spec: FamilySpec, labels: Mapping[str, str] | None) -> dict[str, str]:
    actual = {str(key): str(value) for key, value in (labels or {}).items()}
    if set(actual) != set(spec.labels):
        raise ValueError(
            f"{spec.name} takes the labels {list(spec.labels)}, got {sorted(actual)}"
        )
    return actual


def _key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


class MetricsRegistry:
    """Thread-safe values of every snapshotter family, rendered on each scrape."""

    def __init__(
        self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.values: dict[SeriesKey, _Value] = {}
        self.histograms: dict[SeriesKey, _Histogram] = {}
        self.reset()

    def reset(self) -> None:
        """Return to the state of a snapshotter that has just started."""
        with self.lock:
            self.values.clear()
            self.histograms.clear()
            for spec in _SPECS:
                if not spec.labels and spec.type != "histogram":
                    self.values[_key(spec.name, {})] = _Value({}, 0.0, None)

    def _expiry(self, spec: FamilySpec) -> float | None:
        return self.clock() + self.ttl if spec.ttl else None

    def _scalar_spec(self, name: str) -> FamilySpec:
        spec = family_spec(name)
        if spec.type == "histogram":
            raise ValueError(f"{name} is a histogram; set its buckets instead")
        return spec

    def set(
        self, name: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        """Set a gauge or counter series, creating it when absent."""
        spec = self._scalar_spec(name)
        checked = _check_labels(spec, labels)
        with self.lock:
            self.values[_key(name, checked)] = _Value(
                checked, float(value), self._expiry(spec)
            )

    def inc(
        self, name: str, amount: float = 1.0, labels: Mapping[str, str] | None = None
    ) -> None:
        """Add amount to a series, starting from 0 when absent."""
        spec = self._scalar_spec(name)
        if spec.type == "counter" and amount < 0:
            raise ValueError(f"counter {name} cannot decrease in value")
        checked = _check_labels(spec, labels)
        with self.lock:
            current = self.values.get(_key(name, checked))
            base = current.value if current else 0.0
            self.values[_key(name, checked)] = _Value(
                checked, base + float(amount), self._expiry(spec)
            )

    def set_histogram(
        self,
        name: str,
        bucket_counts: Sequence[int],
        total: float,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Set a histogram series: per-bucket counts plus the +Inf-only count."""
        spec = family_spec(name)
        if spec.type != "histogram":
            raise ValueError(f"{name} is a {spec.type}, not a histogram")
        if len(bucket_counts) != len(spec.buckets) + 1:
            raise ValueError(
                f"{name} needs {len(spec.buckets) + 1} bucket counts, "
                f"got {len(bucket_counts)}"
            )
        if any(int(count) < 0 for count in bucket_counts):
            raise ValueError(f"{name} bucket counts cannot be negative")
        checked = _check_labels(spec, labels)
        with self.lock:
            self.histograms[_key(name, checked)] = _Histogram(
                checked, [int(count) for count in bucket_counts], float(total)
            )

    def observe(
        self, name: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        """Add one observation to a histogram series, as Histogram.Observe does."""
        spec = family_spec(name)
        if spec.type != "histogram":
            raise ValueError(f"{name} is a {spec.type}, not a histogram")
        checked = _check_labels(spec, labels)
        index = next(
            (i for i, bound in enumerate(spec.buckets) if value <= bound),
            len(spec.buckets),
        )
        with self.lock:
            key = _key(name, checked)
            current = self.histograms.get(key)
            if current is None:
                current = _Histogram(checked, [0] * (len(spec.buckets) + 1), 0.0)
                self.histograms[key] = current
            current.bucket_counts[index] += 1
            current.sum += float(value)

    def remove(
        self, name: str | None = None, labels: Mapping[str, str] | None = None
    ) -> int:
        """Remove the labelled series of name (or of every family) matching labels.

        labels may name a subset of the label names, so ``{"image_ref": r}``
        removes every series of that image. Families without labels cannot
        be removed (as in Go, where they stay registered). Returns the
        number of series removed.
        """
        if name is not None:
            spec = family_spec(name)
            if not spec.labels:
                raise ValueError(f"{name} has no labels and is always present")
        selector = {str(key): str(value) for key, value in (labels or {}).items()}
        removed = 0
        with self.lock:
            for table in (self.values, self.histograms):
                for key in list(table):
                    entry = table[key]
                    if not entry.labels or (name is not None and key[0] != name):
                        continue
                    if all(entry.labels.get(k) == v for k, v in selector.items()):
                        del table[key]
                        removed += 1
        return removed

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, v in self.values.items() if v.expires is not None]:
            expires = self.values[key].expires
            if expires is not None and expires <= now:
                del self.values[key]

    def families(self) -> list[Family]:
        """Return every family with its current series, expired ones dropped."""
        with self.lock:
            self._drop_expired()
            families = {
                spec.name: Family(spec.name, spec.help, spec.type, buckets=spec.buckets)
                for spec in _SPECS
            }
            for (name, _), entry in self.values.items():
                families[name].series.append(Series(dict(entry.labels), entry.value))
            for (name, _), histogram in self.histograms.items():
                families[name].histograms.append(
                    HistogramSeries(
                        dict(histogram.labels),
                        list(histogram.bucket_counts),
                        histogram.sum,
                    )
                )
        return list(families.values())

    def render(self) -> str:
        return render(self.families())

    def state(self) -> dict[str, Any]:
        """Return the current series in the JSON shape of the module docstring."""
        families = self.families()
        samples = [
            {"name": family.name, "labels": dict(series.labels), "value": series.value}
            for family in families
            for series in family.series
        ]
        histograms = [
            {
                "name": family.name,
                "labels": dict(histogram.labels),
                "bucket_counts": list(histogram.bucket_counts),
                "sum": histogram.sum,
            }
            for family in families
            for histogram in family.histograms
        ]
        return {"samples": samples, "histograms": histograms}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace every value with those of state; raise ValueError if invalid.

        Families without labels that state leaves out are 0. TTL series
        count as set now.
        """
        unknown = set(state) - {"samples", "histograms"}
        if unknown:
            raise ValueError(f"unknown state keys {sorted(unknown)}")
        checked = MetricsRegistry(self.ttl, self.clock)
        for sample in state.get("samples", []):
            checked.set(sample["name"], sample["value"], sample.get("labels"))
        for histogram in state.get("histograms", []):
            checked.set_histogram(
                histogram["name"],
                histogram["bucket_counts"],
                histogram["sum"],
                histogram.get("labels"),
            )
        with self.lock:
            self.values = checked.values
            self.histograms = checked.histograms


# --- configuration values --------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]*)")


def parse_go_duration(text: str) -> float:
    """Return the seconds of a Go duration string such as "1m", "5s" or "1h30m".

    Raises ValueError with the message of Go's time.ParseDuration.
    """
    rest = text
    sign = 1.0
    if rest[:1] in ("-", "+"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f'time: invalid duration "{text}"')
    seconds = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        number, unit = match.groups()
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        seconds += float(number) * _DURATION_UNITS[unit]
        rest = rest[match.end() :]
    return sign * seconds
