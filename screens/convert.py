"""Convert screen: run nydusify on one node and follow its stages.

The form's values are checked as `nydusify convert` options on every change,
and the preview shows the exact command or the invalid value. `ctrl+r` opens
the confirmation modal and runs the conversion through the
action gate in the `convert` worker; `ctrl+b` closes the channel, which ends
nydusify on the node. Each run is added to the conversion history.
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
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Select, Static

from nydus_console.actions import Action, ActionRefused
from nydus_console.images.convert import (
    COMPRESSORS,
    FS_VERSIONS,
    ConvertError,
    ConvertOptions,
    ConvertPlan,
    plan_convert,
    plan_lines,
)
from nydus_console.images.credentials import CredentialsError, DockerConfig
from nydus_console.images.history import ConvertHistory
from nydus_console.images.progress import STAGES, ConvertProgress, StageEvent
from nydus_console.images.run import (
    StepResult,
    credential_report,
    history_record,
    node_docker_config,
    result_lines,
    run_convert,
)
from nydus_console.screens.textbox import TextBox
from nydus_console.transport.base import TransportError

STAGE_TITLES = {"pull": "pull", "convert": "convert", "push": "push"}
# How this screen sets the nydusify path, named when nydusify is missing.
NYDUSIFY_FIELD_HINT = "the nydusify path field of this screen"


class ConvertStageReported(Message):
    """nydusify logged the start or the end of a stage."""

    def __init__(self, event: StageEvent) -> None:
        super().__init__()
        self.event = event


class ConvertFinished(Message):
    """The conversion (and the check) ended, failed to start, or was rejected."""

    def __init__(
        self, result: StepResult | None, check: StepResult | None, error: str = ""
    ) -> None:
        super().__init__()
        self.result = result
        self.check = check
        self.error = error


class CredentialsRead(Message):
    """The node's docker config was read (None when it has none).

    `error` is set instead when it could not be read.
    """

    def __init__(self, config: DockerConfig | None, error: str = "") -> None:
        super().__init__()
        self.config = config
        self.error = error


def describe_result(result: StepResult | None, check: StepResult | None) -> str:
    """Return the result lines shown below the stages."""
    if result is None:
        return ""
    lines = result_lines("nydusify convert", result, seconds=False)
    if check is not None:
        lines += result_lines("nydusify check", check, seconds=False)
    return "\n".join(lines)


class ConvertScreen(Screen[None]):
    """A conversion form, its command, and the stages of the run."""

    BINDING_GROUP_TITLE = "Convert"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="convert.back"),
        Binding("ctrl+r", "run", "Run", id="convert.run"),
        Binding("ctrl+b", "cancel_run", "Cancel run", id="convert.cancel"),
    ]

    def __init__(self, node: str, source: str = "") -> None:
        super().__init__()
        self.node = node
        self.source = source
        self.plan: ConvertPlan | None = None
        # The node's docker config: its secrets stay in memory, never shown.
        self.docker_config: DockerConfig | None = None
        self.credentials_state = "reading the node's registry credentials..."
        self.cancel = asyncio.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="convert-references"):
            yield TextBox(self.source, placeholder="source image", id="convert-source")
            yield TextBox(
                placeholder="target (default: <source tag>-nydus)", id="convert-target"
            )
        with Horizontal(id="convert-options"):
            yield Select(
                [(f"fs version {v}", v) for v in FS_VERSIONS],
                value="6",
                allow_blank=False,
                id="convert-fs-version",
            )
            yield Select(
                [(c, c) for c in COMPRESSORS],
                value="zstd",
                allow_blank=False,
                id="convert-compressor",
            )
            yield TextBox(placeholder="platform (os/arch)", id="convert-platform")
        with Horizontal(id="convert-tuning"):
            yield TextBox(placeholder="chunk size (0x100000)", id="convert-chunk-size")
            yield TextBox(
                placeholder="prefetch: /usr/bin,/etc",
                id="convert-prefetch",
            )
            yield TextBox(placeholder="work dir on the node", id="convert-work-dir")
            yield TextBox(placeholder="nydusify path", id="convert-nydusify")
        with Horizontal(id="convert-flags"):
            yield Checkbox("all platforms", id="convert-all-platforms")
            yield Checkbox("source over HTTP", id="convert-source-insecure")
            yield Checkbox("target over HTTP", id="convert-target-insecure")
            yield Checkbox("check after", id="convert-check")
        yield Static(id="convert-preview")
        yield DataTable(id="convert-stages", cursor_type="none")
        yield Static(id="convert-result")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"convert on {self.node}"
        table = self.query_one(DataTable)
        for key in ("stage", "state", "reference", "elapsed"):
            table.add_column(key.capitalize(), key=key)
        for stage in STAGES:
            table.add_row(STAGE_TITLES[stage], "waiting", "", "", key=stage)
        self.query_one("#convert-source", Input).focus()
        self.update_preview()
        self._read_credentials()

    # -- form ----------------------------------------------------------------

    def options(self) -> ConvertOptions:
        def text(selector: str) -> str:
            return self.query_one(selector, Input).value.strip()

        def ticked(selector: str) -> bool:
            return self.query_one(selector, Checkbox).value

        return ConvertOptions(
            source=text("#convert-source"),
            target=text("#convert-target"),
            fs_version=str(self.query_one("#convert-fs-version", Select).value),
            compressor=str(self.query_one("#convert-compressor", Select).value),
            platform=text("#convert-platform"),
            chunk_size=text("#convert-chunk-size"),
            prefetch_patterns=tuple(
                p.strip() for p in text("#convert-prefetch").split(",") if p.strip()
            ),
            work_dir=text("#convert-work-dir"),
            nydusify=text("#convert-nydusify") or "nydusify",
            all_platforms=ticked("#convert-all-platforms"),
            source_insecure=ticked("#convert-source-insecure"),
            target_insecure=ticked("#convert-target-insecure"),
            check=ticked("#convert-check"),
        )

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def update_preview(self) -> None:
        options = self.options()
        self.plan = None
        if not options.source:
            lines = ["type the source image"]
        else:
            try:
                self.plan = plan_convert(options)
            except ConvertError as exc:
                lines = [f"invalid: {exc}"]
            else:
                lines = plan_lines(self.plan) + self._credential_lines(self.plan)
        self.query_one("#convert-preview", Static).update(Text("\n".join(lines)))

    def _credential_lines(self, plan: ConvertPlan) -> list[str]:
        if self.credentials_state:
            return [self.credentials_state]
        return credential_report(self.docker_config, plan)

    @work(group="registry-auth", exit_on_error=False, description="read registry auth")
    async def _read_credentials(self) -> None:
        transport = self.app.fleet.transports[self.node]  # type: ignore[attr-defined]
        try:
            config = await node_docker_config(transport, self.node)
        except (CredentialsError, TransportError) as exc:
            self.post_message(CredentialsRead(None, f"registry auth: {exc}"))
            return
        self.post_message(CredentialsRead(config))

    @on(CredentialsRead)
    def credentials_read(self, message: CredentialsRead) -> None:
        self.docker_config = message.config
        self.credentials_state = message.error
        self.update_preview()

    # -- running ---------------------------------------------------------------

    def action_run(self) -> None:
        app = self.app
        if self.running:
            self.notify("a conversion is running; ctrl+b cancels it")
            return
        plan = self.plan
        if plan is None:
            self.notify("fix the form first: the preview names the problem")
            return
        spec = app.fleet.specs[self.node]  # type: ignore[attr-defined]
        action = Action(f"convert {plan.source} to {plan.target}", plan.argv)
        refusal = app.gate.refusal(spec)  # type: ignore[attr-defined]
        if refusal:
            app.gate.record_refusal(action, spec, refusal)  # type: ignore[attr-defined]
            self.notify(f"{action.name} not run: {refusal}", severity="error")
            return
        from nydus_console.screens.confirm import ConfirmActionModal

        def decided(confirmation: str | None) -> None:
            if confirmation:
                self._start(plan, confirmation)

        modal = ConfirmActionModal(
            self.node, spec.address, action, also=plan_lines(plan)[1:]
        )
        app.push_screen(modal, decided)

    def _start(self, plan: ConvertPlan, confirmation: str) -> None:
        self.running = True
        self.cancel = asyncio.Event()
        table = self.query_one(DataTable)
        for stage in STAGES:
            table.update_cell(stage, "state", "waiting")
            table.update_cell(stage, "reference", "", update_width=True)
            table.update_cell(stage, "elapsed", "")
        self.query_one("#convert-result", Static).update("running...")
        self._convert(plan, confirmation)

    @work(group="convert", exclusive=True, exit_on_error=False, description="convert")
    async def _convert(self, plan: ConvertPlan, confirmation: str) -> None:
        app = self.app
        try:
            result, check = await run_convert(
                plan,
                app.fleet.specs[self.node],  # type: ignore[attr-defined]
                app.fleet.transports[self.node],  # type: ignore[attr-defined]
                app.gate,  # type: ignore[attr-defined]
                confirmed_by=confirmation,
                on_event=self._report_stage,
                cancel=self.cancel,
                path_hint=NYDUSIFY_FIELD_HINT,
            )
        except ActionRefused as exc:
            self.post_message(ConvertFinished(None, None, str(exc)))
            return
        ConvertHistory().append(history_record(plan, self.node, result, check))
        self.post_message(ConvertFinished(result, check))

    def _report_stage(self, event: StageEvent) -> None:
        self.post_message(ConvertStageReported(event))

    def action_cancel_run(self) -> None:
        if self.running:
            self.cancel.set()

    @on(ConvertStageReported)
    def stage_reported(self, message: ConvertStageReported) -> None:
        event = message.event
        table = self.query_one(DataTable)
        finished = event.verb in ("pulled", "converted", "pushed")
        state = "done" if finished else event.verb
        table.update_cell(event.stage, "state", state, update_width=True)
        table.update_cell(event.stage, "reference", event.reference, update_width=True)
        if event.elapsed is not None:
            table.update_cell(event.stage, "elapsed", f"{event.elapsed:.2f} s")

    @on(ConvertFinished)
    def finished(self, message: ConvertFinished) -> None:
        self.running = False
        if message.result is not None:
            self._end_stages(message.result)
        text = message.error or describe_result(message.result, message.check)
        self.query_one("#convert-result", Static).update(Text(text))

    def _end_stages(self, result: StepResult) -> None:
        """Show the stages that were running when the run ended as it ended."""
        table = self.query_one(DataTable)
        progress = result.progress
        if not isinstance(progress, ConvertProgress):
            return
        for name, stage in progress.stages.items():
            if stage.state in ("failed", "cancelled"):
                table.update_cell(name, "state", stage.state, update_width=True)
