"""Progress of a setup run on this machine, one JSON file per node.

Saved before the first step and after every step, removed when a run ends
well. A run that stopped (a failed step, a dropped connection) leaves it, and
the next run starts from it: the steps it finished are checked again, and
the restarts it still owed are done even though the files now match.
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
    return locations.state_dir() / "setup"


@dataclass
class SetupState:
    node: str
    steps: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: str = ""
    started: str = ""

    @property
    def pending(self) -> list[str]:
        return [step for step in self.steps if step not in self.done]


class SetupStateStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_directory()

    def path(self, node: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node)
        digest = hashlib.sha256(node.encode()).hexdigest()[:8]
        return self.directory / f"{safe}-{digest}.json"

    def load(self, node: str) -> SetupState | None:
        try:
            data: dict[str, Any] = json.loads(self.path(node).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        try:
            return SetupState(**data)
        except TypeError:
            # Written by another version of the console: start afresh.
            return None

    def save(self, state: SetupState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(state.node)
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump(asdict(state), stream, indent=2)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)

    def clear(self, node: str) -> None:
        self.path(node).unlink(missing_ok=True)


def new_state(node: str, steps: list[str]) -> SetupState:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return SetupState(node, list(steps), started=now)
