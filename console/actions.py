"""The one path for actions that change a node.

Every such action is checked against read-only mode (global and per node),
runs only after the operator confirmed the exact command, and is written to
the audit log whatever its outcome.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nydus_console.audit import AuditLog
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import CommandResult, Transport, TransportError
from nydus_console.transport.quoting import quote_argv

ACTION_TIMEOUT = 120.0
# Characters of an action's output kept in the audit log (the end of it).
OUTPUT_KEPT = 500
log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """An action was not run: read-only mode, or no confirmation."""


class ReadOnlyRefused(ActionRefused):
    """An action was not run because the console or the node is read-only."""


@dataclass(frozen=True)
class Action:
    """A command that changes a node, shown to the operator before it runs."""

    name: str
    argv: tuple[str, ...]
    # Destructive actions need the node name typed to confirm.
    destructive: bool = False
    # Standard input of the command, such as the content of a file to write.
    # The audit log records its size and sha256, never the text.
    stdin: str | None = None
    # More fields for its audit entries, such as the path and the keys a
    # config write changes (credentials masked by whoever builds it).
    audit: tuple[tuple[str, str], ...] = ()

    @property
    def command_line(self) -> str:
        return quote_argv(self.argv)

    def input_summary(self) -> str:
        if self.stdin is None:
            return ""
        data = self.stdin.encode()
        return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


def restart_service(unit: str) -> Action:
    return Action(f"restart {unit}", ("systemctl", "restart", unit))


# systemd refuses to start a unit that failed too often in a row ("start
# request repeated too quickly") until its failed state is cleared.
_RESET_AND_RESTART = 'systemctl reset-failed -- "$1"; exec systemctl restart -- "$1"'


def reset_and_restart(unit: str) -> Action:
    """Clear the unit's failed state, then restart it, in one action."""
    argv = ("sh", "-c", _RESET_AND_RESTART, "restart", unit)
    return Action(f"restart {unit}", argv)


class ActionGate:
    def __init__(self, audit: AuditLog, *, read_only: bool) -> None:
        self.audit = audit
        self.read_only = read_only

    def refusal(self, spec: NodeSpec) -> str:
        """Return why actions on this node are not allowed, or '' if they are."""
        if self.read_only:
            return "the console runs with --read-only"
        if spec.read_only:
            return f"node {spec.name} is read-only in the inventory"
        return ""

    def record_refusal(self, action: Action, spec: NodeSpec, reason: str) -> None:
        """Audit an action that was refused before it reached confirmation."""
        log.warning("refused %s on %s: %s", action.name, spec.name, reason)
        self.audit.append(
            {**_base(action, spec), "outcome": "refused", "reason": reason}
        )

    def authorize(
        self, action: Action, spec: NodeSpec, *, confirmed_by: str
    ) -> dict[str, str]:
        """Check read-only mode and the confirmation; return the audit fields.

        A refusal is audited and raised as ActionRefused. Callers that run
        the command themselves, such as a streamed conversion, append its
        outcome with `record(fields, ...)`.
        """
        base = _base(action, spec)
        self._check(base, spec, confirmed_by, destructive=action.destructive)
        return base

    def note(self, spec: NodeSpec, name: str, event: str, **fields: Any) -> None:
        """Audit what followed an action without being one: a step's
        verification or the end of a runbook run. `event` names which."""
        self.audit.append(
            {
                "node": spec.name,
                "address": spec.address,
                "action": name,
                "event": event,
                **fields,
            }
        )

    def record(self, base: dict[str, str], **outcome: Any) -> None:
        """Append the outcome of an authorized action to the audit log."""
        self.audit.append({**base, **outcome})

    async def run(
        self,
        action: Action,
        spec: NodeSpec,
        transport: Transport,
        *,
        confirmed_by: str,
    ) -> CommandResult:
        """Run a confirmed action; raise ActionRefused or TransportError."""
        base = _base(action, spec)
        self._check(base, spec, confirmed_by, destructive=action.destructive)
        try:
            result = await transport.run(
                list(action.argv), timeout=ACTION_TIMEOUT, input=action.stdin
            )
        except TransportError as exc:
            self.audit.append({**base, "outcome": "failed", "error": str(exc)})
            raise
        self.audit.append(
            {
                **base,
                "outcome": "ran",
                "exit_status": result.exit_status,
                "stdout": result.stdout.strip()[-OUTPUT_KEPT:],
                "stderr": result.stderr.strip()[-OUTPUT_KEPT:],
            }
        )
        return result

    def _check(
        self,
        base: dict[str, str],
        spec: NodeSpec,
        confirmed_by: str,
        *,
        destructive: bool,
    ) -> None:
        """Raise ActionRefused (and audit it) unless the action may run.

        A refusal by read-only mode raises the subclass ReadOnlyRefused.
        """
        reason = self.refusal(spec)
        refused = ReadOnlyRefused if reason else ActionRefused
        if not reason and not confirmed_by:
            reason = "the action was not confirmed"
        if not reason and destructive and confirmed_by != spec.name:
            reason = (
                f"destructive action confirmed with {confirmed_by!r}, not the node name"
            )
        if reason:
            name = base["action"]
            log.warning("refused %s on %s: %s", name, spec.name, reason)
            self.audit.append({**base, "outcome": "refused", "reason": reason})
            raise refused(f"{name} on {spec.name} refused: {reason}")

    async def transfer(
        self,
        upload: Upload,
        spec: NodeSpec,
        send: Callable[[], Awaitable[None]],
        *,
        confirmed_by: str,
    ) -> None:
        """Run `send`, which copies a local file to the node, as a confirmed action.

        The audit log records the target path, size and sha256 of the file.
        Raise ActionRefused or TransportError.
        """
        base = {
            "node": spec.name,
            "address": spec.address,
            "action": upload.name,
            "command": f"upload {upload.source} to {upload.target}",
            "input": f"{upload.size} bytes, sha256 {upload.sha256}",
        }
        self._check(base, spec, confirmed_by, destructive=False)
        try:
            await send()
        except TransportError as exc:
            self.audit.append({**base, "outcome": "failed", "error": str(exc)})
            raise
        self.audit.append({**base, "outcome": "ran", "exit_status": 0})


def _base(action: Action, spec: NodeSpec) -> dict[str, str]:
    """Return the audit fields every entry of an action has."""
    base = {
        "node": spec.name,
        "address": spec.address,
        "action": action.name,
        "command": action.command_line,
    }
    if action.stdin is not None:
        base["input"] = action.input_summary()
    base.update(action.audit)
    return base


@dataclass(frozen=True)
class Upload:
    """A local file copied to a node, shown to the operator before it is sent."""

    name: str
    source: str
    target: str
    sha256: str
    size: int
