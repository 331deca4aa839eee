"""SSH transport: one pooled asyncssh connection per node, shared by every feature."""

from __future__ import annotations

import asyncio
import errno
import shlex
import signal
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncssh

from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    CommandResult,
    Endpoint,
    EndpointUnavailable,
    ErrorKind,
    HostKeyError,
    SocketState,
    TransportError,
    sudo_password_error,
)
from nydus_console.transport.hostkeys import (
    DISPLAY_KEY_ALGORITHMS,
    HostKeyStore,
    describe_key,
    host_pattern,
    public_key_file,
)
from nydus_console.transport.quoting import quote_argv, with_sudo

# OpenSSH's default MaxSessions. The transport queues sessions beyond it instead
# of opening channels that sshd would reject.
DEFAULT_MAX_SESSIONS = 10
BACKOFF_FIRST_SECONDS = 1.0
# Runs "$@" with stderr merged into stdout, and kills it when standard input
# reaches its end, which happens when the console closes the channel. An
# asynchronous command reads /dev/null unless its input is redirected, so the
# watcher reads the saved descriptor 3.
STREAM_WRAPPER = """exec 2>&1 3<&0
"$@" </dev/null &
pid=$!
{ cat <&3 >/dev/null; kill "$pid"; } >/dev/null 2>&1 &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"""
BACKOFF_MAX_SECONDS = 30.0
# asyncssh's default order puts chacha20-poly1305 first; its implementation
# costs about 17 us of CPU per packet against about 2.4 us for AES-GCM, and
# metrics polls send and receive several packets per request. Every cipher
# here is one that OpenSSH offers by default.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)


@dataclass(frozen=True)
class SSHTarget:
    """Address, login and limits of one node."""

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    jump_host: str | None = None
    sudo: bool = False
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    max_sessions: int = DEFAULT_MAX_SESSIONS

    @property
    def address(self) -> str:
        login = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port not in (None, 22) else ""
        host = f"[{self.host}]" if ":" in self.host and port else self.host
        return f"{login}{host}{port}"

    @property
    def port_or_default(self) -> int:
        return self.port or 22


