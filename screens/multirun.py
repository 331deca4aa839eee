"""Multi-node run screen: one runbook on several nodes, without questions per step.

The nodes run one after another, or a chosen number at once. Each step runs
by the rules of `nydus-console runbook run --yes`: steps that are not needed
are passed over, a manual step without a verification is left to the operator,
and the first node that fails stops the nodes not started yet. A destructive
step runs only on the nodes whose names the operator typed when the run
started. A dry run resolves and shows every command and runs none.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from nydus_console.actions import Action
from nydus_console.runbooks import load_runbooks
from nydus_console.runbooks.model import Runbook
from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunReport,
    RunStatus,
    StepResult,
    StepStatus,
)
from nydus_console.runbooks.runner import RunbookRunner, run_on_nodes
from nydus_console.runbooks.terminal import AutoHooks, StepPrinter
from nydus_console.screens.messages import (
    MultiRunFinished,
    NodeRunEnded,
    RunNoteAdded,
    RunStepFinished,
    RunStepPlanned,
)
from nydus_console.screens.runbook import STATUS_STYLES, STATUS_WIDTH
from nydus_console.screens.runbookpicker import (
    DestructiveNodesModal,
    RunbookPickerModal,
)

if TYPE_CHECKING:
    from textual.app import App

NODE_STYLES = {
    **STATUS_STYLES,
    "queued": "dim",
    "completed": "green",
    "not started": "yellow",
}
RESULT_WIDTH = 70


class ScreenRunHooks(AutoHooks):
    """Confirms as the command line's --yes does and reports to the screen."""

    confirmed_by = "started on the multi-node run screen"
    destructive_hint = "its node name was not typed when the run started"

    def __init__(self, screen: MultiRunScreen, destructive_nodes: list[str]) -> None:
        super().__init__(StepPrinter(io.StringIO(), 0, quiet=True), destructive_nodes)
        self.screen = screen
        self.aborted = False

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        if self.aborted:
            return Decision(Choice.ABORT)
        return await super().confirm(node, planned)

    def planned(self, node: str, planned: PlannedStep) -> None:
        self.screen.post_message(RunStepPlanned(node, planned))

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        self.screen.post_message(RunStepFinished(node, planned, result))

    def note(self, node: str, text: str) -> None:
        self.screen.post_message(RunNoteAdded(node, text.strip()))


@dataclass
class NodeProgress:
    """The table cells of one node, and its log for the detail pane."""

    status: str = ""
    step: str = ""
    result: str = ""
    log: list[str] = field(default_factory=list)


