"""Build screen: run buildctl with compression=nydus on one node, follow its steps.

The form's values are checked as `build` options on every change, and the
preview shows the exact command or the invalid value. `ctrl+r` first
checks the node for buildctl, buildkitd's socket, the context and the
Dockerfile in the `buildkit-check` worker, then opens the confirmation
modal and runs the build through the action gate in the `build` worker.
`ctrl+b` closes the channel, which ends buildctl on the node. Each run is
added to the build history.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Static

from nydus_console.actions import ActionRefused
from nydus_console.images.build import (
    DEFAULT_SOCKET,
    BuildError,
    BuildOptions,
    BuildPlan,
    plan_build,
)
from nydus_console.images.buildprogress import BuildEvent
from nydus_console.images.buildrun import (
    BuildUnavailable,
    build_action,
    build_history,
    history_record,
    preflight,
    run_build,
)
from nydus_console.images.run import StepResult, result_lines
from nydus_console.transport.base import TransportError
from nydus_console.transport.quoting import quote_argv


class BuildStepReported(Message):
    """buildctl reported a step's start, status or end."""

    def __init__(self, event: BuildEvent) -> None:
        super().__init__()
        self.event = event


class BuildChecked(Message):
    """The result of the buildkit check: `missing` lists what the node lacks."""

    def __init__(self, plan: BuildPlan, missing: list[str]) -> None:
        super().__init__()
        self.plan = plan
        self.missing = missing


class BuildFinished(Message):
    """The build ended, failed to start, or was rejected."""

    def __init__(self, result: StepResult | None, error: str = "") -> None:
        super().__init__()
        self.result = result
        self.error = error


def describe_result(result: StepResult | None) -> str:
    """Return the result lines shown below the steps."""
    if result is None:
        return ""
    return "\n".join(result_lines("buildctl build", result, seconds=False))


