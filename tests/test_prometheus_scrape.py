"""Debian's Prometheus scraping the snapshotter metrics double on 127.0.0.1.

Each test starts its own Prometheus with a fresh TSDB and reads the values
back through the HTTP query API.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.errors import TestbedUnavailable
from testbed.fixtures import StartPrometheus
from testbed.metrics_double import SnapshotterMetricsDouble
from testbed.prometheus import JOB_NAME, PrometheusServer

LATENCY_COUNTERS = [72, 20, 2, 0, 0, 0, 0, 0]


def test_prometheus_reads_values_set(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
    start_prometheus: StartPrometheus,
) -> None:
    double = snapshotter_metrics_double
    double.set("nydusd_read_hits", 12, image_ref="a")
    double.set("nydusd_read_hits", 4, image_ref="b")
    double.inc("nydusd_lifetime_event_counts", 3, nydusd_event="RUNNING")
    double.set_histogram(
        "nydusd_read_latency_microseconds", counters=LATENCY_COUNTERS, image_ref="a"
    )
    prometheus = start_prometheus([double.target])

    up = prometheus.query_values(f'up{{job="{JOB_NAME}"}}', "instance")
    assert up == {double.target: 1.0}
    prometheus.wait_for_query("nydusd_read_hits", lambda result: len(result) == 2)
    assert prometheus.query_values("nydusd_read_hits", "image_ref") == {
        "a": 12.0,
        "b": 4.0,
    }
    events = prometheus.query_values("nydusd_lifetime_event_counts", "nydusd_event")
    assert events == {"RUNNING": 3.0}
    count = prometheus.query_values(
        "nydusd_read_latency_microseconds_count", "image_ref"
    )
    assert count == {"a": float(sum(LATENCY_COUNTERS))}
    median = prometheus.query_values(
        "histogram_quantile(0.5, nydusd_read_latency_microseconds_bucket)",
        "image_ref",
    )
    # The rank 47 of 94 falls in the first bucket (0, 1], which contains 72.
    assert median == {"a": pytest.approx(47 / 72)}
    fd_counts = prometheus.query_values("snapshotter_fd_counts", "job")
    assert fd_counts == {JOB_NAME: 0.0}

    double.set("nydusd_read_hits", 20, image_ref="a")
    prometheus.wait_for_value('nydusd_read_hits{image_ref="a"}', 20)
    double.remove(image_ref="b")
    prometheus.wait_for_query(
        'nydusd_read_hits{image_ref="b"}', lambda result: result == []
    )
    assert prometheus.query_values("nydusd_read_hits", "image_ref") == {"a": 20.0}


def test_prometheus_sees_counter_reset(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
    start_prometheus: StartPrometheus,
) -> None:
    double = snapshotter_metrics_double
    double.inc("nydusd_lifetime_event_counts", 5, nydusd_event="RUNNING")
    prometheus = start_prometheus([double.target])
    series = 'nydusd_lifetime_event_counts{nydusd_event="RUNNING"}'
    prometheus.wait_for_value(series, 5)

    double.restart()
    double.inc("nydusd_lifetime_event_counts", 1, nydusd_event="RUNNING")
    prometheus.wait_for_value(series, 1)
    resets = prometheus.query_values(f"resets({series}[1m])", "nydusd_event")
    assert resets == {"RUNNING": 1.0}


def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    server = PrometheusServer(
        ["127.0.0.1:1"], tmp_path, binary=str(tmp_path / "no-prometheus")
    )
    with pytest.raises(TestbedUnavailable, match="Debian package: prometheus"):
        server.start()
    assert server.process is None
