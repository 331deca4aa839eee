"""HTTP/1.1 over TCP for the doubles' Prometheus endpoints, one send per response.

The responses look like those of Go's net/http with a promhttp handler:
``Content-Type: text/plain; version=0.0.4; charset=utf-8``, gzip when the
client accepts it, and ``404 page not found`` for other paths. Each
response goes out in a single write, status line, headers and body
together. Python 3.11 standard library only; it runs inside test nodes.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import socketserver
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from prometheus_text import CONTENT_TYPE

TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
NOT_FOUND_BODY = b"404 page not found\n"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Response]


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port", ":port" or "[v6]:port" like Go's net.SplitHostPort.

    Raises ValueError with a message in the style of Go's net package.
    """
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, colon, port_text = address.rpartition(":")
        if not colon:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f'address {address}: invalid port "{port_text}"')
    return host, int(port_text)


def _bind_target(host: str) -> tuple[socket.AddressFamily, str]:
    """Return the socket family and bind address for host, as Go's net.Listen picks.

    An empty host listens on every address: dual-stack IPv6 where the
    kernel has IPv6, else IPv4. A name resolves to its first IPv4 address
    when it has one.
    """
    if not host:
        return (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "")
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        return infos[0][0], str(infos[0][4][0])
    family = socket.AF_INET6 if parsed.version == 6 else socket.AF_INET
    return family, host


def metrics_handler(render_text: Callable[[], str]) -> Handler:
    """Return a handler that serves render_text() like promhttp.HandlerFor does."""

    def handle(request: Request) -> Response:
        body = render_text().encode()
        accepted = request.headers.get("Accept-Encoding", "")
        if "gzip" in [part.split(";")[0].strip() for part in accepted.split(",")]:
            return Response(
                200, CONTENT_TYPE, gzip.compress(body), (("Content-Encoding", "gzip"),)
            )
        return Response(200, CONTENT_TYPE, body)

    return handle


class TCPHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded HTTP server on a TCP address that routes by path.

    routes maps a path to its handler, which gets every method, as a
    handler registered on Go's http.ServeMux does. on_error receives the
    exceptions that handlers raise, which become 500 responses.
    """

    daemon_threads = True
    allow_reuse_address = True  # Go sets SO_REUSEADDR on listeners too

    def __init__(
        self,
        address: str,
        routes: dict[str, Handler],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        host, port = split_host_port(address)
        self.address_family, bind_host = _bind_target(host)
        self.routes = routes
        self.on_error = on_error
        super().__init__((bind_host, port), _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # Accept IPv4 too on "::", whatever net.ipv6.bindv6only is set to.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def dispatch(self, request: Request) -> Response:
        handler = self.routes.get(request.path)
        if handler is None:
            return Response(
                404,
                TEXT_CONTENT_TYPE,
                NOT_FOUND_BODY,
                (("X-Content-Type-Options", "nosniff"),),
            )
        try:
            return handler(request)
        except Exception as error:  # reported, then sent as a 500 like promhttp
            if self.on_error is not None:
                self.on_error(error)
            message = f"An error has occurred while serving metrics:\n\n{error}\n"
            return Response(500, TEXT_CONTENT_TYPE, message.encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TCPHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=url.path,
            query={key: values[-1] for key, values in parse_qs(url.query).items()},
            headers=self.headers,
            body=self.rfile.read(length) if length else b"",
        )
        self._send(self.server.dispatch(request))

    def _send(self, response: Response) -> None:
        """Write the status line, headers and body with one write call."""
        reason = HTTPStatus(response.status).phrase
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" else response.body
        self.wfile.write(head + body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815
