"""Setup screen: survey a node, take the answers, show the plan, apply, verify.

The engine (nydus_console.setup) does the work in named workers; this screen
only shows it. The survey runs when the screen opens. `p` plans with the
answers in the form (release tarballs on this machine included), `a`
applies the plan after a confirmation whose focused button is Cancel, and
`v` verifies the node again. Each step's row shows its progress, and the
panel below shows the highlighted step's reason, commands and diff.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
    Switch,
)

from nydus_console.actions import Action, ActionRefused
from nydus_console.screens.textbox import TextBox
from nydus_console.setup.answers import AnswerError, Answers
from nydus_console.setup.apply import ApplyOutcome, StepStatus
from nydus_console.setup.plan import (
    MissingBinaries,
    PlanError,
    PlanStep,
    SetupPlan,
    file_diff,
)
from nydus_console.setup.release import ReleaseError, unpack_binaries
from nydus_console.setup.session import NodeSetup
from nydus_console.setup.survey import Survey, SurveyError
from nydus_console.setup.verify import (
    GRAFANA_DASHBOARD,
    Verification,
    scrape_job,
    scrape_target,
)
from nydus_console.transport.base import TransportError

STAGES = ("survey", "answers", "plan", "apply", "verify")
STATUS_STYLES = {
    "planned": "",
    "started": "bold cyan",
    "done": "green",
    "failed": "bold red",
    str(StepStatus.REFUSED): "bold yellow",
}
TARBALLS_LABEL = "release tarballs on this machine"


class SetupConfirmModal(ModalScreen[bool]):
    """Asks before a plan is applied; Cancel has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="setup_confirm.cancel"),
    ]

    def __init__(self, node: str, address: str, plan: SetupPlan) -> None:
        super().__init__()
        self.node = node
        self.address = address
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(id="setup-confirm-dialog"):
            yield Static(
                f"Apply [b]{len(self.plan.steps)}[/b] setup step(s) on "
                f"[b]{escape(self.node)}[/b] ({escape(self.address)})?"
            )
            titles = [f"{n}. {s.title}" for n, s in enumerate(self.plan.steps, 1)]
            yield Static(escape("\n".join(titles)))
            with Horizontal(id="setup-confirm-buttons"):
                yield Button("Cancel", id="setup-confirm-cancel", variant="primary")
                yield Button("Apply", id="setup-confirm-apply", variant="error")

    def on_mount(self) -> None:
        self.query_one("#setup-confirm-cancel", Button).focus()

    @on(Button.Pressed, "#setup-confirm-apply")
    def apply(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#setup-confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class SetupScreen(Screen[None]):
    """First-time setup of one node, from survey to verification."""

    BINDING_GROUP_TITLE = "Setup"
    # The same widget at every opening, and not a text field, so that p
    # plans; Tab reaches the fields, tarballs first, where Enter plans.
    AUTO_FOCUS = "#setup-steps"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="setup.back"),
        Binding("p", "plan", "Plan", id="setup.plan"),
        Binding("a", "apply", "Apply", id="setup.apply"),
        Binding("v", "verify", "Verify", id="setup.verify"),
    ]

    def __init__(self, node: str, setup: NodeSetup | None = None) -> None:
        super().__init__()
        self.node = node
        self.setup = setup
        self.stage = "survey"
        self.busy = True
        self.survey: Survey | None = None
        self.plan: SetupPlan | None = None
        self.outcome: ApplyOutcome | None = None
        self.checks: list[Verification] = []
        self.message = ""
        self._release = tempfile.TemporaryDirectory(prefix="nydus-console-setup-")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="setup-stage")
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-answers", can_focus=False):
                yield Label(TARBALLS_LABEL)
                yield TextBox(id="setup-tarballs", placeholder="paths, space separated")
                yield Label("fs driver")
                yield Select(
                    [
                        ("fusedev (needs /dev/fuse)", "fusedev"),
                        ("fscache (kernel 5.19+)", "fscache"),
                    ],
                    value="fusedev",
                    allow_blank=False,
                    id="setup-fs-driver",
                )
                yield Label("Prometheus scrapes the metrics (:9110)")
                yield Switch(value=False, id="setup-prometheus")
                yield Label("registry host (empty: from each image)")
                yield TextBox(id="setup-registry", placeholder="registry.example.com")
                yield Label("what the node has")
                yield Static(id="setup-survey")
            yield DataTable(id="setup-steps", cursor_type="row")
        with VerticalScroll(id="setup-detail-scroll"):
            yield Static(id="setup-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"setup of {self.node}"
        if self.setup is None:
            app = self.app
            self.setup = NodeSetup(
                app.fleet.specs[self.node],  # type: ignore[attr-defined]
                app.fleet.transports[self.node],  # type: ignore[attr-defined]
                app.gate,  # type: ignore[attr-defined]
            )
        table = self.query_one(DataTable)
        table.add_column("#", key="number", width=3)
        table.add_column("Status", key="status", width=len(StepStatus.REFUSED))
        table.add_column("Step", key="title")
        self.show_stage()
        self.run_worker(
            self._survey(), name="setup-survey", group="setup", exit_on_error=False
        )

    def on_unmount(self) -> None:
        self._release.cleanup()

    # -- workers ---------------------------------------------------------------------

    async def _survey(self) -> None:
        assert self.setup is not None
        try:
            self.survey = await self.setup.survey()
        except (TransportError, SurveyError) as exc:
            message = f"The survey of {self.node} failed: {exc}"
            self.finish_work("survey", message, error=True)
            return
        self.query_one("#setup-survey", Static).update(survey_text(self.survey))
        self.stage = "answers"
        self.finish_work("answers", f"Surveyed {self.node}")

    async def _plan(self, answers: Answers, tarballs: list[Path]) -> None:
        assert self.setup is not None
        try:
            binaries = (
                await asyncio.to_thread(
                    unpack_binaries, tarballs, Path(self._release.name)
                )
                if tarballs
                else {}
            )
            # The node may have changed since the last survey (an apply ran).
            self.survey = await self.setup.survey()
            self.query_one("#setup-survey", Static).update(survey_text(self.survey))
            self.plan = await self.setup.plan(answers, binaries)
        except MissingBinaries as exc:
            self.finish_work("answers", f"No plan: {missing_text(exc)}", error=True)
            return
        except (
            AnswerError,
            PlanError,
            ReleaseError,
            SurveyError,
            TransportError,
        ) as exc:
            self.finish_work("answers", f"No plan: {exc}", error=True)
            return
        self.outcome = None
        self.checks = []
        self.fill_steps(self.plan)
        count = len(self.plan.steps)
        message = (
            f"Planned {count} step(s) on {self.node}"
            if count
            else f"Nothing to do on {self.node}: Nydus is set up as answered"
        )
        self.finish_work("plan", message)
        # The a key applies from the steps table. A text field would take the
        # key as a letter.
        self.query_one("#setup-steps", DataTable).focus()

    async def _apply(self, plan: SetupPlan) -> None:
        assert self.setup is not None
        try:
            self.outcome = await self.setup.apply(
                plan, confirmed_by=self.node, progress=self.step_progress
            )
        except ActionRefused as exc:
            self.finish_work("plan", str(exc), error=True)
            return
        if not self.outcome.ok:
            failed = self.outcome.results[-1]
            if failed.status is StepStatus.REFUSED:
                self.finish_work(
                    "plan",
                    f"Read-only mode refused step {failed.step}: {failed.detail}. "
                    "Nothing ran",
                    error=True,
                )
                return
            self.finish_work(
                "apply",
                f"Step {failed.step} failed: {failed.detail}. Fix the cause and "
                "apply again; setup continues with this step",
                error=True,
            )
            return
        self.message = f"Applied {len(plan.steps)} step(s) on {self.node}"
        await self._verify()

    async def _verify(self) -> None:
        assert self.setup is not None and self.plan is not None
        try:
            self.checks = await self.setup.verify(self.plan)
        except TransportError as exc:
            self.finish_work("verify", f"Verification failed: {exc}", error=True)
            return
        ok = all(check.ok for check in self.checks)
        message = (
            f"Verified {self.node}" if ok else f"Verification of {self.node} failed"
        )
        self.finish_work("verify", message, error=not ok)
        self.app.probe(self.node, full=True)  # type: ignore[attr-defined]

    def finish_work(self, stage: str, message: str, error: bool = False) -> None:
        self.stage = stage
        self.busy = False
        self.message = message
        self.notify(message, severity="error" if error else "information")
        self.show_stage()
        self.show_detail()
        self.refresh_bindings()

    # -- actions ---------------------------------------------------------------------

    def action_plan(self) -> None:
        answers, tarballs = self.read_answers()
        if answers is None:
            return
        self.busy = True
        self.refresh_bindings()
        self.run_worker(
            self._plan(answers, tarballs),
            name="setup-plan",
            group="setup",
            exit_on_error=False,
        )

    def read_answers(self) -> tuple[Answers | None, list[Path]]:
        values = {
            "fs_driver": str(self.query_one("#setup-fs-driver", Select).value),
            "prometheus": self.query_one("#setup-prometheus", Switch).value,
            "registry_host": self.query_one("#setup-registry", Input).value.strip(),
        }
        paths = self.query_one("#setup-tarballs", Input).value.split()
        try:
            answers = Answers().with_values(values, "the form")
        except AnswerError as exc:
            self.notify(str(exc), severity="error")
            return None, []
        return answers, [Path(path).expanduser() for path in paths]

    @on(Input.Submitted, "#setup-tarballs")
    @on(Input.Submitted, "#setup-registry")
    def submitted(self) -> None:
        """Enter in a text field plans, as the plan key does."""
        if self.check_action("plan", ()):
            self.action_plan()

    def action_apply(self) -> None:
        plan = self.plan
        if plan is None or plan.empty:
            return
        spec = self.app.fleet.specs[self.node]  # type: ignore[attr-defined]
        refusal = self.app.gate.refusal(spec)  # type: ignore[attr-defined]
        if refusal:
            action = Action(
                f"setup: apply {len(plan.steps)} planned steps",
                ("nydus-console", "setup", "--node", self.node),
            )
            self.app.gate.record_refusal(  # type: ignore[attr-defined]
                action, spec, refusal
            )
            self.notify(
                f"Not applied: {refusal}, and read-only mode refuses every change "
                "setup would make. Nothing ran",
                severity="error",
            )
            return

        def decided(confirmed: bool | None) -> None:
            if not confirmed:
                self.notify("Setup was not applied")
                return
            self.busy = True
            self.stage = "apply"
            self.show_stage()
            self.refresh_bindings()
            self.run_worker(
                self._apply(plan),
                name="setup-apply",
                group="setup",
                exit_on_error=False,
            )

        self.app.push_screen(SetupConfirmModal(self.node, spec.address, plan), decided)

    def action_verify(self) -> None:
        if self.plan is None:
            return
        self.busy = True
        self.refresh_bindings()
        self.run_worker(
            self._verify(), name="setup-verify", group="setup", exit_on_error=False
        )

    def action_back(self) -> None:
        self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "plan":
            return not self.busy and self.survey is not None
        if action == "apply":
            return (
                not self.busy
                and self.plan is not None
                and not self.plan.empty
                and not (self.outcome is not None and self.outcome.ok)
            )
        if action == "verify":
            return not self.busy and self.plan is not None
        return True

    # -- display ---------------------------------------------------------------------

    def show_stage(self) -> None:
        text = Text(no_wrap=True)
        text.append(self.node, style="bold")
        for number, name in enumerate(STAGES):
            text.append("  >  " if number else "    ")
            text.append(name, style="bold reverse" if name == self.stage else "")
        if self.message:
            text.append(f"\n{self.message}")
        self.query_one("#setup-stage", Static).update(text)

    def fill_steps(self, plan: SetupPlan) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for number, step in enumerate(plan.steps, start=1):
            table.add_row(str(number), Text("planned"), Text(step.title), key=step.id)
        if plan.steps:
            table.move_cursor(row=0)

    def step_progress(self, step: PlanStep, status: StepStatus, detail: str) -> None:
        table = self.query_one(DataTable)
        table.update_cell(
            step.id, "status", Text(str(status), style=STATUS_STYLES[str(status)])
        )
        table.move_cursor(row=table.get_row_index(step.id))
        self.message = f"{step.title}: {status}" + (f" ({detail})" if detail else "")
        self.show_stage()

    def highlighted_step(self) -> PlanStep | None:
        table = self.query_one(DataTable)
        if self.plan is None or table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((s for s in self.plan.steps if s.id == key.value), None)

    @on(DataTable.RowHighlighted, "#setup-steps")
    def row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        detail = self.query_one("#setup-detail", Static)
        if self.checks:
            detail.update(self.verification_text())
            return
        step = self.highlighted_step()
        if step is not None:
            detail.update(step_text(step))
            return
        if self.plan is not None:
            detail.update(settings_text(self.plan))
            return
        if self.survey is not None:
            detail.update(survey_text(self.survey))
            return
        detail.update("Reading the node..." if self.busy else "")

    def verification_text(self) -> Text:
        text = Text()
        for check in self.checks:
            mark, style = ("ok  ", "green") if check.ok else ("FAIL", "bold red")
            text.append(f"{mark} ", style=style)
            text.append(f"{check.name}: {check.detail}\n")
        if self.plan is not None and self.setup is not None:
            target = scrape_target(self.setup.spec, self.plan.settings)
            text.append("\nPrometheus scrape job\n", style="bold")
            text.append(scrape_job([target]))
            text.append(f"\nGrafana: import dashboard {GRAFANA_DASHBOARD} (Nydus)\n")
        return text


def missing_text(error: MissingBinaries) -> str:
    """Say which binaries are missing in the screen's own words."""
    names = ", ".join(error.names)
    verb = "is" if len(error.names) == 1 else "are"
    return (
        f"{names} {verb} not installed on {error.node}. Enter the release tarball "
        f"that holds {'it' if len(error.names) == 1 else 'them'} in "
        f'"{TARBALLS_LABEL}" (its .sha256 file beside it) and plan again'
    )


def survey_text(survey: Survey) -> Text:
    """Render the survey as `what: found` lines, narrow enough for a side column."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for what, found in survey.rows():
        text.append(f"{what.removeprefix('/usr/local/bin/')}: ", style="bold")
        text.append(f"{found}\n")
    return text


def step_text(step: PlanStep) -> Text:
    # No wrapping: a wrapped diff line would lose its leading indent.
    text = Text(no_wrap=True)
    text.append(f"{step.title}\n", style="bold")
    text.append(f"why: {step.why}\n")
    for command in step.commands():
        text.append(f"$ {command}\n", style="cyan")
    if step.file is not None:
        for line in file_diff(step.file).splitlines():
            style = ""
            if line.startswith("+") and not line.startswith("+++"):
                style = "green"
            elif line.startswith("-") and not line.startswith("---"):
                style = "red"
            text.append(line + "\n", style=style)
    return text


def settings_text(plan: SetupPlan) -> Text:
    text = Text()
    if plan.empty:
        text.append("Nothing to do: Nydus is set up as answered. ", style="bold")
        text.append("Press v to verify.\n\n")
    for choice in plan.settings.choices:
        text.append(f"{choice.key} = {choice.value}", style="bold")
        text.append(f"  ({choice.why})\n")
    return text
