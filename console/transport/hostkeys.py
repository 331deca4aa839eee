"""Host key trust: OpenSSH known_hosts files plus the console's own file.

Checking is strict. A key that no file lists is reported with its SHA256
fingerprint and trusted only after the operator accepts it, which appends it to
the console's own known_hosts. A host whose listed key differs is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nydus_console.transport.base import HostKeyInfo

if TYPE_CHECKING:
    import asyncssh


def host_pattern(host: str, port: int) -> str:
    """Return the known_hosts host field OpenSSH writes for `host` and `port`."""
    return host if port == 22 else f"[{host}]:{port}"


class HostKeyStore:
    """Reads trusted keys from known_hosts files and records accepted keys."""

    def __init__(self, own_file: Path, extra_files: Sequence[Path] = ()) -> None:
        self.own_file = own_file
        user_file = Path(os.path.expanduser("~/.ssh/known_hosts"))
        self.files = [user_file, *extra_files, own_file]

    def load(self) -> asyncssh.SSHKnownHosts:
        """Return the keys of every known_hosts file that exists."""
        import asyncssh

        text = []
        for path in self.files:
            try:
                text.append(path.read_text())
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                continue
        return asyncssh.import_known_hosts("\n".join(text))

    def has_entry(self, host: str, addr: str, port: int) -> bool:
        """Return whether any file lists a key (of any type) for this host."""
        return self.entry_file(host, addr, port) is not None

    def entry_file(self, host: str, addr: str, port: int) -> Path | None:
        """Return the first known_hosts file that lists a key for this host."""
        import asyncssh

        for path in self.files:
            try:
                known = asyncssh.import_known_hosts(path.read_text())
            except (OSError, ValueError):
                continue
            if known.match(host, addr, port)[0]:
                return path
        return None

    def accept(self, key: HostKeyInfo) -> None:
        """Append an operator-accepted key to the console's known_hosts."""
        self.own_file.parent.mkdir(parents=True, exist_ok=True)
        line = f"{host_pattern(key.host, key.port)} {key.openssh_line}\n"
        with self.own_file.open("a") as handle:
            handle.write(line)
        os.chmod(self.own_file, 0o600)


# Preferred when fetching an unknown key for display: the ed25519 key is the one
# operators usually compare (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).
DISPLAY_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
)


def public_key_file(key_type: str) -> str:
    """Return the usual sshd public key file for a key type."""
    for prefix, name in (
        ("ssh-ed25519", "ed25519"),
        ("ecdsa", "ecdsa"),
        ("ssh-rsa", "rsa"),
        ("rsa", "rsa"),
    ):
        if key_type.startswith(prefix):
            return f"/etc/ssh/ssh_host_{name}_key.pub"
    return "/etc/ssh/ssh_host_*_key.pub"


def describe_key(host: str, port: int, key: asyncssh.SSHKey) -> HostKeyInfo:
    """Summarise a server host key for display and for storing."""
    openssh = key.export_public_key("openssh").decode().strip()
    return HostKeyInfo(
        host=host,
        port=port,
        key_type=key.get_algorithm(),
        fingerprint=key.get_fingerprint("sha256"),
        openssh_line=" ".join(openssh.split()[:2]),
    )
