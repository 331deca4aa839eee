"""A text box whose editing keys keep their place among typed characters.

Textual runs a focused Input's key bindings (backspace, ctrl+u, enter, ...)
only after the key has passed up to the app, while typed characters are
inserted as soon as the box reads them. Typed quickly, "ctrl+u node1"
therefore inserted "node1" first and then deleted it.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class TextBox(Input):
    """An Input that runs its own bindings in the order the keys arrive."""

    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings.key_to_bindings.get(event.key, [])
        if not bindings:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        await self.run_action(bindings[0].action)
