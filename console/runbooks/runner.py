"""The one runbook runner: step by step on a node, every action through the gate.

Before each step the runner probes the node again, so the step's check and
parameters see what earlier steps changed. The caller's hooks confirm each
needed step (run, dry-run, skip, abort) and decide after a failure (retry,
skip, abort). Progress is saved after every step, so a run that was
interrupted, or that stopped at a failure or an abort, continues at the step
where it stopped when started again. A finished run removes its state.

An abort is only taken between steps, never while an action runs, so the
report lists exactly what ran. A dry run calls no action: it probes, checks
and shows, and saves no state; a later step that runs only after an earlier
one ran is shown as needed when the earlier one would run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from nydus_console.actions import Action, ActionGate, ActionRefused, ReadOnlyRefused
from nydus_console.configedit.apply import ConfigApplier
from nydus_console.findings import Status
from nydus_console.inventory import NodeSpec
from nydus_console.probe import NodeProber
from nydus_console.runbooks.conditions import (
    Blocked,
    ConditionEvaluator,
    History,
)
from nydus_console.runbooks.model import Runbook
from nydus_console.runbooks.plan import Planner, ProbeFunction
from nydus_console.runbooks.reboot import RebootWatch, read_boot_id
from nydus_console.runbooks.report import (
    Choice,
    PlannedStep,
    RunbookHooks,
    RunReport,
    RunStatus,
    StepResult,
    StepStatus,
)
from nydus_console.runbooks.state import (
    RebootWait,
    StateStore,
    new_state,
)
from nydus_console.transport.base import Transport, TransportError

log = logging.getLogger(__name__)
# Results after which the run stops without asking: read-only mode would
# refuse every later action as well.
STOPPING = frozenset({StepStatus.ABORTED, StepStatus.REFUSED})
VERIFY_POLL_SECONDS = 1.0
OUTPUT_LIMIT = 2000


class ResumeError(Exception):
    """Saved progress that cannot be continued; the message gives the next step."""


class RunbookRunner:
    """Runs one runbook on one node."""

    def __init__(
        self,
        runbook: Runbook,
        spec: NodeSpec,
        transport: Transport,
        gate: ActionGate,
        hooks: RunbookHooks,
        *,
        params: Mapping[str, str] | None = None,
        dry_run: bool = False,
        store: StateStore | None = None,
        fresh: bool = False,
        probe: ProbeFunction | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runbook = runbook
        self.spec = spec
        self.node = spec.name
        self.transport = transport
        self.gate = gate
        self.hooks = hooks
        self.params = dict(params or {})
        self.dry_run = dry_run
        self.store = store if store is not None else StateStore()
        self.fresh = fresh
        self.sleep = sleep
        self.clock = clock
        self.history = History()
        self.unreachable = False
        self.applier = ConfigApplier(
            gate, spec, transport, confirmed_by="", clock=clock
        )
        self.evaluator = ConditionEvaluator(transport, self.applier, self.history)
        prober = probe or NodeProber(spec, transport).probe
        self.planner = Planner(
            runbook, spec, transport, self.evaluator, prober, self.params
        )
        self.state = new_state(runbook.id, spec.name, runbook.digest, self.params)

    async def plan(self) -> list[PlannedStep]:
        """Resolve every step against the node as it is now; run nothing."""
        view = await self.planner.view(full=True)
        return [
            await self.planner.plan_step(index, view)
            for index in range(len(self.runbook.steps))
        ]

    # -- the run -------------------------------------------------------------------

    async def run(self) -> RunReport:
        """Run the steps from the saved position, or from the first.

        Errors of the node, refused actions and saved progress that cannot be
        resumed are reported in the RunReport instead of raised.
        """
        report = RunReport(self.node, self.runbook.id)
        try:
            self._start(report)
        except ResumeError as exc:
            report.status = RunStatus.NOT_STARTED
            report.message = str(exc)
            return report
        absent = await self._snapshotter_absent()
        if absent:
            report.status = RunStatus.NOT_STARTED
            report.message = absent
            return report
        index = self.state.next_index
        full = True
        while index < len(self.runbook.steps):
            result, stop = await self._run_step(index, full)
            full = self.runbook.steps[index].reboot
            self._record(report, index, result, stop)
            if stop:
                return self._stopped(report, index, result)
            index += 1
        report.status = RunStatus.COMPLETED
        if not self.dry_run:
            self.store.clear(self.runbook.id, self.node)
        self._audit_end(report)
        return report

    async def _snapshotter_absent(self) -> str:
        """Say why no runbook applies when the node has no nydus-snapshotter.

        Every runbook repairs an installed snapshotter; on a bare node its
        steps would write drop-ins and configs for a unit that does not exist.
        """
        try:
            view = await self.planner.view()
        except TransportError:
            return ""  # the first step reports the node's error
        installed = view.findings.get("snapshotter.installed")
        if installed is None or installed.status is not Status.FAIL:
            return ""
        return (
            f"nydus-snapshotter is not installed on {self.node}, so "
            f"{self.runbook.id} does not apply; set the node up first: "
            f"nydus-console setup --node {self.node}"
        )

    def _audit_end(self, report: RunReport) -> None:
        """Audit how a run ended, so a report can tell a failed run from a good one.

        A refusal by read-only mode is audited by the gate already.
        """
        if self.dry_run or report.status in (RunStatus.REFUSED, RunStatus.NOT_STARTED):
            return
        fields: dict[str, object] = {"outcome": str(report.status)}
        if report.stopped_at:
            fields["stopped_at"] = report.stopped_at
        if report.message:
            fields["detail"] = report.message
        self.gate.note(self.spec, self.runbook.id, "runbook run", **fields)

    def _start(self, report: RunReport) -> None:
        if self.dry_run:
            return
        saved = self.store.load(self.runbook.id, self.node)
        if saved is None or self.fresh:
            self.store.save(self.state)
            return
        if saved.digest != self.runbook.digest:
            raise ResumeError(
                f"{self.runbook.source} changed since the saved run on {self.node} "
                f"stopped at step {saved.next_index + 1}; start over with --fresh"
            )
        self.state = saved
        self.params = {**saved.params, **self.params}
        self.planner.operator_values = self.params
        self.history.ran[:] = saved.ran
        self.history.failed[:] = saved.failed
        report.resumed_at = saved.next_index + 1
        # The step where the run stopped runs again; its old result goes.
        done = {step.id for step in self.runbook.steps[: saved.next_index]}
        kept = [r for r in saved.results if r["step"] in done]
        saved.results[:] = kept
        report.results = [StepResult.from_dict(r) for r in kept]
        self.hooks.note(
            self.node, f"resuming {self.runbook.id} at step {report.resumed_at}"
        )

    def _record(
        self, report: RunReport, index: int, result: StepResult, stop: bool
    ) -> None:
        report.results.append(result)
        if self.dry_run:
            return
        state = self.state
        state.next_index = index if stop else index + 1
        state.results.append(result.to_dict())
        state.ran[:] = self.history.ran
        state.failed[:] = self.history.failed
        self.store.save(state)

    def _stopped(self, report: RunReport, index: int, result: StepResult) -> RunReport:
        self._fill_stopped(report, index, result)
        self._audit_end(report)
        return report

    def _fill_stopped(self, report: RunReport, index: int, result: StepResult) -> None:
        report.unreachable = self.unreachable
        report.stopped_at = index + 1
        if result.status is StepStatus.REFUSED:
            report.status = RunStatus.REFUSED
            report.message = (
                f"read-only mode refused step {index + 1}, which did not run; run "
                "the runbook again without read-only mode to continue there"
            )
            return
        aborted = result.status is StepStatus.ABORTED
        report.status = RunStatus.ABORTED if aborted else RunStatus.FAILED
        how = "aborted" if aborted else "stopped after a failure"
        report.message = (
            f"{how} at step {index + 1}; run the runbook again to continue there, "
            "or with --fresh to start over"
        )

    # -- one step ----------------------------------------------------------------

    async def _run_step(self, index: int, full: bool) -> tuple[StepResult, bool]:
        """Plan, confirm and run one step; return its result and whether to stop."""
        step = self.runbook.steps[index]
        while True:
            if self.state.reboot is not None and self.state.reboot.step == step.id:
                planned = PlannedStep(index, step, True, "the reboot was started")
                self.hooks.planned(self.node, planned)
                result = await self._finish_reboot(planned)
            else:
                planned_or_error = await self._plan(index, full)
                if isinstance(planned_or_error, StepResult):
                    return await self._failed_without_plan(index, planned_or_error)
                planned = planned_or_error
                self.hooks.planned(self.node, planned)
                decided = await self._decide(planned)
                if decided is None:
                    continue
                result = decided
            self.hooks.finished(self.node, planned, result)
            if result.status is not StepStatus.FAILED:
                return result, result.status in STOPPING
            if step.continue_on_failure or self.dry_run:
                return result, False
            choice = await self._after_failure(planned, result)
            if choice is Choice.RETRY:
                continue
            if choice is Choice.SKIP:
                return replace(result, status=StepStatus.SKIPPED), False
            return result, True

    async def _plan(self, index: int, full: bool) -> PlannedStep | StepResult:
        step = self.runbook.steps[index]
        try:
            view = await self.planner.view(full=full)
            return await self.planner.plan_step(index, view)
        except TransportError as exc:
            detail = f"the node could not be probed: {exc}"
            return StepResult(step.id, step.title, StepStatus.FAILED, detail)

    async def _failed_without_plan(
        self, index: int, result: StepResult
    ) -> tuple[StepResult, bool]:
        """Report a step whose node could not be read; the run stops there."""
        step = self.runbook.steps[index]
        planned = PlannedStep(index, step, True, "the node could not be probed")
        self.unreachable = True
        self.hooks.finished(self.node, planned, result)
        return result, True

    async def _after_failure(self, planned: PlannedStep, result: StepResult) -> Choice:
        decision = await self.hooks.after_failure(self.node, planned, result)
        return decision.choice

    async def _decide(self, planned: PlannedStep) -> StepResult | None:
        """Return the step's result, or None when the operator chose a retry."""
        step = planned.step
        if not planned.needed:
            return StepResult(
                step.id, step.title, StepStatus.NOT_NEEDED, planned.reason
            )
        if planned.blocked:
            return StepResult(step.id, step.title, StepStatus.FAILED, planned.blocked)
        if self.dry_run:
            # Steps that depend on this one having run show as they would.
            self.history.ran.append(step.id)
            return self._dry_run_result(planned)
        decision = await self.hooks.confirm(self.node, planned)
        if decision.choice is Choice.RUN:
            return await self._execute(planned, decision.confirmed_by)
        if decision.choice is Choice.DRY_RUN:
            return self._dry_run_result(planned)
        if decision.choice is Choice.RETRY:
            return None
        status = StepStatus.ABORTED
        if decision.choice is Choice.SKIP:
            status = StepStatus.SKIPPED
        return StepResult(step.id, step.title, status, f"{status} by the operator")

    def _dry_run_result(self, planned: PlannedStep) -> StepResult:
        step = planned.step
        shown = planned.command_line or (planned.action.name if planned.action else "")
        return StepResult(
            step.id,
            step.title,
            StepStatus.DRY_RUN,
            f"would run: {shown}" if shown else "would ask for the manual step",
            command=shown,
        )

    # -- running an action ---------------------------------------------------------

    async def _execute(self, planned: PlannedStep, confirmed_by: str) -> StepResult:
        step = planned.step
        if step.kind == "reboot":
            return await self._start_reboot(planned, confirmed_by)
        if step.kind != "manual":
            assert planned.action is not None, "a needed step without an action"
            outcome = await self._run_action(planned, planned.action, confirmed_by)
            if outcome.status is not StepStatus.DONE:
                return outcome
        # A manual step counts as done when the operator says so and its
        # verification, if it has one, holds.
        return await self._settle_and_verify(planned, self._done(planned))

    def _done(self, planned: PlannedStep, **fields: object) -> StepResult:
        step = planned.step
        shown = planned.command_line or (planned.action.name if planned.action else "")
        result = StepResult(step.id, step.title, StepStatus.DONE, command=shown)
        return replace(result, **fields)  # type: ignore[arg-type]

    async def _run_action(
        self, planned: PlannedStep, action: Action, confirmed_by: str
    ) -> StepResult:
        step = planned.step
        try:
            result = await self.gate.run(
                action, self.spec, self.transport, confirmed_by=confirmed_by
            )
        except ReadOnlyRefused as exc:
            return self._refused(planned, str(exc))
        except (ActionRefused, TransportError) as exc:
            self.history.failed.append(step.id)
            return StepResult(
                step.id, step.title, StepStatus.FAILED, str(exc), action.command_line
            )
        output = (result.stdout + result.stderr).strip()[-OUTPUT_LIMIT:]
        if not result.ok:
            self.history.failed.append(step.id)
            detail = result.stderr.strip()[-400:] or f"exit status {result.exit_status}"
            return StepResult(
                step.id,
                step.title,
                StepStatus.FAILED,
                detail,
                action.command_line,
                result.exit_status,
                output,
            )
        return self._done(planned, exit_status=result.exit_status, output=output)

    def _refused(self, planned: PlannedStep, detail: str) -> StepResult:
        """Report a step whose action read-only mode refused: nothing ran."""
        step = planned.step
        return StepResult(
            step.id, step.title, StepStatus.REFUSED, detail, planned.command_line
        )

    async def _settle_and_verify(
        self, planned: PlannedStep, result: StepResult
    ) -> StepResult:
        step = planned.step
        if step.settle:
            self.hooks.note(self.node, f"waiting {step.settle:g} s before verifying")
            await self.sleep(step.settle)
        problem = await self._verify(planned)
        self._audit_verification(planned, problem)
        if problem:
            self.history.failed.append(step.id)
            detail = f"verification failed: {problem}"
            return replace(result, status=StepStatus.FAILED, detail=detail)
        self.history.ran.append(step.id)
        if step.id in self.history.failed:
            self.history.failed.remove(step.id)
        return replace(result, detail=result.detail or "verified")

    def _audit_verification(self, planned: PlannedStep, problem: str) -> None:
        """Audit the outcome of a step's verification under the step's action name.

        The action's own entry has only its exit status: a restart that
        exits 0 can still leave the service down.
        """
        step = planned.step
        if not step.verify or self.dry_run:
            return
        name = planned.action.name if planned.action else ""
        self.gate.note(
            self.spec,
            name or f"{self.runbook.id}: {step.title}",
            "verification",
            runbook=self.runbook.id,
            step=step.id,
            outcome="verification failed" if problem else "verified",
            detail=problem or "every verify condition holds",
        )

    async def _verify(self, planned: PlannedStep) -> str:
        """Poll the step's verification until it holds; return "" or what failed."""
        step = planned.step
        if not step.verify:
            return ""
        self.applier.verify_seconds = step.verify_timeout
        deadline = self.clock() + step.verify_timeout
        while True:
            problem = await self._verify_once(planned)
            if not problem or self.clock() >= deadline:
                return problem
            await self.sleep(VERIFY_POLL_SECONDS)

    async def _verify_once(self, planned: PlannedStep) -> str:
        try:
            view = await self.planner.view()
        except TransportError as exc:
            return f"the node could not be probed: {exc}"
        # planned.verify holds each condition in words, parameters filled in.
        for condition, shown in zip(planned.step.verify, planned.verify, strict=True):
            try:
                holds, detail = await self.evaluator.holds(condition, view)
            except (Blocked, TransportError) as exc:
                return str(exc)
            if not holds:
                return f"{shown}: {detail}"
        return ""

    # -- reboot --------------------------------------------------------------------

    async def _start_reboot(
        self, planned: PlannedStep, confirmed_by: str
    ) -> StepResult:
        step = planned.step
        assert planned.action is not None
        try:
            boot_id = await read_boot_id(self.transport)
        except TransportError as exc:
            return StepResult(step.id, step.title, StepStatus.FAILED, str(exc))
        self.state.reboot = RebootWait(step.id, boot_id)
        self.store.save(self.state)
        try:
            result = await self.gate.run(
                planned.action, self.spec, self.transport, confirmed_by=confirmed_by
            )
        except ReadOnlyRefused as exc:
            self.state.reboot = None
            self.store.save(self.state)
            return self._refused(planned, str(exc))
        except ActionRefused as exc:
            return self._reboot_failed(planned, str(exc))
        except TransportError as exc:
            # The connection may drop while the node shuts down.
            self.hooks.note(self.node, f"connection closed by the reboot: {exc.kind}")
        else:
            if not result.ok:
                detail = result.stderr.strip() or f"exit status {result.exit_status}"
                return self._reboot_failed(planned, detail)
        return await self._finish_reboot(planned)

    def _reboot_failed(self, planned: PlannedStep, detail: str) -> StepResult:
        step = planned.step
        self.state.reboot = None
        self.store.save(self.state)
        self.history.failed.append(step.id)
        return StepResult(
            step.id, step.title, StepStatus.FAILED, detail, planned.command_line
        )

    async def _finish_reboot(self, planned: PlannedStep) -> StepResult:
        step = planned.step
        wait = self.state.reboot
        assert wait is not None
        self.hooks.note(
            self.node, f"waiting up to {step.reboot_timeout:g} s for the node to return"
        )

        def mark_down() -> None:
            wait.down_seen = True
            self.store.save(self.state)
            self.hooks.note(self.node, "the node is down")

        watch = RebootWatch(
            self.transport,
            wait.boot_id,
            wait.down_seen,
            on_down=mark_down,
            sleep=self.sleep,
            clock=self.clock,
        )
        problem = await watch.wait(step.reboot_timeout)
        if problem:
            return self._reboot_failed(planned, problem)
        self.state.reboot = None
        self.hooks.note(self.node, "the node is back")
        result = self._done(planned, detail="the node rebooted and answers again")
        return await self._settle_and_verify(planned, result)


async def run_on_nodes(
    runners: Sequence[RunbookRunner],
    parallel: int = 1,
    on_report: Callable[[RunReport], None] | None = None,
) -> list[RunReport]:
    """Run on several nodes, at most `parallel` at once, in the given order.

    After the first node that fails or is aborted no further node starts;
    nodes already running finish their run. `on_report` is given each
    node's report as soon as that node ends or is passed over.
    """
    stopped = asyncio.Event()
    slots = asyncio.Semaphore(max(1, parallel))

    async def one(runner: RunbookRunner) -> RunReport:
        async with slots:
            if stopped.is_set():
                report = RunReport(
                    runner.node,
                    runner.runbook.id,
                    message="not started: an earlier node failed or was aborted",
                )
            else:
                report = await runner.run()
            if not report.ok:
                stopped.set()
        if on_report is not None:
            on_report(report)
        return report

    return list(await asyncio.gather(*(one(runner) for runner in runners)))
