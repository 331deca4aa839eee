"""Test double of containerd-nydus-grpc (nydus-snapshotter v0.15.15).

It follows the real program's start sequence: flags, config.toml, config
validation in the real order, logger, root directory, nydusd configuration,
nydusd processes, the metrics HTTP server, system controller and the gRPC
socket. Messages and the logrus text format match the real ones, so log
parsers and the console's diagnosis see real-looking input. With
``[metrics] address`` set it serves Prometheus text at /v1/metrics and
collects the values from its nydusd daemons every ``collect_interval``
(snapshotter_metrics_collector.py).

What it does not do: the gRPC socket answers every call as an empty
Snapshots.List (see serve_grpc_connection), and no image is ever mounted.
Python 3.11 standard library only; it runs inside test nodes as
nydus-snapshotter.service.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from typing import Any

from metrics_http import TCPHTTPServer, metrics_handler
from snapshotter_metrics import (
    DEFAULT_COLLECT_INTERVAL,
    METRICS_PATH,
    MetricsRegistry,
    parse_go_duration,
)
from snapshotter_metrics_collector import (
    DaemonSource,
    MetricsCollector,
    record_daemon_died,
    record_daemon_recovered,
    record_daemon_running,
)
from unix_http import (
    UnixHTTPServer,
    remove_socket,
    request_json,
    set_process_name,
)

VERSION = "v0.15.15"
# NOTE: a made-up revision hash and build time, not those of the v0.15.15 release.
REVISION = "c2f1c15a3b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f"
GO_VERSION = "go1.25.1"
BUILD_TIME = "2026-04-17T09:30:00Z"

DEFAULT_CONFIG: dict[str, Any] = {
    "version": 1,
    "root": "/var/lib/containerd/io.containerd.snapshotter.v1.nydus",
    "address": "/run/containerd-nydus/containerd-nydus-grpc.sock",
    "daemon_mode": "multiple",
    "cleanup_on_close": False,
    "system": {"enable": False, "address": "/run/containerd-nydus/system.sock"},
    "daemon": {
        "nydusd_config": "/etc/nydus/nydusd-config.json",
        "nydusd_path": "",
        "fs_driver": "fusedev",
        "recover_policy": "restart",
        "threads_number": 0,
        "log_rotation_size": 100,
        "failover_policy": "resend",
    },
    "log": {"log_to_stdout": False, "level": "info", "dir": ""},
    "remote": {"mirrors_config": {"dir": ""}},
    "metrics": {"address": "", "collect_interval": DEFAULT_COLLECT_INTERVAL},
    "cache_manager": {"cache_dir": ""},
}

FS_DRIVERS = ("fusedev", "fscache", "blockdev", "proxy", "nodev")
RECOVER_POLICIES = ("none", "restart", "failover")
FAILOVER_POLICIES = ("none", "resend", "flush")
DAEMON_MODES = ("dedicated", "multiple", "shared", "none")
MAX_ROOT_PATH_LEN = 70  # <root>/socket/<id>/api.sock must fit in sun_path
MAX_THREADS = 1024
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
IMAGE_REFERENCE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"


class StartError(Exception):
    """A fatal start error; the message is the real program's error chain."""


# --- logrus text format --------------------------------------------------------


