"""The doubles of nydus-snapshotter's Prometheus endpoint: text format and control.

The text is checked against prometheus_client's parser and against what Go's
client_golang writes. The exporter double runs as its own process.
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testbed.metrics_double import SnapshotterMetricsDouble, http_request

# The doubles import each other as top-level modules, as they do in the nodes.
sys.path.insert(0, str(Path(__file__).parent / "doubles"))

import metrics_http  # noqa: E402
import snapshotter_metrics  # noqa: E402
from prometheus_text import format_go_float  # noqa: E402
from snapshotter_metrics import (  # noqa: E402
    FAMILIES,
    READ_LATENCY_BUCKETS,
    MetricsRegistry,
    histogram_from_counters,
    parse_go_duration,
)

IMAGE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"
UNLABELLED = sorted(
    spec.name
    for spec in FAMILIES.values()
    if not spec.labels and spec.type != "histogram"
)


def parse(text: str) -> dict[str, Any]:
    """Return prometheus_client's families of text by name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_names(text: str) -> list[str]:
    """Return the sorted distinct sample names of text."""
    return sorted({name for name, _ in sample_values(text)})


def sample_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of text keyed by (sample name, sorted labels)."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = sample.value
    return values


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- Go's number format ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "go_text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.5, "0.5"),
        (1024.0, "1024"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1572864.0, "1.572864e+06"),
        (123456789.0, "1.23456789e+08"),
        (0.0001, "0.0001"),
        (1e-5, "1e-05"),
        (2.5e-7, "2.5e-07"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_go_float_format(value: float, go_text: str) -> None:
    assert format_go_float(value) == go_text


# --- registry and text -------------------------------------------------------------


def test_started_registry_has_unlabelled_families_only() -> None:
    values = sample_values(MetricsRegistry().render())
    assert sorted(name for name, _ in values) == UNLABELLED
    assert set(values.values()) == {0.0}


def test_text_matches_go_layout() -> None:
    registry = MetricsRegistry()
    registry.set("nydusd_read_hits", 12, {"image_ref": "b"})
    registry.set("nydusd_read_hits", 3, {"image_ref": "a"})
    text = registry.render()
    assert text.endswith("\n")
    assert (
        "# HELP nydusd_read_hits Total number of successful read operations.\n"
        "# TYPE nydusd_read_hits gauge\n"
        'nydusd_read_hits{image_ref="a"} 3\n'
        'nydusd_read_hits{image_ref="b"} 12\n'
    ) in text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)


def test_counter_has_no_total_suffix() -> None:
    registry = MetricsRegistry()
    registry.inc("nydusd_lifetime_event_counts", 2, {"nydusd_event": "RUNNING"})
    text = registry.render()
    assert "# TYPE nydusd_lifetime_event_counts counter\n" in text
    assert 'nydusd_lifetime_event_counts{nydusd_event="RUNNING"} 2\n' in text
    family = parse(text)["nydusd_lifetime_event_counts"]
    assert family.type == "counter"
    assert family.samples[0].value == 2


def test_const_histogram_from_nydusd_counters() -> None:
    registry = MetricsRegistry()
    counts, total = histogram_from_counters(
        READ_LATENCY_BUCKETS, [1, 2, 0, 0, 0, 0, 0, 3]
    )
    registry.set_histogram(
        "nydusd_read_latency_microseconds", counts, total, {"image_ref": IMAGE}
    )
    text = registry.render()
    assert (
        f'nydusd_read_latency_microseconds_bucket{{image_ref="{IMAGE}",le="1"}} 1\n'
        in text
    )
    values = sample_values(text)
    image = ("image_ref", IMAGE)
    buckets = {
        labels[1][1]: value
        for (name, labels), value in values.items()
        if name == "nydusd_read_latency_microseconds_bucket"
    }
    assert buckets == {
        "1": 1, "20": 3, "50": 3, "100": 3, "500": 3, "1000": 3, "2000": 3,
        "4000": 6, "+Inf": 6,
    }  # fmt: skip
    assert values[("nydusd_read_latency_microseconds_count", (image,))] == 6
    assert values[("nydusd_read_latency_microseconds_sum", (image,))] == 12041


