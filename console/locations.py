"""Paths of the console's own files (XDG directories through platformdirs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "nydus-console"


def config_dir() -> Path:
    """Return the directory of inventory.toml and settings."""
    return Path(platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    """Return the directory of the audit log, accepted host keys and logs."""
    return Path(platformdirs.user_state_dir(APP))


def inventory_file() -> Path:
    return config_dir() / "inventory.toml"


def known_hosts_file() -> Path:
    """Return the console's own known_hosts, where accepted host keys go."""
    return state_dir() / "known_hosts"


def audit_log_file() -> Path:
    return state_dir() / "audit.jsonl"


def log_file() -> Path:
    return state_dir() / "console.log"


def expand(path: str) -> str:
    """Expand `~` and environment variables in a user-supplied path."""
    return os.path.expandvars(os.path.expanduser(path))


def missing_folder(path: Path) -> str:
    """Return why `path` cannot be written to its folder, or "" when it can.

    A given output file's folder must exist: creating it would hide a typo
    in the path. Only the console's default folders are created for it.
    """
    folder = path.absolute().parent
    if folder.is_dir():
        return ""
    if folder.exists():
        return f"{folder} (the folder of --output {path}) is not a folder"
    return (
        f"folder {folder} of --output {path} does not exist; create it first "
        f"(mkdir -p {folder}) or give a path in an existing folder"
    )
