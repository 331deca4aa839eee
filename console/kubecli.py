"""`nydus-console kube contexts|nodes|pods`: the Kubernetes view, headless.

The kubeconfig is --kubeconfig, else the inventory's [kubernetes]
kubeconfig, else $KUBECONFIG, else ~/.kube/config; the context is
--context, else the inventory's, else the kubeconfig's current-context.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from nydus_console import __version__, locations
from nydus_console.findings import Status
from nydus_console.inventory import (
    ClusterTemplate,
    InventoryError,
    load_inventory,
)
from nydus_console.kube.actions import (
    DEFAULT_WORKLOAD_NAME,
    MANAGED_BY,
    MANAGER,
    WORKLOAD_LABEL,
)
from nydus_console.kube.client import KubeClient
from nydus_console.kube.config import load_kubeconfig
from nydus_console.kube.errors import KubeError, KubeErrorKind
from nydus_console.kube.nodes import ClusterNode, parse_node
from nydus_console.kube.pods import NodePods, PodReport, scan_cluster
from nydus_console.kube.targets import cluster_targets
from nydus_console.kube.watch import PodUpdate, PodWatch
from nydus_console.kubeworkloadcli import run_workload

EXIT_WARN = 1
EXIT_FAILED = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 64
_MARKS = {Status.FAIL: "FAIL", Status.WARN: "WARN"}


def add_kube_parser(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    kube = commands.add_parser(
        "kube",
        help="cluster contexts, nodes and pods failing with Nydus errors",
        description="Read the Kubernetes cluster of a kubeconfig context: its "
        "contexts, its nodes, and the pods that fail with known Nydus errors.",
    )
    actions = kube.add_subparsers(dest="kube_command", metavar="ACTION", required=True)
    _add_contexts(actions)
    _add_nodes(actions, parents)
    _add_pods(actions, parents)
    _add_workload(actions, parents)


def _add_contexts(actions: Any) -> None:
    contexts = actions.add_parser(
        "contexts",
        help="list the kubeconfig's contexts",
        description="List the contexts of the kubeconfig files, the current "
        f"one marked. Exit status: 0, {EXIT_USAGE} no usable kubeconfig.",
    )
    _options(contexts, with_context=False)


def _add_nodes(actions: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    nodes = actions.add_parser(
        "nodes",
        parents=list(parents),
        help="list the cluster's nodes and their SSH targets",
        description="List the cluster's nodes: addresses, kubelet and runtime "
        "versions, readiness, pressure, taints, and with an inventory's "
        "[kubernetes] table the SSH target of each. Exit status: 0 all Ready, "
        f"{EXIT_WARN} a node not Ready or under pressure, {EXIT_UNREACHABLE} "
        f"the API could not be read, {EXIT_USAGE} invalid arguments.",
    )
    _options(nodes)
    nodes.add_argument(
        "--selector",
        "-l",
        default=None,
        metavar="LABELS",
        help="only nodes with these labels (key=value,...)",
    )


def _add_pods(actions: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    pods = actions.add_parser(
        "pods",
        parents=list(parents),
        help="list pods failing with Nydus errors, by node",
        description="List the failing pods whose status or events show a Nydus "
        "error, grouped by node, with the known failures they match and the "
        "recovery runbook. With --watch, print each change until interrupted. "
        f"Exit status: 0 none, {EXIT_WARN} failing pods without a known "
        f"failure, {EXIT_FAILED} a known failure, {EXIT_UNREACHABLE} the API "
        f"could not be read, {EXIT_USAGE} invalid arguments.",
    )
    _options(pods)
    where = pods.add_mutually_exclusive_group()
    where.add_argument(
        "--namespace",
        "-n",
        default=None,
        metavar="NS",
        help="only this namespace (default: the context's namespace, else all)",
    )
    where.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="every namespace, whatever the context's namespace",
    )
    pods.add_argument(
        "--all",
        action="store_true",
        dest="all_failing",
        help="every failing pod, also those without a Nydus cause",
    )
    pods.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="print changes of failing pods as they happen",
    )


def _add_workload(actions: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    workload = actions.add_parser(
        "workload",
        help="create, list and delete test workloads",
        description="Create a test Deployment or DaemonSet of an image (a Nydus "
        "image, say) to see whether its pods start, list the test workloads, "
        "and delete them. Only objects labelled "
        f"{MANAGED_BY}={MANAGER} and {WORKLOAD_LABEL} are listed or deleted. "
        "Changes are shown first, need --yes, honour --read-only and go to the "
        f"audit log. Exit status: 0, {EXIT_FAILED} not confirmed or refused, "
        f"{EXIT_UNREACHABLE} the API could not be read or changed, {EXIT_USAGE} "
        "invalid arguments.",
    )
    steps = workload.add_subparsers(
        dest="workload_command", metavar="STEP", required=True
    )
    create = steps.add_parser(
        "create", parents=list(parents), help="create a test workload"
    )
    create.add_argument("--image", required=True, help="the image to run")
    create.add_argument(
        "--kind",
        choices=["deployment", "daemonset"],
        default="deployment",
        help="one pod (deployment, the default) or one pod per node (daemonset)",
    )
    create.add_argument(
        "--name",
        default=DEFAULT_WORKLOAD_NAME,
        help=f"the workload's name (default {DEFAULT_WORKLOAD_NAME})",
    )
    listing = steps.add_parser(
        "list", parents=list(parents), help="list the test workloads"
    )
    delete = steps.add_parser(
        "delete", parents=list(parents), help="delete every test workload"
    )
    for parser in (create, listing, delete):
        _options(parser)
        parser.add_argument(
            "--namespace",
            "-n",
            default=None,
            metavar="NS",
            help="the namespace (default: the context's namespace, else default)",
        )
    for parser in (listing, delete):
        parser.add_argument(
            "--node-shells",
            action="store_true",
            help='the node-shell pods of node_access = "pod" instead, such as '
            "ones a stopped console left behind",
        )
    for parser in (create, delete):
        parser.add_argument(
            "--dry-run", action="store_true", help="show the change, send nothing"
        )
        parser.add_argument("--yes", action="store_true", help="send the change shown")


def _options(parser: argparse.ArgumentParser, with_context: bool = True) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=None,
        help="kubeconfig file(s), ':'-separated",
    )
    if with_context:
        parser.add_argument(
            "--context",
            metavar="NAME",
            default=None,
            help="the kubeconfig context (default: the current)",
        )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_kube(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a `kube` action; return its exit status."""
    out = out or sys.stdout
    if getattr(args, "node_after", None) or getattr(args, "ssh_hosts", None):
        return _error(
            "kube reads the cluster of a kubeconfig context, so --node and "
            "--ssh-hosts do not apply; pick the cluster with --context",
            EXIT_USAGE,
        )
    try:
        template = _template(args)
        if args.kube_command == "contexts":
            return _contexts(args, template, out)
        client = _client(args, template)
        if hasattr(args, "namespace"):
            args.namespace = pick_namespace(args, client)
        try:
            if args.kube_command == "nodes":
                return _nodes(client, args, template, out)
            if args.kube_command == "workload":
                return run_workload(client, args, template, out)
            if args.watch:
                return _watch(client, args, out)
            return _pods(client, args, out)
        finally:
            client.close()
    except (InventoryError, ValueError) as exc:
        return _error(str(exc), EXIT_USAGE)
    except KubeError as exc:
        code = EXIT_USAGE if exc.kind == KubeErrorKind.CONFIG else EXIT_UNREACHABLE
        return _error(f"{exc.kind}: {exc}", code)
    except KeyboardInterrupt:
        return 0


