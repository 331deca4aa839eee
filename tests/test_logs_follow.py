"""Following logs for real: tail -F here, and journald on booted nodes over SSH."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from testbed.nspawn import NspawnFleet

from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.logs.follow import LogFollower, LogSource
from nydus_console.logs.records import Level, LogRecord
from nydus_console.screens.logs import check_journal_unit
from nydus_console.transport.local import LocalTransport


async def collect(
    batches: AsyncIterator[list[LogRecord]],
    count: int,
    timeout: float = 20,
    wanted: Callable[[LogRecord], bool] = lambda record: not record.marker,
) -> list[LogRecord]:
    """Take records (markers included) until `count` wanted records arrived."""
    got: list[LogRecord] = []

    async def take() -> None:
        async for batch in batches:
            got.extend(batch)
            if sum(wanted(r) for r in got) >= count:
                return

    await asyncio.wait_for(take(), timeout)
    return got


async def test_file_follow_sees_appends(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text('time="2024-01-01T00:00:00Z" level=info msg="old line"\n')
    follower = LogFollower(
        LocalTransport("here"), "here", LogSource("file", str(log)), lines=10
    )
    batches = follower.batches()
    first = await collect(batches, 1)
    assert [r.message for r in first] == ["old line"]
    with log.open("a") as handle:
        handle.write('time="2024-01-01T00:00:01Z" level=error msg="new" a=b\n')
        handle.write("[2024-01-01 00:00:02.5 +00:00] WARN plain nydusd line\n")
    more = await collect(batches, 2)
    assert [(r.level, r.message) for r in more] == [
        (Level.ERROR, "new"),
        (Level.WARNING, "plain nydusd line"),
    ]
    await batches.aclose()  # type: ignore[attr-defined]


async def test_missing_file_is_reported(tmp_path: Path) -> None:
    follower = LogFollower(
        LocalTransport("here"),
        "here",
        LogSource("file", str(tmp_path / "absent.log")),
        lines=5,
    )
    batches = follower.batches()
    got = await collect(batches, 1)
    await batches.aclose()  # type: ignore[attr-defined]
    assert "absent.log" in got[0].message
    assert "No such file or directory" in got[0].message


def test_journal_command_resumes_after_cursor() -> None:
    source = LogSource("journal", "nydus-snapshotter.service")
    assert source.command(50) == [
        "journalctl",
        "--no-pager",
        "-o",
        "json",
        "--output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID",
        "-u",
        "nydus-snapshotter.service",
        "-n",
        "50",
        "--follow",
    ]
    resumed = source.command(50, cursor="s=1;i=2")
    assert resumed[-3:] == ["--after-cursor", "s=1;i=2", "--follow"]
    plain = LogSource("journal", "x.service", output_fields=False).command(5)
    assert not [arg for arg in plain if arg.startswith("--output-fields")]


# journalctl of systemd before 236, which has no --output-fields.
OLD_JOURNALCTL = """#!/bin/sh
for arg in "$@"; do
    case "$arg" in
    --output-fields*)
        echo "journalctl: unrecognized option '$arg'" >&2
        exit 1
        ;;
    esac
done
echo '{"__CURSOR":"s=1;i=1","__REALTIME_TIMESTAMP":"1700000000000000",\
"MESSAGE":"from the old journal","PRIORITY":"4"}'
for arg in "$@"; do
    if [ "$arg" = --follow ]; then
        exec sleep 60
    fi
done
"""


def install_old_journalctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put OLD_JOURNALCTL first on PATH as `journalctl`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text(OLD_JOURNALCTL)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


async def test_old_journalctl_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_old_journalctl(tmp_path, monkeypatch)
    source = LogSource("journal", "nydus-snapshotter.service")
    follower = LogFollower(LocalTransport("here"), "here", source, lines=10)
    batches = follower.batches()
    got = await collect(batches, 1)
    await batches.aclose()  # type: ignore[attr-defined]
    assert [(r.level, r.message) for r in got] == [
        (Level.WARNING, "from the old journal")
    ], "neither the error nor a gap marker is shown"
    assert got[0].cursor == "s=1;i=1"
    assert not follower.source.output_fields


def is_entry(record: LogRecord) -> bool:
    return not record.marker and re.fullmatch(r"entry \d", record.message) is not None


@pytest.mark.nspawn
async def test_journal_follow_survives_sshd_kill(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node("nc-node1")
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    unit = "nc-logtest"

    def write(number: int) -> None:
        message = f"echo 'level=info msg=\"entry {number}\"'; true"
        node.exec(
            [
                "systemd-run",
                "--unit",
                unit,
                "--collect",
                "--wait",
                "--quiet",
                "sh",
                "-c",
                message,
            ],
            check=True,
        )

    # An exact unit name: a pattern only matches units systemd still has
    # loaded, and these transient ones are gone once they finish.
    source = LogSource("journal", f"{unit}.service")
    write(0)
    # The first stream starts with the unit's last entries, entry 0 among them,
    # so entry 0 arriving shows that the follow is live.
    follower = LogFollower(fleet.transports["nc-node1"], "nc-node1", source, lines=20)
    batches = follower.batches()
    try:
        records = await collect(batches, 1, timeout=60, wanted=is_entry)
        reader = asyncio.ensure_future(collect(batches, 6, timeout=90, wanted=is_entry))
        for number in (1, 2, 3):
            write(number)
        await asyncio.sleep(2)
        node.kill_sshd()
        for number in (4, 5, 6):
            write(number)
        await asyncio.sleep(1)
        node.start_sshd()
        fleet.reset_backoff()
        records += await reader
    finally:
        await batches.aclose()  # type: ignore[attr-defined]
        await fleet.close()
    messages = [r.message for r in records if is_entry(r)]
    assert messages == [f"entry {n}" for n in range(7)], records
    assert any(
        r.marker and "resumes after the last entry" in r.message for r in records
    )


async def test_closed_stream_ends_the_remote_command(nspawn_fleet: NspawnFleet) -> None:
    node = nspawn_fleet.node("nc-node1")
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    transport = fleet.transports["nc-node1"]
    marker = "/tmp/nc-stream-reap-marker"
    node.write_file(marker, "one\n")
    lines: list[str] = []

    async def follow() -> None:
        async for line in transport.stream(["tail", "-F", "-n", "5", marker]):
            lines.append(line)

    task = asyncio.ensure_future(follow())
    try:
        deadline = time.monotonic() + 30
        while "one" not in lines and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "one" in lines
        running = node.exec(["pgrep", "-f", f"tail -F -n 5 {marker}"])
        assert running.stdout.strip()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 10
        while node.exec(["pgrep", "-f", f"tail -F -n 5 {marker}"]).stdout.strip():
            assert time.monotonic() < deadline, "tail still runs on the node"
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await fleet.close()
        node.exec(["rm", "-f", marker])


async def test_stream_merges_stderr_and_ends_with_the_command(
    nspawn_fleet: NspawnFleet,
) -> None:
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    transport = fleet.transports["nc-node1"]
    try:
        argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
        lines = [line async for line in transport.stream(argv)]
    finally:
        await fleet.close()
    assert lines == ["out", "err"]


async def test_unit_check_names_a_missing_unit(nspawn_fleet: NspawnFleet) -> None:
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory()))
    transport = fleet.transports["nc-node1"]
    try:
        missing = await check_journal_unit(transport, "kubelet.service")
        present = await check_journal_unit(transport, "containerd.service")
    finally:
        await fleet.close()
    assert missing[0] == "no unit"
    assert "kubelet.service is not installed on nc-node1" in missing[1]
    assert "still shown" in missing[1]
    assert present == ("following", "")
