"""Pilot and snapshot tests of the fleet and node screens.

The fleet is fed facts recorded from the booted test nodes (tests/samples/facts)
so that the screens render the same on every run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from doubles.recorded_facts import RecordedProber, load_recorded, recorded_fleet
from factbuilder import SAMPLES
from textual import events
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.fleet import FLUSH_DELAY, FleetScreen
from nydus_console.screens.help import HelpScreen
from nydus_console.screens.hostkey import HostKeyModal
from nydus_console.screens.logs import LogScreen
from nydus_console.screens.node import NodeScreen
from nydus_console.transport.base import (
    ErrorKind,
    HostKeyError,
    HostKeyInfo,
    TransportError,
)
from nydus_console.transport.hostkeys import HostKeyStore

NOW = 1_800_000_000.0
SIZE = (150, 36)
KEY = HostKeyInfo(
    host="10.201.0.22",
    port=22,
    key_type="ssh-ed25519",
    fingerprint="SHA256:2qXbZbT0T0m4QvUuS8mO0XjzQ8y3m2yX1m0aKQ9Zb1c",
    openssh_line="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheTestOnly00000000",
)


def make_fleet(tmp_path: Path) -> Fleet:
    recorded: dict[str, Any] = dict(load_recorded(SAMPLES / "facts"))
    recorded["nc-node4"] = TransportError(
        ErrorKind.REFUSED,
        "root@10.201.0.18 refused the connection on port 22.",
        "check that sshd runs on the node and listens on that port",
    )
    recorded["nc-node5"] = HostKeyError(
        ErrorKind.HOST_KEY_UNKNOWN,
        f"the host key of root@10.201.0.22 is not known (ssh-ed25519 "
        f"{KEY.fingerprint}).",
        "compare the fingerprint, then accept it",
        KEY,
    )
    fleet = recorded_fleet(recorded, clock=lambda: NOW)
    fleet.host_keys = HostKeyStore(tmp_path / "known_hosts")
    return fleet


def make_app(tmp_path: Path) -> NydusConsoleApp:
    fleet = make_fleet(tmp_path)
    return NydusConsoleApp(
        fleet.inventory,
        refresh_seconds=0,
        fleet=fleet,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    # The fleet table takes probe results in batches (FLUSH_DELAY).
    await pilot.pause(FLUSH_DELAY + 0.2)


def table_rows(app: NydusConsoleApp) -> list[str]:
    table = app.screen.query_one(DataTable)
    return [str(key.value) for key in table.rows]


async def test_fleet_lists_every_node_worst_first(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        rows = table_rows(app)
        assert rows[:2] == ["nc-node4", "nc-node5"]
        assert rows[2] == "nc-node3"
        assert sorted(rows[3:]) == ["nc-node1", "nc-node2"]
        statuses = {n: r.status for n, r in app.fleet.reports.items()}
        assert statuses == {
            "nc-node1": "ok",
            "nc-node2": "ok",
            "nc-node3": "fail",
            "nc-node4": "unreachable",
            "nc-node5": "unreachable",
        }


async def test_unreachable_row_says_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        worst = str(table.get_cell("nc-node4", "worst"))
        assert worst.startswith("refused: root@10.201.0.18 refused")
        assert str(table.get_cell("nc-node4", "age")) == "0s"


async def test_filter_and_sort(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"node3", "enter")
        assert table_rows(app) == ["nc-node3"]
        await pilot.press("escape")
        assert len(table_rows(app)) == 5
        await pilot.press("s")
        assert table_rows(app) == [f"nc-node{i}" for i in range(1, 6)]


def post_keys(app: NydusConsoleApp, text: str) -> None:
    """Queue every key of `text` at once, as a terminal delivers fast typing."""
    for char in text:
        key = {"/": "slash", "\r": "enter"}.get(char, char)
        app.post_message(events.Key(key, char))


async def test_fast_typed_filter_lands_in_box(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        post_keys(app, "/sa/node3\r")
        await pilot.pause(0.3)
        box = app.screen.query_one("#fleet-filter", Input)
        assert box.value == "sa/node3", "keys after / went to the table instead"
        assert table_rows(app) == []
        assert app.screen.sort_mode == "status", "s ran the sort binding"


async def test_editing_keys_keep_their_order_when_fast(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"old")
        # ctrl+u, then the new text, then a backspace, queued all at once.
        keys = [("ctrl+u", None), *[(c, c) for c in "node3x"], ("backspace", None)]
        for key, char in keys:
            app.post_message(events.Key(key, char))
        await pilot.pause(0.3)
        box = app.screen.query_one("#fleet-filter", Input)
        assert box.value == "node3"
        assert table_rows(app) == ["nc-node3"]


async def test_fleet_l_merges_logs_of_marked_nodes(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for name in ("nc-node1", "nc-node3"):
            table.move_cursor(row=table.get_row_index(name))
            await pilot.press("space")
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        assert app.screen.nodes == ["nc-node1", "nc-node3"]
        await pilot.press("escape")
        await pilot.pause()
        for name in ("nc-node1", "nc-node3"):
            table.move_cursor(row=table.get_row_index(name))
            await pilot.press("space")
        await pilot.press("l")
        await pilot.pause()
        assert app.screen.nodes == [f"nc-node{i}" for i in range(1, 6)]
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("slash", *"node2", "enter", "l")
        await pilot.pause()
        assert app.screen.nodes == ["nc-node2"], "the rows the filter shows"


async def test_narrow_screen_shows_whole_worst_finding(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("nc-node3"))
        await pilot.pause()
        detail = str(app.screen.query_one("#fleet-detail", Static).render())
        worst = app.fleet.reports["nc-node3"].worst
        assert worst is not None
        assert detail.startswith(f"nc-node3: {worst.title}: {worst.message}")
        assert f"Next step: {worst.next_step}" in detail
        table.move_cursor(row=table.get_row_index("nc-node1"))
        await pilot.pause()
        detail = str(app.screen.query_one("#fleet-detail", Static).render())
        assert detail == "nc-node1: all checks passed"


async def test_enter_opens_node_with_evidence(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"node3", "enter", "enter")
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node == "nc-node3"
        table = app.screen.query_one(DataTable)
        root_row = table.get_row_index("config.root_location")
        table.move_cursor(row=root_row)
        await pilot.pause()
        detail = str(app.screen.query_one("#node-detail").render())
        assert 'root = "/data/containerd/io.containerd.snapshotter.v1.nydus"' in detail
        assert "/etc/containerd/config.toml" in detail
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_host_key_cancel_then_accept(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    store_file = tmp_path / "known_hosts"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node5")
        await pilot.pause()
        await pilot.press("k")
        assert isinstance(app.screen, HostKeyModal)
        assert app.screen.focused is not None
        assert app.screen.focused.id == "hostkey-cancel"
        await pilot.press("enter")
        assert not store_file.exists()
        await pilot.press("k", "tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, NodeScreen)
        assert KEY.openssh_line in store_file.read_text()
        (entry,) = app.gate.audit.entries()
        assert entry["action"] == "accept host key"
        assert entry["key"] == f"ssh-ed25519 {KEY.fingerprint}"


async def test_help_lists_screen_keys(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        assert "Fleet keys" in text
        assert "Auto-refresh" in text
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_palette_commands_follow_screen(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fleet_titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "fleet: refresh all nodes" in fleet_titles
        assert "node: open nc-node3" in fleet_titles
        app.open_node("nc-node5")
        await pilot.pause()
        node_titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "node: review host key of nc-node5" in node_titles
        assert "fleet: refresh all nodes" not in node_titles


def test_every_binding_has_an_id() -> None:
    classes = [NydusConsoleApp, FleetScreen, NodeScreen, HostKeyModal, HelpScreen]
    for cls in classes:
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding), f"{cls.__name__}: {binding!r}"
            assert binding.id, f"{cls.__name__} binding {binding.key} has no id"


def test_local_mode_starts_on_this_machine(tmp_path: Path) -> None:
    inventory = Inventory(nodes=[], source="x")
    app = NydusConsoleApp(inventory, refresh_seconds=0)
    assert app.fleet.specs == {}


# -- snapshots ------------------------------------------------------------------


async def _wait(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    quiet(pilot)


def quiet(pilot: Pilot[Any]) -> None:
    """Drop toasts: they expire after seconds, so a slow run would lose them."""
    pilot.app.clear_notifications()


def test_snapshot_fleet(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=_wait)


def test_snapshot_node_broken(snap_compare: Any, tmp_path: Path) -> None:
    async def open_broken(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.open_node("nc-node3")  # type: ignore[attr-defined]
        await pilot.pause()
        table = pilot.app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("config.root_location"))
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_broken)


def test_snapshot_host_key_modal(snap_compare: Any, tmp_path: Path) -> None:
    async def open_modal(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.open_node("nc-node5")  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("k")
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_modal)


def test_snapshot_confirm_restart(snap_compare: Any, tmp_path: Path) -> None:
    async def open_confirm(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.open_node("nc-node1")  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("R")
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_confirm)


async def test_markup_in_node_data_is_text(tmp_path: Path) -> None:
    recorded: dict[str, Any] = dict(load_recorded(SAMPLES / "facts"))
    facts = recorded["nc-node3"]
    config = facts.files["/etc/nydus/config.toml"]
    config.text = config.text.replace(
        'root = "/data/containerd-nydus"', 'root = "/data/[/x][bold red]y"'
    )
    containerd = facts.files["/etc/containerd/config.toml"]
    containerd.text = 'version = 2\nroot = "/data/containerd"\n'
    fleet = recorded_fleet({"nc-node3": facts}, clock=lambda: NOW)
    app = NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node3")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        message = table.get_cell("config.root_location", "message")
        assert "/data/[/x][bold red]y" in str(message)
        table.move_cursor(row=table.get_row_index("config.root_location"))
        await pilot.pause()
        detail = str(app.screen.query_one("#node-detail").render())
        assert "[/x][bold red]y" in detail
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "containerd has no [proxy_plugins.nydus]" in screen


async def test_ctrl_c_names_the_quit_key_in_plain_text(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.press("ctrl+c")
        await pilot.pause()
        (note,) = list(pilot.app._notifications)
        assert note.message == "Press q to quit nydus-console."
        assert not note.markup


async def test_saved_screenshot_path_in_plain_text(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        pilot.app.clear_notifications()
        path = tmp_path / "shot.svg"
        pilot.app.post_message(
            events.DeliveryComplete(key="k", path=path, name="screenshot")
        )
        await pilot.pause()
        (note,) = list(pilot.app._notifications)
        assert note.message == f"Saved screenshot to {path}"
        assert not note.markup


async def test_cluster_nodes_left_out_are_named(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    reason = 'its Node reports no InternalIP address (address = "internal-ip")'
    app.fleet.inventory.left_out = {"bare-1": reason}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = str(app.screen.query_one("#fleet-status").render())
        assert "left out of the fleet: bare-1 (see log)" in status
        messages = [n.message for n in app._notifications if n.severity == "warning"]
        assert f"cluster node bare-1 is left out of the fleet: {reason}" in messages


class SlowProber(RecordedProber):
    """Returns its facts after the fleet screen has drawn its first rows."""

    async def probe(self, full: bool = False) -> Any:
        await asyncio.sleep(0.5)
        return await super().probe(full)


async def test_single_node_cells_widen(tmp_path: Path) -> None:
    recorded = load_recorded(SAMPLES / "facts")
    fleet = recorded_fleet({"nc-node3": recorded["nc-node3"]}, clock=lambda: NOW)
    fleet.probers["nc-node3"] = SlowProber(  # type: ignore[assignment]
        recorded["nc-node3"], lambda: NOW
    )
    app = NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "failed/failed" in screen
        assert "1 node: 1 fail" in screen
