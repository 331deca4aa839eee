"""What one metrics poll of a node returns, before any rate is derived.

Counters are kept as the daemons report them. Nothing here holds a secret:
the readers copy named numeric fields and never a daemon's config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# nydusd's FS latency buckets (microseconds): <=200us, <=1ms, <=20ms, <=50ms,
# <=500ms, <=1s, <=2s, >2s. They count every FUSE operation, not only reads.
NYDUSD_LATENCY_BOUNDS_US = (200, 1_000, 20_000, 50_000, 500_000, 1_000_000, 2_000_000)
# The snapshotter's nydusd_read_latency_microseconds histogram buckets.
SNAPSHOTTER_LATENCY_BOUNDS_US = (1, 20, 50, 100, 500, 1_000, 2_000, 4_000)
READ_FOP = 4  # index of Read in fop_hits / fop_errors


@dataclass(frozen=True)
class PromSample:
    """One sample line of Prometheus text or one series of a PromQL answer."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


@dataclass
class PromFamilies:
    """The snapshotter's metric samples, from its endpoint or from Prometheus."""

    samples: list[PromSample] = field(default_factory=list)

    def values(self, name: str) -> list[PromSample]:
        return [s for s in self.samples if s.name == name]

    def value(self, name: str) -> float | None:
        found = self.values(name)
        return sum(s.value for s in found) if found else None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        result: dict[str, float] = {}
        for sample in self.values(name):
            key = sample.label(label)
            result[key] = result.get(key, 0.0) + sample.value
        return result

    @property
    def collected(self) -> bool:
        """False until the snapshotter's first collect interval has passed.

        Plain gauges read 0 before the first collection, so zeros would be
        shown as if they were measured.
        """
        uptime = self.value("snapshotter_run_time_seconds") or 0.0
        memory = self.value("snapshotter_memory_usage_kilobytes") or 0.0
        return uptime > 0 or memory > 0

    def histogram(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """Return (upper bound, cumulative count) pairs of one histogram series."""
        buckets = []
        for sample in self.values(f"{name}_bucket"):
            if all(sample.label(k) == v for k, v in labels.items()):
                buckets.append((float(sample.label("le")), sample.value))
        return sorted(buckets)


@dataclass
class DaemonSample:
    """Counters and state of one nydusd, read from its API (or from Prometheus)."""

    id: str
    pid: int = 0
    api_socket: str = ""
    mountpoint: str = ""
    images: list[str] = field(default_factory=list)
    state: str = ""
    version: str = ""
    backend_type: str = ""
    rss_kb: float | None = None
    fs: dict[str, Any] | None = None
    backend: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None
    inflight: list[dict[str, Any]] | None = None
    latency_bounds_us: tuple[int, ...] = NYDUSD_LATENCY_BOUNDS_US
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "api_socket": self.api_socket,
            "mountpoint": self.mountpoint,
            "images": self.images,
            "state": self.state,
            "version": self.version,
            "backend_type": self.backend_type,
            "rss_kb": self.rss_kb,
            "fs": self.fs,
            "backend": self.backend,
            "cache": self.cache,
            "inflight": self.inflight,
            "errors": self.errors,
        }


@dataclass
class NodeSample:
    """One poll of one node: its daemons and the snapshotter's own metrics."""

    node: str
    at: float
    wall: float
    source: str
    daemons: list[DaemonSample] = field(default_factory=list)
    snapshotter: PromFamilies | None = None
    # Settings worth knowing (an endpoint turned off), and reads that failed.
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""
