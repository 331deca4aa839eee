"""Support bundles: one tar.gz with what support needs from one or more nodes.

Per node: versions, configs with credentials masked, the last lines of every
log source, process, socket and mount facts, and the findings of `doctor`
plus the signatures the collected lines match. Only read-only commands run.
"""

from __future__ import annotations

import asyncio

from nydus_console.bundle.archive import (
    BundleExists,
    bundle_stem,
    default_path,
    write_bundle,
)
from nydus_console.bundle.collect import Progress, collect_node
from nydus_console.bundle.model import MANIFEST_NAME, SCHEMA, NodeBundle
from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory

DEFAULT_LINES = 2000
EXIT_INCOMPLETE = 1
EXIT_UNREACHABLE = 3

__all__ = [
    "DEFAULT_LINES",
    "MANIFEST_NAME",
    "SCHEMA",
    "BundleExists",
    "NodeBundle",
    "bundle_stem",
    "collect_bundle",
    "default_path",
    "exit_status",
    "write_bundle",
]


async def collect_bundle(
    inventory: Inventory, lines: int, progress: Progress
) -> list[NodeBundle]:
    """Collect every node of the inventory at once."""
    fleet = Fleet(inventory)
    try:
        return list(
            await asyncio.gather(
                *(collect_node(fleet, name, lines, progress) for name in fleet.specs)
            )
        )
    finally:
        await fleet.close()


def exit_status(nodes: list[NodeBundle]) -> int:
    """Return 3 when a node was unreachable, 1 when something was not collected."""
    if any(node.error is not None for node in nodes):
        return EXIT_UNREACHABLE
    if any(node.gaps for node in nodes):
        return EXIT_INCOMPLETE
    return 0
