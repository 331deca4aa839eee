"""Pilot and snapshot tests of the config screen and its modals.

The fleet replays facts recorded from the booted test nodes, as in
test_screens.py. nc-node1's config files are served by FileNodeTransport
(tests/doubles/config_node.py), which keeps them in a temporary directory
and runs the real write script on them; systemctl is answered by the
double. test_config_screen_nspawn.py writes through the screen on a booted
node.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from doubles.config_node import FileNodeTransport
from doubles.recorded_facts import load_recorded, recorded_fleet
from factbuilder import SAMPLES
from test_screens import NOW, SIZE, quiet, settle
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static, Switch, TextArea

from nydus_console.audit import AuditLog
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.configedit import ConfigScreen
from nydus_console.screens.configform import ConfigField
from nydus_console.screens.configmodals import (
    ConfigKindModal,
    DiffModal,
    DiscardChangesModal,
    WriteConfigModal,
)
from nydus_console.screens.node import NodeScreen

NODE = "nc-node1"
SNAPSHOTTER = "/etc/nydus/config.toml"
NYDUSD = "/etc/nydus/nydusd-config.json"
UNIT = "nydus-snapshotter.service"
RECORDED = load_recorded(SAMPLES / "facts")
SECRET = "c2VjcmV0LXJlZ2lzdHJ5LWF1dGg="


def node_files() -> dict[str, str]:
    """The config files recorded from nc-node1."""
    files = RECORDED[NODE].files
    return {path: read.text for path, read in files.items() if read.status == "ok"}


def with_auth(text: str) -> str:
    """The recorded nydusd config with registry credentials added."""
    data = json.loads(text)
    data["device"]["backend"]["config"]["auth"] = SECRET
    return json.dumps(data, indent=2) + "\n"


class Console:
    """An app on recorded facts, with nc-node1's files in a directory."""

    def __init__(
        self, tmp_path: Path, files: dict[str, str] | None = None, **options: Any
    ) -> None:
        self.fleet = recorded_fleet(dict(RECORDED), clock=lambda: NOW)
        self.node = FileNodeTransport(NODE, tmp_path / "node", files or node_files())
        self.fleet.transports[NODE] = self.node  # type: ignore[assignment]
        self.audit = AuditLog(tmp_path / "audit.jsonl")
        self.app = NydusConsoleApp(
            self.fleet.inventory,
            refresh_seconds=0,
            fleet=self.fleet,
            audit=self.audit,
            **options,
        )
        self.toasts: list[str] = []
        notify = self.app.notify

        def recording_notify(message: str, **kwargs: Any) -> None:
            self.toasts.append(message)
            notify(message, **kwargs)

        self.app.notify = recording_notify  # type: ignore[method-assign]


async def open_config(
    pilot: Pilot[Any], kind: str = "snapshotter", **options: Any
) -> ConfigScreen:
    await settle(pilot)
    screen = ConfigScreen(NODE, kind, **options)
    pilot.app.push_screen(screen)
    await wait(pilot)
    return screen


