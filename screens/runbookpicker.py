"""Modals of the multi-node run: pick a runbook, confirm its destructive steps."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from nydus_console.runbooks import load_runbooks
from nydus_console.runbooks.model import Runbook
from nydus_console.screens.textbox import TextBox


class RunbookPickerModal(ModalScreen[str]):
    """Returns the id of the chosen runbook ('' when cancelled)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="runbook_picker.cancel"),
    ]

    def __init__(self, nodes: list[str], suggested: str = "") -> None:
        super().__init__()
        self.nodes = nodes
        self.suggested = suggested
        self.runbooks = sorted(load_runbooks().values(), key=lambda r: r.id)

    def compose(self) -> ComposeResult:
        noun = "node" if len(self.nodes) == 1 else "nodes"
        with Vertical(id="picker-dialog"):
            yield Static(
                f"[b]Runbook to run on {len(self.nodes)} {noun}[/b]: "
                f"{escape(', '.join(self.nodes))}"
            )
            options = [
                Option(Text(f"{r.id:<26} {r.title}"), id=r.id) for r in self.runbooks
            ]
            yield OptionList(*options, id="picker-list")
            yield Static(
                "enter opens the run screen (nothing runs yet), escape cancels",
                id="picker-hint",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [r.id for r in self.runbooks]
        if self.suggested in ids:
            options.highlighted = ids.index(self.suggested)
        options.focus()

    @on(OptionList.OptionSelected, "#picker-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id or "")

    def action_cancel(self) -> None:
        self.dismiss("")


class DestructiveNodesModal(ModalScreen[list[str] | None]):
    """Asks once for the nodes where the runbook's destructive steps may run.

    Returns the typed node names (possibly none: the destructive steps are then
    skipped on every node), or None when cancelled. Cancel has the focus.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="destructive_nodes.cancel"),
    ]

    def __init__(self, runbook: Runbook, nodes: list[str]) -> None:
        super().__init__()
        self.runbook = runbook
        self.nodes = nodes

    def compose(self) -> ComposeResult:
        steps = [s for s in self.runbook.steps if s.destructive]
        lines = [f"[b]{escape(self.runbook.id)}[/b] has destructive steps:"]
        for step in steps:
            command = " ".join(step.command) or step.kind
            lines.append(f"  {escape(step.title)}: {escape(command)}")
        with Vertical(id="destructive-dialog"):
            yield Static("\n".join(lines))
            yield Static(
                "They run only on the nodes whose names you type here, separated "
                "by spaces, and are skipped on the others. Nodes of this run: "
                f"{escape(' '.join(self.nodes))}"
            )
            yield TextBox(id="destructive-names", placeholder="node names")
            with Horizontal(id="destructive-buttons"):
                yield Button("Cancel", id="destructive-cancel", variant="primary")
                yield Button("Start", id="destructive-start", variant="error")

    def on_mount(self) -> None:
        self.query_one("#destructive-cancel", Button).focus()

    @on(Button.Pressed, "#destructive-start")
    def start(self) -> None:
        typed = self.query_one("#destructive-names", Input).value.split()
        strangers = [name for name in typed if name not in self.nodes]
        if strangers:
            self.notify(
                f"{strangers[0]} is not a node of this run; nodes: "
                f"{' '.join(self.nodes)}",
                severity="warning",
                markup=False,
            )
            return
        self.dismiss(sorted(set(typed)))

    @on(Button.Pressed, "#destructive-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
