"""The result a rule returns, before the engine adds the check's metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

from nydus_console.findings import Evidence, Status


@dataclass
class Outcome:
    """`passed` is None when the facts cannot decide the check."""

    passed: bool | None
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    next_step: str = ""
    status: Status | None = None


def ok(message: str, *evidence: Evidence) -> Outcome:
    return Outcome(True, message, list(evidence))


def problem(
    message: str,
    *evidence: Evidence,
    next_step: str = "",
    status: Status | None = None,
) -> Outcome:
    return Outcome(False, message, list(evidence), next_step, status)


def unknown(message: str, *evidence: Evidence) -> Outcome:
    return Outcome(None, message, list(evidence))


def not_applicable(message: str) -> Outcome:
    return Outcome(True, message, status=Status.SKIP)
