"""Prometheus samples from exposition text and from PromQL query results."""

from __future__ import annotations

import math

import pytest

from nydus_console.metrics.collect import PROM_PREFIXES
from nydus_console.metrics.derive import snapshotter_figures
from nydus_console.metrics.model import NodeSample, PromFamilies, PromSample
from nydus_console.metrics.promtext import (
    PromTextError,
    families_from_vector,
    parse_exposition,
)

IMAGE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"

# Written the way Go's client_golang text encoder does: families sorted by
# name, "le" last, integers without a decimal point, and a counter vector
# whose name has no _total suffix.
GO_TEXT = f"""\
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 23
# HELP nydusd_counts The counts of nydus daemon.
# TYPE nydusd_counts gauge
nydusd_counts{{version="v2.4.4"}} 2
# HELP nydusd_hung_io_counts Total number of hung IOs.
# TYPE nydusd_hung_io_counts gauge
nydusd_hung_io_counts 1
# HELP nydusd_lifetime_event_counts The lifetime events of nydus daemon.
# TYPE nydusd_lifetime_event_counts counter
nydusd_lifetime_event_counts{{nydusd_event="DIED"}} 1
nydusd_lifetime_event_counts{{nydusd_event="RUNNING"}} 3
# HELP nydusd_read_hits Total number of successful read operations.
# TYPE nydusd_read_hits gauge
nydusd_read_hits{{image_ref="{IMAGE}"}} 1200
nydusd_read_hits{{image_ref="docker.io/library/redis:7-nydus"}} 30
# HELP nydusd_read_latency_microseconds Read latency histogram, in microseconds
# TYPE nydusd_read_latency_microseconds histogram
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="1"}} 0
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="20"}} 400
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="50"}} 900
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="100"}} 1100
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="500"}} 1190
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="1000"}} 1195
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="2000"}} 1198
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="4000"}} 1199
nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="+Inf"}} 1200
nydusd_read_latency_microseconds_sum{{image_ref="{IMAGE}"}} 61234
nydusd_read_latency_microseconds_count{{image_ref="{IMAGE}"}} 1200
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 4.12
# HELP snapshotter_cache_blobs_deleted_total Total number of cache blobs deleted.
# TYPE snapshotter_cache_blobs_deleted_total counter
snapshotter_cache_blobs_deleted_total 17
# HELP snapshotter_cpu_usage_percentage CPU usage percentage of snapshotter.
# TYPE snapshotter_cpu_usage_percentage gauge
snapshotter_cpu_usage_percentage 1.5
# HELP snapshotter_fd_counts Fd counts of snapshotter.
# TYPE snapshotter_fd_counts gauge
snapshotter_fd_counts 41
# HELP snapshotter_memory_usage_kilobytes Memory usage (RSS) of snapshotter.
# TYPE snapshotter_memory_usage_kilobytes gauge
snapshotter_memory_usage_kilobytes 52340
# HELP snapshotter_run_time_seconds Running time of snapshotter from starting.
# TYPE snapshotter_run_time_seconds gauge
snapshotter_run_time_seconds 3600
# HELP snapshotter_thread_counts Thread counts of snapshotter.
# TYPE snapshotter_thread_counts gauge
snapshotter_thread_counts 14
"""


@pytest.fixture
def families() -> PromFamilies:
    return parse_exposition(GO_TEXT, PROM_PREFIXES)


def test_prefixes_drop_other_families(families: PromFamilies) -> None:
    names = {sample.name for sample in families.samples}
    assert not [name for name in names if name.startswith(("go_", "process_"))]
    assert "snapshotter_fd_counts" in names


def test_counter_names_lose_total(families: PromFamilies) -> None:
    names = {sample.name for sample in families.samples}
    assert "nydusd_lifetime_event_counts" in names
    assert "snapshotter_cache_blobs_deleted" in names
    assert not [name for name in names if name.endswith(("_total", "_created"))]
    assert families.value("snapshotter_cache_blobs_deleted") == 17.0
    assert families.value("snapshotter_cache_blobs_deleted_total") is None


def test_by_label_sums_series(families: PromFamilies) -> None:
    events = families.by_label("nydusd_lifetime_event_counts", "nydusd_event")
    assert events == {"DIED": 1.0, "RUNNING": 3.0}
    hits = families.by_label("nydusd_read_hits", "image_ref")
    assert hits[IMAGE] == 1200.0
    assert hits["docker.io/library/redis:7-nydus"] == 30.0
    assert families.value("nydusd_read_hits") == 1230.0


def test_histogram_go_bounds(families: PromFamilies) -> None:
    buckets = families.histogram("nydusd_read_latency_microseconds", image_ref=IMAGE)
    bounds = [bound for bound, _ in buckets]
    assert bounds == [1, 20, 50, 100, 500, 1000, 2000, 4000, math.inf]
    assert buckets[1] == (20.0, 400.0)
    assert buckets[-1] == (math.inf, 1200.0)


