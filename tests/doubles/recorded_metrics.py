"""Replay double of the metrics readers: polls return recorded samples.

Samples were recorded from the booted test nodes with
``python tests/doubles/recorded_metrics.py record INVENTORY OUT_DIR``; each
file holds the successive polls of one node. A replayed node answers its
recorded polls in order and then repeats the last one, so screens render
the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nydus_console.fleet import Fleet
from nydus_console.metrics.collect import MetricsTargets
from nydus_console.metrics.model import (
    DaemonSample,
    NodeSample,
    PromFamilies,
    PromSample,
)
from nydus_console.metrics.service import FleetMetrics


def sample_to_json(sample: NodeSample) -> dict[str, Any]:
    return asdict(sample)


def sample_from_json(data: dict[str, Any]) -> NodeSample:
    families = data.get("snapshotter")
    daemons = []
    for item in data.get("daemons", []):
        item = dict(item)
        item["latency_bounds_us"] = tuple(item.get("latency_bounds_us", ()))
        daemons.append(DaemonSample(**item))
    return NodeSample(
        node=data["node"],
        at=data["at"],
        wall=data["wall"],
        source=data["source"],
        daemons=daemons,
        snapshotter=None
        if families is None
        else PromFamilies(
            [
                PromSample(s["name"], tuple(tuple(p) for p in s["labels"]), s["value"])
                for s in families["samples"]
            ]
        ),
        notes=list(data.get("notes", [])),
        problems=list(data.get("problems", [])),
        error=data.get("error", ""),
    )


def load_recorded_metrics(directory: Path) -> dict[str, list[NodeSample]]:
    return {
        path.stem: [sample_from_json(item) for item in json.loads(path.read_text())]
        for path in sorted(directory.glob("*.json"))
    }


class ReplayReader:
    """Replay reader that returns the next recorded sample of one node at each poll."""

    def __init__(self, samples: list[NodeSample]) -> None:
        self.targets = MetricsTargets()
        self._samples = samples
        self.reads = 0

    async def read(self) -> NodeSample:
        sample = self._samples[min(self.reads, len(self._samples) - 1)]
        self.reads += 1
        return sample

    async def aclose(self) -> None:
        return None


class RecordedMetrics(FleetMetrics):
    """FleetMetrics whose nodes replay recorded polls instead of reading sockets."""

    def __init__(self, fleet: Fleet, recorded: dict[str, list[NodeSample]]) -> None:
        super().__init__(fleet)
        self.replays = {name: ReplayReader(s) for name, s in recorded.items()}

    async def _reader(self, name: str) -> Any:
        # A node without a recording goes the real way: probed first, and an
        # unreachable one reports the reason.
        replay = self.replays.get(name)
        return replay if replay is not None else await super()._reader(name)


async def record(inventory_path: str, out: Path, polls: int, gap: float) -> None:
    from nydus_console.inventory import load_inventory

    fleet = Fleet(load_inventory(Path(inventory_path)))
    recorded: dict[str, list[dict[str, Any]]] = {name: [] for name in fleet.specs}
    service = FleetMetrics(fleet)
    for index in range(polls):
        await service.poll()
        for name in fleet.specs:
            recorded[name].append(sample_to_json(service.samples[name]))
        if index + 1 < polls:
            await asyncio.sleep(gap)
    await service.close()
    await fleet.close()
    out.mkdir(parents=True, exist_ok=True)
    for name, samples in recorded.items():
        (out / f"{name}.json").write_text(json.dumps(samples, indent=1) + "\n")


def main(argv: Iterable[str]) -> int:
    args = list(argv)
    if len(args) < 3 or args[0] != "record":
        print("usage: recorded_metrics.py record INVENTORY OUT_DIR [POLLS]")
        return 64
    polls = int(args[3]) if len(args) > 3 else 3
    asyncio.run(record(args[1], Path(args[2]), polls, 5.0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
