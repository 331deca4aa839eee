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


def problem_rank(finding: Finding, symptoms: frozenset[str]) -> tuple[int, int]:
    """Return a sort key that puts worse findings first, causes before symptoms."""
    return (-SEVERITY_ORDER[finding.status], finding.check in symptoms)


def worst_finding(
    findings: list[Finding], symptoms: frozenset[str] = frozenset()
) -> Finding | None:
    """Return the most severe finding that is not OK or SKIP.

    Of equally severe findings the first is taken, unless its check is one
    of `symptoms` and another one is not.
    """
    bad = [f for f in findings if f.status not in (Status.OK, Status.SKIP)]
    return min(bad, key=lambda f: problem_rank(f, symptoms), default=None)
