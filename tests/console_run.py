"""Run the nydus-console command line in a child process with its own home.

The child gets private HOME and XDG directories (so it reads no inventory,
audit log or known_hosts of the machine), no ssh-agent, and no standard input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_console(
    *args: str, home: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `nydus-console ARGS...` and return its exit status and output."""
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".state"),
    )
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(
        [sys.executable, "-m", "nydus_console", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
