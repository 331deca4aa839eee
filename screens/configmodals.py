"""Modals of the config screen: choose a config, show the diff, confirm a write.

Every modal that changes something or drops edits opens with the harmless
button focused (Cancel, Stay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static, Switch
from textual.widgets.option_list import Option

from nydus_console.configedit.apply import STEADY_SECONDS, ConfigChange
from nydus_console.configedit.remote import KIND_TITLES


def diff_text(diff: str) -> Text:
    """Colour a unified diff: added lines green, removed red, hunks cyan."""
    text = Text()
    for line in diff.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        text.append(line + "\n", style=style)
    return text


def plan_lines(change: ConfigChange, unit: str, verify_seconds: float) -> list[str]:
    """Describe what a write does, step by step, as ConfigApplier runs it.

    `unit` is the service the change restarts, named also when the change
    restarts nothing.
    """
    path = change.path
    if change.old_text is None:
        lines = [f"create {path}; there is no backup, because it does not exist yet"]
    else:
        lines = [
            f"write {path} atomically, keeping the old file as {path}.<UTC time>.bak"
        ]
    if not change.unit:
        lines.append(f"no restart: {unit} keeps its old config until it restarts")
        return lines
    lines.append(f"systemctl reset-failed {unit}, then systemctl restart {unit}")
    healthy = f"{unit} active with the same PID for {STEADY_SECONDS:g} s"
    if change.socket:
        healthy += f" and {change.socket} listening"
    lines.append(f"verify within {verify_seconds:g} s: {healthy}")
    if change.old_text is None:
        lines.append("on failure: nothing to restore, because the file is new")
    else:
        lines.append(f"on failure: restore {path} from the backup, restart {unit}")
    return lines


class ConfigKindModal(ModalScreen[str]):
    """Choose which config of a node to edit; returns its kind, "" if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="config_kind.cancel"),
    ]

    def __init__(self, node: str, paths: dict[str, str]) -> None:
        super().__init__()
        self.node = node
        self.paths = paths

    def compose(self) -> ComposeResult:
        with Vertical(id="config-kind-dialog"):
            yield Label(f"Edit a config of [b]{escape(self.node)}[/b]:")
            yield OptionList(
                *(
                    Option(f"{KIND_TITLES[kind]:<20} {escape(path)}", id=kind)
                    for kind, path in self.paths.items()
                ),
                id="config-kind-list",
            )

    @on(OptionList.OptionSelected, "#config-kind-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id or "")

    def action_cancel(self) -> None:
        self.dismiss("")


class DiffModal(ModalScreen[None]):
    """The masked diff of the edits against the file on the node."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="config_diff.close"),
    ]

    def __init__(self, title: str, diff: str) -> None:
        super().__init__()
        self.title_text = title
        self.diff = diff

    def compose(self) -> ComposeResult:
        with Vertical(id="config-diff-dialog"):
            yield Static(self.title_text, markup=False, classes="config-modal-title")
            with VerticalScroll(classes="config-diff-scroll"):
                yield Static(diff_text(self.diff) if self.diff else "No changes.")
            with Horizontal(classes="config-modal-buttons"):
                yield Button("Close", id="config-diff-close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#config-diff-close", Button).focus()

    @on(Button.Pressed, "#config-diff-close")
    def action_close(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class WriteRequest:
    """The operator's choice in the write dialog."""

    restart: bool


class WriteConfigModal(ModalScreen[WriteRequest | None]):
    """The diff and the steps of a write; Cancel has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="config_write.cancel"),
    ]

    def __init__(
        self, heading: str, diff: str, plans: dict[bool, list[str]], unit: str
    ) -> None:
        super().__init__()
        self.heading = heading
        self.diff = diff
        self.plans = plans
        self.unit = unit

    def compose(self) -> ComposeResult:
        with Vertical(id="config-write-dialog"):
            yield Static(self.heading, markup=False, classes="config-modal-title")
            with VerticalScroll(classes="config-diff-scroll"):
                yield Static(diff_text(self.diff))
            yield Static(id="config-write-plan")
            with Horizontal(id="config-write-restart"):
                yield Switch(True, animate=False, id="config-restart-switch")
                yield Label(f"restart {escape(self.unit)} after writing")
            with Horizontal(classes="config-modal-buttons"):
                yield Button("Cancel", id="config-write-cancel", variant="primary")
                yield Button("Run", id="config-write-run", variant="error")

    def on_mount(self) -> None:
        self.show_plan(True)
        self.query_one("#config-write-cancel", Button).focus()

    def show_plan(self, restart: bool) -> None:
        lines = ["[b]This will:[/b]"]
        lines += [
            f"  {number}. {escape(line)}"
            for number, line in enumerate(self.plans[restart], 1)
        ]
        self.query_one("#config-write-plan", Static).update("\n".join(lines))

    @on(Switch.Changed, "#config-restart-switch")
    def restart_toggled(self, event: Switch.Changed) -> None:
        self.show_plan(event.value)

    @on(Button.Pressed, "#config-write-run")
    def run(self) -> None:
        restart = self.query_one("#config-restart-switch", Switch).value
        self.dismiss(WriteRequest(restart=restart))

    @on(Button.Pressed, "#config-write-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class DiscardChangesModal(ModalScreen[bool]):
    """Asks before unsaved edits are dropped; Stay has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stay", "Stay", id="config_discard.stay"),
    ]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="config-discard-dialog"):
            yield Static(self.message, markup=False)
            with Horizontal(classes="config-modal-buttons"):
                yield Button("Stay", id="config-discard-stay", variant="primary")
                yield Button("Discard", id="config-discard-discard", variant="error")

    def on_mount(self) -> None:
        self.query_one("#config-discard-stay", Button).focus()

    @on(Button.Pressed, "#config-discard-discard")
    def discard(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#config-discard-stay")
    def action_stay(self) -> None:
        self.dismiss(False)
