"""A node's config files and services for screen tests, without a booted node.

FileNodeTransport keeps the node's files under a local directory and
answers the commands the config screen sends: `cat` reads a file, the write
script (assets/write_file.sh) runs for real with `sh` against the local
copy, and `systemctl` calls are recorded and answered from a table of unit
states. The booted-node tests (test_config_screen_nspawn.py) cover the real
systemd and snapshotter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    CommandResult,
    Endpoint,
    EndpointUnavailable,
    SocketState,
)


class FileNodeTransport:
    """Serves files from `root` as if they were at their absolute paths."""

    def __init__(self, name: str, root: Path, files: dict[str, str]) -> None:
        self.name = name
        self.description = f"config double of {name}"
        self.root = root
        for path, text in files.items():
            self.local(path).parent.mkdir(parents=True, exist_ok=True)
            self.local(path).write_text(text)
        # Paths whose reads fail with this stderr, as an unreadable file does.
        self.unreadable: dict[str, str] = {}
        # The `systemctl show` answer per unit; a unit not listed is running.
        self.unit_states: dict[str, str] = {}
        self.commands: list[tuple[str, ...]] = []

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path: str) -> str:
        return self.local(path).read_text()

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002 (the name subprocess uses)
    ) -> CommandResult:
        argv = tuple(argv)
        self.commands.append(argv)
        if argv[:2] == ("cat", "--"):
            return self._cat(argv)
        if argv[:2] == ("sh", "-c") and argv[3:4] == ("write-file",):
            return await self._write(argv, input or "")
        if argv[:2] == ("systemctl", "show"):
            return self._result(argv, 0, self._unit_state(argv[-1]))
        if argv[0] == "systemctl":
            return self._result(argv, 0, "")
        return self._result(argv, 127, "", f"{argv[0]}: not served by the double")

    def _cat(self, argv: tuple[str, ...]) -> CommandResult:
        path = argv[2]
        if path in self.unreadable:
            return self._result(argv, 1, "", self.unreadable[path])
        try:
            return self._result(argv, 0, self.read(path))
        except FileNotFoundError:
            message = f"cat: {path}: No such file or directory\n"
            return self._result(argv, 1, "", message)

    async def _write(self, argv: tuple[str, ...], content: str) -> CommandResult:
        """Run the real write script with the path moved under `root`."""
        script, path, *sums = argv[2], argv[4], *argv[5:]
        process = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            script,
            "write-file",
            str(self.local(path)),
            *sums,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(content.encode())
        # The node's paths, as the script on the node would print them.
        stdout = out.decode().replace(str(self.root), "")
        stderr = err.decode().replace(str(self.root), "")
        return self._result(argv, process.returncode or 0, stdout, stderr)

    def _unit_state(self, unit: str) -> str:
        default = "ActiveState=active\nSubState=running\nMainPID=4242\n"
        return self.unit_states.get(unit, default)

    @staticmethod
    def _result(
        argv: tuple[str, ...], status: int, stdout: str, stderr: str = ""
    ) -> CommandResult:
        return CommandResult(argv, status, stdout, stderr, 0.0)

    def stream(self, argv: Sequence[str], *, sudo: bool = True) -> AsyncIterator[str]:
        raise NotImplementedError("the config double runs no long commands")

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        return SocketState.LISTENING

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        raise EndpointUnavailable(f"{endpoint}: the config double serves no sockets")

    async def close(self) -> None:
        return None
