"""Writing configs on a booted node over real sshd, with restart and rollback.

The node runs real systemd and containerd; the snapshotter is the test
double, which exits at start on an invalid config as the real one does.
Every test puts the node's files and services back as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import CONTAINERD_CONFIG, SNAPSHOTTER_CONFIG, SNAPSHOTTER_UNIT

from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.configedit.apply import (
    WRITE_SCRIPT,
    ConfigApplier,
    ConfigChange,
    sha256_text,
)
from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.transport.quoting import quote_argv

NODE = "nc-node2"
GRPC_SOCKET = "/run/containerd-nydus/containerd-nydus-grpc.sock"


@pytest.fixture
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    node = nspawn_fleet.node(NODE)
    saved = {
        path: node.read_file(path) for path in (SNAPSHOTTER_CONFIG, CONTAINERD_CONFIG)
    }
    yield node
    for path, text in saved.items():
        if node.read_file(path) != text:
            node.write_file(path, text)
    for unit in (SNAPSHOTTER_UNIT, "containerd.service"):
        node.systemctl("reset-failed", unit)
        node.systemctl("restart", unit, check=True)


@pytest.fixture
async def fleet(nspawn_fleet: NspawnFleet, tmp_path: Path) -> AsyncIterator[Fleet]:
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    fleet = Fleet(inventory)
    yield fleet
    await fleet.close()


def applier(
    fleet: Fleet, tmp_path: Path, verify_seconds: float = 20.0
) -> ConfigApplier:
    gate = ActionGate(AuditLog(tmp_path / "audit.jsonl"), read_only=False)
    return ConfigApplier(
        gate,
        fleet.specs[NODE],
        fleet.transports[NODE],
        confirmed_by=NODE,
        verify_seconds=verify_seconds,
    )


async def test_write_keeps_owner_mode_and_backup(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    node.exec(["chmod", "0640", SNAPSHOTTER_CONFIG], check=True)
    old = node.read_file(SNAPSHOTTER_CONFIG)
    new = old + '\n# edited by a test: "quotes" $(touch /tmp/pwned) `x`\n'
    change = ConfigChange(SNAPSHOTTER_CONFIG, old, new, SNAPSHOTTER_UNIT, GRPC_SOCKET)
    report = await applier(fleet, tmp_path).apply(change)
    assert report.ok, report.steps
    assert node.read_file(SNAPSHOTTER_CONFIG) == new
    assert node.read_file(report.backup) == old
    mode = node.exec(["stat", "-c", "%a %U", SNAPSHOTTER_CONFIG], check=True)
    assert mode.stdout.split() == ["640", "root"]
    assert node.exec(["test", "-e", "/tmp/pwned"]).returncode == 1
    audit = (tmp_path / "audit.jsonl").read_text()
    assert "edited by a test" not in audit
    assert f"sha256 {sha256_text(new)}" in audit
    assert [s.name for s in report.steps] == [
        f"write {SNAPSHOTTER_CONFIG}",
        f"reset-failed {SNAPSHOTTER_UNIT}",
        f"restart {SNAPSHOTTER_UNIT}",
        f"verify {SNAPSHOTTER_UNIT}",
    ]


async def test_failed_restart_rolls_back(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    old = node.read_file(SNAPSHOTTER_CONFIG)
    new = old.replace('daemon_mode = "dedicated"', 'daemon_mode = "bogus"')
    assert new != old
    change = ConfigChange(SNAPSHOTTER_CONFIG, old, new, SNAPSHOTTER_UNIT, GRPC_SOCKET)
    report = await applier(fleet, tmp_path, verify_seconds=8).apply(change)
    assert not report.ok
    assert report.rolled_back
    assert node.read_file(SNAPSHOTTER_CONFIG) == old
    names = [(s.name, s.ok) for s in report.steps]
    assert (f"verify {SNAPSHOTTER_UNIT}", False) in names
    assert (f"restore {SNAPSHOTTER_CONFIG} from the backup", True) in names
    assert names[-1] == (f"verify {SNAPSHOTTER_UNIT}", True)
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    # The restore keeps the rejected content in a backup of its own.
    assert node.read_file(report.backup) == old
    assert node.read_file(report.backup.replace(".bak", "-rejected.bak")) == new


async def test_broken_containerd_config_rolls_back(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    old = node.read_file(CONTAINERD_CONFIG)
    new = old + "\n[plugins.bogus\n"  # containerd cannot parse this and exits
    change = ConfigChange(CONTAINERD_CONFIG, old, new, "containerd.service")
    report = await applier(fleet, tmp_path, verify_seconds=10).apply(change)
    assert report.rolled_back
    assert node.read_file(CONTAINERD_CONFIG) == old
    assert report.steps[-1].ok, report.steps
    assert node.unit_property("containerd.service", "ActiveState") == "active"


async def test_file_changed_since_read_is_left_alone(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    current = node.read_file(SNAPSHOTTER_CONFIG)
    stale = current + "# what the console read before someone else edited\n"
    change = ConfigChange(SNAPSHOTTER_CONFIG, stale, stale + "# mine\n")
    report = await applier(fleet, tmp_path).apply(change)
    assert not report.ok
    assert "changed on the node since it was read" in report.steps[0].detail
    assert node.read_file(SNAPSHOTTER_CONFIG) == current


async def test_dropped_connection_leaves_the_file_intact(
    node: Node, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    original = node.read_file(SNAPSHOTTER_CONFIG)
    new = original + "# " + "x" * 200_000 + "\n"
    argv = ["sh", "-c", WRITE_SCRIPT, "write-file", SNAPSHOTTER_CONFIG]
    argv += [sha256_text(new), sha256_text(original), "20261204T000000Z"]
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    spec = inventory.nodes[[n.name for n in inventory.nodes].index(NODE)]
    conn = await asyncssh.connect(
        spec.host,
        username="root",
        client_keys=[spec.identity_file] if spec.identity_file else None,
        known_hosts=None,
    )
    process = await conn.create_process(quote_argv(argv))
    process.stdin.write(new[:50_000])
    await asyncio.sleep(0.5)
    conn.abort()  # the connection drops before the rest of the content
    await asyncio.sleep(2.0)
    assert node.read_file(SNAPSHOTTER_CONFIG) == original
    leftovers = node.exec(["sh", "-c", "ls -a /etc/nydus | grep '^\\.config'"])
    assert leftovers.stdout == ""
