"""Run terminal programs in a private tmux server and watch what they draw."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

POLL_SECONDS = 0.01
WIDTH, HEIGHT = 120, 40


class TmuxServer:
    """A tmux server on its own socket (-L), which close() kills."""

    def __init__(self, socket_name: str) -> None:
        self.socket_name = socket_name
        self._sessions = 0

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket_name, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def __enter__(self) -> TmuxServer:
        # exit-empty off keeps the server up between sessions, so that starting
        # the server is not part of the first sample.
        self.tmux("start-server", ";", "set", "-g", "exit-empty", "off")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def launch(self, argv: list[str], env: dict[str, str]) -> tuple[str, int, float]:
        """Start argv in a new detached session of WIDTH x HEIGHT cells.

        Returns the session name, the pane's PID and the perf_counter time taken
        just before tmux was asked to start it.
        """
        self._sessions += 1
        session = f"s{self._sessions}"
        words = ["env", *(f"{key}={value}" for key, value in env.items()), *argv]
        started = time.perf_counter()
        pid = self.tmux(
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-P",
            "-F",
            "#{pane_pid}",
            shlex.join(words),
        )
        return session, int(pid), started

    def capture(self, session: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", session)

    def wait_for_text(self, session: str, text: str, timeout: float) -> float:
        """Poll the pane until text appears, and return the perf_counter time then."""
        deadline = time.perf_counter() + timeout
        while True:
            if text in self.capture(session):
                return time.perf_counter()
            if time.perf_counter() > deadline:
                screen = self.capture(session)
                raise TimeoutError(
                    f"{text!r} did not appear in tmux session {session} within "
                    f"{timeout} s; the pane shows:\n{screen}"
                )
            time.sleep(POLL_SECONDS)

    def kill_session(self, session: str, pid: int, timeout: float = 10.0) -> None:
        """Kill the session (tmux sends SIGHUP) and wait until pid has exited."""
        self.tmux("kill-session", "-t", session)
        deadline = time.monotonic() + timeout
        while process_exists(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid {pid} outlived its tmux session {session}")
            time.sleep(0.02)

    def close(self) -> None:
        """Kill the server and delete its socket file, which tmux 3.3a leaves."""
        subprocess.run(
            ["tmux", "-L", self.socket_name, "kill-server"],
            capture_output=True,
            check=False,
        )
        directory = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (directory / self.socket_name).unlink(missing_ok=True)


def process_exists(pid: int) -> bool:
    """Return whether pid runs; zombies count as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def find_process(root_pid: int, word: str) -> int:
    """Return root_pid or its first descendant whose command line contains word."""
    pending = [root_pid]
    while pending:
        pid = pending.pop(0)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if word.encode() in cmdline and not cmdline.startswith(b"env "):
            return pid
        pending += children(pid)
    raise LookupError(f"no process under pid {root_pid} runs {word!r}")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found
