"""The side panels of the config screen, and how a write reports its steps.

ReportingGate wraps the app's ActionGate so that each command of a write
posts a message as it finishes; the results panel lists them until the
final ApplyReport replaces them with every step, the backup and a rollback.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.message import Message

from nydus_console.actions import Action, ActionGate, ActionRefused
from nydus_console.configedit.apply import ApplyReport
from nydus_console.configedit.session import MarkedProblem
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import CommandResult, Transport, TransportError


class ConfigStepRan(Message):
    """One command of a write finished on the node."""

    def __init__(self, name: str, ok: bool, detail: str) -> None:
        super().__init__()
        self.name = name
        self.ok = ok
        self.detail = detail


class ConfigWritten(Message):
    """A write finished: every step, the backup, and whether it rolled back."""

    def __init__(self, report: ApplyReport) -> None:
        super().__init__()
        self.report = report


class ReportingGate(ActionGate):
    """The app's gate, calling `ran` after each command of a write."""

    def __init__(self, gate: ActionGate, ran: Callable[[str, bool, str], None]):
        super().__init__(gate.audit, read_only=gate.read_only)
        self.ran = ran

    async def run(
        self,
        action: Action,
        spec: NodeSpec,
        transport: Transport,
        *,
        confirmed_by: str,
    ) -> CommandResult:
        try:
            result = await super().run(
                action, spec, transport, confirmed_by=confirmed_by
            )
        except (ActionRefused, TransportError) as exc:
            self.ran(action.name, False, str(exc))
            raise
        self.ran(action.name, result.ok, result.stderr.strip()[-200:])
        return result


def problems_markup(
    marked: list[MarkedProblem], unknown: list[tuple[str, str]]
) -> Text:
    """The problems panel: new problems first, then those the file already had."""
    text = Text()
    if not marked:
        text.append("No problems found.\n", style="green")
    ordered = sorted(marked, key=lambda m: (m.existing, m.problem.severity != "error"))
    for item in ordered:
        text.append_text(_problem_text(item))
    if any(item.blocking for item in marked):
        text.append("New errors block writing.\n", style="bold red")
    if unknown:
        text.append("\nKeys the console does not know\n", style="bold")
        for key, value in unknown:
            text.append(f"  {key}" + (f" = {value}" if value else "") + "\n")
    return text


def _problem_text(item: MarkedProblem) -> Text:
    problem = item.problem
    style = "bold red" if problem.severity == "error" else "yellow"
    text = Text.assemble((problem.severity, style))
    if item.existing:
        text.append(" (already in the file)", style="dim")
    if problem.key:
        text.append(f" {problem.key}")
    if problem.line:
        text.append(f" (line {problem.line})", style="dim")
    text.append(f"\n  {problem.message}\n")
    if problem.fix:
        text.append(f"  fix: {problem.fix}\n", style="dim")
    return text


def report_text(report: ApplyReport) -> Text:
    """The results panel after a write: every step, the backup, a rollback."""
    if report.ok:
        text = Text(f"Wrote {report.path} on {report.node}\n", style="bold green")
    elif report.rolled_back:
        text = Text("ROLLED BACK: the change failed\n", style="bold red")
    else:
        text = Text(f"Writing {report.path} failed\n", style="bold red")
    for step in report.steps:
        mark = ("ok    ", "green") if step.ok else ("FAILED", "bold red")
        detail = f": {step.detail}" if step.detail else ""
        text.append_text(Text.assemble(mark, f" {step.name}{detail}\n"))
    if report.backup:
        text.append(f"backup: {report.backup}\n")
    if report.rolled_back:
        text.append(
            "The old file was put back from the backup. Your edits are kept here.\n",
            style="bold",
        )
    return text
