"""Test doubles for the runbook runner: a transport that records every call.

The transport responds through a function of the argument list, so a test can
script a node: `systemctl is-active` fails, `cat boot_id` prints an id, and so on.
Facts come from a function too, so a test can change them as steps run.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from factbuilder import healthy_facts

from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.facts import NodeFacts, ProcessInfo
from nydus_console.inventory import NodeSpec
from nydus_console.runbooks.model import Runbook
from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunbookHooks,
    StepResult,
)
from nydus_console.runbooks.runner import RunbookRunner
from nydus_console.runbooks.state import StateStore
from nydus_console.transport.base import (
    ByteReader,
    ByteWriter,
    CommandResult,
    Endpoint,
    EndpointUnavailable,
    SocketState,
    TransportError,
)

NODE = "node-1"
SPEC = NodeSpec(name=NODE, host="192.0.2.1")
Answer = Callable[[tuple[str, ...]], "CommandResult | TransportError"]


def result(argv: Sequence[str], status: int = 0, stdout: str = "") -> CommandResult:
    return CommandResult(tuple(argv), status, stdout, "", 0.0)


def default_answer(argv: tuple[str, ...]) -> CommandResult | TransportError:
    """Respond as a healthy node: every command succeeds, no unit has failed."""
    if argv[:2] == ("cat", "/proc/sys/kernel/random/boot_id"):
        return result(argv, stdout="boot-1\n")
    if argv[:2] == ("systemctl", "is-failed"):
        return result(argv, 1)
    return result(argv)


class RecordingTransport:
    """Records every argument list and responds with `answer(argv)`."""

    name = NODE
    description = "recording test double"

    def __init__(self, answer: Answer = default_answer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, ...]] = []
        self.inputs: list[str | None] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        sudo: bool = True,
        input: str | None = None,  # noqa: A002
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        self.inputs.append(input)
        answer = self.answer(tuple(argv))
        if isinstance(answer, TransportError):
            raise answer
        return answer

    def stream(self, argv: Sequence[str], *, sudo: bool = True) -> AsyncIterator[str]:
        raise NotImplementedError

    async def probe_unix_socket(self, path: str, timeout: float = 3.0) -> SocketState:
        return SocketState.LISTENING

    async def open_stream(self, endpoint: Endpoint) -> tuple[ByteReader, ByteWriter]:
        raise EndpointUnavailable(f"{endpoint} is not served by the test double")

    async def close(self) -> None:
        return None


def with_stray(facts: NodeFacts, pid: int = 4242) -> NodeFacts:
    facts.processes.append(
        ProcessInfo(pid, "S", 1, "containerd-nydu", ["containerd-nydus-grpc"])
    )
    return facts


class ScriptedHooks(RunbookHooks):
    """Answers each confirmation from a list (then RUN), records what it saw."""

    def __init__(
        self,
        choices: Sequence[Choice] = (),
        confirmed_by: str = NODE,
        after_failure: Choice = Choice.ABORT,
    ) -> None:
        self.choices = list(choices)
        self.confirmed_by = confirmed_by
        self.failure_choice = after_failure
        self.confirmed: list[str] = []
        self.shown: list[PlannedStep] = []
        self.results: list[StepResult] = []
        self.notes: list[str] = []

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        self.confirmed.append(planned.step.id)
        choice = self.choices.pop(0) if self.choices else Choice.RUN
        return Decision(choice, self.confirmed_by)

    async def after_failure(
        self, node: str, planned: PlannedStep, result: StepResult
    ) -> Decision:
        return Decision(self.failure_choice)

    def planned(self, node: str, planned: PlannedStep) -> None:
        self.shown.append(planned)

    def finished(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        self.results.append(result)

    def note(self, node: str, text: str) -> None:
        self.notes.append(text)


class FakeClock:
    """A monotonic clock that only moves when the runner sleeps."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_runner(
    runbook: Runbook,
    tmp_path: Path,
    transport: RecordingTransport,
    hooks: RunbookHooks,
    facts: Callable[[], NodeFacts] = healthy_facts,
    **options: object,
) -> RunbookRunner:
    clock = FakeClock()

    async def probe(full: bool) -> NodeFacts:
        return facts()

    return RunbookRunner(
        runbook,
        options.pop("spec", SPEC),  # type: ignore[arg-type]
        transport,
        ActionGate(
            AuditLog(tmp_path / "audit.jsonl"),
            read_only=bool(options.pop("read_only", False)),
        ),
        hooks,
        store=StateStore(tmp_path / "state"),
        probe=probe,
        sleep=clock.sleep,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