def _error(text: str, code: int) -> int:
    print(f"nydus-console: {text}", file=sys.stderr)
    return code


def _template(args: argparse.Namespace) -> ClusterTemplate | None:
    path = getattr(args, "inventory", None)
    if path is None and locations.inventory_file().exists():
        path = locations.inventory_file()
    if path is None:
        return None
    return load_inventory(path).kubernetes


def _client(args: argparse.Namespace, template: ClusterTemplate | None) -> KubeClient:
    kubeconfig = args.kubeconfig or (template.kubeconfig if template else None)
    context = args.context or (template.context if template else None)
    return KubeClient(load_kubeconfig(kubeconfig or None), context or None)


def pick_namespace(args: argparse.Namespace, client: KubeClient) -> str:
    """Return -n, else "" for --all-namespaces, else the context's namespace.

    Without any, `kube pods` reads every namespace ("") and `kube workload`
    uses namespace default, as kubectl does.
    """
    if getattr(args, "namespace", None):
        return str(args.namespace)
    if getattr(args, "all_namespaces", False):
        return ""
    namespace = client.config.namespace_of(client.context)
    if namespace or args.kube_command == "pods":
        return namespace
    return "default"


def where_text(client: KubeClient, namespace: str) -> str:
    """Say which pods are read: "namespace shop of context prod"."""
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    return f"{scope} of context {client.context}"


