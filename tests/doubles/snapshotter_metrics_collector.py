"""Periodic collection of nydus-snapshotter's metrics, as its metrics server does.

Every collect interval it reads each RUNNING daemon's FS metrics
(GET /api/v1/metrics) and blob cache metrics (GET /api/v1/metrics/blobcache)
over the daemon's API socket, each daemon's RSS, and the snapshotter's own
process statistics and cache disk usage. Every hung IO interval (10 s) it
counts the in-flight requests older than that interval. Until the first
tick only the values set by daemon events are non-zero. Daemon events
(start, death) are recorded by the ``record_*`` functions at the time they
happen, as the snapshotter's daemon manager does.
Python 3.11 standard library only; it runs inside test nodes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snapshotter_metrics import (
    BLOCK_SIZE_BUCKETS,
    HUNG_IO_INTERVAL,
    READ_LATENCY_BUCKETS,
    MetricsRegistry,
    histogram_from_counters,
)
from unix_http import request_json

READ_FOP = 4  # index of Read in nydusd's fop_hits and fop_errors
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Log = Callable[[str, str], None]  # (level, message)


@dataclass(frozen=True)
class DaemonSource:
    """A nydusd process the snapshotter manages and the image its instance serves."""

    id: str
    pid: int
    api_socket: str
    image_ref: str


# --- daemon events ---------------------------------------------------------------


def record_daemon_running(
    registry: MetricsRegistry, daemon: DaemonSource, version: str
) -> None:
    """Record a daemon that reached RUNNING after the snapshotter started it."""
    registry.inc("nydusd_lifetime_event_counts", 1, {"nydusd_event": "RUNNING"})
    registry.inc("nydusd_counts", 1, {"version": version})
    registry.set(
        "nydusd_image_info", 1, {"daemon_id": daemon.id, "image_ref": daemon.image_ref}
    )


def record_daemon_recovered(
    registry: MetricsRegistry, daemon: DaemonSource, version: str
) -> None:
    """Record a running daemon adopted from a previous snapshotter process.

    NOTE: the recovery path is modelled as counting the daemon in
    nydusd_counts without a RUNNING event; not checked against the source.
    """
    registry.inc("nydusd_counts", 1, {"version": version})
    registry.set(
        "nydusd_image_info", 1, {"daemon_id": daemon.id, "image_ref": daemon.image_ref}
    )


def record_daemon_died(registry: MetricsRegistry, version: str) -> None:
    registry.inc("nydusd_lifetime_event_counts", 1, {"nydusd_event": "DIED"})
    registry.inc("nydusd_counts", -1, {"version": version})


# --- /proc ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessStat:
    """The /proc values the snapshotter reads for its own metrics (ticks, pages)."""

    utime: float
    stime: float
    threads: float
    start: float
    rss: float
    fds: float
    uptime: float


def read_process_stat(pid: int) -> ProcessStat:
    """Read /proc/<pid>/stat, its fdinfo and /proc/uptime. Raises OSError."""
    with open("/proc/uptime") as stream:
        uptime = float(stream.read().split()[0])
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5), so field N is fields[N - 3].
    return ProcessStat(
        utime=float(fields[11]),
        stime=float(fields[12]),
        threads=float(fields[17]),
        start=float(fields[19]),
        rss=float(fields[21]),
        fds=float(len(os.listdir(f"/proc/{pid}/fdinfo"))),
        uptime=uptime,
    )


def rss_kilobytes(pid: int) -> float:
    return read_process_stat(pid).rss * PAGE_SIZE / 1024


def disk_usage_bytes(path: str) -> int:
    """Return the allocated size of path and everything under it, each inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, names, files in os.walk(path):
        for entry in [directory] + [os.path.join(directory, n) for n in names + files]:
            try:
                info = os.lstat(entry)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


# --- collector -----------------------------------------------------------------


