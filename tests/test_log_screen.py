"""Pilot and snapshot tests of the log screen, with real followers on this machine.

The screen follows tmp files through LocalTransport and `tail -F`, so lines
appended while it is open travel the same path as on a node.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from doubles.recorded_facts import load_recorded, recorded_fleet
from factbuilder import SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st
from test_probe_local import write_node
from textual import events
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from nydus_console.diagnose.matcher import default_matcher
from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import Inventory
from nydus_console.logs.follow import LogSource
from nydus_console.logs.records import Level, LogRecord
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.known import KnownFailureModal, KnownLine, known_markup
from nydus_console.screens.logs import LogScreen, RowFormat, plan_node_sources
from nydus_console.screens.logview import LogRow, LogView
from nydus_console.screens.node import NodeScreen
from nydus_console.screens.savelog import SaveLogModal
from nydus_console.transport.base import ErrorKind, TransportError
from nydus_console.transport.local import LocalTransport

NODE = "nc-node1"
NOW = 1_800_000_000.0
SIZE = (150, 30)
SNAPSHOTTER_LINES = [
    'time="2025-09-10T02:47:30.100000000Z" level=info msg="start nydus-snapshotter"',
    'time="2025-09-10T02:47:31.200000000Z" level=warning msg="slow fetch" '
    'image="docker.io/library/nginx:latest"',
    'time="2025-09-10T02:47:32.300000000Z" level=error msg="failed to mount" '
    'error="mount failed: no such device"',
]
NYDUSD_LINES = [
    "[2025-09-10 02:47:33.400000 +00:00] INFO [/src/bin/nydusd/main.rs:591] "
    "nydusd starts with fusedev",
    "[2025-09-10 02:47:34.500000 +00:00] WARN [/src/backend/mod.rs:132] "
    "registry answered slowly",
]


def make_app(tmp_path: Path) -> NydusConsoleApp:
    """Return an app whose node has recorded facts and runs commands here."""
    facts = load_recorded(SAMPLES / "facts")[NODE]
    fleet = recorded_fleet({NODE: facts}, clock=lambda: NOW)
    fleet.transports[NODE] = LocalTransport(NODE)
    return NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)


def write_logs(tmp_path: Path) -> tuple[Path, Path]:
    snapshotter = tmp_path / "nydus-snapshotter.log"
    snapshotter.write_text("\n".join(SNAPSHOTTER_LINES) + "\n")
    nydusd = tmp_path / "d1" / "nydusd.log"
    nydusd.parent.mkdir()
    nydusd.write_text("\n".join(NYDUSD_LINES) + "\n")
    return snapshotter, nydusd


def file_sources(*paths: Path) -> list[LogSource]:
    return [LogSource("file", str(path)) for path in paths]


def append(path: Path, *lines: str) -> None:
    with path.open("a") as out:
        out.write("".join(line + "\n" for line in lines))


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], bool], seconds: float = 8.0
) -> None:
    """Pause until `condition` holds; fail with the screen's status if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            screen = pilot.app.screen
            state = ""
            if isinstance(screen, LogScreen):
                last = "\n".join(messages(screen)[-5:])
                state = f"{screen.sources_text().plain}\n{status(screen)}\n{last}"
            raise AssertionError(f"condition not met in {seconds} s:\n{state}")
        await pilot.pause(0.05)


async def open_logs(
    pilot: Pilot[Any], sources: list[LogSource], capacity: int = 20_000
) -> LogScreen:
    await pilot.app.workers.wait_for_complete()
    screen = LogScreen(NODE, sources=sources, capacity=capacity)
    await pilot.app.push_screen(screen)
    await pilot.pause()
    return screen


def messages(screen: LogScreen) -> list[str]:
    return [row.record.message for row in screen.view.rows]


def status(screen: LogScreen) -> str:
    return screen.status_text().plain


# -- known failures ----------------------------------------------------------------

DUPLICATE_LINE = (
    'time="2025-09-10T02:49:00.000000000Z" level=fatal msg="failed to start '
    'nydus-snapshotter" error="failed to initialize snapshotter: wait until daemon '
    "is RUNNING: daemon socket /var/lib/containerd/io.containerd.snapshotter.v1."
    'nydus/socket/d1/api.sock: not found"'
)


