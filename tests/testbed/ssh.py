"""SSH client credentials, known_hosts and inventory files shared by both tiers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientKey:
    """An ed25519 key pair for the test client, without a passphrase."""

    private_path: Path

    @property
    def public_path(self) -> Path:
        return self.private_path.with_name(self.private_path.name + ".pub")

    @property
    def public_line(self) -> str:
        return self.public_path.read_text().strip()

    @classmethod
    def generate(cls, directory: Path, name: str = "client_ed25519") -> ClientKey:
        path = directory / name
        # ssh-keygen prompts before overwriting, so remove an old pair first.
        path.unlink(missing_ok=True)
        path.with_name(name + ".pub").unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nc-testbed-client"]
            + ["-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return cls(path)


def known_hosts_host(address: str, port: int) -> str:
    """Return the host field OpenSSH uses in known_hosts for address and port."""
    if port == 22:
        return address
    return f"[{address}]:{port}"


def write_known_hosts(path: Path, entries: Iterable[tuple[str, int, str]]) -> Path:
    """Write one ``<host> <key>`` line per (address, port, public key line)."""
    lines = []
    for address, port, key in entries:
        key_type, key_data = key.split()[:2]
        lines.append(f"{known_hosts_host(address, port)} {key_type} {key_data}\n")
    path.write_text("".join(lines))
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # JSON string escapes are a subset of TOML basic-string escapes.
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"unsupported inventory value {value!r}")


@dataclass(frozen=True)
class InventoryNode:
    """One ``[nodes.<name>]`` table. ``options`` contains optional per-node keys."""

    name: str
    address: str
    port: int
    options: Mapping[str, object] | None = None


def write_inventory(
    path: Path,
    nodes: Iterable[InventoryNode],
    identity_file: Path,
    known_hosts: Path,
    user: str = "root",
) -> Path:
    """Write the console's inventory TOML for nodes.

    Per-node options the console reads include user, port, identity_file,
    jump_host, sudo, read_only, snapshotter_config, containerd_config,
    snapshotter_unit, containerd_unit, containerd_socket and log_dir.
    """
    lines = [
        "[defaults]",
        f"user = {_toml_value(user)}",
        f"identity_file = {_toml_value(str(identity_file))}",
        f"known_hosts = {_toml_value([str(known_hosts)])}",
    ]
    for node in nodes:
        lines += ["", f"[nodes.{node.name}]"]
        lines.append(f"address = {_toml_value(node.address)}")
        lines.append(f"port = {node.port}")
        for key, value in (node.options or {}).items():
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_ssh_banner(address: str, port: int, timeout: float = 1.0) -> str | None:
    """Return the server's SSH identification line, or None if it sends none.

    The probe sends its own identification string before closing, so sshd
    logs a plain disconnect rather than a banner-exchange error.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            banner = conn.recv(256).decode(errors="replace")
            conn.sendall(b"SSH-2.0-nc-testbed-probe\r\n")
    except OSError:
        return None
    return banner.strip() if banner.startswith("SSH-") else None


def wait_for_ssh(address: str, port: int, timeout: float) -> str:
    """Poll until sshd at address:port sends its banner, and return the banner.

    Raises TimeoutError naming the address when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        banner = read_ssh_banner(address, port)
        if banner is not None:
            return banner
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"sshd on {address}:{port} did not answer in {timeout} s"
            )
        time.sleep(0.05)
