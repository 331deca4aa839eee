"""Write a config file on a node, restart its service, verify, roll back on failure.

Every step that changes the node is an Action through the ActionGate, so
read-only mode, confirmation and the audit log apply to each of them: the
write, the restart, and the restore and second restart of a rollback.

The write replaces the file atomically (assets/write_file.sh): a temporary
file beside it with the same owner and mode, a sha256 check of what arrived,
fsync, rename, and a timestamped backup of the old file. It also refuses to
write when the file changed on the node since the console read it.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from nydus_console.actions import Action, ActionGate, ActionRefused, restart_service
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import SocketState, Transport, TransportError

# Without its comment lines: the script is part of the command line that the
# audit log records.
WRITE_SCRIPT = "\n".join(
    line
    for line in resources.files("nydus_console.assets")
    .joinpath("write_file.sh")
    .read_text()
    .splitlines()
    if not line.lstrip().startswith("#")
)
DEFAULT_VERIFY_SECONDS = 30.0
# A unit must stay active with the same main PID this long to count as healthy:
# a service that crashes at start and is restarted by systemd looks active for
# a moment between crashes.
STEADY_SECONDS = 3.0
POLL_SECONDS = 0.5


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_action(
    path: str, content: str, old_text: str | None, stamp: str, changes: str = ""
) -> Action:
    """The action that replaces `path` with `content` if it still holds `old_text`.

    `old_text` None means the file must not exist yet. Its audit entries
    name the path and, when given, `changes`: the keys changed, with
    credentials masked.
    """
    old_sum = "absent" if old_text is None else sha256_text(old_text)
    argv = ("sh", "-c", WRITE_SCRIPT, "write-file", path, sha256_text(content))
    audit = (("path", path), ("changes", changes)) if changes else (("path", path),)
    return Action(f"write {path}", (*argv, old_sum, stamp), stdin=content, audit=audit)


def backup_stamp(now: datetime.datetime | None = None) -> str:
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Step:
    """One step of an apply: what ran, and whether it worked."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class ConfigChange:
    """New content for one config file on one node, and what to restart after."""

    path: str
    old_text: str | None
    new_text: str
    unit: str = ""
    # A unix socket the service must listen on again after its restart.
    socket: str = ""
    # The keys the new text changes, credentials masked, for the audit log.
    changes: str = ""


@dataclass
class ApplyReport:
    node: str
    path: str
    steps: list[Step] = field(default_factory=list)
    backup: str = ""
    rolled_back: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.steps.append(Step(name, ok, detail))
        return ok


class ConfigApplier:
    """Applies ConfigChanges on one node through the gate."""

    def __init__(
        self,
        gate: ActionGate,
        spec: NodeSpec,
        transport: Transport,
        *,
        confirmed_by: str,
        verify_seconds: float = DEFAULT_VERIFY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gate = gate
        self.spec = spec
        self.transport = transport
        self.confirmed_by = confirmed_by
        self.verify_seconds = verify_seconds
        self.clock = clock

    async def apply(self, change: ConfigChange) -> ApplyReport:
        report = ApplyReport(self.spec.name, change.path)
        stamp = backup_stamp()
        action = write_action(
            change.path, change.new_text, change.old_text, stamp, change.changes
        )
        if not await self._write(report, action, f"write {change.path}"):
            return report
        if not change.unit:
            return report
        if await self._restart_and_verify(report, change):
            return report
        await self._roll_back(report, change, stamp)
        return report

    async def _run(self, report: ApplyReport, action: Action, name: str) -> str | None:
        """Run one action; record a failed step and return None if it failed."""
        try:
            result = await self.gate.run(
                action, self.spec, self.transport, confirmed_by=self.confirmed_by
            )
        except (ActionRefused, TransportError) as exc:
            report.add(name, False, str(exc))
            return None
        if not result.ok:
            detail = result.stderr.strip()[-400:] or f"exit status {result.exit_status}"
            report.add(name, False, detail)
            return None
        return result.stdout

    async def _write(self, report: ApplyReport, action: Action, name: str) -> bool:
        output = await self._run(report, action, name)
        if output is None:
            return False
        backup = _field(output, "backup")
        if backup and not report.backup:
            report.backup = backup
        detail = f"backup {backup}" if backup else "new file"
        return report.add(name, True, detail)

    async def _restart_and_verify(
        self, report: ApplyReport, change: ConfigChange
    ) -> bool:
        # A unit that failed too often in a row refuses to start until its
        # failed state is cleared ("start request repeated too quickly").
        reset = Action(
            f"reset-failed {change.unit}", ("systemctl", "reset-failed", change.unit)
        )
        if await self._run(report, reset, reset.name) is None:
            return False
        report.add(reset.name, True)
        restart = restart_service(change.unit)
        if await self._run(report, restart, restart.name) is None:
            return False
        report.add(restart.name, True)
        problem = await self.verify(change.unit, change.socket)
        name = f"verify {change.unit}"
        return report.add(name, not problem, problem or "active and steady")

    async def _roll_back(
        self, report: ApplyReport, change: ConfigChange, stamp: str
    ) -> None:
        report.rolled_back = True
        if change.old_text is None:
            report.add("roll back", False, f"{change.path} did not exist before")
            return
        # Its own stamp: the restore keeps the rejected content as a backup
        # too, and must not overwrite the backup of the original.
        rejected = f"{stamp}-rejected"
        restore = write_action(
            change.path,
            change.old_text,
            change.new_text,
            rejected,
            "restored the content from before the change",
        )
        name = f"restore {change.path} from the backup"
        if await self._write(report, restore, name):
            await self._restart_and_verify(report, change)

    async def verify(self, unit: str, socket: str) -> str:
        """Wait until `unit` is active and steady (and `socket` listens).

        Return "" when healthy, else what was last seen.
        """
        deadline = self.clock() + self.verify_seconds
        steady_since: float | None = None
        last_pid = ""
        seen = "not checked"
        while self.clock() < deadline:
            state, pid = await self._unit_state(unit)
            seen = state
            if state == "active/running" and pid == last_pid:
                steady_since = steady_since or self.clock()
                if self.clock() - steady_since >= STEADY_SECONDS:
                    return await self._socket_problem(socket)
            else:
                steady_since = None
            last_pid = pid
            await asyncio.sleep(POLL_SECONDS)
        return (
            f"{unit} was not active and steady within {self.verify_seconds:g} s "
            f"(last state {seen})"
        )

    async def _unit_state(self, unit: str) -> tuple[str, str]:
        argv = ["systemctl", "show", "-p", "ActiveState", "-p", "SubState"]
        try:
            result = await self.transport.run([*argv, "-p", "MainPID", unit])
        except TransportError as exc:
            return f"unknown ({exc.kind})", ""
        props = dict(
            line.split("=", 1) for line in result.stdout.splitlines() if "=" in line
        )
        state = f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}"
        return state, props.get("MainPID", "")

    async def _socket_problem(self, socket: str) -> str:
        if not socket:
            return ""
        try:
            state = await self.transport.probe_unix_socket(socket)
        except TransportError as exc:
            return f"{socket} could not be tested: {exc}"
        if state in (SocketState.LISTENING, SocketState.DENIED):
            return ""
        return f"{socket} is {state} after the restart"


def _field(output: str, key: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return ""
