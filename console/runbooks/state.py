"""Saved progress of runbook runs, so that an interrupted run resumes.

One JSON file per runbook and node under `<XDG state dir>/runbooks/`. The
runner saves it after every step and before a reboot; a finished run removes
it. A run started again continues at the saved step while the runbook file
is unchanged.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nydus_console import locations


def state_directory() -> Path:
    return locations.state_dir() / "runbooks"


@dataclass
class RebootWait:
    """A reboot step in progress: the boot before it, and whether the node went down."""

    step: str
    boot_id: str
    down_seen: bool = False


@dataclass
class RunState:
    runbook: str
    node: str
    digest: str
    params: dict[str, str] = field(default_factory=dict)
    next_index: int = 0
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    reboot: RebootWait | None = None
    started: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        reboot = data.get("reboot")
        fields = {**data, "reboot": RebootWait(**reboot) if reboot else None}
        return cls(**fields)


class StateStore:
    """Reads and writes RunState files in one directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_directory()

    def path(self, runbook: str, node: str) -> Path:
        # Node names may contain ':' or '@'; the hash keeps similar names apart.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node)
        digest = hashlib.sha256(node.encode()).hexdigest()[:8]
        return self.directory / f"{runbook}--{safe}-{digest}.json"

    def load(self, runbook: str, node: str) -> RunState | None:
        try:
            text = self.path(runbook, node).read_text()
        except FileNotFoundError:
            return None
        return RunState.from_dict(json.loads(text))

    def save(self, state: RunState) -> None:
        """Write the state atomically, readable by this user only."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(state.runbook, state.node)
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(state.to_dict(), stream, indent=2)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)

    def clear(self, runbook: str, node: str) -> None:
        self.path(runbook, node).unlink(missing_ok=True)


def new_state(runbook: str, node: str, digest: str, params: dict[str, str]) -> RunState:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return RunState(runbook, node, digest, dict(params), started=now)
