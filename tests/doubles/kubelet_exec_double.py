"""A kubelet double that serves the exec requests the API server forwards.

The API server forwards a pods/exec request to the kubelet of the pod's
node as `GET /exec/NAMESPACE/POD/CONTAINER?command=...&command=...` over
HTTPS, one `command` query parameter per argument. This double listens on
127.0.0.1 with a given certificate and records the request target of each
request. With `run_commands` false it responds with status 400, so the exec
fails after the API server forwarded it.

With `run_commands` true it accepts the websocket upgrade with the
v4.channel.k8s.io protocol, as a kubelet of Kubernetes 1.20 does. It checks
that the command starts with the node-shell nsenter prefix and runs the
rest on this machine with subprocess, without a shell and with an empty
standard input. Output goes to channel 1 (stdout) and 2 (stderr), and the
exit status to channel 3 as the Status object a kubelet sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from nydus_console.kube.nodeshell import NSENTER

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOL = "v4.channel.k8s.io"
STDOUT, STDERR, ERROR = 1, 2, 3


def command_of(path: str) -> list[str]:
    """Return the `command` query parameters of a request target, in order."""
    return [value for key, value in parse_qsl(urlsplit(path).query) if key == "command"]


def frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """Encode one unmasked server websocket frame (RFC 6455)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def exit_status_message(code: int) -> dict[str, Any]:
    """Return the Status a kubelet writes on the error channel at exit."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


class KubeletExecDouble:
    """HTTPS listener on 127.0.0.1 that records, and may run, exec requests."""

    def __init__(self, cert: Path, key: Path, *, run_commands: bool = False) -> None:
        self.paths: list[str] = []
        self.run_commands = run_commands
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                double.paths.append(self.path)
                upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
                if double.run_commands and upgrade:
                    double.serve_exec(self)
                    return
                body = b"kubelet double: exec is not carried out\n"
                self.send_response(400)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815 (SPDY exec is a POST)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> KubeletExecDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commands(self) -> list[list[str]]:
        """Return the `command` parameters of each recorded request, in order."""
        return [command_of(path) for path in self.paths]

    def serve_exec(self, handler: BaseHTTPRequestHandler) -> None:
        """Accept the websocket, run the command and send its output and status."""
        accept_websocket(handler)
        status, out, err = run_after_nsenter(command_of(handler.path))
        connection: socket.socket = handler.connection
        for channel, data in ((STDOUT, out), (STDERR, err)):
            if data:
                connection.sendall(frame(bytes([channel]) + data))
        connection.sendall(frame(bytes([ERROR]) + json.dumps(status).encode()))
        connection.sendall(frame(struct.pack("!H", 1000), opcode=0x8))
        handler.close_connection = True


def accept_websocket(handler: BaseHTTPRequestHandler) -> None:
    """Send the 101 response that accepts the upgrade with the v4 protocol."""
    key = handler.headers.get("Sec-WebSocket-Key", "")
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()
    handler.send_response_only(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", base64.b64encode(digest).decode())
    handler.send_header("Sec-WebSocket-Protocol", PROTOCOL)
    handler.end_headers()
    handler.wfile.flush()


def run_after_nsenter(command: list[str]) -> tuple[dict[str, Any], bytes, bytes]:
    """Run the command after the nsenter prefix; return status, stdout, stderr."""
    prefix = list(NSENTER)
    if command[: len(prefix)] != prefix:
        status = {"metadata": {}, "status": "Failure", "message": "no nsenter"}
        return status, b"", b"kubelet double: the command lacks the nsenter prefix\n"
    done = subprocess.run(
        command[len(prefix) :],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    return exit_status_message(done.returncode), done.stdout, done.stderr