class MultiRunScreen(Screen[None]):
    """One runbook on several nodes: serial or a few at once, or a dry run."""

    BINDING_GROUP_TITLE = "Multi-node run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="multirun.back"),
        Binding("r", "start", "Start", id="multirun.start"),
        Binding("p", "cycle_parallel", "Parallel", id="multirun.parallel"),
        Binding("d", "toggle_dry_run", "Dry-run", id="multirun.dry_run"),
        Binding("a", "abort", "Abort", id="multirun.abort"),
    ]

    def __init__(self, nodes: list[str], runbook: Runbook) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.runbook = runbook
        self.parallel = 1
        self.dry_run = False
        # ready, running or ended.
        self.state = "ready"
        self.hooks: ScreenRunHooks | None = None
        self.progress = {node: NodeProgress() for node in self.nodes}
        self.reports: list[RunReport] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="multirun-summary")
        yield Static(id="multirun-settings")
        yield DataTable(id="multirun-nodes", cursor_type="row")
        with VerticalScroll(id="multirun-detail-scroll"):
            yield Static(id="multirun-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.runbook.id} on {len(self.nodes)} node(s)"
        applies = " ".join(self.runbook.applies.split())
        summary = f"[b]{escape(self.runbook.title)}[/b]\n{escape(applies)}"
        self.query_one("#multirun-summary", Static).update(summary)
        table = self.query_one(DataTable)
        table.add_column("Node", key="node")
        table.add_column("Status", key="status", width=STATUS_WIDTH)
        table.add_column("Step", key="step")
        table.add_column("Result", key="result")
        for node in self.nodes:
            table.add_row(Text(node), "", "", "", key=node)
        self.show_settings()
        table.focus()

    # -- settings before the start -------------------------------------------------

    def show_settings(self) -> None:
        mode = "serial" if self.parallel == 1 else f"{self.parallel} nodes at once"
        action = (
            "dry run: show every command, run nothing"
            if self.dry_run
            else "run the needed steps"
        )
        lines = [
            f"[b]{mode}[/b]  |  [b]{action}[/b]  |  the first node that fails "
            "stops the nodes not started yet",
            escape(destructive_summary(self.runbook)),
        ]
        if self.state == "ready":
            lines.append("p: serial or parallel  d: dry-run  r: start")
        self.query_one("#multirun-settings", Static).update("\n".join(lines))

    def action_cycle_parallel(self) -> None:
        self.parallel = self.parallel % len(self.nodes) + 1
        self.show_settings()

    def action_toggle_dry_run(self) -> None:
        self.dry_run = not self.dry_run
        self.show_settings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "cycle_parallel", "toggle_dry_run"):
            return self.state == "ready"
        if action == "abort":
            return self.state == "running"
        return True

    # -- start -----------------------------------------------------------------------

    def action_start(self) -> None:
        if self.state != "ready":
            return
        missing = missing_parameter(self.runbook)
        if missing:
            self.notify(missing, severity="error", timeout=12)
            return
        if not self.dry_run and self.refused():
            return
        if self.dry_run or not any(s.destructive for s in self.runbook.steps):
            self.begin([])
            return

        def decided(names: list[str] | None) -> None:
            if names is not None:
                self.begin(names)

        self.app.push_screen(DestructiveNodesModal(self.runbook, self.nodes), decided)

    def refused(self) -> bool:
        """Refuse the run, and audit it, when any node is read-only."""
        gate = self.app.gate  # type: ignore[attr-defined]
        specs = self.app.fleet.specs  # type: ignore[attr-defined]
        reasons = {n: gate.refusal(specs[n]) for n in self.nodes}
        refused = {n: r for n, r in reasons.items() if r}
        for node, reason in refused.items():
            gate.record_refusal(runbook_action(self.runbook, node), specs[node], reason)
            self.set_node(node, status=str(RunStatus.REFUSED), result=reason)
        if refused:
            node, reason = next(iter(refused.items()))
            self.notify(
                f"{self.runbook.id} not run: {reason} ({node}); d starts a dry run",
                severity="error",
                timeout=12,
            )
        return bool(refused)

    def begin(self, destructive_nodes: list[str]) -> None:
        self.state = "running"
        self.hooks = ScreenRunHooks(self, destructive_nodes)
        for node in self.nodes:
            self.progress[node] = NodeProgress()
            self.set_node(node, status="queued", step="", result="")
        self.show_settings()
        self.refresh_bindings()
        self.run_worker(
            self._run(self.hooks),
            name=f"runbook {self.runbook.id} on {len(self.nodes)} nodes",
            group="multirun",
            description=f"{self.runbook.id} on {', '.join(self.nodes)}",
            exit_on_error=False,
        )

    async def _run(self, hooks: ScreenRunHooks) -> None:
        fleet = self.app.fleet  # type: ignore[attr-defined]
        gate = self.app.gate  # type: ignore[attr-defined]
        runners = [
            RunbookRunner(
                self.runbook,
                fleet.specs[node],
                fleet.transports[node],
                gate,
                hooks,
                probe=fleet.probers[node].probe,
                dry_run=self.dry_run,
            )
            for node in self.nodes
        ]

        def ended(report: RunReport) -> None:
            self.post_message(NodeRunEnded(report))

        reports = await run_on_nodes(runners, self.parallel, on_report=ended)
        self.post_message(MultiRunFinished(reports))

    # -- what the run reports --------------------------------------------------------

    @on(RunStepPlanned)
    def step_planned(self, message: RunStepPlanned) -> None:
        planned = message.planned
        total = len(self.runbook.steps)
        step = f"{planned.number}/{total} {planned.step.title}"
        self.set_node(message.node, status="running", step=step, result="")
        self.log_lines(message.node, planned_lines(planned))

    @on(RunStepFinished)
    def step_finished(self, message: RunStepFinished) -> None:
        result = message.result
        if result.status is StepStatus.NOT_NEEDED:
            shown = f"not needed: {message.planned.reason}"
        else:
            shown = f"{result.status}: {result.detail}"
            self.log_lines(message.node, [f"    {shown}"])
        self.set_node(message.node, result=shown)

    @on(RunNoteAdded)
    def note_added(self, message: RunNoteAdded) -> None:
        self.log_lines(message.node, [f"    {message.text}"])

    @on(NodeRunEnded)
    def node_ended(self, message: NodeRunEnded) -> None:
        report = message.report
        result = ended_text(report, self.dry_run)
        self.set_node(report.node, status=str(report.status), result=result)
        self.log_lines(report.node, [f"{report.status}: {report.message or result}"])

    @on(MultiRunFinished)
    def run_finished(self, message: MultiRunFinished) -> None:
        self.reports = message.reports
        self.state = "ended"
        self.show_settings()
        self.refresh_bindings()
        failed = [r for r in self.reports if not r.ok]
        if failed:
            first = failed[0]
            text = f"{self.runbook.id} stopped: {first.node} {first.status}"
            self.notify(text, severity="error", timeout=12)
        else:
            self.notify(f"{self.runbook.id} completed on {len(self.reports)} node(s)")
        if not self.dry_run:
            for report in self.reports:
                if report.results:
                    self.app.probe(report.node, full=True)  # type: ignore[attr-defined]

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "multirun" and event.state == WorkerState.ERROR:
            self.state = "ended"
            self.refresh_bindings()
            self.log.error(f"{event.worker.name} failed: {event.worker.error!r}")
            self.notify(f"the run failed: {event.worker.error}", severity="error")

    # -- keys while running ----------------------------------------------------------

    def action_abort(self) -> None:
        if self.hooks is not None and self.state == "running":
            self.hooks.aborted = True
            self.notify("aborting: each running node stops before its next step")

    def action_back(self) -> None:
        if self.state == "running":
            self.notify(
                "the run is still going: press a to abort it", severity="warning"
            )
            return
        self.app.pop_screen()

    # -- table -----------------------------------------------------------------------

    def set_node(self, node: str, **values: str) -> None:
        progress = self.progress[node]
        table = self.query_one(DataTable)
        for key, value in values.items():
            setattr(progress, key, value)
            if key == "status":
                cell = Text(value, style=NODE_STYLES.get(value, ""))
            else:
                cell = Text(clip(" ".join(value.split())))
            table.update_cell(node, key, cell, update_width=True)

    def log_lines(self, node: str, lines: list[str]) -> None:
        self.progress[node].log.extend(lines)
        if self.highlighted() == node:
            self.show_detail(node)

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    def show_detail(self, node: str) -> None:
        lines = self.progress[node].log or ["nothing has run on this node yet"]
        text = Text(f"{node}\n", style="bold")
        text.append("\n".join(lines))
        self.query_one("#multirun-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#multirun-nodes")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_detail(str(event.row_key.value))


