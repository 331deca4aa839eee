"""A runbook on two booted nodes at once from the multi-node run screen.

The runbook touches a marker file under /run on each node over real sshd.
Nothing the other tests rely on changes, and the test removes the markers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.nspawn import NspawnFleet
from textual.widgets import DataTable

from nydus_console.audit import AuditLog
from nydus_console.inventory import load_inventory
from nydus_console.runbooks import parse_runbook
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.multirun import MultiRunScreen

pytestmark = pytest.mark.nspawn

NODES = ["nc-node1", "nc-node2"]
MARKER = "/run/nydus-console-multirun-test"
MARKER_RUNBOOK = f"""\
id = "multirun-marker"
title = "Touch a marker file"
applies = "tests: a step that changes nothing the node uses"

[[step]]
id = "touch"
title = "Touch the marker"
why = "shows that the step ran on the node"
on_failure = "none"
check = {{ command = ["test", "-e", "{MARKER}"], needed_if = "fails" }}
action = ["touch", "{MARKER}"]
verify = {{ command = ["test", "-e", "{MARKER}"], ok_if = "succeeds" }}
"""


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def markers(nspawn_fleet: NspawnFleet) -> Iterator[NspawnFleet]:
    yield nspawn_fleet
    for name in NODES:
        nspawn_fleet.node(name).exec(["rm", "-f", MARKER])


async def test_runbook_on_two_nodes_at_once(
    markers: NspawnFleet, tmp_path: Path
) -> None:
    inventory = load_inventory(markers.write_inventory(tmp_path / "inv.toml"))
    app = NydusConsoleApp(
        inventory, refresh_seconds=0, audit=AuditLog(tmp_path / "audit.jsonl")
    )
    runbook = parse_runbook("multirun-marker.toml", MARKER_RUNBOOK)
    async with app.run_test(size=(150, 36)) as pilot:
        await app.workers.wait_for_complete()
        screen = MultiRunScreen(NODES, runbook)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("p", "r")
        assert screen.parallel == 2
        for _ in range(600):
            if screen.state == "ended":
                break
            await pilot.pause(0.1)
        assert screen.state == "ended"
        await app.workers.wait_for_complete()
        table = screen.query_one(DataTable)
        statuses = {n: str(table.get_cell(n, "status")) for n in NODES}
    assert statuses == {n: "completed" for n in NODES}
    assert [r.status for r in screen.reports] == ["completed", "completed"]
    for name in NODES:
        assert markers.node(name).exec(["test", "-e", MARKER]).returncode == 0
    entries = app.gate.audit.entries()
    ran = [(e["node"], e["command"]) for e in entries if "event" not in e]
    assert sorted(ran) == [(n, f"touch {MARKER}") for n in NODES]
