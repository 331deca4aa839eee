"""Evidence builders: the file lines and command output that decided a check."""

from __future__ import annotations

import re

from nydus_console.configs import mask_secrets
from nydus_console.facts import FileRead, UnitState
from nydus_console.findings import Evidence


def file_lines(read: FileRead, *keys: str, line: int | None = None) -> Evidence:
    """Quote the lines of a config file that set `keys` (or the given line)."""
    if read.status != "ok":
        return Evidence(read.path, [f"({read.status})"])
    lines = read.text.splitlines()
    picked: list[str] = []
    if line is not None and 0 < line <= len(lines):
        picked.append(f"{line}: {lines[line - 1]}")
    for key in keys:
        pattern = re.compile(rf"^\s*(\[.*{re.escape(key)}.*\]|{re.escape(key)}\s*=)")
        picked += [
            f"{number}: {text}"
            for number, text in enumerate(lines, 1)
            if pattern.match(text)
        ]
    if not picked:
        shown = ", ".join(keys) if keys else "the key"
        picked.append(f"({shown} not set: the default applies)")
    return Evidence(read.path, [mask_secrets(text) for text in picked])


def unit_lines(unit: UnitState | None, name: str) -> Evidence:
    source = f"systemctl show {name}"
    if unit is None:
        return Evidence(source, ["(no output)"])
    return Evidence(source, unit.evidence())


def command_lines(command: str, output: str, limit: int = 8) -> Evidence:
    lines = [line for line in output.splitlines() if line.strip()]
    return Evidence(command, [mask_secrets(line) for line in lines[:limit]])