def _contexts(
    args: argparse.Namespace, template: ClusterTemplate | None, out: TextIO
) -> int:
    kubeconfig = args.kubeconfig or (template.kubeconfig if template else None)
    config = load_kubeconfig(kubeconfig or None)
    infos = config.context_infos()
    if args.json:
        document = {
            "schema": "nydus-console/kube-contexts/v1",
            "kubeconfig": config.paths,
            "current": config.current,
            "contexts": [i.to_dict() for i in infos],
        }
        print(json.dumps(document, indent=2), file=out)
        return 0
    rows = [["", "NAME", "CLUSTER", "USER", "NAMESPACE", "SERVER"]]
    rows += [
        ["*" if i.current else "", i.name, i.cluster, i.user, i.namespace, i.server]
        for i in infos
    ]
    print(_table(rows), file=out)
    return 0


# -- nodes -------------------------------------------------------------------------


def _nodes(
    client: KubeClient,
    args: argparse.Namespace,
    template: ClusterTemplate | None,
    out: TextIO,
) -> int:
    selector = args.selector
    if selector is None:
        selector = template.label_selector if template else ""
    nodes = [parse_node(raw) for raw in client.list_nodes(selector)]
    nodes.sort(key=lambda n: n.name)
    ssh = _ssh_targets(nodes, template)
    code = EXIT_WARN if any(_unhealthy(n) for n in nodes) else 0
    if args.json:
        document = {
            "schema": "nydus-console/kube-nodes/v1",
            "version": __version__,
            "context": client.context,
            "server": client.server,
            "exit_code": code,
            "nodes": [n.to_dict() | {"ssh": ssh.get(n.name, "")} for n in nodes],
        }
        print(json.dumps(document, indent=2), file=out)
        return code
    header = [
        "NAME",
        "STATUS",
        "INTERNAL-IP",
        "HOSTNAME",
        "KUBELET",
        "RUNTIME",
        "PRESSURE",
        "TAINTS",
    ]
    if template is not None:
        header.append("SSH")
    rows = [header]
    for node in nodes:
        row = [
            node.name,
            node.status,
            node.internal_ip or "-",
            node.hostname or "-",
            node.kubelet_version or "-",
            node.runtime or "-",
            ",".join(node.pressure) or "-",
            ",".join(str(t) for t in node.taints) or "-",
        ]
        if template is not None:
            row.append(ssh.get(node.name, "-"))
        rows.append(row)
    print(_table(rows), file=out)
    if not nodes:
        print(f"no nodes in context {client.context}", file=out)
    return code


def _unhealthy(node: ClusterNode) -> bool:
    return node.ready != "True" or bool(node.pressure)


def _ssh_targets(
    nodes: list[ClusterNode], template: ClusterTemplate | None
) -> dict[str, str]:
    if template is None:
        return {}
    targets = cluster_targets(nodes, template, [])
    found = {spec.name: spec.address for spec in targets.specs}
    found.update({name: f"({why})" for name, why in targets.skipped.items()})
    return found


# -- pods --------------------------------------------------------------------------