def test_histogram_other_labels_empty(families: PromFamilies) -> None:
    assert families.histogram("nydusd_read_latency_microseconds", image_ref="x") == []
    assert families.histogram("nydusd_missing") == []


def test_bucket_labels_sorted(families: PromFamilies) -> None:
    (sample,) = [
        s
        for s in families.values("nydusd_read_latency_microseconds_bucket")
        if s.label("le") == "+Inf"
    ]
    assert sample.labels == (("image_ref", IMAGE), ("le", "+Inf"))


def test_snapshotter_figures_from_text(families: PromFamilies) -> None:
    sample = NodeSample("node-a", 0.0, 0.0, "node", snapshotter=families)
    figures = snapshotter_figures(sample)
    assert figures is not None
    assert figures.collected is True
    assert figures.memory_kb == 52340.0
    assert figures.fds == 41.0
    assert figures.threads == 14.0
    assert figures.cpu_percent == 1.5
    assert figures.hung_io == 1.0
    assert figures.daemons_running == 2.0
    assert figures.daemon_deaths == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "nydusd_read_hits twelve\n",
        "this line is not a sample\n",
        'nydusd_read_hits{image_ref="a"\n',
        "{}\n",
    ],
)
def test_malformed_text_raises(text: str) -> None:
    with pytest.raises(PromTextError):
        parse_exposition(text, PROM_PREFIXES)


def test_empty_text_has_no_samples() -> None:
    assert parse_exposition("", PROM_PREFIXES).samples == []


# -- PromQL query results ----------------------------------------------------------

VECTOR = [
    {
        "metric": {
            "__name__": "nydusd_lifetime_event_counts",
            "instance": "10.0.0.5:9110",
            "job": "nydus-snapshotter",
            "nydusd_event": "RUNNING",
        },
        "value": [1_764_000_000.123, "3"],
    },
    {
        "metric": {
            "__name__": "snapshotter_cache_blobs_deleted_total",
            "instance": "10.0.0.5:9110",
        },
        "value": [1_764_000_000.123, "17"],
    },
    {
        "metric": {
            "__name__": "nydusd_read_latency_microseconds_bucket",
            "image_ref": IMAGE,
            "instance": "10.0.0.5:9110",
            "le": "20",
        },
        "value": [1_764_000_000.123, "400"],
    },
    {
        "metric": {
            "__name__": "nydusd_read_latency_microseconds_bucket",
            "image_ref": IMAGE,
            "instance": "10.0.0.5:9110",
            "le": "+Inf",
        },
        "value": [1_764_000_000.123, "1200"],
    },
    {"metric": {"__name__": "nydusd_read_hits"}, "value": [1_764_000_000.1, "NaN?"]},
    {"metric": {"__name__": "nydusd_read_hits"}},
    {"metric": {"__name__": "nydusd_created_created"}, "value": [0, "1"]},
]


def test_vector_names_match_text() -> None:
    families = families_from_vector(VECTOR)
    names = {sample.name for sample in families.samples}
    assert names == {
        "nydusd_lifetime_event_counts",
        "snapshotter_cache_blobs_deleted",
        "nydusd_read_latency_microseconds_bucket",
    }


def test_vector_values_and_labels() -> None:
    families = families_from_vector(VECTOR)
    running = families.values("nydusd_lifetime_event_counts")
    assert running == [
        PromSample(
            "nydusd_lifetime_event_counts",
            (
                ("instance", "10.0.0.5:9110"),
                ("job", "nydus-snapshotter"),
                ("nydusd_event", "RUNNING"),
            ),
            3.0,
        )
    ]
    histogram = families.histogram("nydusd_read_latency_microseconds", image_ref=IMAGE)
    assert histogram == [(20.0, 400.0), (math.inf, 1200.0)]


# -- collected ---------------------------------------------------------------------


def gauges(run_time: float, memory: float) -> PromFamilies:
    return PromFamilies(
        [
            PromSample("snapshotter_run_time_seconds", (), run_time),
            PromSample("snapshotter_memory_usage_kilobytes", (), memory),
            PromSample("snapshotter_fd_counts", (), 0.0),
        ]
    )


def test_collected_false_before_first_interval() -> None:
    families = gauges(0.0, 0.0)
    assert families.collected is False
    figures = snapshotter_figures(
        NodeSample("n", 0.0, 0.0, "node", snapshotter=families)
    )
    assert figures is not None
    assert figures.collected is False
    assert figures.memory_kb is None
    assert figures.fds is None


def test_collected_true_after_first_interval() -> None:
    assert gauges(60.0, 0.0).collected is True
    assert gauges(0.0, 2048.0).collected is True


def test_collected_false_without_gauges() -> None:
    assert PromFamilies().collected is False
