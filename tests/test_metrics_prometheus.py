"""Prometheus mode against a real Prometheus server scraping exporter doubles.

Each exporter double serves the snapshotter's metric families on 127.0.0.1;
Debian's Prometheus scrapes them every second. The console then reads every
node from Prometheus with one query, matching series to nodes by `instance`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.loopback import free_ports
from testbed.metrics_double import SnapshotterMetricsDouble

from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory, NodeSpec
from nydus_console.metrics.service import FleetMetrics

IMAGE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"


@pytest.fixture
def exporters(tmp_path: Path) -> Iterator[list[SnapshotterMetricsDouble]]:
    doubles = [
        SnapshotterMetricsDouble(tmp_path / f"exporter-{n}", preset="node")
        for n in (1, 2)
    ]
    for double in doubles:
        double.start()
    try:
        yield doubles
    finally:
        for double in doubles:
            double.stop()


def inventory_for(instances: dict[str, str]) -> Inventory:
    # The nodes are never contacted in Prometheus mode; their instance labels
    # are the exporters' loopback targets.
    nodes = [
        NodeSpec(name=name, host="127.0.0.1", port=1, prometheus_instance=instance)
        for name, instance in instances.items()
    ]
    return Inventory(nodes=nodes, source="test")


async def poll(url: str, instances: dict[str, str]) -> FleetMetrics:
    fleet = Fleet(inventory_for(instances))
    metrics = FleetMetrics(fleet, url)
    await metrics.poll()
    return metrics


async def test_each_node_gets_its_own_series(
    exporters: list[SnapshotterMetricsDouble], start_prometheus: Any
) -> None:
    first, second = exporters
    second.set("snapshotter_memory_usage_kilobytes", 51200)
    prometheus = start_prometheus([first.target, second.target])
    prometheus.wait_for_value(
        f'snapshotter_memory_usage_kilobytes{{instance="{second.target}"}}', 51200
    )
    metrics = await poll(prometheus.url, {"a": first.target, "b": second.target})
    try:
        a, b = metrics.figures["a"], metrics.figures["b"]
        assert a.snapshotter is not None
        assert b.snapshotter is not None
        assert a.snapshotter.memory_kb == 26900
        assert b.snapshotter.memory_kb == 51200
        assert metrics.samples["a"].daemons[0].images == [IMAGE]
        assert a.daemons[metrics.samples["a"].daemons[0].id].rss_kb == 19864
    finally:
        await metrics.close()


async def test_counter_reset_gives_no_negative_rate(
    exporters: list[SnapshotterMetricsDouble], start_prometheus: Any
) -> None:
    exporter = exporters[0]
    prometheus = start_prometheus([exporter.target])
    metrics = await poll(prometheus.url, {"a": exporter.target})
    try:
        for value in (3_000_000, 9_000_000, 1_000):
            exporter.set("nydusd_total_read_bytes", value, image_ref=IMAGE)
            prometheus.wait_for_value("nydusd_total_read_bytes", value)
            figures = (await metrics.poll(["a"]))[0]
            daemon = next(iter(figures.daemons.values()))
            if value == 9_000_000:
                assert daemon.read_bps is not None
                assert daemon.read_bps > 0
        assert daemon.read_bps is None
        assert daemon.restarted
    finally:
        await metrics.close()


async def test_unknown_instance_is_named(
    exporters: list[SnapshotterMetricsDouble], start_prometheus: Any
) -> None:
    prometheus = start_prometheus([exporters[0].target])
    metrics = await poll(prometheus.url, {"ghost": "127.0.0.1:1"})
    try:
        error = metrics.figures["ghost"].error
        assert "no nydus series with instance '127.0.0.1:1'" in error
        assert "prometheus_instance" in error
    finally:
        await metrics.close()


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".state"),
    )
    return subprocess.run(
        [sys.executable, "-m", "nydus_console", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_reads_prometheus(
    exporters: list[SnapshotterMetricsDouble],
    start_prometheus: Any,
    tmp_path: Path,
) -> None:
    exporter = exporters[0]
    prometheus = start_prometheus([exporter.target])
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[metrics]\nprometheus_url = "{prometheus.url}"\n\n'
        f'[nodes.a]\naddress = "127.0.0.1"\nport = 1\n'
        f'prometheus_instance = "{exporter.target}"\n'
    )
    result = run_cli(
        "metrics",
        "--inventory",
        str(inventory),
        "--interval",
        "0",
        "--json",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    node = json.loads(result.stdout)["nodes"][0]
    assert node["source"] == "prometheus"
    assert node["snapshotter"]["fds"] == 9
    assert node["daemons"][0]["images"] == [IMAGE]


def test_cli_names_a_prometheus_that_does_not_answer(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    result = run_cli(
        "metrics",
        "--node",
        "127.0.0.1:1",
        "--prometheus",
        url,
        "--interval",
        "0",
        home=tmp_path,
    )
    assert result.returncode == 3
    assert f"Prometheus at {url} did not respond" in result.stdout


@pytest.mark.parametrize(
    "url", ["prometheus:9090", "http://host:port", "http://[::1", "http://h:99999"]
)
def test_cli_rejects_a_url_that_is_not_http(url: str, tmp_path: Path) -> None:
    result = run_cli("metrics", "--prometheus", url, home=tmp_path)
    assert result.returncode == 64
    assert f"{url!r} is not an http:// or https:// URL" in result.stderr
