"""Fleet metrics: poll each node's sockets, or ask Prometheus for all of them.

A node is probed before its first poll, because its snapshotter config gives
the paths of the sockets and the metrics endpoint. Later polls reuse those
targets until the next probe replaces them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from nydus_console.facts import NodeFacts
from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import NodePaths
from nydus_console.metrics.collect import (
    MetricsTargets,
    NodeMetricsReader,
    targets_from_facts,
)
from nydus_console.metrics.derive import MetricsHistory, NodeFigures
from nydus_console.metrics.model import NodeSample
from nydus_console.metrics.promql import PrometheusReader

PROMETHEUS_RATE_SPAN = 150.0  # a little over two snapshotter collect intervals


class FleetMetrics:
    """Reads and derives the metrics of a fleet's nodes, one poll at a time."""

    def __init__(self, fleet: Fleet, prometheus_url: str = "") -> None:
        self.fleet = fleet
        self.prometheus_url = prometheus_url
        self.history = MetricsHistory()
        self.samples: dict[str, NodeSample] = {}
        self.figures: dict[str, NodeFigures] = {}
        self._readers: dict[str, NodeMetricsReader] = {}
        self._prometheus: PrometheusReader | None = None
        # The facts object each node's targets were read from: a probe makes
        # a new one, and only then is the snapshotter config parsed again.
        self._targets_of: dict[str, tuple[object, MetricsTargets]] = {}
        if prometheus_url:
            hosts = {
                name: spec.prometheus_instance or spec.host or name
                for name, spec in fleet.specs.items()
            }
            self._prometheus = PrometheusReader(prometheus_url, hosts)

    @property
    def source(self) -> str:
        return "prometheus" if self._prometheus is not None else "node"

    async def poll(self, names: Iterable[str] | None = None) -> list[NodeFigures]:
        """Poll `names` (default: every node) and return their new figures."""
        requested = list(names) if names is not None else list(self.fleet.specs)
        if self._prometheus is not None:
            samples = [s for s in await self._prometheus.read() if s.node in requested]
            return [self._record(s, PROMETHEUS_RATE_SPAN) for s in samples]
        results = await asyncio.gather(*(self._poll_node(n) for n in requested))
        return list(results)

    async def _poll_node(self, name: str) -> NodeFigures:
        reader = await self._reader(name)
        if isinstance(reader, str):
            sample = NodeSample(
                name, time.monotonic(), time.time(), "node", error=reader
            )
            return self._record(sample, 0.0)
        # Rates between consecutive polls: the daemons' counters are live.
        return self._record(await reader.read(), 0.0)

    async def _reader(self, name: str) -> NodeMetricsReader | str:
        report = self.fleet.reports[name]
        if report.facts is None or report.error is not None:
            report = await self.fleet.probe_node(name)
        if report.facts is None:
            return _unreachable(report)
        targets = self._targets(name, report.facts, report.spec.paths)
        reader = self._readers.get(name)
        if reader is None or reader.targets != targets:
            if reader is not None:
                await reader.aclose()
            reader = NodeMetricsReader(self.fleet.transports[name], targets)
            self._readers[name] = reader
        return reader

    def _targets(self, name: str, facts: NodeFacts, paths: NodePaths) -> MetricsTargets:
        known = self._targets_of.get(name)
        if known is not None and known[0] is facts:
            return known[1]
        targets = targets_from_facts(facts, paths)
        self._targets_of[name] = (facts, targets)
        return targets

    def _record(self, sample: NodeSample, span: float) -> NodeFigures:
        figures = self.history.add(sample, span)
        self.samples[sample.node] = sample
        self.figures[sample.node] = figures
        return figures

    def targets(self, name: str) -> MetricsTargets | None:
        reader = self._readers.get(name)
        return reader.targets if reader else None

    def document(self, name: str) -> dict[str, Any]:
        """Return the JSON form of a node's latest sample and figures."""
        sample, figures = self.samples.get(name), self.figures.get(name)
        if sample is None or figures is None:
            return {"node": name, "error": "not polled yet"}
        return node_document(sample, figures)

    async def close(self) -> None:
        for reader in self._readers.values():
            await reader.aclose()
        self._readers.clear()
        if self._prometheus is not None:
            await self._prometheus.aclose()


def node_document(sample: NodeSample, figures: NodeFigures) -> dict[str, Any]:
    data: dict[str, Any] = {
        "node": sample.node,
        "source": sample.source,
        "time": sample.wall,
        "notes": sample.notes,
        "problems": sample.problems,
    }
    if sample.error:
        data["error"] = sample.error
        return data
    data["snapshotter"] = (
        figures.snapshotter.as_json() if figures.snapshotter is not None else None
    )
    data["daemons"] = [
        {**daemon.as_json(), "figures": figures.daemons[daemon.id].as_json()}
        for daemon in sample.daemons
    ]
    return data


def _unreachable(report: NodeReport) -> str:
    if report.error is not None:
        return str(report.error)
    return f"{report.spec.name} has not been probed"
