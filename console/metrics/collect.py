"""One metrics poll of a node: daemons from the system controller, their nydusd
APIs, and the snapshotter's Prometheus endpoint, all through the node's transport.

Never requested: ``/api/v1/daemons/{id}/backend`` (it returns registry
credentials in clear) and ``/api/v1/daemons/records`` (a stub that returns
501). From ``/api/v1/daemon`` only the state, version, mountpoints and backend
type are kept; its config (with unmasked S3 keys) is dropped on arrival.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import httpx

from nydus_console.checks.context import CheckContext
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodePaths
from nydus_console.metrics.api import ApiError, SocketClient
from nydus_console.metrics.model import DaemonSample, NodeSample, PromFamilies
from nydus_console.metrics.promtext import PromTextError, parse_exposition
from nydus_console.transport.base import Endpoint, Transport, TransportError
from nydus_console.transport.http import NodeHTTPTransport

PROM_PREFIXES = ("nydusd_", "snapshotter_")
DEFAULT_COLLECT_INTERVAL = 60.0
# The snapshotter's default hung_io_interval: nydusd_hung_io_counts changes
# this often, so its endpoint is read no more often than this.
HUNG_IO_INTERVAL = 10.0
# How long a RUNNING daemon's state and version are taken as still true
# while its PID stays the same.
INFO_MAX_AGE = 30.0
SYSTEM_OFF_NOTE = (
    "the system controller is off ([system] enable = false), so daemons were "
    "found from their API sockets without PIDs or RSS; turn it on to see them"
)


@dataclass(frozen=True)
class MetricsTargets:
    """Locations of a node's metrics, taken from its snapshotter config and probe."""

    system_socket: str = ""
    metrics_address: str = ""
    api_sockets: tuple[str, ...] = ()
    collect_interval: float = DEFAULT_COLLECT_INTERVAL
    # Why the snapshotter config could not be read, when it could not.
    problem: str = ""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str, default: float) -> float:
    """Parse a Go duration such as "1m", "10s", "1m30s" or "500ms" into seconds."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return default
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    return seconds if seconds > 0 else default


def targets_from_facts(facts: NodeFacts, paths: NodePaths) -> MetricsTargets:
    parsed = CheckContext(facts, paths).snapshotter
    config = parsed.model
    if config is None:
        return MetricsTargets(
            api_sockets=tuple(facts.api_sockets),
            problem=f"snapshotter config unreadable: {parsed.error}",
        )
    raw_metrics = config.raw.get("metrics")
    interval = ""
    if isinstance(raw_metrics, dict):
        interval = str(raw_metrics.get("collect_interval", ""))
    return MetricsTargets(
        system_socket=config.system_address if config.system_enable else "",
        metrics_address=config.metrics_address,
        api_sockets=tuple(facts.api_sockets),
        collect_interval=parse_duration(interval, DEFAULT_COLLECT_INTERVAL),
    )


def metrics_endpoint(address: str) -> Endpoint | None:
    """Return the endpoint of `[metrics] address` as seen from the node itself."""
    host, _, port = address.strip().rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1" if host != "::" else "::1"
    return Endpoint(host=host, port=int(port))


def numeric_fields(data: Any) -> dict[str, Any] | None:
    """Keep the numeric, boolean and numeric-list fields of an API response."""
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if _is_numeric(v)}


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    if isinstance(value, list):
        return all(_is_numeric(item) for item in value)
    return False


def add_counters(left: Any, right: Any) -> Any:
    """Add two API responses of the same shape, element by element.

    Flags combine with "and": data_all_ready is true for a daemon only when
    it is true for every instance.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return bool(left) and bool(right)
    if isinstance(left, dict) and isinstance(right, dict):
        return {k: add_counters(left.get(k, 0), right.get(k, 0)) for k in left}
    if isinstance(left, list) and isinstance(right, list):
        return [add_counters(a, b) for a, b in zip(left, right, strict=False)]
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left + right
    return left


def daemon_from_object(item: dict[str, Any]) -> DaemonSample:
    """Build a sample from a system controller daemon object."""
    instances = item.get("instances")
    images = []
    if isinstance(instances, dict):
        images = sorted(
            {
                str(i.get("image_id", ""))
                for i in instances.values()
                if isinstance(i, dict)
            }
            - {""}
        )
    rss = item.get("memory_rss_kb")
    return DaemonSample(
        id=str(item.get("id", "")),
        pid=int(item.get("pid") or 0),
        api_socket=str(item.get("api_socket", "")),
        mountpoint=str(item.get("mountpoint", "")),
        images=images,
        rss_kb=float(rss) if isinstance(rss, int | float) else None,
    )


def daemon_from_socket(path: str) -> DaemonSample:
    return DaemonSample(id=PurePosixPath(path).parent.name, api_socket=path)


