"""The convert screen on this machine's local transport with the nydusify double.

The double is put first on PATH as `nydusify`; its control file chooses
success, failure or a hang. Runs go through the confirmation modal and the
action gate like every action.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Static

from nydus_console.audit import AuditLog
from nydus_console.inventory import Inventory, NodeSpec
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.confirm import ConfirmActionModal
from nydus_console.screens.convert import ConvertScreen
from nydus_console.screens.textbox import TextBox

DOUBLE = Path(__file__).parent / "doubles" / "nydusify_double.py"
NODE = "this-node"
SIZE = (120, 34)
SOURCE = "reg.example:5000/team/app:v1"


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the double on PATH and keep the console's state in tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nydusify"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -B {DOUBLE} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("NYDUSIFY_DOUBLE_RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("NYDUSIFY_DOUBLE_CONTROL", str(tmp_path / "control.json"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "control.json"


def make_app(tmp_path: Path, *, read_only: bool = False) -> NydusConsoleApp:
    inventory = Inventory(nodes=[NodeSpec(name=NODE, local=True)], source="test")
    app = NydusConsoleApp(
        inventory,
        read_only=read_only,
        refresh_seconds=0,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )
    return app


async def open_screen(pilot: Pilot[Any], source: str = SOURCE) -> ConvertScreen:
    await pilot.app.workers.wait_for_complete()
    pilot.app.open_convert(NODE)  # type: ignore[attr-defined]
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ConvertScreen)
    screen.query_one("#convert-source", Input).value = source
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return screen


async def confirm_run(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+r")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ConfirmActionModal)
    await pilot.click("#confirm-run")
    await pilot.pause()


def text_of(screen: ConvertScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def state(screen: ConvertScreen, stage: str) -> str:
    return str(screen.query_one(DataTable).get_cell(stage, "state"))


async def test_run_fills_the_stages_and_is_audited(
    double: Path, tmp_path: Path
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        preview = text_of(screen, "#convert-preview")
        assert f"--target {SOURCE}-nydus" in preview
        assert "registry auth on the node: none" in preview
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [state(screen, s) for s in ("pull", "convert", "push")] == ["done"] * 3
        table = screen.query_one(DataTable)
        target = f"{SOURCE}-nydus"
        assert table.get_cell("push", "reference") == target
        assert table.columns["reference"].get_render_width(table) > len(target)
        elapsed = screen.query_one(DataTable).get_cell("convert", "elapsed")
        assert str(elapsed) == "1.25 s"
        assert "nydusify convert exited with status 0" in text_of(
            screen, "#convert-result"
        )
    entries = AuditLog(tmp_path / "audit.jsonl").entries()
    assert entries[-1]["outcome"] == "succeeded"
    history = tmp_path / "state" / "nydus-console" / "convert-history.jsonl"
    assert json.loads(history.read_text())["outcome"] == "succeeded"


async def test_failure_shows_the_last_error(double: Path, tmp_path: Path) -> None:
    double.write_text(json.dumps({"fail_at": "convert", "error": "no space left"}))
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        result = text_of(screen, "#convert-result")
        assert "exited with status 1" in result
        assert "last error: no space left" in result
        assert state(screen, "convert") == "failed"
        assert state(screen, "push") == "waiting"


async def test_cancel_ends_the_double(double: Path, tmp_path: Path) -> None:
    double.write_text(json.dumps({"hang_at": "pull"}))
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        await confirm_run(pilot)
        deadline = time.monotonic() + 30
        while state(screen, "pull") != "pulling":
            assert time.monotonic() < deadline, "the pull stage never started"
            await pilot.pause(0.05)
        await pilot.press("ctrl+b")
        # Bounded: a cancel that does not end the run would otherwise hang here.
        await asyncio.wait_for(app.workers.wait_for_complete(), 60)
        await pilot.pause()
        result = text_of(screen, "#convert-result")
        assert "nydusify convert cancelled after" in result
        # An info line ("pulling image ...") is progress, not an error.
        assert "last error" not in result
        assert state(screen, "pull") == "cancelled"
    record = (tmp_path / "record.jsonl").read_text().splitlines()
    pid = json.loads(record[0])["pid"]
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"nydusify double {pid} still runs"
        time.sleep(0.05)


async def test_invalid_value_blocks_the_run(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        screen.query_one("#convert-platform", Input).value = "linux"
        await pilot.pause()
        assert "invalid: --platform 'linux'" in text_of(screen, "#convert-preview")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen
    assert not (tmp_path / "record.jsonl").exists()


async def test_read_only_rejects_the_run(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen
    assert AuditLog(tmp_path / "audit.jsonl").entries()[-1]["outcome"] == "refused"
    assert not (tmp_path / "record.jsonl").exists()


async def test_confirmation_lists_every_command_of_the_preview(
    double: Path, tmp_path: Path
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        screen.query_one("#convert-check", Checkbox).value = True
        screen.query_one("#convert-prefetch", Input).value = "/usr/bin"
        await pilot.pause()
        preview = text_of(screen, "#convert-preview").splitlines()
        await pilot.press("ctrl+r")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ConfirmActionModal)
        shown = [str(modal.query_one("#confirm-command", Static).render())]
        shown += str(modal.query_one("#confirm-also", Static).render()).splitlines()
        commands = [line for line in preview if not line.startswith("registry auth")]
        assert [line.split(maxsplit=1)[-1] for line in commands[:1]] == shown[:1]
        assert shown[1:] == commands[1:3]
        assert shown[-1].startswith("then:    nydusify check --source")


async def test_missing_nydusify_names_the_path_field(
    double: Path, tmp_path: Path
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        missing = str(tmp_path / "no-such-nydusify")
        screen.query_one("#convert-nydusify", Input).value = missing
        await pilot.pause()
        assert f"command: {missing} convert" in text_of(screen, "#convert-preview")
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        result = text_of(screen, "#convert-result")
        assert "exited with status 127" in result
        assert (
            f"last error: nydusify ({missing}) is not installed on {NODE} "
            "(exit 127): install it or set the nydusify path (the nydusify "
            "path field of this screen)"
        ) in result
        assert "not found" not in result


async def test_every_text_field_is_a_textbox(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        fields = list(screen.query(Input))
        assert len(fields) == 7
        assert all(isinstance(field, TextBox) for field in fields)


def test_every_convert_binding_has_an_id() -> None:
    for binding in ConvertScreen.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id


def test_snapshot_convert_screen(
    snap_compare: Any, double: Path, tmp_path: Path
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_screen(pilot)
        # A steady cursor: a blink under load would change the picture.
        screen.query_one("#convert-source", Input).cursor_blink = False
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_snapshot_convert_screen_after_a_failed_push(
    snap_compare: Any, double: Path, tmp_path: Path
) -> None:
    double.write_text(
        json.dumps({"fail_at": "push", "error": "failed to push image: denied"})
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_screen(pilot)
        await confirm_run(pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert state(screen, "push") == "failed"
        # Away from the text field: its blinking cursor is not in the picture.
        screen.query_one(DataTable).focus()
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


async def test_tuning_fields_reach_nydusify(double: Path, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot)
        screen.query_one("#convert-chunk-size", Input).value = "0x400000"
        screen.query_one("#convert-prefetch", Input).value = "/usr/bin, /etc"
        screen.query_one("#convert-work-dir", Input).value = "/var/tmp/nydusify"
        await pilot.pause()
        preview = text_of(screen, "#convert-preview")
        assert "--chunk-size 0x400000" in preview
        assert "prefetch patterns (standard input): /usr/bin, /etc" in preview
        await confirm_run(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
    call = json.loads((tmp_path / "record.jsonl").read_text().splitlines()[0])
    assert call["stdin"] == "/usr/bin\n/etc\n"
    assert call["argv"][call["argv"].index("--work-dir") + 1] == "/var/tmp/nydusify"
