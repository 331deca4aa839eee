"""Read manifests from a registry over the distribution HTTP API.

Requests go to `https://HOST/v2/...` (plain HTTP only when asked for). A 401
response names how to log in in its WWW-Authenticate header: `Basic`, or
`Bearer realm=...,service=...,scope=...`, for which a token is fetched from
the realm, with the credentials when there are any, and sent on the retry.
URLs are built from a checked ImageReference only, path segment by segment.
Error messages name the caller's own controls (command-line options or a
screen's keys) through Controls.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from nydus_console.images.credentials import Credentials
from nydus_console.images.reference import ImageReference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
TIMEOUT_SECONDS = 20.0
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class RegistryError(Exception):
    """The registry could not be read; `kind` is not_found, denied or failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Controls:
    """How the user reaches plain HTTP and logs in, as error messages say it."""

    # Completes "for a registry on plain HTTP, ...".
    insecure: str = "give --insecure"
    # Completes "log in with `docker login HOST`...".
    login: str = " or pass --username and --password-stdin"


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


@dataclass(frozen=True)
class Fetched:
    """A manifest document with its media type and digest."""

    media_type: str
    digest: str
    document: dict[str, Any]
    size: int


def parse_challenge(header: str) -> Challenge:
    """Parse a WWW-Authenticate header value into scheme and parameters."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


class RegistryClient:
    """Reads one registry; keeps the token or basic credentials it learned."""

    def __init__(
        self,
        api_host: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        client: httpx.AsyncClient | None = None,
        controls: Controls | None = None,
    ) -> None:
        self.api_host = api_host
        self.scheme = "http" if insecure else "https"
        self.credentials = credentials
        self.controls = controls or Controls()
        self._client = client or httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS, follow_redirects=False
        )
        self._authorization = ""

    async def close(self) -> None:
        await self._client.aclose()

    def url(self, path: str, *segments: str) -> httpx.URL:
        """Return the API URL of `/v2/<path>/<segments...>` with each part encoded."""
        base = httpx.URL(f"{self.scheme}://{self.api_host}/")
        quoted = "/".join(_quote_segment(s) for s in segments)
        encoded = "/".join(_quote_segment(part) for part in path.split("/"))
        return base.copy_with(raw_path=f"/v2/{encoded}/{quoted}".encode())

    async def manifest(self, ref: ImageReference, reference: str = "") -> Fetched:
        """Fetch a manifest or index by tag or digest."""
        url = self.url(ref.path, "manifests", reference or ref.reference)
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        response = await self._get(url, headers, ref)
        what = f"{ref.name}:{reference or ref.reference}"
        if response.status_code == 404:
            raise RegistryError("not_found", f"{what} was not found on {self.api_host}")
        _raise_for_status(self, response, what)
        return _fetched(response, what)

    async def referrers(self, ref: ImageReference, digest: str) -> Fetched | None:
        """Return the referrers index of a digest, or None without that API."""
        url = self.url(ref.path, "referrers", digest)
        response = await self._get(url, {"Accept": OCI_INDEX}, ref)
        if response.status_code in (404, 405):
            return None
        _raise_for_status(self, response, f"referrers of {digest}")
        return _fetched(response, f"referrers of {digest}")

    async def _get(
        self, url: httpx.URL, headers: dict[str, str], ref: ImageReference
    ) -> httpx.Response:
        response = await self._send(url, headers)
        if response.status_code != 401:
            return response
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if not await self._authorize(challenge, ref):
            return response
        return await self._send(url, headers)

    async def _send(self, url: httpx.URL, headers: dict[str, str]) -> httpx.Response:
        if self._authorization:
            headers = {**headers, "Authorization": self._authorization}
        try:
            return await self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError("failed", _network_message(self, exc)) from None

    async def _authorize(self, challenge: Challenge, ref: ImageReference) -> bool:
        if challenge.scheme == "basic":
            if self.credentials is None or self._authorization.startswith("Basic"):
                return False
            pair = f"{self.credentials.username}:{self.credentials.password}"
            self._authorization = "Basic " + base64.b64encode(pair.encode()).decode()
            return True
        if challenge.scheme == "bearer" and challenge.params.get("realm"):
            self._authorization = "Bearer " + await self._token(challenge, ref)
            return True
        return False

    async def _token(self, challenge: Challenge, ref: ImageReference) -> str:
        realm = httpx.URL(challenge.params["realm"])
        if realm.scheme not in ("https", "http") or (
            realm.scheme == "http" and self.scheme == "https"
        ):
            raise RegistryError(
                "failed",
                f"the token realm {str(realm)!r} of {self.api_host} is not an "
                f"https URL; for a registry you trust on plain HTTP, "
                f"{self.controls.insecure}",
            )
        params = {
            "scope": challenge.params.get("scope") or f"repository:{ref.path}:pull"
        }
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        auth = None
        if self.credentials is not None:
            auth = httpx.BasicAuth(self.credentials.username, self.credentials.password)
        try:
            response = await self._client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryError("failed", _network_message(self, exc)) from None
        if response.status_code in (401, 403):
            who = f"the token server {realm.host}"
            denied = _denied(self, who, ref.path, _status(response))
            raise RegistryError("denied", denied)
        if response.status_code != 200:
            raise RegistryError(
                "failed", f"the token server {realm.host} returned {_status(response)}"
            )
        return _token_from(response, realm.host)


def _token_from(response: httpx.Response, host: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    token = (
        (body.get("token") or body.get("access_token"))
        if isinstance(body, dict)
        else ""
    )
    if not isinstance(token, str) or not token:
        raise RegistryError("failed", f"the token server {host} sent no token")
    return token


def _quote_segment(text: str) -> str:
    return httpx.URL(path="/" + text).raw_path.decode()[1:].replace("/", "%2F")


def _status(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _denied(client: RegistryClient, who: str, what: str, status: str) -> str:
    """Say who denied access to what, with whose credentials; never the secret."""
    credentials = client.credentials
    login = f"`docker login {client.api_host}`{client.controls.login}"
    if credentials is None:
        return (
            f"{who} denied access to {what} ({status}) with no credentials: "
            f"log in with {login}"
        )
    source = credentials.source or "the credentials given"
    return (
        f"{who} rejected the credentials for {credentials.username} from "
        f"{source} ({status} for {what}): check that user and password, or log "
        f"in again with {login}"
    )


def _raise_for_status(
    client: RegistryClient, response: httpx.Response, what: str
) -> None:
    host = client.api_host
    status = _status(response)
    if response.status_code == 403 and client.credentials is not None:
        user = client.credentials.username
        raise RegistryError(
            "denied",
            f"{host} denied {user} access to {what} ({status}): the registry "
            "accepted the credentials but does not let that user read it",
        )
    if response.status_code in (401, 403):
        raise RegistryError("denied", _denied(client, host, what, status))
    if response.status_code != 200:
        raise RegistryError("failed", f"{host} returned {status} for {what}")


def _fetched(response: httpx.Response, what: str) -> Fetched:
    body = response.content
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError("failed", f"{what} is larger than 4 MiB; not a manifest")
    try:
        document = json.loads(body)
    except ValueError:
        raise RegistryError("failed", f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise RegistryError("failed", f"{what} is not a JSON object")
    media_type = str(
        document.get("mediaType")
        or response.headers.get("content-type", "").split(";")[0].strip()
    )
    digest = response.headers.get("docker-content-digest", "")
    if not digest:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return Fetched(media_type, digest, document, len(body))


def _network_message(client: RegistryClient, exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    hint = ""
    if client.scheme == "https" and "SSL" in text.upper():
        hint = f"; for a registry on plain HTTP, {client.controls.insecure}"
    elif client.scheme == "http":
        hint = "; check the host and port"
    return f"cannot reach {client.api_host} over {client.scheme.upper()}: {text}{hint}"
