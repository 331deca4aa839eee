"""Cluster nodes as SSH targets of the fleet, from the inventory's [kubernetes].

Each Node of the cluster (those matching label_selector) becomes a node of
the fleet named like the Node, reached at its InternalIP, ExternalIP or
Hostname address with the table's SSH settings. A [nodes.NAME] table of the
same name, or one with the same address, wins: it can give one node other
settings. Nodes without the chosen address are left out and named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nydus_console.inventory import (
    ClusterTemplate,
    Inventory,
    InventoryError,
    NodeSpec,
)
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import KubeError
from nydus_console.kube.nodes import ClusterNode, parse_node

log = logging.getLogger(__name__)


@dataclass
class ClusterTargets:
    """The SSH targets of the cluster's nodes and the nodes left out, with why."""

    specs: list[NodeSpec] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def cluster_targets(
    nodes: list[ClusterNode],
    template: ClusterTemplate,
    taken: list[NodeSpec],
    *,
    read_only: bool = False,
) -> ClusterTargets:
    """Return a NodeSpec per cluster node; `taken` are the inventory's own nodes.

    `read_only` is the console's --read-only, which refuses node-shell pods.
    """
    names = {spec.name for spec in taken}
    hosts = {spec.host for spec in taken if spec.host}
    result = ClusterTargets()
    for node in nodes:
        address = node.address(template.address)
        if not address and template.node_access == "pod":
            # A node-shell pod needs no address: it is placed by node name.
            address = node.name
        if node.name in names:
            result.skipped[node.name] = "its [nodes] table is used instead"
        elif not address:
            result.skipped[node.name] = f"it reports no {template.address} address"
        elif address in hosts:
            result.skipped[node.name] = f"{address} is already an inventory node"
        else:
            try:
                spec = template.node_spec(node.name, address, read_only=read_only)
                result.specs.append(spec)
            except InventoryError as exc:
                result.skipped[node.name] = str(exc)
    return result


def add_cluster_nodes(inventory: Inventory, *, read_only: bool = False) -> Inventory:
    """Add the nodes of the inventory's [kubernetes] cluster (blocking).

    `read_only` is the console's --read-only, passed to nodes reached
    through a node-shell pod.

    Does nothing without a [kubernetes] table. Raises InventoryError naming
    the cluster problem and the fix when its nodes cannot be listed.
    """
    template = inventory.kubernetes
    if template is None:
        return inventory
    try:
        client = KubeClient.from_kubeconfig(
            template.kubeconfig or None, template.context or None
        )
        try:
            raw = client.list_nodes(template.label_selector)
        finally:
            client.close()
    except KubeError as exc:
        raise InventoryError(
            f"{template.source}: [kubernetes] cannot list the cluster's nodes: {exc}"
        ) from None
    targets = cluster_targets(
        [parse_node(n) for n in raw], template, inventory.nodes, read_only=read_only
    )
    for name, reason in targets.skipped.items():
        log.warning("cluster node %s is not added to the fleet: %s", name, reason)
    inventory.nodes += targets.specs
    if not inventory.nodes:
        raise InventoryError(
            f"{template.source}: the cluster of context {client.context} has no "
            "nodes to add"
            + (
                f" matching {template.label_selector!r}"
                if template.label_selector
                else ""
            )
        )
    return inventory
