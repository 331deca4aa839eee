"""Pilot and snapshot tests of marking nodes and running a runbook on several.

The fleet replays facts recorded from the booted nodes. Each node's commands
go to a recording transport that responds as the node would: the snapshotter's
root is missing until `mkdir` creates it, so the bad-config runbook has one
step to run. Nothing reaches a node.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from doubles.recorded_facts import load_recorded
from factbuilder import SAMPLES
from runbook_doubles import RecordingTransport, default_answer, result, with_stray
from test_screens import SIZE, make_app, make_fleet, quiet, settle
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, OptionList, Static

from nydus_console.audit import AuditLog
from nydus_console.facts import NodeFacts
from nydus_console.runbooks import load_runbooks
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.fleet import FleetScreen
from nydus_console.screens.multirun import MultiRunScreen
from nydus_console.screens.runbookpicker import (
    DestructiveNodesModal,
    RunbookPickerModal,
)
from nydus_console.transport.base import CommandResult, TransportError

RUNBOOK = "bad-config"
MKDIR = "mkdir"
DUPLICATE = load_runbooks()["duplicate-snapshotter"]
STALE = load_runbooks()["stale-snapshot"]
STRAY = 4242


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the runner's saved progress in the test's directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


class RootlessNode(RecordingTransport):
    """A node whose snapshotter root is missing; `mkdir` may fail."""

    def __init__(self, name: str, calls: list[tuple[str, str]], fail: bool) -> None:
        super().__init__(self.respond)
        self.node = name
        self.shared = calls
        self.fail = fail
        self.created = False

    def respond(self, argv: tuple[str, ...]) -> CommandResult | TransportError:
        self.shared.append((self.node, " ".join(argv)))
        if argv[0] == MKDIR:
            self.created = not self.fail
            if self.fail:
                return CommandResult(argv, 1, "", "mkdir: Read-only file system", 0.0)
        if argv[:2] == ("test", "-d"):
            return result(argv, 0 if self.created else 1)
        return default_answer(argv)


def rootless(
    app: NydusConsoleApp, nodes: list[str], failing: str = ""
) -> tuple[dict[str, RootlessNode], list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    transports = {n: RootlessNode(n, calls, n == failing) for n in nodes}
    for name, transport in transports.items():
        app.fleet.transports[name] = transport  # type: ignore[assignment]
    return transports, calls


def fleet_rows(app: NydusConsoleApp) -> dict[str, str]:
    table = app.screen.query_one(DataTable)
    return {str(key.value): str(table.get_row(key)[0]) for key in table.rows}


async def mark(pilot: Pilot[Any], nodes: list[str]) -> None:
    table = pilot.app.screen.query_one(DataTable)
    for node in nodes:
        table.move_cursor(row=table.get_row_index(node))
        await pilot.pause()
        await pilot.press("space")


async def open_run(pilot: Pilot[Any], nodes: list[str]) -> MultiRunScreen:
    """Mark the nodes, press b and choose the bad-config runbook."""
    await settle(pilot)
    await mark(pilot, nodes)
    await pilot.press("b")
    picker = pilot.app.screen
    assert isinstance(picker, RunbookPickerModal)
    options = picker.query_one(OptionList)
    options.highlighted = [r.id for r in picker.runbooks].index(RUNBOOK)
    await pilot.press("enter")
    screen = pilot.app.screen
    assert isinstance(screen, MultiRunScreen)
    return screen


async def wait_for_end(pilot: Pilot[Any], screen: MultiRunScreen) -> None:
    for _ in range(200):
        if screen.state == "ended":
            await settle(pilot)
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the run did not end: {screen.state}")


def cells(screen: MultiRunScreen, node: str) -> list[str]:
    return [str(cell) for cell in screen.query_one(DataTable).get_row(node)]


async def test_space_marks_rows_and_b_picks_for_them(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, ["nc-node1", "nc-node2", "nc-node3"])
        await mark(pilot, ["nc-node3"])  # a second space removes the mark
        fleet = app.screen
        assert isinstance(fleet, FleetScreen)
        assert fleet.marked == {"nc-node1", "nc-node2"}
        rows = fleet_rows(app)
        assert rows["nc-node1"] == "● nc-node1"
        assert rows["nc-node3"] == "nc-node3"
        status = str(fleet.query_one("#fleet-status", Static).render())
        assert "2 marked" in status
        await pilot.press("b")
        picker = app.screen
        assert isinstance(picker, RunbookPickerModal)
        assert picker.nodes == ["nc-node1", "nc-node2"]
        await pilot.press("escape")
        assert app.screen is fleet


async def test_b_without_marks_picks_for_highlighted_node(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("nc-node2"))
        await pilot.pause()
        await pilot.press("b")
        picker = app.screen
        assert isinstance(picker, RunbookPickerModal)
        assert picker.nodes == ["nc-node2"]


async def test_serial_run_runs_node_after_node(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transports, calls = rootless(app, ["nc-node1", "nc-node2"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, ["nc-node2", "nc-node1"])
        assert screen.nodes == ["nc-node1", "nc-node2"]
        assert screen.parallel == 1
        await pilot.press("r")
        await wait_for_end(pilot, screen)
        for node in screen.nodes:
            assert cells(screen, node)[1] == "completed"
            assert "1 step(s) done" in cells(screen, node)[3]
    assert all(t.created for t in transports.values())
    order = [node for node, _ in calls]
    assert order.index("nc-node2") > len(order) - order[::-1].index("nc-node1") - 1
    ran = [e for e in app.gate.audit.entries() if e["outcome"] == "ran"]
    assert [e["node"] for e in ran] == ["nc-node1", "nc-node2"]
    assert all(e["command"].startswith("mkdir -p -m 0700 ") for e in ran)


async def test_first_failure_stops_the_rest(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    nodes = ["nc-node1", "nc-node2", "nc-node4"]
    _, calls = rootless(app, nodes, failing="nc-node2")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, nodes)
        await pilot.press("r")
        await wait_for_end(pilot, screen)
        assert cells(screen, "nc-node1")[1] == "completed"
        assert cells(screen, "nc-node2")[1] == "failed"
        assert "Read-only file system" in cells(screen, "nc-node2")[3]
        last = cells(screen, "nc-node4")
        assert last[1] == "not started"
        assert "an earlier node failed" in last[3]
    assert not [c for c in calls if c[0] == "nc-node4"]


async def test_dry_run_shows_commands_and_runs_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transports, calls = rootless(app, ["nc-node1", "nc-node2"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, ["nc-node1", "nc-node2"])
        await pilot.press("p", "d", "r")
        assert screen.parallel == 2
        await wait_for_end(pilot, screen)
        for node in screen.nodes:
            assert cells(screen, node)[1] == "completed"
            assert "dry run: 1 command(s) shown, none run" in cells(screen, node)[3]
            log = "\n".join(screen.progress[node].log)
            assert "command: mkdir -p -m 0700 " in log
            assert "dry-run: would run: mkdir" in log
    assert not [c for c in calls if c[1].startswith(MKDIR)]
    assert not any(t.created for t in transports.values())
    assert app.gate.audit.entries() == []


async def test_read_only_refuses_and_audits(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path)
    app = NydusConsoleApp(
        fleet.inventory,
        read_only=True,
        refresh_seconds=0,
        fleet=fleet,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )
    _, calls = rootless(app, ["nc-node1", "nc-node2"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, ["nc-node1", "nc-node2"])
        await pilot.press("r")
        await pilot.pause()
        assert screen.state == "ready"
        assert cells(screen, "nc-node1")[1] == "refused (read-only)"
    assert calls == []
    entries = app.gate.audit.entries()
    assert [(e["node"], e["outcome"]) for e in entries] == [
        ("nc-node1", "refused"),
        ("nc-node2", "refused"),
    ]
    assert entries[0]["reason"] == "the console runs with --read-only"
    assert entries[0]["action"] == f"runbook {RUNBOOK}"


async def test_step_refused_at_run_time_shown_refused(tmp_path: Path) -> None:
    """A step that read-only mode refuses during the run is refused, not failed.

    The start refuses read-only mode up front; this starts the run past that
    check, as when read-only mode is set while the nodes are queued.
    """
    app = make_app(tmp_path)
    nodes = ["nc-node1", "nc-node2"]
    _, calls = rootless(app, nodes)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, nodes)
        app.gate.read_only = True
        screen.begin([])
        await wait_for_end(pilot, screen)
        first = cells(screen, "nc-node1")
        assert first[1] == "refused (read-only)"
        assert first[3].startswith("step 4 refused (read-only): ")
        assert cells(screen, "nc-node2")[1] == "not started"
        log = "\n".join(screen.progress["nc-node1"].log)
        assert "refused (read-only): " in log
        assert "failed" not in log
        assert "on failure" not in log
    assert not [c for c in calls if c[1].startswith(MKDIR)]
    (entry,) = app.gate.audit.entries()
    assert (entry["node"], entry["outcome"]) == ("nc-node1", "refused")


async def test_runbook_needing_parameter_not_started(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    _, calls = rootless(app, ["nc-node1", "nc-node2"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = MultiRunScreen(["nc-node1", "nc-node2"], STALE)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert screen.state == "ready"
        messages = [n.message for n in app._notifications]
    assert any("stale-snapshot needs image" in m for m in messages)
    assert any("--param image=VALUE" in m for m in messages)
    assert calls == []


async def test_destructive_runbook_asks_for_node_names(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    _, calls = rootless(app, ["nc-node1", "nc-node2"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await mark(pilot, ["nc-node1", "nc-node2"])
        await pilot.press("b")
        picker = app.screen
        assert isinstance(picker, RunbookPickerModal)
        ids = [r.id for r in picker.runbooks]
        picker.query_one(OptionList).highlighted = ids.index("duplicate-snapshotter")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, MultiRunScreen)
        await pilot.press("r")
        modal = app.screen
        assert isinstance(modal, DestructiveNodesModal)
        assert modal.focused is not None
        assert modal.focused.id == "destructive-cancel"
        modal.query_one("#destructive-names", Input).value = "nc-node9"
        modal.query_one("#destructive-start", Button).press()
        await pilot.pause()
        assert app.screen is modal, "a name outside the run was accepted"
        await pilot.press("escape")
        assert app.screen is screen
        assert screen.state == "ready"
    assert calls == []


class HeldNode(RootlessNode):
    """A rootless node whose `mkdir` waits until the test releases it."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        super().__init__(name, calls, fail=False)
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, argv: Sequence[str], **options: Any) -> CommandResult:
        if argv[0] == MKDIR:
            self.reached.set()
            await self.release.wait()
        return await super().run(argv, **options)


