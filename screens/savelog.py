"""Modal that prompts for a path and saves the shown log lines there."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from nydus_console.logs.save import SaveError, resolve_save_path, write_lines
from nydus_console.screens.textbox import TextBox

SavedFile = tuple[Path, int]


class SaveLogModal(ModalScreen[SavedFile | None]):
    """Returns the path written and the line count, or None when cancelled.

    The file is written in a thread worker, so the screen below keeps taking
    lines. An existing file is overwritten only after Overwrite is pressed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="save.cancel"),
    ]

    def __init__(
        self, default: Path, count: int, lines: Callable[[], Iterable[str]]
    ) -> None:
        """`lines` returns the lines to write; it is called in the worker thread."""
        super().__init__()
        self.default = default
        self.count = count
        self.lines = lines
        self.path: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog"):
            plural = "line" if self.count == 1 else "lines"
            yield Static(f"Save the {self.count} shown {plural} to:")
            yield TextBox(str(self.default), id="save-path")
            yield Static(id="save-message")
            with Horizontal(id="save-buttons"):
                yield Button("Cancel", id="save-cancel")
                yield Button("Overwrite", id="save-overwrite", variant="error")

    def on_mount(self) -> None:
        self.query_one("#save-overwrite", Button).display = False
        self.query_one(Input).focus()

    def say(self, message: str, error: bool = False) -> None:
        style = "bold red" if error else ""
        self.query_one("#save-message", Static).update(Text(message, style=style))

    @on(Input.Changed)
    def path_changed(self) -> None:
        """Forget an overwrite question once the path is edited."""
        self.query_one("#save-overwrite", Button).display = False
        self.say("")

    @on(Input.Submitted)
    def path_submitted(self) -> None:
        self.save(overwrite=False)

    @on(Button.Pressed, "#save-overwrite")
    def overwrite_pressed(self) -> None:
        self.save(overwrite=True)

    @on(Button.Pressed, "#save-cancel")
    def action_cancel(self) -> None:
        self.workers.cancel_all()
        self.dismiss(None)

    def save(self, overwrite: bool) -> None:
        try:
            path = resolve_save_path(self.query_one(Input).value)
        except SaveError as exc:
            self.say(exc.message, error=True)
            return
        self.path = path
        self.query_one(Input).disabled = True
        self.query_one("#save-overwrite", Button).display = False
        self.say(f"saving to {path} ...")
        self.run_worker(
            lambda: write_lines(path, self.lines(), overwrite=overwrite),
            name=f"save {path}",
            group="save",
            description=f"write the shown log lines to {path}",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "save" or self.path is None:
            return
        if event.state == WorkerState.SUCCESS:
            count = worker.result
            assert isinstance(count, int)
            self.dismiss((self.path, count))
        elif event.state == WorkerState.ERROR:
            self.failed(worker.error)

    def failed(self, error: BaseException | None) -> None:
        box = self.query_one(Input)
        box.disabled = False
        box.focus()
        if isinstance(error, SaveError):
            self.say(error.message, error=True)
            self.query_one("#save-overwrite", Button).display = error.exists
        else:
            self.say(f"saving to {self.path} failed: {error!r}", error=True)
