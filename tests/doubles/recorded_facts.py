"""Replay of node facts recorded from the booted test nodes.

Screen snapshots must not change from run to run, so the snapshot tests give
the fleet probers that return facts recorded once from real nodes (see
`record`) instead of probing live ones. Record again after the probe changes:

    python tests/doubles/recorded_facts.py INVENTORY tests/samples/facts
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nydus_console.facts import FileRead, NodeFacts, ProcessInfo, UnitState
from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory, NodeSpec, load_inventory
from nydus_console.transport.base import SocketState, TransportError


def facts_to_json(facts: NodeFacts) -> dict[str, Any]:
    data = dataclasses.asdict(facts)
    data["devices"] = sorted(facts.devices)
    data["filesystems"] = sorted(facts.filesystems)
    data["sockets"] = {path: str(state) for path, state in facts.sockets.items()}
    return data


def facts_from_json(data: dict[str, Any]) -> NodeFacts:
    values = dict(data)
    values["devices"] = set(data["devices"])
    values["filesystems"] = set(data["filesystems"])
    values["units"] = {k: UnitState(**v) for k, v in data["units"].items()}
    values["processes"] = [ProcessInfo(**p) for p in data["processes"]]
    values["files"] = {k: FileRead(**v) for k, v in data["files"].items()}
    values["versions"] = {k: tuple(v) for k, v in data["versions"].items()}
    values["sockets"] = {k: SocketState(v) for k, v in data["sockets"].items()}
    return NodeFacts(**values)


class RecordedProber:
    """Stands in for NodeProber: returns recorded facts, or raises an error."""

    def __init__(self, facts: NodeFacts | TransportError, clock: Callable[[], float]):
        self.facts = facts
        self.clock = clock

    async def probe(self, full: bool = False) -> NodeFacts:
        if isinstance(self.facts, TransportError):
            raise self.facts
        facts = copy.deepcopy(self.facts)
        facts.collected_at = self.clock()
        return facts


def recorded_fleet(
    nodes: dict[str, NodeFacts | TransportError],
    clock: Callable[[], float],
    inventory_source: str = "recorded test nodes",
) -> Fleet:
    """Return a Fleet whose probes return the given facts or raise the given errors."""
    specs = [
        NodeSpec(name=name, host=f"10.201.0.{4 * i + 6}", user="root")
        for i, name in enumerate(nodes)
    ]
    fleet = Fleet(Inventory(nodes=specs, source=inventory_source), clock=clock)
    for name, facts in nodes.items():
        fleet.probers[name] = RecordedProber(facts, clock)  # type: ignore[assignment]
    return fleet


def load_recorded(directory: Path) -> dict[str, NodeFacts]:
    return {
        path.stem: facts_from_json(json.loads(path.read_text()))
        for path in sorted(directory.glob("*.json"))
    }


async def record(inventory_path: Path, out: Path) -> None:
    fleet = Fleet(load_inventory(inventory_path))
    out.mkdir(parents=True, exist_ok=True)
    try:
        for name in fleet.specs:
            facts = await fleet.probers[name].probe(full=True)
            facts.collected_at = 0.0
            text = json.dumps(facts_to_json(facts), indent=1, sort_keys=True)
            (out / f"{name}.json").write_text(text + "\n")
            print(f"recorded {name}")
    finally:
        await fleet.close()


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1]), Path(sys.argv[2])))
