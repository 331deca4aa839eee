"""The smallest Textual app the console's first frame is compared with.

It shows MARKER in a Static above a Footer; the benchmark polls the terminal
for MARKER.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Static

MARKER = "minimal-app-ready"


class MinimalApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static(MARKER)
        yield Footer()


if __name__ == "__main__":
    MinimalApp().run()
