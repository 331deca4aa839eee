"""Append-only audit log of every action that changes, or tried to change, a node."""

from __future__ import annotations

import datetime
import getpass
import json
import os
from pathlib import Path
from typing import Any

from nydus_console.configs import mask_secrets


class AuditLog:
    """One JSON object per line: time, operator, node, action, command, outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: dict[str, Any]) -> None:
        record = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "operator": _operator(),
            **entry,
        }
        # Commands, their output and error messages can quote credentials.
        for key, value in record.items():
            if isinstance(value, str):
                record[key] = mask_secrets(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        # O_APPEND keeps lines from concurrent consoles whole.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
