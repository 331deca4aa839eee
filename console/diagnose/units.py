"""systemd unit files as diagnose reads them: sections, keys and line numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z][\w-]*)\s*=\s?(.*)$")
# The role a unit plays, from the program its ExecStart runs; conditions name
# units by role (`snapshotter_unit.Service.KillMode`).
_ROLES = (
    ("snapshotter_unit", re.compile(r"containerd-nydus-grpc")),
    ("containerd_unit", re.compile(r"(?:^|/)containerd(?:\s|$)")),
    ("kubelet_unit", re.compile(r"(?:^|/)kubelet(?:\s|$)")),
)


@dataclass
class UnitFile:
    """A parsed unit file; the last assignment of a key wins, as in systemd."""

    path: str
    lines: list[str]
    values: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> tuple[str | None, int | None]:
        """Return the value and 1-based line of `key` in `section`, if set."""
        found = self.values.get((section, key))
        return (found[0], found[1]) if found else (None, None)

    def line(self, number: int) -> str:
        return self.lines[number - 1]

    @property
    def role(self) -> str:
        command, _ = self.get("Service", "ExecStart")
        for role, pattern in _ROLES:
            if command and pattern.search(command.lstrip("-@!+:")):
                return role
        return "unit"


def looks_like_unit(lines: list[str]) -> bool:
    """Return whether the first lines of a file are a unit (a [Unit] or [Service])."""
    sections = {m.group(1) for m in map(_SECTION.match, lines) if m}
    return bool(sections & {"Unit", "Service"}) and bool(
        sections <= {"Unit", "Service", "Install", "Socket", "Timer", "Path"}
    )


def parse_unit(path: str, text: str) -> UnitFile:
    """Parse a unit file; continuation lines (ending in a backslash) are joined."""
    lines = text.splitlines()
    unit = UnitFile(path, lines)
    section = ""
    pending: tuple[str, str, int] | None = None
    for number, line in enumerate(lines, 1):
        if pending is not None:
            key, value, start = pending
            value = f"{value} {line.strip()}"
            pending = _store(unit, section, key, value, start)
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            continue
        if line.lstrip().startswith(("#", ";")):
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            key, value = assignment.groups()
            pending = _store(unit, section, key, value.strip(), number)
    return unit


def _store(
    unit: UnitFile, section: str, key: str, value: str, line: int
) -> tuple[str, str, int] | None:
    """Store an assignment, or return it while its value continues."""
    if value.endswith("\\"):
        return key, value[:-1].rstrip(), line
    unit.values[(section, key)] = (value, line)
    return None
