"""Tell from manifest documents what an image is: layers, platforms, Nydus.

A Nydus image's manifest has data blob layers of media type
`application/vnd.oci.image.layer.nydus.blob.v1` and, as its last layer, a
gzip tar layer annotated `containerd.io/snapshot/nydus-bootstrap: "true"`
whose `containerd.io/snapshot/nydus-fs-version` annotation is "5" or "6". An
index marks its Nydus manifest with the artifact type
`application/vnd.nydus.image.manifest.v1+json`, or (before nydusify 2.3.5)
with the platform OS feature `nydus.remoteimage.v1`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NYDUS_BLOB = "application/vnd.oci.image.layer.nydus.blob.v1"
NYDUS_ARTIFACT = "application/vnd.nydus.image.manifest.v1+json"
NYDUS_FEATURE = "nydus.remoteimage.v1"
BOOTSTRAP_ANNOTATION = "containerd.io/snapshot/nydus-bootstrap"
BLOB_ANNOTATION = "containerd.io/snapshot/nydus-blob"
FS_VERSION_ANNOTATION = "containerd.io/snapshot/nydus-fs-version"


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    nydus_blob: bool = False
    bootstrap: bool = False

    @property
    def role(self) -> str:
        if self.bootstrap:
            return "nydus bootstrap"
        return "nydus blob" if self.nydus_blob else ""


@dataclass
class ManifestInfo:
    """One image manifest: its layers and the Nydus facts they show."""

    digest: str
    media_type: str
    config_media_type: str
    artifact_type: str
    layers: list[Layer]
    is_nydus: bool
    fs_version: str
    notes: list[str] = field(default_factory=list)
    platform: str = ""

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_size"] = self.total_size
        for layer, entry in zip(self.layers, data["layers"], strict=True):
            entry["role"] = layer.role
        return data


@dataclass(frozen=True)
class PlatformEntry:
    """One entry of an index."""

    platform: str
    digest: str
    media_type: str
    size: int
    artifact_type: str
    marked_nydus: bool


def _annotations(item: dict[str, Any]) -> dict[str, str]:
    raw = item.get("annotations")
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_layer(item: dict[str, Any]) -> Layer:
    notes = _annotations(item)
    media_type = str(item.get("mediaType", ""))
    return Layer(
        media_type=media_type,
        digest=str(item.get("digest", "")),
        size=_int(item.get("size")),
        nydus_blob=media_type == NYDUS_BLOB or notes.get(BLOB_ANNOTATION) == "true",
        bootstrap=notes.get(BOOTSTRAP_ANNOTATION) == "true",
    )


def analyse_manifest(
    document: dict[str, Any], digest: str, media_type: str
) -> ManifestInfo:
    """Describe an image manifest and decide whether it is a Nydus image."""
    raw_layers = document.get("layers")
    items = (
        [x for x in raw_layers if isinstance(x, dict)]
        if isinstance(raw_layers, list)
        else []
    )
    layers = [parse_layer(item) for item in items]
    config = document.get("config")
    config_type = str(config.get("mediaType", "")) if isinstance(config, dict) else ""
    bootstraps = [i for i, layer in enumerate(layers) if layer.bootstrap]
    has_blobs = any(layer.nydus_blob for layer in layers)
    notes: list[str] = []
    fs_version = ""
    if bootstraps:
        annotations = _annotations(items[bootstraps[-1]])
        fs_version = annotations.get(FS_VERSION_ANNOTATION, "")
        if not fs_version:
            notes.append(
                "the bootstrap layer has no nydus-fs-version annotation, so the "
                "RAFS version is not known from the manifest"
            )
        if bootstraps[-1] != len(layers) - 1:
            notes.append("the bootstrap layer is not the last layer")
    elif has_blobs:
        notes.append(
            "nydus blob layers but no layer annotated nydus-bootstrap: the image "
            "is incomplete and cannot be mounted"
        )
    return ManifestInfo(
        digest=digest,
        media_type=media_type,
        config_media_type=config_type,
        artifact_type=str(document.get("artifactType", "")),
        layers=layers,
        is_nydus=bool(bootstraps),
        fs_version=fs_version,
        notes=notes,
    )


def platform_text(entry: dict[str, Any]) -> str:
    platform = entry.get("platform")
    if not isinstance(platform, dict):
        return "unknown"
    parts = [str(platform.get("os", "?")), str(platform.get("architecture", "?"))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def index_entries(document: dict[str, Any]) -> list[PlatformEntry]:
    """Return the manifests an index lists, with their platform."""
    raw = document.get("manifests")
    entries = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        platform = item.get("platform")
        features = platform.get("os.features") if isinstance(platform, dict) else None
        artifact = str(item.get("artifactType", ""))
        entries.append(
            PlatformEntry(
                platform=platform_text(item),
                digest=str(item.get("digest", "")),
                media_type=str(item.get("mediaType", "")),
                size=_int(item.get("size")),
                artifact_type=artifact,
                marked_nydus=artifact == NYDUS_ARTIFACT
                or (isinstance(features, list) and NYDUS_FEATURE in features),
            )
        )
    return entries
