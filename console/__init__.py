"""nydus-console engine: inventory, transports, probes, checks and the headless CLI.

Nothing below this package imports Textual; the UI lives in nydus_console.screens.
"""

import logging

__version__ = "0.1.0"

# Library convention: the application decides where log records go (the TUI
# writes them to a file); without this, warnings would reach stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
