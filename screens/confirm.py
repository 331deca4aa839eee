"""Confirmation modal for actions that change a node; Cancel has the focus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from nydus_console.actions import Action
from nydus_console.screens.textbox import TextBox


class ConfirmActionModal(ModalScreen[str]):
    """Returns the confirmation text ('' when cancelled).

    A destructive action needs the node name typed; any other returns the
    node name when Run is pressed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel"),
    ]

    def __init__(
        self, node: str, address: str, action: Action, *, also: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.node = node
        self.address = address
        self.action = action
        # Lines shown under the command: what else the run does, such as a
        # command run after it.
        self.also = tuple(also)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(
                f"[b]{escape(self.action.name)}[/b] on "
                f"[b]{escape(self.node)}[/b] ({escape(self.address)})"
            )
            yield Static("This command will run on the node:")
            yield Static(escape(self.action.command_line), id="confirm-command")
            if self.also:
                yield Static(escape("\n".join(self.also)), id="confirm-also")
            if self.action.destructive:
                yield Static(f"Type the node name ({escape(self.node)}) to confirm:")
                yield TextBox(id="confirm-name")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="confirm-cancel", variant="primary")
                yield Button("Run", id="confirm-run", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    @on(Button.Pressed, "#confirm-run")
    def run(self) -> None:
        if not self.action.destructive:
            self.dismiss(self.node)
            return
        typed = self.query_one("#confirm-name", Input).value.strip()
        if typed != self.node:
            self.notify(
                f"type {self.node} to confirm", severity="warning", markup=False
            )
            return
        self.dismiss(typed)

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss("")
