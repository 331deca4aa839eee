"""Resolve a runbook's steps for one node: parameter values, need and commands.

Planning only reads the node: the probe, the checks' queries, parameter
queries and the files an edit would change. Nothing here runs an action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from nydus_console.actions import Action
from nydus_console.checks import run_checks
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.runbooks.conditions import (
    QUERY_TIMEOUT,
    Blocked,
    ConditionEvaluator,
    NodeView,
)
from nydus_console.runbooks.edits import PreparedWrite, prepare_edit, prepare_write
from nydus_console.runbooks.model import Condition, Param, Runbook, Step
from nydus_console.runbooks.params import (
    MissingParameter,
    ParamValues,
    render,
    resolve_facts,
    set_value,
    substitute,
    substitute_text,
)
from nydus_console.runbooks.report import PlannedStep
from nydus_console.transport.base import Transport

ProbeFunction = Callable[[bool], Awaitable[NodeFacts]]


class Planner:
    """Builds NodeViews and PlannedSteps for one runbook on one node."""

    def __init__(
        self,
        runbook: Runbook,
        spec: NodeSpec,
        transport: Transport,
        evaluator: ConditionEvaluator,
        probe: ProbeFunction,
        operator_values: Mapping[str, str],
    ) -> None:
        self.runbook = runbook
        self.spec = spec
        self.transport = transport
        self.evaluator = evaluator
        self.probe = probe
        self.operator_values = dict(operator_values)

    async def view(self, full: bool = False) -> NodeView:
        """Probe the node and resolve every parameter; raise TransportError."""
        facts = await self.probe(full)
        findings = {f.check: f for f in run_checks(facts, self.spec.paths)}
        values = resolve_facts(facts, self.spec)
        for param in self.runbook.params.values():
            if param.from_operator:
                self._operator_value(values, param)
        for param in self.runbook.params.values():
            if not param.from_operator:
                await self._query_value(values, param)
        return NodeView(facts, findings, values)

    def _operator_value(self, values: ParamValues, param: Param) -> None:
        given = self.operator_values.get(param.name, param.default)
        reason = f"not given; add --param {param.name}=VALUE ({param.description})"
        set_value(values, param.name, (given,) if given else (), reason)

    async def _query_value(self, values: ParamValues, param: Param) -> None:
        try:
            argv = substitute(param.query, values)
        except MissingParameter as exc:
            set_value(values, param.name, (), str(exc))
            return
        result = await self.transport.run(list(argv), timeout=QUERY_TIMEOUT)
        text = result.stdout if result.ok else ""
        found = text.splitlines() if param.split == "lines" else text.split()
        reason = f"`{' '.join(argv)}` printed nothing (exit {result.exit_status})"
        set_value(values, param.name, tuple(w for w in found if w.strip()), reason)

    async def plan_step(self, index: int, view: NodeView) -> PlannedStep:
        """Resolve one step against the view: its need, command and preview."""
        step = self.runbook.steps[index]
        planned = PlannedStep(index, step, needed=True, reason="always run")
        planned.verify = [_shown(c, view.values) for c in step.verify]
        planned.on_failure = render(step.on_failure, view.values)
        try:
            planned.needed, planned.reason = await self.need(step.check, view)
        except Blocked as exc:
            planned.blocked = f"cannot decide whether it is needed: {exc}"
        await self._resolve(planned, view)
        return planned

    async def need(
        self, conditions: tuple[Condition, ...], view: NodeView
    ) -> tuple[bool, str]:
        """Return whether every condition holds, and what decided; may raise Blocked."""
        if not conditions:
            return True, "always run"
        reasons = []
        for condition in conditions:
            holds, detail = await self.evaluator.holds(condition, view)
            if not holds:
                return False, detail
            reasons.append(detail)
        return True, "; ".join(reasons)

    async def _resolve(self, planned: PlannedStep, view: NodeView) -> None:
        step = planned.step
        try:
            if step.kind in ("command", "reboot"):
                self._resolve_command(planned, view.values)
            elif step.kind == "manual":
                planned.preview = substitute_text(step.manual, view.values)
            else:
                prepared = await self._prepare_write(step, view)
                _apply_prepared(planned, prepared, self.runbook.id)
        except MissingParameter as exc:
            planned.blocked = planned.blocked or f"cannot run: {exc}"
            planned.command = planned.command or step.command
            if step.kind == "manual":
                planned.preview = render(step.manual, view.values)

    def _resolve_command(self, planned: PlannedStep, values: ParamValues) -> None:
        step = planned.step
        argv = substitute(step.command, values)
        planned.command = argv
        name = f"{self.runbook.id}: {step.title}"
        planned.action = Action(name, argv, destructive=step.destructive)

    async def _prepare_write(self, step: Step, view: NodeView) -> PreparedWrite:
        if step.edit is not None:
            return await prepare_edit(
                step.edit, self.transport, self.spec, view.facts, view.values
            )
        assert step.write is not None
        return await prepare_write(step.write, self.transport, view.values)


def _apply_prepared(
    planned: PlannedStep, prepared: PreparedWrite, runbook_id: str
) -> None:
    planned.preview = prepared.diff
    if prepared.unchanged and planned.needed:
        planned.needed = False
        planned.reason = "the file already has this content"
    elif prepared.problem:
        planned.blocked = planned.blocked or prepared.problem
    elif prepared.action is not None:
        planned.action = replace(
            prepared.action,
            name=f"{runbook_id}: {prepared.action.name}",
            destructive=planned.step.destructive,
        )


def _shown(condition: Condition, values: ParamValues) -> str:
    return render(condition.describe(), values)
