"""The installed `nydus-console` command in a real terminal (tmux).

It runs against the booted test nodes and is driven with keystrokes, the way
an operator would use it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.nspawn import NspawnFleet

pytestmark = [pytest.mark.tmux, pytest.mark.nspawn]


class Terminal:
    """A private tmux server with one 150x40 window."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"nc-test-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        exports = [f"{k}={v}" for k, v in env.items()]
        # COLUMNS and LINES from the test runner's environment would override
        # the size of the tmux window.
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "150",
            "-y",
            "40",
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            *exports,
            *argv,
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "main")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                screen = self.screen()
            except subprocess.CalledProcessError:
                screen = ""
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; screen:\n{screen}")

    def alive(self) -> bool:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "has-session", "-t", "main"],
            capture_output=True,
        )
        return result.returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (Debian package tmux)")
    term = Terminal(tmp_path)
    yield term
    term.close()


def console_command() -> list[str]:
    installed = Path(sys.executable).with_name("nydus-console")
    return (
        [str(installed)]
        if installed.exists()
        else [sys.executable, "-m", "nydus_console"]
    )


def test_console_in_tmux(
    nspawn_fleet: NspawnFleet, terminal: Terminal, tmp_path: Path
) -> None:
    inventory = nspawn_fleet.write_inventory(tmp_path / "inventory.toml")
    env = {
        "TERM": "xterm-256color",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    terminal.start([*console_command(), "--inventory", str(inventory)], env)
    screen = terminal.wait_for("1 fail, 2 ok")
    # Table rows only: the line under the table also starts with a node name,
    # followed by a colon.
    lines = [line for line in screen.splitlines() if re.match(r" nc-node\d ", line)]
    assert len(lines) == 3, screen
    broken = next(line for line in lines if "nc-node3" in line)
    assert " fail " in broken
    assert "failed/failed" in broken

    terminal.keys("/")
    terminal.keys(*"node3")
    terminal.wait_for("'node3'")
    terminal.keys("Enter")
    time.sleep(0.5)
    terminal.keys("Enter")
    screen = terminal.wait_for("Root under containerd's root")
    assert "nc-node3" in screen
    terminal.wait_for("Next step")

    terminal.keys("?")
    terminal.wait_for("Node keys")
    terminal.keys("Escape", "Escape")
    terminal.wait_for("Worst finding")
    terminal.keys("q")
    deadline = time.monotonic() + 10
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.alive(), "q must quit the console"
