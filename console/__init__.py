"""nydus-console engine: inventory, transports, probes, checks and the headless CLI.

Nothing below this package imports Textual; the UI lives in nydus_console.screens.
"""

__version__ = "0.1.0"
