"""A kubelet double that records the exec requests the API server forwards.

The API server forwards a pods/exec request to the kubelet of the pod's
node as `GET /exec/NAMESPACE/POD/CONTAINER?command=...&command=...` over
HTTPS, one `command` query parameter per argument. This double listens on
127.0.0.1 with a given certificate, records the request target of each
request, and responds with status 400, so the exec fails after the API
server forwarded it. It runs no command.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


class KubeletExecDouble:
    """HTTPS listener on 127.0.0.1 that records forwarded exec requests."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.paths: list[str] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                double.paths.append(self.path)
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
        return [
            [
                value
                for key, value in parse_qsl(urlsplit(path).query)
                if key == "command"
            ]
            for path in self.paths
        ]
