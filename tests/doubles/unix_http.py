"""HTTP/1.1 with JSON bodies over unix sockets, for the Nydus doubles (stdlib only).

Installed next to the doubles inside test nodes. The doubles import it as a
top-level module because Python puts the script's directory on sys.path.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
import stat
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

# A route handler gets the query parameters and the request body and returns
# (status, body). A body of None sends no content. Bytes or str are sent as
# they are, anything else as JSON.
RouteHandler = Callable[[dict[str, str], bytes], tuple[int, object]]
Routes = dict[tuple[str, str], RouteHandler]
Fallback = Callable[[str, str], tuple[int, object]]

# GET on this path returns the requests the server has served, oldest first,
# so tests can check what a client sent and through which process. No Nydus
# API uses the path. Requests for it are not recorded.
REQUEST_LOG_PATH = "/test-double/requests"
REQUEST_LOG_SIZE = 10_000


def set_process_name(name: str) -> None:
    """Give the process the kernel name (comm) of the binary it replaces in tests.

    The console finds Nydus processes by /proc/<pid>/comm. The kernel cuts the
    name to 15 bytes, as it does for the real containerd-nydus-grpc.
    """
    import ctypes

    pr_set_name = 15
    ctypes.CDLL(None).prctl(pr_set_name, name.encode()[:15] + b"\0", 0, 0, 0)


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Threaded HTTP server on a unix socket that replaces a stale socket file."""

    daemon_threads = True

    def __init__(
        self,
        path: str,
        routes: Routes,
        fallback: Fallback,
        server_header: str,
        content_type: str = "application/json",
    ) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        remove_socket(path)
        self.routes = routes
        self.fallback = fallback
        self.server_header = server_header
        self.content_type = content_type
        self.requests: deque[dict[str, object]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.requests_lock = threading.Lock()
        self.request_count = 0
        super().__init__(path, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before the answer is written (a socket
        # check, a cancelled poll) is normal; real daemons log nothing.
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def record(self, entry: dict[str, object]) -> None:
        """Append one request to the log, numbered from 1 in arrival order."""
        with self.requests_lock:
            self.request_count += 1
            self.requests.append({"seq": self.request_count, **entry})

    def request_log(self) -> list[dict[str, object]]:
        with self.requests_lock:
            return list(self.requests)


def peer_process(connection: socket.socket) -> tuple[int, str]:
    """Return the PID and kernel name (comm) of the process that connected.

    The PID comes from SO_PEERCRED, taken at connect time. The name is "" when
    the process has already exited, and both are empty values on failure.
    """
    size = struct.calcsize("3i")
    try:
        raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    except OSError:
        return 0, ""
    pid = struct.unpack("3i", raw)[0]
    try:
        with open(f"/proc/{pid}/comm") as stream:
            return pid, stream.read().strip()
    except OSError:
        return pid, ""


def remove_socket(path: str) -> None:
    """Remove path if it is a socket, or raise FileExistsError if it is another file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"file {path} is not a socket")
    os.unlink(path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: UnixHTTPServer

    def version_string(self) -> str:
        return self.server.server_header

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.peer_pid, self.peer_comm = peer_process(self.connection)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if method == "GET" and url.path == REQUEST_LOG_PATH:
            self._send(200, self.server.request_log())
            return
        self.server.record(
            {
                "method": method,
                "path": url.path,
                "query": query,
                "peer_pid": self.peer_pid,
                "peer_comm": self.peer_comm,
            }
        )
        handler = self.server.routes.get((method, url.path))
        if handler is None:
            status, payload = self.server.fallback(method, url.path)
        else:
            status, payload = handler(query, body)
        self._send(status, payload)

    def _send(self, status: int, payload: object) -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        self._dispatch("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def request_json(
    socket_path: str, method: str, path: str, timeout: float = 1.0
) -> tuple[int, object]:
    """Send one request to the server at socket_path and return (status, JSON body).

    Raises OSError when the socket cannot be reached.
    """
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        data = response.read()
    except http.client.HTTPException as error:
        raise OSError(f"HTTP error on {socket_path}: {error}") from error
    finally:
        connection.close()
    return response.status, json.loads(data) if data else None