async def test_known_failure_is_marked_and_explained(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        assert not screen.known_seen
        append(snapshotter, DUPLICATE_LINE)
        await wait_for(pilot, lambda: len(screen.view.rows) == 6)
        (row,) = [r for r in screen.view.rows if r.record.signature]
        assert "wait until daemon is RUNNING" in row.record.fields["error"]
        rendered = screen.format.render(row).plain
        assert "known failure: " in rendered
        assert screen.format.width(row) == len(rendered)
        assert "1 known failures (f explains)" in status(screen)
        await pilot.press("f")
        await pilot.pause()
        text = str(app.screen.query_one("#known-text", Static).render())
        signature = screen.known_seen[row.record.signature].match.signature
        assert signature.title in text
        assert "Next step" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


CONFIG_MISSING_LINE = (
    'time="2025-09-10T02:49:01.000000000Z" level=fatal msg="failed to start '
    'nydus-snapshotter" error="failed to initialize snapshotter: load daemon '
    "configuration: read FUSE configuration file /etc/nydus/missing.json: open "
    '/etc/nydus/missing.json: no such file or directory"'
)
PLACEHOLDER = re.compile(r"\{\w+\}")


def test_every_signature_explained_without_placeholders() -> None:
    lines = [
        KnownLine(match, NODE)
        for signature in default_matcher().pattern_signatures()
        for example in signature.examples
        for match in default_matcher().match_text(example)
    ]
    assert len({line.match.signature.id for line in lines}) > 20
    for line in lines:
        text = known_markup(line)
        assert not PLACEHOLDER.search(text), (line.match.signature.id, text)


def modal_text(app: NydusConsoleApp, part: str) -> str:
    return str(app.screen.query_one(f"#known-{part}", Static).render())


async def test_explain_steps_through_known_failures(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        append(snapshotter, CONFIG_MISSING_LINE, DUPLICATE_LINE, CONFIG_MISSING_LINE)
        await wait_for(pilot, lambda: len(screen.view.rows) == 6)
        assert len(screen.known_seen) == 2
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, KnownFailureModal)
        heading = modal_text(app, "heading")
        assert heading == "Newest of 2 known failures seen (n older, p newer)"
        newest = modal_text(app, "text")
        assert "names /etc/nydus/missing.json, which does not exist" in newest
        assert "install a nydusd config at /etc/nydus/missing.json" in newest
        await pilot.press("n")
        assert modal_text(app, "heading").startswith("Known failure 2 of 2")
        assert "wait until daemon is RUNNING" in modal_text(app, "text")
        await pilot.press("n", "p")
        assert modal_text(app, "text") == newest
        await pilot.press("escape")
        await pilot.pause()
        # With a current line, f explains that line's failure alone.
        await pilot.press("s", *"RUNNING", "enter")
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()
        assert modal_text(app, "heading") == "Known failure of the current line"
        assert "wait until daemon is RUNNING" in modal_text(app, "text")


# -- following -------------------------------------------------------------------


async def test_shows_lines_appended_later(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        assert "failed to mount" in messages(screen)
        assert "nydusd starts with fusedev" in messages(screen)
        append(
            nydusd,
            "[2025-09-10 02:48:00.000000 +00:00] ERROR [/src/fs.rs:12] read failed",
        )
        append(snapshotter, 'time="2025-09-10T02:48:01Z" level=info msg="later"')
        await wait_for(pilot, lambda: len(screen.view.rows) == 7)
        assert {"read failed", "later"} <= set(messages(screen))
        sources = {row.record.source for row in screen.view.rows}
        assert sources == {"nydus-snapshotter.log", "nydusd d1"}
        assert "received 7 | shown 7" in status(screen)


async def test_level_filter_hides_info(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        await pilot.press("v", "v")
        assert sorted(messages(screen)) == [
            "failed to mount",
            "registry answered slowly",
            "slow fetch",
        ]
        assert "level warning+" in status(screen)
        await pilot.press("v")
        assert messages(screen) == ["failed to mount"]
        await pilot.press("v")
        assert len(messages(screen)) == 5


async def test_include_and_exclude_regex(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("slash", *"f[ae]", "enter")
        assert messages(screen) == ["slow fetch", "failed to mount"]
        await pilot.press("backslash", *"no such device", "enter")
        assert messages(screen) == ["slow fetch"]
        assert "include /f[ae]/ | exclude /no such device/" in status(screen)
        append(snapshotter, 'time="2025-09-10T02:49:00Z" level=info msg="mounted"')
        await wait_for(pilot, lambda: screen.buffer.received == 4)
        await pilot.pause(0.2)
        assert messages(screen) == ["slow fetch"], "new lines go through the filter"
        await pilot.press("slash", "ctrl+u", "enter", "x", "ctrl+u", "enter")
        assert len(messages(screen)) == 4


async def test_patterns_match_source_and_level(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        await pilot.press("slash", *"ERROR|WARN", "enter")
        assert messages(screen) == [
            "slow fetch",
            "failed to mount",
            "registry answered slowly",
        ]
        await pilot.press("backslash", *"nydusd d1", "enter")
        assert messages(screen) == ["slow fetch", "failed to mount"]
        # The single-node view has no node column, so the node name is not matched.
        await pilot.press("slash", "ctrl+u", *NODE, "enter")
        assert messages(screen) == []


async def test_help_shows_exclude_key_once(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_logs(pilot, file_sources(snapshotter))
        await pilot.press("question_mark")
        await pilot.pause()
        text = str(app.screen.query_one(Static).render())
        (line,) = [line for line in text.splitlines() if "Exclude" in line]
        assert line.split() == ["\\", "Exclude"]


async def test_fast_typed_pattern_lands_in_box(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        # All keys queued at once, as a terminal delivers fast typing; "s",
        # "v" and "/" inside the pattern would otherwise run bindings.
        for key, char in [("slash", "/"), *[(c, c) for c in "slow|v/"]]:
            app.post_message(events.Key(key, char))
        app.post_message(events.Key("enter", "\r"))
        await pilot.pause(0.3)
        assert screen.rules.include is not None
        assert screen.rules.include.pattern == "slow|v/"
        assert screen.rules.level_index == 0
        assert screen.format.search is None
        assert messages(screen) == ["slow fetch"]


async def test_invalid_regex_keeps_filter(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("slash", *"slow", "enter")
        await pilot.press("slash", "ctrl+u", *"fail(", "enter")
        text = status(screen)
        assert "invalid include regex 'fail(': missing ), unterminated" in text
        assert screen.rules.include is not None
        assert screen.rules.include.pattern == "slow"
        assert messages(screen) == ["slow fetch"]


async def test_pause_counts_new_lines(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("space")
        lines = [
            f'time="2025-09-10T03:00:{i:02}Z" level=info msg="n{i}"' for i in range(40)
        ]
        append(snapshotter, *lines)
        await wait_for(pilot, lambda: len(screen.view.rows) == 43)
        assert screen.view.scroll_offset.y == 0, "a paused view does not move"
        assert "PAUSED, 40 new lines" in status(screen)
        await pilot.press("space")
        await pilot.pause(0.1)
        assert screen.view.scroll_offset.y == screen.view.max_scroll_y > 0
        assert "following" in status(screen)


async def test_search_next_and_previous(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("s", *"fetch|mount", "enter")

        def current() -> str:
            seq = screen.format.current_seq
            return next(r.record.message for r in screen.view.rows if r.seq == seq)

        assert current() == "slow fetch"
        await pilot.press("n")
        assert current() == "failed to mount"
        await pilot.press("n")
        assert current() == "slow fetch", "search wraps around"
        await pilot.press("N")
        assert current() == "failed to mount"
        assert "match on line 3 of 3" in status(screen)
        line = screen.format.render(screen.view.rows[2])
        highlighted = [span for span in line.spans if str(span.style) == "reverse"]
        assert line.plain[highlighted[0].start : highlighted[0].end] == "mount"


async def test_context_lines_around_matches(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text(
        "".join(
            f'time="2025-09-10T03:00:{i:02}Z" level=info msg="m{i}"\n'
            for i in range(12)
        )
    )
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 12)
        await pilot.press("slash", *"m6$", "enter")
        assert messages(screen) == ["m6"]
        await pilot.press("c")
        assert messages(screen) == ["m4", "m5", "m6", "m7", "m8"]
        assert [row.context for row in screen.view.rows] == [1, 1, 0, 1, 1]
        await pilot.press("c")
        assert messages(screen) == [f"m{i}" for i in range(1, 12)]
        await pilot.press("c")
        assert messages(screen) == ["m6"]


async def test_overflow_shows_dropped_count(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text(
        "".join(
            f'time="2025-09-10T03:00:{i:02}Z" level=info msg="m{i}"\n'
            for i in range(12)
        )
    )
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(log), capacity=5)
        newest = [f"m{i}" for i in range(7, 12)]
        await wait_for(pilot, lambda: messages(screen) == newest)
        assert "7 lines dropped (buffer of 5)" in status(screen)


async def test_missing_file_says_path(tmp_path: Path) -> None:
    missing = tmp_path / "later" / "nydusd.log"
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(missing))
        await wait_for(pilot, lambda: screen.sources[0].state == "missing")
        sources = screen.sources_text().plain
        assert f"missing: {missing} does not exist" in sources
        await wait_for(pilot, lambda: len(screen.view.rows) == 1)
        row = screen.view.rows[0]
        assert row.record.marker
        assert f"cannot open '{missing}' for reading" in row.record.message
        missing.parent.mkdir()
        append(missing, NYDUSD_LINES[0])
        await wait_for(pilot, lambda: "nydusd starts with fusedev" in messages(screen))
        assert screen.sources[0].state == "following"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission")
async def test_unreadable_file_says_why(tmp_path: Path) -> None:
    locked = tmp_path / "nydus-snapshotter.log"
    locked.write_text(SNAPSHOTTER_LINES[0] + "\n")
    locked.chmod(0)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(locked))
        await wait_for(pilot, lambda: screen.sources[0].state == "unreadable")
        assert f"permission denied reading {locked}" in screen.sources_text().plain


async def test_markup_in_line_is_text(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text(
        'time="2025-09-10T03:00:00Z" level=info msg="root [/x][bold red]y"\n'
    )
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 1)
        await pilot.press("s", *"[", "enter")
        await pilot.pause()
        assert messages(screen) == ["root [/x][bold red]y"]
        assert "invalid search regex '['" in status(screen)


async def test_toggle_source_hides_its_lines(tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        await pilot.press("2")
        assert {r.record.source for r in screen.view.rows} == {"nydus-snapshotter.log"}
        assert "2 nydusd d1 hidden" in screen.sources_text().plain
        await pilot.press("2")
        assert len(screen.view.rows) == 5


async def test_screen_defers_full_collections(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    before = gc.get_threshold()
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_logs(pilot, file_sources(snapshotter))
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] == max(before[2], 100)
        await pilot.press("escape")
        assert not isinstance(app.screen, LogScreen)
        assert gc.get_threshold() == before


# -- time order ------------------------------------------------------------------


def logrus(second: float, message: str) -> str:
    return f'time="2025-09-10T03:00:{second:06.3f}Z" level=info msg="{message}"'


class NodeDirTransport(LocalTransport):
    """Runs commands here, with `@NODE@` in any argument replaced by the node name.

    So one list of file sources names a different file for each merged node.
    """

    def stream(self, argv: Sequence[str], *, sudo: bool = True) -> AsyncIterator[str]:
        return super().stream([a.replace("@NODE@", self.name) for a in argv], sudo=sudo)

    async def run(self, argv: Sequence[str], **options: Any) -> Any:
        mapped = [a.replace("@NODE@", self.name) for a in argv]
        return await super().run(mapped, **options)


async def test_sources_merge_in_time_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    append(first, logrus(1, "a1"), logrus(3, "a3"), logrus(5, "a5"))
    second.write_text("")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(first, second))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        append(second, logrus(2, "b2"), logrus(4, "b4"))
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        assert messages(screen) == ["a1", "b2", "a3", "b4", "a5"]
        append(first, logrus(4.5, "late"))
        await wait_for(pilot, lambda: len(screen.view.rows) == 6)
        assert messages(screen) == ["a1", "b2", "a3", "b4", "late", "a5"]
        assert "out of time order" not in status(screen)


async def test_merged_nodes_ordered_with_node(tmp_path: Path) -> None:
    recorded = load_recorded(SAMPLES / "facts")
    names = [NODE, "nc-node2"]
    fleet = recorded_fleet({name: recorded[name] for name in names}, lambda: NOW)
    for name in names:
        fleet.transports[name] = NodeDirTransport(name)
    (tmp_path / NODE).mkdir()
    (tmp_path / "nc-node2").mkdir()
    append(tmp_path / NODE / "snapshotter.log", logrus(1, "one"), logrus(3, "three"))
    append(tmp_path / "nc-node2" / "snapshotter.log", logrus(2, "two"))
    source = LogSource("file", f"{tmp_path}/@NODE@/snapshotter.log")
    app = NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = LogScreen(nodes=names, sources=[source])
        await app.push_screen(screen)
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        shown = [(row.record.node, row.record.message) for row in screen.view.rows]
        assert shown == [(NODE, "one"), ("nc-node2", "two"), (NODE, "three")]
        line = screen.format.render(screen.view.rows[1]).plain
        assert line == "09-10 03:00:02.000 nc-node2 snapshotter.log INFO  two"


async def test_merged_patterns_match_node_column(tmp_path: Path) -> None:
    recorded = load_recorded(SAMPLES / "facts")
    names = [NODE, "nc-node2"]
    fleet = recorded_fleet({name: recorded[name] for name in names}, lambda: NOW)
    for name in names:
        fleet.transports[name] = NodeDirTransport(name)
        (tmp_path / name).mkdir()
    append(tmp_path / NODE / "snapshotter.log", logrus(1, "one"), logrus(3, "three"))
    append(tmp_path / "nc-node2" / "snapshotter.log", logrus(2, "two"))
    source = LogSource("file", f"{tmp_path}/@NODE@/snapshotter.log")
    app = NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = LogScreen(nodes=names, sources=[source])
        await app.push_screen(screen)
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("slash", *"nc-node2", "enter")
        assert messages(screen) == ["two"]
        await pilot.press("slash", "ctrl+u", "enter")
        await pilot.press("backslash", *"nc-node2", "enter")
        assert messages(screen) == ["one", "three"]


async def test_merged_nodes_list_every_source(tmp_path: Path) -> None:
    recorded = load_recorded(SAMPLES / "facts")
    names = list(recorded)
    fleet = recorded_fleet(recorded, lambda: NOW)
    for name in names:
        fleet.transports[name] = NodeDirTransport(name)
        (tmp_path / name).mkdir()
    sources = [
        LogSource("file", f"{tmp_path}/@NODE@/{label}.log")
        for label in ("snapshotter", "containerd", "kubelet", "daemon")
    ]
    app = NydusConsoleApp(fleet.inventory, refresh_seconds=0, fleet=fleet)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = LogScreen(nodes=names, sources=sources)
        await app.push_screen(screen)
        await pilot.pause(0.5)
        box = screen.query_one("#logs-sources", Static)
        shown = box.render()
        lines = str(shown).splitlines()
        assert len(screen.sources) == 12
        assert len(lines) == 3, "one line per node"
        assert box.size.height == 3
        assert lines[2].startswith("nc-node3:  9 snapshotter.log missing")
        assert lines[2].endswith("12 daemon.log missing")


async def test_paused_view_keeps_top_row(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    append(first, *(logrus(i, f"m{i}") for i in range(60)))
    second.write_text("")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(first, second))
        await wait_for(pilot, lambda: len(screen.view.rows) == 60)
        await pilot.press("space")
        screen.view.scroll_to(y=20, animate=False)
        await pilot.pause()
        append(second, logrus(5.5, "late"))
        await wait_for(pilot, lambda: len(screen.view.rows) == 61)
        assert messages(screen)[5:8] == ["m5", "late", "m6"]
        view = screen.view
        assert view.scroll_offset.y == 21, "the row inserted above moves the view"
        assert view.rows[view.row_at(view.scroll_offset.y)].record.message == "m20"


# -- copying ---------------------------------------------------------------------


def toasts(app: NydusConsoleApp) -> list[str]:
    return [notification.message for notification in app._notifications]


async def test_copy_last_shown_line(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("y")
        assert app.clipboard == (
            "09-10 02:47:32.300 nydus-snapshotter.log ERROR failed to mount "
            "error=mount failed: no such device"
        )
        assert toasts(app) == ["copied 1 line to the clipboard"]


async def test_copy_current_match(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.press("s", *"fetch", "enter", "y")
        assert "slow fetch" in app.clipboard
        assert "failed to mount" not in app.clipboard


async def test_click_makes_row_current(tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        await pilot.click(LogView, offset=(5, 0))
        assert screen.format.current_seq == screen.view.rows[0].seq
        assert "PAUSED" in status(screen)
        await pilot.press("y")
        assert "start nydus-snapshotter" in app.clipboard


async def test_copy_selection_masks_secret(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    append(
        log,
        logrus(1, "first"),
        'time="2025-09-10T03:00:02Z" level=info msg="pull" auth="dXNlcjpwYXNz"',
        logrus(3, "third"),
        logrus(4, "fourth"),
    )
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 4)
        await pilot.mouse_down(LogView, offset=(19, 0))
        await pilot.hover(LogView, offset=(30, 2))
        await pilot.mouse_up(LogView, offset=(30, 2))
        assert screen.view.selected_row_count() == 3
        await pilot.press("y")
        copied = app.clipboard.splitlines()
        assert copied == [
            "nydus-snapshotter.log INFO  first",
            '09-10 03:00:02.000 nydus-snapshotter.log INFO  pull auth="***"',
            "09-10 03:00:03.000 nydus-snapsh",
        ]
        assert "dXNlcjpwYXNz" not in app.clipboard
        assert toasts(app)[-1] == "copied 3 lines to the clipboard"
        await pilot.press("escape")
        assert screen.view.selected_row_count() == 0
        assert app.screen is screen, "the first escape only clears the selection"


async def test_selection_follows_its_rows(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    append(first, *(logrus(i, f"m{i}") for i in range(10)))
    second.write_text("")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(first, second))
        await wait_for(pilot, lambda: len(screen.view.rows) == 10)
        await pilot.press("space")
        await pilot.mouse_down(LogView, offset=(0, 4))
        await pilot.hover(LogView, offset=(50, 5))
        await pilot.mouse_up(LogView, offset=(50, 5))
        before = [line.split()[-1] for line in screen.view.selected_lines()]
        assert before == ["m4", "m5"]
        append(second, logrus(0.5, "late"))
        await wait_for(pilot, lambda: len(screen.view.rows) == 11)
        after = [line.split()[-1] for line in screen.view.selected_lines()]
        assert after == ["m4", "m5"]


TERMINAL_APP = """
import sys
from pathlib import Path

sys.path[:0] = [{tests!r}]
from test_log_screen import NODE, file_sources, make_app

from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.known import KnownFailureModal, KnownLine, known_markup
from nydus_console.screens.logs import LogScreen

LOG = Path({log!r})


class LogsApp(NydusConsoleApp):
    def on_ready(self) -> None:
        self.push_screen(LogScreen(NODE, sources=file_sources(LOG)))


fleet = make_app(LOG.parent).fleet
LogsApp(fleet.inventory, refresh_seconds=0, fleet=fleet).run()
"""


@pytest.mark.tmux
def test_copy_reaches_tmux_buffer(tmp_path: Path) -> None:
    """The OSC 52 sequence of a copy sets the buffer of a real tmux."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (Debian package tmux)")
    snapshotter, _ = write_logs(tmp_path)
    script = tmp_path / "terminal_app.py"
    tests = str(Path(__file__).parent)
    script.write_text(TERMINAL_APP.format(tests=tests, log=str(snapshotter)))
    tmux = ["tmux", "-L", f"nc-copy-{os.getpid()}", "-f", "/dev/null"]
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "150", "-y", "30", command],
        check=True,
        env=env,
    )
    try:
        subprocess.run([*tmux, "set", "-g", "set-clipboard", "on"], check=True)
        wait_for_pane(tmux, "failed to mount")
        subprocess.run([*tmux, "send-keys", "y"], check=True)
        buffer = wait_for_buffer(tmux)
        assert buffer.startswith("09-10 02:47:32.300 nydus-snapshotter.log ERROR")
        assert "failed to mount" in buffer
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def wait_for_pane(tmux: list[str], text: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    pane = ""
    while time.monotonic() < deadline:
        pane = subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True
        ).stdout
        if text in pane:
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear in tmux; pane:\n{pane}")


def wait_for_buffer(tmux: list[str], seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = subprocess.run([*tmux, "show-buffer"], capture_output=True, text=True)
        if shown.returncode == 0:
            return shown.stdout
        time.sleep(0.1)
    raise AssertionError(f"tmux has no paste buffer {seconds} s after the copy")


# -- saving ----------------------------------------------------------------------


async def open_save(
    pilot: Pilot[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LogScreen, SaveLogModal]:
    """Show the snapshotter's warnings and errors, then press ctrl+s."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    snapshotter, _ = write_logs(tmp_path)
    screen = await open_logs(pilot, file_sources(snapshotter))
    await wait_for(pilot, lambda: len(screen.view.rows) == 3)
    await pilot.press("v", "v", "ctrl+s")
    modal = pilot.app.screen
    assert isinstance(modal, SaveLogModal)
    return screen, modal


def modal_message(modal: SaveLogModal) -> str:
    return str(modal.query_one("#save-message", Static).render())


async def type_path(pilot: Pilot[Any], modal: SaveLogModal, path: Path) -> None:
    box = modal.query_one(Input)
    box.value = str(path)
    await pilot.press("enter")


async def test_save_to_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen, modal = await open_save(pilot, tmp_path, monkeypatch)
        default = Path(modal.query_one(Input).value)
        saved_logs = tmp_path / "state" / "nydus-console" / "saved-logs"
        assert default.parent == saved_logs
        assert default.name.startswith(f"{NODE}-")
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        lines = default.read_text().splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("09-10 02:47:31.200 nydus-snapshotter.log WARN")
        assert "failed to mount" in lines[1]
        assert f"saved 2 lines to {default}" in status(screen)


async def test_save_asks_before_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "kept.log"
    target.write_text("old\n")
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen, modal = await open_save(pilot, tmp_path, monkeypatch)
        await type_path(pilot, modal, target)
        await wait_for(pilot, lambda: "already exists" in modal_message(modal))
        assert modal_message(modal) == (
            f"{target} already exists; overwrite it or choose another name"
        )
        assert modal.query_one("#save-overwrite", Button).display
        assert target.read_text() == "old\n"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in modal_message(modal))
        assert target.read_text() == "old\n", "enter again does not overwrite"
        await pilot.click("#save-overwrite")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert "failed to mount" in target.read_text()


async def test_save_escape_cancels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen, _ = await open_save(pilot, tmp_path, monkeypatch)
        await pilot.press("escape")
        assert pilot.app.screen is screen
        assert not (tmp_path / "state").exists()
        assert "saved" not in status(screen)


async def test_save_missing_directory_says_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "no such dir" / "view.log"
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        _, modal = await open_save(pilot, tmp_path, monkeypatch)
        await type_path(pilot, modal, target)
        await wait_for(pilot, lambda: "does not exist" in modal_message(modal))
        assert modal_message(modal) == (
            f"the directory {target.parent} does not exist; create it with "
            f"mkdir -p '{target.parent}' or choose another path"
        )
        assert pilot.app.screen is modal, "the path can be corrected"
        assert not modal.query_one(Input).disabled
        assert not target.parent.exists()


async def test_save_permission_denied_says_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sysfs rejects new files for every user, root included.
    target = Path("/sys/nydus-console-view.log")
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        _, modal = await open_save(pilot, tmp_path, monkeypatch)
        await type_path(pilot, modal, target)
        await wait_for(pilot, lambda: "permission denied" in modal_message(modal))
        assert modal_message(modal).startswith(
            f"permission denied writing {target}; choose a directory you can write to"
        )


async def test_screen_runs_while_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer blocks in its thread; lines still arrive on the screen below."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    log = tmp_path / "nydus-snapshotter.log"
    append(log, logrus(1, "before"))
    release = threading.Event()

    def slow_lines() -> Iterator[str]:
        release.wait(20)
        yield "saved line\n"

    target = tmp_path / "slow.log"
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 1)
        modal = SaveLogModal(target, 1, slow_lines)
        await pilot.app.push_screen(modal)
        await type_path(pilot, modal, target)
        append(log, logrus(2, "during"))
        await wait_for(pilot, lambda: "during" in messages(screen))
        assert pilot.app.screen is modal
        assert "saving to" in modal_message(modal)
        release.set()
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert target.read_text() == "saved line\n"


def commands_naming(text: str) -> list[str]:
    """Return the command lines of this machine's processes that contain `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(text in arg for arg in argv):
            found.append(" ".join(argv))
    return found


# -- planning and navigation -----------------------------------------------------


def test_plan_from_recorded_node() -> None:
    facts = load_recorded(SAMPLES / "facts")[NODE]
    fleet = recorded_fleet({NODE: facts}, clock=lambda: NOW)
    report = NodeReport(fleet.specs[NODE], facts=facts)
    sources, notes = plan_node_sources(report)
    root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
    assert sources == [
        LogSource("journal", "nydus-snapshotter.service"),
        LogSource("journal", "containerd.service"),
        LogSource("journal", "kubelet.service"),
        LogSource("file", f"{root}/logs/nydus-snapshotter.log"),
        LogSource("file", f"{root}/logs/m5su480o5spqkujk1kvq/nydusd.log"),
    ]
    assert notes == []


def test_plan_for_unreachable_node() -> None:
    fleet = recorded_fleet({NODE: load_recorded(SAMPLES / "facts")[NODE]}, lambda: NOW)
    error = TransportError(ErrorKind.REFUSED, "10.0.0.5 refused the connection.")
    sources, notes = plan_node_sources(NodeReport(fleet.specs[NODE], error=error))
    assert sources == []
    assert notes == [
        f"{NODE} is unreachable (refused): 10.0.0.5 refused the connection."
    ]


async def test_probed_tmp_node_follows_its_files(tmp_path: Path) -> None:
    """A local node laid out in tmp: the real probe decides what is followed."""
    spec, root = write_node(tmp_path)
    api = root / "socket" / "d1" / "api.sock"
    api.parent.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(api))
    listener.listen()
    logs = root / "logs"
    (logs / "d1").mkdir(parents=True)
    append(logs / "nydus-snapshotter.log", *SNAPSHOTTER_LINES)
    app = NydusConsoleApp(
        Inventory(nodes=[spec], source="tmp"),
        refresh_seconds=0,
        fleet=Fleet(Inventory(nodes=[spec], source="tmp")),
    )
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            app.open_node(spec.name)
            await pilot.pause()
            await pilot.press("l")
            screen = app.screen
            assert isinstance(screen, LogScreen)
            labels = [state.label for state in screen.sources]
            assert labels[-2:] == ["nydus-snapshotter.log", "nydusd d1"]
            if not app.fleet.reports[spec.name].facts.systemd_running:  # type: ignore[union-attr]
                assert (
                    f"no journal: systemd is not running on {spec.name}" in screen.notes
                )
            await wait_for(pilot, lambda: "failed to mount" in messages(screen))
            append(logs / "d1" / "nydusd.log", NYDUSD_LINES[1])
            await wait_for(
                pilot, lambda: "registry answered slowly" in messages(screen)
            )
            await pilot.press("escape")
            assert isinstance(app.screen, NodeScreen)
            assert not [w for w in app.workers if w.group == "logs" and w.is_running]
            await wait_for(pilot, lambda: not commands_naming(str(logs)))
    finally:
        listener.close()


async def test_unreachable_node_says_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.fleet.reports[NODE].error = TransportError(
            ErrorKind.TIMED_OUT, "10.201.0.6 did not answer within 10 s."
        )
        await pilot.app.push_screen(LogScreen(NODE))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LogScreen)
        empty = screen.empty_text().plain
        assert empty == (
            f"Nothing to follow: {NODE} is unreachable (timed out): "
            "10.201.0.6 did not answer within 10 s."
        )


@settings(max_examples=300, deadline=None)
@given(
    message=st.text(),
    fields=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20)),
    node=st.text(min_size=1, max_size=12),
    show_time=st.booleans(),
    node_width=st.integers(0, 10),
)
def test_row_width_matches_render(
    message: str,
    fields: dict[str, str],
    node: str,
    show_time: bool,
    node_width: int,
) -> None:
    record = LogRecord(node, "src\tlabel", message, Level.WARNING, 1.5, fields)
    row = LogRow(1.5, 0, record)
    row_format = RowFormat(show_time, node_width, source_width=6)
    assert row_format.width(row) == row_format.render(row).cell_len


def test_every_binding_has_an_id() -> None:
    for binding in LogScreen.BINDINGS:
        assert isinstance(binding, Binding), repr(binding)
        assert binding.id and binding.id.startswith("logs."), binding.key


# -- snapshots -------------------------------------------------------------------


def test_snapshot_log_screen(snap_compare: Any, tmp_path: Path) -> None:
    snapshotter, nydusd = write_logs(tmp_path)
    nydusd.write_text("")

    async def open_screen(pilot: Pilot[Any]) -> None:
        screen = await open_logs(pilot, file_sources(snapshotter, nydusd))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        # Appended only now, so that the two files' lines arrive in a fixed order.
        append(nydusd, *NYDUSD_LINES)
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        await pilot.press("s", *"fetch", "enter")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_screen)


async def test_wrap_while_following_stays_at_end(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    lines = [
        f'time="2025-09-10T03:00:{n:02d}Z" level=info msg="{n} {"y" * 150}"'
        for n in range(60)
    ]
    log.write_text("\n".join(lines) + "\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 60)
        await pilot.press("w")
        await pilot.pause(0.2)
        view = screen.view
        assert view.virtual_size.height > 120
        assert view.scroll_offset.y == view.max_scroll_y > 0
        assert screen.following


async def test_wrap_and_time_toggles(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    long = "x" * 300
    log.write_text(f'time="2025-09-10T03:00:00Z" level=info msg="{long}"\n')
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_logs(pilot, file_sources(log))
        await wait_for(pilot, lambda: len(screen.view.rows) == 1)
        assert screen.view.virtual_size.height == 1
        await pilot.press("w")
        await pilot.pause()
        assert screen.view.virtual_size.height == 4, "345 cells wrap into 4 lines"
        await pilot.press("t")
        line = screen.format.render(screen.view.rows[0]).plain
        assert line.startswith("nydus-snapshotter.log INFO  xxx")
        assert "times hidden" in status(screen)


def test_snapshot_known_failure_modal(snap_compare: Any, tmp_path: Path) -> None:
    snapshotter, _ = write_logs(tmp_path)

    async def open_modal(pilot: Pilot[Any]) -> None:
        screen = await open_logs(pilot, file_sources(snapshotter))
        await wait_for(pilot, lambda: len(screen.view.rows) == 3)
        append(snapshotter, DUPLICATE_LINE, CONFIG_MISSING_LINE)
        await wait_for(pilot, lambda: len(screen.view.rows) == 5)
        await pilot.press("f")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_modal)
