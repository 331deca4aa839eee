"""Reading nydusd and the system controller over unix sockets on this machine.

The nydusd double runs as a subprocess, as it does inside test nodes. Error
responses that the double never sends come from ScriptedApi, a small HTTP/1.1
double in this module that returns the response a test sets for each path.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from doubles.unix_http import REQUEST_LOG_PATH, request_json

from nydus_console.inventory import Inventory, NodePaths, NodeSpec
from nydus_console.metrics.api import ApiError, SocketClient
from nydus_console.metrics.collect import (
    INFO_MAX_AGE,
    SYSTEM_OFF_NOTE,
    MetricsTargets,
    NodeMetricsReader,
)
from nydus_console.metrics.model import NodeSample
from nydus_console.metricscli import run_metrics
from nydus_console.transport.local import LocalTransport

DOUBLES = Path(__file__).parent / "doubles"
NODE = "local-test"
IMAGE = "ghcr.io/dragonflyoss/image-service/nginx:nydus-latest"
OTHER_IMAGE = "docker.io/library/redis:7-nydus"
ACCESS_KEY_ID = "AKIAPLANTEDKEYID0001"
SECRET = "planted-S3-secret-4f9c2a7e"
# A nydusd v2 config with an S3 backend. nydusd reports it unmasked in the
# backend_collection of GET /api/v1/daemon.
S3_CONFIG = {
    "version": 2,
    "id": "",
    "backend": {
        "type": "s3",
        "s3": {
            "endpoint": "127.0.0.1:9000",
            "scheme": "http",
            "bucket_name": "layers",
            "region": "local",
            "access_key_id": ACCESS_KEY_ID,
            "access_key_secret": SECRET,
        },
    },
    "cache": {"type": "blobcache", "filecache": {"work_dir": "/var/cache/nydus"}},
}
FOP_COUNT = 15
READ = 4


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp whose socket paths fit the 108-byte sun_path."""
    path = Path(tempfile.mkdtemp(prefix="nc-metrics-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for_socket(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the nydusd double exited with {process.returncode}")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                time.sleep(0.05)
    raise TimeoutError(f"the nydusd double did not listen on {path} within 10 s")


@dataclass
class NydusdDouble:
    """tests/doubles/nydusd_double.py run as a subprocess on this machine."""

    root: Path
    daemon_id: str = "d1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_socket(self) -> Path:
        return self.root / "socket" / self.daemon_id / "api.sock"

    def start(self) -> None:
        config = self.root / "config" / self.daemon_id / "config.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(S3_CONFIG))
        argv = [
            sys.executable,
            "-B",
            str(DOUBLES / "nydusd_double.py"),
            "fuse",
            "--apisock",
            str(self.api_socket),
            "--mountpoint",
            str(self.root / "mnt" / self.daemon_id),
            "--id",
            self.daemon_id,
            "--config",
            str(config),
            "--log-file",
            str(self.root / "logs" / self.daemon_id / "nydusd.log"),
        ]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        wait_for_socket(self.api_socket, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def requests(self) -> list[dict[str, Any]]:
        status, log = request_json(str(self.api_socket), "GET", REQUEST_LOG_PATH)
        assert status == 200
        assert isinstance(log, list)
        return log


@pytest.fixture
def nydusd(short_dir: Path) -> Iterator[NydusdDouble]:
    double = NydusdDouble(short_dir)
    double.start()
    try:
        yield double
    finally:
        double.stop()


def local_reader(targets: MetricsTargets) -> NodeMetricsReader:
    return NodeMetricsReader(LocalTransport(NODE), targets)


async def read_once(targets: MetricsTargets) -> NodeSample:
    reader = local_reader(targets)
    try:
        return await reader.read()
    finally:
        await reader.aclose()


# -- the nydusd double ---------------------------------------------------------------


async def test_reads_nydusd_double(nydusd: NydusdDouble) -> None:
    sample = await read_once(MetricsTargets(api_sockets=(str(nydusd.api_socket),)))
    assert sample.node == NODE
    assert sample.error == ""
    assert sample.problems == []
    assert SYSTEM_OFF_NOTE in sample.notes
    (daemon,) = sample.daemons
    assert daemon.errors == {}
    assert daemon.id == "d1"
    assert daemon.api_socket == str(nydusd.api_socket)
    assert daemon.state == "RUNNING"
    assert daemon.version == "v2.4.4"
    assert daemon.backend_type == "s3"
    # Without the system controller there is no PID, RSS or image.
    assert daemon.pid == 0
    assert daemon.rss_kb is None
    assert daemon.images == []
    assert daemon.fs is not None
    assert daemon.fs["data_read"] > 0
    assert len(daemon.fs["fop_hits"]) == FOP_COUNT
    assert daemon.fs["fop_hits"][READ] > 0
    assert len(daemon.fs["read_latency_dist"]) == 8
    assert daemon.backend is not None
    assert daemon.backend["read_count"] > 0
    assert daemon.cache is not None
    assert daemon.cache["total"] > 0
    assert daemon.cache["data_all_ready"] is False
    # The double returns 204 No Content: nothing in flight.
    assert daemon.inflight == []


async def test_requests_are_gets_of_api(nydusd: NydusdDouble) -> None:
    await read_once(MetricsTargets(api_sockets=(str(nydusd.api_socket),)))
    log = nydusd.requests()
    assert {entry["method"] for entry in log} == {"GET"}
    assert sorted(entry["path"] for entry in log) == [
        "/api/v1/daemon",
        "/api/v1/metrics",
        "/api/v1/metrics/backend",
        "/api/v1/metrics/blobcache",
        "/api/v1/metrics/inflight",
    ]


async def test_config_secret_not_kept(nydusd: NydusdDouble) -> None:
    status, info = request_json(str(nydusd.api_socket), "GET", "/api/v1/daemon")
    assert status == 200
    assert SECRET in json.dumps(info), "the double must serve the planted secret"
    sample = await read_once(MetricsTargets(api_sockets=(str(nydusd.api_socket),)))
    stored = json.dumps([daemon.as_json() for daemon in sample.daemons])
    assert sample.daemons[0].state == "RUNNING"
    assert SECRET not in stored
    assert ACCESS_KEY_ID not in stored


async def test_restart_between_polls(nydusd: NydusdDouble) -> None:
    reader = local_reader(MetricsTargets(api_sockets=(str(nydusd.api_socket),)))
    try:
        first = await reader.read()
        assert first.daemons[0].errors == {}
        # The reader keeps its connections alive, so the second poll starts on
        # connections whose server is gone.
        nydusd.stop()
        nydusd.start()
        second = await reader.read()
    finally:
        await reader.aclose()
    (daemon,) = second.daemons
    assert daemon.errors == {}
    assert daemon.state == "RUNNING"
    assert daemon.fs is not None


async def test_missing_socket_named(short_dir: Path) -> None:
    missing = short_dir / "socket" / "gone" / "api.sock"
    sample = await read_once(MetricsTargets(api_sockets=(str(missing),)))
    (daemon,) = sample.daemons
    assert daemon.id == "gone"
    assert daemon.state == ""
    assert daemon.fs is None
    error = daemon.errors["/api/v1/daemon"]
    assert str(missing) in error
    assert "no such socket" in error
    # The metrics endpoints are not tried once the socket itself failed.
    assert list(daemon.errors) == ["/api/v1/daemon"]


async def test_stale_socket_refused(short_dir: Path) -> None:
    stale = short_dir / "socket" / "dead" / "api.sock"
    stale.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale))
    sample = await read_once(MetricsTargets(api_sockets=(str(stale),)))
    error = sample.daemons[0].errors["/api/v1/daemon"]
    assert str(stale) in error
    assert "refused" in error


