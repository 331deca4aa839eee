"""Transport for the machine the console runs on, without SSH."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import AsyncIterator, Sequence

from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    CommandResult,
    Endpoint,
    EndpointUnavailable,
    ErrorKind,
    SocketState,
    TransportError,
    sudo_password_error,
)
from nydus_console.transport.quoting import with_sudo


class LocalTransport:
    """Runs argument lists directly with asyncio subprocesses (no shell)."""

    def __init__(self, name: str = "localhost", *, use_sudo: bool = False) -> None:
        self.name = name
        self.description = "this machine"
        self.use_sudo = use_sudo and os.geteuid() != 0

    def _argv(self, argv: Sequence[str], sudo: bool) -> list[str]:
        return with_sudo(argv) if sudo and self.use_sudo else list(argv)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002 (the name subprocess uses)
    ) -> CommandResult:
        full = self._argv(argv, sudo)
        started = time.monotonic()
        stdin = asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE
        try:
            proc = await asyncio.create_subprocess_exec(
                *full,
                stdin=stdin,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            return CommandResult(tuple(full), 127, "", f"{full[0]}: not found", 0.0)
        try:
            data = None if input is None else input.encode()
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except asyncio.CancelledError:
            # A cancelled caller (a closed screen) must not leave the child behind.
            proc.kill()
            await asyncio.shield(proc.wait())
            raise
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TransportError(
                ErrorKind.TIMED_OUT,
                f"{full[0]} on {self.name} did not finish within {timeout:.0f} s",
                "check whether the machine is overloaded",
            ) from None
        stderr = err.decode(errors="replace")
        if sudo and self.use_sudo and proc.returncode != 0:
            refusal = sudo_password_error(self.name, stderr)
            if refusal is not None:
                raise refusal
        return CommandResult(
            tuple(full),
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            stderr,
            time.monotonic() - started,
        )

    async def stream(
        self, argv: Sequence[str], *, sudo: bool = True
    ) -> AsyncIterator[str]:
        proc = await asyncio.create_subprocess_exec(
            *self._argv(argv, sudo),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdout is not None
        try:
            pending = b""
            while chunk := await proc.stdout.read(65536):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    yield raw.decode(errors="replace").rstrip("\r")
            if pending:
                yield pending.decode(errors="replace").rstrip("\r")
        finally:
            if proc.returncode is None:
                proc.terminate()
                # Shielded: a cancelled reader must still reap the child.
                await asyncio.shield(proc.wait())

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path), timeout
            )
        except FileNotFoundError:
            return SocketState.MISSING
        except ConnectionRefusedError:
            return SocketState.REFUSED
        except PermissionError:
            return SocketState.DENIED
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOTSOCK:
                return SocketState.REFUSED
            return SocketState.UNKNOWN
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ConnectionError):
            pass
        return SocketState.LISTENING

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        try:
            if endpoint.path:
                return await asyncio.open_unix_connection(endpoint.path)
            return await asyncio.open_connection(endpoint.host, endpoint.port)
        except PermissionError:
            raise EndpointUnavailable(
                f"{endpoint}: permission denied; run the console as a user who "
                "may open it (usually root)"
            ) from None
        except FileNotFoundError:
            raise EndpointUnavailable(f"{endpoint}: no such socket") from None
        except ConnectionRefusedError:
            raise EndpointUnavailable(
                f"{endpoint}: connection refused (nothing listens)"
            ) from None
        except OSError as exc:
            raise EndpointUnavailable(f"{endpoint}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        return None
