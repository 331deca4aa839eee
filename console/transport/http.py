"""HTTP/1.1 to a node's unix sockets and loopback ports, carried by its transport.

httpx builds the requests and decodes the responses; this module's transport
writes each request and reads its response over a byte stream that the node's
transport opens. Over SSH that stream is a forwarded channel
(direct-streamlocal for a unix socket, direct-tcpip for a port), opened as the
login user. Locally it is an asyncio stream.

The APIs it talks to (nydusd, the snapshotter's system controller and its
Prometheus endpoint) answer small GET requests. A general-purpose HTTP stack
costs more CPU per request than the SSH packets that carry it, so the client
here is small: one write per request, a buffered parser for the status line,
headers and a Content-Length, chunked or read-to-close body, and idle
connections kept per endpoint for the next request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from nydus_console.transport.base import ByteReader, ByteWriter, Endpoint

StreamOpener = Callable[[Endpoint], Awaitable[tuple[ByteReader, ByteWriter]]]

READ_SIZE = 65536
MAX_HEAD_BYTES = 65536
_NO_BODY_STATUS = frozenset({204, 304})


class _Closed(Exception):
    """The peer closed the stream before the response was complete."""


@dataclass
class _Head:
    status: int
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool

    def value(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass
class _Connection:
    reader: ByteReader
    writer: ByteWriter
    label: str
    idle_since: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)
    used: bool = False

    def usable(self, now: float, expiry: float) -> bool:
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        return now - self.idle_since < expiry

    async def fill(self) -> None:
        chunk = await self.reader.read(READ_SIZE)
        if not chunk:
            raise _Closed
        self.buffer += chunk

    async def read_until(self, marker: bytes, limit: int) -> bytes:
        start = 0
        while True:
            end = self.buffer.find(marker, start)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + len(marker)]
                return line
            if len(self.buffer) > limit:
                raise httpx.RemoteProtocolError(f"{self.label}: header too long")
            start = max(0, len(self.buffer) - len(marker) + 1)
            await self.fill()

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self.fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_to_eof(self) -> bytes:
        try:
            while True:
                await self.fill()
        except _Closed:
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def close(self) -> None:
        self.writer.close()


def _parse_head(raw: bytes, label: str) -> _Head:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(
            f"{label}: invalid status line {lines[0][:60]!r}"
        )
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError(
                f"{label}: invalid header line {line[:60]!r}"
            )
        headers.append((name.strip(), value.strip()))
    head = _Head(int(parts[1]), headers, keep_alive=parts[0] != b"HTTP/1.0")
    connection = (head.value(b"connection") or b"").lower()
    if connection == b"close":
        head.keep_alive = False
    elif connection == b"keep-alive":
        head.keep_alive = True
    return head


async def _read_chunked(conn: _Connection) -> bytes:
    body = bytearray()
    while True:
        size_line = await conn.read_until(b"\r\n", MAX_HEAD_BYTES)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise httpx.RemoteProtocolError(
                f"{conn.label}: invalid chunk size {size_line[:20]!r}"
            ) from None
        if size == 0:
            # Trailer fields, if any, end with an empty line.
            while await conn.read_until(b"\r\n", MAX_HEAD_BYTES):
                pass
            return bytes(body)
        body += await conn.read_exactly(size)
        await conn.read_until(b"\r\n", 2)


async def _read_body(conn: _Connection, head: _Head, method: bytes) -> bytes:
    if method == b"HEAD" or head.status in _NO_BODY_STATUS:
        return b""
    encoding = (head.value(b"transfer-encoding") or b"").lower()
    if encoding.endswith(b"chunked"):
        return await _read_chunked(conn)
    length = head.value(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(
                f"{conn.label}: invalid Content-Length {length!r}"
            )
        return await conn.read_exactly(int(length))
    head.keep_alive = False
    return await conn.read_to_eof()


async def _read_response(conn: _Connection, method: bytes) -> tuple[_Head, bytes]:
    while True:
        head = _parse_head(
            await conn.read_until(b"\r\n\r\n", MAX_HEAD_BYTES), conn.label
        )
        if not 100 <= head.status < 200:
            break
    body = await _read_body(conn, head, method)
    if conn.buffer:
        head.keep_alive = False  # bytes beyond the response: do not trust the rest
    return head, body


def _request_bytes(request: httpx.Request, body: bytes) -> bytes:
    url = request.url
    lines = [request.method.encode() + b" " + url.raw_path + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    given = request.extensions.get("timeout")
    return dict(given) if isinstance(given, dict) else {}


class NodeHTTPTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections are streams opened by a node transport.

    With `uds` set every request goes to that unix socket, whatever the URL's
    host; otherwise to the URL's host and port as seen from the node. At most
    `max_connections` requests run at once; idle connections stay open for
    `keepalive_expiry` seconds.
    """

    def __init__(
        self,
        opener: StreamOpener,
        uds: str | None = None,
        max_connections: int = 4,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._opener = opener
        self._uds = uds
        self._slots = asyncio.Semaphore(max_connections)
        self._expiry = keepalive_expiry
        self._idle: dict[Endpoint, list[_Connection]] = {}
        self._closed = False

    def _endpoint(self, request: httpx.Request) -> Endpoint:
        if self._uds:
            return Endpoint(path=self._uds)
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        return Endpoint(host=url.host, port=port)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(
                f"only http:// is carried over a node's transport, not {request.url}",
                request=request,
            )
        timeouts = _timeouts(request)
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        endpoint = self._endpoint(request)
        async with self._slots:
            conn = await self._connection(endpoint, request, timeouts.get("connect"))
            try:
                head, content = await self._exchange(conn, request, body, timeouts)
            except BaseException:
                conn.close()
                raise
        self._release(endpoint, conn, head.keep_alive)
        return httpx.Response(
            status_code=head.status,
            headers=head.headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _connection(
        self, endpoint: Endpoint, request: httpx.Request, timeout: float | None
    ) -> _Connection:
        idle = self._idle.get(endpoint, [])
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now, self._expiry):
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(self._opener(endpoint), timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"{endpoint}: connect timed out", request=request
            ) from None
        except OSError as exc:
            message = str(exc)
            if str(endpoint) not in message:
                message = f"{endpoint}: {message or 'connection failed'}"
            raise httpx.ConnectError(message, request=request) from exc
        return _Connection(reader, writer, str(endpoint))

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> tuple[_Head, bytes]:
        reused, conn.used = conn.used, True
        try:
            conn.writer.write(_request_bytes(request, body))
            await asyncio.wait_for(conn.writer.drain(), timeouts.get("write"))
        except TimeoutError:
            raise httpx.WriteTimeout(
                f"{conn.label}: write stalled", request=request
            ) from None
        except (OSError, EOFError) as exc:
            raise httpx.WriteError(f"{conn.label}: {exc}", request=request) from exc
        try:
            return await asyncio.wait_for(
                _read_response(conn, request.method.encode()), timeouts.get("read")
            )
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"{conn.label}: no response in time", request=request
            ) from None
        except _Closed:
            what = "closed a kept-alive connection" if reused else "closed the stream"
            raise httpx.RemoteProtocolError(
                f"{conn.label}: the server {what} before the response ended",
                request=request,
            ) from None
        except (OSError, EOFError) as exc:
            raise httpx.ReadError(f"{conn.label}: {exc}", request=request) from exc
        except httpx.RemoteProtocolError as exc:
            exc.request = request  # raised by the parser, which has no request
            raise

    def _release(self, endpoint: Endpoint, conn: _Connection, keep: bool) -> None:
        if not keep or self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(endpoint, []).append(conn)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
