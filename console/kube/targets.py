"""Cluster nodes as SSH targets of the fleet, from the inventory's [kubernetes].

Each Node of the cluster (those matching label_selector) becomes a node of
the fleet named like the Node, reached at its InternalIP, ExternalIP or
Hostname address with the table's SSH settings. A [nodes.NAME] table of the
same name, or one with the same address, wins: it can give one node other
settings. Nodes without the chosen address are left out, named in
`Inventory.left_out` with the setting that would add them.
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


# The Node address types as the API names them, by the inventory's words.
ADDRESS_TYPES = {
    "internal-ip": "InternalIP",
    "external-ip": "ExternalIP",
    "hostname": "Hostname",
}


@dataclass
class ClusterTargets:
    """The SSH targets of the cluster's nodes and the nodes without one, with why.

    `skipped` holds every node without a target of its own; `left_out` those
    of them that are not in the fleet at all (an inventory node does not
    stand for them), which the operator must be told about.
    """

    specs: list[NodeSpec] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def leave_out(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        self.left_out[name] = reason


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
            result.leave_out(node.name, missing_address(node, template))
        elif address in hosts:
            result.skipped[node.name] = f"{address} is already an inventory node"
        else:
            try:
                spec = template.node_spec(node.name, address, read_only=read_only)
                result.specs.append(spec)
            except InventoryError as exc:
                result.leave_out(node.name, str(exc))
    return result


def missing_address(node: ClusterNode, template: ClusterTemplate) -> str:
    """Say which address the node lacks and what to set instead."""
    wanted = ADDRESS_TYPES.get(template.address, template.address)
    others = [
        (key, kind, node.address(key))
        for key, kind in ADDRESS_TYPES.items()
        if key != template.address and node.address(key)
    ]
    text = f'its Node reports no {wanted} address (address = "{template.address}")'
    if others:
        reported = ", ".join(f"{kind} {value}" for _, kind, value in others)
        text += (
            f'; it reports {reported}: set address = "{others[0][0]}" in the '
            f"[kubernetes] table of {template.source}, or add a "
            f"[nodes.{node.name}] table with its address"
        )
    else:
        text += (
            f"; it reports no address: add a [nodes.{node.name}] table to "
            f"{template.source} with the address to reach it at, or set "
            'node_access = "pod" in [kubernetes] to reach it through a node-shell pod'
        )
    return text


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
        if name not in targets.left_out:
            log.info("cluster node %s has no target of its own: %s", name, reason)
    for name, reason in targets.left_out.items():
        log.warning("cluster node %s is left out of the fleet: %s", name, reason)
    inventory.left_out.update(targets.left_out)
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
            + "".join(
                f"; {name} is left out: {why}" for name, why in targets.left_out.items()
            )
        )
    return inventory
