"""A real container registry on 127.0.0.1: Debian's docker-registry (2.8).

``RegistryServer`` writes a config into a temporary directory and runs
``docker-registry serve`` on a free loopback port with filesystem storage.
Authentication is one of:

- ``none``: anyone may pull and push;
- ``basic``: an htpasswd file with bcrypt hashes (distribution reads only
  bcrypt entries);
- ``token``: the Bearer flow, with ``TokenServerDouble`` (tests/doubles) as
  the authorization service and its certificate as the root bundle.

``tls=True`` serves HTTPS with a self-signed certificate for 127.0.0.1;
``ca_file`` is the file to trust (``SSL_CERT_FILE`` for httpx).

``push_blob`` and ``push_manifest`` upload through the registry API with
the server's own user, so tests can build any image the registry accepts.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from doubles.registry_token_double import TokenServerDouble

from .errors import TestbedUnavailable
from .loopback import free_ports

REGISTRY = "/usr/bin/docker-registry"
START_SECONDS = 30.0
USER = "nc-pusher"
PASSWORD = "nc-push-secret-9f3a"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
NYDUS_BLOB_TYPE = "application/vnd.oci.image.layer.nydus.blob.v1"
NYDUS_BLOB = "containerd.io/snapshot/nydus-blob"
NYDUS_BOOTSTRAP = "containerd.io/snapshot/nydus-bootstrap"
NYDUS_FS_VERSION = "containerd.io/snapshot/nydus-fs-version"


def _tls_pair(workdir: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(san, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "tls.crt", workdir / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class RegistryServer:
    """One docker-registry process; use as a context manager."""

    def __init__(
        self,
        auth: str = "none",
        *,
        tls: bool = False,
        users: dict[str, str] | None = None,
        anonymous_pull: bool = False,
        workdir: Path | None = None,
    ) -> None:
        if auth not in ("none", "basic", "token"):
            raise ValueError(f"auth must be none, basic or token, not {auth!r}")
        self.auth = auth
        self.tls = tls
        self.users = {USER: PASSWORD, **(users or {})}
        self.anonymous_pull = anonymous_pull
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="nc-registry-"))
        self.port = 0
        self.ca_file: Path | None = None
        self.token_server: TokenServerDouble | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(timeout=20.0, verify=False)
        self._authorization = ""

    def __enter__(self) -> RegistryServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self) -> None:
        if shutil.which(REGISTRY) is None:
            raise TestbedUnavailable(
                f"{REGISTRY} is not installed (Debian package: docker-registry)"
            )
        self.port = free_ports(1)[0]
        config = self._config()
        path = self.workdir / "config.json"
        # The registry reads YAML, of which JSON is a subset.
        path.write_text(json.dumps(config, indent=2))
        log = (self.workdir / "registry.log").open("wb")
        self.process = subprocess.Popen(
            [REGISTRY, "serve", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_serving()

    def _config(self) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": self.host, "secret": "nc-test-secret"}
        if self.tls:
            cert, key = _tls_pair(self.workdir)
            http["tls"] = {"certificate": str(cert), "key": str(key)}
            self.ca_file = cert
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": http,
        }
        if self.auth == "basic":
            config["auth"] = {
                "htpasswd": {"realm": "nc-test", "path": self._htpasswd()}
            }
        elif self.auth == "token":
            self.token_server = TokenServerDouble(
                self.workdir, users=self.users, anonymous_pull=self.anonymous_pull
            )
            self.token_server.start()
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.bundle),
                }
            }
        return config

    def _htpasswd(self) -> str:
        lines = [
            f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()}"
            for user, pw in self.users.items()
        ]
        path = self.workdir / "htpasswd"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def _wait_until_serving(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TestbedUnavailable(
                    f"docker-registry exited with {self.process.returncode}: "
                    f"{self.log_tail()}"
                )
            try:
                response = self._client.get(f"{self.base_url}/v2/")
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if response.status_code in (200, 401):
                return
        raise TestbedUnavailable(f"docker-registry did not serve: {self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        try:
            return (self.workdir / "registry.log").read_text()[-size:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.token_server is not None:
            self.token_server.close()
        self._client.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- pushing -----------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        def send() -> httpx.Response:
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            return self._client.request(method, url, headers=sent, content=content)

        response = send()
        if response.status_code != 401:
            return response
        self._login(response.headers.get("www-authenticate", ""))
        return send()

    def _login(self, challenge: str) -> None:
        pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if challenge.lower().startswith("basic"):
            self._authorization = f"Basic {pair}"
            return
        assert self.token_server is not None, challenge
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        response = self._client.get(
            params["realm"],
            params={"service": params["service"], "scope": params.get("scope", "")},
            headers={"Authorization": f"Basic {pair}"},
        )
        response.raise_for_status()
        self._authorization = "Bearer " + response.json()["token"]

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload a blob (monolithic upload) and return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self._request("POST", f"{self.base_url}/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, (started.status_code, started.text)
        location = started.headers["location"]
        if location.startswith("/"):
            location = self.base_url + location
        separator = "&" if "?" in location else "?"
        done = self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, (done.status_code, done.text)
        return digest

    def push_manifest(self, repo: str, reference: str, document: dict[str, Any]) -> str:
        """Upload a manifest or index under a tag or digest; return its digest."""
        body = json.dumps(document, indent=2).encode()
        response = self._request(
            "PUT",
            f"{self.base_url}/v2/{repo}/manifests/{reference}",
            content=body,
            headers={"Content-Type": document["mediaType"]},
        )
        assert response.status_code == 201, (response.status_code, response.text)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def push_image(
        self,
        repo: str,
        reference: str,
        layers: list[tuple[str, bytes, dict[str, str]]],
        *,
        artifact_type: str = "",
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        docker: bool = False,
    ) -> dict[str, Any]:
        """Push a config, the layers (media type, data, annotations) and an OCI
        manifest, or a Docker schema 2 manifest with `docker`; return the
        manifest's descriptor."""
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        manifest_type, config_type = (
            (DOCKER_MANIFEST, DOCKER_CONFIG) if docker else (OCI_MANIFEST, OCI_CONFIG)
        )
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": config_type,
                "digest": self.push_blob(repo, config),
                "size": len(config),
            },
            "layers": [],
        }
        for media_type, data, notes in layers:
            layer: dict[str, Any] = {
                "mediaType": media_type,
                "digest": self.push_blob(repo, data),
                "size": len(data),
            }
            if notes:
                layer["annotations"] = notes
            document["layers"].append(layer)
        if artifact_type:
            document["artifactType"] = artifact_type
        if subject:
            document["subject"] = subject
        if annotations:
            document["annotations"] = annotations
        body = json.dumps(document, indent=2).encode()
        digest = self.push_manifest(repo, reference, document)
        descriptor = {
            "mediaType": document["mediaType"],
            "digest": digest,
            "size": len(body),
        }
        return descriptor

    def push_index(
        self,
        repo: str,
        reference: str,
        manifests: list[dict[str, Any]],
        *,
        docker: bool = False,
    ) -> dict[str, Any]:
        """Push an OCI index (a Docker manifest list with `docker`) of the
        given descriptors; return its descriptor."""
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if docker else OCI_INDEX,
            "manifests": manifests,
        }
        body = json.dumps(document, indent=2).encode()
        digest = self.push_manifest(repo, reference, document)
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(body)}

    def push_oci_image(self, repo: str, tag: str) -> dict[str, Any]:
        """Push a two-layer OCI image (layers of 900 and 3 bytes)."""
        layers = [(OCI_LAYER, b"layer-one" * 100, {}), (OCI_LAYER, b"two", {})]
        return self.push_image(repo, tag, layers)

    def push_nydus_image(
        self, repo: str, tag: str, fs_version: str = "6", **options: Any
    ) -> dict[str, Any]:
        """Push an image shaped as nydusify pushes one: two nydus blob layers
        and a last gzip layer annotated as the bootstrap with its fs version
        ('' leaves the fs version annotation out). With docker=True the
        manifest and the bootstrap layer have nydusify's default Docker
        media types."""
        bootstrap = {NYDUS_BOOTSTRAP: "true"}
        if fs_version:
            bootstrap[NYDUS_FS_VERSION] = fs_version
        layers = [
            (NYDUS_BLOB_TYPE, b"nydus-blob-1" * 50, {NYDUS_BLOB: "true"}),
            (NYDUS_BLOB_TYPE, b"nydus-blob-2", {NYDUS_BLOB: "true"}),
            (
                DOCKER_LAYER if options.get("docker") else OCI_LAYER,
                b"bootstrap-tar-gz",
                bootstrap,
            ),
        ]
        return self.push_image(repo, tag, layers, **options)