def test_observe_counts_above_largest_bucket() -> None:
    registry = MetricsRegistry()
    name = "snapshotter_snapshot_operation_elapsed_milliseconds"
    labels = {"snapshot_operation": "PREPARE"}
    for value in (0.2, 7.5, 2500.0):
        registry.observe(name, value, labels)
    values = sample_values(registry.render())
    prepare = ("snapshot_operation", "PREPARE")
    assert values[(f"{name}_bucket", (("le", "0.5"), prepare))] == 1
    assert values[(f"{name}_bucket", (("le", "10"), prepare))] == 2
    assert values[(f"{name}_bucket", (("le", "1000"), prepare))] == 2
    assert values[(f"{name}_bucket", (("le", "+Inf"), prepare))] == 3
    assert values[(f"{name}_sum", (prepare,))] == pytest.approx(2507.7)


def test_label_values_are_escaped() -> None:
    registry = MetricsRegistry()
    awkward = 'reg.io/a\\b:"v1"\nx'
    registry.set("nydusd_read_hits", 1, {"image_ref": awkward})
    text = registry.render()
    assert 'image_ref="reg.io/a\\\\b:\\"v1\\"\\nx"' in text
    (sample,) = parse(text)["nydusd_read_hits"].samples
    assert sample.labels == {"image_ref": awkward}


