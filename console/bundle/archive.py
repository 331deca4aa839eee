"""Write collected node data as a tar.gz with a manifest and a README.

The archive has one top directory named like the file. In it, MANIFEST.json
and README.md list every file and everything that could not be collected,
and each node has a directory of its own.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nydus_console import __version__, locations
from nydus_console.bundle.model import (
    MANIFEST_NAME,
    README_NAME,
    SCHEMA,
    NodeBundle,
)

SUFFIX = ".tar.gz"
NAMES_IN_FILE_NAME = 3


class BundleExists(Exception):
    """The output file exists already; a bundle never replaces a file."""


def bundles_dir() -> Path:
    return locations.state_dir() / "bundles"


def default_path(nodes: Sequence[str], now: datetime.datetime) -> Path:
    """Return state-dir/bundles/nydus-bundle-NODES-YYYYmmddTHHMMSSZ.tar.gz."""
    return bundles_dir() / f"{bundle_stem(nodes, now)}{SUFFIX}"


def safe_name(name: str) -> str:
    """Return a node name usable as a file or directory name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "node"


def bundle_stem(nodes: Sequence[str], now: datetime.datetime) -> str:
    names = [safe_name(n) for n in nodes]
    shown = names[:NAMES_IN_FILE_NAME]
    if len(names) > NAMES_IN_FILE_NAME:
        shown.append(f"and-{len(names) - NAMES_IN_FILE_NAME}-more")
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"nydus-bundle-{'-'.join(shown)}-{stamp}"


def top_directory(path: Path) -> str:
    name = path.name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else path.stem


def manifest(
    nodes: list[NodeBundle], lines: int, now: datetime.datetime
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": __version__,
        "created": now.astimezone(datetime.UTC).isoformat(timespec="seconds"),
        "log_lines": lines,
        "nodes": [_node_entry(node) for node in nodes],
    }


def _node_entry(node: NodeBundle) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": node.name,
        "address": node.address,
        "status": node.status,
    }
    if node.error is not None:
        entry["error"] = {"kind": str(node.error.kind), "message": node.error.message}
        return entry
    entry["files"] = [
        {
            "path": f"{safe_name(node.name)}/{m.path}",
            "about": m.about,
            "diagnose": m.diagnose,
            "bytes": len(m.text.encode()),
        }
        for m in node.members
    ]
    entry["not_collected"] = [{"item": g.item, "reason": g.reason} for g in node.gaps]
    entry["no_entries"] = [{"item": g.item, "reason": g.reason} for g in node.empty]
    entry["notes"] = node.notes
    entry["findings"] = {
        status: sum(1 for f in node.findings if f.status == status)
        for status in ("fail", "warn", "unknown")
    }
    return entry


def readme(document: dict[str, Any]) -> str:
    """Return the README: what was collected and what was not, per node."""
    lines = [
        "# nydus-console support bundle",
        "",
        f"Created {document['created']} by nydus-console {document['version']}, "
        f"with the last {document['log_lines']} lines of each log. Only "
        "read-only commands ran on the nodes. Credentials in configs and log "
        "lines are masked as ***.",
        "",
        "`nydus-console diagnose` reads this archive or its extracted directory "
        "and matches the collected files against the known failures; it skips "
        "the files marked (derived).",
    ]
    for node in document["nodes"]:
        lines += ["", f"## {node['name']} ({node['address']}): {node['status']}", ""]
        if "error" in node:
            lines.append(
                f"Not reached: {node['error']['kind']}: {node['error']['message']}"
            )
            continue
        lines.append("Collected:")
        lines += [
            f"- `{f['path']}`: {f['about']}{'' if f['diagnose'] else ' (derived)'}"
            for f in node["files"]
        ]
        if node["not_collected"]:
            lines += ["", "Not collected:"]
            lines += [f"- {g['item']}: {g['reason']}" for g in node["not_collected"]]
        if node["no_entries"]:
            lines += ["", "Read, with nothing in them (no file in the bundle):"]
            lines += [f"- {g['item']}: {g['reason']}" for g in node["no_entries"]]
        if node["notes"]:
            lines += ["", "Notes:"]
            lines += [f"- {note}" for note in node["notes"]]
    return "\n".join(lines) + "\n"


def write_bundle(
    path: Path, nodes: list[NodeBundle], lines: int, now: datetime.datetime
) -> None:
    """Write the archive; raise BundleExists if path exists, OSError otherwise."""
    top = top_directory(path)
    document = manifest(nodes, lines, now)
    files = [
        (MANIFEST_NAME, json.dumps(document, indent=2) + "\n"),
        (README_NAME, readme(document)),
    ]
    files += [
        (f"{safe_name(n.name)}/{m.path}", m.text) for n in nodes for m in n.members
    ]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BundleExists(f"{path} exists; a bundle never replaces a file") from None
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, text in files:
                _add_text(tar, f"{top}/{name}", text, now)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _add_text(
    tar: tarfile.TarFile, name: str, text: str, now: datetime.datetime
) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(now.timestamp())
    tar.addfile(info, io.BytesIO(data))
