"""`nydus-console build --node NAME --context DIR --output REF`: buildkit on a node.

The options are checked and the command shown before anything runs; then
the node is checked for buildctl, buildkitd's socket, the context and the
Dockerfile. The build pushes to a registry, so it is an action: refused in
read-only mode, run only with --yes or after a yes at the terminal, and
audited. Its steps are read from buildctl's plain progress output; Ctrl-C
closes the channel, which ends buildctl on the node. Every run is kept in
the build history (`--history`) and can be repeated by its number
(`--rerun N`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.actions import ActionRefused
from nydus_console.convertcli import Resolver
from nydus_console.fleet import make_transport
from nydus_console.images.build import (
    DEFAULT_SOCKET,
    BuildError,
    BuildOptions,
    BuildPlan,
    plan_build,
)
from nydus_console.images.buildprogress import BuildEvent
from nydus_console.images.buildrun import (
    BuildUnavailable,
    build_history,
    credential_line,
    history_entry,
    history_record,
    preflight,
    run_build,
)
from nydus_console.images.credentials import CredentialsError
from nydus_console.images.history import ConvertHistory, HistoryError
from nydus_console.images.run import StepResult, node_docker_config
from nydus_console.inventory import InventoryError, NodeSpec
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
from nydus_console.transport.quoting import quote_argv

SCHEMA = "nydus-console/build/v1"


def add_build_parser(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "build",
        parents=list(parents),
        help="build and push a Nydus image with buildkit on a node",
        description="Run `buildctl build` with the Dockerfile frontend on one "
        "node (--node NAME) that runs buildkitd, and push the image with "
        "compression=nydus. The context directory and the Dockerfile are on "
        "the node. The command is shown first and runs with --yes or after a "
        "yes at the terminal. Exit status: 0 built and pushed, 1 buildctl "
        "failed, the node lacks buildkit, the run was cancelled, refused or "
        f"not confirmed, 3 the node could not be reached, {EXIT_USAGE} "
        "invalid arguments.",
    )
    add = parser.add_argument_group("build").add_argument
    add("--context", default="", metavar="DIR", help="context directory on the node")
    add(
        "--file",
        default="Dockerfile",
        metavar="PATH",
        help="Dockerfile, relative to the context or absolute (default Dockerfile)",
    )
    add("--output", default="", metavar="REF", help="image to push")
    add("--platform", default="", metavar="OS/ARCH", help="build for these platforms")
    add(
        "--build-arg",
        action="append",
        default=[],
        dest="build_args",
        metavar="KEY=VALUE",
        help="a build argument; repeat for more",
    )
    add("--insecure", action="store_true", help="push over plain HTTP")
    add("--buildctl", default="buildctl", metavar="PATH", help="buildctl on the node")
    add(
        "--buildkit-socket",
        default=DEFAULT_SOCKET,
        metavar="PATH",
        help=f"buildkitd's socket on the node (default {DEFAULT_SOCKET})",
    )
    run = parser.add_argument_group("running").add_argument
    run("--yes", action="store_true", help="run without asking")
    run("--dry-run", action="store_true", help="show the command and stop")
    run("--json", action="store_true", help="print JSON at the end")
    run("--verbose", action="store_true", help="print every line buildctl prints")
    run("--history", action="store_true", help="list the builds run so far")
    run("--rerun", type=int, metavar="N", help="run entry N of --history again")


def options_from(args: argparse.Namespace) -> BuildOptions:
    missing = [f for f in ("context", "output") if not getattr(args, f)]
    if missing:
        flags = " and ".join(f"--{f}" for f in missing)
        raise UsageError(f"build needs {flags} (or --rerun N, or --history)")
    return BuildOptions(
        context=args.context,
        output=args.output,
        file=args.file,
        platform=args.platform,
        build_args=tuple(args.build_args),
        insecure=args.insecure,
        buildctl=args.buildctl,
        socket=args.buildkit_socket,
    )


def run_build_command(
    args: argparse.Namespace, resolve: Resolver, *, read_only: bool
) -> int:
    history = build_history()
    command = BuildCommand(history, read_only=read_only, as_json=args.json)
    try:
        if args.history:
            return command.list_history()
        plan = plan_build(_options_or_rerun(args, history))
        inventory = resolve(args)
        spec = one_node(inventory, "build")
    except (UsageError, BuildError, HistoryError, InventoryError) as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    host_keys = HostKeyStore(
        locations.known_hosts_file(), [Path(p) for p in inventory.known_hosts]
    )
    transport = make_transport(spec, host_keys)
    try:
        return asyncio.run(command.run(plan, spec, transport, args))
    except KeyboardInterrupt:
        print("nydus-console: interrupted before the build ran", file=sys.stderr)
        return EXIT_FAILED


def _options_or_rerun(
    args: argparse.Namespace, history: ConvertHistory
) -> BuildOptions:
    if args.rerun is None:
        return options_from(args)
    if args.context or args.output:
        raise UsageError("give --context and --output, or --rerun N, not both")
    options, node = history_entry(history, args.rerun)
    given = (args.node or []) + getattr(args, "node_after", [])
    if not given and node:
        args.node = [node]
    return options


class BuildCommand(StreamedCommand):
    HISTORY_NOUN = "builds"
    QUESTION = "Run this on {node}? It pushes the image [y/N] "

    def preview(self, plan: BuildPlan, spec: NodeSpec) -> None:
        self.say(f"build on {spec.name} ({spec.address})")
        self.say(f"  context:    {plan.context}")
        self.say(f"  Dockerfile: {plan.dockerfile}")
        self.say(f"  output:     {plan.output}")
        self.say(f"  command:    {quote_argv(plan.argv)}")

    async def run(
        self,
        plan: BuildPlan,
        spec: NodeSpec,
        transport: Transport,
        args: argparse.Namespace,
    ) -> int:
        self.verbose = args.verbose
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "node": spec.name,
            "output": str(plan.output),
            "command": list(plan.argv),
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
        plan: BuildPlan,
        spec: NodeSpec,
        transport: Transport,
        args: argparse.Namespace,
        document: dict[str, Any],
    ) -> int:
        try:
            missing = await preflight(plan, transport, spec.name)
            document["credentials"] = await self.credentials(plan, spec, transport)
        except TransportError as exc:
            return self.unreachable(spec, exc, document)
        except BuildUnavailable as exc:
            return self.stop(document, f"{spec.name}: {exc}", EXIT_FAILED)
        if missing:
            document["missing"] = missing
            for line in missing:
                print(f"nydus-console: {line}", file=sys.stderr)
            return EXIT_FAILED
        if args.dry_run:
            self.say("dry run: nothing was run")
            return 0
        confirmed_by = self.confirmation(args, spec)
        if not confirmed_by:
            self.say("nothing run: add --yes, or run it in a terminal to confirm")
        return await self._build(plan, spec, transport, confirmed_by, document)

    async def credentials(
        self, plan: BuildPlan, spec: NodeSpec, t: Transport
    ) -> list[str]:
        try:
            config = await node_docker_config(t, spec.name)
        except CredentialsError as exc:
            line = f"warning: {exc}"
        else:
            line = credential_line(config, plan)
        self.say(line)
        return [line]

    async def _build(
        self,
        plan: BuildPlan,
        spec: NodeSpec,
        transport: Transport,
        confirmed_by: str,
        document: dict[str, Any],
    ) -> int:
        with self.cancelled_by_ctrl_c() as cancel:
            try:
                result = await run_build(
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
        return self._finish(plan, spec, result, document)

    def _event(self, event: BuildEvent) -> None:
        self.say(event.describe())

    def _finish(
        self,
        plan: BuildPlan,
        spec: NodeSpec,
        result: StepResult,
        document: dict[str, Any],
    ) -> int:
        data = result.to_dict()
        data["steps"] = data.pop("stages")
        document["build"] = data
        self.say_result("buildctl build", result)
        self.history.append(history_record(plan, spec.name, result))
        if result.exit_status is None and not result.cancelled:
            return EXIT_UNREACHABLE
        return 0 if result.ok else EXIT_FAILED
