"""Run a planned conversion on a node through the transport's stream.

nydusify runs under a small wrapper. The wrapper feeds it the prefetch
patterns on standard input and forwards SIGTERM to it. The stream ends the
wrapper when the channel closes, so closing the channel cancels the
conversion. The wrapper prints nydusify's exit status as the last line,
because the stream itself does not carry it. The shell's exit status 127
(126) means nydusify was not found (could not be executed) on the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nydus_console.actions import Action, ActionGate
from nydus_console.images.convert import ConvertPlan
from nydus_console.images.credentials import (
    CredentialsError,
    DockerConfig,
    parse_docker_config,
)
from nydus_console.images.progress import ConvertProgress
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import Transport, TransportError
from nydus_console.transport.quoting import quote_argv

EXIT_MARKER = "@nydus-console exit"
_EXIT_LINE = re.compile(rf"^{re.escape(EXIT_MARKER)} ([0-9]+)$")
# $1 is the prefetch pattern text ('' for none), the rest nydusify's argv.
WRAPPER = f"""patterns=$1
shift
child=
cancelled=
trap 'cancelled=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM HUP INT
if [ -n "$patterns" ]; then
    printf '%s' "$patterns" | "$@" 2>&1 &
else
    "$@" </dev/null 2>&1 &
fi
child=$!
wait "$child"
status=$?
if [ -n "$cancelled" ]; then wait "$child"; status=$?; fi
echo "{EXIT_MARKER} $status"
exit "$status"
"""
# How the command line sets the nydusify path; the screen names its own field.
NYDUSIFY_PATH_HINT = "--nydusify PATH"
_NOT_RUN = {127: "is not installed on", 126: "cannot be executed on"}
DOCKER_CONFIG_SCRIPT = (
    'f="${DOCKER_CONFIG:-$HOME/.docker}/config.json"; '
    '[ -e "$f" ] || exit 3; exec cat -- "$f"'
)


def wrapped(
    argv: tuple[str, ...], stdin: str, name: str = "nydus-console-convert"
) -> list[str]:
    """Return the argument list that runs argv under the wrapper.

    `name` is the wrapper's $0, which `ps` shows on the node.
    """
    return ["sh", "-c", WRAPPER, name, stdin, *argv]


class Progress(Protocol):
    """What a streamed command's output parser offers the run."""

    notes: list[str]
    last_error: str

    def feed(self, raw: str) -> Any:
        """Take one output line; return the event it reports, or None."""

    def fallback_error(self) -> str:
        """Return the last error, else the last non-empty line."""

    def summary(self) -> dict[str, dict[str, Any]]:
        """Return the steps or stages with their state and elapsed time."""

    def end(self, state: str) -> None:
        """Mark what still runs as `state` (failed or cancelled)."""