# -- ScriptedApi ---------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted response. Status 0 closes the connection without one."""

    status: int
    body: bytes = b""

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode())


DROP = Reply(0)
Route = Callable[[dict[str, str]], Reply]


def nydusd_error(message: str, status: int) -> Reply:
    """An error as nydusd sends it: the Rust Debug form of the error in JSON."""
    return Reply.json({"code": "UNDEFINED", "message": message}, status)


NO_ROUTE = nydusd_error("NoRoute", 404)


@dataclass
class ScriptedApi:
    """An HTTP/1.1 double on a unix socket that responds to each path from `routes`.

    It keeps connections alive like nydusd does and records every request.
    With `drop_reused` above 0 it closes that many connections, without a
    response, when a second request arrives on them, as a daemon that
    restarted between two requests does.
    """

    path: Path
    routes: dict[str, Route]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    connections: int = 0
    drop_reused: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                while (await reader.readline()).strip():
                    pass  # headers: a GET has no body to read
                target = request_line.decode().split(" ")[1]
                url = urlsplit(target)
                query = dict(parse_qsl(url.query))
                self.requests.append((url.path, query))
                if served and self.drop_reused:
                    self.drop_reused -= 1
                    break
                route = self.routes.get(url.path)
                reply = route(query) if route is not None else NO_ROUTE
                if reply.status == 0:
                    break
                writer.write(render(reply))
                await writer.drain()
                served += 1
        finally:
            writer.close()


