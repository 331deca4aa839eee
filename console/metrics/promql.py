"""Prometheus mode: the snapshotter's metric families of every node in one query.

For a fleet too large to poll, a Prometheus server that already scrapes each
snapshotter's `/v1/metrics` returns them for all nodes at once. Series are matched
to nodes by the host part of their `instance` label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from nydus_console.metrics.model import (
    SNAPSHOTTER_LATENCY_BOUNDS_US,
    DaemonSample,
    NodeSample,
    PromFamilies,
)
from nydus_console.metrics.promtext import families_from_vector

QUERY = '{__name__=~"(nydusd|snapshotter)_.+"}'
SOURCE = "prometheus"


class PrometheusError(Exception):
    """A request to the Prometheus server failed; the message names its URL."""


def instance_host(instance: str) -> str:
    """Host part of an `instance` label: "10.0.0.5:9110" -> "10.0.0.5"."""
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    host, sep, port = instance.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else instance


def group_by_instance(families: PromFamilies) -> dict[str, PromFamilies]:
    """Group samples under their whole `instance` label and under its host part."""
    groups: dict[str, PromFamilies] = {}
    for sample in families.samples:
        instance = sample.label("instance")
        for key in {instance, instance_host(instance)}:
            groups.setdefault(key, PromFamilies()).samples.append(sample)
    return groups


def _image_daemons(families: PromFamilies) -> dict[str, str]:
    """image_ref -> daemon_id, from nydusd_image_info (newer snapshotters only)."""
    return {
        s.label("image_ref"): s.label("daemon_id")
        for s in families.values("nydusd_image_info")
    }


def _bucket_counts(families: PromFamilies, image: str) -> list[float] | None:
    cumulative = families.histogram("nydusd_read_latency_microseconds", image_ref=image)
    if not cumulative:
        return None
    counts, before = [], 0.0
    for _, value in cumulative:
        counts.append(max(0.0, value - before))
        before = value
    return counts


def daemons_from_families(families: PromFamilies) -> list[DaemonSample]:
    """Build one sample per image, with the counters the snapshotter exports for it."""
    images = sorted(
        {s.label("image_ref") for s in families.samples if s.name.startswith("nydusd_")}
        - {""}
    )
    owners = _image_daemons(families)
    rss = families.by_label("nydusd_rss_kilobytes", "daemon_id")
    return [
        _image_sample(families, image, owners.get(image, ""), rss) for image in images
    ]


def _one(families: PromFamilies, name: str, image: str) -> float:
    return families.by_label(name, "image_ref").get(image, 0.0)


def _image_sample(
    families: PromFamilies, image: str, daemon_id: str, rss: dict[str, float]
) -> DaemonSample:
    hits = _one(families, "nydusd_read_hits", image)
    errors = _one(families, "nydusd_read_errors", image)
    fs: dict[str, Any] = {
        "data_read": _one(families, "nydusd_total_read_bytes", image),
        "fop_hits": [0, 0, 0, 0, hits],
        "fop_errors": [0, 0, 0, 0, errors],
    }
    latency = _bucket_counts(families, image)
    if latency is not None:
        fs["read_latency_dist"] = latency
    cache = {
        "partial_hits": _one(families, "nydusd_cache_partial_hits", image),
        "whole_hits": _one(families, "nydusd_cache_whole_hits", image),
        "total": _one(families, "nydusd_cache_total_requests", image),
        "prefetch_data_amount": _one(
            families, "nydusd_cache_prefetch_data_bytes", image
        ),
        "prefetch_requests_count": _one(
            families, "nydusd_cache_prefetch_requests_count", image
        ),
    }
    return DaemonSample(
        id=daemon_id or image,
        images=[image],
        rss_kb=rss.get(daemon_id) if daemon_id else None,
        fs=fs,
        cache=cache,
        latency_bounds_us=SNAPSHOTTER_LATENCY_BOUNDS_US,
    )


class PrometheusReader:
    """Reads all nodes' snapshotter metrics from a Prometheus server.

    `nodes` maps each node name to what its `instance` label holds: the whole
    label ("10.0.0.5:9110") or its host part ("10.0.0.5").
    """

    def __init__(
        self,
        url: str,
        nodes: Mapping[str, str],
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.nodes = dict(nodes)
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._clock = clock
        self._wall = wall

    async def query(self, promql: str) -> list[dict[str, Any]]:
        where = f"Prometheus at {self.url}"
        try:
            response = await self._client.get(
                f"{self.url}/api/v1/query", params={"query": promql}
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise PrometheusError(
                f"{where} did not respond: {str(exc) or type(exc).__name__}. "
                "Next step: check the URL (--prometheus or prometheus_url in "
                "the inventory)"
            ) from None
        return _vector(where, response)

    async def read(self) -> list[NodeSample]:
        now, wall = self._clock(), self._wall()
        try:
            groups = group_by_instance(families_from_vector(await self.query(QUERY)))
        except PrometheusError as exc:
            return [
                NodeSample(n, now, wall, SOURCE, error=str(exc)) for n in self.nodes
            ]
        return [
            self._node_sample(name, host, groups, now, wall)
            for name, host in self.nodes.items()
        ]

    def _node_sample(
        self,
        name: str,
        host: str,
        groups: dict[str, PromFamilies],
        now: float,
        wall: float,
    ) -> NodeSample:
        families = groups.get(host) or groups.get(name)
        if families is None:
            return NodeSample(
                name,
                now,
                wall,
                SOURCE,
                error=f"Prometheus at {self.url} has no nydus series with instance "
                f"{host!r}. Next step: check that it scrapes the snapshotter's "
                "[metrics] address on that node, or set prometheus_instance for "
                "the node in the inventory",
            )
        sample = NodeSample(name, now, wall, SOURCE, snapshotter=families)
        sample.daemons = daemons_from_families(families)
        return sample

    async def aclose(self) -> None:
        await self._client.aclose()


def _vector(where: str, response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(
            f"{where} responded {response.status_code} without JSON; is it a "
            "Prometheus server?"
        ) from None
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise PrometheusError(
            f"{where} rejected the query: {error or response.text[:200]}"
        )
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise PrometheusError(f"{where} returned no result list")
    return [r for r in data["result"] if isinstance(r, dict)]
