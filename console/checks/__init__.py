"""The check engine: data from assets/checks.toml, one rule per check id."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from nydus_console.checks.context import CheckContext
from nydus_console.checks.outcome import Outcome
from nydus_console.checks.rules import RULES
from nydus_console.facts import NodeFacts
from nydus_console.findings import Finding, Status
from nydus_console.inventory import NodePaths


@dataclass(frozen=True)
class CheckDefinition:
    id: str
    title: str
    severity: Status
    next_step: str = ""
    runbook: str = ""
    requires: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    # Fails as a consequence of most other problems; named after them.
    symptom: bool = False


@cache
def load_checks() -> tuple[CheckDefinition, ...]:
    """Read the check definitions shipped in the package."""
    text = resources.files("nydus_console.assets").joinpath("checks.toml").read_text()
    return tuple(
        CheckDefinition(
            id=entry["id"],
            title=entry["title"],
            severity=Status(entry["severity"]),
            next_step=entry.get("next_step", ""),
            runbook=entry.get("runbook", ""),
            requires=tuple(entry.get("requires", ())),
            description=entry.get("description", ""),
            symptom=bool(entry.get("symptom", False)),
        )
        for entry in tomllib.loads(text)["check"]
    )


@cache
def symptom_checks() -> frozenset[str]:
    """Return the ids of the checks marked as symptoms of other problems."""
    return frozenset(check.id for check in load_checks() if check.symptom)


def run_checks(facts: NodeFacts, paths: NodePaths) -> list[Finding]:
    """Evaluate every check against one node's facts, in definition order."""
    context = CheckContext(facts, paths)
    findings: dict[str, Finding] = {}
    # For a skipped check, the checks that really failed beneath it.
    causes: dict[str, list[str]] = {}
    for check in load_checks():
        blocked = [r for r in check.requires if findings[r].status != Status.OK]
        if blocked:
            roots: list[str] = []
            for required in blocked:
                roots += causes.get(required, [required])
            causes[check.id] = list(dict.fromkeys(roots))
            findings[check.id] = _skipped(check, causes[check.id], findings)
            continue
        outcome = RULES[check.id](context)
        findings[check.id] = _finding(check, outcome)
    return list(findings.values())


def _skipped(
    check: CheckDefinition, blocked: list[str], findings: dict[str, Finding]
) -> Finding:
    titles = ", ".join(findings[r].title for r in blocked)
    return Finding(
        check.id, check.title, Status.SKIP, f"not checked: {titles} did not pass"
    )


def _finding(check: CheckDefinition, outcome: Outcome) -> Finding:
    if outcome.status is Status.SKIP:
        status = Status.SKIP
    elif outcome.passed is True:
        status = Status.OK
    elif outcome.passed is None:
        status = Status.UNKNOWN
    else:
        status = outcome.status or check.severity
    next_step = ""
    if status not in (Status.OK, Status.SKIP):
        next_step = outcome.next_step or check.next_step
    return Finding(
        check=check.id,
        title=check.title,
        status=status,
        message=outcome.message,
        evidence=outcome.evidence,
        next_step=next_step,
        runbook=check.runbook if status in (Status.FAIL, Status.WARN) else "",
    )


def check_reference() -> str:
    """Render docs/checks.md from the check definitions."""
    lines = [
        "# Check reference",
        "",
        "Generated from `assets/checks.toml` by `scripts/gen-check-reference`; edit",
        "the TOML, not this page. Checks run in this order. A check whose",
        "prerequisite did not pass is reported as `skip`.",
        "",
        "Statuses: `ok`; `warn` and `fail` (the severity a failed check gets);",
        "`unknown` when the facts cannot decide (for example a file this login may",
        "not read); `skip`. A check marked as a symptom fails as a consequence of",
        "most other problems; among problems of the same severity the fleet",
        "screen and the node screen name the other findings first.",
        "",
    ]
    for check in load_checks():
        lines += [
            f"## {check.title}",
            "",
            f"`{check.id}`, {check.severity} on failure.",
        ]
        if check.requires:
            needs = ", ".join(f"`{r}`" for r in check.requires)
            lines[-1] += f" Needs {needs}."
        if check.symptom:
            lines[-1] += " A symptom of other problems."
        lines += ["", check.description, ""]
        if check.next_step:
            lines += [f"Next step: {check.next_step}", ""]
        if check.runbook:
            lines += [f"Runbook: `{check.runbook}`", ""]
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "CheckDefinition",
    "check_reference",
    "load_checks",
    "run_checks",
    "symptom_checks",
    "RULES",
]
