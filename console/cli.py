"""Command line: the TUI by default, `doctor` for the same checks headless."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import NoReturn, TextIO

from nydus_console import __version__, locations
from nydus_console.buildcli import add_build_parser, run_build_command
from nydus_console.bundlecli import add_bundle_parser, run_bundle
from nydus_console.configcli import add_config_parser, run_config
from nydus_console.confignodecli import (
    add_drift_parser,
    add_node_config_parsers,
    run_node_config,
)
from nydus_console.convertcli import add_convert_parser, run_convert_command
from nydus_console.diagnosecli import add_diagnose_parser, run_diagnose
from nydus_console.findings import Status
from nydus_console.fleet import Fleet, NodeReport, exit_code
from nydus_console.incidentcli import add_report_parser, run_report
from nydus_console.inspectcli import add_inspect_parser, run_inspect
from nydus_console.inventory import (
    Inventory,
    InventoryError,
    load_inventory,
    local_inventory,
    parse_node_argument,
    reject_misspelt_nodes,
    ssh_config_aliases,
)
from nydus_console.kube.targets import add_cluster_nodes
from nydus_console.kubecli import add_kube_parser, run_kube
from nydus_console.logcli import (
    add_logs_arguments,
    pick_source,
    run_logs,
    validate_grep,
    validate_lines,
)
from nydus_console.metricscli import (
    add_metrics_arguments,
    prometheus_url,
    run_metrics,
)
from nydus_console.runbookcli import add_runbook_parser, run_runbook_command
from nydus_console.setupcli import add_setup_parser, run_setup_command

EXIT_USAGE = 64
DEFAULT_REFRESH_SECONDS = 10.0
MIN_REFRESH_SECONDS = 2.0


class UsageParser(argparse.ArgumentParser):
    """Exits with EXIT_USAGE on bad arguments, as documented, instead of 2.

    Status 2 means "a check failed" for doctor, so argparse's own code would
    mislead scripts.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def refresh_interval(text: str) -> float:
    """Parse --refresh: 0 (off) or at least MIN_REFRESH_SECONDS."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if seconds != 0 and not seconds >= MIN_REFRESH_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use 0 to turn auto-refresh off, or at least "
            f"{MIN_REFRESH_SECONDS:g} seconds"
        )
    return seconds


def _node_options(sub: bool = False) -> UsageParser:
    # A subcommand repeats these options; its defaults are suppressed so that
    # `--inventory F doctor` and `doctor --inventory F` mean the same.
    parent = UsageParser(
        add_help=False, argument_default=argparse.SUPPRESS if sub else None
    )
    group = parent.add_argument_group("nodes")
    group.add_argument(
        "--node",
        action="append",
        # argparse replaces, not extends, a list given again after the
        # subcommand, so those values get their own destination.
        dest="node_after" if sub else "node",
        metavar="[USER@]HOST[:PORT]",
        help="a node to manage over SSH; repeat for more (a ~/.ssh/config Host "
        "alias works too)",
    )
    group.add_argument(
        "--inventory",
        type=Path,
        metavar="FILE",
        help=f"inventory TOML (default: {locations.inventory_file()} if it exists)",
    )
    group.add_argument(
        "--ssh-hosts",
        metavar="GLOB",
        help="add every Host alias in ~/.ssh/config that matches GLOB",
    )
    return parent


def build_parser() -> UsageParser:
    parser = UsageParser(
        prog="nydus-console",
        parents=[_node_options()],
        description="Console for nydus-snapshotter and nydusd on containerd nodes. "
        "With no nodes configured it manages this machine.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every action that changes a node",
    )
    parser.add_argument(
        "--refresh",
        type=refresh_interval,
        default=DEFAULT_REFRESH_SECONDS,
        metavar="SECONDS",
        help="auto-refresh interval in seconds, 0 to refresh only on request "
        f"(default {DEFAULT_REFRESH_SECONDS:g})",
    )
    parser.add_argument(
        "--prometheus",
        dest="prometheus_url",
        type=prometheus_url,
        metavar="URL",
        help="read metrics screens from this Prometheus server instead of each "
        "node (default: [metrics] prometheus_url of the inventory)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor",
        parents=[_node_options(sub=True)],
        help="run every check and print the findings",
        description="Run every health check on every node. Exit status: 0 all ok, "
        "1 warnings or unknowns, 2 failures, 3 a node could not be reached, "
        f"{EXIT_USAGE} invalid arguments or inventory.",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON")
    logs = commands.add_parser(
        "logs",
        parents=[_node_options(sub=True)],
        help="print or follow a journald unit or log file on every node",
        description="Print the recent lines of a journald unit (default: the "
        "snapshotter unit) or a log file on every node, parsed into time, level "
        "and message; with --follow keep printing, reconnecting after a dropped "
        "connection. Exit status: 0, 1 when the source could not be read on a "
        "node (a missing file, a unit that is not installed), 3 when a node "
        "could not be reached, "
        f"{EXIT_USAGE} invalid arguments.",
    )
    add_logs_arguments(logs)
    metrics = commands.add_parser(
        "metrics",
        parents=[_node_options(sub=True)],
        help="print nydusd and snapshotter metrics of every node",
        description="Read every nydusd's API and the snapshotter's metrics "
        "endpoint on every node (or one Prometheus server), poll twice and print "
        "rates, error ratios, latency percentiles and cache hit ratios. Exit "
        "status: 0, 1 when some metrics could not be read, 3 when a node could "
        "not be reached, "
        f"{EXIT_USAGE} invalid arguments.",
    )
    add_metrics_arguments(metrics)
    add_diagnose_parser(commands)
    config_actions = add_config_parser(commands)
    add_node_config_parsers(config_actions, [_node_options(sub=True)])
    add_drift_parser(config_actions, [_node_options(sub=True)])
    add_runbook_parser(commands, [_node_options(sub=True)])
    add_bundle_parser(commands, [_node_options(sub=True)])
    add_report_parser(commands, [_node_options(sub=True)])
    add_kube_parser(commands, [_node_options(sub=True)])
    add_setup_parser(commands, [_node_options(sub=True)])
    add_inspect_parser(commands)
    add_convert_parser(commands, [_node_options(sub=True)])
    add_build_parser(commands, [_node_options(sub=True)])
    return parser


def resolve_inventory(args: argparse.Namespace) -> Inventory:
    """Build the node list from the arguments, the inventory file, or this host.

    A --node that names a node of the inventory selects it; other --node
    values add nodes reached over SSH. Once any --node is given, only the
    nodes named are used, never the rest of the inventory.
    """
    given = (args.node or []) + getattr(args, "node_after", [])
    inventory: Inventory | None = None
    if args.inventory is not None:
        inventory = load_inventory(args.inventory)
    elif not args.ssh_hosts and locations.inventory_file().exists():
        default = load_inventory(locations.inventory_file())
        if not given or set(given) & {n.name for n in default.nodes}:
            inventory = default
    if inventory is not None:
        add_cluster_nodes(inventory, read_only=bool(getattr(args, "read_only", False)))
        if args.command is not None:
            # The console logs them and shows them on the fleet screen.
            warn_left_out(inventory, sys.stderr)
        given = _select_inventory_nodes(inventory, given)
    extra = [parse_node_argument(text) for text in given]
    if args.ssh_hosts:
        config = Path("~/.ssh/config").expanduser()
        aliases = ssh_config_aliases(config, args.ssh_hosts)
        if not aliases:
            raise InventoryError(
                f"no Host alias in {config} matches {args.ssh_hosts!r}"
            )
        extra += [parse_node_argument(alias) for alias in aliases]
    if inventory is None and not extra:
        return local_inventory()
    if inventory is None:
        inventory = Inventory(nodes=[], source="command line")
    seen = {n.name for n in inventory.nodes}
    for node in extra:
        if node.name in seen:
            raise InventoryError(
                f"node {node.name!r} is given twice; each node needs its own name "
                "(nodes on one host differ by :port)"
            )
        seen.add(node.name)
    inventory.nodes += extra
    return inventory


def warn_left_out(inventory: Inventory, out: TextIO) -> None:
    """Name each cluster node left out of the fleet, why, and what to set."""
    for name, reason in inventory.left_out.items():
        print(
            f"nydus-console: warning: cluster node {name} is left out of the "
            f"fleet: {reason}",
            file=out,
        )


def _select_inventory_nodes(inventory: Inventory, given: list[str]) -> list[str]:
    """Keep the inventory nodes that `given` names; return the other values.

    A plain name that is neither an inventory node nor a Host alias of
    ~/.ssh/config is most likely a misspelt node, so it is an error rather
    than a new SSH target.
    """
    if not given:
        return []
    names = [n.name for n in inventory.nodes]
    reject_misspelt_nodes(inventory, given)
    inventory.nodes = [n for n in inventory.nodes if n.name in given]
    return [text for text in given if text not in names]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of our output went away (`... | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "config" and args.config_command == "validate":
        # Offline: no inventory is read and no node is reached.
        return run_config(args)
    if args.command == "runbook":
        # It picks its nodes in the inventory itself: --node NAME selects one.
        return run_runbook_command(args, resolve_inventory, read_only=args.read_only)
    if args.command == "bundle":
        return run_bundle(args, resolve_inventory)
    if args.command == "report":
        return run_report(args, resolve_inventory)
    if args.command == "kube":
        # It reads the cluster, not the nodes.
        return run_kube(args)
    if args.command == "setup":
        return run_setup_command(args, resolve_inventory, read_only=args.read_only)
    if args.command == "diagnose":
        # Offline too: it reads only the files it is given.
        return run_diagnose(args)
    if args.command == "convert":
        # It picks its one node itself, and lists its history without one.
        return run_convert_command(args, resolve_inventory, read_only=args.read_only)
    if args.command == "build":
        # Like convert: one node it picks itself; its history needs none.
        return run_build_command(args, resolve_inventory, read_only=args.read_only)
    if args.command == "inspect":
        # It reaches the image's registry from this machine, not a node.
        return run_inspect(args)
    try:
        inventory = resolve_inventory(args)
    except InventoryError as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "doctor":
        return asyncio.run(run_doctor(inventory, as_json=args.json))
    if args.command == "config":
        return run_node_config(inventory, args, read_only=args.read_only)
    if args.command == "logs":
        return run_logs_command(inventory, args)
    if args.command == "metrics":
        return asyncio.run(
            run_metrics(
                inventory,
                prometheus=args.prometheus or args.prometheus_url,
                interval=args.interval,
                as_json=args.json,
            )
        )
    if args.prometheus_url:
        inventory.prometheus_url = args.prometheus_url
    return run_tui(inventory, read_only=args.read_only, refresh=args.refresh)


def run_logs_command(inventory: Inventory, args: argparse.Namespace) -> int:
    try:
        validate_grep(args.grep)
        validate_lines(args.lines, args.follow)
        pick_source(args.unit, args.path, "")
    except InventoryError as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(
            run_logs(
                inventory,
                unit=args.unit,
                path=args.path,
                lines=args.lines,
                follow=args.follow,
                grep=args.grep,
                as_json=args.json,
            )
        )
    except KeyboardInterrupt:
        return 0


def run_tui(inventory: Inventory, *, read_only: bool, refresh: float) -> int:
    _log_to_file()
    from nydus_console.screens.app import NydusConsoleApp

    app = NydusConsoleApp(inventory, read_only=read_only, refresh_seconds=refresh)
    log = logging.getLogger("nydus_console")
    log.info(
        "started with %d node(s) from %s%s",
        len(inventory.nodes),
        inventory.source,
        " (read-only)" if read_only else "",
    )
    for name, reason in inventory.left_out.items():
        log.warning("cluster node %s is left out of the fleet: %s", name, reason)
    app.run()
    log.info("stopped")
    return app.return_code or 0


LOG_MAX_BYTES = 1024 * 1024
LOG_BACKUPS = 3


def _log_to_file() -> None:
    """Log to a rotating file under the XDG state dir, readable by the user only."""
    path = locations.log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # asyncssh logs every command line at INFO, probe scripts included, and
    # httpx every metrics request: both would push the failures out of the file.
    for name in ("asyncssh", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def run_doctor(inventory: Inventory, *, as_json: bool) -> int:
    fleet = Fleet(inventory)
    try:
        reports = await fleet.probe_all(full=True)
    finally:
        await fleet.close()
    code = exit_code(reports)
    if as_json:
        print(json.dumps(doctor_document(reports, inventory, code), indent=2))
    else:
        print(render_text(reports))
    return code


def doctor_document(
    reports: list[NodeReport], inventory: Inventory, code: int
) -> dict[str, object]:
    return {
        "schema": "nydus-console/doctor/v1",
        "version": __version__,
        "inventory": inventory.source,
        "exit_code": code,
        "nodes": [report.to_dict() for report in reports],
    }


_MARKS = {
    Status.OK: "ok  ",
    Status.WARN: "WARN",
    Status.FAIL: "FAIL",
    Status.UNKNOWN: "??  ",
    Status.SKIP: "skip",
}


def render_text(reports: list[NodeReport]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(f"== {report.spec.name} ({report.spec.address}): {report.status}")
        if report.error is not None:
            lines.append(f"   {report.error.kind}: {report.error}")
            continue
        for finding in report.findings:
            if finding.status == Status.SKIP:
                continue
            lines.append(
                f"   {_MARKS[finding.status]} {finding.title}: {finding.message}"
            )
            if finding.next_step:
                lines.append(f"        next step: {finding.next_step}")
    return "\n".join(lines)
