"""Modal that shows an unknown host key for the operator to accept or cancel."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from nydus_console.transport.base import HostKeyInfo
from nydus_console.transport.hostkeys import public_key_file


class HostKeyModal(ModalScreen[bool]):
    """Returns True only when the operator chose Accept; Cancel has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="hostkey.cancel"),
    ]

    def __init__(self, node: str, key: HostKeyInfo) -> None:
        super().__init__()
        self.node = node
        self.key = key

    def compose(self) -> ComposeResult:
        key = self.key
        port = f":{key.port}" if key.port != 22 else ""
        with Vertical(id="hostkey-dialog"):
            yield Static("[b]Unknown host key[/b]", id="hostkey-title")
            yield Static(
                f"Node [b]{escape(self.node)}[/b] ({escape(key.host)}{port}) "
                f"presented a host key that no known_hosts file lists:\n\n"
                f"  {escape(key.key_type)}  [b]{escape(key.fingerprint)}[/b]\n\n"
                "Compare it with the output of\n"
                f"  ssh-keygen -lf {public_key_file(key.key_type)}\n"
                "run on the node itself. Accepting stores the key in the "
                "console's own known_hosts."
            )
            with Horizontal(id="hostkey-buttons"):
                yield Button("Cancel", id="hostkey-cancel", variant="primary")
                yield Button("Accept key", id="hostkey-accept", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#hostkey-cancel", Button).focus()

    @on(Button.Pressed, "#hostkey-accept")
    def accept(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#hostkey-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
