"""Contents of a support bundle: files per node, and what could not be collected."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nydus_console.configs import mask_secrets, may_contain_secret
from nydus_console.findings import Finding
from nydus_console.transport.base import TransportError

SCHEMA = "nydus-console/bundle/v1"
MANIFEST_NAME = "MANIFEST.json"
README_NAME = "README.md"


@dataclass
class Member:
    """One file of the bundle, relative to its node's directory.

    `diagnose` is False for what the console derived (findings, summaries):
    `nydus-console diagnose BUNDLE` reads only what came from the node.
    """

    path: str
    text: str
    about: str
    diagnose: bool = True


@dataclass
class Gap:
    """Something that could not be collected, and why."""

    item: str
    reason: str


@dataclass
class NodeBundle:
    """Everything collected from one node, or why it could not be reached."""

    name: str
    address: str
    members: list[Member] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    # Sources that were read but had nothing in them, such as the journal of
    # a unit that is not installed: listed instead of stored as empty files.
    empty: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    error: TransportError | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "unreachable"
        return "partial" if self.gaps else "complete"

    def add(self, path: str, text: str, about: str, *, diagnose: bool = True) -> None:
        self.members.append(Member(path, mask(text), about, diagnose))

    def missing(self, item: str, reason: str) -> None:
        self.gaps.append(Gap(item, reason))

    def without_entries(self, item: str, reason: str) -> None:
        self.empty.append(Gap(item, reason))


def mask(text: str) -> str:
    """Mask credentials line by line, and inside journal JSON lines too.

    A journal entry's MESSAGE is a JSON string: quotes inside it are escaped,
    so the config pattern would not see `\\"password\\": \\"...\\"` there.
    """
    if not may_contain_secret(text):
        return text
    return "\n".join(_mask_line(line) for line in text.split("\n"))


def _mask_line(line: str) -> str:
    if not may_contain_secret(line):
        return line
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return mask_secrets(line)
        return json.dumps(_mask_value(data), sort_keys=True)
    return mask_secrets(line)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked_entry(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(item) for item in value]
    return value


def _masked_entry(key: str, value: Any) -> Any:
    if isinstance(value, str) and mask_secrets(f'"{key}": "x"') != f'"{key}": "x"':
        return "***"
    return _mask_value(value)
