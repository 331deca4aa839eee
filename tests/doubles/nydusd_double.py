"""Test double of nydusd: serves the nydusd HTTP API and writes nydusd log lines.

It mounts nothing. It models one RAFS instance at the virtual mountpoint "/",
as a nydusd started by nydus-snapshotter for an image has. So the FS metrics
endpoint returns data without an ``id`` query. Response shapes follow nydusd
v2.4.4 (api/src/http*.rs, service/src/daemon.rs, utils/src/metrics.rs).
Python 3.11 standard library only; it runs inside test nodes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time

from unix_http import UnixHTTPServer, set_process_name

PACKAGE_VERSION = "v2.4.4"
# NOTE: a made-up commit hash and build time, not those of the v2.4.4 release.
GIT_COMMIT = "4e908d8c7b6d00000000000000000000000000aa"
BUILD_TIME = "2026-06-24T10:00:00.000000000Z"
PROFILE = "release"
RUSTC = "rustc 1.84.0"

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
FOP_COUNT = 15  # Getattr .. BatchForget
SIZE_BUCKETS = 8  # <1K .. >=1M
LATENCY_BUCKETS = 8  # <=200us .. >2s


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nydusd", add_help=True)
    parser.add_argument("-V", "--version", action="store_true")
    parser.add_argument("-A", "--apisock")
    parser.add_argument("-C", "--config")
    parser.add_argument("--id")
    parser.add_argument("--supervisor")
    parser.add_argument("-l", "--log-level", default="info")
    parser.add_argument("-L", "--log-file")
    parser.add_argument("--log-rotation-size", type=int, default=0)
    parser.add_argument("--rlimit-nofile", type=int, default=1000000)
    parser.add_argument("--upgrade", action="store_true")
    parser.add_argument("-M", "--mountpoint")
    parser.add_argument("--failover-policy", default="resend")
    parser.add_argument("--fuse-threads", "--thread-num", type=int, default=4)
    parser.add_argument("--writable", action="store_true")
    parser.add_argument("-B", "--bootstrap")
    parser.add_argument("-D", "--localfs-dir")
    parser.add_argument("--prefetch-files")
    parser.add_argument("-m", "--virtual-mountpoint", default="/")
    # nydusd takes an optional subcommand, and "fuse" is the same as none.
    if argv and argv[0] in ("fuse", "singleton"):
        argv = argv[1:]
    return parser.parse_args(argv)


def print_version() -> None:
    print(f"Version:  {PACKAGE_VERSION}")
    print(f"Git Commit: {GIT_COMMIT}")
    print(f"Build Time: {BUILD_TIME}")
    print(f"Profile: {PROFILE}")
    print(f"Rustc: {RUSTC}")


class NydusdLog:
    """Writer of nydusd log lines, ``[YYYY-MM-DD HH:MM:SS.ffffff +00:00] LEVEL msg``."""

    def __init__(self, path: str | None) -> None:
        if path and not os.path.splitext(path)[1]:
            path += ".log"  # nydusd appends .log when the name has no extension
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.stream = open(path, "a", buffering=1)  # noqa: SIM115
        else:
            self.stream = sys.stderr
        self.lock = threading.Lock()

    def write(self, level: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") + " +00:00"
        with self.lock:
            self.stream.write(f"[{stamp}] {level} {message}\n")
            self.stream.flush()


class Daemon:
    """State behind the API: daemon info, one RAFS instance and its counters."""

    def __init__(self, args: argparse.Namespace, log: NydusdLog) -> None:
        self.args = args
        self.log = log
        self.started = time.monotonic()
        self.state = "INIT" if args.upgrade else "RUNNING"
        self.log_level = args.log_level
        self.config = self._load_config(args.config)
        mounted = datetime.datetime.now(datetime.UTC)
        self.instances: dict[str, dict[str, object]] = {
            args.virtual_mountpoint: {
                "backend_type": "Rafs",
                "mountpoint": args.virtual_mountpoint,
                "mounted_time": mounted.strftime("%Y-%m-%d %H:%M:%S.%f +00:00:00"),
                "config": self.config,
            }
        }

    @staticmethod
    def _load_config(path: str | None) -> object:
        if not path:
            return None
        try:
            with open(path) as stream:
                config = json.load(stream)
        except (OSError, ValueError):
            return None
        # nydusd blanks registry credentials in the config it reports.
        backend = config.get("device", {}).get("backend", {}).get("config", {})
        for secret in ("auth", "registry_token"):
            if secret in backend:
                backend[secret] = None
        return config

    def info(self, with_backends: bool = True) -> dict[str, object]:
        return {
            "version": {
                "package_ver": PACKAGE_VERSION,
                "git_commit": GIT_COMMIT,
                "build_time": BUILD_TIME,
                "profile": PROFILE,
                "rustc": RUSTC,
            },
            "id": self.args.id,
            "supervisor": self.args.supervisor,
            "state": self.state,
            "backend_collection": self.instances if with_backends else None,
        }

    def fs_metrics(self) -> dict[str, object]:
        # Counters grow with uptime so that repeated reads show progress.
        seconds = int(time.monotonic() - self.started)
        reads = 10 + seconds
        hits = [0] * FOP_COUNT
        hits[0], hits[2], hits[4], hits[9] = 40 + seconds, 12, reads, 30 + seconds
        latency = [reads + 60, 20, 2, 0, 0, 0, 0, 0]
        return {
            "files_account_enabled": False,
            "access_pattern_enabled": False,
            "record_latest_read_files_enabled": False,
            "measure_latency": True,
            "id": self.args.virtual_mountpoint,
            "nr_opens": 3,
            "data_read": reads * 131072,
            "block_count_read": [0, 0, 0, 0, 0, reads, 0, 0],
            "fop_hits": hits,
            "fop_errors": [0] * FOP_COUNT,
            "fop_cumulative_latency_total": [hit * 150 for hit in hits],
            "read_latency_dist": latency,
        }

    def blobcache_metrics(self) -> dict[str, object]:
        seconds = int(time.monotonic() - self.started)
        return {
            "underlying_files": [],
            "store_path": "/var/lib/nydus/cache",
            "partial_hits": 0,
            "whole_hits": 5 + seconds,
            "total": 10 + seconds,
            "entries_count": 10,
            "prefetch_data_amount": 1048576,
            "prefetch_requests_count": 4,
            "prefetch_workers": 8,
            "prefetch_unmerged_chunks": 0,
            "prefetch_cumulative_time_millis": 120,
            "prefetch_begin_time_secs": 0,
            "prefetch_begin_time_millis": 0,
            "prefetch_end_time_secs": 0,
            "prefetch_end_time_millis": 0,
            "buffered_backend_size": 0,
            "data_all_ready": False,
        }

    def backend_metrics(self) -> dict[str, object]:
        seconds = int(time.monotonic() - self.started)
        return {
            "backend_type": "registry",
            "read_count": 10 + seconds,
            "read_errors": 0,
            "read_amount_total": (10 + seconds) * 131072,
            "read_cumulative_latency_millis_total": 300,
            "read_cumulative_latency_millis_dist": [0] * SIZE_BUCKETS,
            "read_count_block_size_dist": [0] * SIZE_BUCKETS,
            "read_latency_sizes_dist": [[0] * LATENCY_BUCKETS] * SIZE_BUCKETS,
        }


def error_body(message: str) -> dict[str, str]:
    return {"code": "UNDEFINED", "message": message}


def build_routes(daemon: Daemon) -> dict:  # type: ignore[type-arg]
    def metrics_for(query: dict[str, str], build: object) -> tuple[int, object]:
        requested_id = query.get("id")
        if requested_id is not None and requested_id not in daemon.instances:
            return 404, error_body("GlobalMetrics(Metrics(Stats(NoCounter)))")
        return 200, build()  # type: ignore[operator]

    def set_log_level(query: dict[str, str], body: bytes) -> tuple[int, object]:
        try:
            level = json.loads(body)["log_level"]
        except (ValueError, KeyError, TypeError) as error:
            return 400, error_body(f"ParseBody({error})")
        if str(level).lower() not in ("off", "error", "warn", "info", "debug", "trace"):
            return 500, error_body("Configure(ResponsePayloadType)")
        daemon.log_level = str(level).lower()
        daemon.log.write("INFO", f"set log level to {daemon.log_level}")
        return 204, None

    def exit_daemon(query: dict[str, str], body: bytes) -> tuple[int, object]:
        # nydusd sends the response first, then sends itself SIGTERM.
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return 204, None

    return {
        ("GET", "/api/v1/daemon"): lambda q, b: (200, daemon.info()),
        ("PUT", "/api/v1/daemon"): set_log_level,
        ("GET", "/api/v2/daemon"): lambda q, b: (200, daemon.info(False)),
        ("PUT", "/api/v2/daemon"): set_log_level,
        ("GET", "/api/v1/daemon/events"): lambda q, b: (
            200,
            {
                "max_errors": 500,
                "total_errors": 0,
                "max_size": 51200,
                "total_size": 0,
                "errors": [],
            },
        ),
        ("PUT", "/api/v1/daemon/exit"): exit_daemon,
        ("GET", "/api/v1/metrics"): lambda q, b: metrics_for(q, daemon.fs_metrics),
        ("GET", "/api/v1/metrics/blobcache"): lambda q, b: (
            200,
            daemon.blobcache_metrics(),
        ),
        ("GET", "/api/v1/metrics/backend"): lambda q, b: (
            200,
            daemon.backend_metrics(),
        ),
        # nydusd returns 204 when no FUSE request is in flight.
        ("GET", "/api/v1/metrics/inflight"): lambda q, b: (204, None),
    }


def fallback(method: str, path: str) -> tuple[int, object]:
    known_paths = {
        "/api/v1/daemon",
        "/api/v2/daemon",
        "/api/v1/daemon/events",
        "/api/v1/daemon/exit",
        "/api/v1/metrics",
        "/api/v1/metrics/blobcache",
        "/api/v1/metrics/backend",
        "/api/v1/metrics/inflight",
    }
    if path in known_paths:
        return 400, error_body("BadRequest")
    return 404, error_body("NoRoute")


def main(argv: list[str]) -> int:
    set_process_name("nydusd")
    args = parse_args(argv)
    if args.version:
        print_version()
        return 0

    log = NydusdLog(args.log_file)
    if not args.mountpoint:
        log.write("ERROR", "Mountpoint must be provided for FUSE server!")
        return 1
    if not 1 <= args.fuse_threads <= 1024:
        log.write(
            "ERROR", f"invalid thread number {args.fuse_threads}, valid range: [1-1024]"
        )
        return 1
    # nydusd formats these values with Rust's Debug, which adds double quotes.
    log.write(
        "INFO",
        f'Program Version: {PACKAGE_VERSION}, Git Commit: "{GIT_COMMIT}", '
        f'Build Time: "{BUILD_TIME}", Profile: "{PROFILE}", Rustc Version: "{RUSTC}"',
    )

    os.makedirs(args.mountpoint, exist_ok=True)
    daemon = Daemon(args, log)
    # Block the stop signals before any thread starts, so every thread
    # inherits the mask and sigwait() below receives them. A Python signal
    # handler could run late: the kernel may deliver the signal to a
    # server thread while the main thread sleeps in a lock wait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server = None
    if args.apisock:
        server = UnixHTTPServer(
            args.apisock, build_routes(daemon), fallback, "Nydus API"
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log.write("INFO", "Fuse daemon started!")
    signal.sigwait(STOP_SIGNALS)

    if server is not None:
        server.shutdown()
        server.server_close()
        try:
            os.unlink(args.apisock)
        except FileNotFoundError:
            pass
    log.write("INFO", "nydusd quits")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
