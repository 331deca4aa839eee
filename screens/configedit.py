"""Config screen: edit one config file of one node, then write it safely.

The file is read in a worker. The form is generated from the schema and
the raw view edits the whole text. Both change one EditSession, which
validates every edit against the node's other configs and facts. A write
goes through ConfigApplier: atomic write with a backup, restart, verify,
and a rollback when the service does not come back.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, Header, Static, TextArea
from textual.worker import Worker, WorkerState

from nydus_console.configedit.apply import (
    DEFAULT_VERIFY_SECONDS,
    ConfigApplier,
    ConfigChange,
    backup_stamp,
    write_action,
)
from nydus_console.configedit.document import ConfigEditError, ConfigSyntaxError
from nydus_console.configedit.remote import (
    KIND_TITLES,
    ConfigReadError,
    NodeConfig,
    load_node_config,
    node_context,
    restart_target,
)
from nydus_console.configedit.session import EditSession
from nydus_console.configedit.values import ValueParseError
from nydus_console.fleet import NodeReport
from nydus_console.inventory import NodeSpec
from nydus_console.screens.configform import ConfigField, grouped, visible_entries
from nydus_console.screens.configmodals import (
    DiffModal,
    DiscardChangesModal,
    WriteConfigModal,
    WriteRequest,
    plan_lines,
)
from nydus_console.screens.configpanels import (
    ConfigStepRan,
    ConfigWritten,
    ReportingGate,
    problems_markup,
    report_text,
)

if TYPE_CHECKING:
    from nydus_console.screens.app import NydusConsoleApp


class ConfigLoaded(Message):
    """Reading the file finished: `config`, or `error` saying why it failed."""

    def __init__(self, config: NodeConfig | None, error: str = "") -> None:
        super().__init__()
        self.config = config
        self.error = error


def highlight_language(name: str) -> str | None:
    """Return `name` when TextArea can highlight it (tree-sitter is installed)."""
    needed = ("tree_sitter", f"tree_sitter_{name}")
    if all(importlib.util.find_spec(module) for module in needed):
        return name
    return None


class ConfigScreen(Screen[None]):
    """One config file of one node, as a form or as raw text."""

    BINDING_GROUP_TITLE = "Config"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="config.back"),
        Binding("ctrl+t", "toggle_raw", "Form/Raw", id="config.toggle_raw"),
        Binding("ctrl+g", "diff", "Diff", id="config.diff"),
        Binding("ctrl+s", "write", "Write", id="config.write"),
        Binding("ctrl+o", "editor", "$EDITOR", id="config.editor"),
        Binding("ctrl+r", "reload", "Reload", id="config.reload"),
    ]

    def __init__(
        self, node: str, kind: str, *, verify_seconds: float = DEFAULT_VERIFY_SECONDS
    ) -> None:
        super().__init__()
        self.node = node
        self.kind = kind
        self.verify_seconds = verify_seconds
        self.session: EditSession | None = None
        self.mode = "loading"
        self.read_error = ""
        self.writing = False
        # The raw view's text when it was last shown or parsed.
        self.raw_parsed = ""
        # What the results panel shows about the last write.
        self.results = Text()

    @property
    def console(self) -> NydusConsoleApp:
        return cast("NydusConsoleApp", self.app)

    @property
    def report(self) -> NodeReport:
        return self.console.fleet.reports[self.node]

    @property
    def spec(self) -> NodeSpec:
        return self.console.fleet.specs[self.node]

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="config-summary")
        yield Static(id="config-banner")
        with Horizontal(id="config-body"):
            with ContentSwitcher(id="config-switcher", initial="config-form"):
                yield VerticalScroll(id="config-form")
                yield TextArea.code_editor(id="config-raw", theme="css")
            with Vertical(id="config-side"):
                with VerticalScroll(id="config-problems-scroll"):
                    yield Static(id="config-problems")
                with VerticalScroll(id="config-results-scroll"):
                    yield Static(id="config-results")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.node} {KIND_TITLES[self.kind]}"
        self.query_one("#config-results-scroll").display = False
        self.show_banner("Reading the file from the node...")
        self.update_summary()
        self.load()

    # -- reading --------------------------------------------------------------

    def load(self) -> None:
        self.run_worker(
            self._load(),
            name=f"read {self.kind} config of {self.node}",
            group="config-read",
            description=f"read the {KIND_TITLES[self.kind]} of {self.node}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _load(self) -> None:
        transport = self.console.fleet.transports[self.node]
        try:
            config = await load_node_config(
                transport, self.spec, self.report.facts, self.kind
            )
        except ConfigReadError as exc:
            self.post_message(ConfigLoaded(None, str(exc)))
            return
        self.post_message(ConfigLoaded(config))

    @on(ConfigLoaded)
    async def config_loaded(self, message: ConfigLoaded) -> None:
        config, session = message.config, self.session
        if config is None:
            self.read_failed(message.error)
        elif session is None or not session.changed or config.text == session.text:
            await self.start_session(config)
        elif config.text == session.baseline:
            self.show_banner("The file on the node is as read; your edits are kept.")
        else:
            self.show_banner(
                "[b yellow]The file changed on the node since it was read.[/] "
                "Your edits are kept, but writing them is refused until ctrl+r "
                "reads the file again, which drops them."
            )

    def read_failed(self, error: str) -> None:
        self.mode = "unreadable"
        self.read_error = error
        self.show_banner(
            f"[b red]The file could not be read[/]: {escape(error)}\n"
            "ctrl+r reads it again."
        )
        self.update_summary()

    async def start_session(self, config: NodeConfig) -> None:
        context = node_context(self.report.facts, self.spec, self.kind)
        self.session = EditSession(config, context)
        self.read_error = ""
        if config.syntax is not None:
            self.open_raw(config.text or "")
            self.show_syntax_error(config.syntax)
        else:
            await self.build_form()
            self.show_form()
            self.show_banner(self.loaded_banner(config))
        self.refresh_problems()

    def loaded_banner(self, config: NodeConfig) -> str:
        if config.text is None:
            return (
                f"[b yellow]{escape(config.path)} does not exist on "
                f"{escape(self.node)}[/]. The form starts from an empty file; "
                "writing creates it."
            )
        return ""

    # -- the form -------------------------------------------------------------

    async def build_form(self) -> None:
        session = self.session
        assert session is not None and session.document is not None
        document = session.document
        form = self.query_one("#config-form", VerticalScroll)
        focused = self.focused_entry()
        await form.remove_children()
        widgets: list[Widget] = []
        index = 0
        for group, entries in grouped(visible_entries(document)).items():
            widgets.append(Static(f"[b]{escape(group)}[/b]", classes="config-group"))
            for entry in entries:
                widgets.append(ConfigField(entry, document, index))
                index += 1
        await form.mount_all(widgets)
        self.refocus(focused)

    def fields(self) -> list[ConfigField]:
        return list(self.query(ConfigField))

    def shown_entries(self) -> list[str]:
        return [field.entry.name for field in self.fields()]

    def focused_entry(self) -> str:
        focused = self.focused
        while focused is not None and not isinstance(focused, ConfigField):
            parent = focused.parent
            focused = parent if isinstance(parent, Widget) else None
        return focused.entry.name if isinstance(focused, ConfigField) else ""

    def refocus(self, name: str) -> None:
        for field in self.fields():
            if field.entry.name == name:
                field.control.focus()
                return

    @on(ConfigField.Edited)
    async def field_edited(self, message: ConfigField.Edited) -> None:
        if self.session is None:
            return
        if self.store(message.field):
            self.refresh_problems()
            await self.rebuild_if_keys_changed()
        else:
            self.update_summary()

    def store(self, field: ConfigField) -> bool:
        """Store what a field holds; return whether the document changed."""
        assert self.session is not None
        try:
            changed = self.session.put(field.entry, field.requested())
        except ValueParseError as exc:
            field.show_invalid(exc.reason)
            return False
        except ConfigEditError as exc:
            field.show_invalid(str(exc))
            return False
        field.show_invalid("")
        return changed

    async def rebuild_if_keys_changed(self) -> None:
        """Build the form again when an edit changes which keys it shows.

        Choosing another nydusd backend type shows that backend's keys.
        """
        document = self.session.document if self.session else None
        if document is None:
            return
        wanted = {entry.name for entry in visible_entries(document)}
        if wanted != set(self.shown_entries()):
            await self.build_form()
            self.refresh_problems()

    def invalid_fields(self) -> list[ConfigField]:
        return [field for field in self.fields() if field.invalid]

    def show_form(self) -> None:
        self.mode = "form"
        self.query_one(ContentSwitcher).current = "config-form"
        self.update_summary()

    # -- problems and state ---------------------------------------------------

    def refresh_problems(self) -> None:
        session = self.session
        marked = session.problems() if session is not None else []
        unknown = session.unknown_keys() if session is not None else []
        self.query_one("#config-problems", Static).update(
            problems_markup(marked, unknown)
        )
        by_key: dict[str, list[str]] = {}
        for item in marked:
            problem = item.problem
            by_key.setdefault(problem.key, []).append(
                f"{problem.severity}: {problem.message}"
            )
        for field in self.fields():
            field.show_problem("\n".join(by_key.get(field.real_key, [])))
        self.update_summary()

    def update_summary(self) -> None:
        path = self.session.config.path if self.session else ""
        parts = [
            f"[b]{escape(self.node)}[/b] {KIND_TITLES[self.kind]} {escape(path)}",
            self.state_text(),
        ]
        refusal = self.console.gate.refusal(self.spec)
        if refusal:
            parts.append(f"[yellow]read-only: {escape(refusal)}[/]")
        self.query_one("#config-summary", Static).update("  |  ".join(parts))

    def state_text(self) -> str:
        session = self.session
        if self.mode == "loading":
            return "reading..."
        if self.mode == "unreadable" or session is None:
            return "[red]not readable[/]"
        if session.document is None:
            return "[red]syntax error[/]"
        state = "edited, not written" if self.has_unsaved_edits() else "unchanged"
        if self.writing:
            state = "writing..."
        new_errors = len(session.blocking())
        invalid = len(self.invalid_fields())
        if new_errors:
            state += f", [red]{new_errors} new error(s)[/]"
        if invalid:
            state += f", [red]{invalid} invalid value(s)[/]"
        return f"{self.mode} view, {state}"

    def has_unsaved_edits(self) -> bool:
        if self.session is None:
            return False
        if self.session.changed or self.invalid_fields():
            return True
        return self.mode == "raw" and self.raw_text() != self.raw_parsed

    def show_banner(self, markup: str) -> None:
        banner = self.query_one("#config-banner", Static)
        banner.update(markup)
        banner.display = bool(markup)

    # -- the raw view ---------------------------------------------------------

    def raw_text(self) -> str:
        return self.query_one("#config-raw", TextArea).text

    def open_raw(self, text: str) -> None:
        """Show `text` in the raw view; the session's masking must match it."""
        area = self.query_one("#config-raw", TextArea)
        area.language = highlight_language(self.raw_language())
        area.load_text(text)
        self.raw_parsed = text
        self.mode = "raw"
        self.query_one(ContentSwitcher).current = "config-raw"
        area.focus()
        self.update_summary()

    def raw_language(self) -> str:
        session = self.session
        document = session.document if session else None
        if document is not None:
            return document.format
        path = session.config.path if session else ""
        return "json" if path.endswith(".json") else "toml"

    def show_raw(self) -> None:
        assert self.session is not None
        text, masked = self.session.raw_text()
        self.open_raw(text)
        if text == self.session.text:
            self.show_banner("")
        elif masked:
            self.show_banner(
                "Credentials show as ***. Leave *** in place to keep a value."
            )
        else:
            self.show_banner(
                "[yellow]Credentials could not be masked in this file and show "
                "as written.[/]"
            )

    def sync_raw(self) -> bool:
        """Parse the raw view into the session; False (and the error shown) if not."""
        session = self.session
        assert session is not None
        text = self.raw_text()
        if text == self.raw_parsed and session.document is not None:
            return True
        try:
            session.replace_text(text)
        except ConfigSyntaxError as exc:
            self.show_syntax_error(exc)
            return False
        self.raw_parsed = text
        self.show_banner("")
        self.refresh_problems()
        return True

    def show_syntax_error(self, error: ConfigSyntaxError) -> None:
        where = f"line {error.line}" if error.line else "an unknown line"
        if error.line and error.column:
            where += f", column {error.column}"
        self.show_banner(
            f"[b red]Syntax error at {where}[/]: {escape(error.message)}\n"
            "Fix it here in the raw view; ctrl+t parses it again."
        )
        area = self.query_one("#config-raw", TextArea)
        if error.line:
            area.move_cursor((error.line - 1, max(0, (error.column or 1) - 1)))
        area.focus()
        self.refresh_problems()

    async def action_toggle_raw(self) -> None:
        if self.session is None:
            self.notify("the file has not been read", severity="warning")
            return
        if self.mode == "form":
            if self.refuse_invalid("switching to the raw view"):
                return
            self.show_raw()
            return
        if self.sync_raw():
            await self.build_form()
            self.refresh_problems()
            self.show_form()

    def refuse_invalid(self, doing: str) -> bool:
        """Toast and return True when form fields hold values not stored yet."""
        invalid = self.invalid_fields()
        if not invalid:
            return False
        keys = ", ".join(field.entry.name for field in invalid[:3])
        self.notify(
            f"not {doing}: fix or clear the invalid values first ({keys})",
            severity="error",
        )
        invalid[0].control.focus()
        return True

    # -- $EDITOR --------------------------------------------------------------

    async def action_editor(self) -> None:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.notify(
                "neither VISUAL nor EDITOR is set: set one, such as EDITOR=vi, "
                "or edit here with ctrl+t",
                severity="error",
            )
            return
        if self.session is None or self.refuse_invalid("opening the editor"):
            return
        if self.mode == "raw":
            text = self.raw_text()
        else:
            text = self.session.raw_text()[0]
        edited = self.edit_externally(editor, text)
        if edited is None or edited == text:
            return
        await self.take_text(edited)

    def edit_externally(self, editor: str, text: str) -> str | None:
        """Run the editor on a private temporary copy; return the text it left."""
        suffix = ".json" if self.raw_language() == "json" else ".toml"
        handle, path = tempfile.mkstemp(prefix=f"nydus-{self.kind}-", suffix=suffix)
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            with self.app.suspend():
                status = subprocess.run([*shlex.split(editor), path]).returncode
            with open(path) as stream:
                edited = stream.read()
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error")
            return None
        except OSError as exc:
            self.notify(f"the editor could not run: {exc}", severity="error")
            return None
        finally:
            os.unlink(path)
        if status != 0:
            self.notify(f"{editor} exited with status {status}; its edits are kept")
        return edited

    async def take_text(self, text: str) -> None:
        """Make text from the editor the document, or show it in the raw view."""
        assert self.session is not None
        try:
            self.session.replace_text(text)
        except ConfigSyntaxError as exc:
            self.open_raw(text)
            self.raw_parsed = ""
            self.show_syntax_error(exc)
            return
        if self.mode == "raw":
            self.open_raw(text)
        else:
            await self.build_form()
            self.show_form()
        self.refresh_problems()

    # -- diff and write -------------------------------------------------------

    def ready(self) -> EditSession | None:
        """Return the session with the raw view parsed, or None (and say why)."""
        session = self.session
        if session is None:
            self.notify("the file has not been read", severity="warning")
            return None
        if self.mode == "raw" and not self.sync_raw():
            return None
        if session.document is None:
            self.notify("fix the syntax error first", severity="error")
            return None
        if self.refuse_invalid("done"):
            return None
        return session

    def action_diff(self) -> None:
        session = self.ready()
        if session is None:
            return
        title = f"{session.config.path} on {self.node}: edits not written yet"
        self.app.push_screen(DiffModal(title, session.diff()))

    def action_write(self) -> None:
        if self.writing:
            self.notify("a write is running", severity="warning")
            return
        session = self.ready()
        if session is None:
            return
        if not session.changed:
            self.notify("nothing to write: the file is as read")
            return
        if self.refuse_read_only(session):
            return
        blocking = session.blocking()
        if blocking:
            self.notify(
                f"not written: the edits bring {len(blocking)} new error(s), "
                f"such as {blocking[0].key or 'the file'}: {blocking[0].message}",
                severity="error",
                timeout=10,
            )
            return
        self.confirm_write(session)

    def refuse_read_only(self, session: EditSession) -> bool:
        """Refuse (toast and audit) a write to a read-only node."""
        refusal = self.console.gate.refusal(self.spec)
        if not refusal:
            return False
        config = session.config
        action = write_action(config.path, session.text, config.text, backup_stamp())
        self.console.gate.record_refusal(action, self.spec, refusal)
        self.notify(f"{action.name} not run: {refusal}", severity="error")
        return True

    def confirm_write(self, session: EditSession) -> None:
        facts = self.report.facts
        unit, _ = restart_target(self.kind, self.spec, facts)
        plans = {
            restart: plan_lines(
                session.plan(self.spec, facts, restart), unit, self.verify_seconds
            )
            for restart in (True, False)
        }
        heading = f"Write {session.config.path} on {self.node} ({self.spec.address})"

        def decided(request: WriteRequest | None) -> None:
            if request is not None:
                self.start_write(session.plan(self.spec, facts, request.restart))

        self.app.push_screen(
            WriteConfigModal(heading, session.diff(), plans, unit), decided
        )

    def start_write(self, change: ConfigChange) -> None:
        self.writing = True
        self.query_one("#config-switcher").disabled = True
        self.show_results(Text(f"Writing {change.path}...\n", style="bold"))
        self.update_summary()
        self.run_worker(
            self._apply(change),
            name=f"write {change.path} on {self.node}",
            group="config",
            description=f"write {change.path} on {self.node}",
            exit_on_error=False,
        )

    async def _apply(self, change: ConfigChange) -> None:
        def ran(name: str, ok: bool, detail: str) -> None:
            self.post_message(ConfigStepRan(name, ok, detail))

        applier = ConfigApplier(
            ReportingGate(self.console.gate, ran),
            self.spec,
            self.console.fleet.transports[self.node],
            confirmed_by=self.node,
            verify_seconds=self.verify_seconds,
        )
        self.post_message(ConfigWritten(await applier.apply(change)))

    @on(ConfigStepRan)
    def step_ran(self, message: ConfigStepRan) -> None:
        text = self.results.copy()
        mark = ("ok    ", "green") if message.ok else ("FAILED", "bold red")
        text.append_text(Text.assemble(mark, f" {message.name}\n"))
        if message.ok and message.name.startswith("restart "):
            unit = message.name.removeprefix("restart ")
            text.append(
                f"       verifying {unit} (up to {self.verify_seconds:g} s)...\n",
                style="dim",
            )
        self.show_results(text)

    @on(ConfigWritten)
    def config_written(self, message: ConfigWritten) -> None:
        report = message.report
        self.finish_write()
        self.show_results(report_text(report))
        if report.ok:
            self.notify(f"{report.path} written on {report.node}")
        else:
            outcome = "rolled back" if report.rolled_back else "failed"
            self.notify(
                f"writing {report.path} on {report.node} {outcome}",
                severity="error",
                timeout=12,
            )

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        if event.worker.group == "config-read":
            self.read_failed(str(event.worker.error))
        elif event.worker.group == "config":
            self.write_failed(event.worker.error)

    def write_failed(self, error: BaseException | None) -> None:
        self.finish_write()
        message = f"The write stopped: {error}"
        self.show_results(Text(message, style="bold red"))
        self.notify(message, severity="error", timeout=12)

    def finish_write(self) -> None:
        """Read the file and probe the node again once a write is over."""
        self.writing = False
        self.query_one("#config-switcher").disabled = False
        self.update_summary()
        self.console.probe(self.node, full=True)
        self.load()

    def show_results(self, text: Text) -> None:
        self.results = text
        self.query_one("#config-results-scroll").display = True
        self.query_one("#config-results", Static).update(text)

    # -- leaving --------------------------------------------------------------

    def action_back(self) -> None:
        if self.writing:
            self.notify("a write is running; wait for its result", severity="warning")
            return
        self.leave_then(self.app.pop_screen, "Leave the config screen")

    def action_reload(self) -> None:
        if self.writing:
            self.notify("a write is running; wait for its result", severity="warning")
            return

        def reload() -> None:
            self.session = None
            self.mode = "loading"
            self.show_banner("Reading the file from the node...")
            self.load()

        self.leave_then(reload, "Read the file again")

    def leave_then(self, proceed: Callable[[], object], doing: str) -> None:
        """Run `proceed`, after asking first when edits would be lost."""
        if not self.has_unsaved_edits():
            proceed()
            return

        def decided(discard: bool | None) -> None:
            if discard:
                proceed()

        message = (
            f"{doing} and discard the edits to {self.node}'s "
            f"{KIND_TITLES[self.kind]}? They have not been written."
        )
        self.app.push_screen(DiscardChangesModal(message), decided)
