"""Shared parts of the convert and build commands: one node, one streamed command.

Both preview a command, ask for confirmation, run it through the action gate
while ctrl+c cancels it, print its progress, keep a history and end with a
JSON document when asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from nydus_console import locations
from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.images.history import ConvertHistory, HistoryEntry
from nydus_console.images.run import StepResult, result_lines
from nydus_console.inventory import Inventory, NodeSpec
from nydus_console.transport.base import TransportError

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_USAGE = 64


class UsageError(Exception):
    """Arguments that cannot be used; exit 64."""


def one_node(inventory: Inventory, command: str) -> NodeSpec:
    """Return the inventory's only node; `command` runs on one node at a time."""
    if len(inventory.nodes) != 1:
        names = ", ".join(n.name for n in inventory.nodes)
        raise UsageError(
            f"{command} runs on one node; give --node NAME (the inventory has: {names})"
        )
    return inventory.nodes[0]


class StreamedCommand:
    """Output, confirmation, cancel and history of a streamed node command."""

    # Shown when the history is empty: "no conversions yet".
    HISTORY_NOUN = "runs"
    # The confirmation question; {node} is the node's name.
    QUESTION = "Run this on {node}? [y/N] "

    def __init__(
        self,
        history: ConvertHistory,
        *,
        read_only: bool,
        as_json: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self.history = history
        self.read_only = read_only
        self.as_json = as_json
        self.out = out or sys.stdout
        self.verbose = False

    def say(self, text: str = "") -> None:
        if not self.as_json:
            self.out.write(text + "\n")
            self.out.flush()

    def history_row(self, entry: HistoryEntry) -> str:
        """Return one line of `--history` for `entry`."""
        record = entry.record
        return (
            f"{entry.index:>3}  {record.get('time', '?')}  {entry.node}  "
            f"{record.get('outcome', '?')}  {record.get('target', '?')}"
        )

    def list_history(self) -> int:
        entries = self.history.entries()
        if self.as_json:
            rows = [{"index": e.index, **e.record} for e in entries]
            self.out.write(json.dumps(rows, indent=2) + "\n")
            return 0
        if not entries:
            self.say(f"no {self.HISTORY_NOUN} yet ({self.history.path})")
        for entry in entries:
            self.say(self.history_row(entry))
        return 0

    def confirmation(self, args: argparse.Namespace, spec: NodeSpec) -> str:
        """Return who confirmed the run, or "" when nobody did."""
        if args.yes:
            return "--yes on the command line"
        if not sys.stdin.isatty() or self.as_json:
            return ""
        answer = input(self.QUESTION.format(node=spec.name))
        return "answered y at the prompt" if answer.strip().lower() == "y" else ""

    def gate(self) -> ActionGate:
        return ActionGate(
            AuditLog(locations.audit_log_file()), read_only=self.read_only
        )

    @contextlib.contextmanager
    def cancelled_by_ctrl_c(self) -> Iterator[asyncio.Event]:
        """Yield an event that ctrl+c sets while the command runs."""
        cancel = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, cancel.set)
        try:
            yield cancel
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    def line(self, line: str) -> None:
        """Echo a raw output line with --verbose."""
        if self.verbose:
            self.say(f"  | {line}")

    def stop(self, document: dict[str, Any], message: str, code: int) -> int:
        """Record an error in the JSON document, print it and return `code`."""
        document["error"] = message
        print(f"nydus-console: {message}", file=sys.stderr)
        return code

    def unreachable(
        self, spec: NodeSpec, exc: TransportError, document: dict[str, Any]
    ) -> int:
        return self.stop(document, f"{spec.name}: {exc}", EXIT_UNREACHABLE)

    def say_result(self, what: str, result: StepResult) -> None:
        """Print how a streamed command ended and its last error."""
        for line in result_lines(what, result):
            self.say(line)

    def write_document(self, document: dict[str, Any], code: int) -> None:
        if self.as_json:
            document["exit_code"] = code
            self.out.write(json.dumps(document, indent=2) + "\n")
