"""`nydus-console kube workload create|list|delete`: test workloads on the cluster."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from nydus_console import locations
from nydus_console.audit import AuditLog
from nydus_console.configs import mask_secrets
from nydus_console.inventory import ClusterTemplate
from nydus_console.kube.actions import (
    MANAGED_BY,
    MANAGER,
    WORKLOAD_KINDS,
    WORKLOAD_LABEL,
    ApiAction,
    ApiActionGate,
    ApiActionRefused,
    cleanup_actions,
    create_workload,
)
from nydus_console.kube.client import KubeClient
from nydus_console.kube.nodeshell import NODE_SHELL_LABEL, cleanup_node_shells

EXIT_FAILED = 2
DRY_RUN_NOTE = "dry run: nothing was sent to the API server"
_KINDS = {"deployment": "Deployment", "daemonset": "DaemonSet"}


def run_workload(
    client: KubeClient,
    args: argparse.Namespace,
    template: ClusterTemplate | None,
    out: TextIO,
) -> int:
    """Run a `kube workload` step; KubeError and ValueError go to the caller."""
    shells = bool(getattr(args, "node_shells", False))
    if args.workload_command == "list":
        if shells:
            return _list_shells(client, args, out)
        return _list(client, args, out)
    if shells:
        actions = cleanup_node_shells(client, args.namespace)
        if not actions:
            print(f"no node-shell pods in namespace {args.namespace}", file=out)
            return 0
    elif args.workload_command == "create":
        actions = [
            create_workload(_KINDS[args.kind], args.image, args.namespace, args.name)
        ]
    else:
        actions = cleanup_actions(client, args.namespace)
        if not actions:
            print(f"no test workloads in namespace {args.namespace}", file=out)
            return 0
    gate = ApiActionGate(
        AuditLog(locations.audit_log_file()),
        read_only=bool(getattr(args, "read_only", False)),
        cluster_read_only=template.read_only if template else False,
    )
    return _apply(actions, gate, client, args, out)


def _apply(
    actions: list[ApiAction],
    gate: ApiActionGate,
    client: KubeClient,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """Show the changes, then send them if --yes; --json keeps stdout one document.

    With --json the changes are printed as JSON and every line about them
    (dry run, not sent, refused, done) goes to standard error.
    """
    notes = sys.stderr if args.json else out
    _show(actions, client, args, out)
    if args.dry_run:
        print(DRY_RUN_NOTE, file=notes)
        return 0
    if not args.yes:
        print("not sent: add --yes to send the change shown above", file=notes)
        return EXIT_FAILED
    for action in actions:
        try:
            gate.run(action, client, confirmed_by="--yes on the command line")
        except ApiActionRefused as exc:
            print(f"nydus-console: {exc}", file=notes)
            return EXIT_FAILED
        print(f"done: {action.summary}", file=notes)
    return 0


def _show(
    actions: list[ApiAction],
    client: KubeClient,
    args: argparse.Namespace,
    out: TextIO,
) -> None:
    if not args.json:
        for action in actions:
            print(f"context {client.context}: {action.preview()}", file=out)
        return
    document = {
        "context": client.context,
        "server": client.server,
        "dry_run": bool(args.dry_run),
        "changes": [
            {"action": action.summary, "manifest": action.manifest}
            for action in actions
        ],
    }
    print(mask_secrets(json.dumps(document, indent=2)), file=out)


def _list(client: KubeClient, args: argparse.Namespace, out: TextIO) -> int:
    selector = f"{MANAGED_BY}={MANAGER},{WORKLOAD_LABEL}"
    found = [
        (kind, item)
        for kind in WORKLOAD_KINDS
        for item in client.list_workloads(kind, args.namespace, selector)
    ]
    rows = [
        {
            "kind": kind,
            "namespace": args.namespace,
            "name": item["metadata"]["name"],
            "image": item["spec"]["template"]["spec"]["containers"][0]["image"],
        }
        for kind, item in found
    ]
    if args.json:
        print(json.dumps({"workloads": rows}, indent=2), file=out)
        return 0
    if not rows:
        print(f"no test workloads in namespace {args.namespace}", file=out)
    for row in rows:
        line = f"{row['kind']}  {row['namespace']}/{row['name']}  {row['image']}"
        print(line, file=out)
    return 0


def _list_shells(client: KubeClient, args: argparse.Namespace, out: TextIO) -> int:
    selector = f"{MANAGED_BY}={MANAGER},{NODE_SHELL_LABEL}"
    rows = [
        {
            "namespace": args.namespace,
            "name": item["metadata"]["name"],
            "node": (item.get("spec") or {}).get("nodeName", ""),
            "phase": (item.get("status") or {}).get("phase", ""),
        }
        for item in client.list_labelled_pods(args.namespace, selector)
    ]
    if args.json:
        print(json.dumps({"node_shells": rows}, indent=2), file=out)
        return 0
    if not rows:
        print(f"no node-shell pods in namespace {args.namespace}", file=out)
    for row in rows:
        line = f"{row['namespace']}/{row['name']}  node {row['node']}  {row['phase']}"
        print(line, file=out)
    return 0
