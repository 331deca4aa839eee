"""Rates, ratios and percentiles derived from successive metrics polls.

nydusd's counters only grow while a daemon lives; a smaller value means the
daemon restarted (or the snapshotter's TTL gauge vanished and came back). A
rate is taken only over points after the last such drop, so a restart shows
as "no rate yet", never as a negative or huge figure.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nydus_console.metrics.model import READ_FOP, DaemonSample, NodeSample

Point = tuple[float, float]


def rate(points: Sequence[Point]) -> float | None:
    """Per-second increase over `points` (time, value), after the last reset."""
    start = 0
    for index in range(1, len(points)):
        if points[index][1] < points[index - 1][1]:
            start = index
    tail = points[start:]
    if len(tail) < 2 or tail[-1][0] <= tail[0][0]:
        return None
    return (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])


def increase(points: Sequence[Point]) -> float | None:
    """Increase over `points` after the last reset; None with under two points."""
    start = 0
    for index in range(1, len(points)):
        if points[index][1] < points[index - 1][1]:
            start = index
    tail = points[start:]
    return tail[-1][1] - tail[0][1] if len(tail) >= 2 else None


def quantile_bound(
    bounds: Sequence[float], counts: Sequence[float], q: float
) -> float | None:
    """Upper bound of the bucket holding quantile `q` (inf for the open bucket).

    The buckets are coarse (200 us, then 1 ms, then 20 ms), so the bound is
    reported rather than a value interpolated inside the bucket.
    """
    total = sum(counts)
    if total <= 0:
        return None
    target = q * total
    running = 0.0
    for index, count in enumerate(counts):
        running += count
        if running >= target:
            return float(bounds[index]) if index < len(bounds) else math.inf
    return math.inf


def _get(
    data: dict[str, Any] | None, key: str, index: int | None = None
) -> float | None:
    if data is None:
        return None
    value = data.get(key)
    if index is not None:
        if not isinstance(value, list) or index >= len(value):
            return None
        value = value[index]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _series(
    window: Sequence[tuple[float, DaemonSample]],
    part: Callable[[DaemonSample], dict[str, Any] | None],
    key: str,
    index: int | None = None,
) -> list[Point]:
    points = []
    for t, daemon in window:
        value = _get(part(daemon), key, index)
        if value is not None:
            points.append((t, value))
    return points


def _fs(daemon: DaemonSample) -> dict[str, Any] | None:
    return daemon.fs


def _cache(daemon: DaemonSample) -> dict[str, Any] | None:
    return daemon.cache


def _backend(daemon: DaemonSample) -> dict[str, Any] | None:
    return daemon.backend


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0:
        return None
    return max(0.0, min(1.0, part / whole))


@dataclass
class DaemonFigures:
    """What the operator reads about one daemon at one poll."""

    read_bps: float | None = None
    read_ops: float | None = None
    read_error_ratio: float | None = None
    latency_p50_us: float | None = None
    latency_p90_us: float | None = None
    latency_p99_us: float | None = None
    read_avg_latency_us: float | None = None
    cache_hit_ratio: float | None = None
    prefetch_bytes: float | None = None
    prefetch_requests: float | None = None
    data_all_ready: bool | None = None
    backend_bps: float | None = None
    backend_error_ratio: float | None = None
    backend_avg_latency_ms: float | None = None
    inflight: int | None = None
    hung_io: int | None = None
    rss_kb: float | None = None
    restarted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in self.__dict__.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def _latency(window: Sequence[tuple[float, DaemonSample]]) -> list[float] | None:
    """Per-bucket increase of the latency distribution over the window."""
    dists = [
        (t, d.fs["read_latency_dist"])
        for t, d in window
        if d.fs is not None and isinstance(d.fs.get("read_latency_dist"), list)
    ]
    start = 0
    for index in range(1, len(dists)):
        if sum(dists[index][1]) < sum(dists[index - 1][1]):
            start = index
    dists = dists[start:]
    if len(dists) < 2:
        return None
    first, last = dists[0][1], dists[-1][1]
    deltas = [float(b) - float(a) for a, b in zip(first, last, strict=False)]
    return deltas if all(d >= 0 for d in deltas) else None


def daemon_figures(window: Sequence[tuple[float, DaemonSample]]) -> DaemonFigures:
    """Figures of the newest sample in `window`, with rates over the window.

    Rates use only the samples of the newest process, so a restart shows as
    no rate yet even when the new counters already exceed the old ones.
    """
    latest = window[-1][1]
    figures = DaemonFigures(rss_kb=latest.rss_kb)
    figures.restarted = _restarted(window)
    window = _newest_process(window)
    _fs_figures(figures, window)
    _cache_figures(figures, window, latest)
    _backend_figures(figures, window)
    if latest.inflight is not None:
        figures.inflight = len(latest.inflight)
    return figures


def _newest_process(
    window: Sequence[tuple[float, DaemonSample]],
) -> Sequence[tuple[float, DaemonSample]]:
    start = 0
    for index in range(1, len(window)):
        before, now = window[index - 1][1].pid, window[index][1].pid
        if before and now and before != now:
            start = index
    return window[start:]


def _restarted(window: Sequence[tuple[float, DaemonSample]]) -> bool:
    if len(window) < 2:
        return False
    before, now = window[-2][1], window[-1][1]
    if before.pid and now.pid and before.pid != now.pid:
        return True
    old, new = _get(before.fs, "data_read"), _get(now.fs, "data_read")
    return old is not None and new is not None and new < old


def _fs_figures(
    figures: DaemonFigures, window: Sequence[tuple[float, DaemonSample]]
) -> None:
    figures.read_bps = rate(_series(window, _fs, "data_read"))
    hits = increase(_series(window, _fs, "fop_hits", READ_FOP))
    errors = increase(_series(window, _fs, "fop_errors", READ_FOP))
    figures.read_ops = rate(_series(window, _fs, "fop_hits", READ_FOP))
    if hits is not None and errors is not None:
        figures.read_error_ratio = _ratio(errors, hits + errors)
    spent = increase(_series(window, _fs, "fop_cumulative_latency_total", READ_FOP))
    if spent is not None and hits:
        figures.read_avg_latency_us = spent / hits
    deltas = _latency(window)
    if deltas is not None:
        bounds = window[-1][1].latency_bounds_us
        figures.latency_p50_us = quantile_bound(bounds, deltas, 0.5)
        figures.latency_p90_us = quantile_bound(bounds, deltas, 0.9)
        figures.latency_p99_us = quantile_bound(bounds, deltas, 0.99)


def _cache_figures(
    figures: DaemonFigures,
    window: Sequence[tuple[float, DaemonSample]],
    latest: DaemonSample,
) -> None:
    partial = increase(_series(window, _cache, "partial_hits"))
    whole = increase(_series(window, _cache, "whole_hits"))
    total = increase(_series(window, _cache, "total"))
    if partial is not None and whole is not None and total:
        figures.cache_hit_ratio = _ratio(partial + whole, total)
    elif latest.cache is not None:
        hit = (_get(latest.cache, "partial_hits") or 0) + (
            _get(latest.cache, "whole_hits") or 0
        )
        figures.cache_hit_ratio = _ratio(hit, _get(latest.cache, "total"))
    figures.prefetch_bytes = _get(latest.cache, "prefetch_data_amount")
    figures.prefetch_requests = _get(latest.cache, "prefetch_requests_count")
    if latest.cache is not None and "data_all_ready" in latest.cache:
        figures.data_all_ready = bool(latest.cache["data_all_ready"])


def _backend_figures(
    figures: DaemonFigures, window: Sequence[tuple[float, DaemonSample]]
) -> None:
    figures.backend_bps = rate(_series(window, _backend, "read_amount_total"))
    # nydusd counts every backend read in read_count, failed ones included,
    # and the failed ones again in read_errors (BackendMetrics::end in
    # utils/src/metrics.rs).
    count = increase(_series(window, _backend, "read_count"))
    errors = increase(_series(window, _backend, "read_errors"))
    if count is not None and errors is not None:
        figures.backend_error_ratio = _ratio(errors, count)
    spent = increase(_series(window, _backend, "read_cumulative_latency_millis_total"))
    if spent is not None and count:
        figures.backend_avg_latency_ms = spent / count


class HungTracker:
    """Counts in-flight FUSE requests seen unchanged for at least `threshold` s.

    A request is known by its `unique` id; one that stays in the in-flight
    list across polls this long is hung. This needs no clock on the node.
    """

    def __init__(self, threshold: float = 10.0) -> None:
        self.threshold = threshold
        self._first_seen: dict[object, float] = {}

    def update(self, now: float, inflight: list[dict[str, Any]] | None) -> int | None:
        if inflight is None:
            return None
        current = {op.get("unique") for op in inflight if isinstance(op, dict)}
        self._first_seen = {key: self._first_seen.get(key, now) for key in current}
        return sum(1 for t in self._first_seen.values() if now - t >= self.threshold)


@dataclass
class SnapshotterFigures:
    """The snapshotter process and its view of all daemons, from its endpoint."""

    collected: bool = False
    cpu_percent: float | None = None
    memory_kb: float | None = None
    fds: float | None = None
    threads: float | None = None
    cache_usage_kb: float | None = None
    hung_io: float | None = None
    daemons_running: float | None = None
    daemon_deaths: float | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class NodeFigures:
    """Everything one node's metrics screen and fleet row show at one poll."""

    node: str
    source: str
    at: float
    daemons: dict[str, DaemonFigures] = field(default_factory=dict)
    snapshotter: SnapshotterFigures | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""
    daemon_errors: int = 0

    @property
    def read_bps(self) -> float | None:
        values = [d.read_bps for d in self.daemons.values() if d.read_bps is not None]
        return sum(values) if values else None

    def worst(self, name: str) -> float | None:
        values = [getattr(d, name) for d in self.daemons.values()]
        present = [v for v in values if v is not None]
        return max(present) if present else None

    @property
    def hung_io(self) -> float | None:
        counted = [d.hung_io for d in self.daemons.values() if d.hung_io is not None]
        if counted:
            return float(sum(counted))
        return self.snapshotter.hung_io if self.snapshotter else None

    @property
    def rss_kb(self) -> float | None:
        values = [d.rss_kb for d in self.daemons.values() if d.rss_kb is not None]
        return sum(values) if values else None

    def severity(self) -> int:
        """0 fine, 1 degraded (slow or partly unreadable), 2 failing, 3 unreachable."""
        if self.error:
            return 3
        if (self.hung_io or 0) > 0 or (self.worst("read_error_ratio") or 0) > 0.01:
            return 2
        if self.problems or self.daemon_errors:
            return 1
        if (self.worst("latency_p99_us") or 0) > 500_000:
            return 1
        return 0


