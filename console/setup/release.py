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
import zlib
from dataclasses import dataclass
from pathlib import Path

from nydus_console.setup.survey import BINARIES

MAX_BINARY_BYTES = 512 * 1024 * 1024
# The binaries of each release tarball. A tarball that contains one binary
# of a set must contain the whole set.
RELEASE_SETS = (
    ("nydus", ("nydusd", "nydus-image", "nydusify")),
    ("nydus-snapshotter", ("containerd-nydus-grpc", "nydus-overlayfs")),
)
# Exceptions raised while reading a damaged archive: a bad gzip CRC or
# length, a truncated stream, a broken tar header.
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


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
            f"{tarball} has sha256 {actual}, but {tarball}.sha256 lists {wanted}: "
            "the tarball is corrupt or not the release it claims to be. Copy it "
            "again; nothing was uploaded or installed"
        )
    return actual


def unpack_binaries(tarballs: list[Path], workdir: Path) -> dict[str, Binary]:
    """Verify every tarball, read each whole, then extract the Nydus binaries.

    Nothing is written to `workdir` unless every tarball reads to its end
    without an error and holds its whole set of binaries.
    """
    for tarball in tarballs:
        verify_tarball(tarball)
    contents = {tarball: _read_archive(tarball) for tarball in tarballs}
    found: dict[str, Binary] = {}
    for tarball, data in contents.items():
        for name, content in data.items():
            target = workdir / name
            target.write_bytes(content)
            found[name] = Binary(
                name, target, file_sha256(target), len(content), str(tarball)
            )
    if not found:
        names = ", ".join(BINARIES)
        raise ReleaseError(f"none of {names} is in {', '.join(map(str, tarballs))}")
    return found


def _read_archive(tarball: Path) -> dict[str, bytes]:
    """Read every member to the end (so gzip's CRC is checked), then keep ours."""
    data: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball) as archive:
            for member in archive:
                data.update(_read_member(archive, member, tarball))
            _drain(archive)
    except ARCHIVE_ERRORS as exc:
        raise ReleaseError(
            f"{tarball} is damaged: {exc or type(exc).__name__}. Its checksum "
            "matches its .sha256 file, so the damage came before that file was "
            "made; copy the release and its .sha256 file again from the "
            "source. Nothing was uploaded or installed"
        ) from None
    _check_complete(tarball, set(data))
    return data


def _read_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, tarball: Path
) -> dict[str, bytes]:
    """Read `member` whole; return it when it is one of the Nydus binaries."""
    if not member.isfile():
        return {}
    name = Path(member.name).name
    wanted = name in BINARIES
    if wanted and member.size > MAX_BINARY_BYTES:
        raise ReleaseError(f"{member.name} in {tarball} is too large")
    stream = archive.extractfile(member)
    if stream is None:
        return {}
    blocks: list[bytes] = []
    size = 0
    for block in iter(lambda: stream.read(1 << 20), b""):
        size += len(block)
        if wanted:
            blocks.append(block)
    if size != member.size:
        raise EOFError(f"{member.name} ends after {size} of {member.size} bytes")
    return {name: b"".join(blocks)} if wanted else {}


def _drain(archive: tarfile.TarFile) -> None:
    """Read what follows the last member, so that gzip checks its trailer."""
    stream = archive.fileobj
    if stream is not None:
        for _ in iter(lambda: stream.read(1 << 20), b""):
            pass


def _check_complete(tarball: Path, names: set[str]) -> None:
    """Refuse a release tarball that lacks some binaries of its set."""
    for release, members in RELEASE_SETS:
        if not names & set(members):
            continue
        missing = [name for name in members if name not in names]
        if missing:
            raise ReleaseError(
                f"{tarball} contains {', '.join(sorted(names & set(members)))} of "
                f"the {release} release but not {', '.join(missing)}: it is not "
                "a complete release tarball. Give the release's own tarball"
            )


def staging_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="nydus-console-release-")
