"""The build screen on this machine's local transport with the buildctl double.

The double is put first on PATH as `buildctl`, a Unix socket in tmp_path
stands for buildkitd's, and its control file chooses success, failure or a
hang. Runs go through the node check, the confirmation modal and the action
gate like every action.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from nydus_console.audit import AuditLog
from nydus_console.inventory import Inventory, NodeSpec
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.build import BuildScreen
from nydus_console.screens.confirm import ConfirmActionModal

DOUBLE = Path(__file__).parent / "doubles" / "buildctl_double.py"
NODE = "this-node"
SIZE = (120, 34)
OUTPUT = "reg.example:5000/team/app:v1-nydus"
DOCKERFILE = "FROM alpine:3.20\nRUN make\nCOPY app /bin/app\n"


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the double on PATH, make the socket and the context in tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "buildctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -B {DOUBLE} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("BUILDCTL_DOUBLE_RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("BUILDCTL_DOUBLE_CONTROL", str(tmp_path / "control.json"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "buildkitd.sock"))
    listener.close()
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(DOCKERFILE)
    return tmp_path / "control.json"


def make_app(tmp_path: Path, *, read_only: bool = False) -> NydusConsoleApp:
    inventory = Inventory(nodes=[NodeSpec(name=NODE, local=True)], source="test")
    return NydusConsoleApp(
        inventory,
        read_only=read_only,
        refresh_seconds=0,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )


async def open_screen(pilot: Pilot[Any], tmp_path: Path) -> BuildScreen:
    await pilot.app.workers.wait_for_complete()
    pilot.app.open_build(NODE)  # type: ignore[attr-defined]
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, BuildScreen)
    screen.query_one("#build-context", Input).value = str(tmp_path / "ctx")
    screen.query_one("#build-output", Input).value = OUTPUT
    screen.query_one("#build-socket", Input).value = str(tmp_path / "buildkitd.sock")
    await pilot.pause()
    return screen


async def confirm_run(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+r")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(pilot.app.screen, ConfirmActionModal)
    await pilot.click("#confirm-run")
    await pilot.pause()


def text_of(screen: BuildScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def state(screen: BuildScreen, step: str) -> str:
    return str(screen.query_one(DataTable).get_cell(step, "state"))


async def test_run_fills_the_steps_and_is_audited(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        preview = text_of(screen, "#build-preview")
        assert "compression=nydus,force-compression=true" in preview
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [state(screen, n) for n in ("1", "2", "3", "4", "5")] == ["done"] * 5
        table = screen.query_one(DataTable)
        assert str(table.get_cell("5", "step")) == "#5 exporting to image"
        assert str(table.get_cell("5", "elapsed")) == "0.5 s"
        assert "exited with status 0" in text_of(screen, "#build-result")
    entries = AuditLog(tmp_path / "audit.jsonl").entries()
    assert entries[-1]["outcome"] == "succeeded"
    history = tmp_path / "state" / "nydus-console" / "build-history.jsonl"
    assert json.loads(history.read_text())["outcome"] == "succeeded"


async def test_failure_shows_the_last_error(double: Path, tmp_path: Path) -> None:
    double.write_text(json.dumps({"fail_at": "2", "error": "exit code: 2"}))
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        result = text_of(screen, "#build-result")
        assert "exited with status 1" in result
        assert "last error: failed to solve: exit code: 2" in result
        assert state(screen, "3") == "error"


async def test_missing_buildkit_is_named(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        screen.query_one("#build-socket", Input).value = "/run/none/buildkitd.sock"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is screen
        result = text_of(screen, "#build-result")
        assert "buildkitd's socket /run/none/buildkitd.sock is missing" in result
    assert not (tmp_path / "record.jsonl").exists()


async def test_cancel_ends_the_double(double: Path, tmp_path: Path) -> None:
    double.write_text(json.dumps({"hang_at": "push"}))
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        await confirm_run(pilot)
        table = screen.query_one(DataTable)
        deadline = time.monotonic() + 30
        while "5" not in table.rows or "pushing" not in str(
            table.get_cell("5", "detail")
        ):
            assert time.monotonic() < deadline, "the push never started"
            await pilot.pause(0.05)
        await pilot.press("ctrl+b")
        # Bounded: a cancel that does not end the run would otherwise hang here.
        await asyncio.wait_for(app.workers.wait_for_complete(), 60)
        await pilot.pause()
        assert "cancelled" in text_of(screen, "#build-result")
    record = (tmp_path / "record.jsonl").read_text().splitlines()
    pid = json.loads(record[0])["pid"]
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"buildctl double {pid} still runs"
        time.sleep(0.05)


async def test_invalid_value_blocks_the_run(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        screen.query_one("#build-args", Input).value = "GH_TOKEN=abc"
        await pilot.pause()
        preview = text_of(screen, "#build-preview")
        assert "invalid: --build-arg GH_TOKEN looks like a secret" in preview
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen
    assert not (tmp_path / "record.jsonl").exists()


async def test_read_only_rejects_the_run(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, tmp_path)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen
    assert AuditLog(tmp_path / "audit.jsonl").entries()[-1]["outcome"] == "refused"
    assert not (tmp_path / "record.jsonl").exists()


def test_every_build_binding_has_an_id() -> None:
    for binding in BuildScreen.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id


def test_snapshot_build_screen(snap_compare: Any, double: Path, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_screen(pilot, tmp_path)
        # A fixed context path keeps the snapshot the same on every run.
        screen.query_one("#build-context", Input).value = "/srv/app"
        screen.query_one("#build-socket", Input).value = "/run/buildkit/buildkitd.sock"
        screen.query_one("#build-args", Input).value = "VERSION=1.2"
        # No focused Input: its blinking cursor would make the snapshot vary.
        screen.set_focus(None)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


async def test_palette_opens_the_build_screen(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        command = commands[f"node: build an image on {NODE}"]
        command.callback()
        await pilot.pause()
        assert isinstance(app.screen, BuildScreen)
        assert app.screen.node == NODE
