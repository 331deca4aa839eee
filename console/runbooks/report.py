"""Results of a run, the operator's decisions, and the hooks a caller implements."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from nydus_console.actions import Action
from nydus_console.runbooks.model import Step
from nydus_console.transport.quoting import quote_argv


class Choice(enum.StrEnum):
    """The operator's choice before a step, or after it failed."""

    RUN = "run"
    DRY_RUN = "dry-run"
    SKIP = "skip"
    RETRY = "retry"
    ABORT = "abort"


@dataclass(frozen=True)
class Decision:
    """A choice, and for RUN the confirmation the action gate records.

    A destructive step runs only when `confirmed_by` is the node's name.
    """

    choice: Choice
    confirmed_by: str = ""


class StepStatus(enum.StrEnum):
    DONE = "done"
    NOT_NEEDED = "not needed"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"
    FAILED = "failed"
    ABORTED = "aborted"
    # Read-only mode (the console's or the node's) refused the step's action:
    # nothing ran, so the step's on-failure advice does not apply.
    REFUSED = "refused (read-only)"


class RunStatus(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    NOT_STARTED = "not started"
    REFUSED = "refused (read-only)"


@dataclass
class PlannedStep:
    """A step resolved for one node: whether it is needed and what it would run."""

    index: int
    step: Step
    needed: bool
    reason: str
    command: tuple[str, ...] = ()
    action: Action | None = None
    # The diff of an edit or write, or the instructions of a manual step.
    preview: str = ""
    # Why the step cannot run although it is needed.
    blocked: str = ""
    verify: list[str] = field(default_factory=list)
    # What to do when the step fails, with the node's values filled in.
    on_failure: str = ""

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def command_line(self) -> str:
        return quote_argv(self.command) if self.command else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "id": self.step.id,
            "title": self.step.title,
            "why": self.step.why,
            "kind": self.step.kind,
            "destructive": self.step.destructive,
            "needed": self.needed,
            "reason": self.reason,
            "command": list(self.command),
            "preview": self.preview,
            "blocked": self.blocked,
            "verify": self.verify,
            "on_failure": self.on_failure or self.step.on_failure,
        }


@dataclass
class StepResult:
    """The outcome of one step on one node."""

    step: str
    title: str
    status: StepStatus
    detail: str = ""
    command: str = ""
    exit_status: int | None = None
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        return cls(**{**data, "status": StepStatus(data["status"])})


@dataclass
class RunReport:
    """The outcome of a runbook on one node, step by step."""

    node: str
    runbook: str
    status: RunStatus = RunStatus.NOT_STARTED
    results: list[StepResult] = field(default_factory=list)
    # The step number a resumed run continued at, or 0.
    resumed_at: int = 0
    # The step number where a failed or aborted run stopped, or 0.
    stopped_at: int = 0
    message: str = ""
    # Whether the run stopped because the node could not be probed.
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED

    def ran(self) -> list[StepResult]:
        return [r for r in self.results if r.status is StepStatus.DONE]

    def step_counts(self) -> str:
        """Return the steps done, and those failed or refused, in words."""
        parts = [f"{len(self.ran())} step(s) done"]
        for status in (StepStatus.FAILED, StepStatus.REFUSED):
            count = sum(1 for r in self.results if r.status is status)
            if count:
                parts.append(f"{count} {status}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "runbook": self.runbook,
            "status": str(self.status),
            "resumed_at": self.resumed_at,
            "stopped_at": self.stopped_at,
            "unreachable": self.unreachable,
            "message": self.message,
            "results": [r.to_dict() for r in self.results],
        }


class RunbookHooks:
    """The caller's part in a run: confirm steps and show progress.

    The base class confirms nothing (every step is skipped) and shows
    nothing; the CLI and the runner screen override what they need.
    """

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        """Decide a needed step before it runs: run, dry-run, skip or abort."""
        return Decision(Choice.SKIP)

    async def after_failure(
        self, node: str, planned: PlannedStep, result: StepResult
    ) -> Decision:
        """Decide after a failed step: retry, skip or abort."""
        return Decision(Choice.ABORT)

    def planned(self, node: str, planned: PlannedStep) -> None:
        """Show a step resolved for the node, before anything of it runs."""

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        """Show the result of a step."""

    def note(self, node: str, text: str) -> None:
        """Show a message about the run, such as waiting for a reboot."""
