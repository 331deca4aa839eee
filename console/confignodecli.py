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
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from nydus_console import locations
from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.configedit.apply import ApplyReport, ConfigApplier
from nydus_console.configedit.document import ConfigEditError, Document
from nydus_console.configedit.drift import DriftReport, align, compare
from nydus_console.configedit.remote import (
    KIND_TITLES,
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


def add_drift_parser(actions: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    drift = actions.add_parser(
        "drift",
        parents=list(parents),
        help="compare a config file across nodes, key by key",
        description="Read the same config file on every node and list the keys "
        "whose value differs, with the value most nodes have and the nodes that "
        "differ. --align NODE gives that node the majority's values, with the "
        "same validation, diff, backup, restart and rollback as `config set`. "
        "Exit status: 0, 2 the alignment failed, 3 a node or its file could not "
        f"be read, {EXIT_USAGE} invalid arguments.",
    )
    drift.add_argument(
        "--kind",
        choices=KINDS,
        default="snapshotter",
        help="which config (default: snapshotter)",
    )
    drift.add_argument("--json", action="store_true", help="print JSON")
    drift.add_argument("--align", metavar="NODE", default="", help="align NODE")
    drift.add_argument("--dry-run", action="store_true", help="show, write nothing")
    drift.add_argument("--yes", action="store_true", help="write without asking")


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
        hint = _closest_key(key)
        raise UsageError(
            f"no config has a key {key!r}{hint}. To use a key the console does "
            f"not know, give --kind ({', '.join(KINDS)})"
        )
    raise UsageError(f"{key!r} is a key of {' and '.join(found)}; give --kind")


def _closest_key(key: str) -> str:
    """Return " (did you mean X?)" for the known key nearest to `key`, or ""."""
    names: list[str] = []
    for kind in KINDS:
        for layout in ("v1", "v2") if kind == "nydusd" else ("",):
            names += load_schema(kind, layout).names()
    # log_level for log.level: separators are the most common slip.
    dotted = key.replace("_", ".").replace("-", ".")
    for candidate in (key, dotted):
        close = difflib.get_close_matches(candidate, names, n=1, cutoff=0.75)
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


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
    if args.config_command == "drift":
        runner = NodeConfigRun(inventory, args.kind, "", read_only=read_only)
        return asyncio.run(
            runner.drift(
                as_json=args.json,
                align_node=args.align,
                dry_run=args.dry_run,
                confirmed=args.yes,
            )
        )
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
        return asyncio.run(runner.get_value(as_json=args.json))
    return asyncio.run(
        runner.set_value(
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
        loaded = await self.load(name)
        if isinstance(loaded, str):
            self.say(f"{name}: {loaded}")
            return None
        return loaded

    async def load(self, name: str) -> tuple[NodeReport, NodeConfig] | str:
        """Probe a node and read its file; return why not when that fails."""
        report = await self.fleet.probe_node(name)
        if report.error is not None:
            return f"unreachable: {report.error}"
        try:
            config = await load_node_config(
                self.fleet.transports[name], report.spec, report.facts, self.kind
            )
        except ConfigReadError as exc:
            return str(exc)
        if not config.exists:
            return f"{config.path} does not exist"
        if config.document is None:
            return str(config.syntax)
        return report, config

    async def get_value(self, *, as_json: bool) -> int:
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
                    f"{row['node']}: {row['key']} = {row['shown']}{where}  "
                    f"[{row['path']}]"
                )
        return status

    def _row(self, name: str, config: NodeConfig) -> dict[str, Any]:
        document = config.document
        assert document is not None
        entry = document.entry(self.key)
        present = document.has(self.key)
        if present:
            value = document.get(self.key)
        else:
            value = entry.default if entry else None
        shown = display_value(entry, self.key, value)
        return {
            "node": name,
            "path": config.path,
            "key": self.key,
            "set": present,
            # The typed value in JSON; a credential only as ***.
            "value": "***" if shown == "***" else value,
            "shown": shown,
        }

    async def set_value(
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
        def mutate(document: Document) -> None:
            document.set(self.key, value)

        return await self.change(name, mutate, dry_run, confirmed, restart)

    async def change(
        self,
        name: str,
        mutate: Callable[[Document], None],
        dry_run: bool,
        confirmed: bool,
        restart: bool,
    ) -> int:
        """Apply `mutate` to the node's file: validate, show, and maybe write it."""
        loaded = await self._load(name)
        if loaded is None:
            return EXIT_UNREACHABLE
        report, config = loaded
        document = config.document
        assert document is not None
        context = node_context(report.facts, report.spec, self.kind)
        before = {_identity(p) for p in validate(document, context)}
        try:
            mutate(document)
        except (ConfigEditError, ValueError) as exc:
            self.say(f"{name}: {exc}")
            return EXIT_FAILED
        if not document.changed:
            self.say(f"{name}: nothing to change")
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

    async def drift(
        self, *, as_json: bool, align_node: str, dry_run: bool, confirmed: bool
    ) -> int:
        names = list(self.fleet.specs)
        try:
            loaded = await asyncio.gather(*(self.load(n) for n in names))
            report = DriftReport(self.kind, [])
            documents: dict[str, Document] = {}
            for name, item in zip(names, loaded, strict=True):
                if isinstance(item, str):
                    report.unreadable[name] = item
                elif item[1].document is not None:
                    documents[name] = item[1].document
            found = compare(self.kind, documents)
            found.unreadable = report.unreadable
            self._print_drift(found, as_json)
            if not align_node:
                return EXIT_UNREACHABLE if found.unreadable else 0
            return await self._align(found, align_node, dry_run, confirmed)
        finally:
            await self.fleet.close()

    def _print_drift(self, report: DriftReport, as_json: bool) -> None:
        if as_json:
            json.dump(report.to_dict(), self.out, indent=2)
            self.out.write("\n")
            return
        compared = len(report.nodes)
        self.say(f"{KIND_TITLES[self.kind]} compared on {compared} node(s)")
        for name, reason in report.unreadable.items():
            self.say(f"  {name}: not compared: {reason}")
        if not report.keys:
            self.say("  every key has the same value on every node")
        for drift in report.keys:
            majority = drift.majority if drift.majority is not None else "(no majority)"
            self.say(f"  {drift.key}: most nodes {majority}")
            for node in drift.outliers:
                self.say(f"    {node}: {drift.shown[node]}")

    async def _align(
        self, report: DriftReport, node: str, dry_run: bool, confirmed: bool
    ) -> int:
        if node not in report.nodes:
            self.say(f"{node}: not compared, so it cannot be aligned")
            return EXIT_FAILED
        drifts = [d for d in report.outliers_of(node) if d.majority is not None]
        if not drifts:
            self.say(f"{node}: already has the majority's value of every key")
            return 0

        def mutate(document: Document) -> None:
            for drift in drifts:
                align(document, drift)

        return await self.change(node, mutate, dry_run, confirmed, restart=True)

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
