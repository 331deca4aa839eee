"""Runbook runner screen: each step with its command, run one at a time.

The runner (nydus_console.runbooks) works in a worker. Before a needed step
it waits here: the step's command, with the node's values, is shown first,
and `r` runs it, `d` shows it as a dry run, `s` skips it and `a` aborts the
run. A destructive step opens the typed confirmation (Cancel has the focus).
After a failure `t` retries, `s` skips and `a` aborts.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from nydus_console.actions import Action
from nydus_console.runbooks import load_runbooks
from nydus_console.runbooks.model import Runbook
from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunbookHooks,
    RunReport,
    StepResult,
    StepStatus,
)
from nydus_console.runbooks.runner import RunbookRunner
from nydus_console.screens.confirm import ConfirmActionModal

STATUS_STYLES = {
    "waiting": "bold yellow",
    "running": "bold cyan",
    "done": "green",
    "not needed": "dim",
    "skipped": "yellow",
    "dry-run": "cyan",
    "failed": "bold red",
    "aborted": "bold red",
    str(StepStatus.REFUSED): "bold yellow",
}
# Cells of the status column: the longest status, "refused (read-only)".
STATUS_WIDTH = max(len(status) for status in STATUS_STYLES)


class ScreenHooks(RunbookHooks):
    """Hands the runner's questions to the screen and waits for the keys."""

    def __init__(self, screen: RunbookScreen) -> None:
        self.screen = screen

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        return await self.screen.ask(planned, failed=None)

    async def after_failure(
        self, node: str, planned: PlannedStep, result: StepResult
    ) -> Decision:
        return await self.screen.ask(planned, failed=result)

    def planned(self, node: str, planned: PlannedStep) -> None:
        self.screen.show_planned(planned)

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        self.screen.show_result(planned, result)

    def note(self, node: str, text: str) -> None:
        self.screen.add_note(text)


