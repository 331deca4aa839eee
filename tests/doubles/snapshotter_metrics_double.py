"""Test double of nydus-snapshotter's Prometheus endpoint alone, driven over HTTP.

It serves GET /v1/metrics on a loopback address exactly as the snapshotter
double inside the test nodes does (same families, same Go text format),
but its values come from test code instead of live nydusd daemons:

    GET  /control/state      the current series (JSON, see snapshotter_metrics)
    PUT  /control/state      replace every series with the JSON body
    POST /control/set        {"name", "labels", "value"}: set a gauge or counter
    POST /control/inc        {"name", "labels", "value"=1}: add to a series
    POST /control/observe    {"name", "labels", "value"}: one histogram observation
    POST /control/histogram  {"name", "labels", "bucket_counts", "sum"} or
                             {"name", "labels", "counters"} (nydusd's per-bucket
                             counters, turned into a histogram as the
                             snapshotter does)
    POST /control/remove     {"name"?, "labels"?}: drop matching labelled series
    POST /control/restart    back to a just-started snapshotter: labelled series
                             gone, the others 0, so counters drop

Mutations return 204, /control/remove returns {"removed": N}, and invalid
requests return 400 with {"error": message}. Once listening it prints
``Started metrics HTTP server on "HOST:PORT"`` on stdout. It stops on
SIGTERM or SIGINT. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from metrics_http import (
    Request,
    Response,
    TCPHTTPServer,
    metrics_handler,
)
from snapshotter_metrics import (
    BLOCK_SIZE_BUCKETS,
    METRICS_PATH,
    READ_LATENCY_BUCKETS,
    MetricsRegistry,
    family_spec,
    histogram_from_counters,
)

JSON_TYPE = "application/json"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
IMAGE_REFERENCE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"
DAEMON_ID = "cu1kq3hbn3bs73a0ed2g"
NYDUSD_VERSION = "v2.4.4"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="snapshotter_metrics_double.py",
        description="Serve nydus-snapshotter's metrics with values set over HTTP.",
    )
    parser.add_argument(
        "--address", default="127.0.0.1", help="loopback address to listen on"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port; 0 picks a free one"
    )
    parser.add_argument("--state", help="JSON file with the initial series")
    parser.add_argument(
        "--preset",
        choices=("started", "node"),
        default="started",
        help="initial series: a snapshotter just started (default), or one "
        "running daemon serving one image after the first collection",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=180.0,
        help="seconds until a TTL gauge series that was not set again disappears",
    )
    return parser.parse_args(argv)


def node_preset(registry: MetricsRegistry) -> None:
    """Fill registry like a snapshotter with one RUNNING nydusd after a collection."""
    image = {"image_ref": IMAGE_REFERENCE}
    registry.set("nydusd_lifetime_event_counts", 1, {"nydusd_event": "RUNNING"})
    registry.set("nydusd_counts", 1, {"version": NYDUSD_VERSION})
    registry.set(
        "nydusd_image_info", 1, {"daemon_id": DAEMON_ID, "image_ref": IMAGE_REFERENCE}
    )
    registry.set("nydusd_rss_kilobytes", 19864, {"daemon_id": DAEMON_ID})

    registry.set("nydusd_total_read_bytes", 1572864, image)
    registry.set("nydusd_read_hits", 12, image)
    registry.set("nydusd_read_errors", 0, image)
    for name, value in {
        "nydusd_cache_partial_hits": 0,
        "nydusd_cache_whole_hits": 7,
        "nydusd_cache_total_requests": 12,
        "nydusd_cache_entries_count": 10,
        "nydusd_cache_prefetch_data_bytes": 1048576,
        "nydusd_cache_prefetch_requests_count": 4,
        "nydusd_cache_prefetch_workers": 8,
        "nydusd_cache_prefetch_unmerged_chunks": 0,
        "nydusd_cache_prefetch_cumulative_time_millis": 120,
        "nydusd_cache_prefetch_duration_millis": 0,
        "nydusd_cache_buffered_backend_size": 0,
    }.items():
        registry.set(name, value, image)

    blocks = histogram_from_counters(BLOCK_SIZE_BUCKETS, [0, 0, 0, 0, 0, 12, 0, 0])
    registry.set_histogram("nydusd_cumulative_read_block_bytes", *blocks, image)
    latency = histogram_from_counters(READ_LATENCY_BUCKETS, [72, 20, 2, 0, 0, 0, 0, 0])
    registry.set_histogram("nydusd_read_latency_microseconds", *latency, image)

    for name, value in {
        "snapshotter_cache_usage_kilobytes": 4,
        "snapshotter_cpu_usage_percentage": 0.5,
        "snapshotter_cpu_user_time_seconds": 0.01,
        "snapshotter_memory_usage_kilobytes": 26900,
        "snapshotter_fd_counts": 9,
        "snapshotter_run_time_seconds": 61.3,
        "snapshotter_thread_counts": 6,
    }.items():
        registry.set(name, value)


# --- control endpoint ------------------------------------------------------------


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as error:
        raise ValueError(f"request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


def _set_histogram(registry: MetricsRegistry, body: dict[str, Any]) -> None:
    name = body["name"]
    labels = body.get("labels")
    if "counters" in body:
        buckets = family_spec(name).buckets
        counts, total = histogram_from_counters(buckets, body["counters"])
        registry.set_histogram(name, counts, total, labels)
    else:
        registry.set_histogram(name, body["bucket_counts"], body["sum"], labels)


Change = Callable[[dict[str, Any]], Any]


def control_routes(registry: MetricsRegistry) -> dict[str, dict[str, Change]]:
    """Return the change function of each method of each control path.

    A change gets the JSON request body and returns a JSON response body,
    or None for 204.
    """
    return {
        "/control/state": {
            "GET": lambda body: registry.state(),
            "PUT": lambda body: registry.load_state(body),
        },
        "/control/set": {
            "POST": lambda body: registry.set(
                body["name"], body["value"], body.get("labels")
            )
        },
        "/control/inc": {
            "POST": lambda body: registry.inc(
                body["name"], body.get("value", 1), body.get("labels")
            )
        },
        "/control/observe": {
            "POST": lambda body: registry.observe(
                body["name"], body["value"], body.get("labels")
            )
        },
        "/control/histogram": {"POST": lambda body: _set_histogram(registry, body)},
        "/control/remove": {
            "POST": lambda body: {
                "removed": registry.remove(body.get("name"), body.get("labels"))
            }
        },
        "/control/restart": {"POST": lambda body: registry.reset()},
    }


def control_handler(methods: dict[str, Change]) -> Callable[[Request], Response]:
    def handle(request: Request) -> Response:
        change = methods.get(request.method)
        if change is None:
            allowed = ", ".join(sorted(methods))
            return _json_response(405, {"error": f"method not allowed; use {allowed}"})
        try:
            result = change(_json_body(request))
        except KeyError as error:
            return _json_response(400, {"error": f"missing field {error}"})
        except (ValueError, TypeError) as error:
            return _json_response(400, {"error": str(error)})
        if result is None:
            return Response(204, JSON_TYPE, b"")
        return _json_response(200, result)

    return handle


def _json_response(status: int, payload: object) -> Response:
    return Response(status, JSON_TYPE, json.dumps(payload).encode())


# --- main ----------------------------------------------------------------------


def build_registry(args: argparse.Namespace) -> MetricsRegistry:
    registry = MetricsRegistry(ttl=args.ttl)
    if args.preset == "node":
        node_preset(registry)
    if args.state:
        with open(args.state) as stream:
            registry.load_state(json.load(stream))
    return registry


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not ipaddress.ip_address(args.address).is_loopback:
        print(f"--address {args.address} is not a loopback address", file=sys.stderr)
        return 2
    try:
        registry = build_registry(args)
    except (OSError, ValueError, KeyError) as error:
        print(f"invalid initial state: {error}", file=sys.stderr)
        return 2
    routes = {METRICS_PATH: metrics_handler(registry.render)}
    for path, methods in control_routes(registry).items():
        routes[path] = control_handler(methods)
    host = f"[{args.address}]" if ":" in args.address else args.address
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server = TCPHTTPServer(
        f"{host}:{args.port}",
        routes,
        on_error=lambda error: print(f"request failed: {error!r}", file=sys.stderr),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f'Started metrics HTTP server on "{host}:{server.port}"', flush=True)
    signal.sigwait(STOP_SIGNALS)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