def snapshotter_figures(sample: NodeSample) -> SnapshotterFigures | None:
    families = sample.snapshotter
    if families is None:
        return None
    figures = SnapshotterFigures(collected=families.collected)
    if not figures.collected:
        return figures
    figures.cpu_percent = families.value("snapshotter_cpu_usage_percentage")
    figures.memory_kb = families.value("snapshotter_memory_usage_kilobytes")
    figures.fds = families.value("snapshotter_fd_counts")
    figures.threads = families.value("snapshotter_thread_counts")
    figures.cache_usage_kb = families.value("snapshotter_cache_usage_kilobytes")
    figures.hung_io = families.value("nydusd_hung_io_counts")
    figures.daemons_running = families.value("nydusd_counts")
    events = families.by_label("nydusd_lifetime_event_counts", "nydusd_event")
    figures.daemon_deaths = events.get("DIED", 0.0)
    return figures


class MetricsHistory:
    """Keeps a sliding window of samples per daemon and derives figures from it.

    `rate_span` is how far back rates look: one poll when counters come from
    the daemons, longer when they come from the snapshotter, which refreshes
    them only once per collect interval.
    """

    def __init__(self, keep_seconds: float = 600.0, spark_points: int = 120) -> None:
        self.keep_seconds = keep_seconds
        self._samples: dict[tuple[str, str], deque[tuple[float, DaemonSample]]] = {}
        self._hung: dict[tuple[str, str], HungTracker] = {}
        self.sparks: dict[tuple[str, str, str], deque[float]] = {}
        self._spark_points = spark_points

    def add(self, sample: NodeSample, rate_span: float = 0.0) -> NodeFigures:
        figures = NodeFigures(sample.node, sample.source, sample.at)
        figures.notes = list(sample.notes)
        figures.problems = list(sample.problems)
        figures.error = sample.error
        figures.snapshotter = snapshotter_figures(sample)
        for daemon in sample.daemons:
            key = (sample.node, daemon.id)
            known = self._samples.get(key)
            # A sample already seen (same time) adds no point to the history.
            repeated = (
                known is not None and len(known) > 0 and known[-1][0] == sample.at
            )
            window = self._window(key, sample.at, daemon, rate_span)
            daemon_fig = daemon_figures(window)
            tracker = self._hung.setdefault(key, HungTracker())
            daemon_fig.hung_io = tracker.update(sample.at, daemon.inflight)
            figures.daemons[daemon.id] = daemon_fig
            figures.daemon_errors += bool(daemon.errors)
            if not repeated:
                self._spark(sample.node, daemon.id, daemon_fig)
        self._forget(sample)
        return figures

    def _window(
        self, key: tuple[str, str], now: float, daemon: DaemonSample, span: float
    ) -> list[tuple[float, DaemonSample]]:
        samples = self._samples.setdefault(key, deque())
        if samples and samples[-1][0] == now:
            samples.pop()
        samples.append((now, daemon))
        while samples and samples[0][0] < now - self.keep_seconds:
            samples.popleft()
        points = list(samples)
        recent = [p for p in points if p[0] >= now - span]
        if len(recent) < 2:
            recent = points[-2:]
        return recent

    def _spark(self, node: str, daemon: str, figures: DaemonFigures) -> None:
        for name in ("read_bps", "latency_p99_us", "cache_hit_ratio"):
            value = getattr(figures, name)
            if value is None or math.isinf(value):
                continue
            series = self.sparks.setdefault(
                (node, daemon, name), deque(maxlen=self._spark_points)
            )
            series.append(float(value))

    def spark(self, node: str, daemon: str, name: str) -> list[float]:
        return list(self.sparks.get((node, daemon, name), ()))

    def _forget(self, sample: NodeSample) -> None:
        if sample.error:
            return  # keep the history of an unreachable node for when it returns
        alive = {d.id for d in sample.daemons}
        for key in [k for k in self._samples if k[0] == sample.node]:
            if key[1] not in alive:
                del self._samples[key]
                self._hung.pop(key, None)
        for spark in [k for k in self.sparks if k[0] == sample.node]:
            if spark[1] not in alive:
                del self.sparks[spark]
