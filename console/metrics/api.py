"""JSON over HTTP to the unix sockets of nydusd and the snapshotter's system controller.

Both APIs report errors with a JSON body ``{"code": ..., "message": ...}``;
nydusd nests its error variants in the message (``...(NoCounter)...``).
Every failure becomes an ApiError that names the socket, the request and
what to do next.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from nydus_console.configs import mask_secrets
from nydus_console.transport.base import Transport
from nydus_console.transport.http import NodeHTTPTransport

# The host part of the URL is not used on a unix socket; it names the peer in
# error messages.
DEFAULT_TIMEOUT = 5.0


class ApiError(Exception):
    """A request to a node's HTTP API failed; `status` is 0 when none came back."""

    def __init__(self, message: str, status: int = 0, next_step: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.next_step = next_step

    @property
    def no_counter(self) -> bool:
        return self.status == 404 and "NoCounter" in self.message

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message}. Next step: {self.next_step}"
        return self.message


_STATUS_STEPS = {
    501: "this daemon does not support the request (a singleton or fscache "
    "daemon answers only some endpoints)",
    503: "the daemon is not ready: it is still starting, or waits for a "
    "takeover after a crash; check its state and log",
}


def error_message(body: bytes) -> str:
    """Return the message of a nydusd or system-controller error body, masked.

    nydusd quotes the config it failed to load in some errors, and a config
    can hold registry or storage credentials.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return mask_secrets(body[:200].decode("utf-8", "replace").strip())
    if isinstance(data, dict) and "message" in data:
        return mask_secrets(str(data["message"]))
    return mask_secrets(json.dumps(data)[:200])


def _status_error(where: str, response: httpx.Response) -> ApiError:
    message = error_message(response.content)
    status = response.status_code
    text = f"{where} answered {status}: {message}"
    if status == 404 and "NoCounter" in message:
        return ApiError(
            text, status, "the daemon has several instances or none; ask for one by id"
        )
    if status == 404:
        return ApiError(text, status, "this daemon version does not serve that path")
    return ApiError(text, status, _STATUS_STEPS.get(status, "read the daemon's log"))


# Errors of a kept-alive connection whose daemon restarted since the last
# request. The write or the read fails, or the response never starts,
# depending on when the client notices that the server is gone.
_CLOSED_CONNECTION = (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError)


class SocketClient:
    """Client for GET requests with JSON responses to one unix socket on a node."""

    def __init__(
        self,
        transport: Transport,
        socket_path: str,
        peer: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path
        self.peer = peer
        self._client = httpx.AsyncClient(
            transport=NodeHTTPTransport(transport.open_stream, uds=socket_path),
            base_url=f"http://{peer}",
            timeout=timeout,
        )

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """Return the decoded JSON response, or None for 204 No Content."""
        where = f"{self.peer} ({self.socket_path}) GET {path}"
        response = await self._send(path, params, where)
        if response.status_code == 204:
            return None
        if response.status_code >= 400:
            raise _status_error(where, response)
        try:
            return json.loads(response.content)
        except ValueError:
            head = response.content[:80].decode("utf-8", "replace")
            raise ApiError(f"{where} returned no JSON: {head!r}") from None

    async def _send(
        self, path: str, params: dict[str, str] | None, where: str
    ) -> httpx.Response:
        # A GET is safe to send again, and the retry opens a new connection.
        for attempt in (1, 2):
            try:
                return await self._client.get(path, params=params)
            except _CLOSED_CONNECTION as exc:
                if attempt == 2:
                    raise ApiError(
                        f"{where}: the daemon closed the connection ({exc})",
                        next_step=_connect_step(),
                    ) from None
            except httpx.TimeoutException:
                raise ApiError(
                    f"{where}: no response within {self._client.timeout.read} s",
                    next_step="the daemon may hang; check its state and hung I/O",
                ) from None
            except httpx.TransportError as exc:
                raise ApiError(f"{where}: {exc}", next_step=_connect_step()) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._client.aclose()


def _connect_step() -> str:
    return "check that the process behind the socket runs (fleet view, node screen)"
