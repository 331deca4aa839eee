"""The snapshotter double's Prometheus endpoint inside booted Debian nodes.

nc-node1 (profile healthy-metrics) serves /v1/metrics on :9110 and collects
every 2 s. The values come from the node's live nydusd double over its API
socket and from /proc.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testbed.fixtures import StartPrometheus
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import (
    DEFAULT_SNAPSHOTTER_ROOT,
    METRICS_ADDRESS,
    METRICS_PORT,
    fetch_node_metrics,
    healthy_snapshotter_config,
    reconfigure_snapshotter,
    snapshotter_config,
    wait_until,
)

pytestmark = pytest.mark.nspawn

IMAGE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"
SNAPSHOTTER_LOG = f"{DEFAULT_SNAPSHOTTER_ROOT}/logs/nydus-snapshotter.log"
# Collect interval in seconds, long enough to read the endpoint before the
# first collection.
FIRST_TICK = 10.0


def sample_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of text keyed by (sample name, sorted labels)."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def names(text: str) -> set[str]:
    return {name for name, _ in sample_values(text)}


def test_healthy_node_serves_metrics(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node("nc-node1")
    wait_until(
        lambda: "nydusd_read_hits{" in fetch_node_metrics(node)[1],
        f"{node.name} served no nydusd_read_hits",
        timeout=20,
    )
    status, text = fetch_node_metrics(node)
    assert status == 200
    values = sample_values(text)
    assert values[("nydusd_read_hits", (("image_ref", IMAGE),))] > 0
    assert values[("snapshotter_memory_usage_kilobytes", ())] > 0
    status, body = fetch_node_metrics(node, "/metrics")
    assert status == 404
    assert body == "404 page not found\n"


def wait_for_collection(node: Node) -> str:
    """Return the node's metrics text once the first collection filled it."""
    texts: list[str] = []

    # FS and cache metrics are filled one after the other within a collection,
    # so a read between the two sees only the first.
    def collected() -> bool:
        texts.append(fetch_node_metrics(node)[1])
        wanted = ("nydusd_total_read_bytes{", "nydusd_cache_total_requests{")
        return all(name in texts[-1] for name in wanted)

    timeout = 2.5 * FIRST_TICK
    wait_until(collected, f"{node.name} collected no metrics", timeout=timeout)
    return texts[-1]


def test_metrics_appear_after_first_tick(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node("nc-node2")
    config = snapshotter_config(
        metrics_address=METRICS_ADDRESS, metrics_collect_interval=f"{FIRST_TICK:g}s"
    )
    started = time.monotonic()
    try:
        reconfigure_snapshotter(node, config)
        wait_until(
            lambda: fetch_node_metrics(node)[0] == 200,
            f"{node.name} did not serve /v1/metrics",
            timeout=FIRST_TICK,
        )
        _, before = fetch_node_metrics(node)
        read_at = time.monotonic() - started
        after = wait_for_collection(node)
        log = node.read_file(SNAPSHOTTER_LOG)
    finally:
        reconfigure_snapshotter(node, healthy_snapshotter_config(metrics=False))

    assert read_at < FIRST_TICK, "the first read came too late to precede the tick"
    before_values = sample_values(before)
    assert "nydusd_total_read_bytes" not in names(before)
    assert "nydusd_rss_kilobytes" not in names(before)
    assert "nydusd_read_latency_microseconds_count" not in names(before)
    assert before_values[("snapshotter_memory_usage_kilobytes", ())] == 0
    # The daemon kept running across the restart and was recovered.
    assert before_values[("nydusd_counts", (("version", "v2.4.4"),))] == 1

    after_values = sample_values(after)
    image = (("image_ref", IMAGE),)
    assert after_values[("nydusd_total_read_bytes", image)] > 0
    assert after_values[("nydusd_read_latency_microseconds_count", image)] > 0
    assert after_values[("nydusd_cache_total_requests", image)] > 0
    assert after_values[("snapshotter_memory_usage_kilobytes", ())] > 0
    rss = [v for (name, _), v in after_values.items() if name == "nydusd_rss_kilobytes"]
    assert len(rss) == 1
    assert rss[0] > 0
    assert 'Started metrics HTTP server on \\":9110\\"' in log


def test_prometheus_scrapes_node(
    nspawn_fleet: NspawnFleet, start_prometheus: StartPrometheus
) -> None:
    node = nspawn_fleet.node("nc-node1")
    target = f"{node.address}:{METRICS_PORT}"
    prometheus = start_prometheus([target])
    result = prometheus.wait_for_query(
        f'nydusd_read_hits{{image_ref="{IMAGE}"}}', lambda result: len(result) == 1
    )
    assert result[0]["metric"]["instance"] == target
    assert float(result[0]["value"][1]) > 0
