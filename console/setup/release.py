"""Release tarballs on this machine: checksum, then the Nydus binaries inside.

Nodes are often air-gapped, so setup never downloads anything: the operator
points at release tarballs (the nydus one with nydusd, nydus-image and
nydusify, the nydus-snapshotter one with containerd-nydus-grpc and
nydus-overlayfs). Each must have a `<tarball>.sha256` file beside it, and
its checksum must match before anything is unpacked or uploaded.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nydus_console.setup.survey import BINARIES

MAX_BINARY_BYTES = 512 * 1024 * 1024


class ReleaseError(ValueError):
    """A tarball that cannot be used; the message names it and the next step."""


@dataclass(frozen=True)
class Binary:
    """One binary unpacked from a verified tarball."""

    name: str
    path: Path
    sha256: str
    size: int
    tarball: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(tarball: Path) -> str:
    """Read the checksum from `<tarball>.sha256` (sha256sum's format)."""
    checksum = Path(f"{tarball}.sha256")
    try:
        text = checksum.read_text()
    except FileNotFoundError:
        raise ReleaseError(
            f"no checksum file {checksum} beside {tarball}: put the release's "
            ".sha256 file there (or create it with sha256sum from a trusted copy)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"cannot read {checksum}: {exc}") from None
    match = re.match(r"\s*([0-9a-fA-F]{64})\b", text)
    if not match:
        raise ReleaseError(
            f"{checksum} does not start with a sha256 checksum (64 hex digits)"
        )
    return match.group(1).lower()


def verify_tarball(tarball: Path) -> str:
    """Return the tarball's sha256 after checking it against its .sha256 file."""
    if not tarball.is_file():
        raise ReleaseError(
            f"tarball {tarball} does not exist or is not a file; give the path "
            "of a release tarball on this machine"
        )
    wanted = expected_sha256(tarball)
    actual = file_sha256(tarball)
    if actual != wanted:
        raise ReleaseError(
            f"{tarball} has sha256 {actual}, but {tarball}.sha256 says {wanted}: "
            "the tarball is corrupt or not the release it claims to be. Copy it "
            "again; nothing was uploaded or installed"
        )
    return actual


def unpack_binaries(tarballs: list[Path], workdir: Path) -> dict[str, Binary]:
    """Verify every tarball, then extract the Nydus binaries they contain."""
    for tarball in tarballs:
        verify_tarball(tarball)
    found: dict[str, Binary] = {}
    for tarball in tarballs:
        found.update(_extract(tarball, workdir))
    if not found:
        names = ", ".join(BINARIES)
        raise ReleaseError(f"none of {names} is in {', '.join(map(str, tarballs))}")
    return found


def _extract(tarball: Path, workdir: Path) -> dict[str, Binary]:
    found: dict[str, Binary] = {}
    try:
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                name = Path(member.name).name
                if name not in BINARIES or not member.isfile():
                    continue
                if member.size > MAX_BINARY_BYTES:
                    raise ReleaseError(f"{member.name} in {tarball} is too large")
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                target = workdir / name
                target.write_bytes(stream.read())
                found[name] = Binary(
                    name, target, file_sha256(target), member.size, str(tarball)
                )
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseError(f"cannot read {tarball} as a tar archive: {exc}") from None
    return found


def staging_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="nydus-console-release-")
