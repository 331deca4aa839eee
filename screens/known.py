"""Modal that explains a log line matching a known failure signature."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from nydus_console.diagnose.matcher import SignatureMatch


def known_markup(match: SignatureMatch, node: str) -> str:
    signature = match.signature
    lines = [
        f"[b]{escape(signature.title)}[/b]  ({signature.check_id}, "
        f"{signature.severity})",
        escape(signature.explanation),
        f"\n[b]Next step[/b]: {escape(signature.next_step)}",
    ]
    if signature.runbook:
        command = f"nydus-console runbook run {signature.runbook} --node {node}"
        lines.append(
            f"[b]Runbook[/b]: {escape(signature.runbook)} (headless: {escape(command)})"
        )
    lines.append(f"\n[b]Line[/b] [dim]{escape(match.location or match.source)}[/dim]")
    lines.append(escape(match.text[:2000]))
    return "\n".join(lines)


class KnownFailureModal(ModalScreen[None]):
    """What a known failure means and what to do; any key closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f,q", "close", "Close", id="known.close"),
    ]

    def __init__(self, match: SignatureMatch, node: str) -> None:
        super().__init__()
        self.match = match
        self.node = node

    def compose(self) -> ComposeResult:
        with Vertical(id="known-dialog"):
            with VerticalScroll(id="known-scroll"):
                yield Static(known_markup(self.match, self.node), id="known-text")
            yield Button("Close", id="known-close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#known-close", Button).focus()

    @on(Button.Pressed, "#known-close")
    def action_close(self) -> None:
        self.dismiss(None)
