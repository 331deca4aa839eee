"""Node access without SSH: commands run on a node through a node-shell pod.

When the inventory's [kubernetes] table sets `node_access = "pod"`, the
console reaches a cluster node by creating a pod on it (nodeName), which
tolerates every taint, shares the host's PID namespace and runs privileged.
Each command is sent with the pods/exec API as the argument list
`nsenter -t 1 -m -u -i -n -p -- ARGV`, which enters the namespaces of the
node's init process. No shell parses it. The pod carries the console's
labels, so cleanup deletes only node-shell pods the console created, and it
is deleted when the transport closes. Creating and deleting it go through
ApiActionGate: refused in read-only mode, audited whatever the outcome.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nydus_console.inventory import (
    DEFAULT_NODE_SHELL_IMAGE,
    DEFAULT_NODE_SHELL_NAMESPACE,
)
from nydus_console.kube.actions import MANAGED_BY, MANAGER, ApiAction, check_name
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import (
    KubeError,
    KubeErrorKind,
    forbidden_error,
    status_message,
)
from nydus_console.transport.base import ErrorKind, TransportError
from nydus_console.transport.quoting import UnsafeArgumentError

NODE_SHELL_LABEL = "nydus-console.io/node-shell"
NSENTER = ("nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--")
CONTAINER = "shell"
V5_PROTOCOL = "v5.channel.k8s.io"
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
# The pod ends by itself after this many seconds, should the console stop
# without deleting it.
POD_LIFETIME = 3600
START_TIMEOUT = 60.0
CONFIRMED_BY = 'node_access = "pod" in the inventory\'s [kubernetes] table'
# Permissions the console needs, as (verb, resource, subresource).
PERMISSIONS = (
    ("create", "pods", ""),
    ("get", "pods", ""),
    ("delete", "pods", ""),
    ("create", "pods", "exec"),
    # The exec websocket is a GET request. API servers before 1.30 authorize
    # it as "get", later ones as "create".
    ("get", "pods", "exec"),
)


def nsenter_argv(argv: Sequence[str]) -> list[str]:
    """Return the exec command that runs `argv` in the node's namespaces.

    Each word stays one element of the list; none is joined or parsed.
    """
    if not argv:
        raise ValueError("empty command: an argument list needs at least one word")
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"command words must be str, got {type(word).__name__}")
        if "\0" in word:
            raise UnsafeArgumentError(f"argument contains a NUL byte: {word!r}")
    return [*NSENTER, *argv]


@dataclass(frozen=True)
class NodeShellSettings:
    """Image, namespace and start timeout of node-shell pods."""

    image: str = DEFAULT_NODE_SHELL_IMAGE
    namespace: str = DEFAULT_NODE_SHELL_NAMESPACE
    start_timeout: float = START_TIMEOUT


def node_shell_labels(node: str) -> dict[str, str]:
    # A label value is at most 63 characters long, but node names may be longer.
    return {MANAGED_BY: MANAGER, NODE_SHELL_LABEL: node[:63].strip("-._") or "node"}


def pod_name(node: str) -> str:
    """Build a pod name unique to this console session that shows the node."""
    stem = "".join(c if c in _NAME_CHARS else "-" for c in node.lower())
    stem = stem.strip("-")[:40].strip("-") or "node"
    return f"nydus-shell-{stem}-{secrets.token_hex(3)}"


def create_node_shell(node: str, settings: NodeShellSettings) -> ApiAction:
    """Return the action that creates the node-shell pod on `node`."""
    if not settings.image or any(c.isspace() for c in settings.image):
        raise ValueError(
            f"invalid node_shell_image {settings.image!r}: give a reference "
            "like REPO:TAG"
        )
    check_name(settings.namespace, "node_shell_namespace")
    name = pod_name(node)
    labels = node_shell_labels(node)
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "command": nsenter_argv(["sleep", str(POD_LIFETIME)]),
        "securityContext": {"privileged": True},
        "stdin": False,
        "tty": False,
    }
    spec = {
        "nodeName": node,
        "hostPID": True,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": POD_LIFETIME,
        "terminationGracePeriodSeconds": 0,
        # An empty key with operator Exists tolerates every taint.
        "tolerations": [{"operator": "Exists"}],
        "containers": [container],
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": spec,
    }
    return ApiAction("create", "Pod", settings.namespace, name, manifest)


def cleanup_node_shells(client: KubeClient, namespace: str) -> list[ApiAction]:
    """Return a delete action per node-shell pod the console created."""
    check_name(namespace, "node_shell_namespace")
    selector = f"{MANAGED_BY}={MANAGER},{NODE_SHELL_LABEL}"
    return [
        ApiAction("delete", "Pod", namespace, str(item["metadata"]["name"]))
        for item in client.list_labelled_pods(namespace, selector)
    ]


def missing_permission(client: KubeClient, namespace: str) -> KubeError | None:
    """Return the error naming the first permission the user lacks, if any."""
    for verb, resource, sub in PERMISSIONS:
        if client.may(verb, resource, namespace, sub):
            continue
        full = f"{resource}/{sub}" if sub else resource
        return KubeError(
            KubeErrorKind.FORBIDDEN,
            f"context {client.context} may not {verb} {full} in namespace "
            f'"{namespace}"; the missing permission is "{verb}" on "{full}", '
            "which node access through a pod needs",
            f"bind the user to a Role in namespace {namespace} that allows "
            "create, get and delete on pods and create and get on pods/exec",
        )
    return None


# The Flags bit of a listening socket in /proc/net/unix (__SO_ACCEPTCON).
_ACCEPTING = 0x10000


def listening_unix_sockets(table: str) -> set[str]:
    """Return the paths of the listening sockets in a /proc/net/unix table."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split(maxsplit=7)
        if len(fields) < 8:
            continue
        try:
            flags = int(fields[3], 16)
        except ValueError:
            continue
        if flags & _ACCEPTING:
            found.add(fields[7])
    return found


