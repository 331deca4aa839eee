"""`nydus-console report`: an incident timeline in Markdown from the audit log."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.fleet import UNREACHABLE
from nydus_console.incident import (
    ReportInput,
    TimeError,
    examine_nodes,
    involved_specs,
    parse_moment,
    read_window,
    render_report,
    write_report,
)
from nydus_console.inventory import LOCAL_SOURCE, Inventory, InventoryError

EXIT_UNREACHABLE = 3
EXIT_USAGE = 64


def add_report_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "report",
        parents=list(parents),
        help="write an incident report (Markdown) from the audit log",
        description="Write a Markdown timeline of the actions and runbook steps "
        "of the audit log between --since and --until: what ran on which node, "
        "its command, the end of its output and its result, with a summary on "
        "top. With an inventory or --node, only the entries of its nodes are "
        "listed, and the summary counts the entries of other nodes it left out. "
        "The nodes involved (or the --node ones) are checked now and their "
        "findings are added, marked as found at report time. Exit status: 0, "
        "3 when a node could not be reached (the report is still written), "
        f"{EXIT_USAGE} invalid arguments, an existing output file or a "
        "missing output folder.",
    )
    parser.add_argument(
        "--since",
        required=True,
        metavar="TIME",
        help="start of the window: ISO 8601 (UTC unless an offset is given) or "
        "a time before now such as 30m, 2h, 1d",
    )
    parser.add_argument(
        "--until",
        default="now",
        metavar="TIME",
        help="end of the window, in the same forms (default: now)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the report to FILE, which must not exist, in a folder that "
        "does (default: standard output)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="reach no node: leave out the findings at report time",
    )


def run_report(
    args: argparse.Namespace, resolve: Callable[[argparse.Namespace], Inventory]
) -> int:
    now = datetime.datetime.now(datetime.UTC)
    try:
        since, until = _window_bounds(args, now)
        inventory = resolve(args)
    except (TimeError, InventoryError) as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output is not None and args.output.exists():
        print(_exists(args.output), file=sys.stderr)
        return EXIT_USAGE
    if args.output is not None and (problem := locations.missing_folder(args.output)):
        print(f"nydus-console: {problem}", file=sys.stderr)
        return EXIT_USAGE
    data = _gather(args, inventory, since, until, now)
    text = render_report(data)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            write_report(args.output, text)
        except FileExistsError:
            print(_exists(args.output), file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(
                f"nydus-console: cannot write {args.output}: {exc.strerror}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(args.output)
    unreachable = any(r.status == UNREACHABLE for r in data.checked or [])
    return EXIT_UNREACHABLE if unreachable else 0


def _window_bounds(
    args: argparse.Namespace, now: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime]:
    since = parse_moment(args.since, now, "--since")
    until = parse_moment(args.until, now, "--until")
    if since > until:
        raise TimeError(
            f"--since {args.since!r} is after --until {args.until!r}; "
            "give the earlier time to --since"
        )
    return since, until


def _gather(
    args: argparse.Namespace,
    inventory: Inventory,
    since: datetime.datetime,
    until: datetime.datetime,
    now: datetime.datetime,
) -> ReportInput:
    """Read the audit window, then examine the nodes involved unless --no-check.

    With an inventory or --node, only the entries of those nodes are read,
    and only those nodes are reached: the audit log also holds the nodes of
    every other inventory used on this machine.
    """
    selected = bool(args.node or getattr(args, "node_after", []))
    scope = _scope(inventory, selected)
    names = [spec.name for spec in inventory.nodes] if scope else []
    window = read_window(locations.audit_log_file(), since, until, names)
    examination = None
    if not args.no_check:
        specs = involved_specs(window, inventory, selected)
        examination = asyncio.run(examine_nodes(inventory, specs, since, until))
    return ReportInput(window, locations.audit_log_file(), now, examination, scope)


def _scope(inventory: Inventory, selected: bool) -> str:
    """Name the nodes the report is limited to, or "" for every node of the log."""
    if selected:
        return "the --node selection"
    if inventory.source == LOCAL_SOURCE:
        return ""
    if inventory.source == "command line":
        return "the nodes given on the command line"
    return f"inventory {inventory.source}"


def _exists(path: Path) -> str:
    return (
        f"nydus-console: {path} exists; give another --output, a report never "
        "replaces a file"
    )