class MetricsCollector:
    """Fills a MetricsRegistry on the snapshotter's two schedules."""

    def __init__(
        self,
        registry: MetricsRegistry,
        list_daemons: Callable[[], list[DaemonSource]],
        cache_dir: str,
        interval: float,
        log: Log,
    ) -> None:
        self.registry = registry
        self.list_daemons = list_daemons
        self.cache_dir = cache_dir
        self.interval = interval
        self.log = log
        self.pid = os.getpid()
        # The real collector takes its first CPU sample when it is created.
        self.last_stat = read_process_stat(self.pid)

    def run(self, stop: threading.Event) -> None:
        """Collect on both schedules until stop is set.

        Like a Go time.Ticker, each schedule fires first one interval after
        the start and skips the ticks that a slow collection missed.
        """
        started = time.monotonic()
        next_collect = started + self.interval
        next_inflight = started + HUNG_IO_INTERVAL
        while True:
            delay = min(next_collect, next_inflight) - time.monotonic()
            if stop.wait(max(0.0, delay)):
                return
            now = time.monotonic()
            if now >= next_collect:
                self._guarded(self.collect)
                next_collect = max(next_collect + self.interval, now)
            if now >= next_inflight:
                self._guarded(self.collect_inflight)
                next_inflight = max(next_inflight + HUNG_IO_INTERVAL, now)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:  # logged, and the next tick tries again
            self.log("error", f"Failed to collect metrics: {error!r}")

    def collect(self) -> None:
        daemons = self.list_daemons()
        running = [daemon for daemon in daemons if self._running(daemon)]
        self.collect_fs(running)
        self.collect_cache(running)
        self.collect_daemon_rss(daemons)
        self.collect_snapshotter()

    @staticmethod
    def _running(daemon: DaemonSource) -> bool:
        try:
            status, info = request_json(daemon.api_socket, "GET", "/api/v1/daemon")
        except (OSError, ValueError):
            return False
        return (
            status == 200 and isinstance(info, dict) and info.get("state") == "RUNNING"
        )

    def _get(self, daemon: DaemonSource, path: str, kind: str) -> Any:
        """Return the JSON body of GET path on daemon, or None after logging why."""
        try:
            status, body = request_json(daemon.api_socket, "GET", path)
        except (OSError, ValueError) as error:
            self.log("error", f"failed to get {kind} metric of {daemon.id}: {error}")
            return None
        if status != 200 or not isinstance(body, dict):
            self.log(
                "error",
                f"failed to get {kind} metric of {daemon.id}: HTTP status {status}",
            )
            return None
        return body

    def collect_fs(self, running: list[DaemonSource]) -> None:
        collected = []
        for daemon in running:
            metrics = self._get(daemon, "/api/v1/metrics", "fs")
            if metrics is not None:
                collected.append((daemon.image_ref, metrics))
        if not collected:
            return  # so the histograms of the last collection stay, as in Go
        for name in (
            "nydusd_cumulative_read_block_bytes",
            "nydusd_read_latency_microseconds",
        ):
            self.registry.remove(name)
        # NOTE: daemons that serve the same image_ref overwrite each other's
        # series here. The Go registry would fail the scrape with a 500.
        for image_ref, metrics in collected:
            self._save_fs(image_ref, metrics)

    def _save_fs(self, image_ref: str, metrics: dict[str, Any]) -> None:
        labels = {"image_ref": image_ref}
        registry = self.registry
        registry.set("nydusd_total_read_bytes", metrics["data_read"], labels)
        registry.set("nydusd_read_hits", metrics["fop_hits"][READ_FOP], labels)
        registry.set("nydusd_read_errors", metrics["fop_errors"][READ_FOP], labels)
        histograms = (
            (
                "nydusd_cumulative_read_block_bytes",
                BLOCK_SIZE_BUCKETS,
                "block_count_read",
            ),
            (
                "nydusd_read_latency_microseconds",
                READ_LATENCY_BUCKETS,
                "read_latency_dist",
            ),
        )
        for name, buckets, key in histograms:
            try:
                counts, total = histogram_from_counters(buckets, metrics[key])
            except ValueError as error:
                self.log(
                    "warning",
                    f"failed to new const histogram for {name}, error: {error}",
                )
                return
            registry.set_histogram(name, counts, total, labels)

    def collect_cache(self, running: list[DaemonSource]) -> None:
        for daemon in running:
            metrics = self._get(daemon, "/api/v1/metrics/blobcache", "cache")
            if metrics is not None:
                self._save_cache(daemon.image_ref, metrics)

    def _save_cache(self, image_ref: str, metrics: dict[str, Any]) -> None:
        labels = {"image_ref": image_ref}
        cumulative = metrics["prefetch_cumulative_time_millis"]
        # The snapshotter's formula, in which the cumulative time cancels out.
        duration = (metrics["prefetch_end_time_secs"] * 1000 + cumulative) - (
            metrics["prefetch_begin_time_secs"] * 1000 + cumulative
        )
        values = {
            "nydusd_cache_partial_hits": metrics["partial_hits"],
            "nydusd_cache_whole_hits": metrics["whole_hits"],
            "nydusd_cache_total_requests": metrics["total"],
            "nydusd_cache_entries_count": metrics["entries_count"],
            "nydusd_cache_prefetch_data_bytes": metrics["prefetch_data_amount"],
            "nydusd_cache_prefetch_requests_count": metrics["prefetch_requests_count"],
            "nydusd_cache_prefetch_workers": metrics["prefetch_workers"],
            "nydusd_cache_prefetch_unmerged_chunks": metrics[
                "prefetch_unmerged_chunks"
            ],
            "nydusd_cache_prefetch_cumulative_time_millis": cumulative,
            "nydusd_cache_prefetch_duration_millis": duration,
            "nydusd_cache_buffered_backend_size": metrics["buffered_backend_size"],
        }
        for name, value in values.items():
            self.registry.set(name, value, labels)

    def collect_daemon_rss(self, daemons: list[DaemonSource]) -> None:
        for daemon in daemons:
            try:
                value = rss_kilobytes(daemon.pid)
            except (OSError, IndexError, ValueError):
                self.log("warning", f"Failed to get daemon {daemon.id} RSS memory")
                value = 0.0
            self.registry.set("nydusd_rss_kilobytes", value, {"daemon_id": daemon.id})

    def collect_snapshotter(self) -> None:
        try:
            usage = disk_usage_bytes(self.cache_dir)
        except OSError as error:
            self.log("warning", f"Get disk usage failed: {error}")
        else:
            self.registry.set("snapshotter_cache_usage_kilobytes", usage / 1024)
        current = read_process_stat(self.pid)
        last, self.last_stat = self.last_stat, current
        system = (current.stime - last.stime) / CLOCK_TICKS
        user = (current.utime - last.utime) / CLOCK_TICKS
        elapsed = current.uptime - last.uptime
        percent = (system + user) / elapsed * 100 if elapsed > 0 else 0.0
        values = {
            "snapshotter_cpu_system_time_seconds": round(system, 2),
            "snapshotter_cpu_user_time_seconds": round(user, 2),
            "snapshotter_cpu_usage_percentage": round(percent, 2),
            "snapshotter_memory_usage_kilobytes": round(
                current.rss * PAGE_SIZE / 1024, 2
            ),
            "snapshotter_fd_counts": current.fds,
            "snapshotter_run_time_seconds": round(
                current.uptime - current.start / CLOCK_TICKS, 2
            ),
            "snapshotter_thread_counts": current.threads,
        }
        for name, value in values.items():
            self.registry.set(name, value)

    def collect_inflight(self) -> None:
        hung = 0
        now = time.time()
        for daemon in self.list_daemons():
            if not self._running(daemon):
                continue
            try:
                status, body = request_json(
                    daemon.api_socket, "GET", "/api/v1/metrics/inflight"
                )
            except (OSError, ValueError) as error:
                self.log(
                    "error", f"failed to get inflight metric of {daemon.id}: {error}"
                )
                continue
            requests = body if status == 200 and isinstance(body, list) else []
            hung += sum(
                1
                for request in requests
                if now - float(request.get("timestamp_secs", now)) >= HUNG_IO_INTERVAL
            )
        self.registry.set("nydusd_hung_io_counts", hung)
