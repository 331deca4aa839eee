"""Build and cache the Debian bookworm root filesystem that every test node boots.

The base is built once with debootstrap (47 s measured cold on a 2-core VM) and
cached
under ``${NC_CACHE:-/var/cache/nydus-console-testbed}`` as a directory plus a
``.tar.zst`` copy. Nodes boot it with ``systemd-nspawn --volatile=overlay``, so
they share one read-only base and every write lands in a per-node tmpfs.
Anything that must exist before a node boots is baked in here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import TestbedUnavailable

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"

# python3 (not python3-minimal) because the doubles need argparse, email and
# http.server, which Debian ships in libpython3.11-stdlib.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "containerd",
    "iproute2",
    "procps",
    "python3",
    "sudo",
)

# Bump when PACKAGES or anything in _bake() changes, so stale caches are ignored.
BASE_VERSION = "bookworm-3"

# Users baked into the base: "ops" has passwordless sudo, "nopw" gets a sudo
# password prompt. NOPW_PASSWORD is that user's password, for tests that
# answer the prompt.
SUDO_USER = "ops"
PROMPTING_SUDO_USER = "nopw"
NOPW_PASSWORD = "nopw-testbed-password"

# Nodes read the session's client public key from this path. The fleet
# bind-mounts the key file there read-only, so the base never changes per
# session.
NODE_AUTHORIZED_KEYS = "/etc/ssh/testbed_authorized_keys"

_SSHD_DROP_IN = f"""\
# Written by the nydus-console testbed.
MaxStartups 100
MaxSessions 64
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys {NODE_AUTHORIZED_KEYS}
"""

# The base has no host keys, so each node generates its own at boot.
# ssh-keygen -A only creates missing keys, and the overlay starts empty on
# every boot, so every boot gets new keys.
_SSH_HOSTKEY_DROP_IN = """\
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""


def cache_dir() -> Path:
    """Return the cache directory, from ``NC_CACHE`` or the default."""
    return Path(os.environ.get("NC_CACHE", "/var/cache/nydus-console-testbed"))


def _progress(message: str) -> None:
    print(f"[testbed rootfs] {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], **kwargs: object) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def _chroot(root: Path, *argv: str) -> None:
    _run(["chroot", str(root), *argv], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def _bake(root: Path) -> None:
    """Clean the debootstrap output and add the files every node needs at boot."""
    _chroot(root, "apt-get", "clean")

    # Debootstrap copies the host's /etc/hostname, which overrides --hostname.
    (root / "etc/hostname").unlink(missing_ok=True)
    # An empty machine-id plus the dbus symlink lets --uuid give each node
    # its own id. A regular dbus machine-id file would be copied to every node.
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    journal = root / "var/log/journal"
    if journal.is_dir():
        for entry in journal.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    (root / "root/.bashrc").write_text("")

    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d/testbed.conf").write_text(_SSHD_DROP_IN)
    ssh_drop_in = root / "etc/systemd/system/ssh.service.d"
    ssh_drop_in.mkdir(parents=True, exist_ok=True)
    (ssh_drop_in / "testbed-hostkeys.conf").write_text(_SSH_HOSTKEY_DROP_IN)
    # The bind mount target must exist in the read-only base.
    (root / NODE_AUTHORIZED_KEYS.lstrip("/")).write_text("")

    for user in (SUDO_USER, PROMPTING_SUDO_USER):
        _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", user)
    # sshd with UsePAM=no rejects accounts whose password field starts with
    # "!", which is useradd's default. "*" unlocks ops without any password.
    _chroot(root, "usermod", "--password", "*", SUDO_USER)
    subprocess.run(
        ["chroot", str(root), "chpasswd"],
        input=f"{PROMPTING_SUDO_USER}:{NOPW_PASSWORD}\n".encode(),
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    sudoers = root / "etc/sudoers.d/testbed"
    sudoers.write_text(
        f"{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n{PROMPTING_SUDO_USER} ALL=(ALL) ALL\n"
    )
    sudoers.chmod(0o440)


def _debootstrap(target: Path) -> None:
    _progress(f"debootstrap {SUITE} into {target} (about 45 s)")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            SUITE,
            str(target),
            MIRROR,
        ],
        stdout=subprocess.DEVNULL,
    )


def _write_tarball(root: Path, tarball: Path) -> None:
    _progress(f"writing {tarball}")
    partial = tarball.with_name(tarball.name + f".partial-{os.getpid()}")
    with partial.open("wb") as out:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["zstd", "-q", "-T0"], stdin=tar.stdout, stdout=out, check=True)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(
                f"tar of {root} failed with exit status {tar.returncode}"
            )
    partial.rename(tarball)


def _extract_tarball(tarball: Path, target: Path) -> None:
    _progress(f"extracting {tarball}")
    target.mkdir(parents=True)
    zstd = subprocess.Popen(["zstd", "-q", "-dc", str(tarball)], stdout=subprocess.PIPE)
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(target), "-xpf", "-"],
        stdin=zstd.stdout,
        check=True,
    )
    assert zstd.stdout is not None
    zstd.stdout.close()
    if zstd.wait() != 0:
        raise RuntimeError(f"zstd could not decompress {tarball}")


def ensure_base() -> Path:
    """Return the cached base directory, building or extracting it first if needed.

    The base is assembled in a temporary sibling directory and renamed into
    place, so an interrupted build never leaves a half-built base behind.
    Raises TestbedUnavailable when debootstrap is missing or fails.
    """
    cache = cache_dir()
    base = cache / BASE_VERSION
    tarball = cache / f"{BASE_VERSION}.tar.zst"
    if base.is_dir():
        return base
    if os.geteuid() != 0:
        raise TestbedUnavailable("building the node rootfs needs root")
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(f"{BASE_VERSION}.tmp-*"):
        _progress(f"removing interrupted build {stale}")
        shutil.rmtree(stale)

    temporary = cache / f"{BASE_VERSION}.tmp-{os.getpid()}"
    started = time.monotonic()
    try:
        if tarball.is_file():
            _extract_tarball(tarball, temporary)
        else:
            if shutil.which("debootstrap") is None:
                raise TestbedUnavailable(
                    "debootstrap is not installed (apt-get install debootstrap)"
                )
            try:
                _debootstrap(temporary)
            except subprocess.CalledProcessError as error:
                log = temporary / "debootstrap/debootstrap.log"
                tail = log.read_text()[-2000:] if log.is_file() else ""
                raise TestbedUnavailable(
                    f"debootstrap {SUITE} from {MIRROR} failed "
                    f"(exit status {error.returncode}):\n{tail}"
                ) from error
            _bake(temporary)
            _write_tarball(temporary, tarball)
        temporary.rename(base)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    _progress(f"base {base} ready after {time.monotonic() - started:.1f} s")
    return base


if __name__ == "__main__":
    print(ensure_base())
