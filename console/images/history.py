"""Conversion history: one JSON line per run under the console's state dir.

Each line contains the time, node, options (as given, so a run can be repeated
with the same checks), the command line, outcome, exit status, stage times
and last error. Options contain no secrets: registry credentials stay in the
node's docker config and backend credentials in the backend config file,
which is named by path only.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.configs import mask_secrets
from nydus_console.images.convert import ConvertOptions


class HistoryError(ValueError):
    """No such entry, or an unreadable history file."""


def history_file() -> Path:
    return locations.state_dir() / "convert-history.jsonl"


@dataclass(frozen=True)
class HistoryEntry:
    index: int
    record: dict[str, Any]

    @property
    def options(self) -> ConvertOptions:
        return ConvertOptions.from_dict(self.record.get("options") or {})

    @property
    def node(self) -> str:
        return str(self.record.get("node", ""))


class ConvertHistory:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or history_file()

    def append(self, record: dict[str, Any]) -> None:
        entry = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **record,
        }
        if entry.get("last_error"):
            entry["last_error"] = mask_secrets(str(entry["last_error"]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def entries(self) -> list[HistoryEntry]:
        """Return every entry, numbered from 1 (oldest)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HistoryError(f"cannot read {self.path}: {exc.strerror}") from None
        found: list[HistoryEntry] = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(HistoryEntry(len(found) + 1, record))
        return found

    def get(self, index: int) -> HistoryEntry:
        entries = self.entries()
        if not entries:
            raise HistoryError(f"no conversion history yet in {self.path}")
        if not 1 <= index <= len(entries):
            raise HistoryError(
                f"--rerun {index}: the history has entries 1 to {len(entries)}; "
                "list them with `convert --history`"
            )
        return entries[index - 1]
