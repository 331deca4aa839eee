"""`nydus-console bundle`: a tar.gz of what support needs from one or more nodes."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.bundle import (
    DEFAULT_LINES,
    BundleExists,
    collect_bundle,
    default_path,
    exit_status,
    write_bundle,
)
from nydus_console.inventory import Inventory, InventoryError
from nydus_console.logcli import MAX_LINES

EXIT_USAGE = 64


def add_bundle_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser]
) -> None:
    parser = commands.add_parser(
        "bundle",
        parents=list(parents),
        help="write a support bundle (tar.gz) of the nodes",
        description="Collect from each node its versions, configs (credentials "
        "masked), the last lines of every log source, process, socket and mount "
        "facts and the findings, with read-only commands, into one tar.gz with a "
        "MANIFEST.json and a README.md. Progress goes to standard error, the "
        "path of the bundle to standard output. Exit status: 0, 1 when some "
        "part could not be collected, 3 when a node could not be reached, "
        f"{EXIT_USAGE} invalid arguments, an existing output file or a missing "
        "output folder.",
    )
    parser.add_argument(
        "--lines",
        type=_line_count,
        default=DEFAULT_LINES,
        metavar="N",
        help=f"last lines of each log source, 1 to {MAX_LINES} "
        f"(default {DEFAULT_LINES})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="the tar.gz to write, in a folder that exists; never replaced if "
        "it exists (default: "
        f"{locations.state_dir()}/bundles/nydus-bundle-NODES-TIME.tar.gz)",
    )


def _line_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LINES:
        raise argparse.ArgumentTypeError(
            f"--lines {text!r}: give a whole number of lines from 1 to {MAX_LINES}"
        )
    return value


def run_bundle(
    args: argparse.Namespace, resolve: Callable[[argparse.Namespace], Inventory]
) -> int:
    try:
        inventory = resolve(args)
    except InventoryError as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = datetime.datetime.now(datetime.UTC)
    names = [node.name for node in inventory.nodes]
    path = args.output or default_path(names, now)
    if path.exists():
        print(
            f"nydus-console: {path} exists; give another --output, a bundle "
            "never replaces a file",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.output is not None and (problem := locations.missing_folder(args.output)):
        print(f"nydus-console: {problem}", file=sys.stderr)
        return EXIT_USAGE
    nodes = asyncio.run(collect_bundle(inventory, args.lines, _progress))
    try:
        write_bundle(path, nodes, args.lines, now)
    except BundleExists as exc:
        print(f"nydus-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"nydus-console: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    for node in nodes:
        for gap in node.gaps:
            print(
                f"nydus-console: {node.name}: not collected: {gap.item}: {gap.reason}",
                file=sys.stderr,
            )
        if node.error is not None:
            print(f"nydus-console: {node.name}: {node.error}", file=sys.stderr)
    print(path)
    return exit_status(nodes)


def _progress(text: str) -> None:
    print(f"bundle: {text}", file=sys.stderr, flush=True)
