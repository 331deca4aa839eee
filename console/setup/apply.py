"""Run a setup plan step by step through the action gate.

Each step is an action (read-only mode, confirmation and the audit log apply),
is verified right after it ran, and is recorded in the node's state file, so
that a run stopped by a failure or a dropped connection continues there the
next time. File writes use the config editor's atomic write with a backup;
installed binaries keep a backup too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from nydus_console.actions import (
    Action,
    ActionGate,
    ActionRefused,
    ReadOnlyRefused,
    Upload,
    reset_and_restart,
)
from nydus_console.configedit.apply import (
    ConfigApplier,
    backup_stamp,
    sha256_text,
    write_action,
)
from nydus_console.configs import mask_secrets
from nydus_console.inventory import NodeSpec
from nydus_console.setup.files import DesiredFile
from nydus_console.setup.plan import (
    INSTALL_SCRIPT,
    STAGING_DIR,
    PlanStep,
    SetupPlan,
)
from nydus_console.setup.release import Binary
from nydus_console.setup.state import SetupState, SetupStateStore, new_state
from nydus_console.setup.survey import BIN_DIR
from nydus_console.transport.base import Transport, TransportError
from nydus_console.transport.upload import upload_file


class StepStatus(enum.StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    # Read-only mode refused the step's action: nothing ran.
    REFUSED = "refused (read-only)"


class StepFailed(Exception):
    """A step ran but its result is wrong; the message describes what was found."""


# How many of the unit's last journal lines are read, and how many error
# lines of them a failed restart reports.
JOURNAL_LINES = 200
JOURNAL_ERRORS = 5
ERROR_MARKS = ("error", "fatal", "panic")


@dataclass
class StepResult:
    step: str
    status: StepStatus
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"step": self.step, "status": str(self.status), "detail": self.detail}


@dataclass
class ApplyOutcome:
    node: str
    results: list[StepResult] = field(default_factory=list)
    unreachable: bool = False
    refused: bool = False

    @property
    def ok(self) -> bool:
        return all(r.status is StepStatus.DONE for r in self.results)


Progress = Callable[[PlanStep, StepStatus, str], None]


def _quiet(step: PlanStep, status: StepStatus, detail: str) -> None:
    return None


class SetupApplier:
    """Applies one node's plan; `progress` hears of every step as it goes."""

    def __init__(
        self,
        gate: ActionGate,
        spec: NodeSpec,
        transport: Transport,
        *,
        confirmed_by: str,
        store: SetupStateStore | None = None,
        progress: Progress = _quiet,
        verify_seconds: float = 60.0,
    ) -> None:
        self.gate = gate
        self.spec = spec
        self.transport = transport
        self.confirmed_by = confirmed_by
        self.store = store or SetupStateStore()
        self.progress = progress
        self.checker = ConfigApplier(
            gate,
            spec,
            transport,
            confirmed_by=confirmed_by,
            verify_seconds=verify_seconds,
        )
        self.stamp = backup_stamp()
        # Files this run wrote, to put back when their unit does not come up.
        self.written: list[DesiredFile] = []
        # Units that were active before this run, restarted after a roll back.
        self.active_before: set[str] = set()
        # Units enabled before this run; a roll back disables the others.
        self.enabled_before: set[str] = set()

    async def apply(self, plan: SetupPlan) -> ApplyOutcome:
        outcome = ApplyOutcome(plan.node)
        survey = plan.survey
        if survey.unit_active == "active":
            self.active_before.add(survey.snapshotter_unit)
        self.active_before.add(survey.containerd.unit)
        self.enabled_before.add(survey.containerd.unit)
        if survey.unit_enabled == "enabled":
            self.enabled_before.add(survey.snapshotter_unit)
        if plan.empty:
            self.store.clear(plan.node)
            return outcome
        before = self.store.load(plan.node)
        state = self.store.load(plan.node) or new_state(plan.node, [])
        state.steps = list(dict.fromkeys([*state.done, *(s.id for s in plan.steps)]))
        state.done = [s for s in state.done if s not in {p.id for p in plan.steps}]
        state.failed = ""
        self.store.save(state)
        for step in plan.steps:
            self.progress(step, StepStatus.STARTED, "")
            try:
                detail = await self._run_step(step)
            except ReadOnlyRefused as exc:
                outcome.refused = True
                return self._refused(outcome, before, step, str(exc))
            except ActionRefused as exc:
                outcome.refused = True
                return self._failed(outcome, state, step, str(exc))
            except TransportError as exc:
                outcome.unreachable = True
                return self._failed(outcome, state, step, str(exc))
            except StepFailed as exc:
                return self._failed(outcome, state, step, str(exc))
            outcome.results.append(StepResult(step.id, StepStatus.DONE, detail))
            state.done.append(step.id)
            self.store.save(state)
            self.progress(step, StepStatus.DONE, detail)
        self.store.clear(plan.node)
        return outcome

    def _refused(
        self,
        outcome: ApplyOutcome,
        before: SetupState | None,
        step: PlanStep,
        detail: str,
    ) -> ApplyOutcome:
        """Read-only mode refused `step`: it did not run, so no progress is kept.

        Read-only mode refuses every action, so the refused step is the first
        one to change the node in this run, and the state returns to what it
        was before the run.
        """
        if before is None:
            self.store.clear(outcome.node)
        else:
            self.store.save(before)
        outcome.results.append(StepResult(step.id, StepStatus.REFUSED, detail))
        self.progress(step, StepStatus.REFUSED, detail)
        return outcome

    def _failed(
        self, outcome: ApplyOutcome, state: SetupState, step: PlanStep, detail: str
    ) -> ApplyOutcome:
        state.failed = step.id
        self.store.save(state)
        outcome.results.append(StepResult(step.id, StepStatus.FAILED, detail))
        self.progress(step, StepStatus.FAILED, detail)
        return outcome

    async def _run_step(self, step: PlanStep) -> str:
        if step.binary is not None:
            return await self._install(step.binary)
        if step.file is not None:
            return await self._write(step)
        if step.unit:
            return await self._restart(step)
        assert step.action is not None
        await self._action(step.action)
        return await self._verify_command(step)

    async def _action(self, action: Action) -> str:
        result = await self.gate.run(
            action, self.spec, self.transport, confirmed_by=self.confirmed_by
        )
        if not result.ok:
            raise StepFailed(
                f"{action.name} exited with status {result.exit_status}: "
                f"{result.stderr.strip()[-400:]}"
            )
        return result.stdout

    async def _install(self, binary: Binary) -> str:
        staged = f"{STAGING_DIR}/{binary.name}"
        upload = Upload(
            f"upload {binary.name}",
            str(binary.path),
            staged,
            binary.sha256,
            binary.size,
        )

        async def send() -> None:
            await upload_file(self.transport, binary.path, staged)

        await self.gate.transfer(
            upload, self.spec, send, confirmed_by=self.confirmed_by
        )
        target = f"{BIN_DIR}/{binary.name}"
        argv = (
            "sh",
            "-c",
            INSTALL_SCRIPT,
            "install-binary",
            staged,
            target,
            binary.sha256,
            self.stamp,
        )
        output = await self._action(Action(f"install {target}", argv))
        found = await self._sha256(target)
        if found != binary.sha256:
            raise StepFailed(f"{target} has sha256 {found or 'none'} after install")
        backup = _field(output, "backup")
        return f"sha256 {binary.sha256[:12]} verified" + (
            f", backup {backup}" if backup else ""
        )

    async def _write(self, step: PlanStep) -> str:
        desired = step.file
        assert desired is not None
        action = write_action(
            desired.path, desired.new_text, desired.old_text, self.stamp
        )
        output = await self._action(action)
        self.written.append(desired)
        found = await self._sha256(desired.path)
        if found != sha256_text(desired.new_text):
            raise StepFailed(f"{desired.path} does not hold the new content")
        backup = _field(output, "backup")
        return f"backup {backup}" if backup else "new file"

    async def _restart(self, step: PlanStep) -> str:
        if step.action is not None:
            await self._action(step.action)
        await self._action(reset_and_restart(step.unit))
        problem = await self.checker.verify(step.unit, step.socket)
        if problem:
            errors = await self._journal_errors(step.unit)
            undone = await self._roll_back(step)
            raise StepFailed(f"{problem}{errors}{undone}")
        return f"{step.unit} active and steady" + (
            f", {step.socket} listening" if step.socket else ""
        )

    async def _journal_errors(self, unit: str) -> str:
        """Return the unit's last error lines in the journal, as a detail tail."""
        argv = ["journalctl", "--no-pager", "-o", "cat", "-u", unit]
        try:
            result = await self.transport.run([*argv, "-n", str(JOURNAL_LINES)])
        except TransportError:
            return ""
        lines = [
            line.strip()
            for line in result.stdout.splitlines()
            if any(mark in line.lower() for mark in ERROR_MARKS)
        ]
        if not lines:
            return ""
        shown = "; ".join(mask_secrets(line) for line in lines[-JOURNAL_ERRORS:])
        return f". {unit}'s journal ends with: {shown}"

    async def _roll_back(self, step: PlanStep) -> str:
        """Put back the files this run wrote for `step.unit`, then restart it.

        A file that existed is restored from its old content (the write keeps
        the rejected one as a backup); a new file is moved aside. A unit that
        was not active before is stopped rather than left restarting.
        """
        group = [f for f in self.written if step.unit in f.restarts]
        if not group:
            return ""
        names = ", ".join(desired.path for desired in group)
        try:
            return await self._restore(step, group, names)
        except (StepFailed, ActionRefused, TransportError) as exc:
            return f". Rolling back {names} failed: {exc}"

    async def _restore(
        self, step: PlanStep, group: list[DesiredFile], names: str
    ) -> str:
        was_active = step.unit in self.active_before
        if not was_active:
            await self._action(
                Action(f"stop {step.unit}", ("systemctl", "stop", step.unit))
            )
            # A stopped unit stays "failed" until its failed state is cleared.
            reset = ("systemctl", "reset-failed", step.unit)
            await self._action(Action(f"reset-failed {step.unit}", reset))
        if step.unit not in self.enabled_before:
            await self._action(
                Action(f"disable {step.unit}", ("systemctl", "disable", step.unit))
            )
        stamp = f"{self.stamp}-rejected"
        for desired in group:
            if desired.old_text is None:
                argv = ("mv", "-f", "--", desired.path, f"{desired.path}.{stamp}")
                await self._action(Action(f"move {desired.path} aside", argv))
            else:
                old, new = desired.old_text, desired.new_text
                await self._action(write_action(desired.path, old, new, stamp))
            self.written.remove(desired)
        if any(desired.kind == "unit" for desired in group):
            reload = ("systemctl", "daemon-reload")
            await self._action(Action("reload systemd units", reload))
        if not was_active:
            return (
                f". Rolled back {names}; {step.unit} was not running before "
                "setup, so it is stopped"
            )
        await self._action(reset_and_restart(step.unit))
        again = await self.checker.verify(step.unit, step.socket)
        state = f"still not healthy: {again}" if again else "active again"
        return f". Rolled back {names} and restarted {step.unit}: {state}"

    async def _verify_command(self, step: PlanStep) -> str:
        if step.directory:
            result = await self.transport.run(["test", "-d", step.directory])
            if not result.ok:
                raise StepFailed(f"{step.directory} is not a directory afterwards")
            return f"{step.directory} exists"
        if step.id == "daemon-reload":
            unit = self.spec.paths.snapshotter_unit
            argv = ["systemctl", "show", "-p", "LoadState", "-p", "NeedDaemonReload"]
            result = await self.transport.run([*argv, unit])
            if "LoadState=loaded" not in result.stdout:
                raise StepFailed(f"systemd did not load {unit}: {result.stdout}")
            return f"{unit} loaded"
        return "ran"

    async def _sha256(self, path: str) -> str:
        result = await self.transport.run(["sha256sum", "--", path])
        return result.stdout.split()[0] if result.ok and result.stdout else ""


def _field(output: str, key: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return ""
