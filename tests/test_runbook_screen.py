"""Pilot and snapshot tests of the runbook runner screen.

The fleet replays facts recorded from the booted nodes, with a second
containerd-nydus-grpc added to nc-node2 until the test transport has seen a
`kill`. Every command goes to that recording transport, never to a node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factbuilder import SAMPLES
from runbook_doubles import RecordingTransport, with_stray
from test_screens import SIZE, make_app, quiet, settle
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Static

from nydus_console.facts import NodeFacts
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.confirm import ConfirmActionModal
from nydus_console.screens.node import NodeScreen
from nydus_console.screens.runbook import RunbookScreen

NODE = "nc-node2"
STRAY = 4242


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the runner's saved progress in the test's directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


class StrayProber:
    """Recorded facts of nc-node2 with a stray snapshotter until it is killed."""

    def __init__(self, transport: RecordingTransport) -> None:
        from doubles.recorded_facts import load_recorded

        self.facts = load_recorded(SAMPLES / "facts")[NODE]
        self.transport = transport

    async def probe(self, full: bool = False) -> NodeFacts:
        import copy

        facts = copy.deepcopy(self.facts)
        if not any(argv[0] == "kill" for argv in self.transport.calls):
            with_stray(facts, STRAY)
        return facts


def stray_app(tmp_path: Path) -> tuple[NydusConsoleApp, RecordingTransport]:
    app = make_app(tmp_path)
    transport = RecordingTransport()
    app.fleet.transports[NODE] = transport  # type: ignore[assignment]
    app.fleet.probers[NODE] = StrayProber(transport)  # type: ignore[assignment]
    return app, transport


async def open_runbook(pilot: Pilot[Any]) -> RunbookScreen:
    """Open nc-node2, highlight the failing check and press b."""
    await settle(pilot)
    pilot.app.open_node(NODE)  # type: ignore[attr-defined]
    await pilot.pause()
    node_screen = pilot.app.screen
    assert isinstance(node_screen, NodeScreen)
    table = node_screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index("process.single_snapshotter"))
    await pilot.pause()
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, RunbookScreen)
    await wait_for_question(pilot, screen)
    return screen


async def wait_for_question(pilot: Pilot[Any], screen: RunbookScreen) -> None:
    for _ in range(100):
        if screen.pending is not None or screen.report is not None:
            return
        await pilot.pause(0.05)
    raise AssertionError("the runner never asked about a step")


async def wait_for_report(pilot: Pilot[Any], screen: RunbookScreen) -> None:
    """Wait for the run's end and for the probe it starts, which the app routes."""
    for _ in range(200):
        if screen.report is not None:
            await settle(pilot)
            return
        await pilot.pause(0.05)
    raise AssertionError("the run did not end")


async def test_destructive_step_needs_typed_name(tmp_path: Path) -> None:
    app, transport = stray_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_runbook(pilot)
        assert screen.pending_step is not None
        assert screen.pending_step.command == ("kill", "-TERM", str(STRAY))
        await pilot.press("r")
        modal = app.screen
        assert isinstance(modal, ConfirmActionModal)
        assert modal.focused is not None
        assert modal.focused.id == "confirm-cancel"
        await pilot.click("#confirm-run")
        assert isinstance(app.screen, ConfirmActionModal), "Run without the name"
        modal.query_one("#confirm-name", Input).value = NODE
        modal.query_one("#confirm-run", Button).press()
        await wait_for_report(pilot, screen)
        assert screen.report is not None
        assert screen.report.ok, screen.report.results
    assert ("kill", "-TERM", str(STRAY)) in transport.calls
    (entry,) = [e for e in app.gate.audit.entries() if "event" not in e]
    assert entry["command"] == f"kill -TERM {STRAY}"
    assert entry["outcome"] == "ran"


async def test_cancel_then_abort_runs_nothing(tmp_path: Path) -> None:
    app, transport = stray_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_runbook(pilot)
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmActionModal)
        await pilot.press("enter")  # Cancel has the focus
        assert app.screen is screen
        assert screen.pending is not None
        await pilot.press("a")
        await wait_for_report(pilot, screen)
        assert screen.report is not None
        assert str(screen.report.status) == "aborted"
    assert not [argv for argv in transport.calls if argv[0] == "kill"]
    # No action ran; only the abort of the run is audited.
    (end,) = app.gate.audit.entries()
    assert (end["event"], end["outcome"]) == ("runbook run", "aborted")


async def refuse_first_step(pilot: Pilot[Any]) -> RunbookScreen:
    """Run the destructive first step, typing the node name, in read-only mode."""
    screen = await open_runbook(pilot)
    await pilot.press("r")
    modal = pilot.app.screen
    assert isinstance(modal, ConfirmActionModal)
    modal.query_one("#confirm-name", Input).value = NODE
    modal.query_one("#confirm-run", Button).press()
    await wait_for_report(pilot, screen)
    return screen


def read_only_app(tmp_path: Path) -> tuple[NydusConsoleApp, RecordingTransport]:
    app, transport = stray_app(tmp_path)
    app.read_only = True
    app.gate.read_only = True
    return app, transport


async def test_read_only_step_shown_refused(tmp_path: Path) -> None:
    app, transport = read_only_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await refuse_first_step(pilot)
        assert screen.report is not None
        assert str(screen.report.status) == "refused (read-only)"
        assert screen.pending is None, "no retry is offered: nothing ran"
        table = screen.query_one(DataTable)
        status = table.get_cell("stop-stray", "status")
        assert str(status) == "refused (read-only)"
        detail = str(screen.query_one("#runbook-detail", Static).render())
        assert "refused (read-only): " in detail
        assert "on failure" not in detail
        assert "failed" not in detail
    assert not [argv for argv in transport.calls if argv[0] == "kill"]
    (entry,) = app.gate.audit.entries()
    assert entry["outcome"] == "refused"
    assert entry["reason"] == "the console runs with --read-only"


def test_snapshot_read_only_refused_step(snap_compare: Any, tmp_path: Path) -> None:
    app, _ = read_only_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await refuse_first_step(pilot)
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_runbook_screen(snap_compare: Any, tmp_path: Path) -> None:
    app, _ = stray_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_runbook(pilot)
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_runbook_bindings_have_ids() -> None:
    for binding in RunbookScreen.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id, f"RunbookScreen binding {binding.key} has no id"
