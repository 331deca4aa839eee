"""Modal that explains a log line matching a known failure signature.

It explains the current line's known failure, or else steps through every
known failure seen, newest first. The signature's text is filled from the
line's match the way `diagnose` fills it, so no `{name}` placeholder shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from nydus_console.diagnose.fold import fill
from nydus_console.diagnose.matcher import SignatureMatch


@dataclass(frozen=True)
class KnownLine:
    """A line that matched a known failure, and the node it came from."""

    match: SignatureMatch
    node: str


def known_markup(line: KnownLine) -> str:
    match = line.match
    signature = match.signature
    lines = [
        f"[b]{escape(signature.title)}[/b]  ({signature.check_id}, "
        f"{signature.severity})",
        escape(fill(signature.explanation, match.groups)),
        f"\n[b]Next step[/b]: {escape(fill(signature.next_step, match.groups))}",
    ]
    if signature.runbook:
        command = f"nydus-console runbook run {signature.runbook} --node {line.node}"
        lines.append(
            f"[b]Runbook[/b]: {escape(signature.runbook)} (headless: {escape(command)})"
        )
    where = match.location or match.source
    lines.append(f"\n[b]Line[/b] [dim]{escape(line.node)} {escape(where)}[/dim]")
    lines.append(escape(match.text[:2000]))
    return "\n".join(lines)


def known_heading(index: int, total: int, current: bool) -> str:
    """Say which known failure the modal shows, and how to reach the others."""
    if current:
        return "Known failure of the current line"
    if total == 1:
        return "The one known failure seen (no current line has one)"
    keys = "n older, p newer"
    if index == 0:
        return f"Newest of {total} known failures seen ({keys})"
    return f"Known failure {index + 1} of {total}, newest first ({keys})"


class KnownFailureModal(ModalScreen[None]):
    """What a known failure means and what to do; n and p step through several."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f,q", "close", "Close", id="known.close"),
        Binding("n", "step(1)", "Older", id="known.older"),
        Binding("p", "step(-1)", "Newer", id="known.newer"),
    ]

    def __init__(self, lines: Sequence[KnownLine], *, current: bool = False) -> None:
        """Show `lines[0]`; `current` says it is the current line's failure."""
        super().__init__()
        if not lines:
            raise ValueError("a known failure modal needs a line")
        self.lines = list(lines)
        self.current = current
        self.index = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="known-dialog"):
            yield Static(id="known-heading")
            with VerticalScroll(id="known-scroll"):
                yield Static(id="known-text")
            yield Button("Close", id="known-close", variant="primary")

    def on_mount(self) -> None:
        self.show()
        self.query_one("#known-close", Button).focus()

    def show(self) -> None:
        heading = known_heading(self.index, len(self.lines), self.current)
        self.query_one("#known-heading", Static).update(heading)
        text = known_markup(self.lines[self.index])
        self.query_one("#known-text", Static).update(text)
        self.query_one("#known-scroll", VerticalScroll).scroll_home(animate=False)

    def action_step(self, step: int) -> None:
        index = self.index + step
        if 0 <= index < len(self.lines):
            self.index = index
            self.show()

    @on(Button.Pressed, "#known-close")
    def action_close(self) -> None:
        self.dismiss(None)