def test_ttl_series_expire() -> None:
    clock = FakeClock()
    registry = MetricsRegistry(ttl=180, clock=clock)
    registry.set("nydusd_read_hits", 1, {"image_ref": IMAGE})
    registry.set("nydusd_counts", 1, {"version": "v2.4.4"})
    clock.now += 179
    assert "nydusd_read_hits{" in registry.render()
    clock.now += 2
    text = registry.render()
    assert "nydusd_read_hits" not in text
    assert 'nydusd_counts{version="v2.4.4"} 1' in text


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.set("nydusd_nope", 1), "unknown metric family"),
        (lambda r: r.set("nydusd_read_hits", 1), "takes the labels"),
        (lambda r: r.set("nydusd_read_hits", 1, {"image": "x"}), "takes the labels"),
        (
            lambda r: r.inc(
                "nydusd_lifetime_event_counts", -1, {"nydusd_event": "DIED"}
            ),
            "cannot decrease",
        ),
        (lambda r: r.remove("nydusd_hung_io_counts"), "always present"),
        (
            lambda r: r.set_histogram(
                "nydusd_read_latency_microseconds", [1, 2], 3, {"image_ref": "x"}
            ),
            "needs 9 bucket counts",
        ),
        (
            lambda r: r.set("nydusd_read_latency_microseconds", 1, {"image_ref": "x"}),
            "is a histogram",
        ),
    ],
)
def test_registry_rejects_invalid_changes(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(MetricsRegistry())


def test_remove_by_image_ref_across_families() -> None:
    registry = MetricsRegistry()
    for image in ("a", "b"):
        registry.set("nydusd_read_hits", 1, {"image_ref": image})
        registry.set("nydusd_image_info", 1, {"daemon_id": "d", "image_ref": image})
    assert registry.remove(labels={"image_ref": "a"}) == 2
    text = registry.render()
    assert 'image_ref="a"' not in text
    assert text.count('image_ref="b"') == 2


def test_state_round_trip() -> None:
    registry = MetricsRegistry()
    registry.set("nydusd_read_hits", 7, {"image_ref": IMAGE})
    registry.observe(
        "snapshotter_snapshot_operation_elapsed_milliseconds",
        3,
        {"snapshot_operation": "MOUNTS"},
    )
    registry.set("snapshotter_fd_counts", 9)
    copy = MetricsRegistry()
    copy.load_state(json.loads(json.dumps(registry.state())))
    assert copy.render() == registry.render()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60),
        ("5s", 5),
        ("500ms", 0.5),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("2m3.5s", 123.5),
        ("0", 0),
        ("750us", 0.00075),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", 'time: missing unit in duration "5"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("", 'time: invalid duration ""'),
        ("soon", 'time: invalid duration "soon"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_go_duration(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":9110", ("", 9110)),
        ("127.0.0.1:9110", ("127.0.0.1", 9110)),
        ("[::1]:9110", ("::1", 9110)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert metrics_http.split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("9110", "missing port in address"),
        ("::1:9110", "too many colons"),
        ("127.0.0.1:http", 'invalid port "http"'),
    ],
)
def test_split_host_port_errors(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics_http.split_host_port(address)


# --- HTTP ----------------------------------------------------------------------


class _CountingWriter:
    def __init__(self, inner: Any, counts: list[int]) -> None:
        self.inner = inner
        self.counts = counts

    def write(self, data: bytes) -> int:
        self.counts.append(len(data))
        return int(self.inner.write(data))

    def flush(self) -> None:
        self.inner.flush()


@pytest.fixture
def counting_server() -> Iterator[tuple[metrics_http.TCPHTTPServer, list[int]]]:
    """A metrics server on 127.0.0.1 that records the size of every write."""
    writes: list[int] = []

    class CountingHandler(metrics_http._Handler):
        def setup(self) -> None:
            super().setup()
            self.wfile = _CountingWriter(self.wfile, writes)  # type: ignore[assignment]

    registry = MetricsRegistry()
    routes = {
        snapshotter_metrics.METRICS_PATH: metrics_http.metrics_handler(registry.render)
    }
    server = metrics_http.TCPHTTPServer("127.0.0.1:0", routes)
    server.RequestHandlerClass = CountingHandler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server, writes
    finally:
        server.shutdown()
        server.server_close()


def test_response_is_one_write(
    counting_server: tuple[metrics_http.TCPHTTPServer, list[int]],
) -> None:
    server, writes = counting_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /v1/metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head
    assert writes == [len(response)]
    assert body.startswith(b"# HELP ")


def test_double_serves_parseable_text(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
) -> None:
    request = urllib.request.Request(snapshotter_metrics_double.url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert sample_names(text) == UNLABELLED


def test_double_gzips_when_asked(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
) -> None:
    request = urllib.request.Request(
        snapshotter_metrics_double.url, headers={"Accept-Encoding": "gzip"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        encoding = response.headers["Content-Encoding"]
        body = response.read()
    assert encoding == "gzip"
    assert gzip.decompress(body).decode() == snapshotter_metrics_double.metrics_text()


def test_double_404_elsewhere(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
) -> None:
    for path in ("/", "/metrics", "/v1/metrics/x"):
        status, body = http_request(f"http://{snapshotter_metrics_double.target}{path}")
        assert status == 404, path
        assert body == b"404 page not found\n", path


def test_double_control_changes_series(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
) -> None:
    double = snapshotter_metrics_double
    double.set("nydusd_read_hits", 12, image_ref="a")
    double.set("nydusd_read_hits", 4, image_ref="b")
    double.inc("nydusd_lifetime_event_counts", nydusd_event="RUNNING")
    double.inc("nydusd_lifetime_event_counts", 2, nydusd_event="RUNNING")
    double.set_histogram(
        "nydusd_cumulative_read_block_bytes",
        counters=[0, 0, 0, 0, 0, 12, 0, 0],
        image_ref="a",
    )
    text = double.metrics_text()
    values = sample_values(text)
    assert values[("nydusd_read_hits", (("image_ref", "a"),))] == 12
    assert values[("nydusd_read_hits", (("image_ref", "b"),))] == 4
    # prometheus_client names counter samples *_total, so check the raw line.
    assert 'nydusd_lifetime_event_counts{nydusd_event="RUNNING"} 3\n' in text
    block_sum = ("nydusd_cumulative_read_block_bytes_sum", (("image_ref", "a"),))
    assert values[block_sum] == 12 * 512

    assert double.remove(image_ref="a") == 2
    values = sample_values(double.metrics_text())
    assert ("nydusd_read_hits", (("image_ref", "a"),)) not in values
    assert values[("nydusd_read_hits", (("image_ref", "b"),))] == 4

    double.restart()
    assert sample_names(double.metrics_text()) == UNLABELLED


def test_double_rejects_invalid_control(
    snapshotter_metrics_double: SnapshotterMetricsDouble,
) -> None:
    with pytest.raises(ValueError, match="takes the labels"):
        snapshotter_metrics_double.set("nydusd_read_hits", 1)
    base = f"http://{snapshotter_metrics_double.target}/control"
    status, body = http_request(f"{base}/set", "POST", {"value": 1})
    assert status == 400
    assert json.loads(body) == {"error": "missing field 'name'"}
    status, _ = http_request(f"{base}/set")
    assert status == 405


def test_double_node_preset_and_state_file(tmp_path: Path) -> None:
    state = {"samples": [{"name": "nydusd_hung_io_counts", "labels": {}, "value": 2}]}
    with SnapshotterMetricsDouble(tmp_path / "node", preset="node") as double:
        families = parse(double.metrics_text())
        (hits,) = families["nydusd_read_hits"].samples
        assert hits.labels == {"image_ref": IMAGE}
        assert families["nydusd_read_latency_microseconds"].type == "histogram"
    with SnapshotterMetricsDouble(tmp_path / "state", state=state) as double:
        values = sample_values(double.metrics_text())
        assert values[("nydusd_hung_io_counts", ())] == 2
        assert double.state()["histograms"] == []