async def test_abort_stops_before_next_step(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transports, calls = rootless(app, ["nc-node2"])
    held = HeldNode("nc-node1", calls)
    app.fleet.transports["nc-node1"] = held  # type: ignore[assignment]
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, ["nc-node1", "nc-node2"])
        await pilot.press("r")
        await held.reached.wait()
        await pilot.press("escape")
        assert app.screen is screen, "escape left a running run"
        await pilot.press("a")
        held.release.set()
        await wait_for_end(pilot, screen)
        assert cells(screen, "nc-node1")[1] == "completed"
        assert cells(screen, "nc-node2")[1] == "aborted"
    assert held.created
    assert not transports["nc-node2"].created
    assert not [c for c in calls if c[0] == "nc-node2" and c[1].startswith(MKDIR)]


class StrayProber:
    """Recorded facts of a node with a stray snapshotter until it is killed."""

    def __init__(self, node: str, transport: RecordingTransport) -> None:
        self.facts = load_recorded(SAMPLES / "facts")[node]
        self.transport = transport

    async def probe(self, full: bool = False) -> NodeFacts:
        facts = copy.deepcopy(self.facts)
        if not any(argv[0] == "kill" for argv in self.transport.calls):
            with_stray(facts, STRAY)
        return facts


async def test_destructive_step_runs_only_on_typed_node(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transports, _ = rootless(app, ["nc-node1", "nc-node2"])
    for name, transport in transports.items():
        app.fleet.probers[name] = StrayProber(name, transport)  # type: ignore[assignment]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = MultiRunScreen(["nc-node1", "nc-node2"], DUPLICATE)
        app.push_screen(screen)
        await pilot.pause()
        await pilot.press("r")
        modal = app.screen
        assert isinstance(modal, DestructiveNodesModal)
        modal.query_one("#destructive-names", Input).value = "nc-node2"
        modal.query_one("#destructive-start", Button).press()
        await wait_for_end(pilot, screen)
        skipped = "\n".join(screen.progress["nc-node1"].log)
    assert "skipped: destructive; its node name was not typed" in skipped
    assert ("kill", "-TERM", str(STRAY)) in transports["nc-node2"].calls
    assert not [a for a in transports["nc-node1"].calls if a[0] == "kill"]
    entries = app.gate.audit.entries()
    ran = [(e["node"], e["command"]) for e in entries if "event" not in e]
    assert ran == [("nc-node2", f"kill -TERM {STRAY}")]


def test_snapshot_multirun_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    nodes = ["nc-node1", "nc-node2", "nc-node4"]
    rootless(app, nodes, failing="nc-node2")

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_run(pilot, nodes)
        await pilot.press("r")
        await wait_for_end(pilot, screen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("nc-node2"))
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_multirun_bindings_have_ids() -> None:
    screens = (MultiRunScreen, RunbookPickerModal, DestructiveNodesModal)
    for screen in screens:
        for binding in screen.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.id, f"{screen.__name__} binding {binding.key} has no id"
