"""The action gate: read-only mode, confirmation and the audit log."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_screens import SIZE, make_fleet, settle
from textual.widgets import Button

from nydus_console.actions import (
    Action,
    ActionGate,
    ActionRefused,
    reset_and_restart,
    restart_service,
)
from nydus_console.audit import AuditLog
from nydus_console.inventory import NodeSpec
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.confirm import ConfirmActionModal
from nydus_console.transport.local import LocalTransport

LOCAL = NodeSpec(name="here", local=True)


def touch_action(target: Path) -> Action:
    return Action("touch marker", ("touch", str(target)))


async def test_gate_runs_confirmed_action_and_audits(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    marker = tmp_path / "marker"
    result = await ActionGate(audit, read_only=False).run(
        touch_action(marker), LOCAL, LocalTransport(), confirmed_by="here"
    )
    assert result.exit_status == 0
    assert marker.exists()
    (entry,) = audit.entries()
    assert entry["outcome"] == "ran"
    assert entry["node"] == "here"
    assert entry["exit_status"] == 0
    assert entry["command"] == f"touch {marker}"
    assert entry["operator"]
    assert entry["time"]


@pytest.mark.parametrize(
    ("read_only", "spec", "confirmation", "reason"),
    [
        (True, LOCAL, "here", "--read-only"),
        (
            False,
            NodeSpec(name="here", local=True, read_only=True),
            "here",
            "read-only in the inventory",
        ),
        (False, LOCAL, "", "not confirmed"),
    ],
)
async def test_gate_refuses_and_audits(
    tmp_path: Path, read_only: bool, spec: NodeSpec, confirmation: str, reason: str
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    marker = tmp_path / "marker"
    with pytest.raises(ActionRefused, match=reason):
        await ActionGate(audit, read_only=read_only).run(
            touch_action(marker), spec, LocalTransport(), confirmed_by=confirmation
        )
    assert not marker.exists()
    (entry,) = audit.entries()
    assert entry["outcome"] == "refused"
    assert reason in entry["reason"]


async def test_destructive_needs_node_name(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    action = Action("wipe", ("touch", str(tmp_path / "x")), destructive=True)
    with pytest.raises(ActionRefused, match="not the node name"):
        await ActionGate(audit, read_only=False).run(
            action, LOCAL, LocalTransport(), confirmed_by="yes"
        )
    assert not (tmp_path / "x").exists()


def test_audit_masks_secrets(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.append({"command": 'curl -d \'{"auth": "dXNlcjpwYXNz"}\' x'})
    text = (tmp_path / "audit.jsonl").read_text()
    assert "dXNlcjpwYXNz" not in text
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600


def app_with_audit(tmp_path: Path, read_only: bool = False) -> NydusConsoleApp:
    fleet = make_fleet(tmp_path)
    return NydusConsoleApp(
        fleet.inventory,
        refresh_seconds=0,
        fleet=fleet,
        read_only=read_only,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )


async def test_restart_shows_command_cancel_focused(tmp_path: Path) -> None:
    app = app_with_audit(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node1")
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmActionModal)
        command = str(app.screen.query_one("#confirm-command").render())
        assert command == reset_and_restart("nydus-snapshotter.service").command_line
        assert "systemctl reset-failed" in command
        assert app.screen.focused is app.screen.query_one("#confirm-cancel", Button)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmActionModal)
    assert AuditLog(tmp_path / "audit.jsonl").entries() == []


async def test_read_only_refuses_restart_key(tmp_path: Path) -> None:
    app = app_with_audit(tmp_path, read_only=True)
    notes: list[Any] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node1")
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmActionModal)
        notes = [n.message for n in app._notifications]
    assert any("--read-only" in note for note in notes)
    (entry,) = AuditLog(tmp_path / "audit.jsonl").entries()
    assert entry["outcome"] == "refused"
    assert entry["node"] == "nc-node1"


def footer_labels(app: NydusConsoleApp) -> dict[str, str]:
    """Return the footer's label of each key shown, as the Footer reads them."""
    return {
        key: active.binding.description
        for key, active in app.screen.active_bindings.items()
        if active.binding.show
    }


async def test_read_only_node_footer_marks_refused_keys(tmp_path: Path) -> None:
    app = app_with_audit(tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node1")
        await pilot.pause()
        labels = footer_labels(app)
        assert labels["R"] == "Restart service (refused, read-only)"
        assert labels["e"] == "Edit config (view only, read-only)"
        assert labels["l"] == "Logs"
    # Another app, not read-only, still shows the plain labels.
    app = app_with_audit(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node1")
        await pilot.pause()
        labels = footer_labels(app)
        assert labels["R"] == "Restart service"
        assert labels["e"] == "Edit config"


async def test_read_only_inventory_node_marks_refused_keys(tmp_path: Path) -> None:
    app = app_with_audit(tmp_path)
    spec = app.fleet.specs["nc-node1"]
    app.fleet.specs["nc-node1"] = dataclasses.replace(spec, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_node("nc-node2")
        await pilot.pause()
        assert footer_labels(app)["R"] == "Restart service"
        app.pop_screen()
        app.open_node("nc-node1")
        await pilot.pause()
        assert footer_labels(app)["R"] == "Restart service (refused, read-only)"


def test_restart_action_command() -> None:
    action = restart_service("nydus-snapshotter.service")
    assert action.argv == ("systemctl", "restart", "nydus-snapshotter.service")
    assert not action.destructive
