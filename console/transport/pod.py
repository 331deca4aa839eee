"""Transport that runs commands on a Kubernetes node through a node-shell pod.

The pod is created on the first command, through ApiActionGate (read-only
mode refuses it, the audit log records it), after a SelfSubjectAccessReview
of each permission it needs, and deleted by `close`. Commands run as root
in the node's namespaces, so `sudo` is not used. Unix sockets on the node
are looked up in its /proc/net/unix, and no byte stream can be opened to
them, so metrics and API reads that need one report it as unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from nydus_console.kube.actions import ApiAction, ApiActionGate, ApiActionRefused
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import KubeError, KubeErrorKind
from nydus_console.kube.nodeshell import (
    CONFIRMED_BY,
    V5_PROTOCOL,
    ExecOutcome,
    NodeShellSettings,
    create_node_shell,
    exec_in_pod,
    listening_unix_sockets,
    missing_permission,
    open_exec,
    stdin_error,
    wait_running,
)
from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    CommandResult,
    Endpoint,
    EndpointUnavailable,
    ErrorKind,
    SocketState,
    TransportError,
)

log = logging.getLogger(__name__)


def transport_error(exc: KubeError) -> TransportError:
    kind = (
        ErrorKind.AUTH_FAILED
        if exc.kind in (KubeErrorKind.FORBIDDEN, KubeErrorKind.UNAUTHORIZED)
        else ErrorKind.UNREACHABLE
        if exc.kind == KubeErrorKind.UNREACHABLE
        else ErrorKind.FAILED
    )
    return TransportError(kind, exc.message, exc.next_step)


class PodTransport:
    """Runs argument lists on a cluster node with pods/exec and nsenter."""

    def __init__(
        self,
        node: str,
        client: KubeClient,
        gate: ApiActionGate,
        settings: NodeShellSettings | None = None,
    ) -> None:
        self.name = node
        self.description = f"node-shell pod (context {client.context})"
        self.client = client
        self.gate = gate
        self.settings = settings or NodeShellSettings()
        self.pod: ApiAction | None = None
        # The exec protocol the API server chose, once a command ran.
        self.protocol = ""
        self._lock = asyncio.Lock()

    async def _ready_pod(self) -> ApiAction:
        async with self._lock:
            if self.pod is None:
                self.pod = await asyncio.to_thread(self.start_pod)
            return self.pod

    def start_pod(self) -> ApiAction:
        """Check permissions, create the pod through the gate, wait until it runs.

        Blocks. Raises TransportError saying what was refused or missing.
        """
        action = create_node_shell(self.name, self.settings)
        try:
            if not self.gate.refusal():
                denied = missing_permission(self.client, self.settings.namespace)
                if denied is not None:
                    raise denied
            self.gate.run(action, self.client, confirmed_by=CONFIRMED_BY)
        except ApiActionRefused as exc:
            raise TransportError(
                ErrorKind.FAILED,
                f"node access to {self.name} through a pod: {exc}",
                "run the console without --read-only, or reach this node over SSH",
            ) from None
        except KubeError as exc:
            raise transport_error(exc) from None
        try:
            wait_running(self.client, action, self.name, self.settings)
        except (TransportError, KubeError) as exc:
            self._delete(action)
            if isinstance(exc, KubeError):
                raise transport_error(exc) from None
            raise
        return action

    def _delete(self, action: ApiAction) -> None:
        remove = ApiAction("delete", "Pod", action.namespace, action.name)
        try:
            self.gate.run(remove, self.client, confirmed_by=CONFIRMED_BY)
        except (ApiActionRefused, KubeError) as exc:
            log.warning("node-shell pod %s not deleted: %s", action.name, exc)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002 (the name subprocess uses)
    ) -> CommandResult:
        pod = await self._ready_pod()
        if input is not None and self.protocol != V5_PROTOCOL:
            # Learn the protocol with a command that reads no input, so
            # that the real command never starts without its input.
            if not self.protocol:
                await self._exec(pod, ["true"], None, timeout)
            error = stdin_error(argv[0], self.name, self.protocol)
            if error is not None:
                raise error
        started = time.monotonic()
        outcome = await self._exec(pod, argv, input, timeout)
        return CommandResult(
            tuple(argv),
            outcome.exit_status,
            outcome.stdout,
            outcome.stderr,
            time.monotonic() - started,
        )

    async def _exec(
        self, pod: ApiAction, argv: Sequence[str], stdin: str | None, timeout: float
    ) -> ExecOutcome:
        try:
            outcome = await asyncio.to_thread(
                exec_in_pod, self.client, pod, list(argv), stdin, timeout
            )
        except KubeError as exc:
            await self._forget(pod)
            raise transport_error(exc) from None
        self.protocol = outcome.protocol
        return outcome

    async def stream(
        self, argv: Sequence[str], *, sudo: bool = True
    ) -> AsyncIterator[str]:
        pod = await self._ready_pod()
        try:
            response = await asyncio.to_thread(
                open_exec, self.client, pod, list(argv), False
            )
        except KubeError as exc:
            await self._forget(pod)
            raise transport_error(exc) from None
        try:
            pending = ""
            while True:
                chunk = await asyncio.to_thread(_next_output, response)
                if chunk is None:
                    break
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    yield line.rstrip("\r")
            if pending:
                yield pending.rstrip("\r")
        finally:
            response.close()

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        """Look the socket up among the node's listening unix sockets.

        The pod cannot connect to it, so it reads /proc/net/unix of the
        node's network namespace instead, and tests whether the file exists.
        """
        table = await self.run(["cat", "/proc/net/unix"], timeout=timeout)
        if table.ok and path in listening_unix_sockets(table.stdout):
            return SocketState.LISTENING
        exists = await self.run(["test", "-S", path], timeout=timeout)
        if not exists.ok:
            return SocketState.MISSING
        return SocketState.REFUSED if table.ok else SocketState.UNKNOWN

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        raise EndpointUnavailable(
            f"{endpoint}: not reachable through a node-shell pod; reach the node "
            "over SSH to read it"
        )

    async def _forget(self, pod: ApiAction) -> None:
        """Delete a pod whose exec failed (gone after its lifetime, say).

        The next command creates a new one.
        """
        async with self._lock:
            if self.pod is pod:
                self.pod = None
                await asyncio.to_thread(self._delete, pod)

    async def close(self) -> None:
        async with self._lock:
            pod, self.pod = self.pod, None
            if pod is not None:
                await asyncio.to_thread(self._delete, pod)


def _next_output(response: Any) -> str | None:
    """Wait up to a second for output; None once the command has ended."""
    if not response.is_open():
        rest = str(response.read_stdout() or "") + str(response.read_stderr() or "")
        return rest or None
    response.update(timeout=1)
    return str(response.read_stdout() or "") + str(response.read_stderr() or "")