class NodeMetricsReader:
    """Polls one node's metrics; keeps its HTTP connections between polls."""

    def __init__(
        self,
        transport: Transport,
        targets: MetricsTargets,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_parallel: int = 4,
    ) -> None:
        self.transport = transport
        self.targets = targets
        self._clock = clock
        self._wall = wall
        self._limit = asyncio.Semaphore(max_parallel)
        self._clients: dict[str, SocketClient] = {}
        self._prom: httpx.AsyncClient | None = None
        self._info: dict[str, tuple[float, int, str, str, str, list[str]]] = {}
        self._scraped: tuple[float, PromFamilies] | None = None

    async def read(self) -> NodeSample:
        sample = NodeSample(self.transport.name, self._clock(), self._wall(), "node")
        if self.targets.problem:
            sample.problems.append(self.targets.problem)
            sample.daemons = [daemon_from_socket(p) for p in self.targets.api_sockets]
            await asyncio.gather(*(self._read_daemon(d) for d in sample.daemons))
            return sample
        prom = asyncio.create_task(self._snapshotter_metrics(sample))
        sample.daemons = await self._daemon_list(sample)
        await asyncio.gather(*(self._read_daemon(d) for d in sample.daemons))
        sample.snapshotter = await prom
        await self._forget_gone(sample.daemons)
        return sample

    # -- daemons -----------------------------------------------------------------

    def _client(self, path: str, peer: str) -> SocketClient:
        client = self._clients.get(path)
        if client is None:
            client = SocketClient(self.transport, path, peer)
            self._clients[path] = client
        return client

    async def _get(self, client: SocketClient, path: str, **params: str) -> Any:
        async with self._limit:
            return await client.get(path, params or None)

    async def _daemon_list(self, sample: NodeSample) -> list[DaemonSample]:
        socket = self.targets.system_socket
        if not socket:
            sample.notes.append(SYSTEM_OFF_NOTE)
            return [daemon_from_socket(p) for p in self.targets.api_sockets]
        try:
            answer = await self._get(
                self._client(socket, "system-controller"), "/api/v1/daemons"
            )
        except ApiError as exc:
            reason = await self.explain(socket, exc)
            sample.problems.append(f"daemon list unavailable: {reason}")
            return [daemon_from_socket(p) for p in self.targets.api_sockets]
        if not isinstance(answer, list):
            sample.problems.append("the system controller answered no daemon list")
            return []
        return [daemon_from_object(i) for i in answer if isinstance(i, dict)]

    async def _read_daemon(self, daemon: DaemonSample) -> None:
        if not daemon.api_socket:
            daemon.errors["api"] = "the daemon object names no API socket"
            return
        client = self._client(daemon.api_socket, f"nydusd {daemon.id}")
        mountpoints = self._known_info(daemon)
        if mountpoints is None:
            try:
                info = await self._get(client, "/api/v1/daemon")
            except ApiError as exc:
                error = await self.explain(daemon.api_socket, exc)
                daemon.errors["/api/v1/daemon"] = error
                if not exc.status:
                    return  # nothing listens on the socket, so the rest would fail
                info = None
            mountpoints = self._read_info(info, daemon)
            self._remember_info(daemon, mountpoints)
        fs, backend, cache, inflight = await asyncio.gather(
            self._per_instance(client, daemon, "/api/v1/metrics", mountpoints),
            self._per_instance(client, daemon, "/api/v1/metrics/backend", mountpoints),
            self._per_instance(
                client, daemon, "/api/v1/metrics/blobcache", mountpoints
            ),
            self._endpoint(client, daemon, "/api/v1/metrics/inflight"),
        )
        daemon.fs = numeric_fields(fs)
        daemon.backend = numeric_fields(backend)
        if isinstance(backend, dict) and daemon.backend is not None:
            daemon.backend_type = daemon.backend_type or str(
                backend.get("backend_type", "")
            )
        daemon.cache = numeric_fields(cache)
        if daemon.errors.get("/api/v1/metrics/inflight") is None:
            daemon.inflight = inflight if isinstance(inflight, list) else []

    def _known_info(self, daemon: DaemonSample) -> list[str] | None:
        """Fill state and version from a recent /api/v1/daemon answer, if any.

        Return the instance mountpoints, or None when the daemon must be asked:
        its PID is unknown or changed, it was not RUNNING, or the answer is
        older than INFO_MAX_AGE.
        """
        known = self._info.get(daemon.api_socket)
        if known is None or not daemon.pid:
            return None
        at, pid, state, version, backend, mountpoints = known
        fresh = self._clock() - at < INFO_MAX_AGE
        if pid != daemon.pid or state != "RUNNING" or not fresh:
            return None
        daemon.state, daemon.version, daemon.backend_type = state, version, backend
        return mountpoints

    def _remember_info(self, daemon: DaemonSample, mountpoints: list[str]) -> None:
        if daemon.errors.get("/api/v1/daemon"):
            self._info.pop(daemon.api_socket, None)
            return
        self._info[daemon.api_socket] = (
            self._clock(),
            daemon.pid,
            daemon.state,
            daemon.version,
            daemon.backend_type,
            mountpoints,
        )

    @staticmethod
    def _read_info(info: Any, daemon: DaemonSample) -> list[str]:
        if not isinstance(info, dict):
            return []
        daemon.state = str(info.get("state", ""))
        version = info.get("version")
        if isinstance(version, dict):
            daemon.version = str(version.get("package_ver", ""))
        backends = info.get("backend_collection")
        if not isinstance(backends, dict):
            return []
        for entry in backends.values():
            if isinstance(entry, dict):
                daemon.backend_type = _backend_type(entry) or daemon.backend_type
        return sorted(backends)

    async def _endpoint(
        self, client: SocketClient, daemon: DaemonSample, path: str, **params: str
    ) -> Any:
        try:
            return await self._get(client, path, **params)
        except ApiError as exc:
            daemon.errors[path] = await self.explain(daemon.api_socket, exc)
            return None

    async def explain(self, socket: str, error: ApiError) -> str:
        """Explain why a socket failed when the transport reported only "open failed".

        One `stat` of the path tells a missing socket from a stale one.
        """
        if error.status or "open failed" not in error.message:
            return str(error)
        try:
            result = await self.transport.run(["stat", "-c", "%F", "--", socket])
        except TransportError:
            return str(error)
        kind = result.stdout.strip()
        if not result.ok:
            return (
                f"{socket} does not exist on {self.transport.name}. Next step: "
                "check that the process that serves it runs, and the socket path "
                "in the snapshotter config"
            )
        if kind == "socket":
            return (
                f"{socket} exists but refused the connection: its server is gone "
                "(a stale socket) or the login user may not open it. Next step: "
                "check the process that serves it"
            )
        return f"{socket} is a {kind}, not a socket. Next step: check the path"

    async def _per_instance(
        self,
        client: SocketClient,
        daemon: DaemonSample,
        path: str,
        mountpoints: list[str],
    ) -> Any:
        # Without an id nydusd answers for its only instance; with several it
        # answers NoCounter, and the totals are the sum over the instances.
        # NOTE: nydusd keys FS metrics by mountpoint (Rafs::new). That backend
        # and blob cache metrics use the same keys is assumed, not checked.
        try:
            return await self._get(client, path)
        except ApiError as exc:
            if not (exc.no_counter and len(mountpoints) > 1):
                daemon.errors[path] = str(exc)
                return None
        total: Any = None
        for mountpoint in mountpoints:
            answer = await self._endpoint(client, daemon, path, id=mountpoint)
            if answer is not None:
                total = answer if total is None else add_counters(total, answer)
        return total

    async def _forget_gone(self, daemons: list[DaemonSample]) -> None:
        keep = {self.targets.system_socket} | {d.api_socket for d in daemons}
        for path in [p for p in self._clients if p not in keep]:
            await self._clients.pop(path).aclose()

    # -- the snapshotter's Prometheus endpoint --------------------------------------

    async def _snapshotter_metrics(self, sample: NodeSample) -> PromFamilies | None:
        address = self.targets.metrics_address
        if not address:
            sample.notes.append(
                "the snapshotter's metrics endpoint is off ([metrics] address is "
                'empty); set it, e.g. address = "127.0.0.1:9110"'
            )
            return None
        endpoint = metrics_endpoint(address)
        if endpoint is None:
            sample.problems.append(f"[metrics] address {address!r} has no port")
            return None
        refresh = min(self.targets.collect_interval, HUNG_IO_INTERVAL)
        if self._scraped and self._clock() - self._scraped[0] < refresh:
            # The snapshotter changes these values only at its own intervals.
            return self._scraped[1]
        try:
            text = await self._scrape(endpoint)
            families = parse_exposition(text, PROM_PREFIXES)
            self._scraped = (self._clock(), families)
            return families
        except (httpx.HTTPError, PromTextError) as exc:
            sample.problems.append(
                f"snapshotter metrics at {endpoint}/v1/metrics unavailable: "
                f"{str(exc) or type(exc).__name__}"
            )
            return None

    async def _scrape(self, endpoint: Endpoint) -> str:
        if self._prom is None:
            self._prom = httpx.AsyncClient(
                transport=NodeHTTPTransport(self.transport.open_stream),
                timeout=5.0,
            )
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        response = await self._prom.get(f"http://{host}:{endpoint.port}/v1/metrics")
        response.raise_for_status()
        return response.text

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._prom is not None:
            await self._prom.aclose()
            self._prom = None


def _backend_type(entry: dict[str, Any]) -> str:
    config = entry.get("config")
    if isinstance(config, dict):
        backend = config.get("backend")
        if isinstance(backend, dict) and isinstance(backend.get("type"), str):
            return str(backend["type"])
    return ""
