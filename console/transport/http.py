"""HTTP to a node's unix sockets and loopback ports, carried by its transport.

httpx sends the requests and an httpcore pool keeps connections alive. The
network backend gets each byte stream from the node's transport. Over SSH that
stream is a forwarded channel (direct-streamlocal for a unix socket,
direct-tcpip for a port), opened as the login user. Locally it is an asyncio
stream. Both have read/at_eof and write/drain/close/is_closing, so one
backend serves both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    Endpoint,
)

StreamOpener = Callable[[Endpoint], Awaitable[tuple[ByteReader, ByteWriter]]]


class _ChannelStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: ByteReader, writer: ByteWriter, label: str) -> None:
        self._reader = reader
        self._writer = writer
        self._label = label

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self._reader.read(max_bytes), timeout)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"{self._label}: no response in time") from None
        except (OSError, EOFError) as exc:
            raise httpcore.ReadError(f"{self._label}: {exc}") from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except TimeoutError:
            raise httpcore.WriteTimeout(f"{self._label}: write stalled") from None
        except (OSError, EOFError) as exc:
            raise httpcore.WriteError(f"{self._label}: {exc}") from exc

    async def aclose(self) -> None:
        self._writer.close()

    def get_extra_info(self, info: str) -> Any:
        # The pool checks whether an idle connection has data (or EOF) waiting.
        # True makes it drop a connection whose server went away.
        if info == "is_readable":
            return self._reader.at_eof() or self._writer.is_closing()
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, opener: StreamOpener) -> None:
        self._opener = opener

    async def _open(self, endpoint: Endpoint, timeout: float | None) -> _ChannelStream:
        try:
            reader, writer = await asyncio.wait_for(self._opener(endpoint), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{endpoint}: connect timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or str(endpoint)) from exc
        return _ChannelStream(reader, writer, str(endpoint))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._open(Endpoint(host=host, port=port), timeout)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._open(Endpoint(path=path), timeout)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
)


def _httpx_error(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    for core, mapped in _ERRORS:
        if isinstance(exc, core):
            return mapped(str(exc), request=request)
    return httpx.TransportError(str(exc), request=request)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpcore.TimeoutException as exc:
            raise _httpx_error(exc, self._request) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class NodeHTTPTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections are streams opened by a node transport.

    With `uds` set every request goes to that unix socket, whatever the URL's
    host; otherwise to the URL's host and port as seen from the node.
    """

    def __init__(
        self, opener: StreamOpener, uds: str | None = None, max_connections: int = 4
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_Backend(opener),
            uds=uds,
            max_connections=max_connections,
            keepalive_expiry=30.0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme,
                host=url.raw_host,
                port=url.port,
                target=url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except (httpcore.TimeoutException, httpcore.NetworkError) as exc:
            raise _httpx_error(exc, request) from exc
        except httpcore.ProtocolError as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
