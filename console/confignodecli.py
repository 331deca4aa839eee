"""`nydus-console config get|set`: read or change one key on nodes, headless.

`set` goes through the same steps as the config screen: read the file from
the node, set the typed value, validate against the schema and the node's
other configs, show the masked diff, then write atomically with a backup,
restart the service, verify it and roll back on failure. Nodes are changed
one at a time; the first failure stops the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from nydus_console import locations
from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.configedit.apply import ApplyReport, ConfigApplier
from nydus_console.configedit.document import ConfigEditError, Document
from nydus_console.configedit.remote import (
    ConfigReadError,
    NodeConfig,
    load_node_config,
    node_context,
    plan_change,
)
from nydus_console.configedit.schema import KINDS, KeyEntry, load_schema
from nydus_console.configedit.validate import Problem, validate
from nydus_console.configedit.values import (
    ValueParseError,
    display_value,
    parse_value,
)
from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import Inventory

EXIT_FAILED = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 64


class UsageError(Exception):
    """A key or value that cannot be used; exit 64."""


def add_node_config_parsers(
    actions: Any, parents: Sequence[argparse.ArgumentParser]
) -> None:
    get = actions.add_parser(
        "get",
        parents=list(parents),
        help="print one key of a config file on every node",
        description="Print KEY of the snapshotter, nydusd or containerd config on "
        "every node (secrets as ***). Exit status: 0, 3 when a node or its file "
        f"could not be read, {EXIT_USAGE} invalid arguments.",
    )
    get.add_argument("key", metavar="KEY")
    _kind_option(get)
    get.add_argument("--json", action="store_true", help="print JSON")
    put = actions.add_parser(
        "set",
        parents=list(parents),
        help="change one key of a config file on nodes, with backup and rollback",
        description="Set KEY to VALUE in the config file on each node in turn: "
        "validate, show the diff, write atomically with a backup, restart the "
        "service and verify it; a failed restart restores the old file. The first "
        "node that fails stops the rest. Exit status: 0, 2 a node failed or the "
        "change is invalid, 3 a node could not be reached, "
        f"{EXIT_USAGE} invalid arguments.",
    )
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE")
    _kind_option(put)
    put.add_argument(
        "--dry-run",
        action="store_true",
        help="show the diff and problems; write nothing",
    )
    put.add_argument(
        "--yes", action="store_true", help="write without asking (the diff is printed)"
    )
    put.add_argument(
        "--no-restart",
        action="store_true",
        help="write the file but leave the service running with its old config",
    )


def _kind_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=KINDS,
        help="which config (default: the one whose schema knows KEY)",
    )


def kind_for(key: str, kind: str | None) -> tuple[str, KeyEntry | None]:
    """Pick the config kind of `key`: the one given, else the only schema with it."""
    if kind:
        return kind, _lookup(kind, key)
    found = [k for k in KINDS if _lookup(k, key) is not None]
    if len(found) == 1:
        return found[0], _lookup(found[0], key)
    if not found:
        raise UsageError(
            f"no config has a key {key!r}; give --kind "
            f"({', '.join(KINDS)}) to use a key the console does not know"
        )
    raise UsageError(f"{key!r} is a key of {' and '.join(found)}; give --kind")


def _lookup(kind: str, key: str) -> KeyEntry | None:
    layouts = ("v1", "v2") if kind == "nydusd" else ("",)
    for layout in layouts:
        try:
            entry = load_schema(kind, layout).lookup(key)
        except ValueError:
            entry = None
        if entry is not None:
            return entry
    return None


def run_node_config(
    inventory: Inventory, args: argparse.Namespace, *, read_only: bool
) -> int:
    try:
        kind, entry = kind_for(args.key, args.kind)
        value = None
        if args.config_command == "set":
            value = _typed_value(entry, args.key, args.value)
    except UsageError as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runner = NodeConfigRun(inventory, kind, args.key, read_only=read_only)
    if args.config_command == "get":
        return asyncio.run(runner.get(as_json=args.json))
    return asyncio.run(
        runner.set(
            value,
            dry_run=args.dry_run,
            confirmed=args.yes,
            restart=not args.no_restart,
        )
    )


def _identity(problem: Problem) -> tuple[str, str, str]:
    return (problem.severity, problem.key, problem.message)


def _typed_value(entry: KeyEntry | None, key: str, text: str) -> Any:
    if entry is None:
        return text  # an unknown key is set as a string; validation warns
    try:
        return parse_value(entry, text)
    except ValueParseError as exc:
        raise UsageError(str(exc)) from None


class NodeConfigRun:
    """get or set one key on every node of an inventory."""

    def __init__(
        self,
        inventory: Inventory,
        kind: str,
        key: str,
        *,
        read_only: bool,
        out: TextIO = sys.stdout,
    ) -> None:
        self.fleet = Fleet(inventory)
        self.kind = kind
        self.key = key
        self.out = out
        self.gate = ActionGate(
            AuditLog(locations.audit_log_file()), read_only=read_only
        )

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def _load(self, name: str) -> tuple[NodeReport, NodeConfig] | None:
        report = await self.fleet.probe_node(name)
        if report.error is not None:
            self.say(f"{name}: unreachable: {report.error}")
            return None
        try:
            config = await load_node_config(
                self.fleet.transports[name], report.spec, report.facts, self.kind
            )
        except ConfigReadError as exc:
            self.say(f"{name}: {exc}")
            return None
        if not config.exists:
            self.say(f"{name}: {config.path} does not exist")
            return None
        if config.document is None:
            self.say(f"{name}: {config.syntax}")
            return None
        return report, config

    async def get(self, *, as_json: bool) -> int:
        rows: list[dict[str, Any]] = []
        status = 0
        try:
            for name in self.fleet.specs:
                loaded = await self._load(name)
                if loaded is None:
                    status = EXIT_UNREACHABLE
                    continue
                rows.append(self._row(name, loaded[1]))
        finally:
            await self.fleet.close()
        if as_json:
            json.dump(rows, self.out, indent=2)
            self.out.write("\n")
        else:
            for row in rows:
                where = "" if row["set"] else " (not set; default)"
                self.say(
                    f"{row['node']}: {row['key']} = {row['value']}{where}  "
                    f"[{row['path']}]"
                )
        return status

    def _row(self, name: str, config: NodeConfig) -> dict[str, Any]:
        document = config.document
        assert document is not None
        entry = document.entry(self.key)
        present = document.has(self.key)
        value = (
            document.get(self.key) if present else (entry.default if entry else None)
        )
        return {
            "node": name,
            "path": config.path,
            "key": self.key,
            "set": present,
            "value": display_value(entry, self.key, value),
        }

    async def set(
        self, value: Any, *, dry_run: bool, confirmed: bool, restart: bool
    ) -> int:
        try:
            for index, name in enumerate(self.fleet.specs):
                status = await self._set_one(name, value, dry_run, confirmed, restart)
                if status:
                    rest = list(self.fleet.specs)[index + 1 :]
                    if rest:
                        self.say(f"stopped; not changed: {', '.join(rest)}")
                    return status
        finally:
            await self.fleet.close()
        return 0

    async def _set_one(
        self, name: str, value: Any, dry_run: bool, confirmed: bool, restart: bool
    ) -> int:
        loaded = await self._load(name)
        if loaded is None:
            return EXIT_UNREACHABLE
        report, config = loaded
        document = config.document
        assert document is not None
        context = node_context(report.facts, report.spec, self.kind)
        before = {_identity(p) for p in validate(document, context)}
        try:
            document.set(self.key, value)
        except ConfigEditError as exc:
            self.say(f"{name}: {exc}")
            return EXIT_FAILED
        if not document.changed:
            self.say(f"{name}: {self.key} is already that; nothing to write")
            return 0
        problems = validate(document, context)
        self._show_change(name, config, document, problems, before)
        if any(p.severity == "error" and _identity(p) not in before for p in problems):
            self.say(f"{name}: not written: this change brings the errors above")
            return EXIT_FAILED
        if dry_run:
            return 0
        if not confirmed:
            self.say(f"{name}: not written: add --yes to write the change shown above")
            return EXIT_FAILED
        change = plan_change(
            config, document.dumps(), report.spec, report.facts, restart
        )
        applier = ConfigApplier(
            self.gate,
            report.spec,
            self.fleet.transports[name],
            confirmed_by="--yes on the command line",
        )
        return self._show_report(await applier.apply(change))

    def _show_change(
        self,
        name: str,
        config: NodeConfig,
        document: Document,
        problems: list[Problem],
        before: set[tuple[str, str, str]],
    ) -> None:
        self.say(f"{name}: {config.path}")
        self.say(document.diff(masked=True).rstrip("\n"))
        for problem in problems:
            where = problem.key or problem.file
            known = _identity(problem) in before
            note = " (there before this change)" if known else ""
            self.say(f"  {problem.severity}{note}: {where}: {problem.message}")
            if problem.fix:
                self.say(f"    fix: {problem.fix}")

    def _show_report(self, report: ApplyReport) -> int:
        for step in report.steps:
            mark = "ok" if step.ok else "FAILED"
            detail = f": {step.detail}" if step.detail else ""
            self.say(f"  {mark:6} {step.name}{detail}")
        if report.rolled_back:
            self.say(f"{report.node}: the change was rolled back")
        return 0 if report.ok else EXIT_FAILED
