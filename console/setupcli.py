"""`nydus-console setup`: take nodes from containerd only to Nydus verified.

For each node: survey it (read-only), derive the settings from the answers,
print the plan (every file with its diff, every command), then, once
confirmed, apply it step by step, verify, and print the Prometheus scrape
job. `--plan-only` stops after the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nydus_console import locations
from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory, InventoryError
from nydus_console.runbookcli import select_nodes
from nydus_console.setup.answers import AnswerError, Answers, load_answers
from nydus_console.setup.apply import StepStatus
from nydus_console.setup.plan import PlanError, PlanStep, SetupPlan
from nydus_console.setup.release import (
    Binary,
    ReleaseError,
    staging_dir,
    unpack_binaries,
)
from nydus_console.setup.render import (
    plan_lines,
    settings_lines,
    summary_lines,
    survey_lines,
    verification_lines,
)
from nydus_console.setup.session import NodeSetup
from nydus_console.setup.state import SetupStateStore
from nydus_console.setup.survey import SurveyError
from nydus_console.setup.verify import (
    GRAFANA_DASHBOARD,
    local_only,
    scrape_job,
    scrape_target,
)
from nydus_console.transport.base import TransportError

EXIT_FAILED = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 64


def add_setup_parser(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    setup = commands.add_parser(
        "setup",
        parents=list(parents),
        help="set up Nydus on containerd nodes, step by step",
        description="Survey each --node, derive the settings from the answers, "
        "show every file (with its diff) and command, then install the binaries "
        "from the release tarballs, write the configs and the unit, restart the "
        "snapshotter and containerd, and verify. A second run does only what is "
        "still missing; an interrupted run continues where it stopped. Exit "
        "status: 0 set up and verified (or nothing to do), 2 a step or a check "
        "failed, or nothing ran, 3 a node could not be reached, "
        f"{EXIT_USAGE} invalid arguments, answers or tarballs.",
    )
    setup.add_argument(
        "--answers",
        type=Path,
        metavar="FILE",
        help="TOML file of answers shared by the nodes (see the user guide)",
    )
    setup.add_argument(
        "--set",
        dest="answer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one answer, such as fs_driver=fusedev; wins over --answers",
    )
    setup.add_argument(
        "--tarball",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="release tarball on this machine to install binaries from, with "
        "PATH.sha256 beside it; repeat for the nydus and snapshotter tarballs",
    )
    setup.add_argument(
        "--plan-only",
        action="store_true",
        help="print the survey, settings and plan; change nothing",
    )
    setup.add_argument(
        "--yes", action="store_true", help="apply the plan without asking"
    )
    setup.add_argument("--json", action="store_true", help="print JSON")


def run_setup_command(
    args: argparse.Namespace,
    resolve_inventory: Callable[[argparse.Namespace], Inventory],
    *,
    read_only: bool,
) -> int:
    try:
        answers = load_answers(args.answers, args.answer)
        inventory, names = select_nodes(args, resolve_inventory)
        if not names:
            names = [n.name for n in inventory.nodes]
    except (AnswerError, InventoryError) as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with staging_dir() as workdir:
        try:
            binaries = (
                unpack_binaries(args.tarball, Path(workdir)) if (args.tarball) else {}
            )
        except ReleaseError as exc:
            print(f"nydus-console: {exc}", file=sys.stderr)
            return EXIT_USAGE
        command = SetupCommand(answers, binaries, args, read_only=read_only)
        try:
            return asyncio.run(command.run(inventory, names))
        except KeyboardInterrupt:
            print("interrupted; run setup again to continue", file=sys.stderr)
            return EXIT_FAILED


@dataclass
class NodeOutcome:
    node: str
    status: str = ""
    message: str = ""
    plan: SetupPlan | None = None
    steps: list[dict[str, str]] = field(default_factory=list)
    checks: list[dict[str, object]] = field(default_factory=list)
    target: str = ""
    local_metrics: bool = False

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"node": self.node, "status": self.status}
        if self.message:
            data["message"] = self.message
        if self.plan is not None:
            data.update(self.plan.to_dict())
        data["results"] = self.steps
        data["verification"] = self.checks
        return data


STATUS_EXIT = {
    "planned": 0,
    "nothing to do": 0,
    "set up": 0,
    "failed": EXIT_FAILED,
    "not run": EXIT_FAILED,
    "unreachable": EXIT_UNREACHABLE,
    "refused": EXIT_FAILED,
    "cannot plan": EXIT_USAGE,
}


class SetupCommand:
    def __init__(
        self,
        answers: Answers,
        binaries: dict[str, Binary],
        args: argparse.Namespace,
        *,
        read_only: bool,
        out: TextIO | None = None,
        store: SetupStateStore | None = None,
    ) -> None:
        self.answers = answers
        self.binaries = binaries
        self.args = args
        self.read_only = read_only
        self.out = out or sys.stdout
        self.store = store or SetupStateStore()

    def say(self, *lines: str) -> None:
        if self.args.json:
            return
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    async def run(self, inventory: Inventory, names: list[str]) -> int:
        fleet = Fleet(inventory)
        outcomes: list[NodeOutcome] = []
        try:
            for name in names:
                outcome = await self.node(fleet, name)
                outcomes.append(outcome)
                if self._stops(outcome):
                    break
        finally:
            await fleet.close()
        self.finish(outcomes)
        return max(
            (STATUS_EXIT.get(o.status, EXIT_FAILED) for o in outcomes), default=0
        )

    def _stops(self, outcome: NodeOutcome) -> bool:
        """Return whether the run stops after this node.

        Applying stops at the first node that did not end well, so that one
        problem is not repeated across the fleet. A plan changes nothing, so
        --plan-only plans every node it can reach.
        """
        if self.args.plan_only:
            return False
        return outcome.status in ("failed", "unreachable", "refused", "not run")

    async def node(self, fleet: Fleet, name: str) -> NodeOutcome:
        outcome = NodeOutcome(name)
        gate = ActionGate(
            AuditLog(locations.audit_log_file()), read_only=self.read_only
        )
        setup = NodeSetup(
            fleet.specs[name], fleet.transports[name], gate, store=self.store
        )
        try:
            self.say(*survey_lines(await setup.survey()))
            plan = await setup.plan(self.answers, self.binaries)
        except TransportError as exc:
            return self._end(outcome, "unreachable", str(exc))
        except SurveyError as exc:
            return self._end(outcome, "failed", str(exc))
        except (AnswerError, PlanError) as exc:
            return self._end(outcome, "cannot plan", str(exc))
        outcome.plan = plan
        outcome.target = scrape_target(setup.spec, plan.settings)
        outcome.local_metrics = local_only(plan.settings)
        self.say(*settings_lines(plan), *plan_lines(plan))
        if self.args.plan_only:
            return self._end(outcome, "planned", "--plan-only: nothing was changed")
        if not plan.empty:
            refusal = self._confirmation(name, plan)
            if refusal:
                return self._end(outcome, "not run", refusal)
        if not plan.empty and not await self._apply(setup, plan, outcome):
            return outcome
        try:
            checks = await setup.verify(plan)
        except TransportError as exc:
            return self._end(outcome, "unreachable", str(exc))
        outcome.checks = [c.to_dict() for c in checks]
        self.say(*verification_lines(name, checks))
        if not all(c.ok for c in checks):
            return self._end(outcome, "failed", "verification failed")
        status = "nothing to do" if plan.empty else "set up"
        return self._end(outcome, status, "")

    def _confirmation(self, name: str, plan: SetupPlan) -> str:
        """Ask to apply the plan; return "" when confirmed, else why it did not run."""
        if self.args.yes:
            return ""
        if self.args.json or not sys.stdin.isatty():
            return (
                "the plan was not confirmed: with --json or without a terminal "
                "setup cannot ask, so add --yes to apply it"
            )
        self.out.write(
            f"Apply these {len(plan.steps)} step(s) on {name}? "
            "Type yes to apply, anything else cancels: "
        )
        self.out.flush()
        answer = sys.stdin.readline().strip()
        if answer.lower() == "yes":
            return ""
        return f"cancelled: the answer was {answer!r}, not yes; nothing was changed"

    async def _apply(
        self, setup: NodeSetup, plan: SetupPlan, outcome: NodeOutcome
    ) -> bool:
        total = len(plan.steps)
        numbers = {step.id: n for n, step in enumerate(plan.steps, start=1)}

        def progress(step: PlanStep, status: StepStatus, detail: str) -> None:
            tail = f": {detail}" if detail else ""
            self.say(f"   [{numbers[step.id]}/{total}] {step.title} {status}{tail}")

        self.say(f"== {setup.node}: applying")
        result = await setup.apply(
            plan,
            confirmed_by="--yes" if self.args.yes else setup.node,
            progress=progress,
        )
        outcome.steps = [r.to_dict() for r in result.results]
        if result.ok:
            return True
        failed = result.results[-1]
        if failed.status is StepStatus.REFUSED:
            self._end(
                outcome,
                "refused",
                f"step {failed.step} refused: {failed.detail}. Nothing ran and "
                "no progress was recorded; run setup without --read-only (and "
                "on a node not marked read-only) to apply the plan",
            )
            return False
        status = "failed"
        if result.unreachable:
            status = "unreachable"
        elif result.refused:
            status = "refused"
        self._end(
            outcome,
            status,
            f"step {failed.step} failed: {failed.detail}. Fix the cause and run "
            "setup again; it continues with this step",
        )
        return False

    def _end(self, outcome: NodeOutcome, status: str, message: str) -> NodeOutcome:
        outcome.status = status
        outcome.message = message
        line = f"== {outcome.node}: {status}"
        self.say(line + (f": {message}" if message else ""))
        return outcome

    def finish(self, outcomes: list[NodeOutcome]) -> None:
        unreachable = [o.node for o in outcomes if o.status == "unreachable"]
        if unreachable:
            self.say(
                f"== not reached: {', '.join(unreachable)}; check their address "
                "and SSH login, then run setup again for them"
            )
        targets = [o.target for o in outcomes if o.target]
        job = scrape_job(targets)
        local = [o.node for o in outcomes if o.target and o.local_metrics]
        if self.args.json:
            document = {
                "schema": "nydus-console/setup/v1",
                "nodes": [o.to_dict() for o in outcomes],
                "prometheus_scrape_job": job,
                "grafana_dashboard": GRAFANA_DASHBOARD,
            }
            self.out.write(json.dumps(document, indent=2) + "\n")
            return
        if targets:
            self.say(*summary_lines(job, local))