def wait_running(
    client: KubeClient, action: ApiAction, node: str, settings: NodeShellSettings
) -> None:
    """Block until the pod runs; raise TransportError when it does not."""
    deadline = time.monotonic() + settings.start_timeout
    while True:
        pod = client.read_pod(action.namespace, action.name)
        status = pod.get("status") or {}
        phase = str(status.get("phase", "") or "Pending")
        if phase == "Running":
            return
        if phase in ("Failed", "Succeeded") or time.monotonic() >= deadline:
            raise _not_started(action, node, settings, phase, _waiting(status))
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def _waiting(status: dict[str, Any]) -> str:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            message = waiting.get("message") or ""
            return f"{waiting['reason']}: {message}" if message else waiting["reason"]
    return ""


def _not_started(
    action: ApiAction,
    node: str,
    settings: NodeShellSettings,
    phase: str,
    waiting: str,
) -> TransportError:
    detail = f"phase {phase}" + (f", {waiting}" if waiting else "")
    where = f"{action.namespace}/{action.name}"
    return TransportError(
        ErrorKind.TIMED_OUT if phase == "Pending" else ErrorKind.FAILED,
        f"node-shell pod {where} on node {node} did not start within "
        f"{settings.start_timeout:g} s ({detail})",
        f"check that the kubelet on {node} runs and reports Ready, that it can "
        f"pull image {settings.image}, and `kubectl -n {action.namespace} "
        f"describe pod {action.name}` for its events",
    )


@dataclass(frozen=True)
class ExecOutcome:
    """Exit status and output of one exec, and the protocol the server chose."""

    exit_status: int
    stdout: str
    stderr: str
    protocol: str


def exec_in_pod(
    client: KubeClient,
    action: ApiAction,
    argv: Sequence[str],
    stdin: str | None,
    timeout: float,
) -> ExecOutcome:
    """Run `argv` through nsenter in the pod and collect its output (blocking)."""
    response = open_exec(client, action, argv, stdin is not None)
    node = action.manifest.get("spec", {}).get("nodeName", "the node")
    try:
        if stdin is not None:
            response.write_stdin(stdin)
            response.close_channel(0)
        response.run_forever(timeout=timeout)
        if response.is_open():
            raise TransportError(
                ErrorKind.TIMED_OUT,
                f"{argv[0]} on {node} did not finish within {timeout:.0f} s",
                "check whether the node is overloaded",
            )
        return ExecOutcome(
            _exit_status(response),
            str(response.read_stdout() or ""),
            str(response.read_stderr() or ""),
            str(response.subprotocol or ""),
        )
    finally:
        response.close()


def _exit_status(response: Any) -> int:
    """Read the exit status from the error channel; -1 when it sent none."""
    try:
        code = response.returncode
    except (TypeError, KeyError, IndexError, ValueError):
        return -1
    return code if isinstance(code, int) else -1


def stdin_error(program: str, node: str, protocol: str) -> TransportError | None:
    """Return the error for input that the exec protocol cannot close, if any.

    Only the v5 exec protocol can close standard input. With v4 the command
    would read until it timed out, or read an empty input once the stream
    closed, so input is refused before such a command starts.
    """
    if protocol == V5_PROTOCOL:
        return None
    return TransportError(
        ErrorKind.FAILED,
        f"cannot send standard input to {program} on {node}: the API server "
        f"chose the {protocol or 'unknown'} exec protocol, and only "
        f"{V5_PROTOCOL} can close standard input",
        "reach this node over SSH for actions that send a file or input",
    )


def open_exec(
    client: KubeClient, action: ApiAction, argv: Sequence[str], stdin: bool
) -> Any:
    """Open the exec websocket of `argv` (through nsenter) in the pod."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    api = client.core_api()
    try:
        return stream(
            api.connect_get_namespaced_pod_exec,
            action.name,
            action.namespace,
            command=nsenter_argv(argv),
            container=CONTAINER,
            stdin=stdin,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
    except ApiException as exc:
        raise exec_error(str(exc.reason or exc), client.context) from None


def exec_error(reason: str, context: str) -> KubeError:
    """Word a failed exec handshake; a 403 names the missing permission."""
    # The handshake error carries the response headers, then the Status body.
    start, end = reason.find('{"kind"'), reason.rfind("}") + 1
    message = status_message(reason[start:end]) if start >= 0 else reason
    if "403" not in reason:
        return KubeError(
            KubeErrorKind.API,
            f"exec in the node-shell pod failed: {message}",
            "check that the node's kubelet runs and that the API server "
            "reaches it (port 10250 by default)",
        )
    error = forbidden_error(message, context)
    error.next_step = (
        "bind the user to a Role that allows create, get and delete on pods "
        "and create and get on pods/exec in the node-shell namespace"
    )
    return error
