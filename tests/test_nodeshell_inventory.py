"""The [kubernetes] keys that reach cluster nodes through a node-shell pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nydus_console.fleet import make_transport
from nydus_console.inventory import InventoryError, PodAccess, parse_inventory
from nydus_console.kube.nodes import parse_node
from nydus_console.kube.targets import cluster_targets
from nydus_console.transport.pod import PodTransport


def inventory(**table: Any) -> Any:
    data = {"kubernetes": {"context": "prod"} | table}
    return parse_inventory(data, "fleet.toml")


def node(name: str, address: str) -> Any:
    addresses = [{"type": "InternalIP", "address": address}] if address else []
    return parse_node({"metadata": {"name": name}, "status": {"addresses": addresses}})


def test_ssh_stays_the_default() -> None:
    template = inventory().kubernetes
    (spec,) = cluster_targets([node("n1", "10.0.0.1")], template, []).specs
    assert spec.pod_access is None
    assert spec.address == "10.0.0.1"


def test_pod_access_reaches_nodes_without_an_address() -> None:
    template = inventory(
        node_access="pod",
        node_shell_image="registry.example.com/busybox:1.36",
        node_shell_namespace="ops",
        read_only=True,
    ).kubernetes
    nodes = [node("n1", "10.0.0.1"), node("n2", "")]
    targets = cluster_targets(nodes, template, [], read_only=True)
    assert [s.name for s in targets.specs] == ["n1", "n2"]
    assert targets.skipped == {}
    spec = targets.specs[1]
    assert spec.address == "pod on n2"
    assert spec.pod_access == PodAccess(
        context="prod",
        image="registry.example.com/busybox:1.36",
        namespace="ops",
        read_only=True,
        cluster_read_only=True,
    )


def test_make_transport_builds_the_pod_transport(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        '{"clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],'
        ' "users": [{"name": "u", "user": {"token": "t"}}],'
        ' "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}]}'
    )
    template = inventory(node_access="pod", kubeconfig=str(kubeconfig)).kubernetes
    (spec,) = cluster_targets([node("n1", "")], template, [], read_only=True).specs
    transport = make_transport(spec, None)
    assert isinstance(transport, PodTransport)
    assert transport.gate.refusal() == "the console runs with --read-only"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("node_access", "kubectl", "node_access = 'kubectl' is not one of ssh or pod"),
        ("node_shell_image", "busy box", "node_shell_image = 'busy box' is not"),
        ("node_shell_namespace", "Ops_1", "node_shell_namespace = 'Ops_1' is not"),
        ("node_access", 1, "node_access must be a string"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        inventory(**{key: value})
