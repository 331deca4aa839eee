"""Test double of a registry token server (the Bearer flow of distribution).

It replaces an authorization service such as the one in front of
Docker Hub: `GET /token?service=S&scope=repository:NAME:ACTIONS` returns
`{"token": JWT, "access_token": JWT, "expires_in": 300}`. The JWT is signed
with RS256 by a key whose self-signed certificate is written to a bundle
that distribution's `auth.token.rootcertbundle` trusts, and carries that
certificate in its `x5c` header. Claims: iss, sub, aud (the service), exp,
nbf, iat, jti and `access` granting the requested actions.

Clients with valid Basic credentials get every action they ask for;
anonymous clients get `pull` only when `anonymous_pull` is set. Wrong
credentials get 401. Every request is recorded (without its password) so
tests can see which scopes a client asked for.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOKEN_SECONDS = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def self_signed(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TokenServerDouble:
    """Issue registry tokens on 127.0.0.1 from a thread of the test process."""

    def __init__(
        self,
        workdir: Path,
        *,
        service: str = "nc-test-registry",
        issuer: str = "nc-test-token-issuer",
        users: dict[str, str] | None = None,
        anonymous_pull: bool = False,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.users = dict(users or {})
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict[str, Any]] = []
        self._key, self._cert = self_signed("nc-test-token-signer")
        self.bundle = workdir / "token-root.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + TOKEN_SECONDS,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode())
            + "."
            + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + _b64url(signature)

    def grant(self, user: str, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if kind and name and allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def _user(self, header: str) -> str | None:
        """Return the user name, '' for anonymous, None for bad credentials."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == password else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                user = double._user(self.headers.get("Authorization", ""))
                double.requests.append({"path": url.path, "query": query, "user": user})
                if url.path != "/token":
                    return self._send(404, {"error": "not found"})
                if user is None:
                    return self._send(401, {"error": "bad credentials"})
                if not user and not double.anonymous_pull:
                    return self._send(401, {"error": "authentication required"})
                if query.get("service", [""])[0] != double.service:
                    return self._send(400, {"error": "unknown service"})
                access = double.grant(user, query.get("scope", []))
                token = double.sign(user, access)
                self._send(
                    200,
                    {
                        "token": token,
                        "access_token": token,
                        "expires_in": TOKEN_SECONDS,
                    },
                )

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
