"""`nydus-console logs`: print or follow a node's logs without the UI."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TextIO

from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory, InventoryError
from nydus_console.logs.follow import (
    LogFollower,
    LogSource,
    check_unit,
    rejects_output_fields,
)
from nydus_console.logs.records import LogRecord, compile_pattern
from nydus_console.transport.base import CommandResult, TransportError

EXIT_UNREACHABLE = 3
EXIT_UNREADABLE = 1
# Most lines -n may ask for: more would be held in memory on both ends.
MAX_LINES = 1_000_000


def pick_source(unit: str | None, path: str | None, default_unit: str) -> LogSource:
    if unit and path:
        raise InventoryError("give --unit or --file, not both")
    if path:
        if not path.startswith("/"):
            raise InventoryError(
                f"--file {path!r} must be an absolute path on the node"
            )
        return LogSource("file", path)
    return LogSource("journal", unit or default_unit)


def format_record(record: LogRecord, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "node": record.node,
                "source": record.source,
                "time": record.timestamp,
                "level": record.level.name.lower(),
                "message": record.message,
                "fields": record.fields,
                "marker": record.marker,
            }
        )
    when = (
        "-"
        if record.timestamp is None
        else datetime.datetime.fromtimestamp(record.timestamp, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
    )
    fields = " ".join(f"{k}={v}" for k, v in record.fields.items())
    return (
        f"{when} {record.node} {record.source} {record.level.name:<7} "
        f"{record.message}{'  ' + fields if fields else ''}"
    )


@dataclass
class LogQuery:
    """The `logs` request: one source per node, a filter, and text or JSON output."""

    unit: str | None
    path: str | None
    lines: int
    pattern: re.Pattern[str] | None
    as_json: bool
    out: TextIO

    def source_for(self, fleet: Fleet, name: str) -> LogSource:
        return pick_source(
            self.unit, self.path, fleet.specs[name].paths.snapshotter_unit
        )

    def emit(self, record: LogRecord) -> bool:
        """Print a record unless the pattern rejects it; markers always print."""
        if not record.marker and self.pattern and not self.pattern.search(record.raw):
            return False
        print(format_record(record, self.as_json), file=self.out, flush=True)
        return True


async def run_logs(
    inventory: Inventory,
    *,
    unit: str | None,
    path: str | None,
    lines: int,
    follow: bool,
    grep: str | None,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Print (or follow) one log source on every node; return the exit status."""
    query = LogQuery(
        unit, path, lines, compile_pattern(grep) if grep else None, as_json, out
    )
    fleet = Fleet(inventory)
    try:
        if follow:
            return await _follow_all(fleet, query)
        return await _print_all(fleet, query)
    finally:
        await fleet.close()


async def _print_all(fleet: Fleet, query: LogQuery) -> int:
    code = 0
    for name in fleet.specs:
        source = query.source_for(fleet, name)
        installed = await _unit_installed(fleet, name, source)
        try:
            result = await _run_query(fleet, name, source, query.lines)
        except TransportError as exc:
            print(f"nydus-console: {name}: {exc}", file=sys.stderr)
            code = EXIT_UNREACHABLE
            continue
        printed = sum(
            query.emit(source.parse(name, line))
            for line in result.stdout.splitlines()
            if line.strip()
        )
        # journalctl prints "No journal files were found." on stderr with status 0.
        if result.stderr.strip() and (result.exit_status != 0 or not printed):
            print(f"nydus-console: {name}: {result.stderr.strip()}", file=sys.stderr)
        failed = result.exit_status != 0 or not installed
        if failed and code == 0:
            code = EXIT_UNREADABLE  # a missing unit or unreadable file, for example
    return code


async def _unit_installed(fleet: Fleet, name: str, source: LogSource) -> bool:
    """Tell on stderr when a journal source's unit is not installed on a node.

    journalctl -u prints nothing and exits 0 for a unit that does not exist.
    """
    if source.kind != "journal":
        return True
    checked, detail = await check_unit(fleet.transports[name], source.target)
    if checked == "no unit":
        print(
            f"nydus-console: {name}: {detail}; check the name with "
            "`systemctl list-units --all`",
            file=sys.stderr,
        )
    return checked != "no unit"


async def _run_query(
    fleet: Fleet, name: str, source: LogSource, lines: int
) -> CommandResult:
    """Print a source once, again without --output-fields if journalctl lacks it."""
    transport = fleet.transports[name]
    result = await transport.run(source.command(lines, follow=False), timeout=60)
    if result.exit_status != 0 and rejects_output_fields(result.stderr):
        plain = replace(source, output_fields=False)
        result = await transport.run(plain.command(lines, follow=False), timeout=60)
    return result


async def _follow_all(fleet: Fleet, query: LogQuery) -> int:
    """Follow the source on every node where it exists; 1 when it exists nowhere."""
    names = [
        name
        for name in fleet.specs
        if await _unit_installed(fleet, name, query.source_for(fleet, name))
    ]
    if not names:
        return EXIT_UNREADABLE

    async def follow_one(name: str) -> None:
        source = query.source_for(fleet, name)
        follower = LogFollower(fleet.transports[name], name, source, query.lines)
        async for batch in follower.batches():
            for record in batch:
                query.emit(record)

    await asyncio.gather(*(follow_one(name) for name in names))
    return 0


def add_logs_arguments(parser: object) -> None:
    """Add the logs subcommand's own options to an argparse parser."""
    add = parser.add_argument  # type: ignore[attr-defined]
    add("--unit", help="journald unit (default: the node's snapshotter unit)")
    add(
        "--file",
        dest="path",
        metavar="PATH",
        help="a log file on the node instead, e.g. <root>/logs/nydus-snapshotter.log",
    )
    add(
        "-n",
        "--lines",
        type=int,
        default=100,
        metavar="N",
        help=f"how many recent lines to print first, 1 to {MAX_LINES} "
        "(default 100; 0 with --follow prints only new lines)",
    )
    add(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new lines until interrupted (ctrl+c)",
    )
    add(
        "--grep",
        metavar="REGEX",
        help="print only lines that match REGEX (case is ignored unless REGEX "
        "has an upper-case letter)",
    )
    add("--json", action="store_true", help="print one JSON object per line")


def validate_lines(lines: int, follow: bool) -> None:
    """Reject a -n outside 1..MAX_LINES (0 is allowed with --follow)."""
    least = 0 if follow else 1
    if not least <= lines <= MAX_LINES:
        raise InventoryError(
            f"invalid -n/--lines {lines}: give a number of lines from {least} "
            f"to {MAX_LINES}"
        )


def validate_grep(pattern: str | None) -> None:
    if pattern is None:
        return
    try:
        compile_pattern(pattern)
    except re.error as exc:
        raise InventoryError(f"invalid --grep {pattern!r}: {exc}") from None


__all__: Sequence[str] = [
    "add_logs_arguments",
    "run_logs",
    "validate_grep",
    "validate_lines",
]
