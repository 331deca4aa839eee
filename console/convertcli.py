"""`nydus-console convert SOURCE [TARGET] --node NAME`: run nydusify on a node.

The options are checked and the command shown before anything runs. The
conversion pushes to a registry, so it is an action: refused in read-only
mode, run only with --yes or after a yes at the terminal, and audited. Its
progress is read from nydusify's log lines; Ctrl-C closes the channel,
which ends nydusify on the node. Every run is kept in the history
(`--history`) and can be repeated by its number (`--rerun N`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.actions import ActionRefused
from nydus_console.fleet import make_transport
from nydus_console.images.convert import (
    ConvertError,
    ConvertOptions,
    ConvertPlan,
    plan_convert,
    plan_lines,
)
from nydus_console.images.credentials import CredentialsError
from nydus_console.images.history import ConvertHistory, HistoryEntry, HistoryError
from nydus_console.images.progress import StageEvent
from nydus_console.images.run import (
    StepResult,
    credential_report,
    history_record,
    node_docker_config,
    run_convert,
)
from nydus_console.inventory import Inventory, InventoryError, NodeSpec
from nydus_console.streamcli import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    StreamedCommand,
    UsageError,
    one_node,
)
from nydus_console.transport.base import Transport, TransportError
from nydus_console.transport.hostkeys import HostKeyStore

SCHEMA = "nydus-console/convert/v1"


def add_convert_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "convert",
        parents=list(parents),
        help="convert an OCI image to Nydus with nydusify on a node",
        description="Run `nydusify convert` on one node (--node NAME) and follow "
        "its stages; TARGET defaults to the source repository tagged "
        "<source tag>-nydus. The command is shown first and runs with --yes or "
        "after a yes at the terminal. Exit status: 0 converted (and checked), "
        "1 nydusify or the check failed, the run was cancelled, refused or not "
        f"confirmed, 3 the node could not be reached, {EXIT_USAGE} invalid "
        "arguments.",
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="image to convert")
    parser.add_argument("target", nargs="?", metavar="TARGET", help="image to push")
    _add_nydusify_options(parser)
    run = parser.add_argument_group("running")
    run.add_argument("--check", action="store_true", help="run nydusify check after")
    run.add_argument("--yes", action="store_true", help="run without asking")
    run.add_argument("--dry-run", action="store_true", help="show the command and stop")
    run.add_argument("--json", action="store_true", help="print JSON at the end")
    run.add_argument(
        "--verbose", action="store_true", help="print every line nydusify logs"
    )
    run.add_argument(
        "--history", action="store_true", help="list the conversions run so far"
    )
    run.add_argument(
        "--rerun", type=int, metavar="N", help="run entry N of --history again"
    )


def _add_nydusify_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("nydusify")
    add = group.add_argument
    add("--fs-version", default="6", metavar="5|6", help="RAFS version (default 6)")
    add("--compressor", default="zstd", help="none, lz4_block or zstd (default)")
    add(
        "--chunk-size",
        default="",
        metavar="SIZE",
        help="power of two, 0x1000-0x1000000",
    )
    add(
        "--batch-size",
        default="",
        metavar="SIZE",
        help="power of two, 0x1000-0x1000000",
    )
    add("--platform", default="", metavar="OS/ARCH", help="convert this platform")
    add("--all-platforms", action="store_true", help="convert every platform")
    add("--oci", action="store_true", help="push an OCI-compatible manifest")
    add("--oci-ref", action="store_true", help="build an OCI reference image")
    add("--merge-platform", action="store_true", help="push an index of OCI and Nydus")
    add("--source-insecure", action="store_true", help="source over plain HTTP")
    add("--target-insecure", action="store_true", help="target over plain HTTP")
    add("--backend-type", default="", metavar="TYPE", help="oss, s3 or localfs")
    add("--backend-config-file", default="", metavar="PATH", help="on the node")
    add(
        "--prefetch-pattern",
        action="append",
        default=[],
        dest="prefetch_patterns",
        metavar="PATH",
        help="a path in the image to prefetch; repeat for more",
    )
    add("--work-dir", default="", metavar="DIR", help="nydusify's work dir on the node")
    add("--nydusify", default="nydusify", metavar="PATH", help="nydusify on the node")


def options_from(args: argparse.Namespace) -> ConvertOptions:
    if not args.source:
        raise UsageError("convert needs SOURCE (or --rerun N, or --history)")
    return ConvertOptions(
        source=args.source,
        target=args.target or "",
        fs_version=args.fs_version,
        compressor=args.compressor,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        platform=args.platform,
        all_platforms=args.all_platforms,
        oci=args.oci,
        oci_ref=args.oci_ref,
        merge_platform=args.merge_platform,
        source_insecure=args.source_insecure,
        target_insecure=args.target_insecure,
        backend_type=args.backend_type,
        backend_config_file=args.backend_config_file,
        prefetch_patterns=tuple(args.prefetch_patterns),
        work_dir=args.work_dir,
        nydusify=args.nydusify,
        check=args.check,
    )


Resolver = Callable[[argparse.Namespace], Inventory]


def run_convert_command(
    args: argparse.Namespace, resolve: Resolver, *, read_only: bool
) -> int:
    history = ConvertHistory()
    command = ConvertCommand(history, read_only=read_only, as_json=args.json)
    try:
        if args.history:
            return command.list_history()
        options = _options_or_rerun(args, history)
        plan = plan_convert(options)
        inventory = resolve(args)
        spec = one_node(inventory, "convert")
    except (UsageError, ConvertError, HistoryError, InventoryError) as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    host_keys = HostKeyStore(
        locations.known_hosts_file(), [Path(p) for p in inventory.known_hosts]
    )
    transport = make_transport(spec, host_keys)
    try:
        return asyncio.run(command.run(plan, spec, transport, args))
    except KeyboardInterrupt:
        # Only before the run starts: during it, ctrl+c cancels the run.
        print("nydus-console: interrupted before the conversion ran", file=sys.stderr)
        return EXIT_FAILED


def _options_or_rerun(
    args: argparse.Namespace, history: ConvertHistory
) -> ConvertOptions:
    if args.rerun is None:
        return options_from(args)
    if args.source:
        raise UsageError("give SOURCE or --rerun N, not both")
    entry = history.get(args.rerun)
    given = (args.node or []) + getattr(args, "node_after", [])
    if not given and entry.node:
        args.node = [entry.node]
    return entry.options


class ConvertCommand(StreamedCommand):
    HISTORY_NOUN = "conversions"
    QUESTION = "Run this on {node}? It pushes to the target [y/N] "

    def history_row(self, entry: HistoryEntry) -> str:
        record = entry.record
        options = entry.options
        return (
            f"{entry.index:>3}  {record.get('time', '?')}  {entry.node}  "
            f"{record.get('outcome', '?')}  {options.source} -> "
            f"{record.get('target', options.target)}"
        )

    def preview(self, plan: ConvertPlan, spec: NodeSpec) -> None:
        self.say(f"convert on {spec.name} ({spec.address})")
        self.say(f"  source:  {plan.source}")
        self.say(f"  target:  {plan.target}")
        for line in plan_lines(plan):
            self.say(f"  {line}")

    async def credentials(
        self, plan: ConvertPlan, spec: NodeSpec, t: Transport
    ) -> list[str]:
        try:
            config = await node_docker_config(t, spec.name)
        except CredentialsError as exc:
            return [f"warning: {exc}"]
        lines = credential_report(config, plan)
        for line in lines:
            self.say(line)
        return lines

    async def run(
        self,
        plan: ConvertPlan,
        spec: NodeSpec,
        transport: Transport,
        args: argparse.Namespace,
    ) -> int:
        self.verbose = args.verbose
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "node": spec.name,
            "source": str(plan.source),
            "target": str(plan.target),
            "command": list(plan.argv),
            "check_command": list(plan.check_argv),
            "dry_run": args.dry_run,
        }
        self.preview(plan, spec)
        try:
            code = await self._run(plan, spec, transport, args, document)
        finally:
            await transport.close()
        self.write_document(document, code)
        return code

    async def _run(
        self,
        plan: ConvertPlan,
        spec: NodeSpec,
        transport: Transport,
        args: argparse.Namespace,
        document: dict[str, Any],
    ) -> int:
        try:
            document["credentials"] = await self.credentials(plan, spec, transport)
        except TransportError as exc:
            return self.unreachable(spec, exc, document)
        if args.dry_run:
            self.say("dry run: nothing was run")
            return 0
        confirmed_by = self.confirmation(args, spec)
        if not confirmed_by:
            self.say("nothing run: add --yes, or run it in a terminal to confirm")
        return await self._convert(plan, spec, transport, confirmed_by, document)

    async def _convert(
        self,
        plan: ConvertPlan,
        spec: NodeSpec,
        transport: Transport,
        confirmed_by: str,
        document: dict[str, Any],
    ) -> int:
        with self.cancelled_by_ctrl_c() as cancel:
            try:
                result, check = await run_convert(
                    plan,
                    spec,
                    transport,
                    self.gate(),
                    confirmed_by=confirmed_by,
                    on_event=self._event,
                    on_line=self.line,
                    cancel=cancel,
                )
            except ActionRefused as exc:
                return self.stop(document, str(exc), EXIT_FAILED)
        return self._finish(plan, spec, result, check, document)

    def _event(self, event: StageEvent) -> None:
        self.say(event.describe())

    def _finish(
        self,
        plan: ConvertPlan,
        spec: NodeSpec,
        result: StepResult,
        check: StepResult | None,
        document: dict[str, Any],
    ) -> int:
        document["convert"] = result.to_dict()
        document["check"] = check.to_dict() if check else None
        self.say_result("nydusify convert", result)
        if check is not None:
            self.say_result("nydusify check", check)
        self.history.append(history_record(plan, spec.name, result, check))
        if result.exit_status is None and not result.cancelled:
            return EXIT_UNREACHABLE
        if not result.ok or (check is not None and not check.ok):
            return EXIT_FAILED
        return 0
