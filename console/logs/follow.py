"""Follow a journald unit or a log file on a node, surviving dropped connections.

A journal follower remembers the cursor of the last entry it saw and resumes
with `--after-cursor`, so a reconnect neither repeats nor loses entries. A
file follower cannot resume exactly: after a reconnect it continues from the
end of the file and marks the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Literal

from nydus_console.logs.parsers import masked, parse_journal_json, parse_text
from nydus_console.logs.records import Level, LogRecord
from nydus_console.transport.base import Transport, TransportError

# Lines are handed on in batches: at most this many, and at most this many
# seconds after the first line of a batch arrived.
BATCH_LINES = 1000
BATCH_SECONDS = 0.05
# Lines read ahead of the consumer; beyond this the reader waits (SSH flow
# control then slows the remote command) instead of growing memory.
QUEUE_LINES = 20_000
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 10.0
# The journal fields the parsers read. journalctl adds __CURSOR,
# __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP and _BOOT_ID to every entry.
# Asking for these alone halves the JSON of a typical entry (about 1 KB with
# every field on systemd 252), and with it the bytes sent and parsed.
JOURNAL_FIELDS = ("MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID")


def rejects_output_fields(text: str) -> bool:
    """Return whether text is journalctl's error for an unknown --output-fields.

    journalctl of systemd before 236 has no --output-fields and exits with
    getopt's "unrecognized option '--output-fields=...'".
    """
    return "unrecognized option" in text and "--output-fields" in text


@dataclass(frozen=True)
class LogSource:
    """A journald unit or a log file on a node.

    `output_fields` is False for a journalctl that rejects --output-fields.
    """

    kind: Literal["journal", "file"]
    target: str
    output_fields: bool = True

    @property
    def label(self) -> str:
        return self.target if self.kind == "journal" else self.target.rsplit("/", 1)[-1]

    def command(self, lines: int, cursor: str = "", follow: bool = True) -> list[str]:
        """Return the argument list that prints (and follows) this source."""
        if self.kind == "journal":
            argv = ["journalctl", "--no-pager", "-o", "json"]
            if self.output_fields:
                argv.append("--output-fields=" + ",".join(JOURNAL_FIELDS))
            argv += ["-u", self.target]
            argv += ["--after-cursor", cursor] if cursor else ["-n", str(lines)]
            return [*argv, "--follow"] if follow else argv
        if follow:
            return ["tail", "-n", str(lines), "-F", "--", self.target]
        return ["tail", "-n", str(lines), "--", self.target]

    def parse(self, node: str, line: str) -> LogRecord:
        if self.kind == "journal":
            return masked(parse_journal_json(node, self.label, line))
        return masked(parse_text(node, self.label, line))


async def check_unit(transport: Transport, unit: str) -> tuple[str, str]:
    """Ask systemd on the node whether a unit is installed.

    Return ("no unit", why) when systemd reports LoadState not-found,
    ("failed", why) when the node could not be asked, else ("ok", ""). A
    node without systemctl, or whose systemctl fails, counts as "ok", because
    only systemd's LoadState shows that a unit is missing.
    """
    argv = ["systemctl", "show", "--property=LoadState", "--value", "--", unit]
    try:
        result = await transport.run(argv, timeout=15)
    except TransportError as exc:
        return "failed", f"could not check {unit}: {exc.message}"
    if result.ok and result.stdout.strip() == "not-found":
        return "no unit", f"{unit} is not installed on {transport.name}"
    return "ok", ""


def marker(node: str, source: LogSource, text: str, level: Level) -> LogRecord:
    """Return a line the console inserts into a stream (gaps, reconnects)."""
    return LogRecord(
        node, source.label, text, level, time.time(), marker=True, raw=text
    )


class OutputFieldsRejected(Exception):
    """journalctl on the node does not know --output-fields."""


class LogFollower:
    """Streams batches of parsed records from one source until cancelled."""

    def __init__(
        self, transport: Transport, node: str, source: LogSource, lines: int = 200
    ) -> None:
        self.transport = transport
        self.node = node
        self.source = source
        self.lines = lines
        self.cursor = ""

    async def batches(self) -> AsyncIterator[list[LogRecord]]:
        """Yield record batches; reconnect with backoff when the stream fails."""
        backoff = 1.0
        first = True
        while True:
            argv = self.source.command(self.lines if first else 0, self.cursor)
            started = time.monotonic()
            try:
                async for batch in self._stream(argv):
                    yield batch
                reason = "the log command ended"
            except TransportError as exc:
                reason = f"the connection failed: {exc.message}"
            except OutputFieldsRejected:
                self.source = replace(self.source, output_fields=False)
                continue
            first = False
            # Only a stream that ran for a while resets the backoff: a command
            # that fails at once must not be restarted every second.
            if time.monotonic() - started > STABLE_SECONDS:
                backoff = 1.0
            yield [self._gap_marker(reason, backoff)]
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX_SECONDS, backoff * 2)

    def _gap_marker(self, reason: str, backoff: float) -> LogRecord:
        if self.source.kind == "journal" and self.cursor:
            resume = "then resumes after the last entry shown"
        else:
            resume = "lines written meanwhile may be missing"
        text = f"-- {reason}; retrying in {backoff:g} s, {resume} --"
        return marker(self.node, self.source, text, Level.WARNING)

    async def _stream(self, argv: list[str]) -> AsyncIterator[list[LogRecord]]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LINES)
        pump = asyncio.create_task(self._pump(argv, queue))
        first = True
        try:
            while True:
                lines = await _next_batch(queue)
                if lines is None:
                    break
                records = [
                    self.source.parse(self.node, line) for line in lines if line.strip()
                ]
                if not records:
                    continue
                if first and self._rejected_fields(records):
                    raise OutputFieldsRejected
                first = False
                for record in records:
                    if record.cursor:
                        self.cursor = record.cursor
                yield records
            await pump
        finally:
            # Wait for the pump, so that the command has exited when this returns
            # (also when the consumer is cancelled) instead of after the loop closed.
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _rejected_fields(self, records: list[LogRecord]) -> bool:
        """Return whether a stream's first records are the --output-fields error."""
        if self.source.kind != "journal" or not self.source.output_fields:
            return False
        return any(
            record.timestamp is None and rejects_output_fields(record.message)
            for record in records
        )

    async def _pump(self, argv: list[str], queue: asyncio.Queue[str | None]) -> None:
        lines = self.transport.stream(argv)
        try:
            async for line in lines:
                await queue.put(line)
        finally:
            # Close the stream here, in this task, so that the remote (or local)
            # command is ended before the loop can close under it.
            await lines.aclose()  # type: ignore[attr-defined]
            if not queue.full():
                queue.put_nowait(None)


async def _next_batch(queue: asyncio.Queue[str | None]) -> list[str] | None:
    """Wait for one line, then take what is queued, waiting once for a trickle.

    Taking queued lines without a timeout per line matters: a wait_for per
    line costs more than parsing it.
    """
    first = await queue.get()
    if first is None:
        return None
    lines = [first]
    if _drain(queue, lines):
        return lines
    if len(lines) < BATCH_LINES // 10:
        await asyncio.sleep(BATCH_SECONDS)
        _drain(queue, lines)
    return lines


def _drain(queue: asyncio.Queue[str | None], lines: list[str]) -> bool:
    """Move queued lines into `lines`; return True at the end of the stream."""
    while len(lines) < BATCH_LINES:
        try:
            line = queue.get_nowait()
        except asyncio.QueueEmpty:
            return False
        if line is None:
            queue.put_nowait(None)
            return True
        lines.append(line)
    return False