@dataclass
class StepResult:
    """One streamed command's outcome: exit status (None if unknown)."""

    argv: tuple[str, ...]
    progress: Progress = field(default_factory=ConvertProgress)
    exit_status: int | None = None
    cancelled: bool = False
    error: str = ""
    seconds: float = 0.0
    node: str = ""
    path_hint: str = NYDUSIFY_PATH_HINT

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def outcome(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.exit_status is None:
            return "connection lost"
        return "succeeded" if self.exit_status == 0 else "failed"

    @property
    def last_error(self) -> str:
        if self.ok:
            return ""
        if self.cancelled:
            return "cancelled"
        if self.exit_status in _NOT_RUN and not self.progress.last_error:
            return self._not_run(self.exit_status)
        return self.error or self.progress.fallback_error()

    def _not_run(self, status: int) -> str:
        program = self.argv[0] if self.argv else "nydusify"
        name = "nydusify" if program == "nydusify" else f"nydusify ({program})"
        where = self.node or "the node"
        return (
            f"{name} {_NOT_RUN[status]} {where} (exit {status}): install it or "
            f"set the nydusify path ({self.path_hint})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "outcome": self.outcome,
            "exit_status": self.exit_status,
            "last_error": self.last_error,
            "seconds": round(self.seconds, 3),
            "stages": self.progress.summary(),
            "notes": self.progress.notes,
        }


OnEvent = Callable[[Any], None]
OnLine = Callable[[str], None]


def result_lines(what: str, result: StepResult, *, seconds: bool = True) -> list[str]:
    """Return how a streamed command ended and its last error, in words."""
    if result.cancelled:
        return [f"{what} cancelled after {result.seconds:.1f} s"]
    if result.exit_status is None:
        lines = [f"{what}: {result.error or 'the output ended without a status'}"]
    else:
        took = f" after {result.seconds:.1f} s" if seconds else ""
        lines = [f"{what} exited with status {result.exit_status}{took}"]
    if result.last_error:
        lines.append(f"last error: {result.last_error}")
    return lines


async def stream_step(
    transport: Transport,
    argv: tuple[str, ...],
    stdin: str = "",
    *,
    on_event: OnEvent | None = None,
    on_line: OnLine | None = None,
    cancel: asyncio.Event | None = None,
    progress: Progress | None = None,
    name: str = "nydus-console-convert",
    node: str = "",
    path_hint: str = NYDUSIFY_PATH_HINT,
) -> StepResult:
    """Run argv under the wrapper and follow its output until it ends.

    `progress` parses the output (nydusify's log lines by default).
    Setting `cancel` (or cancelling the awaiting task) closes the stream,
    which ends the remote command. The result's outcome is then `cancelled`.
    A stage still running at the end is marked failed or cancelled.
    """
    result = StepResult(
        argv, progress or ConvertProgress(), node=node, path_hint=path_hint
    )
    started = time.monotonic()
    reader = asyncio.ensure_future(
        _read(transport, wrapped(argv, stdin, name), result, on_event, on_line)
    )
    waiter = asyncio.ensure_future((cancel or asyncio.Event()).wait())
    try:
        await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            reader.result()
        else:
            result.cancelled = True
            await _stop(reader)
    except asyncio.CancelledError:
        result.cancelled = True
        await _stop(reader)
        raise
    finally:
        waiter.cancel()
        result.seconds = time.monotonic() - started
        if not result.ok:
            result.progress.end("cancelled" if result.cancelled else "failed")
    return result


async def _stop(reader: asyncio.Future[None]) -> None:
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        # Shielded: a second cancellation must not skip closing the stream.
        await asyncio.shield(reader)


async def _read(
    transport: Transport,
    argv: list[str],
    result: StepResult,
    on_event: OnEvent | None,
    on_line: OnLine | None,
) -> None:
    lines = transport.stream(argv)
    try:
        async for line in lines:
            _take(result, line, on_event, on_line)
    except TransportError as exc:
        result.error = f"the connection failed: {exc.message}"
    finally:
        # Closing the stream closes the channel, which ends the command.
        close = getattr(lines, "aclose", None)
        if close is not None:
            await close()


def _take(
    result: StepResult, line: str, on_event: OnEvent | None, on_line: OnLine | None
) -> None:
    status = _EXIT_LINE.match(line)
    if status:
        result.exit_status = int(status.group(1))
        return
    event = result.progress.feed(line)
    if on_line is not None:
        on_line(line)
    if event is not None and on_event is not None:
        on_event(event)


async def node_docker_config(transport: Transport, node: str) -> DockerConfig | None:
    """Read the docker config nydusify uses on the node; None when it has none.

    The secrets stay in the returned object; only registry names are shown.
    """
    result = await transport.run(["sh", "-c", DOCKER_CONFIG_SCRIPT], timeout=30)
    if result.exit_status == 3:
        return None
    if result.exit_status != 0:
        raise CredentialsError(
            f"cannot read the docker config on {node}: {result.stderr.strip()[:200]}"
        )
    return parse_docker_config(result.stdout, f"the docker config on {node}")


def credential_report(config: DockerConfig | None, plan: ConvertPlan) -> list[str]:
    """Say which registries have auth on the node and warn for source/target."""
    lines = []
    if config is None or not (config.auths or config.helpers or config.store):
        lines.append("registry auth on the node: none (no docker config.json)")
    else:
        names = ", ".join(config.registries()) or "none"
        lines.append(f"registry auth on the node: {names}")
    for role, ref in (("source", plan.source), ("target", plan.target)):
        if config is not None and config.lookup(ref.domain) is not None:
            continue
        helper = config.helper_for(ref.domain) if config is not None else ""
        if helper:
            lines.append(
                f"note: {role} registry {ref.domain} uses credential helper "
                f"docker-credential-{helper}, which the console does not run"
            )
            continue
        effect = "pulls anonymously" if role == "source" else "pushes without login"
        lines.append(
            f"warning: no credentials for the {role} registry {ref.domain} on the "
            f"node: nydusify {effect}; run `docker login {ref.domain}` there as "
            "the user that runs nydusify if the registry needs them"
        )
    return lines


async def run_convert(
    plan: ConvertPlan,
    spec: NodeSpec,
    transport: Transport,
    gate: ActionGate,
    *,
    confirmed_by: str,
    on_event: OnEvent | None = None,
    on_line: OnLine | None = None,
    cancel: asyncio.Event | None = None,
    path_hint: str = NYDUSIFY_PATH_HINT,
) -> tuple[StepResult, StepResult | None]:
    """Run the conversion as an audited action, then the check if planned.

    `path_hint` names how the caller sets the nydusify path, for the error
    shown when nydusify is not on the node.
    """
    action = Action(f"convert {plan.source} to {plan.target}", plan.argv)
    audit = gate.authorize(action, spec, confirmed_by=confirmed_by)
    result: StepResult | None = None
    try:
        result = await stream_step(
            transport,
            plan.argv,
            plan.stdin,
            on_event=on_event,
            on_line=on_line,
            cancel=cancel,
            node=spec.name,
            path_hint=path_hint,
        )
    finally:
        record_outcome(gate, audit, result)
    check = None
    if result.ok and plan.check_argv:
        check = await stream_step(
            transport,
            plan.check_argv,
            on_line=on_line,
            cancel=cancel,
            node=spec.name,
            path_hint=path_hint,
        )
    return result, check


def history_record(
    plan: ConvertPlan, node: str, result: StepResult, check: StepResult | None
) -> dict[str, Any]:
    """Return the history entry of one run: options, outcome, stage times."""
    return {
        "node": node,
        "options": plan.options.to_dict(),
        "target": str(plan.target),
        "command": quote_argv(plan.argv),
        "outcome": result.outcome,
        "exit_status": result.exit_status,
        "last_error": result.last_error,
        "seconds": round(result.seconds, 3),
        "stages": result.to_dict()["stages"],
        "check": check.outcome if check else None,
    }


def record_outcome(
    gate: ActionGate, audit: dict[str, str], result: StepResult | None
) -> None:
    """Append a streamed action's outcome to the audit log."""
    if result is None:
        gate.record(audit, outcome="cancelled")
        return
    gate.record(
        audit,
        outcome=result.outcome,
        exit_status=result.exit_status,
        error=result.last_error[-500:],
    )
