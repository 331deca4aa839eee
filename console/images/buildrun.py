"""Run a planned buildkit build on a node through the transport's stream.

Before anything runs, a read-only check on the node looks for buildctl,
buildkitd's socket, the context directory and the Dockerfile, and names
what is missing. The build itself goes through the same wrapper and
stream as a conversion (closing the channel cancels it) and is an audited
action, since it pushes to a registry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from nydus_console import locations
from nydus_console.actions import Action, ActionGate
from nydus_console.images.build import BuildOptions, BuildPlan
from nydus_console.images.buildprogress import BuildProgress
from nydus_console.images.credentials import DockerConfig
from nydus_console.images.history import ConvertHistory, HistoryError
from nydus_console.images.run import (
    OnEvent,
    OnLine,
    StepResult,
    record_outcome,
    stream_step,
)
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import Transport
from nydus_console.transport.quoting import quote_argv

# $1 buildctl, $2 socket, $3 context directory, $4 Dockerfile.
PREFLIGHT = """command -v "$1" >/dev/null 2>&1 || echo buildctl
[ -S "$2" ] || echo socket
[ -d "$3" ] || echo context
[ -f "$4" ] || echo dockerfile
exit 0
"""


class BuildUnavailable(Exception):
    """The node lacks what the build needs; the message names each part."""


@dataclass(frozen=True)
class Missing:
    what: str
    hint: str


def _missing(plan: BuildPlan, node: str) -> dict[str, Missing]:
    o = plan.options
    return {
        "buildctl": Missing(
            f"buildctl ({o.buildctl}) is not on the PATH of {node}",
            "install buildkit there, or give --buildctl PATH",
        ),
        "socket": Missing(
            f"buildkitd's socket {o.socket} is missing on {node}",
            "start buildkitd there (it must have nydus-image in its PATH), "
            "or give --buildkit-socket PATH",
        ),
        "context": Missing(
            f"the context {plan.context} is not a directory on {node}",
            "give --context DIR, a directory on the node",
        ),
        "dockerfile": Missing(
            f"the Dockerfile {plan.dockerfile} is not a file on {node}",
            "give --file NAME (relative to the context) or an absolute path",
        ),
    }


async def preflight(plan: BuildPlan, transport: Transport, node: str) -> list[str]:
    """Return one line per missing part (empty when the node can build)."""
    o = plan.options
    argv = ["sh", "-c", PREFLIGHT, "nydus-console-build-check"]
    argv += [o.buildctl, o.socket, plan.context, plan.dockerfile]
    result = await transport.run(argv, timeout=30)
    if result.exit_status != 0:
        raise BuildUnavailable(
            f"failed to check {node} for buildkit: {result.stderr.strip()[:200]}"
        )
    missing = _missing(plan, node)
    found = [missing[word] for word in result.stdout.split() if word in missing]
    return [f"{m.what}: {m.hint}" for m in found]


def credential_line(config: DockerConfig | None, plan: BuildPlan) -> str:
    """Say whether the node has registry auth for the output's registry."""
    domain = plan.output.domain
    if config is not None and config.lookup(domain) is not None:
        return f"registry auth on the node for {domain}: yes"
    helper = config.helper_for(domain) if config is not None else ""
    if helper:
        return (
            f"note: registry {domain} uses credential helper "
            f"docker-credential-{helper}, which the console does not run"
        )
    return (
        f"warning: no credentials for {domain} on the node: buildctl pushes "
        f"without login; run `docker login {domain}` there as the user that "
        "runs buildctl if the registry needs them"
    )


def build_action(plan: BuildPlan) -> Action:
    """Return the audited action of a build, as the confirmation shows it."""
    return Action(f"build {plan.output} from {plan.context}", plan.argv)


async def run_build(
    plan: BuildPlan,
    spec: NodeSpec,
    transport: Transport,
    gate: ActionGate,
    *,
    confirmed_by: str,
    on_event: OnEvent | None = None,
    on_line: OnLine | None = None,
    cancel: asyncio.Event | None = None,
) -> StepResult:
    """Run the build as an audited action and follow its steps."""
    audit = gate.authorize(build_action(plan), spec, confirmed_by=confirmed_by)
    result: StepResult | None = None
    try:
        result = await stream_step(
            transport,
            plan.argv,
            on_event=on_event,
            on_line=on_line,
            cancel=cancel,
            progress=BuildProgress(),
            name="nydus-console-build",
        )
    finally:
        record_outcome(gate, audit, result)
    return result


def build_history() -> ConvertHistory:
    """Return the build history: the same JSON lines as conversions, own file."""
    return ConvertHistory(locations.state_dir() / "build-history.jsonl")


def history_entry(history: ConvertHistory, index: int) -> tuple[BuildOptions, str]:
    """Return the options and node of build history entry `index` (from 1)."""
    entries = history.entries()
    if not 1 <= index <= len(entries):
        have = f"entries 1 to {len(entries)}" if entries else "no entries yet"
        raise HistoryError(
            f"--rerun {index}: the build history has {have}; list them with "
            "`build --history`"
        )
    entry = entries[index - 1]
    return BuildOptions.from_dict(entry.record.get("options") or {}), entry.node


def history_record(plan: BuildPlan, node: str, result: StepResult) -> dict[str, Any]:
    """Return the history entry of one build: options, outcome, step times."""
    return {
        "node": node,
        "options": plan.options.to_dict(),
        "target": str(plan.output),
        "command": quote_argv(plan.argv),
        "outcome": result.outcome,
        "exit_status": result.exit_status,
        "last_error": result.last_error,
        "seconds": round(result.seconds, 3),
        "steps": result.progress.summary(),
    }
