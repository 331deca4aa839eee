"""Help modal: the keys of the screen it was opened from."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GENERAL = (
    "[b]nydus-console[/b] checks nydus-snapshotter, nydusd and containerd on every "
    "node.\n\n"
    "Each row of the fleet is one node. Enter opens its checks, and each check "
    "shows the evidence that decided it and the next step. Statuses: ok, warn, "
    "fail, unknown (could not be decided), skip (a check it depends on did not "
    "pass), unreachable.\n\n"
    "ctrl+p opens the command palette with the commands of the current screen.\n"
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, origin: Screen[object]) -> None:
        super().__init__()
        self.origin = origin

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(GENERAL + "\n" + self.key_table())

    def key_table(self) -> str:
        title = getattr(self.origin, "BINDING_GROUP_TITLE", None) or "Screen"
        lines = [f"[b]{escape(title)} keys[/b]"]
        for binding in self.origin.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                key = binding.key_display or binding.key
                # Padded before escaping: escape() doubles a backslash only at
                # the end of its text, which the padding then keeps as two.
                cell = escape(f"{key:<12}")
                lines.append(f"  {cell} {escape(binding.description)}")
        lines += [
            "",
            "[b]Everywhere[/b]",
            "  ?            this help",
            "  ctrl+p       command palette",
            "  q            quit",
        ]
        return "\n".join(lines)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
