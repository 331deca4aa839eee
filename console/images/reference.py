"""Image references: parse, check and normalise `[DOMAIN/]PATH[:TAG][@DIGEST]`.

The grammar is the one container registries and clients share. A domain is
dot-separated host components with an optional port, or a bracketed IPv6
address. A path is lowercase components joined by `/`. A tag is at most 128
word characters, dots and dashes, and a digest is `ALGORITHM:HEX`. A name
without a domain belongs to docker.io, whose single-component names live
under `library/`. Anything outside the grammar is rejected before it can reach
a URL or a command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
# docker.io is a name, and its registry API is served by this host.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255
MAX_REFERENCE_LENGTH = 512

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]{{1,5}})?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}


class BadReference(ValueError):
    """An image reference outside the grammar; the message names the value."""


@dataclass(frozen=True)
class ImageReference:
    """A checked reference: registry domain, repository path, tag and digest."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def api_host(self) -> str:
        """Return the host:port of the registry API for this domain."""
        return DOCKER_HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """Return what the manifest URL requests: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> ImageReference:
        """Return this repository with another tag and no digest."""
        check_tag(tag)
        return ImageReference(self.domain, self.path, tag, "")

    def with_digest(self, digest: str) -> ImageReference:
        check_digest(digest)
        return ImageReference(self.domain, self.path, "", digest)


def _fail(text: str, why: str) -> BadReference:
    return BadReference(
        f"{text!r} is not a valid image reference: {why}. Write it as "
        "[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST], such as "
        "docker.io/library/nginx:1.27 or registry.example.com:5000/team/app:v1"
    )


def check_tag(tag: str, whole: str = "") -> None:
    if not _TAG_RE.fullmatch(tag):
        raise _fail(
            whole or tag,
            f"the tag {tag!r} is wrong: a tag is 1 to 128 letters, digits, '_', "
            "'.' or '-' and starts with a letter, digit or '_'",
        )


def check_digest(digest: str, whole: str = "") -> None:
    algorithm, _, hexpart = digest.partition(":")
    size = _DIGEST_HEX.get(algorithm)
    if size is None or len(hexpart) != size or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise _fail(
            whole or digest,
            f"the digest {digest!r} is wrong: a digest is sha256: and 64 "
            "lowercase hex digits (or sha384/sha512 with 96/128)",
        )


def _split_domain(remainder: str, text: str) -> tuple[str, str]:
    first, slash, rest = remainder.partition("/")
    is_domain = slash and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    )
    if not is_domain:
        return DEFAULT_DOMAIN, remainder
    if not _DOMAIN_RE.fullmatch(first):
        raise _fail(text, f"{first!r} is not a registry host[:port]")
    port = first.rsplit(":", 1)[1] if re.search(r":[0-9]+$", first) else ""
    if port and not 0 < int(port) < 65536:
        raise _fail(text, f"port {port} is outside 1-65535")
    domain = DEFAULT_DOMAIN if first == LEGACY_DEFAULT_DOMAIN else first
    return domain, rest


def parse_reference(text: str) -> ImageReference:
    """Parse and normalise a reference; raise BadReference naming the value."""
    if not text or len(text) > MAX_REFERENCE_LENGTH:
        raise _fail(text[:80], f"it must be 1 to {MAX_REFERENCE_LENGTH} characters")
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise _fail(text, "it may only contain printable ASCII without spaces")
    remainder, at, digest = text.partition("@")
    if at:
        check_digest(digest, text)
    domain, remainder = _split_domain(remainder, text)
    path, tag = remainder, ""
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        path, tag = remainder[:colon], remainder[colon + 1 :]
        check_tag(tag, text)
    if not _PATH_RE.fullmatch(path):
        raise _fail(
            text,
            "the repository path is lowercase letters and digits, separated by "
            "'.', '_', '__' or '-' within a component and '/' between components",
        )
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(f"{domain}/{path}") > MAX_NAME_LENGTH:
        raise _fail(text, f"the name is longer than {MAX_NAME_LENGTH} characters")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageReference(domain, path, tag, digest)
