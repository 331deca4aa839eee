"""`nydus-console doctor` against three booted Debian nodes, one broken on purpose.

The service states come from each node's real systemd; the snapshotter and
nydusd are doubles installed as real units.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from console_run import run_console
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import SYSTEM_SOCKET, restart_snapshotter, wait_until
from testbed.rootfs import PROMPTING_SUDO_USER, SUDO_USER

pytestmark = pytest.mark.nspawn

HEALTHY = ("nc-node1", "nc-node2")
BROKEN = "nc-node3"


@pytest.fixture(scope="module")
def doctor_json(
    nspawn_fleet: NspawnFleet, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    inventory = nspawn_fleet.write_inventory(home / "inventory.toml")
    result = run_console("doctor", "--inventory", str(inventory), "--json", home=home)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def findings(document: dict[str, Any], node: str) -> dict[str, dict[str, Any]]:
    entry = next(n for n in document["nodes"] if n["name"] == node)
    return {f["check"]: f for f in entry["findings"]}


def test_doctor_exit_code_is_failure(doctor_json: tuple[int, dict[str, Any]]) -> None:
    code, document = doctor_json
    assert code == 2
    assert document["exit_code"] == 2
    assert document["schema"] == "nydus-console/doctor/v1"
    assert {n["name"] for n in document["nodes"]} == {*HEALTHY, BROKEN}


@pytest.mark.parametrize("node", HEALTHY)
def test_healthy_nodes_pass(doctor_json: tuple[int, dict[str, Any]], node: str) -> None:
    _, document = doctor_json
    entry = next(n for n in document["nodes"] if n["name"] == node)
    bad = {
        f["check"]: f["message"]
        for f in entry["findings"]
        if f["status"] not in ("ok", "skip")
    }
    assert entry["status"] == "ok", bad
    assert entry["summary"]["service"] == "active/running"
    assert entry["summary"]["snapshotter"] == "v0.15.15"
    assert entry["summary"]["fs_driver"] == "fusedev"
    checks = findings(document, node)
    assert checks["socket.grpc"]["status"] == "ok"
    assert checks["containerd.plugin"]["status"] == "ok"
    assert checks["service.state"]["evidence"][0]["source"].startswith("systemctl")


def test_broken_node_reports_root_and_service(
    doctor_json: tuple[int, dict[str, Any]], nspawn_fleet: NspawnFleet
) -> None:
    _, document = doctor_json
    checks = findings(document, BROKEN)
    root = checks["config.root_location"]
    assert root["status"] == "fail"
    assert (
        'root = "/data/containerd/io.containerd.snapshotter.v1.nydus"'
        in (root["next_step"])
    )
    service = checks["service.state"]
    assert service["status"] == "fail"
    real_state = nspawn_fleet.node(BROKEN).unit_property(
        "nydus-snapshotter.service", "ActiveState"
    )
    assert real_state != "active"
    assert f"ActiveState={real_state}" in service["evidence"][0]["lines"]
    assert checks["config.nydusd_config"]["status"] == "fail"
    assert checks["socket.grpc"]["status"] == "fail"


def test_doctor_text_output(nspawn_fleet: NspawnFleet, tmp_path: Path) -> None:
    inventory = nspawn_fleet.write_inventory(tmp_path / "inventory.toml")
    result = run_console("doctor", "--inventory", str(inventory), home=tmp_path)
    assert result.returncode == 2
    assert f"== {BROKEN}" in result.stdout
    assert "FAIL Root under containerd's root" in result.stdout


def test_unreachable_node_exit_code(nspawn_fleet: NspawnFleet, tmp_path: Path) -> None:
    node = nspawn_fleet.node("nc-node2")
    inventory = nspawn_fleet.write_inventory(
        tmp_path / "inventory.toml", {"nc-node2": {"connect_timeout": 3}}
    )
    node.stop_sshd()
    try:
        result = run_console(
            "doctor", "--inventory", str(inventory), "--json", home=tmp_path
        )
    finally:
        node.start_sshd()
    document = json.loads(result.stdout)
    assert result.returncode == 3
    entry = next(n for n in document["nodes"] if n["name"] == "nc-node2")
    assert entry["status"] == "unreachable"
    assert entry["error"]["kind"] == "refused"
    others = [n for n in document["nodes"] if n["name"] != "nc-node2"]
    assert all("findings" in n for n in others)


def test_sudo_users(nspawn_fleet: NspawnFleet, tmp_path: Path) -> None:
    inventory = nspawn_fleet.write_inventory(
        tmp_path / "inventory.toml",
        {
            "nc-node1": {"user": SUDO_USER, "sudo": True},
            "nc-node2": {"user": PROMPTING_SUDO_USER, "sudo": True},
        },
    )
    result = run_console(
        "doctor", "--inventory", str(inventory), "--json", home=tmp_path, timeout=60
    )
    document = json.loads(result.stdout)
    nodes = {n["name"]: n for n in document["nodes"]}
    checks = findings(document, "nc-node1")
    assert checks["service.state"]["status"] == "ok"
    assert checks["config.root_location"]["status"] == "ok"
    assert checks["nydusd.daemons"]["status"] in ("ok", "unknown")
    # sshd opens unix sockets as the login user, so a root-only socket is
    # reported as not testable rather than as broken.
    assert checks["socket.grpc"]["status"] == "unknown"
    assert "log in as root" in checks["socket.grpc"]["message"]
    error = nodes["nc-node2"]["error"]
    assert error["kind"] == "sudo needs a password"
    assert "NOPASSWD" in error["next_step"]


async def test_pooled_connection_drop_and_reconnect(nspawn_fleet: NspawnFleet) -> None:
    from nydus_console.fleet import Fleet
    from nydus_console.inventory import load_inventory
    from nydus_console.transport.base import ErrorKind

    inventory = load_inventory(nspawn_fleet.write_inventory())
    fleet = Fleet(inventory)
    node = nspawn_fleet.node("nc-node1")
    try:
        first = await fleet.probe_all(full=True)
        assert all(r.error is None for r in first), [r.error for r in first]
        node.kill_sshd()
        try:
            dropped = {r.spec.name: r for r in await fleet.probe_all()}
        finally:
            node.start_sshd()
        error = dropped["nc-node1"].error
        assert error is not None
        assert error.kind in (ErrorKind.DISCONNECTED, ErrorKind.REFUSED)
        assert dropped["nc-node2"].error is None
        fleet.reset_backoff()
        again = await fleet.probe_node("nc-node1")
        assert again.error is None, again.error
        assert again.status == "ok"
    finally:
        await fleet.close()


def test_second_snapshotter_process_detected(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    node = nspawn_fleet.node("nc-node2")
    stray = node.exec(
        [
            "sh",
            "-c",
            "setsid /usr/local/bin/containerd-nydus-grpc --config "
            "/etc/nydus/config.toml --address /run/containerd-nydus/stray.sock "
            "--daemons 0 >/dev/null 2>&1 & echo $!",
        ],
        check=True,
    )
    pid = stray.stdout.strip()
    try:
        inventory = nspawn_fleet.write_inventory(tmp_path / "inventory.toml")
        result = run_console(
            "doctor", "--inventory", str(inventory), "--json", home=tmp_path
        )
        checks = findings(json.loads(result.stdout), "nc-node2")
        finding = checks["process.single_snapshotter"]
        assert finding["status"] == "fail"
        main_pid = node.unit_property("nydus-snapshotter.service", "MainPID")
        assert f"main PID {main_pid}" in finding["next_step"]
    finally:
        node.exec(["sh", "-c", f"kill {pid} 2>/dev/null; true"])
        # The stray replaced and then removed the shared system.sock; a restart
        # gives the node back its healthy state for the tests after this one.
        restore_snapshotter(node)


def restore_snapshotter(node: Node) -> None:
    restart_snapshotter(node)
    wait_for_system_socket(node)


def wait_for_system_socket(node: Node) -> None:
    wait_until(
        lambda: node.exec(["test", "-S", SYSTEM_SOCKET]).returncode == 0,
        f"{node.name} did not recreate {SYSTEM_SOCKET}",
    )


async def test_restart_action_on_node(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    from nydus_console.actions import ActionGate, restart_service
    from nydus_console.audit import AuditLog
    from nydus_console.fleet import Fleet
    from nydus_console.inventory import load_inventory

    node = nspawn_fleet.node("nc-node1")
    unit = "nydus-snapshotter.service"
    before = node.unit_property(unit, "MainPID")
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    audit = AuditLog(tmp_path / "audit.jsonl")
    try:
        result = await ActionGate(audit, read_only=False).run(
            restart_service(unit),
            fleet.specs["nc-node1"],
            fleet.transports["nc-node1"],
            confirmed_by="nc-node1",
        )
        # The restarted double needs a moment to recreate its sockets.
        wait_for_system_socket(node)
        report = await fleet.probe_node("nc-node1", full=True)
    finally:
        await fleet.close()
    assert result.exit_status == 0
    after = node.unit_property(unit, "MainPID")
    assert after not in (before, "0")
    (entry,) = audit.entries()
    assert entry["outcome"] == "ran"
    assert entry["command"] == f"systemctl restart {unit}"
    assert report.facts is not None
    assert report.facts.units[unit].main_pid == int(after)


async def test_refresh_follows_service_stop_and_start(
    nspawn_fleet: NspawnFleet,
) -> None:
    from nydus_console.fleet import Fleet
    from nydus_console.inventory import load_inventory

    node = nspawn_fleet.node("nc-node2")
    unit = "nydus-snapshotter.service"
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    try:
        await fleet.probe_node("nc-node2", full=True)
        steady = await fleet.probe_node("nc-node2")
        assert steady.facts is not None
        assert not steady.facts.systemd_probed, "no PID changed: systemctl skipped"
        assert steady.status == "ok"
        node.systemctl("stop", unit, check=True)
        stopped = await fleet.probe_node("nc-node2")
        assert stopped.facts is not None and stopped.facts.systemd_probed
        checks = {f.check: f for f in stopped.findings}
        assert checks["service.state"].status == "fail"
        assert "inactive" in checks["service.state"].message
        again = await fleet.probe_node("nc-node2")
        assert {f.check: f for f in again.findings}["service.state"].status == "fail"
    finally:
        restore_snapshotter(node)
        await fleet.close()
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    try:
        assert (await fleet.probe_node("nc-node2", full=True)).status == "ok"
    finally:
        await fleet.close()


def test_unknown_key_shows_ed25519(nspawn_fleet: NspawnFleet, tmp_path: Path) -> None:
    node = nspawn_fleet.node("nc-node1")
    assert nspawn_fleet.client_key is not None
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[defaults]\nidentity_file = "{nspawn_fleet.client_key.private_path}"\n'
        f'[nodes.nc-node1]\naddress = "root@{node.address}"\n'
    )
    result = run_console(
        "doctor", "--inventory", str(inventory), "--json", home=tmp_path
    )
    error = json.loads(result.stdout)["nodes"][0]["error"]
    assert error["kind"] == "host key unknown"
    assert error["host_key"]["type"] == "ssh-ed25519"
    expected = subprocess.run(
        ["ssh-keygen", "-lf", "-"],
        input=node.host_public_key,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    assert error["host_key"]["fingerprint"] == expected.split()[1]
    assert "/etc/ssh/ssh_host_ed25519_key.pub" in error["next_step"]


async def test_restart_clears_a_start_limit(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    from nydus_console.actions import ActionGate, reset_and_restart
    from nydus_console.audit import AuditLog
    from nydus_console.fleet import Fleet
    from nydus_console.inventory import load_inventory

    node = nspawn_fleet.node("nc-node2")
    unit = "nc-start-limit.service"
    path = f"/etc/systemd/system/{unit}"
    ready = "/run/nc-start-limit-ready"
    # Restart=always with a command that fails until `ready` exists: systemd
    # restarts it until its start limit, then refuses every start.
    node.write_file(
        path,
        "[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=300\n\n[Service]\n"
        f"ExecStart=/bin/sh -c 'test -e {ready} && exec sleep 600; exit 1'\n"
        "Restart=always\nRestartSec=100ms\n",
    )
    node.systemctl("daemon-reload", check=True)
    node.systemctl("start", unit)
    deadline = time.monotonic() + 20
    while node.unit_property(unit, "ActiveState") != "failed":
        assert time.monotonic() < deadline, "the unit never hit its start limit"
        time.sleep(0.2)
    node.exec(["touch", ready])  # the cause is fixed, yet a plain start is refused
    assert node.systemctl("start", unit).returncode != 0
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    try:
        result = await ActionGate(AuditLog(tmp_path / "a.jsonl"), read_only=False).run(
            reset_and_restart(unit),
            fleet.specs["nc-node2"],
            fleet.transports["nc-node2"],
            confirmed_by="nc-node2",
        )
        assert result.exit_status == 0, result.stderr
        assert node.unit_property(unit, "ActiveState") == "active"
    finally:
        await fleet.close()
        node.systemctl("stop", unit)
        node.exec(["rm", "-f", path, ready])
        node.systemctl("daemon-reload")
        node.systemctl("reset-failed", unit)
