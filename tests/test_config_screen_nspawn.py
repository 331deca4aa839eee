"""The config screen writing to a booted node over real sshd and systemd.

nc-node2 runs the snapshotter double, which exits at start on a config it
cannot use, as the real one does. The test writes a good change through the
screen, then one that makes the restart fail, which the screen must roll
back. The node's files and services are put back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_config_screen import field, panel, type_into, wait
from test_screens import SIZE
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import SNAPSHOTTER_CONFIG, SNAPSHOTTER_UNIT
from textual.pilot import Pilot
from textual.widgets import Select

from nydus_console.audit import AuditLog
from nydus_console.inventory import load_inventory
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.configedit import ConfigScreen
from nydus_console.screens.configmodals import WriteConfigModal

pytestmark = pytest.mark.nspawn

NODE = "nc-node2"


@pytest.fixture
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    node = nspawn_fleet.node(NODE)
    saved = node.read_file(SNAPSHOTTER_CONFIG)
    yield node
    if node.read_file(SNAPSHOTTER_CONFIG) != saved:
        node.write_file(SNAPSHOTTER_CONFIG, saved)
    node.exec(["sh", "-c", f"rm -f {SNAPSHOTTER_CONFIG}.*.bak"], check=True)
    node.systemctl("reset-failed", SNAPSHOTTER_UNIT)
    node.systemctl("restart", SNAPSHOTTER_UNIT, check=True)


async def write_through_modal(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+s")
    await pilot.pause()
    assert isinstance(pilot.app.screen, WriteConfigModal)
    await pilot.click("#config-write-run")
    await wait(pilot)


async def test_screen_writes_restarts_and_rolls_back(
    node: Node, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    app = NydusConsoleApp(
        inventory, refresh_seconds=0, audit=AuditLog(tmp_path / "audit.jsonl")
    )
    original = node.read_file(SNAPSHOTTER_CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = ConfigScreen(NODE, "snapshotter", verify_seconds=10)
        app.push_screen(screen)
        await wait(pilot)
        assert screen.mode == "form"

        level = field(screen, "log.level").control
        assert isinstance(level, Select)
        level.value = "debug"
        await pilot.pause()
        await write_through_modal(pilot)
        results = panel(screen, "#config-results")
        assert f"Wrote {SNAPSHOTTER_CONFIG} on {NODE}" in results, results
        written = node.read_file(SNAPSHOTTER_CONFIG)
        assert 'level = "debug"' in written
        backup = results.split("backup: ")[1].split("\n")[0]
        assert node.read_file(backup) == original
        assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
        assert screen.session is not None
        assert screen.session.baseline == written

        # sshd holds this port, so the double cannot listen there and exits.
        await type_into(pilot, field(screen, "metrics.address"), "127.0.0.1:22")
        assert screen.session.blocking() == []
        await write_through_modal(pilot)
        results = panel(screen, "#config-results")
        assert "ROLLED BACK" in results, results
        assert f"FAILED verify {SNAPSHOTTER_UNIT}" in results
        assert node.read_file(SNAPSHOTTER_CONFIG) == written
        assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
        assert screen.has_unsaved_edits()
        audit = (tmp_path / "audit.jsonl").read_text()
        assert audit.count(f'"action": "write {SNAPSHOTTER_CONFIG}"') == 3
