"""The HTTP/1.1 client that carries metrics requests over a node's streams.

A unix-socket server in the test responds to each request with bytes the test
chooses, so every framing the client must read (Content-Length, chunked,
read to close, interim 1xx responses) and every broken answer is exercised
byte for byte.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from nydus_console.transport.base import ByteReader, ByteWriter, Endpoint
from nydus_console.transport.http import NodeHTTPTransport

Answer = Callable[[bytes], bytes | None]


class ScriptedServer:
    """Server that responds to each request on a unix socket with `answer(...)`.

    An answer of None closes the connection without a reply. Counts the
    connections accepted and keeps every request received.
    """

    def __init__(self, path: Path, answer: Answer, close_after: bool = False) -> None:
        self.path = path
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, str(self.path))

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _open(endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
    assert endpoint.path
    return await asyncio.open_unix_connection(endpoint.path)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(answer: Answer, close_after: bool = False) -> ScriptedServer:
        server = ScriptedServer(tmp_path / f"s{len(servers)}.sock", answer, close_after)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


async def _get(
    server: ScriptedServer, path: str = "/x", timeout: float = 2.0
) -> httpx.Response:
    await server.start()
    transport = NodeHTTPTransport(_open, uds=str(server.path))
    try:
        return await _send(transport, path, timeout)
    finally:
        await transport.aclose()


async def _send(
    transport: NodeHTTPTransport, path: str = "/x", timeout: float = 2.0
) -> httpx.Response:
    request = httpx.Request(
        "GET",
        f"http://localhost{path}",
        extensions={"timeout": dict.fromkeys(("connect", "read", "write"), timeout)},
    )
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


def _fixed(reply: bytes) -> Answer:
    return lambda _request: reply


async def test_content_length_body_and_request_line(serve) -> None:
    server = serve(_fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
    response = await _get(server, "/api/v1/metrics?id=%2Fmnt")
    assert response.status_code == 200
    assert response.content == b"hello"
    first_line = server.requests[0].split(b"\r\n")[0]
    assert first_line == b"GET /api/v1/metrics?id=%2Fmnt HTTP/1.1"
    assert b"\r\nHost: localhost\r\n" in server.requests[0]


async def test_chunked_body_with_extension_and_trailer(serve) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nnydu\r\n1\r\ns\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    response = await _get(serve(_fixed(reply)))
    assert response.content == b"nydus"


async def test_body_without_length_is_read_until_close(serve) -> None:
    server = serve(_fixed(b"HTTP/1.0 200 OK\r\n\r\nuntil close"), close_after=True)
    response = await _get(server)
    assert response.content == b"until close"


async def test_interim_response_and_204(serve) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    response = await _get(serve(_fixed(reply)))
    assert response.status_code == 204
    assert response.content == b""


async def test_gzip_body_is_decoded(serve) -> None:
    body = gzip.compress(b"# HELP x y\n")
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    response = await _get(serve(_fixed(reply)))
    assert response.text == "# HELP x y\n"


async def test_kept_alive_connection_is_reused(serve) -> None:
    server = serve(_fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    await server.start()
    transport = NodeHTTPTransport(_open, uds=str(server.path))
    try:
        for _ in range(3):
            assert (await _send(transport)).content == b"ok"
    finally:
        await transport.aclose()
    assert len(server.requests) == 3
    assert server.connections == 1


async def test_connection_close_answer_opens_a_new_connection(serve) -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server = serve(_fixed(reply))
    await server.start()
    transport = NodeHTTPTransport(_open, uds=str(server.path))
    try:
        await _send(transport)
        await _send(transport)
    finally:
        await transport.aclose()
    assert server.connections == 2


async def test_server_that_closes_a_kept_alive_connection(serve) -> None:
    answers = iter([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None])
    server = serve(lambda _request: next(answers))
    await server.start()
    transport = NodeHTTPTransport(_open, uds=str(server.path))
    try:
        await _send(transport)
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await _send(transport)
    finally:
        await transport.aclose()
    assert "closed a kept-alive connection" in str(caught.value)
    assert caught.value.request.url.path == "/x"


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "invalid chunk size",
        ),
    ],
)
async def test_malformed_answers_are_protocol_errors(serve, reply, named) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match=named):
        await _get(serve(_fixed(reply)))


async def test_truncated_body_is_an_error(serve) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
    server = serve(_fixed(reply), close_after=True)
    with pytest.raises(httpx.RemoteProtocolError, match="before the response ended"):
        await _get(server)


async def test_silent_server_times_out(serve, tmp_path: Path) -> None:
    server = serve(lambda _request: b"")
    with pytest.raises(httpx.ReadTimeout, match="no response in time"):
        await _get(server, timeout=0.3)


async def test_missing_socket_is_a_connect_error(tmp_path: Path) -> None:
    transport = NodeHTTPTransport(_open, uds=str(tmp_path / "absent.sock"))
    with pytest.raises(httpx.ConnectError, match="absent.sock"):
        await _send(transport)


async def test_https_is_refused_before_anything_is_opened() -> None:
    opened: list[Endpoint] = []

    async def opener(endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        opened.append(endpoint)
        raise OSError("not reached")

    transport = NodeHTTPTransport(opener)
    request = httpx.Request("GET", "https://127.0.0.1:9110/v1/metrics")
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(request)
    assert opened == []


async def test_port_requests_go_to_the_urls_host_and_port(serve) -> None:
    opened: list[Endpoint] = []
    server = serve(_fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    await server.start()

    async def opener(endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        opened.append(endpoint)
        return await asyncio.open_unix_connection(str(server.path))

    transport = NodeHTTPTransport(opener)
    request = httpx.Request("GET", "http://[::1]:9110/v1/metrics")
    await transport.handle_async_request(request)
    await transport.aclose()
    assert opened == [Endpoint(host="::1", port=9110)]
