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

DEFAULT_TIMEOUT = 5.0
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")
# Every request goes to the unix socket; the URL's host only fills the Host
# header, which neither API reads.
_HEADERS = {"Accept": "application/json", "User-Agent": "nydus-console"}


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
        self.timeout = timeout
        # Requests go straight to the transport: an AsyncClient's cookie jar,
        # redirect and auth handling cost more CPU than the request itself,
        # and a unix socket API needs none of them.
        self._transport = NodeHTTPTransport(transport.open_stream, uds=socket_path)
        self._extensions = {"timeout": dict.fromkeys(_TIMEOUT_KEYS, timeout)}

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
                return await self._request(path, params)
            except _CLOSED_CONNECTION as exc:
                if attempt == 2:
                    raise ApiError(
                        f"{where}: the daemon closed the connection ({exc})",
                        next_step=_connect_step(),
                    ) from None
            except httpx.TimeoutException:
                raise ApiError(
                    f"{where}: no response within {self.timeout:g} s",
                    next_step="the daemon may hang; check its state and hung I/O",
                ) from None
            except httpx.TransportError as exc:
                raise ApiError(f"{where}: {exc}", next_step=_connect_step()) from None
        raise AssertionError("unreachable")

    async def _request(
        self, path: str, params: dict[str, str] | None
    ) -> httpx.Response:
        request = httpx.Request(
            "GET",
            f"http://localhost{path}",
            params=params,
            headers=_HEADERS,
            extensions=self._extensions,
        )
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


def _connect_step() -> str:
    return "check that the process behind the socket runs (fleet view, node screen)"