class RunbookScreen(Screen[None]):
    """One runbook on one node, step by step."""

    BINDING_GROUP_TITLE = "Runbook"
    DEFAULT_CSS = """
    #runbook-summary, #runbook-notes {
        height: auto;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    #runbook-steps {
        height: 1fr;
    }
    #runbook-detail-scroll {
        height: 1fr;
        border-top: solid $primary;
        padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="runbook.back"),
        Binding("r", "run_step", "Run", id="runbook.run"),
        Binding("d", "dry_run_step", "Dry-run", id="runbook.dry_run"),
        Binding("s", "skip_step", "Skip", id="runbook.skip"),
        Binding("t", "retry_step", "Retry", id="runbook.retry"),
        Binding("a", "abort_run", "Abort", id="runbook.abort"),
    ]

    def __init__(self, node: str, runbook_id: str) -> None:
        super().__init__()
        self.node = node
        self.runbook: Runbook = load_runbooks()[runbook_id]
        self.pending: asyncio.Future[Decision] | None = None
        self.pending_step: PlannedStep | None = None
        self.pending_failure: StepResult | None = None
        self.details: dict[str, str] = {}
        self.notes: list[str] = []
        self.report: RunReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="runbook-summary")
        yield DataTable(id="runbook-steps", cursor_type="row")
        with VerticalScroll(id="runbook-detail-scroll"):
            yield Static(id="runbook-detail")
        yield Static(id="runbook-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.runbook.id} on {self.node}"
        title = escape(self.runbook.title)
        summary = f"[b]{title}[/b]\n{escape(_flat(self.runbook.applies))}"
        self.query_one("#runbook-summary", Static).update(summary)
        table = self.query_one(DataTable)
        table.add_column("#", key="number", width=3)
        table.add_column("Status", key="status", width=STATUS_WIDTH)
        table.add_column("Step", key="title")
        table.add_column("Command", key="command")
        for number, step in enumerate(self.runbook.steps, start=1):
            title = step.title + (" [destructive]" if step.destructive else "")
            table.add_row(str(number), "", Text(title), "", key=step.id)
        self.add_note("checking the node")
        self.run_worker(
            self._run(), name="runbook", group="runbook", exit_on_error=False
        )

    async def _run(self) -> None:
        app = self.app
        runner = RunbookRunner(
            self.runbook,
            app.fleet.specs[self.node],  # type: ignore[attr-defined]
            app.fleet.transports[self.node],  # type: ignore[attr-defined]
            app.gate,  # type: ignore[attr-defined]
            ScreenHooks(self),
            probe=app.fleet.probers[self.node].probe,  # type: ignore[attr-defined]
        )
        self.report = await runner.run()
        self.add_note(f"run {self.report.status}. {self.report.message}".strip())
        self.refresh_bindings()
        app.probe(self.node, full=True)  # type: ignore[attr-defined]

    # -- what the runner reports ---------------------------------------------------

    def show_planned(self, planned: PlannedStep) -> None:
        status = "waiting" if planned.needed else "not needed"
        self._set_row(planned, status)
        self.details[planned.step.id] = planned_markup(planned)
        self._focus_row(planned)

    def show_result(self, planned: PlannedStep, result: StepResult) -> None:
        self._set_row(planned, str(result.status))
        detail = self.details.get(planned.step.id, planned_markup(planned))
        self.details[planned.step.id] = detail + "\n\n" + result_markup(planned, result)
        self._focus_row(planned)

    def add_note(self, text: str) -> None:
        self.notes = [*self.notes[-2:], text]
        self.query_one("#runbook-notes", Static).update(escape("\n".join(self.notes)))

    async def ask(self, planned: PlannedStep, failed: StepResult | None) -> Decision:
        """Wait for the operator's key; the step and its command are on screen."""
        self.pending = asyncio.get_running_loop().create_future()
        self.pending_step = planned
        self.pending_failure = failed
        keys = (
            "t retry, s skip, a abort"
            if failed
            else "r run, d dry-run, s skip, a abort"
        )
        self.add_note(f"step {planned.number}: {keys}")
        self.refresh_bindings()
        try:
            return await self.pending
        finally:
            self.pending = None
            self.pending_step = None
            self.pending_failure = None
            self.refresh_bindings()

    # -- keys ------------------------------------------------------------------------

    def _answer(self, decision: Decision) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.set_result(decision)

    def action_run_step(self) -> None:
        planned = self.pending_step
        if planned is None:
            return
        self._set_row(planned, "running")
        if not planned.step.destructive:
            self._answer(Decision(Choice.RUN, self.node))
            return
        spec = self.app.fleet.specs[self.node]  # type: ignore[attr-defined]
        # A needed step without an action is blocked and never asked about.
        assert planned.action is not None
        action: Action = planned.action

        def decided(confirmation: str | None) -> None:
            if confirmation:
                self._answer(Decision(Choice.RUN, confirmation))
            else:
                self._set_row(planned, "waiting")

        self.app.push_screen(
            ConfirmActionModal(self.node, spec.address, action), decided
        )

    def action_dry_run_step(self) -> None:
        self._answer(Decision(Choice.DRY_RUN))

    def action_skip_step(self) -> None:
        self._answer(Decision(Choice.SKIP))

    def action_retry_step(self) -> None:
        self._answer(Decision(Choice.RETRY))

    def action_abort_run(self) -> None:
        self._answer(Decision(Choice.ABORT))

    def action_back(self) -> None:
        if self.pending is not None:
            self._answer(Decision(Choice.ABORT))
        self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        asking = self.pending is not None
        failed = self.pending_failure is not None
        if action in ("run_step", "dry_run_step"):
            return asking and not failed
        if action == "retry_step":
            return asking and failed
        if action in ("skip_step", "abort_run"):
            return asking
        return True

    # -- table -----------------------------------------------------------------------

    def _set_row(self, planned: PlannedStep, status: str) -> None:
        table = self.query_one(DataTable)
        key = planned.step.id
        table.update_cell(
            key, "status", Text(status, style=STATUS_STYLES.get(status, ""))
        )
        command = planned.command_line or (
            planned.action.name if planned.action else ""
        )
        table.update_cell(key, "command", Text(command), update_width=True)

    def _focus_row(self, planned: PlannedStep) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=planned.index)
        self._show_detail(planned.step.id)

    def _show_detail(self, step_id: str) -> None:
        text = self.details.get(step_id, "")
        self.query_one("#runbook-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#runbook-steps")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._show_detail(str(event.row_key.value))


def planned_markup(planned: PlannedStep) -> str:
    """Render a planned step: why, whether needed, the command, its diff."""
    step = planned.step
    lines = [f"[b]{planned.number}. {escape(step.title)}[/b]", escape(_flat(step.why))]
    need = "needed" if planned.needed else "not needed"
    lines.append(f"\n[b]{need}[/b]: {escape(planned.reason)}")
    if planned.command_line:
        lines.append(f"[b]command[/b]: {escape(planned.command_line)}")
    elif planned.action is not None:
        lines.append(f"[b]action[/b]: {escape(planned.action.name)}")
    if planned.preview:
        lines += ["", escape(planned.preview.rstrip())]
    for check in planned.verify:
        lines.append(f"[b]verify[/b]: {escape(check)}")
    if planned.blocked:
        lines.append(f"[b red]blocked[/b red]: {escape(planned.blocked)}")
    return "\n".join(lines)


def result_markup(planned: PlannedStep, result: StepResult) -> str:
    lines = [f"[b]{result.status}[/b]: {escape(result.detail)}"]
    if result.output:
        lines += ["[b]output[/b]:", escape(result.output)]
    if result.status == "failed":
        lines.append(f"[b]on failure[/b]: {escape(_flat(planned.on_failure))}")
    return "\n".join(lines)


def _flat(text: str) -> str:
    return " ".join(text.split())