def pods_exit_code(groups: list[NodePods]) -> int:
    statuses = [f.status for g in groups for f in g.findings]
    if Status.FAIL in statuses:
        return EXIT_FAILED
    return EXIT_WARN if any(g.pods for g in groups) else 0


def _pods(client: KubeClient, args: argparse.Namespace, out: TextIO) -> int:
    groups = scan_cluster(client, args.namespace, include_all=args.all_failing)
    code = pods_exit_code(groups)
    if args.json:
        document = {
            "schema": "nydus-console/kube-pods/v1",
            "version": __version__,
            "context": client.context,
            "namespace": args.namespace,
            "exit_code": code,
            "nodes": [g.to_dict() for g in groups],
        }
        print(json.dumps(document, indent=2), file=out)
        return code
    if not groups:
        what = "failing" if args.all_failing else "failing with a Nydus cause"
        print(f"no pods {what} in {where_text(client, args.namespace)}", file=out)
    for group in groups:
        print(render_node_pods(group), file=out)
    return code


def render_node_pods(group: NodePods) -> str:
    count = len(group.pods)
    lines = [
        f"== node {group.node}: {group.status} ({count} failing "
        f"pod{'s' if count != 1 else ''})"
    ]
    for pod in group.pods:
        lines += _pod_lines(pod)
    for finding in group.findings:
        lines.append(
            f"   {_MARKS.get(finding.status, '??  ')} {finding.title}: "
            f"{finding.message}"
        )
        if finding.next_step:
            lines.append(f"        next step: {finding.next_step}")
        if finding.runbook:
            lines.append(
                f"        runbook: nydus-console runbook show {finding.runbook} "
                f"--node {group.node}"
            )
    return "\n".join(lines)


def _pod_lines(pod: PodReport) -> list[str]:
    known = f"  [{', '.join(pod.signatures)}]" if pod.signatures else ""
    lines = [f"   pod {pod.key}  {pod.status}  {pod.ready}{known}"]
    return lines + [f"      {line}" for line in pod.lines()[1:]]


def _watch(client: KubeClient, args: argparse.Namespace, out: TextIO) -> int:
    watch = PodWatch(client, args.namespace)
    printer = WatchPrinter(out, as_json=args.json, include_all=args.all_failing)
    printer.where = where_text(client, args.namespace)
    try:
        for update in watch.updates():
            printer.show(update)
    finally:
        watch.stop()
    return 0


class WatchPrinter:
    """Print the changes of failing pods: failing, then ok or deleted.

    An error that repeats (the watch retries every few seconds) is printed
    once, until another error or an update comes.
    """

    def __init__(self, out: TextIO, *, as_json: bool, include_all: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.include_all = include_all
        self.failing: set[str] = set()
        self.last_error = ""
        # Which pods are watched, "namespace shop of context prod".
        self.where = ""

    def show(self, update: PodUpdate) -> None:
        if update.kind == "error":
            text = str(update.error)
            if text != self.last_error:
                print(f"nydus-console: {text}", file=sys.stderr, flush=True)
            self.last_error = text
            return
        self.last_error = ""
        if update.kind == "synced":
            if not self.as_json:
                count = len(self.failing)
                where = f" {self.where}" if self.where else ""
                line = f"-- watching{where} ({count} failing)"
                print(line, file=self.out, flush=True)
            return
        if update.pod is not None:
            self._show_pod(update.pod, deleted=update.kind == "deleted")

    def _show_pod(self, pod: PodReport, *, deleted: bool) -> None:
        failing = pod.failing and (pod.nydus_related or self.include_all)
        failing = failing and not deleted
        if not failing and pod.key not in self.failing:
            return
        if failing:
            self.failing.add(pod.key)
            state = "failing"
        else:
            self.failing.discard(pod.key)
            state = "deleted" if deleted else "ok"
        if self.as_json:
            line = json.dumps({"state": state, "pod": pod.to_dict()})
        else:
            line = f"{state}: " + "\n".join(_pod_lines(pod)).lstrip()
        print(line, file=self.out, flush=True)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
