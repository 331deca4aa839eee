"""Findings: what a check concluded about a node, with its evidence."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    SKIP = "skip"


# Higher is worse; SKIP never makes a node look worse.
SEVERITY_ORDER = {
    Status.SKIP: 0,
    Status.OK: 1,
    Status.UNKNOWN: 2,
    Status.WARN: 3,
    Status.FAIL: 4,
}


@dataclass
class Evidence:
    """The command or file that decided a check, and the lines that matter."""

    source: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Finding:
    check: str
    title: str
    status: Status
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    next_step: str = ""
    runbook: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


def worst(statuses: list[Status]) -> Status:
    """Return the most severe status, or OK for an empty list."""
    return max(statuses, key=SEVERITY_ORDER.__getitem__, default=Status.OK)


def worst_finding(findings: list[Finding]) -> Finding | None:
    """Return the most severe finding that is not OK or SKIP."""
    bad = [f for f in findings if f.status not in (Status.OK, Status.SKIP)]
    return max(bad, key=lambda f: SEVERITY_ORDER[f.status], default=None)
