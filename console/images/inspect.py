"""Inspect an image in its registry: media type, platforms, layers, Nydus.

For an OCI manifest that is not itself a Nydus image, the referrers of its
digest are read to find a Nydus manifest pushed with nydusify's
`--with-referrer`. Registries without the referrers API (distribution 2.8
answers 404) get the fallback of the OCI distribution spec: an index tagged
`sha256-<hex of the digest>` that lists the referrers. The report says which
of the two it read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nydus_console.images.analysis import (
    NYDUS_ARTIFACT,
    ManifestInfo,
    PlatformEntry,
    analyse_manifest,
    index_entries,
)
from nydus_console.images.credentials import Credentials
from nydus_console.images.reference import ImageReference
from nydus_console.images.registry import (
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Controls,
    RegistryClient,
    RegistryError,
)

MAX_CHILDREN = 16
MAX_REFERRERS = 8
SCHEMA = "nydus-console/inspect/v1"


@dataclass(frozen=True)
class Referrer:
    digest: str
    artifact_type: str
    is_nydus: bool
    fs_version: str = ""


@dataclass
class ReferrerCheck:
    """The referrers of one manifest digest and where they were read."""

    subject: str
    source: str
    referrers: list[Referrer] = field(default_factory=list)

    @property
    def nydus(self) -> list[Referrer]:
        return [r for r in self.referrers if r.is_nydus]


@dataclass
class InspectReport:
    reference: str
    digest: str
    media_type: str
    size: int
    platforms: list[PlatformEntry] = field(default_factory=list)
    manifests: list[ManifestInfo] = field(default_factory=list)
    referrers: list[ReferrerCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def is_nydus(self) -> bool:
        return any(m.is_nydus for m in self.manifests)

    @property
    def has_nydus_referrer(self) -> bool:
        return any(check.nydus for check in self.referrers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "reference": self.reference,
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "is_index": self.is_index,
            "is_nydus": self.is_nydus,
            "has_nydus_referrer": self.has_nydus_referrer,
            "platforms": [asdict(p) for p in self.platforms],
            "manifests": [m.to_dict() for m in self.manifests],
            "referrers": [
                {**asdict(c), "nydus": [asdict(r) for r in c.nydus]}
                for c in self.referrers
            ],
            "notes": self.notes,
        }


async def inspect_image(
    ref: ImageReference,
    *,
    credentials: Credentials | None = None,
    insecure: bool = False,
    client: RegistryClient | None = None,
    controls: Controls | None = None,
) -> InspectReport:
    """Read the image's manifests; raise RegistryError when it cannot be read.

    `controls` words the errors with the caller's options or keys.
    """
    registry = client or RegistryClient(
        ref.api_host, credentials=credentials, insecure=insecure, controls=controls
    )
    try:
        return await _inspect(registry, ref)
    finally:
        if client is None:
            await registry.close()


async def _inspect(registry: RegistryClient, ref: ImageReference) -> InspectReport:
    top = await registry.manifest(ref)
    report = InspectReport(str(ref), top.digest, top.media_type, top.size)
    if top.media_type in INDEX_TYPES:
        report.platforms = index_entries(top.document)
        await _read_children(registry, ref, report)
    else:
        report.manifests.append(
            analyse_manifest(top.document, top.digest, top.media_type)
        )
    for manifest in report.manifests:
        if not manifest.is_nydus and manifest.media_type == OCI_MANIFEST:
            report.referrers.append(
                await check_referrers(registry, ref, manifest.digest)
            )
    if report.is_index and not report.is_nydus and top.media_type == OCI_INDEX:
        report.referrers.append(await check_referrers(registry, ref, top.digest))
    return report


async def _read_children(
    registry: RegistryClient, ref: ImageReference, report: InspectReport
) -> None:
    entries = report.platforms
    if len(entries) > MAX_CHILDREN:
        report.notes.append(
            f"the index lists {len(entries)} manifests; the first {MAX_CHILDREN} "
            "were read"
        )
    for entry in entries[:MAX_CHILDREN]:
        if entry.media_type in INDEX_TYPES:
            report.notes.append(f"nested index {entry.digest} was not read")
            continue
        try:
            child = await registry.manifest(ref, entry.digest)
        except RegistryError as exc:
            report.notes.append(f"{entry.platform} {entry.digest}: {exc}")
            continue
        info = analyse_manifest(child.document, child.digest, child.media_type)
        info.platform = entry.platform
        if entry.marked_nydus and not info.is_nydus:
            info.notes.append(
                "the index marks this manifest as Nydus but it has no bootstrap layer"
            )
        report.manifests.append(info)


async def check_referrers(
    registry: RegistryClient, ref: ImageReference, digest: str
) -> ReferrerCheck:
    """List the referrers of digest: the API, else the `sha256-<hex>` tag."""
    fetched = await registry.referrers(ref, digest)
    tag = digest.replace(":", "-", 1)
    if fetched is not None:
        check = ReferrerCheck(digest, "referrers API")
    else:
        check = ReferrerCheck(
            digest,
            f"referrers tag {tag} (the registry has no referrers API: 404)",
        )
        try:
            fetched = await registry.manifest(ref, tag)
        except RegistryError as exc:
            if exc.kind != "not_found":
                raise
            return check
    for entry in index_entries(fetched.document)[:MAX_REFERRERS]:
        check.referrers.append(await _referrer(registry, ref, entry))
    return check


async def _referrer(
    registry: RegistryClient, ref: ImageReference, entry: PlatformEntry
) -> Referrer:
    marked = entry.artifact_type == NYDUS_ARTIFACT
    try:
        child = await registry.manifest(ref, entry.digest)
    except RegistryError:
        return Referrer(entry.digest, entry.artifact_type, marked)
    info = analyse_manifest(child.document, child.digest, child.media_type)
    return Referrer(
        entry.digest, entry.artifact_type, marked or info.is_nydus, info.fs_version
    )