async def wait(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def field(screen: ConfigScreen, name: str) -> ConfigField:
    for found in screen.fields():
        if found.entry.name == name:
            return found
    raise AssertionError(f"no field {name}; fields: {screen.shown_entries()}")


def field_text(found: ConfigField) -> str:
    """The key, help and message shown beside a field's control."""
    return str(found.text_box.render())


async def type_into(pilot: Pilot[Any], found: ConfigField, text: str) -> None:
    control = found.control
    assert isinstance(control, Input)
    control.value = text
    await pilot.pause()


def panel(screen: ConfigScreen, widget_id: str) -> str:
    return str(screen.query_one(widget_id, Static).render())


# -- the form ---------------------------------------------------------------------


async def test_form_shows_values_and_defaults(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        assert screen.mode == "form"
        root = field(screen, "root").control
        assert isinstance(root, Input)
        assert root.value == "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
        uid = field(screen, "uid").control
        assert isinstance(uid, Input)
        assert uid.value == ""
        assert uid.placeholder == "default 0"
        threads = field(screen, "daemon.threads_number").control
        assert isinstance(threads, Input)
        assert threads.value == "4"
        assert "At most 70 bytes" in field_text(field(screen, "root"))
        assert "(not set)" in field_text(field(screen, "uid"))
        assert "No problems found." in panel(screen, "#config-problems")


async def test_enum_is_a_select_and_bool_a_switch(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        mode = field(screen, "daemon_mode").control
        assert isinstance(mode, Select)
        assert mode.value == "dedicated"
        options = [value for _, value in mode._options]
        assert "shared" in options
        assert "none" in options
        mode.value = "shared"
        await pilot.pause()
        assert screen.session is not None
        assert screen.session.document is not None
        assert screen.session.document.get("daemon_mode") == "shared"
        cleanup = field(screen, "cleanup_on_close").control
        assert isinstance(cleanup, Switch)
        assert cleanup.value is False
        cleanup.value = True
        await pilot.pause()
        assert screen.session.document.get("cleanup_on_close") is True
        cleanup.value = False
        mode.value = "dedicated"
        await pilot.pause()
        assert not screen.session.changed


async def test_invalid_value_is_kept_with_the_reason(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        threads = field(screen, "daemon.threads_number")
        await type_into(pilot, threads, "four")
        assert "expected a whole number" in field_text(threads)
        assert isinstance(threads.control, Input)
        assert threads.control.value == "four"
        assert screen.session is not None
        assert screen.session.document is not None
        assert screen.session.document.get("daemon.threads_number") == 4
        assert screen.has_unsaved_edits()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(console.app.screen, WriteConfigModal)
        assert any("invalid values" in toast for toast in console.toasts)
        await type_into(pilot, threads, "8")
        assert "invalid" not in field_text(threads)
        assert screen.session.document.get("daemon.threads_number") == 8


async def test_unset_key_and_back_leaves_no_change(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        uid = field(screen, "uid")
        await type_into(pilot, uid, "1000")
        assert screen.session is not None
        assert "+uid = 1000" in screen.session.diff()
        await type_into(pilot, uid, "")
        assert not screen.session.changed
        level = field(screen, "log.level")
        assert isinstance(level.control, Select)
        level.control.clear()
        await pilot.pause()
        assert '-level = "info"' in screen.session.diff()


async def test_diff_masks_a_secret(tmp_path: Path) -> None:
    files = node_files()
    files[NYDUSD] = with_auth(files[NYDUSD])
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot, "nydusd")
        auth = field(screen, "device.backend.config.auth")
        assert isinstance(auth.control, Input)
        assert auth.control.value == ""
        assert auth.control.password
        assert auth.control.placeholder.startswith("***")
        assert SECRET not in console.app.export_screenshot()
        await type_into(pilot, field(screen, "device.backend.config.timeout"), "7")
        await type_into(pilot, auth, "bmV3LXNlY3JldA==")
        await pilot.press("ctrl+g")
        await pilot.pause()
        modal = console.app.screen
        assert isinstance(modal, DiffModal)
        assert '+        "timeout": 7,' in modal.diff
        assert '+        "auth": "***"\n' in modal.diff
        assert '-        "auth": "***"\n' in modal.diff
        assert "bmV3LXNlY3JldA==" not in modal.diff
        assert SECRET not in modal.diff
        await pilot.press("escape")
        assert console.app.screen is screen


async def test_backend_type_shows_its_keys(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot, "nydusd")
        assert "device.backend.config.endpoint" not in screen.shown_entries()
        backend = field(screen, "device.backend.type").control
        assert isinstance(backend, Select)
        backend.value = "oss"
        await wait(pilot)
        assert "device.backend.config.endpoint" in screen.shown_entries()
        # Keys set in the file stay shown, with the warning that oss ignores them.
        assert "device.backend.config.scheme" in screen.shown_entries()


# -- problems ---------------------------------------------------------------------


async def test_new_error_blocks_and_an_old_one_does_not(tmp_path: Path) -> None:
    files = node_files()
    files[SNAPSHOTTER] = files[SNAPSHOTTER].replace(
        "threads_number = 4", "threads_number = 2000"
    )
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        problems = panel(screen, "#config-problems")
        assert "(already in the file) daemon.threads_number" in problems
        assert "at most 1024" in field_text(field(screen, "daemon.threads_number"))
        level = field(screen, "log.level").control
        assert isinstance(level, Select)
        level.value = "debug"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(console.app.screen, WriteConfigModal)
        await pilot.press("escape")
        await pilot.pause()
        await type_into(pilot, field(screen, "root"), "relative/nydus")
        assert "New errors block writing." in panel(screen, "#config-problems")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(console.app.screen, ConfigScreen)
        assert any("new error(s), such as root" in t for t in console.toasts)
        assert console.node.read(SNAPSHOTTER) == files[SNAPSHOTTER]


async def test_unknown_keys_are_listed(tmp_path: Path) -> None:
    files = node_files()
    files[SNAPSHOTTER] = files[SNAPSHOTTER].replace(
        "[daemon]\n", '[daemon]\nfs_drivr = "fscache"\n'
    )
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        problems = panel(screen, "#config-problems")
        assert "Keys the console does not know" in problems
        assert 'daemon.fs_drivr = "fscache"' in problems
        assert "did you mean daemon.fs_driver?" in problems


# -- the raw view -----------------------------------------------------------------


async def test_raw_view_masks_and_keeps_secrets(tmp_path: Path) -> None:
    files = node_files()
    files[NYDUSD] = with_auth(files[NYDUSD])
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot, "nydusd")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.mode == "raw"
        area = screen.query_one(TextArea)
        assert '"auth": "***"' in area.text
        assert SECRET not in area.text
        area.load_text(area.text.replace('"timeout": 5', '"timeout": 9'))
        await pilot.press("ctrl+t")
        await wait(pilot)
        assert screen.mode == "form"
        assert screen.session is not None
        assert screen.session.document is not None
        assert screen.session.document.get("device.backend.config.auth") == SECRET
        assert screen.session.document.get("device.backend.config.timeout") == 9
        timeout = field(screen, "device.backend.config.timeout").control
        assert isinstance(timeout, Input)
        assert timeout.value == "9"


async def test_raw_syntax_error_moves_the_cursor(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        area = screen.query_one(TextArea)
        area.load_text(area.text.replace("[daemon]", "[daemon"))
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.mode == "raw"
        banner = panel(screen, "#config-banner")
        assert "Syntax error at line 11, column" in banner
        assert area.cursor_location[0] == 10
        assert screen.has_unsaved_edits()


async def test_syntax_error_opens_the_raw_view(tmp_path: Path) -> None:
    files = node_files()
    files[SNAPSHOTTER] = files[SNAPSHOTTER].replace(
        "threads_number = 4", "threads_number = = 4"
    )
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        assert screen.mode == "raw"
        banner = panel(screen, "#config-banner")
        assert "Syntax error at line 16, column 18" in banner
        area = screen.query_one(TextArea)
        assert area.cursor_location == (15, 17)
        assert "syntax error" in panel(screen, "#config-summary")
        area.load_text(area.text.replace("= = 4", "= 6"))
        await pilot.press("ctrl+t")
        await wait(pilot)
        assert screen.mode == "form"
        threads = field(screen, "daemon.threads_number").control
        assert isinstance(threads, Input)
        assert threads.value == "6"


async def test_editor_unset_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        await open_config(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert any("neither VISUAL nor EDITOR is set" in t for t in console.toasts)


# -- reading ----------------------------------------------------------------------


async def test_missing_file_starts_empty(tmp_path: Path) -> None:
    files = node_files()
    del files[NYDUSD]
    console = Console(tmp_path, files)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot, "nydusd")
        banner = panel(screen, "#config-banner")
        assert f"{NYDUSD} does not exist on {NODE}" in banner
        assert "writing creates it" in banner
        assert screen.mode == "form"
        assert screen.session is not None
        assert not screen.session.changed


async def test_unreadable_file_says_why(tmp_path: Path) -> None:
    console = Console(tmp_path)
    denied = f"cat: {SNAPSHOTTER}: Permission denied"
    console.node.unreadable[SNAPSHOTTER] = denied
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        assert screen.mode == "unreadable"
        banner = panel(screen, "#config-banner")
        assert "could not be read" in banner
        assert "Permission denied" in banner
        del console.node.unreadable[SNAPSHOTTER]
        await pilot.press("ctrl+r")
        await wait(pilot)
        assert screen.mode == "form"


# -- writing ----------------------------------------------------------------------


async def choose_debug_level(pilot: Pilot[Any], screen: ConfigScreen) -> None:
    level = field(screen, "log.level").control
    assert isinstance(level, Select)
    level.value = "debug"
    await pilot.pause()


async def test_write_without_restart(tmp_path: Path) -> None:
    console = Console(tmp_path)
    before = console.node.read(SNAPSHOTTER)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        modal = console.app.screen
        assert isinstance(modal, WriteConfigModal)
        assert modal.focused is not None
        assert modal.focused.id == "config-write-cancel"
        plan = str(modal.query_one("#config-write-plan", Static).render())
        assert f"write {SNAPSHOTTER} atomically" in plan
        assert f"systemctl restart {UNIT}" in plan
        modal.query_one("#config-restart-switch", Switch).value = False
        await pilot.pause()
        plan = str(modal.query_one("#config-write-plan", Static).render())
        assert f"no restart: {UNIT} keeps its old config" in plan
        await pilot.click("#config-write-run")
        await wait(pilot)
        assert console.app.screen is screen
        after = console.node.read(SNAPSHOTTER)
        assert after == before.replace('level = "info"', 'level = "debug"')
        results = panel(screen, "#config-results")
        assert f"Wrote {SNAPSHOTTER} on {NODE}" in results
        assert f"backup: {SNAPSHOTTER}." in results
        backup = results.split("backup: ")[1].split("\n")[0]
        assert console.node.read(backup) == before
        assert not any(argv[0] == "systemctl" for argv in console.node.commands)
        assert screen.session is not None
        assert screen.session.baseline == after
        assert not screen.has_unsaved_edits()


async def test_write_restarts_and_verifies(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.click("#config-write-run")
        await wait(pilot)
        results = panel(screen, "#config-results")
        assert f"ok     reset-failed {UNIT}" in results
        assert f"ok     restart {UNIT}" in results
        assert f"ok     verify {UNIT}: active and steady" in results
        assert "ROLLED BACK" not in results
        ran = [entry["action"] for entry in console.audit.entries()]
        assert ran == [
            f"write {SNAPSHOTTER}",
            f"reset-failed {UNIT}",
            f"restart {UNIT}",
        ]


async def test_failed_restart_rolls_back_and_keeps_edits(tmp_path: Path) -> None:
    console = Console(tmp_path)
    before = console.node.read(SNAPSHOTTER)
    console.node.unit_states[UNIT] = "ActiveState=failed\nSubState=failed\nMainPID=0\n"
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot, verify_seconds=1.0)
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.click("#config-write-run")
        await wait(pilot)
        results = panel(screen, "#config-results")
        assert "ROLLED BACK" in results
        assert f"FAILED verify {UNIT}" in results
        assert f"ok     restore {SNAPSHOTTER} from the backup" in results
        assert console.node.read(SNAPSHOTTER) == before
        assert screen.has_unsaved_edits()
        assert "your edits are kept" in panel(screen, "#config-banner")
        assert any("rolled back" in toast for toast in console.toasts)


async def test_read_only_refusal_is_audited(tmp_path: Path) -> None:
    console = Console(tmp_path, read_only=True)
    before = console.node.read(SNAPSHOTTER)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        assert "read-only" in panel(screen, "#config-summary")
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert console.app.screen is screen
        (entry,) = console.audit.entries()
        assert entry["outcome"] == "refused"
        assert entry["action"] == f"write {SNAPSHOTTER}"
        assert entry["reason"] == "the console runs with --read-only"
        assert any("not run: the console runs with" in t for t in console.toasts)
        assert console.node.read(SNAPSHOTTER) == before


async def test_read_only_node_refuses(tmp_path: Path) -> None:
    console = Console(tmp_path)
    spec = console.fleet.specs[NODE]
    console.fleet.specs[NODE] = dataclasses.replace(spec, read_only=True)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert console.app.screen is screen
        (entry,) = console.audit.entries()
        assert entry["reason"] == f"node {NODE} is read-only in the inventory"


# -- leaving ----------------------------------------------------------------------


async def test_leaving_with_edits_asks(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        console.app.open_node(NODE)
        await pilot.pause()
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await pilot.press("escape")
        await pilot.pause()
        modal = console.app.screen
        assert isinstance(modal, DiscardChangesModal)
        assert modal.focused is not None
        assert modal.focused.id == "config-discard-stay"
        await pilot.press("enter")
        await pilot.pause()
        assert console.app.screen is screen
        assert screen.has_unsaved_edits()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.click("#config-discard-discard")
        await pilot.pause()
        assert isinstance(console.app.screen, NodeScreen)


async def test_quit_with_edits_asks(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await console.app.action_quit()
        await pilot.pause()
        assert isinstance(console.app.screen, DiscardChangesModal)
        await pilot.press("enter")
        await pilot.pause()
        assert console.app.screen is screen
        assert console.app.is_running


async def test_unchanged_screen_leaves_at_once(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        screen = await open_config(pilot)
        await type_into(pilot, field(screen, "uid"), "5")
        await type_into(pilot, field(screen, "uid"), "")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(console.app.screen, (ConfigScreen, DiscardChangesModal))


# -- opening ----------------------------------------------------------------------


async def test_e_opens_the_chosen_config(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        console.app.open_node(NODE)
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        chooser = console.app.screen
        assert isinstance(chooser, ConfigKindModal)
        assert chooser.paths["nydusd"] == NYDUSD
        await pilot.press("down", "enter")
        await wait(pilot)
        screen = console.app.screen
        assert isinstance(screen, ConfigScreen)
        assert screen.kind == "nydusd"
        assert screen.mode == "form"


async def test_palette_lists_edit_commands(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with console.app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        console.app.open_node(NODE)
        await pilot.pause()
        titles = [c.title for c in console.app.get_system_commands(console.app.screen)]
        for kind in ("snapshotter", "nydusd", "containerd"):
            assert f"node: edit {kind} config of {NODE}" in titles


def test_config_bindings_have_ids() -> None:
    classes = [
        ConfigScreen,
        ConfigKindModal,
        DiffModal,
        WriteConfigModal,
        DiscardChangesModal,
    ]
    for cls in classes:
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding), f"{cls.__name__}: {binding!r}"
            assert binding.id, f"{cls.__name__} binding {binding.key} has no id"


# -- snapshots --------------------------------------------------------------------


def test_snapshot_config_form(snap_compare: Any, tmp_path: Path) -> None:
    files = node_files()
    files[SNAPSHOTTER] = files[SNAPSHOTTER].replace(
        "threads_number = 4", "threads_number = 2000"
    )
    console = Console(tmp_path, files)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_config(pilot)
        await type_into(pilot, field(screen, "root"), "relative/nydus")
        screen.query_one("#config-form").focus()
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(console.app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_config_write_modal(snap_compare: Any, tmp_path: Path) -> None:
    console = Console(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_config(pilot)
        await choose_debug_level(pilot, screen)
        await pilot.press("ctrl+s")
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(console.app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_config_syntax_error(snap_compare: Any, tmp_path: Path) -> None:
    files = node_files()
    files[SNAPSHOTTER] = files[SNAPSHOTTER].replace(
        "threads_number = 4", "threads_number = = 4"
    )
    console = Console(tmp_path, files)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_config(pilot)
        screen.query_one(TextArea).cursor_blink = False
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(console.app, terminal_size=SIZE, run_before=run_before)
