"""Release tarballs of test doubles, with .sha256 files, for the setup tests.

They mirror the layout of the real releases: the nydus tarball holds
nydus-static/{nydusd,nydus-image,nydusify} and the nydus-snapshotter one
bin/{containerd-nydus-grpc,nydus-overlayfs}. nydusd and containerd-nydus-grpc
are the doubles of this directory packed as executable Python zip
applications (one file each, run by the node's /usr/bin/python3); the other
three are shell scripts that answer --version.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import tempfile
import zipapp
from pathlib import Path

DOUBLES = Path(__file__).resolve().parent
MODULES = (
    "unix_http.py",
    "nydusd_double.py",
    "containerd_nydus_grpc_double.py",
    "prometheus_text.py",
    "metrics_http.py",
    "snapshotter_metrics.py",
    "snapshotter_metrics_collector.py",
)
NYDUS_TARBALL = "nydus-static-v2.4.4-linux-amd64.tgz"
SNAPSHOTTER_TARBALL = "nydus-snapshotter-v0.15.15-linux-amd64.tar.gz"


def python_binary(module: str) -> bytes:
    """Return an executable zip application that runs `module`'s main(argv)."""
    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir, "src")
        source.mkdir()
        for name in MODULES:
            (source / name).write_text((DOUBLES / name).read_text())
        (source / "__main__.py").write_text(
            f"import sys\nfrom {module} import main\nsys.exit(main(sys.argv[1:]))\n"
        )
        target = Path(workdir, "app.pyz")
        zipapp.create_archive(source, target, interpreter="/usr/bin/python3")
        return target.read_bytes()


def tool_script(name: str, version: str) -> bytes:
    return (
        f"#!/bin/sh\n# Test double of {name}: answers --version only.\n"
        f'echo "{name} {version} (test double)"\n'
    ).encode()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755
    info.mtime = 1_700_000_000
    archive.addfile(info, io.BytesIO(data))


def write_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            _add(archive, name, data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    return path


def build_release(directory: Path) -> list[Path]:
    """Write both tarballs and their .sha256 files; return the tarball paths."""
    directory.mkdir(parents=True, exist_ok=True)
    nydus = write_tarball(
        directory / NYDUS_TARBALL,
        {
            "nydus-static/nydusd": python_binary("nydusd_double"),
            "nydus-static/nydus-image": tool_script("nydus-image", "v2.4.4"),
            "nydus-static/nydusify": tool_script("nydusify", "v2.4.4"),
        },
    )
    snapshotter = write_tarball(
        directory / SNAPSHOTTER_TARBALL,
        {
            "bin/containerd-nydus-grpc": python_binary("containerd_nydus_grpc_double"),
            "bin/nydus-overlayfs": tool_script("nydus-overlayfs", "v0.15.15"),
        },
    )
    return [nydus, snapshotter]


def main(argv: list[str]) -> int:
    """Write the double release tarballs into argv[1], for trying setup by hand."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIRECTORY", file=sys.stderr)
        return 64
    for path in build_release(Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
