"""Checks of the testbed itself: booted nodes, the Nydus doubles and loopback sshd.

The nodes are reached the way the console reaches them: asyncssh with the
session key and the fleet's known_hosts file, no host key checks disabled.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import asyncssh
import pytest
from testbed.loopback import LoopbackFleet
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import GRPC_SOCKET, SNAPSHOTTER_UNIT, SYSTEM_SOCKET
from testbed.rootfs import PROMPTING_SUDO_USER, SUDO_USER

HEALTHY = ("nc-node1", "nc-node2")
BROKEN = "nc-node3"


def connect(
    fleet: NspawnFleet | LoopbackFleet, address: str, port: int, user: str = "root"
) -> asyncssh.SSHClientConnection:
    assert fleet.client_key is not None
    return asyncssh.connect(
        address,
        port,
        username=user,
        client_keys=[str(fleet.client_key.private_path)],
        known_hosts=str(fleet.known_hosts),
        connect_timeout=10,
    )


def connect_node(
    fleet: NspawnFleet, node: Node, user: str = "root"
) -> asyncssh.SSHClientConnection:
    return connect(fleet, node.address, node.port, user)


async def http_get(
    conn: asyncssh.SSHClientConnection, socket_path: str, path: str
) -> tuple[int, bytes]:
    """Return (status, body) of GET path from an HTTP server on a remote unix socket."""
    reader, writer = await conn.open_unix_connection(socket_path)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


@pytest.mark.nspawn
def test_fleet_boots_three_nodes(nspawn_fleet: NspawnFleet) -> None:
    assert [node.name for node in nspawn_fleet.nodes] == [*HEALTHY, BROKEN]
    for node in nspawn_fleet.nodes:
        state = node.exec(["systemctl", "is-system-running"]).stdout.strip()
        # The broken node is "degraded" because its snapshotter unit failed.
        assert state in ("running", "degraded"), node.name
        assert node.exec(["hostname"]).stdout.strip() == node.name


@pytest.mark.nspawn
def test_machine_ids_differ(nspawn_fleet: NspawnFleet) -> None:
    ids = {node.read_file("/etc/machine-id").strip() for node in nspawn_fleet.nodes}
    assert len(ids) == len(nspawn_fleet.nodes)


@pytest.mark.nspawn
def test_host_keys_differ(nspawn_fleet: NspawnFleet) -> None:
    keys = [node.host_public_key for node in nspawn_fleet.nodes]
    assert all(key.startswith("ssh-ed25519 ") for key in keys)
    assert len(set(keys)) == len(keys)
    known_hosts = nspawn_fleet.known_hosts.read_text()
    for node in nspawn_fleet.nodes:
        assert f"{node.address} {node.host_public_key}" in known_hosts


@pytest.mark.nspawn
async def test_wrong_host_key_is_rejected(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    first, second = nspawn_fleet.nodes[:2]
    swapped = tmp_path / "known_hosts"
    swapped.write_text(f"{first.address} {second.host_public_key}\n")
    assert nspawn_fleet.client_key is not None
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(
            first.address,
            username="root",
            client_keys=[str(nspawn_fleet.client_key.private_path)],
            known_hosts=str(swapped),
        )


@pytest.mark.nspawn
async def test_snapshotter_unit_state(nspawn_fleet: NspawnFleet) -> None:
    command = f"systemctl show -p ActiveState {SNAPSHOTTER_UNIT}"
    for node in nspawn_fleet.nodes:
        async with connect_node(nspawn_fleet, node) as conn:
            result = await conn.run(command, check=True)
        state = result.stdout.strip()
        if node.name in HEALTHY:
            assert state == "ActiveState=active", node.name
        else:
            assert state == "ActiveState=failed", node.name


@pytest.mark.nspawn
async def test_broken_node_journal_has_fatal_line(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node(BROKEN)
    command = f"journalctl --no-pager -o json -u {SNAPSHOTTER_UNIT}"
    async with connect_node(nspawn_fleet, node) as conn:
        result = await conn.run(command, check=True)
    messages = [json.loads(line)["MESSAGE"] for line in result.stdout.splitlines()]
    fatal = [m for m in messages if isinstance(m, str) and "level=fatal" in m]
    assert fatal, messages[-5:]
    assert 'msg="failed to start nydus-snapshotter"' in fatal[-1]
    assert "read FUSE configuration file" in fatal[-1]


@pytest.mark.nspawn
def test_broken_node_roots_mismatch(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node(BROKEN)
    containerd = tomllib.loads(node.read_file("/etc/containerd/config.toml"))
    snapshotter = tomllib.loads(node.read_file("/etc/nydus/config.toml"))
    assert containerd["root"] == "/data/containerd"
    assert snapshotter["root"] == "/data/containerd-nydus"


@pytest.mark.nspawn
async def test_ctr_lists_nydus_plugin(nspawn_fleet: NspawnFleet) -> None:
    for node in nspawn_fleet.nodes:
        async with connect_node(nspawn_fleet, node) as conn:
            result = await conn.run("ctr --connect-timeout 2s plugin ls", check=True)
        rows = [line.split() for line in result.stdout.splitlines()]
        assert ["io.containerd.snapshotter.v1", "nydus", "-", "ok"] in rows, node.name


@pytest.mark.nspawn
async def test_grpc_socket_accepts_on_healthy_nodes(nspawn_fleet: NspawnFleet) -> None:
    for name in HEALTHY:
        async with connect_node(nspawn_fleet, nspawn_fleet.node(name)) as conn:
            _, writer = await conn.open_unix_connection(GRPC_SOCKET)
            writer.close()
    async with connect_node(nspawn_fleet, nspawn_fleet.node(BROKEN)) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_unix_connection(GRPC_SOCKET)


@pytest.mark.nspawn
async def test_nydusd_answers_daemon_info(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node(HEALTHY[0])
    async with connect_node(nspawn_fleet, node) as conn:
        status, body = await http_get(conn, SYSTEM_SOCKET, "/api/v1/daemons")
        assert status == 200
        daemons = json.loads(body)
        assert len(daemons) == 1
        daemon = daemons[0]

        status, body = await http_get(conn, daemon["api_socket"], "/api/v1/daemon")
        assert status == 200
        info = json.loads(body)
        assert info["id"] == daemon["id"]
        assert info["state"] == "RUNNING"
        assert info["version"]["package_ver"] == "v2.4.4"

        status, body = await http_get(conn, daemon["api_socket"], "/api/v1/metrics")
        assert status == 200
        metrics = json.loads(body)
        assert len(metrics["fop_hits"]) == 15
        assert len(metrics["read_latency_dist"]) == 8

        status, body = await http_get(conn, daemon["api_socket"], "/api/v1/nope")
        assert status == 404
        assert json.loads(body) == {"code": "UNDEFINED", "message": "NoRoute"}


@pytest.mark.nspawn
async def test_sudo_users(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node(HEALTHY[0])
    async with connect_node(nspawn_fleet, node, SUDO_USER) as conn:
        result = await conn.run("sudo -n id -u", check=True)
        assert result.stdout.strip() == "0"
    async with connect_node(nspawn_fleet, node, PROMPTING_SUDO_USER) as conn:
        result = await conn.run("sudo -n id -u")
        assert result.exit_status == 1
        assert "a password is required" in str(result.stderr)


@pytest.mark.nspawn
async def test_kill_and_start_sshd(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node(HEALTHY[1])
    async with connect_node(nspawn_fleet, node) as conn:
        node.kill_sshd()
        with pytest.raises((asyncssh.ConnectionLost, asyncssh.ChannelOpenError)):
            await conn.run("true", check=True)
    with pytest.raises(OSError):
        await connect_node(nspawn_fleet, node)
    node.start_sshd()
    async with connect_node(nspawn_fleet, node) as conn:
        result = await conn.run("systemctl is-active ssh", check=True)
    assert result.stdout.strip() == "active"


@pytest.mark.nspawn
def test_inventory_lists_nodes(nspawn_fleet: NspawnFleet) -> None:
    inventory = tomllib.loads((nspawn_fleet.workdir / "inventory.toml").read_text())
    assert inventory["defaults"]["user"] == "root"
    assert inventory["defaults"]["known_hosts"] == [str(nspawn_fleet.known_hosts)]
    for node in nspawn_fleet.nodes:
        entry = inventory["nodes"][node.name]
        assert entry == {"address": node.address, "port": 22}


@pytest.mark.sshd
async def test_loopback_servers_run_commands(loopback_sshd: LoopbackFleet) -> None:
    ports = {server.port for server in loopback_sshd.servers}
    assert len(ports) == len(loopback_sshd.servers)
    for server in loopback_sshd.servers:
        async with connect(loopback_sshd, server.address, server.port) as conn:
            result = await conn.run("wc -c < ~/.bashrc", check=True)
        # The private mount namespace hides the host's .bashrc.
        assert result.stdout.strip() == "0"