class SSHTransport:
    """Runs quoted argument lists over a lazily opened, reconnecting connection.

    `host_keys=None` turns host key checking off, which only tests do.
    """

    def __init__(self, target: SSHTarget, host_keys: HostKeyStore | None) -> None:
        self.target = target
        self.name = target.name
        self.description = target.address
        self.host_keys = host_keys
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(target.max_sessions)
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: TransportError | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._nodelay_conn: asyncssh.SSHClientConnection | None = None

    # -- connection ------------------------------------------------------------

    def reset_backoff(self) -> None:
        """Let the next call try to connect at once (after a manual refresh)."""
        self._retry_at = 0.0

    async def connection(self) -> asyncssh.SSHClientConnection:
        """Return the pooled connection, opening it if needed."""
        async with self._lock:
            if self._conn is not None and not self._is_closed(self._conn):
                return self._conn
            if self._last_error and time.monotonic() < self._retry_at:
                raise self._last_error
            try:
                self._conn = await self._open()
            except TransportError as exc:
                await self._drop()
                self._note_failure(exc)
                raise
            self._backoff = 0.0
            self._last_error = None
            return self._conn

    @staticmethod
    def _is_closed(conn: asyncssh.SSHClientConnection) -> bool:
        return conn.is_closed()

    def _note_failure(self, error: TransportError) -> None:
        self._backoff = min(
            BACKOFF_MAX_SECONDS, max(BACKOFF_FIRST_SECONDS, self._backoff * 2)
        )
        self._retry_at = time.monotonic() + self._backoff
        self._last_error = error

    async def _open(self) -> asyncssh.SSHClientConnection:
        target = self.target
        options: dict[str, object] = {
            "connect_timeout": target.connect_timeout,
            "keepalive_interval": target.keepalive_interval,
            "keepalive_count_max": 3,
            "known_hosts": self.host_keys.load() if self.host_keys else None,
            "encryption_algs": PREFERRED_CIPHERS,
        }
        if target.port:
            options["port"] = target.port
        if target.user:
            options["username"] = target.user
        if target.identity_file:
            options["client_keys"] = [target.identity_file]
        if target.jump_host:
            options["tunnel"] = await self._open_jump(target.jump_host, options)
        try:
            return await asyncssh.connect(target.host, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise await self._host_key_error() from None
        except (asyncssh.KeyImportError, FileNotFoundError, IsADirectoryError) as exc:
            if target.identity_file is None:
                raise classify_connect_error(target, exc) from None
            raise TransportError(
                ErrorKind.FAILED,
                f"identity_file {target.identity_file!r} for {target.address} "
                f"cannot be used: {_describe(exc)}.",
                "point identity_file at an OpenSSH private key (for example "
                "~/.ssh/id_ed25519) that has no passphrase or is in ssh-agent",
            ) from None
        except TimeoutError as exc:
            if not target.jump_host and await _tcp_accepts(target):
                raise TransportError(
                    ErrorKind.TIMED_OUT,
                    f"{target.address} accepted the TCP connection but sent no SSH "
                    f"banner within {target.connect_timeout:g} s.",
                    "check what listens on that port (it may not be sshd) and "
                    "whether sshd is overloaded (MaxStartups)",
                ) from None
            raise classify_connect_error(target, exc) from None
        except (OSError, asyncssh.Error) as exc:
            raise classify_connect_error(target, exc) from None

    async def _open_jump(
        self, jump_host: str, options: dict[str, object]
    ) -> asyncssh.SSHClientConnection:
        """Connect to the jump host first, so that its failures are named as its own."""
        from nydus_console.inventory import parse_node_argument

        spec = parse_node_argument(jump_host)
        hop = SSHTransport(
            SSHTarget(
                name=f"jump host {spec.address}",
                host=spec.host,
                port=spec.port,
                user=spec.user,
                identity_file=self.target.identity_file,
                connect_timeout=self.target.connect_timeout,
            ),
            self.host_keys,
        )
        try:
            self._jump = await hop._open()
        except TransportError as exc:
            exc.message = f"jump host {spec.address} of {self.name}: {exc.message}"
            raise
        return self._jump

    async def _host_key_error(self) -> HostKeyError:
        target = self.target
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    target.host,
                    target.port_or_default,
                    server_host_key_algs=list(DISPLAY_KEY_ALGORITHMS),
                ),
                target.connect_timeout,
            )
        except (OSError, asyncssh.Error, TimeoutError):
            key = None
        port = target.port_or_default
        info = describe_key(target.host, port, key) if key else None
        listed = (
            self.host_keys.entry_file(target.host, target.host, port)
            if self.host_keys is not None
            else None
        )
        if listed is not None:
            shown = info.fingerprint if info else "unavailable"
            entry = shlex.quote(host_pattern(target.host, port))
            return HostKeyError(
                ErrorKind.HOST_KEY_CHANGED,
                f"the host key of {target.address} has CHANGED (server now presents "
                f"{shown}); the connection was refused because this can mean a "
                "man-in-the-middle attack.",
                "confirm the new key with the node's owner, then remove the old "
                f"entry with: ssh-keygen -R {entry} -f {shlex.quote(str(listed))}",
                info,
            )
        key_file = public_key_file(info.key_type if info else "")
        return HostKeyError(
            ErrorKind.HOST_KEY_UNKNOWN,
            f"the host key of {target.address} is not known"
            + (f" ({info.key_type} {info.fingerprint})." if info else "."),
            "compare the fingerprint with `ssh-keygen -lf "
            f"{key_file}` run on the node, then open the node in the console and "
            "press k (or add the key to a known_hosts file)",
            info,
        )

    # -- commands --------------------------------------------------------------

    def command_line(self, argv: Sequence[str], sudo: bool) -> str:
        """Return the quoted command line sent for `argv`."""
        words = with_sudo(argv) if sudo and self.target.sudo else list(argv)
        return quote_argv(words)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002 (the name subprocess uses)
    ) -> CommandResult:
        conn = await self.connection()
        line = self.command_line(argv, sudo)
        started = time.monotonic()
        async with self._sessions:
            try:
                result = await asyncio.wait_for(
                    conn.run(line, check=False, input=input), timeout
                )
            except TimeoutError:
                raise TransportError(
                    ErrorKind.TIMED_OUT,
                    f"{argv[0]} on {self.name} did not finish within {timeout:.0f} s",
                    "check whether the node is overloaded or its disks hang",
                ) from None
            except (OSError, asyncssh.Error) as exc:
                await self._drop()
                raise self._channel_error(exc) from None
        stderr = _text(result.stderr)
        status = _exit_status(result)
        if status is None:
            # The channel closed without an exit status: the connection dropped.
            await self._drop()
            raise self._channel_error(ConnectionError("channel closed without status"))
        if sudo and self.target.sudo and status != 0:
            refusal = sudo_password_error(self.name, stderr)
            if refusal is not None:
                raise refusal
        return CommandResult(
            tuple(argv),
            status,
            _text(result.stdout),
            stderr,
            time.monotonic() - started,
        )

    async def stream(
        self, argv: Sequence[str], *, sudo: bool = True
    ) -> AsyncIterator[str]:
        # The command runs under a watcher that ends it when the channel's
        # stdin closes: without that it would outlive the channel, and
        # OpenSSH refuses signal requests for root logins. A PTY would do the
        # same through SIGHUP, but cuts the output into small packets that
        # cost far more to receive.
        conn = await self.connection()
        line = self.command_line(["sh", "-c", STREAM_WRAPPER, "sh", *argv], sudo)
        async with self._sessions:
            try:
                process = await conn.create_process(line)
            except (OSError, asyncssh.Error) as exc:
                await self._drop()
                raise self._channel_error(exc) from None
            try:
                async for line in _lines(process.stdout):
                    yield line
            except (OSError, asyncssh.Error) as exc:
                raise self._channel_error(exc) from None
            finally:
                process.close()

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        conn = await self.connection()
        try:
            _, writer = await asyncio.wait_for(conn.open_unix_connection(path), timeout)
        except asyncssh.ChannelOpenError as exc:
            state = socket_state_from_reason(exc.reason)
            if state is SocketState.UNKNOWN and self.target.sudo:
                # sshd connects as the login user, not through sudo, so a
                # root-only socket fails here even when its server listens.
                return SocketState.DENIED
            return state
        except TimeoutError:
            return SocketState.UNKNOWN
        except (OSError, asyncssh.Error) as exc:
            await self._drop()
            raise self._channel_error(exc) from None
        writer.close()
        return SocketState.LISTENING

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        conn = await self.connection()
        await self._ensure_nodelay(conn)
        try:
            if endpoint.path:
                return await conn.open_unix_connection(endpoint.path)
            return await conn.open_connection(endpoint.host, endpoint.port)
        except asyncssh.ChannelOpenError as exc:
            raise EndpointUnavailable(self._open_failure(endpoint, exc)) from None
        except (OSError, asyncssh.Error) as exc:
            await self._drop()
            raise EndpointUnavailable(str(self._channel_error(exc))) from None

    async def _ensure_nodelay(self, conn: asyncssh.SSHClientConnection) -> None:
        # OpenSSH turns Nagle off for a connection only when its first session
        # channel opens; forwarded channels alone stall about 40 ms a request.
        if self._nodelay_conn is conn:
            return
        async with self._sessions:
            try:
                await asyncio.wait_for(conn.run("true", check=False), 10.0)
            except (TimeoutError, OSError, asyncssh.Error):
                return
        self._nodelay_conn = conn

    def _open_failure(self, endpoint: Endpoint, exc: asyncssh.ChannelOpenError) -> str:
        state = socket_state_from_reason(exc.reason)
        if state is not SocketState.UNKNOWN:
            return f"{endpoint} on {self.name}: {state}"
        causes = ["it is missing or refuses connections"]
        if self.target.user != "root":
            user = self.target.user or "the login user"
            causes.append(
                f"{user} may not open it (sshd opens it as the login user, not "
                "through sudo)"
            )
        causes.append(
            "sshd forbids forwarding (AllowStreamLocalForwarding, "
            "AllowTcpForwarding, PermitOpen)"
        )
        return (
            f"sshd on {self.name} could not open {endpoint} ({exc.reason}): "
            + ", or ".join(causes)
        )

    async def _drop(self) -> None:
        for conn in (self._conn, self._jump):
            if conn is not None:
                conn.abort()
        self._conn = self._jump = None

    def _channel_error(self, exc: BaseException) -> TransportError:
        return TransportError(
            ErrorKind.DISCONNECTED,
            f"the connection to {self.target.address} dropped: {_describe(exc)}",
            "the console reconnects on the next refresh; check that sshd still "
            "runs on the node",
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        jump, self._jump = self._jump, None
        if jump is not None:
            jump.close()
        if conn is not None:
            conn.close()
            await conn.wait_closed()


async def _tcp_accepts(target: SSHTarget, timeout: float = 1.0) -> bool:
    """Return whether the node's SSH port accepts a plain TCP connection."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port_or_default), timeout
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


STREAM_CHUNK = 65536


async def _lines(stdout: asyncssh.SSHReader[str]) -> AsyncIterator[str]:
    """Split a stream into lines, reading large chunks (far cheaper than readline)."""
    pending = ""
    while True:
        chunk = await stdout.read(STREAM_CHUNK)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.rstrip("\r")
    if pending:
        yield pending.rstrip("\r")


def socket_state_from_reason(reason: str) -> SocketState:
    """Map sshd's streamlocal open-failure text to a socket state."""
    text = reason.lower()
    if "no such file" in text:
        return SocketState.MISSING
    if "refused" in text:
        return SocketState.REFUSED
    if "permission denied" in text:
        return SocketState.DENIED
    return SocketState.UNKNOWN


def classify_connect_error(target: SSHTarget, exc: BaseException) -> TransportError:
    """Turn a connect failure into an error that names the cause and the next step."""
    where = target.address
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            ErrorKind.REFUSED,
            f"{where} refused the connection on port {target.port_or_default}.",
            "check that sshd runs on the node and listens on that port",
        )
    if isinstance(exc, TimeoutError):
        return TransportError(
            ErrorKind.TIMED_OUT,
            f"{where} did not answer within {target.connect_timeout:.0f} s.",
            "check the address, the network path and any firewall",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return TransportError(
            ErrorKind.AUTH_FAILED,
            f"{where} rejected every key offered for user "
            f"{target.user or '(default)'}.",
            "check identity_file and the node's authorized_keys",
        )
    if isinstance(exc, socket.gaierror):
        return TransportError(
            ErrorKind.NAME_NOT_RESOLVED,
            f"the name {target.host!r} could not be resolved: {exc.strerror}.",
            "check the spelling, DNS, or the Host alias in ~/.ssh/config",
        )
    if isinstance(exc, OSError) and exc.errno in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    ):
        return TransportError(
            ErrorKind.UNREACHABLE,
            f"{where} is unreachable: {exc.strerror}.",
            "check routing to the node",
        )
    if isinstance(exc, ConnectionResetError):
        return TransportError(
            ErrorKind.DISCONNECTED,
            f"{where} reset the connection before the login finished.",
            f"check that port {target.port_or_default} serves SSH (it may be "
            "another service), then sshd's MaxStartups and its log on the node",
        )
    if isinstance(exc, (asyncssh.ConnectionLost, asyncssh.DisconnectError)):
        return TransportError(
            ErrorKind.DISCONNECTED,
            f"{where} closed the connection during login: {_describe(exc)}.",
            f"check that port {target.port_or_default} serves SSH (it may be "
            "another service), then sshd's MaxStartups and its log on the node",
        )
    return TransportError(
        ErrorKind.FAILED,
        f"connecting to {where} failed: {_describe(exc)}.",
        "run `ssh -v` to the node for details",
    )


def _exit_status(result: asyncssh.SSHCompletedProcess) -> int | None:
    if result.exit_status is not None and result.exit_status >= 0:
        return result.exit_status
    if result.exit_signal:
        return 128 + _signal_number(result.exit_signal[0])
    return None


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)
