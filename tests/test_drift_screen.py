"""The config drift screen on the booted nodes, read over real sshd.

nc-node3 is the broken node: its snapshotter root, nydusd_config and
containerd root differ from the healthy nodes. nc-node1 alone turns on the
snapshotter's metrics endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.nspawn import NspawnFleet
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from nydus_console.audit import AuditLog
from nydus_console.inventory import load_inventory
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.drift import DriftScreen

SIZE = (150, 30)


def make_app(nspawn_fleet: NspawnFleet, tmp_path: Path) -> NydusConsoleApp:
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    return NydusConsoleApp(
        inventory, refresh_seconds=0, audit=AuditLog(tmp_path / "audit.jsonl")
    )


async def open_drift(pilot: Pilot[Any], kind: str = "snapshotter") -> DriftScreen:
    await pilot.app.workers.wait_for_complete()
    pilot.app.open_drift(kind)  # type: ignore[attr-defined]
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DriftScreen)
    return screen


def cell(screen: DriftScreen, key: str, column: str) -> Any:
    return screen.query_one(DataTable).get_cell(key, column)


async def test_broken_node_stands_out(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    app = make_app(nspawn_fleet, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_drift(pilot)
        assert screen.report is not None
        keys = [drift.key for drift in screen.report.keys]
        assert "root" in keys
        assert "daemon.nydusd_config" in keys
        root = cell(screen, "root", "nc-node3")
        assert str(root) == '"/data/containerd-nydus"'
        assert root.style == "bold red"
        assert cell(screen, "root", "nc-node1").style == "dim"
        summary = str(screen.query_one("#drift-summary", Static).render())
        # nc-node1 alone serves snapshotter metrics, so it differs there.
        assert "nodes that differ from most: nc-node1, nc-node3" in summary
        metrics = next(d for d in screen.report.keys if d.key == "metrics.address")
        assert metrics.outliers == ["nc-node1"]


async def test_kind_key_switches_to_containerd(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    app = make_app(nspawn_fleet, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_drift(pilot)
        await pilot.press("k", "k")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.kind == "containerd"
        assert screen.report is not None
        assert screen.report.kind == "containerd"
        assert str(cell(screen, "root", "nc-node3")) == '"/data/containerd"'


def test_snapshot_drift(
    snap_compare: Any, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_drift(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    app = make_app(nspawn_fleet, tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
