"""`nydus-console inspect IMAGE`: read an image's manifest from its registry.

It reaches the registry from this machine, not a node. Credentials come
from --username with --password-stdin, else from the docker config
(`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), and are never
printed. With --json a failure prints a JSON object with the error too,
and the exit status stays that of the failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from nydus_console.images.analysis import ManifestInfo
from nydus_console.images.credentials import (
    Credentials,
    CredentialsError,
    load_docker_config,
)
from nydus_console.images.inspect import SCHEMA, InspectReport, inspect_image
from nydus_console.images.reference import BadReference, parse_reference
from nydus_console.images.registry import RegistryError

EXIT_USAGE = 64
EXIT_UNREADABLE = 1


def add_inspect_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show an image's manifest, platforms and layers, and whether it is Nydus",
        description="Read an image's manifest or index from its registry over "
        "HTTPS: media type, platforms, layers with media types and sizes, whether "
        "it is a Nydus image and its RAFS version, and whether an OCI image has "
        "a Nydus referrer. Exit status: 0, 1 when the image was not found or "
        f"could not be read, {EXIT_USAGE} invalid arguments or reference.",
    )
    parser.add_argument("image", metavar="IMAGE", help="image reference")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="reach the registry over plain HTTP instead of HTTPS",
    )
    parser.add_argument(
        "--username", metavar="USER", help="registry user (with --password-stdin)"
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password from standard input",
    )


def _credentials(args: argparse.Namespace, domain: str) -> Credentials | None:
    if args.password_stdin and not args.username:
        raise CredentialsError("--password-stdin needs --username")
    if args.username and not args.password_stdin:
        raise CredentialsError(
            "--username needs --password-stdin (the password is read from "
            "standard input, never from the command line)"
        )
    if args.username:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CredentialsError("--password-stdin read an empty password")
        return Credentials(args.username, password, source="--password-stdin")
    return load_docker_config().lookup(domain)


def _failed(args: argparse.Namespace, kind: str, exc: Exception, code: int) -> int:
    """Report a failure on stderr, and as a JSON object on stdout with --json."""
    print(f"nydus-console: {exc}", file=sys.stderr)
    if args.json:
        document = {
            "schema": SCHEMA,
            "reference": args.image,
            "error": {"kind": kind, "message": str(exc)},
            "exit_code": code,
        }
        print(json.dumps(document, indent=2))
    return code


def run_inspect(args: argparse.Namespace) -> int:
    try:
        ref = parse_reference(args.image)
        credentials = _credentials(args, ref.domain)
    except BadReference as exc:
        return _failed(args, "usage", exc, EXIT_USAGE)
    except CredentialsError as exc:
        return _failed(args, "credentials", exc, EXIT_USAGE)
    try:
        report = asyncio.run(
            inspect_image(ref, credentials=credentials, insecure=args.insecure)
        )
    except RegistryError as exc:
        return _failed(args, exc.kind, exc, EXIT_UNREADABLE)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        write_report(report, sys.stdout)
    return 0


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _nydus_line(info: ManifestInfo) -> str:
    if not info.is_nydus:
        return "nydus:      no"
    version = info.fs_version or "not annotated"
    return f"nydus:      yes, fs version {version}"


def _write_manifest(info: ManifestInfo, out: TextIO) -> None:
    title = f"manifest {info.digest}"
    out.write(f"\n{title}{'  ' + info.platform if info.platform else ''}\n")
    out.write(f"  media type: {info.media_type}\n")
    if info.artifact_type:
        out.write(f"  artifact:   {info.artifact_type}\n")
    out.write(f"  {_nydus_line(info)}\n")
    total = human_size(info.total_size)
    out.write(f"  layers:     {len(info.layers)}, {total}\n")
    for layer in info.layers:
        role = f"  {layer.role}" if layer.role else ""
        out.write(
            f"    {layer.size:>12}  {layer.media_type}  {layer.digest[:19]}{role}\n"
        )
    for note in info.notes:
        out.write(f"  note: {note}\n")


def write_report(report: InspectReport, out: TextIO) -> None:
    out.write(f"image:      {report.reference}\n")
    out.write(f"digest:     {report.digest}\n")
    out.write(f"media type: {report.media_type}\n")
    out.write(f"nydus:      {'yes' if report.is_nydus else 'no'}\n")
    if report.platforms:
        out.write(f"platforms:  {len(report.platforms)}\n")
        for entry in report.platforms:
            mark = "  nydus" if entry.marked_nydus else ""
            out.write(
                f"  {entry.platform:<14} {entry.digest[:19]}  "
                f"{entry.media_type}{mark}\n"
            )
    for info in report.manifests:
        _write_manifest(info, out)
    for check in report.referrers:
        out.write(f"\nreferrers of {check.subject[:19]}: read from {check.source}\n")
        if not check.nydus:
            out.write("  no nydus referrer\n")
        for referrer in check.nydus:
            version = (
                f", fs version {referrer.fs_version}" if referrer.fs_version else ""
            )
            out.write(f"  nydus referrer {referrer.digest}{version}\n")
    for note in report.notes:
        out.write(f"note: {note}\n")