def render(reply: Reply) -> bytes:
    reason = HTTPStatus(reply.status).phrase
    head = f"HTTP/1.1 {reply.status} {reason}\r\nServer: Nydus API\r\n"
    if reply.status != 204:
        head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(reply.body)}\r\n"
    return head.encode() + b"\r\n" + (b"" if reply.status == 204 else reply.body)


@pytest.fixture
async def scripted(short_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[ScriptedApi] = []

    async def start(name: str, routes: dict[str, Route]) -> ScriptedApi:
        api = ScriptedApi(short_dir / "socket" / name / "api.sock", routes)
        await api.start()
        started.append(api)
        return api

    yield start
    for api in started:
        await api.close()


def daemon_info(*mountpoints: str, state: str = "RUNNING") -> dict[str, Any]:
    return {
        "version": {"package_ver": "v2.4.4", "git_commit": "0" * 40},
        "id": "d1",
        "supervisor": None,
        "state": state,
        "backend_collection": {
            mountpoint: {
                "backend_type": "Rafs",
                "mountpoint": mountpoint,
                "mounted_time": "2026-01-01 00:00:00.000000 +00:00:00",
                "config": S3_CONFIG,
            }
            for mountpoint in mountpoints
        },
    }


def fs_metrics(data_read: int, reads: int, latency: list[int]) -> dict[str, Any]:
    hits = [0] * FOP_COUNT
    hits[READ] = reads
    return {
        "measure_latency": True,
        "id": "",
        "data_read": data_read,
        "fop_hits": hits,
        "fop_errors": [0] * FOP_COUNT,
        "fop_cumulative_latency_total": [hit * 100 for hit in hits],
        "read_latency_dist": latency,
    }


def by_id(answers: dict[str, dict[str, Any]]) -> Route:
    """Return a route that responds NoCounter unless the request has a known id.

    nydusd does this on its metrics endpoints when it runs several instances.
    """

    def route(query: dict[str, str]) -> Reply:
        requested_id = query.get("id")
        if requested_id is None or requested_id not in answers:
            return nydusd_error("GlobalMetrics(Metrics(Stats(NoCounter)))", 404)
        return Reply.json(answers[requested_id])

    return route


def healthy_routes(**overrides: Route) -> dict[str, Route]:
    routes: dict[str, Route] = {
        "/api/v1/daemon": lambda q: Reply.json(daemon_info("/")),
        "/api/v1/metrics": lambda q: Reply.json(fs_metrics(4096, 2, [2] + [0] * 7)),
        "/api/v1/metrics/backend": lambda q: Reply.json(
            {"backend_type": "registry", "read_count": 1, "read_errors": 0}
        ),
        "/api/v1/metrics/blobcache": lambda q: Reply.json(
            {"partial_hits": 0, "whole_hits": 1, "total": 2, "data_all_ready": True}
        ),
        "/api/v1/metrics/inflight": lambda q: Reply(204),
    }
    routes.update(overrides)
    return routes


async def read_scripted(api: ScriptedApi) -> NodeSample:
    return await read_once(MetricsTargets(api_sockets=(str(api.path),)))


async def test_no_counter_sums_instances(scripted: Callable[..., Any]) -> None:
    api = await scripted(
        "d1",
        healthy_routes(
            **{
                "/api/v1/daemon": lambda q: Reply.json(daemon_info("/a", "/b")),
                "/api/v1/metrics": by_id(
                    {
                        "/a": fs_metrics(1_000, 10, [5, 0, 0, 0, 0, 0, 0, 0]),
                        "/b": fs_metrics(3_000, 30, [0, 2, 0, 0, 0, 0, 0, 1]),
                    }
                ),
                "/api/v1/metrics/backend": by_id(
                    {
                        "/a": {"backend_type": "s3", "read_count": 3, "read_errors": 1},
                        "/b": {"backend_type": "s3", "read_count": 4, "read_errors": 0},
                    }
                ),
            }
        ),
    )
    sample = await read_scripted(api)
    (daemon,) = sample.daemons
    assert daemon.errors == {}
    assert daemon.fs is not None
    assert daemon.fs["data_read"] == 4_000
    assert daemon.fs["fop_hits"][READ] == 40
    assert daemon.fs["read_latency_dist"] == [5, 2, 0, 0, 0, 0, 0, 1]
    assert daemon.backend == {"read_count": 7, "read_errors": 1}
    assert daemon.backend_type == "s3"
    for path in ("/api/v1/metrics", "/api/v1/metrics/backend"):
        queries = [query for requested, query in api.requests if requested == path]
        assert queries == [{}, {"id": "/a"}, {"id": "/b"}]


async def test_no_counter_sums_blobcache(scripted: Callable[..., Any]) -> None:
    api = await scripted(
        "d1",
        healthy_routes(
            **{
                "/api/v1/daemon": lambda q: Reply.json(daemon_info("/a", "/b")),
                "/api/v1/metrics/blobcache": by_id(
                    {
                        "/a": {
                            "partial_hits": 1,
                            "whole_hits": 2,
                            "total": 4,
                            "data_all_ready": True,
                        },
                        "/b": {
                            "partial_hits": 0,
                            "whole_hits": 3,
                            "total": 5,
                            "data_all_ready": False,
                        },
                    }
                ),
            }
        ),
    )
    sample = await read_scripted(api)
    (daemon,) = sample.daemons
    assert "/api/v1/metrics/blobcache" not in daemon.errors
    assert daemon.cache is not None
    assert daemon.cache["partial_hits"] == 1
    assert daemon.cache["whole_hits"] == 5
    assert daemon.cache["total"] == 9
    # The daemon's data is all ready only when every instance's is.
    assert daemon.cache["data_all_ready"] is False


async def test_no_counter_single_instance(scripted: Callable[..., Any]) -> None:
    api = await scripted(
        "d1", healthy_routes(**{"/api/v1/metrics": by_id({"/other": {}})})
    )
    sample = await read_scripted(api)
    (daemon,) = sample.daemons
    error = daemon.errors["/api/v1/metrics"]
    assert "404" in error
    assert "NoCounter" in error
    assert "ask for one by id" in error
    assert daemon.fs is None
    # With one instance there is nothing to sum: no requests by id.
    assert [q for p, q in api.requests if p == "/api/v1/metrics"] == [{}]


async def test_not_ready_503(scripted: Callable[..., Any]) -> None:
    not_ready = nydusd_error("GlobalMetrics(DaemonAbnormal(NotReady))", 503)
    api = await scripted(
        "d1",
        healthy_routes(
            **{
                "/api/v1/daemon": lambda q: Reply.json(daemon_info("/", state="INIT")),
                "/api/v1/metrics": lambda q: not_ready,
            }
        ),
    )
    (daemon,) = (await read_scripted(api)).daemons
    assert daemon.state == "INIT"
    error = daemon.errors["/api/v1/metrics"]
    assert "503" in error
    assert "NotReady" in error
    assert "not ready" in error
    assert daemon.fs is None
    assert daemon.cache is not None, "other endpoints are still read"


async def test_unsupported_501(scripted: Callable[..., Any]) -> None:
    unsupported = nydusd_error("BlobcacheMetrics(DaemonAbnormal(Unsupported))", 501)
    api = await scripted(
        "d1", healthy_routes(**{"/api/v1/metrics/blobcache": lambda q: unsupported})
    )
    (daemon,) = (await read_scripted(api)).daemons
    error = daemon.errors["/api/v1/metrics/blobcache"]
    assert "501" in error
    assert "does not support" in error
    assert daemon.cache is None


async def test_no_route_404(scripted: Callable[..., Any]) -> None:
    routes = healthy_routes()
    del routes["/api/v1/metrics/inflight"]
    api = await scripted("d1", routes)
    (daemon,) = (await read_scripted(api)).daemons
    error = daemon.errors["/api/v1/metrics/inflight"]
    assert "404" in error
    assert "NoRoute" in error
    assert "does not serve that path" in error
    assert daemon.inflight is None


async def test_inflight_204_and_list(scripted: Callable[..., Any]) -> None:
    idle = await scripted("idle", healthy_routes())
    (daemon,) = (await read_scripted(idle)).daemons
    assert daemon.errors == {}
    assert daemon.inflight == []
    requests = [
        {"inode": 12, "opcode": 15, "unique": 881, "timestamp_secs": 1_764_000_000},
        {"inode": 40, "opcode": 1, "unique": 882, "timestamp_secs": 1_764_000_003},
    ]
    busy = await scripted(
        "busy",
        healthy_routes(**{"/api/v1/metrics/inflight": lambda q: Reply.json(requests)}),
    )
    (daemon,) = (await read_scripted(busy)).daemons
    assert daemon.inflight == requests


async def test_non_json_body(scripted: Callable[..., Any]) -> None:
    page = Reply(200, b"<html><body>proxy error</body></html>")
    api = await scripted("d1", healthy_routes(**{"/api/v1/metrics": lambda q: page}))
    (daemon,) = (await read_scripted(api)).daemons
    error = daemon.errors["/api/v1/metrics"]
    assert "no JSON" in error
    assert "<html>" in error
    assert str(api.path) in error
    assert daemon.fs is None


async def test_error_body_not_json(scripted: Callable[..., Any]) -> None:
    broken = Reply(500, b"internal failure\n")
    api = await scripted("d1", healthy_routes(**{"/api/v1/metrics": lambda q: broken}))
    (daemon,) = (await read_scripted(api)).daemons
    error = daemon.errors["/api/v1/metrics"]
    assert "500" in error
    assert "internal failure" in error


async def test_reused_connection_retried(scripted: Callable[..., Any]) -> None:
    info = daemon_info("/")
    api = await scripted("d1", {"/api/v1/daemon": lambda q: Reply.json(info)})
    api.drop_reused = 1
    client = SocketClient(LocalTransport(NODE), str(api.path), "nydusd d1")
    try:
        assert await client.get("/api/v1/daemon") == info
        # The server closes the kept-alive connection on the next request,
        # and the client sends the GET once more on a new one.
        assert await client.get("/api/v1/daemon") == info
    finally:
        await client.aclose()
    assert api.connections == 2
    assert api.paths() == ["/api/v1/daemon"] * 3


async def test_second_close_is_error(scripted: Callable[..., Any]) -> None:
    api = await scripted("d1", {"/api/v1/daemon": lambda q: DROP})
    client = SocketClient(LocalTransport(NODE), str(api.path), "nydusd d1")
    try:
        with pytest.raises(ApiError, match="closed the connection") as caught:
            await client.get("/api/v1/daemon")
    finally:
        await client.aclose()
    assert caught.value.status == 0
    assert str(api.path) in str(caught.value)
    assert api.paths() == ["/api/v1/daemon"] * 2


# -- the system controller -----------------------------------------------------------


def daemon_object(daemon_id: str, api_socket: Path, pid: int) -> dict[str, Any]:
    root = api_socket.parent.parent.parent
    mountpoint = str(root / "mnt" / daemon_id)
    return {
        "id": daemon_id,
        "pid": pid,
        "api_socket": str(api_socket),
        "supervisor_path": str(root / "supervisor" / daemon_id / "supervisor.sock"),
        "reference": 2,
        "mountpoint": mountpoint,
        "startup_cpu_utilization": 3.5,
        "memory_rss_kb": 20480.0,
        "read_data_kb": 512.0,
        "instances": {
            snapshot: {
                "snapshot_id": snapshot,
                "snapshot_dir": str(root / "snapshots" / snapshot),
                "mountpoint": mountpoint,
                "image_id": image,
            }
            for snapshot, image in (("7", IMAGE), ("9", OTHER_IMAGE), ("11", IMAGE))
        },
    }


async def test_daemons_from_system_controller(
    scripted: Callable[..., Any], nydusd: NydusdDouble
) -> None:
    assert nydusd.process is not None
    pid = nydusd.process.pid
    daemons = [daemon_object("d1", nydusd.api_socket, pid)]
    backend = {"type": "s3", "config": S3_CONFIG["backend"]}
    system = await scripted(
        "system",
        {
            "/api/v1/daemons": lambda q: Reply.json(daemons),
            "/api/v1/daemons/d1/backend": lambda q: Reply.json(backend),
            "/api/v1/daemons/records": lambda q: nydusd_error("not implemented", 501),
        },
    )

    reader = local_reader(MetricsTargets(system_socket=str(system.path)))
    try:
        await reader.read()
        sample = await reader.read()
    finally:
        await reader.aclose()

    assert sample.problems == []
    assert SYSTEM_OFF_NOTE not in sample.notes
    (daemon,) = sample.daemons
    assert daemon.id == "d1"
    assert daemon.pid == pid
    assert daemon.rss_kb == 20480.0
    assert daemon.images == sorted({IMAGE, OTHER_IMAGE})
    assert daemon.mountpoint.endswith("/mnt/d1")
    assert daemon.state == "RUNNING"
    assert daemon.errors == {}

    # The backend endpoint returns credentials and records is a stub: the
    # reader asks for the daemon list only.
    assert system.paths() == ["/api/v1/daemons", "/api/v1/daemons"]


async def test_system_socket_missing(short_dir: Path) -> None:
    system = short_dir / "run" / "system.sock"
    sample = await read_once(MetricsTargets(system_socket=str(system)))
    assert sample.daemons == []
    (problem,) = sample.problems
    assert problem.startswith("daemon list unavailable")
    assert str(system) in problem


async def test_system_reply_not_list(scripted: Callable[..., Any]) -> None:
    system = await scripted("system", {"/api/v1/daemons": lambda q: Reply.json({})})
    sample = await read_once(MetricsTargets(system_socket=str(system.path)))
    assert sample.daemons == []
    assert sample.problems == ["the system controller answered no daemon list"]


# -- the metrics command on this machine ---------------------------------------------


def local_inventory_of(root: Path) -> Inventory:
    """An inventory of this machine whose snapshotter root is `root`."""
    config = root / "config.toml"
    config.write_text(
        f'version = 1\nroot = "{root}"\n'
        f'address = "{root / "grpc.sock"}"\n'
        "[system]\nenable = false\n"
        '[daemon]\nfs_driver = "fusedev"\n'
    )
    paths = NodePaths(
        snapshotter_config=str(config),
        containerd_config=str(root / "containerd.toml"),
        containerd_socket=str(root / "containerd.sock"),
    )
    node = NodeSpec(name=NODE, local=True, paths=paths)
    return Inventory(nodes=[node], source="test")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
async def test_command_output_hides_secret(nydusd: NydusdDouble, as_json: bool) -> None:
    out = io.StringIO()
    code = await run_metrics(
        local_inventory_of(nydusd.root),
        prometheus=None,
        interval=1.0,
        as_json=as_json,
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert SECRET not in text
    assert ACCESS_KEY_ID not in text
    if not as_json:
        assert "RUNNING" in text
        assert SYSTEM_OFF_NOTE in text
        return
    (node,) = json.loads(text)["nodes"]
    assert node["node"] == NODE
    assert node["problems"] == []
    (daemon,) = node["daemons"]
    assert daemon["id"] == "d1"
    assert daemon["state"] == "RUNNING"
    assert daemon["api_socket"] == str(nydusd.api_socket)
    # Two polls a second apart give rates.
    assert daemon["figures"]["read_bps"] is not None
    assert daemon["figures"]["read_bps"] >= 0
    assert daemon["figures"]["inflight"] == 0


async def test_daemon_info_reused_until_pid_changes(
    scripted: Callable[..., Any], short_dir: Path
) -> None:
    daemon = await scripted("daemon", healthy_routes())
    listing = [daemon_object("d1", daemon.path, 4242)]
    system = await scripted(
        "system", {"/api/v1/daemons": lambda q: Reply.json(listing)}
    )
    now = [1000.0]
    reader = NodeMetricsReader(
        LocalTransport("t"),
        MetricsTargets(system_socket=str(system.path)),
        clock=lambda: now[0],
    )
    try:
        for _ in range(3):
            await reader.read()
            now[0] += 5
        assert daemon.paths().count("/api/v1/daemon") == 1
        now[0] += INFO_MAX_AGE
        await reader.read()
        assert daemon.paths().count("/api/v1/daemon") == 2
        listing[0] = daemon_object("d1", daemon.path, 4343)
        sample = await reader.read()
        assert daemon.paths().count("/api/v1/daemon") == 3
        assert sample.daemons[0].state == "RUNNING"
    finally:
        await reader.aclose()


async def test_snapshotter_endpoint_read_once_per_interval() -> None:
    hits: list[str] = []
    body = b"snapshotter_run_time_seconds 61\nsnapshotter_memory_usage_kilobytes 100\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append((await reader.readline()).decode())
        while (await reader.readline()).strip():
            pass
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    now = [0.0]
    targets = MetricsTargets(metrics_address=f"127.0.0.1:{port}", collect_interval=60)
    reader = NodeMetricsReader(LocalTransport("t"), targets, clock=lambda: now[0])
    try:
        for _ in range(3):
            sample = await reader.read()
            assert sample.snapshotter is not None
            assert sample.snapshotter.value("snapshotter_memory_usage_kilobytes") == 100
            now[0] += 4
        assert len(hits) == 1  # every 10 s at most: hung I/O changes that often
        now[0] += 10
        await reader.read()
        assert len(hits) == 2
    finally:
        await reader.aclose()
        server.close()
        await server.wait_closed()
