"""Registry credentials from a Docker client config (`~/.docker/config.json`).

Only the `auths` map is read: each key is a registry host (or a URL such as
`https://index.docker.io/v1/`), each value contains `auth`, the base64 of
`user:password`, or `username` and `password`. Credential helpers
(`credsStore`, `credHelpers`) are named but not run. Secrets never leave a
Credentials object: its repr and str mask them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nydus_console.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

_HUB_KEYS = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
}


class CredentialsError(ValueError):
    """A docker config that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Credentials:
    """A user name and a secret (password or identity token) for one registry."""

    username: str
    password: str = field(repr=False)
    # Where they were read, for messages: a docker config or --password-stdin.
    source: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.username} (password hidden)"


@dataclass(frozen=True)
class DockerConfig:
    """The registries with credentials, and the helpers named, of one config."""

    source: str
    auths: dict[str, Credentials] = field(default_factory=dict, repr=False)
    helpers: dict[str, str] = field(default_factory=dict)
    store: str = ""

    def registries(self) -> list[str]:
        return sorted(self.auths)

    def lookup(self, domain: str) -> Credentials | None:
        found = self.auths.get(registry_key(domain))
        if found is None:
            return None
        where = self.source
        if not where.startswith("the docker config"):
            where = f"the docker config {where}"
        return replace(found, source=where)

    def helper_for(self, domain: str) -> str:
        key = registry_key(domain)
        return self.helpers.get(key, self.store)


def registry_key(key: str) -> str:
    """Normalise an `auths` key or a domain to the bare host[:port]."""
    if key in _HUB_KEYS:
        return DEFAULT_DOMAIN
    text = key.removeprefix("https://").removeprefix("http://")
    text = text.split("/", 1)[0]
    return DEFAULT_DOMAIN if text == LEGACY_DEFAULT_DOMAIN else text


def default_config_path() -> Path:
    """Return $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, secret = decoded.partition(":")
        return Credentials(user, secret) if colon else None
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str) and name:
        return Credentials(name, password)
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials("<token>", token)
    return None


def parse_docker_config(text: str, source: str) -> DockerConfig:
    """Parse config.json text; raise CredentialsError naming `source`."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise CredentialsError(
            f"{source} is not valid JSON (line {exc.lineno}): fix or remove it"
        ) from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{source} is not a JSON object: fix or remove it")
    auths: dict[str, Credentials] = {}
    raw_auths = data.get("auths")
    for key, entry in (raw_auths if isinstance(raw_auths, dict) else {}).items():
        creds = _entry_credentials(entry)
        if creds is not None:
            auths[registry_key(str(key))] = creds
    raw_helpers = data.get("credHelpers")
    helpers = {
        registry_key(str(k)): str(v)
        for k, v in (raw_helpers if isinstance(raw_helpers, dict) else {}).items()
    }
    store = data.get("credsStore")
    return DockerConfig(source, auths, helpers, store if isinstance(store, str) else "")


def load_docker_config(path: Path | None = None) -> DockerConfig:
    """Read the local docker config; a missing file has no credentials."""
    path = path or default_config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return DockerConfig(str(path))
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    return parse_docker_config(text, str(path))
