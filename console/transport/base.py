"""Transport protocol shared by the local and SSH implementations."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class ErrorKind(enum.StrEnum):
    """Cause of a failure to reach a node or to run a command on it."""

    REFUSED = "refused"
    TIMED_OUT = "timed out"
    AUTH_FAILED = "authentication failed"
    HOST_KEY_UNKNOWN = "host key unknown"
    HOST_KEY_CHANGED = "host key changed"
    NAME_NOT_RESOLVED = "name not resolved"
    UNREACHABLE = "unreachable"
    DISCONNECTED = "disconnected"
    SUDO_PASSWORD = "sudo needs a password"
    FAILED = "failed"


class TransportError(Exception):
    """A node could not be reached, or the channel failed mid-command."""

    def __init__(self, kind: ErrorKind, message: str, next_step: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.next_step = next_step

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message} Next step: {self.next_step}"
        return self.message


@dataclass(frozen=True)
class HostKeyInfo:
    """A server host key that is not (or no longer) trusted."""

    host: str
    port: int
    key_type: str
    fingerprint: str
    openssh_line: str


class HostKeyError(TransportError):
    """An unknown or changed host key; carries the key the server presented."""

    def __init__(
        self, kind: ErrorKind, message: str, next_step: str, key: HostKeyInfo | None
    ) -> None:
        super().__init__(kind, message, next_step)
        self.key = key


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command on a node."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SocketState(enum.StrEnum):
    """Outcome of connecting to a unix socket on a node."""

    LISTENING = "listening"
    REFUSED = "refused"
    MISSING = "missing"
    DENIED = "permission denied"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes on the node: a unix socket path, or host and port."""

    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"


class ByteReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...

    def at_eof(self) -> bool: ...


class ByteWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...


class EndpointUnavailable(OSError):
    """The transport could not open a stream to an endpoint; says why."""


class Transport(Protocol):
    """Run commands and reach unix sockets on one node."""

    name: str
    description: str

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002 (the name subprocess uses)
    ) -> CommandResult:
        """Run `argv` and collect its output; raise TransportError if unreachable.

        `input`, when given, is the command's standard input; without it the
        command reads an empty input.
        """
        ...

    def stream(self, argv: Sequence[str], *, sudo: bool = True) -> AsyncIterator[str]:
        """Yield output lines of a long-running command until it ends or is closed."""
        ...

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        """Connect to a unix socket on the node and close the connection again."""
        ...

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        """Open a byte stream to a unix socket or a port as seen from the node.

        Raise EndpointUnavailable with the reason when it cannot be opened.
        """
        ...

    async def close(self) -> None:
        """Release the connection; later calls reconnect."""
        ...


SUDO_PASSWORD_MARKERS = ("a password is required", "a terminal is required")


def sudo_password_error(node: str, stderr: str) -> TransportError | None:
    """Return the error for a `sudo -n` refusal found in stderr, if any."""
    if not any(marker in stderr for marker in SUDO_PASSWORD_MARKERS):
        return None
    return TransportError(
        ErrorKind.SUDO_PASSWORD,
        f"sudo on {node} asked for a password: {stderr.strip()[:200]}",
        "allow this user passwordless sudo for the console's commands "
        "(NOPASSWD in sudoers), or log in as root",
    )