def logrus_time() -> str:
    """Return the current UTC time as RFC 3339 with exactly 9 fractional digits."""
    now = time.time_ns()
    seconds = datetime.datetime.fromtimestamp(now // 10**9, datetime.UTC)
    return seconds.strftime("%Y-%m-%dT%H:%M:%S") + f".{now % 10**9:09d}Z"


def logrus_value(value: str) -> str:
    """Quote value the way logrus's TextFormatter does when it needs quoting."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
    if value and all(char in safe for char in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def logrus_line(level: str, message: str, **fields: str) -> str:
    parts = [
        f'time="{logrus_time()}"',
        f"level={level}",
        f"msg={logrus_value(message)}",
    ]
    parts += [f"{key}={logrus_value(str(value))}" for key, value in fields.items()]
    return " ".join(parts) + "\n"


class Logger:
    """Writes logrus lines to the snapshotter log file or to stdout."""

    def __init__(self) -> None:
        self.stream: Any = None
        self.lock = threading.Lock()

    def setup(self, to_stdout: bool, directory: str) -> None:
        if to_stdout:
            self.stream = sys.stdout
            return
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "nydus-snapshotter.log")
        self.stream = open(path, "a", buffering=1)  # noqa: SIM115

    def log(self, level: str, message: str, **fields: str) -> None:
        if self.stream is None:
            return
        with self.lock:
            self.stream.write(logrus_line(level, message, **fields))
            self.stream.flush()


LOG = Logger()


# --- configuration -------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="containerd-nydus-grpc")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--config")
    parser.add_argument("--root")
    parser.add_argument("--address")
    parser.add_argument("--nydusd-config", "--config-path", dest="nydusd_config")
    parser.add_argument("--nydusd")
    parser.add_argument("--daemon-mode")
    parser.add_argument("--fs-driver")
    parser.add_argument("--log-level")
    # Like the real bool flag: "--log-to-stdout" or "--log-to-stdout=false".
    parser.add_argument("--log-to-stdout", nargs="?", const="true")
    # Only in the double: how many nydusd processes to keep running, because
    # no image is ever mounted to start them the real way.
    parser.add_argument("--daemons", type=int, default=1)
    return parser.parse_args(argv)


def merge_defaults(config: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Fill keys that are missing or empty in config from defaults, recursively."""
    for key, default in defaults.items():
        if isinstance(default, dict):
            section = config.setdefault(key, {})
            if isinstance(section, dict):
                merge_defaults(section, default)
        elif config.get(key) in (None, "", 0):
            config[key] = default


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as stream:
                config = tomllib.load(stream)
        except FileNotFoundError:
            raise StartError(
                f'failed to load snapshotter configuration from "{args.config}": '
                f"open {args.config}: no such file or directory"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise StartError(
                f'failed to load snapshotter configuration from "{args.config}": '
                f"{error}"
            ) from None
        version = config.get("version", 0)
        if version != 1:
            raise StartError(
                f'failed to load snapshotter configuration from "{args.config}": '
                f"unsupported configuration version {version}"
            )
    overrides = {
        ("root",): args.root,
        ("address",): args.address,
        ("daemon", "nydusd_config"): args.nydusd_config,
        ("daemon", "nydusd_path"): args.nydusd,
        ("daemon_mode",): args.daemon_mode,
        ("daemon", "fs_driver"): args.fs_driver,
        ("log", "level"): args.log_level,
    }
    for path, value in overrides.items():
        if value:
            target = config
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
    if args.log_to_stdout is not None:
        config.setdefault("log", {})["log_to_stdout"] = args.log_to_stdout == "true"
    merge_defaults(config, DEFAULT_CONFIG)
    return config


def validate(config: dict[str, Any]) -> None:
    """Check config in the order config.ValidateConfig does and raise the first error.

    NOTE: the signature-key and keychain-conflict checks of the real program
    are not modelled.
    """
    root = config["root"]
    daemon = config["daemon"]
    problem = None
    if not root:
        problem = "empty root directory"
    elif len(root.encode()) > MAX_ROOT_PATH_LEN:
        problem = (
            f"root directory path is too long: {len(root.encode())} bytes, "
            f"max is {MAX_ROOT_PATH_LEN} bytes"
        )
    elif daemon["fs_driver"] not in FS_DRIVERS:
        problem = "invalid filesystem driver"
    elif daemon["recover_policy"] not in RECOVER_POLICIES:
        problem = "invalid recover policy"
    elif int(daemon["threads_number"]) > MAX_THREADS:
        problem = (
            f"nydusd worker thread number {daemon['threads_number']} is too big, "
            f"max {MAX_THREADS}"
        )
    elif daemon["failover_policy"] not in FAILOVER_POLICIES:
        problem = "invalid failover policy"
    else:
        mirrors = config["remote"]["mirrors_config"]["dir"]
        if mirrors and not os.path.isdir(mirrors):
            problem = f"mirrors config directory {mirrors} does not exist"
    if problem:
        raise StartError(f"failed to validate configurations: {problem}")


def load_nydusd_config(path: str) -> dict[str, Any]:
    prefix = "failed to initialize snapshotter: load daemon configuration"
    try:
        with open(path) as stream:
            text = stream.read()
    except FileNotFoundError:
        raise StartError(
            f"{prefix}: read FUSE configuration file {path}: "
            f"open {path}: no such file or directory"
        ) from None
    except OSError as error:
        raise StartError(
            f"{prefix}: read FUSE configuration file {path}: {error}"
        ) from None
    try:
        return json.loads(text)
    except ValueError as error:
        # NOTE: the wording after the path is the double's, not Go's JSON error.
        raise StartError(
            f"{prefix}: unmarshal FUSE configuration file {path}: {error}"
        ) from None


# --- nydusd processes ----------------------------------------------------------


def new_daemon_id() -> str:
    """Return a 20-character id in the style of the xid ids the real program uses."""
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    return "".join(secrets.choice(alphabet) for _ in range(20))


class NydusDaemon:
    """One nydusd process the snapshotter started or recovered."""

    def __init__(self, daemon_id: str, root: str, log_dir: str) -> None:
        self.id = daemon_id
        self.api_socket = os.path.join(root, "socket", daemon_id, "api.sock")
        self.supervisor_path = os.path.join(
            root, "supervisor", daemon_id, "supervisor.sock"
        )
        self.mountpoint = os.path.join(root, "mnt", daemon_id)
        self.config_path = os.path.join(root, "config", daemon_id, "config.json")
        self.log_file = os.path.join(log_dir, daemon_id, "nydusd.log")
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.started = time.monotonic()
        # nydusd's package version from its daemon info, for nydusd_counts.
        self.version = ""

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            with open(f"/proc/{self.pid}/stat") as stream:
                return stream.read().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def info(self) -> dict[str, Any] | None:
        """Return nydusd's GET /api/v1/daemon object, or None if it is unreachable."""
        try:
            status, info = request_json(self.api_socket, "GET", "/api/v1/daemon")
        except (OSError, ValueError):
            return None
        if status != 200 or not isinstance(info, dict):
            return None
        return info

    def state(self) -> str | None:
        info = self.info()
        if info is None:
            return None
        version = info.get("version")
        if isinstance(version, dict):
            self.version = str(version.get("package_ver", ""))
        return str(info.get("state"))

    def metrics_source(self) -> DaemonSource:
        return DaemonSource(self.id, self.pid, self.api_socket, IMAGE_REFERENCE)


class Manager:
    """Supervisor of the nydusd processes: start, recovery, restart and status."""

    def __init__(self, config: dict[str, Any], nydusd_config: dict[str, Any] | None):
        self.config = config
        self.root = config["root"]
        self.log_dir = config["log"]["dir"] or os.path.join(self.root, "logs")
        self.nydusd_config = nydusd_config or {}
        self.nydusd_path = config["daemon"]["nydusd_path"] or "/usr/local/bin/nydusd"
        self.daemons: dict[str, NydusDaemon] = {}
        self.lock = threading.Lock()
        # Daemon events go to the registry whether or not metrics are served.
        self.metrics = MetricsRegistry()

    def recover(self) -> None:
        """Adopt nydusd processes left running by a previous snapshotter.

        The unit's KillMode=process leaves them running across restarts, as
        with the real program. Stale sockets of dead daemons are removed.
        """
        socket_dir = os.path.join(self.root, "socket")
        if not os.path.isdir(socket_dir):
            return
        for daemon_id in sorted(os.listdir(socket_dir)):
            daemon = NydusDaemon(daemon_id, self.root, self.log_dir)
            daemon.pid = find_nydusd_pid(daemon_id)
            if daemon.pid and daemon.state() == "RUNNING":
                LOG.log("info", f"Recovering daemon {daemon_id}, pid {daemon.pid}")
                self.daemons[daemon_id] = daemon
                record_daemon_recovered(
                    self.metrics, daemon.metrics_source(), daemon.version
                )
            else:
                LOG.log("warning", f"Daemon {daemon_id} is dead, removing its socket")
                try:
                    os.unlink(daemon.api_socket)
                except OSError:
                    pass

    def command(self, daemon: NydusDaemon) -> list[str]:
        daemon_config = self.config["daemon"]
        argv = [self.nydusd_path, "fuse"]
        if int(daemon_config["threads_number"]) > 0:
            argv += ["--thread-num", str(daemon_config["threads_number"])]
        argv += [
            "--config", daemon.config_path,
            "--mountpoint", daemon.mountpoint,
            "--apisock", daemon.api_socket,
            "--log-level", self.config["log"]["level"],
            "--log-rotation-size", str(daemon_config["log_rotation_size"]),
            "--id", daemon.id,
            "--supervisor", daemon.supervisor_path,
            "--failover-policy", daemon_config["failover_policy"],
            "--log-file", daemon.log_file,
        ]  # fmt: skip
        return argv

    def start(self, daemon: NydusDaemon) -> None:
        for path in (daemon.api_socket, daemon.supervisor_path, daemon.config_path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(daemon.config_path, "w") as stream:
            json.dump(self.nydusd_config, stream, indent=2)
        argv = self.command(daemon)
        LOG.log("info", "nydusd command: " + " ".join(argv))
        # stdout and stderr pass through to the snapshotter's, as in the
        # real program. KillMode=process leaves the child running on stop.
        daemon.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        daemon.pid = daemon.process.pid
        daemon.started = time.monotonic()
        for _ in range(20):
            if daemon.state() == "RUNNING":
                record_daemon_running(
                    self.metrics, daemon.metrics_source(), daemon.version
                )
                break
            time.sleep(0.1)
        else:
            LOG.log("error", f"Nydusd {daemon.id} probably not started")
        self.daemons[daemon.id] = daemon

    def ensure_daemons(self, count: int) -> None:
        mode = self.config["daemon_mode"]
        if mode == "none":
            return
        if mode == "shared":
            ids = ["shared_daemon"]
        else:
            ids = list(self.daemons)[:count]
            ids += [new_daemon_id() for _ in range(count - len(ids))]
        for daemon_id in ids:
            if daemon_id not in self.daemons:
                self.start(NydusDaemon(daemon_id, self.root, self.log_dir))

    def monitor(self, stop: threading.Event) -> None:
        LOG.log("info", "Run daemons monitor...")
        while not stop.wait(1.0):
            with self.lock:
                for daemon in list(self.daemons.values()):
                    if daemon.alive():
                        continue
                    LOG.log(
                        "warning",
                        f"Daemon {daemon.id} died! socket path {daemon.api_socket}",
                    )
                    record_daemon_died(self.metrics, daemon.version)
                    del self.daemons[daemon.id]
                    if self.config["daemon"]["recover_policy"] == "restart":
                        LOG.log("info", f"Restart daemon {daemon.id}")
                        self.start(NydusDaemon(daemon.id, self.root, self.log_dir))

    def metrics_sources(self) -> list[DaemonSource]:
        with self.lock:
            return [daemon.metrics_source() for daemon in self.daemons.values()]

    def daemon_objects(self) -> list[dict[str, Any]]:
        """Return the daemon objects of GET /api/v1/daemons."""
        objects = []
        with self.lock:
            daemons = list(self.daemons.values())
        for index, daemon in enumerate(daemons, start=1):
            read_bytes = 0
            try:
                status, metrics = request_json(
                    daemon.api_socket, "GET", "/api/v1/metrics"
                )
                if status == 200 and isinstance(metrics, dict):
                    read_bytes = int(metrics.get("data_read", 0))
            except OSError:
                pass
            snapshot_id = str(index)
            objects.append(
                {
                    "id": daemon.id,
                    "pid": daemon.pid,
                    "api_socket": daemon.api_socket,
                    "supervisor_path": daemon.supervisor_path,
                    "reference": 1,
                    "mountpoint": daemon.mountpoint,
                    "startup_cpu_utilization": 0.0,
                    "memory_rss_kb": float(rss_kib(daemon.pid)),
                    "read_data_kb": read_bytes / 1024,
                    "instances": {
                        snapshot_id: {
                            "snapshot_id": snapshot_id,
                            "snapshot_dir": os.path.join(
                                self.root, "snapshots", snapshot_id
                            ),
                            "mountpoint": daemon.mountpoint,
                            "image_id": IMAGE_REFERENCE,
                        }
                    },
                }
            )
        return objects

    def backend(self, daemon_id: str) -> tuple[int, object]:
        if daemon_id not in self.daemons:
            return 404, {"code": "Unknown", "message": "not found"}
        backend = self.nydusd_config.get("device", {}).get("backend", {})
        config = dict(backend.get("config", {}))
        return 200, {"type": backend.get("type", ""), "config": config}


def find_nydusd_pid(daemon_id: str) -> int:
    """Return the PID of the nydusd started with ``--id daemon_id``, or 0."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                argv = stream.read().split(b"\0")
        except OSError:
            continue
        if b"--id" in argv and daemon_id.encode() in argv and b"--apisock" in argv:
            return int(entry)
    return 0


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def system_controller(manager: Manager, address: str) -> UnixHTTPServer:
    """Serve the system controller API on address (JSON over HTTP/1.1)."""

    def fallback(method: str, path: str) -> tuple[int, object]:
        parts = path.strip("/").split("/")
        if (
            len(parts) == 5
            and parts[:3] == ["api", "v1", "daemons"]
            and parts[4] == "backend"
        ):
            if method != "GET":
                return 405, ""
            return manager.backend(parts[3])
        if path in ("/api/v1/daemons", "/api/v1/daemons/records"):
            return 405, ""
        # gorilla/mux's default not-found reply.
        return 404, "404 page not found\n"

    routes = {
        ("GET", "/api/v1/daemons"): lambda q, b: (200, manager.daemon_objects()),
        ("GET", "/api/v1/daemons/records"): lambda q, b: (
            501,
            {"code": "Unknown", "message": "not implemented"},
        ),
        ("PUT", "/api/v1/prefetch"): lambda q, b: (200, None),
    }
    return UnixHTTPServer(address, routes, fallback, "nydus-snapshotter")


# --- metrics -------------------------------------------------------------------


def start_metrics(
    manager: Manager, config: dict[str, Any], stop: threading.Event
) -> TCPHTTPServer:
    """Serve the Prometheus endpoint on [metrics] address and start collecting.

    NOTE: the wording of the collect_interval error is the double's own.
    """
    address = config["metrics"]["address"]
    interval_text = str(config["metrics"]["collect_interval"])
    try:
        interval = parse_go_duration(interval_text)
    except ValueError as error:
        raise StartError(
            f"failed to initialize snapshotter: parse metrics collect interval: {error}"
        ) from None
    if interval <= 0:
        raise StartError(
            "failed to initialize snapshotter: non-positive metrics collect "
            f'interval "{interval_text}"'
        )
    prefix = (
        "failed to initialize snapshotter: start metrics HTTP server: "
        f"metrics server listener, addr={address}"
    )
    try:
        server = TCPHTTPServer(
            address,
            {METRICS_PATH: metrics_handler(manager.metrics.render)},
            on_error=lambda error: LOG.log(
                "error", f"Metrics server fails to serve {address}: {error}"
            ),
        )
    except ValueError as error:
        raise StartError(f"{prefix}: listen tcp: {error}") from None
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise StartError(f"{prefix}: listen tcp {address}: bind: {reason}") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache_dir = config["cache_manager"]["cache_dir"] or os.path.join(
        config["root"], "cache"
    )
    collector = MetricsCollector(
        manager.metrics, manager.metrics_sources, cache_dir, interval, LOG.log
    )
    threading.Thread(target=collector.run, args=(stop,), daemon=True).start()
    LOG.log("info", f'Started metrics HTTP server on "{address}"')
    return server


# --- gRPC socket ---------------------------------------------------------------


def listen_grpc(address: str) -> socket.socket:
    """Listen on the gRPC socket path. accept_and_close() serves it."""
    os.makedirs(os.path.dirname(address), mode=0o700, exist_ok=True)
    try:
        remove_socket(address)
    except FileExistsError as error:
        raise StartError(f"failed to initialize snapshotter: {error}") from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address)
    except OSError as error:
        raise StartError(f'listen socket "{address}": {error}') from None
    listener.listen(64)
    return listener


def accept_and_close(listener: socket.socket) -> None:
    """Serve every connection of the gRPC socket in a thread of its own."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        threading.Thread(
            target=serve_grpc_connection, args=(connection,), daemon=True
        ).start()


# gRPC runs over HTTP/2 (RFC 9113). The double speaks just enough of it to
# end every call with grpc-status 0 and no message. For the one call it is
# meant for, Snapshots.List (`ctr snapshots --snapshotter nydus ls` through
# containerd's proxy plugin), that is the answer of a snapshotter with no
# snapshots. It does not decode the request headers (HPACK), so every other
# call gets the same answer, which a client of a unary call rejects.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_SETTINGS, H2_PING, H2_GOAWAY = 0x0, 0x1, 0x4, 0x6, 0x7
H2_END_STREAM, H2_ACK, H2_END_HEADERS = 0x1, 0x1, 0x4


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([kind, flags])
    return header + (stream & 0x7FFFFFFF).to_bytes(4, "big") + payload


def hpack_literal(name: str, value: str) -> bytes:
    """A header field as a literal without indexing, no Huffman coding."""
    return bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


GRPC_RESPONSE_HEADERS = b"\x88" + hpack_literal("content-type", "application/grpc")
GRPC_TRAILERS = hpack_literal("grpc-status", "0") + hpack_literal("grpc-message", "")


def read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_grpc_connection(connection: socket.socket) -> None:
    try:
        with connection:
            if read_exactly(connection, len(H2_PREFACE)) != H2_PREFACE:
                return
            connection.sendall(h2_frame(H2_SETTINGS, 0, 0))
            while (header := read_exactly(connection, 9)) is not None:
                size = int.from_bytes(header[:3], "big")
                kind, flags = header[3], header[4]
                stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                payload = read_exactly(connection, size) if size else b""
                if payload is None or kind == H2_GOAWAY:
                    return
                connection.sendall(h2_reply(kind, flags, stream, payload))
    except OSError:
        return


def h2_reply(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    if kind == H2_SETTINGS and not flags & H2_ACK:
        return h2_frame(H2_SETTINGS, H2_ACK, 0)
    if kind == H2_PING and not flags & H2_ACK:
        return h2_frame(H2_PING, H2_ACK, 0, payload)
    if kind in (H2_DATA, H2_HEADERS) and flags & H2_END_STREAM and stream:
        return h2_frame(
            H2_HEADERS, H2_END_HEADERS, stream, GRPC_RESPONSE_HEADERS
        ) + h2_frame(H2_HEADERS, H2_END_HEADERS | H2_END_STREAM, stream, GRPC_TRAILERS)
    return b""


# --- main ----------------------------------------------------------------------


def print_version() -> None:
    print(f"Version:    {VERSION}")
    print(f"Revision:   {REVISION}")
    print(f"Go version: {GO_VERSION}")
    print(f"Build time: {BUILD_TIME}")


def fatal(error: StartError) -> int:
    line = logrus_line("fatal", "failed to start nydus-snapshotter", error=str(error))
    # Before the logger is set up only stderr gets the line, and afterwards
    # the configured log file too. stderr reaches the journal under systemd.
    sys.stderr.write(line)
    sys.stderr.flush()
    if LOG.stream is not None and LOG.stream is not sys.stdout:
        with LOG.lock:
            LOG.stream.write(line)
    return 1


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    validate(config)
    root = config["root"]
    LOG.setup(config["log"]["log_to_stdout"], config["log"]["dir"] or f"{root}/logs")

    driver = config["daemon"]["fs_driver"]
    mode = config["daemon_mode"]
    if mode not in DAEMON_MODES:
        raise StartError(
            f"failed to process configurations: invalid daemon mode {mode}"
        )
    if mode == "multiple":
        mode = "dedicated"
    if driver == "fscache" and mode != "shared":
        LOG.log(
            "info", "fscache driver only supports 'shared' mode, override daemon mode"
        )
        mode = "shared"
    config["daemon_mode"] = mode
    LOG.log(
        "info",
        f"Start nydus-snapshotter. Version: {VERSION}, PID: {os.getpid()}, "
        f"FsDriver: {driver}, DaemonMode: {mode}",
    )
    os.makedirs(root, mode=0o700, exist_ok=True)

    nydusd_config = None
    if driver in ("fusedev", "fscache"):
        nydusd_config = load_nydusd_config(config["daemon"]["nydusd_config"])
    for directory in ("snapshots", "cache", "mnt", "socket", "config"):
        os.makedirs(os.path.join(root, directory), mode=0o700, exist_ok=True)

    # Block the stop signals before any thread starts, so every thread
    # inherits the mask and sigwait() below receives them. A Python signal
    # handler could run late: the kernel may deliver the signal to a
    # server thread while the main thread sleeps in a lock wait. The
    # nydusd children inherit the mask too, and they also use sigwait().
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    manager = Manager(config, nydusd_config)
    stop = threading.Event()
    if driver == "fusedev":
        manager.recover()
        manager.ensure_daemons(args.daemons)
        threading.Thread(target=manager.monitor, args=(stop,), daemon=True).start()

    metrics_server = None
    if config["metrics"]["address"]:
        metrics_server = start_metrics(manager, config, stop)

    servers = []
    if config["system"]["enable"]:
        address = config["system"]["address"]
        servers.append((system_controller(manager, address), address))
        LOG.log("info", f'Started system controller on "{address}"')
    for server, _ in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()

    grpc_address = config["address"]
    listener = listen_grpc(grpc_address)
    threading.Thread(target=accept_and_close, args=(listener,), daemon=True).start()

    signal.sigwait(STOP_SIGNALS)
    stop.set()

    LOG.log("info", "Shutting down nydus-snapshotter!")
    listener.close()
    for path in [grpc_address] + [address for _, address in servers]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for server, _ in servers:
        server.shutdown()
        server.server_close()
    if metrics_server is not None:
        metrics_server.shutdown()
        metrics_server.server_close()
    return 0


def main(argv: list[str]) -> int:
    set_process_name("containerd-nydus-grpc")
    args = parse_args(argv)
    if args.version:
        print_version()
        return 0
    try:
        return run(args)
    except StartError as error:
        return fatal(error)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
