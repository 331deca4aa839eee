"""Command-line hooks of the runbook runner: print steps, confirm by flag or prompt.

`AutoHooks` confirms from `--yes` and `--yes-destructive NODE`, and
`TerminalHooks` asks on the terminal for what the flags do not confirm.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunbookHooks,
    StepResult,
    StepStatus,
)

CONFIRMED_BY_FLAG = "--yes on the command line"


class StepPrinter:
    """Prints planned steps and their results as plain text lines."""

    def __init__(self, out: TextIO, total: int, *, quiet: bool = False) -> None:
        self.out = out
        self.total = total
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def planned(self, node: str, planned: PlannedStep) -> None:
        step = planned.step
        mark = " [destructive]" if step.destructive else ""
        head = f"[{node}] step {planned.number}/{self.total}: {step.title}{mark}"
        if not planned.needed:
            self.say(f"{head}: not needed ({planned.reason})")
            return
        self.say(head)
        self.say(f"    why: {' '.join(step.why.split())}")
        self.say(f"    needed: {planned.reason}")
        if planned.command_line:
            self.say(f"    command: {planned.command_line}")
        elif planned.action is not None:
            self.say(f"    action: {planned.action.name}")
        for line in planned.preview.splitlines():
            self.say(f"    | {line}")
        for check in planned.verify:
            self.say(f"    verify: {check}")
        if planned.blocked:
            self.say(f"    blocked: {planned.blocked}")

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        if result.status is StepStatus.NOT_NEEDED:
            return
        self.say(f"[{node}]   {result.status}: {result.detail}")
        if result.status is StepStatus.FAILED:
            on_failure = " ".join(planned.on_failure.split())
            self.say(f"[{node}]   on failure: {on_failure}")

    def note(self, node: str, text: str) -> None:
        self.say(f"[{node}] {text}")


class AutoHooks(RunbookHooks):
    """Confirms from the command line: --yes and --yes-destructive NODE."""

    # The source of the confirmation of steps that are not destructive.
    confirmed_by = CONFIRMED_BY_FLAG
    # The hint, shown with a skipped destructive step, on how to run it.
    destructive_hint = "add --yes-destructive {node} to run it"

    def __init__(self, printer: StepPrinter, destructive_nodes: list[str]) -> None:
        self.printer = printer
        self.destructive_nodes = set(destructive_nodes)

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        step = planned.step
        if step.destructive:
            if node in self.destructive_nodes:
                return Decision(Choice.RUN, node)
            hint = self.destructive_hint.format(node=node)
            self.note(node, f"  skipped: destructive; {hint}")
            return Decision(Choice.SKIP)
        if step.kind == "manual" and not step.verify:
            self.note(node, "  do this by hand: " + " ".join(planned.preview.split()))
            return Decision(Choice.SKIP)
        return Decision(Choice.RUN, self.confirmed_by)

    def planned(self, node: str, planned: PlannedStep) -> None:
        self.printer.planned(node, planned)

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        self.printer.finished(node, planned, result)

    def note(self, node: str, text: str) -> None:
        self.printer.note(node, text)


class TerminalHooks(AutoHooks):
    """Asks on the terminal before each step that --yes does not confirm."""

    def __init__(
        self, printer: StepPrinter, yes: bool, destructive_nodes: list[str]
    ) -> None:
        super().__init__(printer, destructive_nodes)
        self.yes = yes

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        step = planned.step
        if step.destructive and node not in self.destructive_nodes:
            prompt = f"destructive: type {node} to run it, s to skip, a to abort: "
            answer = await _ask(prompt)
            if answer == node:
                return Decision(Choice.RUN, node)
            return Decision(Choice.ABORT if answer == "a" else Choice.SKIP)
        if self.yes or step.destructive:
            return await super().confirm(node, planned)
        answer = await _ask("[r]un, [d]ry-run, [s]kip or [a]bort? ")
        choices = {"r": Choice.RUN, "d": Choice.DRY_RUN, "s": Choice.SKIP}
        choice = choices.get(answer[:1], Choice.ABORT)
        return Decision(choice, "confirmed on the terminal")

    async def after_failure(
        self, node: str, planned: PlannedStep, result: StepResult
    ) -> Decision:
        answer = await _ask("[r]etry, [s]kip or [a]bort? ")
        choices = {"r": Choice.RETRY, "s": Choice.SKIP}
        return Decision(choices.get(answer[:1], Choice.ABORT))


async def _ask(prompt: str) -> str:
    try:
        answer = await asyncio.to_thread(input, prompt)
    except EOFError:
        return "a"
    return answer.strip()
