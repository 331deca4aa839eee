"""`nydus-console runbook list|show|run`: recovery runbooks from the command line.

`show` resolves a runbook for a node and prints each step with its command
and whether it is needed, without running anything but read-only queries.
`run` runs it. `--yes` confirms the steps that are not destructive. A
destructive step (kill, removing containerd's root, reboot) runs only on a
node named by `--yes-destructive NODE`, and is skipped with a message on the
others. Without `--yes`, a terminal asks before every step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from nydus_console import locations
from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import (
    Inventory,
    InventoryError,
    load_inventory,
    parse_node_argument,
    reject_misspelt_nodes,
)
from nydus_console.runbooks import load_runbooks
from nydus_console.runbooks.model import Runbook
from nydus_console.runbooks.params import parse_assignments
from nydus_console.runbooks.report import (
    PlannedStep,
    RunbookHooks,
    RunReport,
    RunStatus,
)
from nydus_console.runbooks.runner import RunbookRunner, run_on_nodes
from nydus_console.runbooks.terminal import AutoHooks, StepPrinter, TerminalHooks
from nydus_console.transport.base import TransportError

EXIT_FAILED = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 64


class UsageError(Exception):
    """Arguments that cannot be used; exit 64."""


def add_runbook_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser]
) -> None:
    runbook = commands.add_parser(
        "runbook",
        help="list, show and run recovery runbooks",
        description="Recovery runbooks: ordered steps that fix a known failure, "
        "each with a check, the command, a verification and what to do when it "
        "fails. docs/runbooks.md describes every runbook.",
    )
    actions = runbook.add_subparsers(
        dest="runbook_command", metavar="ACTION", required=True
    )
    listing = actions.add_parser(
        "list", help="list the runbooks", description="List every runbook."
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser(
        "show",
        parents=list(parents),
        help="show a runbook's steps, resolved for a node",
        description="Print the steps of runbook ID. With --node, resolve them on "
        "that node: the commands with the node's values, and whether each step is "
        "needed now. Only read-only queries run. Exit status: 0, 3 a node could "
        f"not be reached, {EXIT_USAGE} invalid arguments.",
    )
    _common(show)
    run = actions.add_parser(
        "run",
        parents=list(parents),
        help="run a runbook on nodes, step by step",
        description="Run runbook ID on each --node in turn (or --parallel at "
        "once); the first node that fails or is aborted stops the rest. Each step "
        "is checked first and runs only when needed. Every action goes to the "
        "audit log. An interrupted run continues at its step when run again. Exit "
        "status: 0 completed, 2 a step failed or read-only mode refused it, the run "
        "was aborted or nothing ran, "
        f"3 a node could not be reached, {EXIT_USAGE} invalid arguments.",
    )
    _common(run)
    _run_options(run)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the runbook (see `runbook list`)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value the runbook asks for, such as image=REF; repeat for more",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check and show every step, run none",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run the steps that are not destructive without asking",
    )
    parser.add_argument(
        "--yes-destructive",
        action="append",
        default=[],
        metavar="NODE",
        help="also run destructive steps (kill, rm -rf of containerd's root, "
        "reboot) on NODE; repeat for more nodes",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="run on at most N nodes at once (default 1)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start at the first step, dropping the saved progress of an earlier run",
    )


def run_runbook_command(
    args: argparse.Namespace,
    resolve: Callable[[argparse.Namespace], Inventory],
    *,
    read_only: bool,
) -> int:
    """Dispatch `runbook ACTION`; `resolve` builds the inventory like other commands."""
    command = RunbookCommand(read_only=read_only)
    try:
        if args.runbook_command == "list":
            return command.list_runbooks(as_json=args.json)
        runbook = command.runbook(args.id)
        params = parse_assignments(args.param)
        inventory, names = select_nodes(args, resolve)
        if args.runbook_command == "show":
            return asyncio.run(command.show(runbook, inventory, names, params, args))
        check_run_arguments(runbook, params, names, args)
    except (UsageError, InventoryError, ValueError) as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(command.run(runbook, inventory, names, params, args))
    except KeyboardInterrupt:
        print("interrupted; run the runbook again to continue", file=sys.stderr)
        return EXIT_FAILED


def select_nodes(
    args: argparse.Namespace, resolve: Callable[[argparse.Namespace], Inventory]
) -> tuple[Inventory, list[str]]:
    """Return the inventory and the names `--node` selects in it.

    With an inventory file, `--node NAME` picks that node. An address, USER@HOST
    or Host alias is added as a node reached over SSH, as elsewhere; another
    plain name is taken for a misspelt node and refused.
    """
    names = list(args.node or []) + list(getattr(args, "node_after", []))
    configured = args.inventory
    if (
        configured is None
        and not args.ssh_hosts
        and locations.inventory_file().exists()
    ):
        configured = locations.inventory_file()
    if configured is None:
        inventory = resolve(args)
        chosen = names or args.ssh_hosts
        return inventory, [n.name for n in inventory.nodes] if chosen else []
    inventory = load_inventory(configured)
    reject_misspelt_nodes(inventory, names)
    known = {node.name for node in inventory.nodes}
    selected = []
    for name in names:
        if name not in known:
            spec = parse_node_argument(name)
            inventory.nodes.append(spec)
            known.add(spec.name)
            name = spec.name
        selected.append(name)
    return inventory, selected


def check_run_arguments(
    runbook: Runbook, params: dict[str, str], names: list[str], args: argparse.Namespace
) -> None:
    if not names:
        raise UsageError("runbook run needs --node NAME for each node to run it on")
    unknown = sorted(set(params) - set(runbook.params))
    if unknown:
        raise UsageError(
            f"{runbook.id} has no parameter {unknown[0]!r}; its parameters: "
            f"{', '.join(sorted(runbook.params)) or 'none'}"
        )
    for param in runbook.params.values():
        if param.required and param.from_operator and param.name not in params:
            raise UsageError(
                f"{runbook.id} needs --param {param.name}=VALUE: {param.description}"
            )
    strangers = sorted(set(args.yes_destructive) - set(names))
    if strangers:
        raise UsageError(
            f"--yes-destructive {strangers[0]} names a node the run does not "
            f"include; it runs on: {', '.join(names)}"
        )
    if args.parallel < 1:
        raise UsageError(f"--parallel must be 1 or more, got {args.parallel}")


class RunbookCommand:
    def __init__(self, *, read_only: bool, out: TextIO | None = None) -> None:
        self.read_only = read_only
        # Looked up at call time, so that a replaced sys.stdout is used.
        self.out = out or sys.stdout

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def runbook(self, runbook_id: str) -> Runbook:
        runbooks = load_runbooks()
        if runbook_id not in runbooks:
            raise UsageError(
                f"no runbook {runbook_id!r}; runbooks: {', '.join(sorted(runbooks))}"
            )
        return runbooks[runbook_id]

    def list_runbooks(self, *, as_json: bool) -> int:
        runbooks = sorted(load_runbooks().values(), key=lambda r: r.id)
        if as_json:
            rows = [
                {"id": r.id, "title": r.title, "steps": len(r.steps)} for r in runbooks
            ]
            self.say(json.dumps(rows, indent=2))
            return 0
        width = max(len(r.id) for r in runbooks)
        for runbook in runbooks:
            self.say(f"{runbook.id:{width}}  {runbook.title}")
        return 0

    async def show(
        self,
        runbook: Runbook,
        inventory: Inventory,
        names: list[str],
        params: dict[str, str],
        args: argparse.Namespace,
    ) -> int:
        if not names:
            self._show_unresolved(runbook, args.json)
            return 0
        fleet = Fleet(inventory)
        documents: list[dict[str, Any]] = []
        status = 0
        try:
            for name in names:
                runner = self._runner(runbook, fleet, name, params, RunbookHooks())
                try:
                    plan = await runner.plan()
                except TransportError as exc:
                    self.say(f"{name}: unreachable: {exc}")
                    status = EXIT_UNREACHABLE
                    continue
                documents.append({"node": name, "steps": [p.to_dict() for p in plan]})
                if not args.json:
                    self._print_plan(runbook, name, plan)
        finally:
            await fleet.close()
        if args.json:
            self.say(json.dumps({"runbook": runbook.id, "nodes": documents}, indent=2))
        return status

    def _show_unresolved(self, runbook: Runbook, as_json: bool) -> None:
        if as_json:
            steps = [
                {"id": s.id, "title": s.title, "command": list(s.command)}
                for s in runbook.steps
            ]
            self.say(json.dumps({"runbook": runbook.id, "steps": steps}, indent=2))
            return
        self.say(f"{runbook.id}: {runbook.title}")
        self.say(f"  applies: {' '.join(runbook.applies.split())}")
        for param in runbook.params.values():
            if param.from_operator:
                need = "required" if param.required else f"default {param.default!r}"
                self.say(f"  --param {param.name}=VALUE ({need}): {param.description}")
        for number, step in enumerate(runbook.steps, start=1):
            mark = " [destructive]" if step.destructive else ""
            self.say(f"  {number}. {step.title}{mark}")
            if step.command:
                self.say(f"       {' '.join(step.command)}")
        self.say("Give --node NAME to resolve the commands for a node.")

    def _print_plan(self, runbook: Runbook, node: str, plan: list[PlannedStep]) -> None:
        self.say(f"{runbook.id} on {node}: {runbook.title}")
        printer = StepPrinter(self.out, len(runbook.steps))
        for planned in plan:
            printer.planned(node, planned)

    def _runner(
        self,
        runbook: Runbook,
        fleet: Fleet,
        name: str,
        params: dict[str, str],
        hooks: RunbookHooks,
        **options: Any,
    ) -> RunbookRunner:
        gate = ActionGate(
            AuditLog(locations.audit_log_file()), read_only=self.read_only
        )
        return RunbookRunner(
            runbook,
            fleet.specs[name],
            fleet.transports[name],
            gate,
            hooks,
            params=params,
            probe=fleet.probers[name].probe,
            **options,
        )

    async def run(
        self,
        runbook: Runbook,
        inventory: Inventory,
        names: list[str],
        params: dict[str, str],
        args: argparse.Namespace,
    ) -> int:
        interactive = not args.yes and not args.dry_run and sys.stdin.isatty()
        if not (args.yes or args.dry_run or interactive):
            self.say(
                "nothing run: add --yes to run the steps (and --yes-destructive "
                "NODE for destructive ones), --dry-run to see them, or run it in a "
                "terminal to confirm each step"
            )
            return EXIT_FAILED
        printer = StepPrinter(self.out, len(runbook.steps), quiet=args.json)
        hooks: RunbookHooks = (
            TerminalHooks(printer, args.yes, args.yes_destructive)
            if interactive
            else AutoHooks(printer, args.yes_destructive)
        )
        fleet = Fleet(inventory)
        try:
            runners = [
                self._runner(
                    runbook,
                    fleet,
                    name,
                    params,
                    hooks,
                    dry_run=args.dry_run,
                    fresh=args.fresh,
                )
                for name in names
            ]
            parallel = 1 if interactive else args.parallel
            reports = await run_on_nodes(runners, parallel)
        finally:
            await fleet.close()
        self._summary(reports, args.json)
        return run_exit_status(reports)

    def _summary(self, reports: list[RunReport], as_json: bool) -> None:
        if as_json:
            self.say(json.dumps([r.to_dict() for r in reports], indent=2))
            return
        for report in reports:
            counts = report.step_counts()
            line = f"{report.node}: {report.runbook} {report.status} ({counts})"
            self.say(line)
            if report.message:
                self.say(f"  {report.message}")


def run_exit_status(reports: list[RunReport]) -> int:
    if any(r.unreachable for r in reports):
        return EXIT_UNREACHABLE
    if all(r.status is RunStatus.COMPLETED for r in reports):
        return 0
    return EXIT_FAILED
