"""Evaluate step conditions: a check (is the step needed?) and a verification.

Conditions only read: their commands are queries such as `systemctl
is-active` or `test -d`, run without the action gate, and never the step's
action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nydus_console.configedit.apply import ConfigApplier
from nydus_console.facts import NodeFacts
from nydus_console.findings import Finding, Status
from nydus_console.runbooks.model import Condition
from nydus_console.runbooks.params import (
    NONE_ON_NODE,
    MissingParameter,
    ParamValues,
    substitute,
    substitute_text,
)
from nydus_console.transport.base import Transport

QUERY_TIMEOUT = 30.0
FAILING = (Status.FAIL, Status.WARN, Status.UNKNOWN)
# A check that does not apply to the node (skip) does not keep it from passing.
PASSING = (Status.OK, Status.SKIP)


class Blocked(Exception):
    """A condition cannot be decided, because a value it needs is unknown."""


@dataclass
class NodeView:
    """The node as the runner sees it before a step: facts, findings and values."""

    facts: NodeFacts
    findings: dict[str, Finding]
    # A condition that needs a value in values.errors is blocked, not false.
    values: ParamValues


@dataclass
class History:
    """Steps of this run that ran, and those that failed."""

    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ConditionEvaluator:
    """Evaluates conditions against one node."""

    def __init__(
        self, transport: Transport, applier: ConfigApplier, history: History
    ) -> None:
        self.transport = transport
        self.applier = applier
        self.history = history

    async def holds(self, condition: Condition, view: NodeView) -> tuple[bool, str]:
        """Return whether the condition holds and what decided it; may raise Blocked."""
        try:
            if condition.source == "command":
                return await self._command(condition, view)
            if condition.source == "unit":
                return await self._unit(condition, view)
        except MissingParameter as exc:
            return self._missing(exc, view)
        if condition.source == "fact":
            return self._fact(condition, view)
        if condition.source == "checks":
            return _checks(condition, view)
        return self._steps(condition)

    def _missing(self, exc: MissingParameter, view: NodeView) -> tuple[bool, str]:
        if exc.name in view.values.errors:
            raise Blocked(str(exc)) from None
        return False, str(exc)

    async def _command(self, condition: Condition, view: NodeView) -> tuple[bool, str]:
        argv = substitute(condition.argv, view.values)
        result = await self.transport.run(list(argv), timeout=QUERY_TIMEOUT)
        test = condition.test
        shown = " ".join(argv)
        if test in ("succeeds", "fails"):
            holds = result.ok == (test == "succeeds")
            return holds, f"`{shown}` exited {result.exit_status}"
        output = result.stdout.strip()
        if test in ("prints", "prints-nothing"):
            holds = bool(output) == (test == "prints")
            return holds, f"`{shown}` printed {_excerpt(output)}"
        found = re.search(condition.value, result.stdout, re.MULTILINE) is not None
        holds = found == (test == "matches")
        return holds, f"`{shown}` printed {_excerpt(output)}"

    def _fact(self, condition: Condition, view: NodeView) -> tuple[bool, str]:
        name = condition.fact
        found = view.values.get(name)
        if not found and name in view.values.errors:
            raise Blocked(f"no value for {{{name}}}: {view.values.reason(name)}")
        reason = view.values.reason(name)
        empty = reason if reason == NONE_ON_NODE else f"none ({reason})"
        shown = " ".join(found) if found else empty
        if condition.test == "present":
            return bool(found), f"{name}: {shown}"
        if condition.test == "absent":
            return not found, f"{name}: {shown}"
        equal = found == (condition.value,)
        holds = equal == (condition.test == "equals")
        return holds, f"{name}: {shown}"

    async def _unit(self, condition: Condition, view: NodeView) -> tuple[bool, str]:
        unit = substitute_text(condition.unit, view.values)
        socket = substitute_text(condition.socket, view.values)
        problem = await self.applier.verify(unit, socket)
        return not problem, problem or f"{unit} is active and steady"

    def _steps(self, condition: Condition) -> tuple[bool, str]:
        pool = self.history.ran if condition.test == "ran" else self.history.failed
        hit = [step for step in condition.steps if step in pool]
        verb = "ran" if condition.test == "ran" else "failed"
        if hit:
            return True, f"step {', '.join(hit)} {verb}"
        infinitive = "run" if condition.test == "ran" else "fail"
        return False, f"step {' or '.join(condition.steps)} did not {infinitive}"


def _checks(condition: Condition, view: NodeView) -> tuple[bool, str]:
    states = []
    for check_id in condition.checks:
        finding = view.findings.get(check_id)
        status = finding.status if finding is not None else Status.UNKNOWN
        states.append((check_id, status, finding))
    shown = ", ".join(f"{check_id} {status}" for check_id, status, _ in states)
    if condition.test == "pass":
        return all(status in PASSING for _, status, _ in states), shown
    failing = [f for _, status, f in states if status in FAILING and f is not None]
    detail = "; ".join(f"{f.check}: {f.message}" for f in failing) or shown
    return bool(failing), detail


def _excerpt(text: str, limit: int = 120) -> str:
    if not text:
        return "nothing"
    line = " ".join(text.split())
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")