class BuildScreen(Screen[None]):
    """A build form, its command, and the steps of the run."""

    BINDING_GROUP_TITLE = "Build"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="build.back"),
        Binding("ctrl+r", "run", "Run", id="build.run"),
        Binding("ctrl+b", "cancel_run", "Cancel run", id="build.cancel"),
    ]

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.plan: BuildPlan | None = None
        self.cancel = asyncio.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="build-paths"):
            yield Input(placeholder="context directory on the node", id="build-context")
            yield Input("Dockerfile", placeholder="Dockerfile", id="build-file")
        with Horizontal(id="build-target"):
            yield Input(placeholder="output image", id="build-output")
            yield Input(placeholder="platform (os/arch)", id="build-platform")
        with Horizontal(id="build-extra"):
            yield Input(
                placeholder="build args, comma-separated (VERSION=1.2,MODE=prod)",
                id="build-args",
            )
            yield Input(
                DEFAULT_SOCKET, placeholder="buildkitd socket", id="build-socket"
            )
            yield Checkbox("push over HTTP", id="build-insecure")
        yield Static(id="build-preview")
        yield DataTable(id="build-steps", cursor_type="none")
        yield Static(id="build-result")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"build on {self.node}"
        table = self.query_one(DataTable)
        for key in ("step", "state", "detail", "elapsed"):
            table.add_column(key.capitalize(), key=key)
        self.query_one("#build-context", Input).focus()
        self.update_preview()

    # -- form ----------------------------------------------------------------

    def options(self) -> BuildOptions:
        def text(selector: str) -> str:
            return self.query_one(selector, Input).value.strip()

        args = [a.strip() for a in text("#build-args").split(",") if a.strip()]
        return BuildOptions(
            context=text("#build-context"),
            output=text("#build-output"),
            file=text("#build-file") or "Dockerfile",
            platform=text("#build-platform"),
            build_args=tuple(args),
            insecure=self.query_one("#build-insecure", Checkbox).value,
            socket=text("#build-socket") or DEFAULT_SOCKET,
        )

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def update_preview(self) -> None:
        options = self.options()
        self.plan = None
        if not options.context or not options.output:
            text = "type the context directory and the output image"
        else:
            try:
                self.plan = plan_build(options)
            except BuildError as exc:
                text = f"invalid: {exc}"
            else:
                text = f"command: {quote_argv(self.plan.argv)}"
        self.query_one("#build-preview", Static).update(Text(text))

    # -- running ---------------------------------------------------------------

    def action_run(self) -> None:
        app = self.app
        if self.running:
            self.notify("a build is running; ctrl+b cancels it")
            return
        plan = self.plan
        if plan is None:
            self.notify("fix the form first: the preview names the problem")
            return
        spec = app.fleet.specs[self.node]  # type: ignore[attr-defined]
        action = build_action(plan)
        refusal = app.gate.refusal(spec)  # type: ignore[attr-defined]
        if refusal:
            app.gate.record_refusal(action, spec, refusal)  # type: ignore[attr-defined]
            self.notify(f"{action.name} not run: {refusal}", severity="error")
            return
        self.query_one("#build-result", Static).update("checking the node...")
        self._check_node(plan)

    @work(group="buildkit-check", exit_on_error=False, description="check buildkit")
    async def _check_node(self, plan: BuildPlan) -> None:
        transport = self.app.fleet.transports[self.node]  # type: ignore[attr-defined]
        try:
            missing = await preflight(plan, transport, self.node)
        except (BuildUnavailable, TransportError) as exc:
            missing = [str(exc)]
        self.post_message(BuildChecked(plan, missing))

    @on(BuildChecked)
    def node_checked(self, message: BuildChecked) -> None:
        if message.missing:
            self.query_one("#build-result", Static).update(
                Text("\n".join(message.missing))
            )
            return
        self.query_one("#build-result", Static).update("")
        spec = self.app.fleet.specs[self.node]  # type: ignore[attr-defined]
        from nydus_console.screens.confirm import ConfirmActionModal

        def decided(confirmation: str | None) -> None:
            if confirmation:
                self._start(message.plan, confirmation)

        action = build_action(message.plan)
        modal = ConfirmActionModal(self.node, spec.address, action)
        self.app.push_screen(modal, decided)

    def _start(self, plan: BuildPlan, confirmation: str) -> None:
        self.running = True
        self.cancel = asyncio.Event()
        self.query_one(DataTable).clear()
        self.query_one("#build-result", Static).update("running...")
        self._build(plan, confirmation)

    @work(group="build", exclusive=True, exit_on_error=False, description="build")
    async def _build(self, plan: BuildPlan, confirmation: str) -> None:
        app = self.app
        try:
            result = await run_build(
                plan,
                app.fleet.specs[self.node],  # type: ignore[attr-defined]
                app.fleet.transports[self.node],  # type: ignore[attr-defined]
                app.gate,  # type: ignore[attr-defined]
                confirmed_by=confirmation,
                on_event=self._report_step,
                cancel=self.cancel,
            )
        except ActionRefused as exc:
            self.post_message(BuildFinished(None, str(exc)))
            return
        build_history().append(history_record(plan, self.node, result))
        self.post_message(BuildFinished(result))

    def _report_step(self, event: BuildEvent) -> None:
        self.post_message(BuildStepReported(event))

    def action_cancel_run(self) -> None:
        if self.running:
            self.cancel.set()

    @on(BuildStepReported)
    def step_reported(self, message: BuildStepReported) -> None:
        event = message.event
        table = self.query_one(DataTable)
        key = str(event.number)
        if event.verb == "started":
            table.add_row(f"#{key} {event.name}", "running", "", "", key=key)
            return
        if key not in table.rows:
            return
        if event.verb != "status":
            table.update_cell(key, "state", event.verb)
        if event.detail:
            table.update_cell(key, "detail", event.detail)
        if event.elapsed is not None:
            table.update_cell(key, "elapsed", f"{event.elapsed:.1f} s")

    @on(BuildFinished)
    def finished(self, message: BuildFinished) -> None:
        self.running = False
        text = message.error or describe_result(message.result)
        self.query_one("#build-result", Static).update(Text(text))