def planned_lines(planned: PlannedStep) -> list[str]:
    """Describe a resolved step in a few plain lines, with its command."""
    step = planned.step
    mark = " [destructive]" if step.destructive else ""
    need = "needed" if planned.needed else "not needed"
    lines = [f"{planned.number}. {step.title}{mark}: {need} ({planned.reason})"]
    if planned.command_line:
        lines.append(f"    command: {planned.command_line}")
    elif planned.action is not None:
        lines.append(f"    action: {planned.action.name}")
    if planned.blocked:
        lines.append(f"    blocked: {planned.blocked}")
    return lines


def ended_text(report: RunReport, dry_run: bool) -> str:
    """Say in one line how the run ended on a node."""
    if report.stopped_at and report.results:
        last = report.results[-1]
        return f"step {report.stopped_at} {last.status}: {last.detail}"
    if report.status is not RunStatus.COMPLETED:
        return report.message
    if dry_run and report.status is RunStatus.COMPLETED:
        shown = sum(1 for r in report.results if r.status is StepStatus.DRY_RUN)
        return f"dry run: {shown} command(s) shown, none run"
    return report.step_counts()


def destructive_summary(runbook: Runbook) -> str:
    steps = [s.title for s in runbook.steps if s.destructive]
    if not steps:
        return "No destructive steps."
    return (
        f"{len(steps)} destructive step(s): {'; '.join(steps)}. They run only on "
        "the nodes whose names you type at the start."
    )


def missing_parameter(runbook: Runbook) -> str:
    """Name a value the runbook needs from the operator, which this screen lacks."""
    for param in runbook.params.values():
        if param.required and param.from_operator:
            return (
                f"{runbook.id} needs {param.name} ({param.description}); run it "
                f"with `nydus-console runbook run {runbook.id} --param "
                f"{param.name}=VALUE --node NODE`"
            )
    return ""


def runbook_action(runbook: Runbook, node: str) -> Action:
    """Describe the whole run on one node as an action, to audit a refusal."""
    argv = ("nydus-console", "runbook", "run", runbook.id, "--node", node)
    return Action(f"runbook {runbook.id}", argv)


def clip(text: str, width: int = RESULT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def open_multirun(app: App[object], nodes: list[str]) -> None:
    """Ask for a runbook, then open the multi-node run screen for `nodes`."""
    reports = app.fleet.reports  # type: ignore[attr-defined]
    worst = reports[nodes[0]].worst if nodes[0] in reports else None
    suggested = worst.runbook if worst is not None else ""

    def chosen(runbook_id: str | None) -> None:
        if runbook_id:
            runbook = load_runbooks()[runbook_id]
            app.push_screen(MultiRunScreen(nodes, runbook))

    app.push_screen(RunbookPickerModal(nodes, suggested), chosen)
