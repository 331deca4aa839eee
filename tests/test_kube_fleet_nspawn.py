"""Cluster nodes join the fleet through the inventory's [kubernetes] table.

The Node objects in the real kube-apiserver carry the booted nodes'
addresses, and the console reaches those nodes over their real sshd.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_doctor_nspawn import run_console
from testbed.kube import ADMIN_CONTEXT, ClusterWriter, KubeApiServer
from testbed.nspawn import NspawnFleet

pytestmark = [pytest.mark.kube, pytest.mark.nspawn]


def cluster_inventory(
    fleet: NspawnFleet, server: KubeApiServer, path: Path, selector: str
) -> Path:
    assert fleet.client_key is not None
    path.write_text(
        "[defaults]\n"
        f'known_hosts = ["{fleet.known_hosts}"]\n\n'
        "[kubernetes]\n"
        f'kubeconfig = "{server.kubeconfig}"\n'
        f'context = "{ADMIN_CONTEXT}"\n'
        f'label_selector = "{selector}"\n'
        'address = "internal-ip"\n'
        'ssh_user = "root"\n'
        f'key = "{fleet.client_key.private_path}"\n'
    )
    return path


@pytest.fixture
def fleet_cluster(
    nspawn_fleet: NspawnFleet, kube_apiserver: KubeApiServer, tmp_path: Path
) -> Iterator[tuple[Path, list[str]]]:
    writer = ClusterWriter(kube_apiserver)
    label = uuid.uuid4().hex[:8]
    names = [node.name for node in nspawn_fleet.nodes]
    for node in nspawn_fleet.nodes:
        writer.node(node.name, node.address, labels={"fleet": label})
    inventory = cluster_inventory(
        nspawn_fleet, kube_apiserver, tmp_path / "inventory.toml", f"fleet={label}"
    )
    yield inventory, names
    for name in names:
        writer.delete_node(name)


def test_doctor_reaches_cluster_nodes_over_ssh(
    nspawn_fleet: NspawnFleet, fleet_cluster: tuple[Path, list[str]], tmp_path: Path
) -> None:
    inventory, names = fleet_cluster
    result = run_console(
        "doctor", "--inventory", str(inventory), "--json", home=tmp_path
    )
    assert result.stdout, result.stderr
    document = json.loads(result.stdout)
    reports = {n["name"]: n for n in document["nodes"]}
    assert sorted(reports) == sorted(names)
    for node in nspawn_fleet.nodes:
        report = reports[node.name]
        assert report["address"] == f"root@{node.address}"
        assert report["status"] != "unreachable", report.get("error")
        assert report["findings"], report


def test_kube_nodes_shows_each_ssh_target(
    nspawn_fleet: NspawnFleet, fleet_cluster: tuple[Path, list[str]], tmp_path: Path
) -> None:
    inventory, names = fleet_cluster
    result = run_console(
        "kube", "nodes", "--inventory", str(inventory), "--json", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    ssh = {n["name"]: n["ssh"] for n in json.loads(result.stdout)["nodes"]}
    assert ssh == {n.name: f"root@{n.address}" for n in nspawn_fleet.nodes}
