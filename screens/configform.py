"""Form fields of the config screen, generated from a config schema.

Each field edits one key: a Switch for a bool, a Select for an enum, an
Input otherwise. A field turns what its control shows into the value to
store, and shows why a value is invalid or what validation found about it.
A field left as it was built gives back the value the document had then,
so undoing an edit in the form leaves no change in the file.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static, Switch

from nydus_console.configedit.document import Document
from nydus_console.configedit.keys import format_key
from nydus_console.configedit.schema import KeyEntry
from nydus_console.configedit.session import UNSET
from nydus_console.configedit.values import parse_value
from nydus_console.screens.textbox import TextBox

SECRET_HELP = "Credential: the value is never shown here. Type a new one to replace it."


def control_text(value: Any) -> str:
    """Render a stored value as the text an Input shows; "" when not set."""
    if value is UNSET:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def default_text(entry: KeyEntry) -> str:
    if not entry.has_default:
        return "not set"
    return f"default {control_text(entry.default) or '(empty)'}"


def help_text(entry: KeyEntry, real_key: str) -> str:
    """The line under a field: help, then type, default, version and readers."""
    parts = [entry.help]
    details = [entry.type, default_text(entry)]
    if entry.since:
        details.append(f"since {entry.since}")
    if entry.backends:
        details.append(f"read by the {', '.join(entry.backends)} backends")
    if real_key != entry.name:
        details.append(f"written as {real_key}")
    parts.append(" · ".join(details))
    if entry.ignored:
        parts.append(f"No effect: {entry.ignored}")
    if entry.secret:
        parts.append(SECRET_HELP)
    return "\n".join(parts)


def visible_entries(document: Document) -> list[KeyEntry]:
    """Return the schema keys the form shows for `document`.

    Tables are left out (their keys are fields of their own), and so are
    backend keys that the chosen backend type does not read, unless the
    file sets them.
    """
    backend_type = document.get(
        "backend.type" if document.layout == "v2" else "device.backend.type"
    )
    shown: list[KeyEntry] = []
    for entry in document.schema:
        if entry.type == "table":
            continue
        readers = entry.backends
        if readers and isinstance(backend_type, str) and backend_type not in readers:
            if not document.has(entry.name):
                continue
        shown.append(entry)
    return shown


def grouped(entries: list[KeyEntry]) -> dict[str, list[KeyEntry]]:
    """Group entries by their schema group, "top level" first."""
    groups: dict[str, list[KeyEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.group or "top level", []).append(entry)
    ordered = sorted(groups, key=lambda name: name != "top level")
    return {name: groups[name] for name in ordered}


class ConfigField(Horizontal):
    """One key of the config: its control, help, and what is wrong with it."""

    class Edited(Message):
        """The control of a field changed; the screen stores its value."""

        def __init__(self, field: ConfigField) -> None:
            super().__init__()
            self.field = field

    def __init__(self, entry: KeyEntry, document: Document, index: int) -> None:
        super().__init__(id=f"field-{index}", classes="config-field")
        self.entry = entry
        self.real_key = format_key(entry.path(document.version))
        self.initial: Any = document.get(entry.name, UNSET)
        self.invalid = ""
        self.problem = ""
        # What the control shows at first. A Select takes its value only
        # once mounted, so its state is read from the value it is given.
        self.initial_state: Any = None
        self.control = self._make_control()
        if not isinstance(self.control, Select):
            self.initial_state = self._state()
        self.text_box = Static(self._text(), classes="config-field-text")

    # -- building ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.text_box
        yield self.control

    def _text(self) -> Text:
        """The key, its help, and the message about its value if there is one."""
        text = Text(self.entry.name, style="bold")
        if self.initial is UNSET:
            text.append("  (not set)", style="dim")
        text.append("\n" + help_text(self.entry, self.real_key), style="dim")
        if self.invalid:
            text.append(f"\ninvalid, not stored: {self.invalid}", style="bold red")
        elif self.problem:
            text.append(f"\n{self.problem}", style="yellow")
        return text

    def _make_control(self) -> Widget:
        entry = self.entry
        if entry.type == "bool":
            return Switch(self._switch_value(), animate=False, classes="config-control")
        if entry.type == "enum":
            return self._select()
        return TextBox(
            value="" if entry.secret else control_text(self.initial),
            placeholder=self._placeholder(),
            password=entry.secret,
            compact=True,
            classes="config-control",
        )

    def _switch_value(self) -> bool:
        if isinstance(self.initial, bool):
            return self.initial
        return self.entry.default is True

    def _select(self) -> Select[Any]:
        options: list[tuple[str, Any]] = [
            (control_text(v), v) for v in self.entry.allowed
        ]
        value: Any = Select.NULL
        if self.initial is not UNSET:
            value = self.initial
            if self.initial not in self.entry.allowed:
                options.append((f"{control_text(self.initial)} (not allowed)", value))
        self.initial_state = value
        return Select(
            options,
            prompt=default_text(self.entry),
            allow_blank=True,
            value=value,
            compact=True,
            classes="config-control",
        )

    def _placeholder(self) -> str:
        if self.entry.secret:
            return "*** (set; type to replace)" if self.initial is not UNSET else ""
        return default_text(self.entry)

    # -- reading the control -------------------------------------------------------

    def _state(self) -> Any:
        control = self.control
        if isinstance(control, Switch):
            return control.value
        if isinstance(control, Select):
            return control.value
        assert isinstance(control, Input)
        return control.value

    def requested(self) -> Any:
        """Return the value the control asks for: a typed value, or UNSET.

        A control back at its first state asks for the value the document
        had when the form was built. Raises ValueParseError for text that
        does not fit the key.
        """
        state = self._state()
        if state == self.initial_state:
            return self.initial
        if isinstance(self.control, Switch):
            return bool(state)
        if state is Select.NULL or state == "":
            return UNSET
        text = state if isinstance(self.control, Input) else control_text(state)
        return parse_value(self.entry, text)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self))

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self))

    # -- messages -----------------------------------------------------------------

    def show_invalid(self, reason: str) -> None:
        """Show why the control's value was not stored; "" clears it."""
        self.invalid = reason
        self._show_message()

    def show_problem(self, text: str) -> None:
        """Show what validation found about this key; "" clears it."""
        self.problem = text
        self._show_message()

    def _show_message(self) -> None:
        self.text_box.update(self._text())
        self.set_class(bool(self.invalid), "-invalid")
