"""The setup screen on a fresh booted node, offered by the node screen.

The node has containerd only (the ``absent`` profile). The test opens its
node screen, where the failing install check offers setup, and walks the
screen through survey, answers, plan, apply and verify over real sshd,
systemd and containerd, with release tarballs built from the doubles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doubles.release_tarball import build_release
from test_screens import SIZE
from testbed.errors import NodeBootError, TestbedUnavailable
from testbed.fixtures import _unavailable
from testbed.nspawn import NspawnFleet
from testbed.profiles import SNAPSHOTTER_UNIT, boot_fleet, nydus_plugin_listed
from textual.pilot import Pilot
from textual.widgets import Input

from nydus_console.audit import AuditLog
from nydus_console.inventory import load_inventory
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.node import NodeScreen
from nydus_console.screens.setup import SetupConfirmModal, SetupScreen

pytestmark = pytest.mark.nspawn

NODE = "setupui-node1"


@pytest.fixture(scope="module")
def fresh_fleet() -> Iterator[NspawnFleet]:
    try:
        fleet = boot_fleet(("absent",), hostname_prefix="setupui")
    except (TestbedUnavailable, NodeBootError) as error:
        _unavailable(error)
    try:
        yield fleet
    finally:
        fleet.close()


async def wait_idle(pilot: Pilot[Any], screen: SetupScreen) -> None:
    for _ in range(600):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        if not screen.busy:
            return
    raise AssertionError("the setup screen stayed busy")


async def test_setup_screen_sets_up_fresh_node(
    fresh_fleet: NspawnFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    tarballs = build_release(tmp_path / "release")
    inventory = load_inventory(fresh_fleet.write_inventory(tmp_path / "inv.toml"))
    app = NydusConsoleApp(
        inventory, refresh_seconds=0, audit=AuditLog(tmp_path / "audit.jsonl")
    )
    node = fresh_fleet.node(NODE)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.open_node(NODE)
        await pilot.pause()
        node_screen = app.screen
        assert isinstance(node_screen, NodeScreen)
        assert node_screen.needs_setup()
        await pilot.press("S")
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await wait_idle(pilot, screen)
        assert screen.survey is not None and screen.survey.fuse

        paths = " ".join(str(path) for path in tarballs)
        screen.query_one("#setup-tarballs", Input).value = paths
        await pilot.press("p")
        await wait_idle(pilot, screen)
        assert screen.plan is not None, screen.message
        assert len(screen.plan.steps) > 5

        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, SetupConfirmModal)
        await pilot.click("#setup-confirm-apply")
        await pilot.pause()
        await wait_idle(pilot, screen)
        assert screen.outcome is not None and screen.outcome.ok, screen.message
        assert screen.checks and all(c.ok for c in screen.checks), screen.checks
        assert screen.stage == "verify"
        assert not screen.check_action("apply", ())

    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    assert nydus_plugin_listed(node)
    outcomes = {entry["outcome"] for entry in app.gate.audit.entries()}
    assert outcomes == {"ran"}
