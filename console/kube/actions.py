"""Test workloads on the cluster, through the same safety path as node actions.

A test workload is a Deployment (one replica) or a DaemonSet (one pod per
node) of an image the operator picks, for example a Nydus image, to see
whether its pods start. Every object the console creates carries the label
app.kubernetes.io/managed-by=nydus-console and the workload label, and
cleanup lists and deletes only objects with both labels.

`ApiActionGate` runs an `ApiAction` the way console/actions.py runs a node
command: refused in read-only mode, run only after confirmation, and written
to the audit log whatever the outcome.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from nydus_console.audit import AuditLog
from nydus_console.configs import mask_secrets
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import KubeError

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "nydus-console"
WORKLOAD_LABEL = "nydus-console.io/test-workload"
WORKLOAD_KINDS = ("Deployment", "DaemonSet")
DEFAULT_WORKLOAD_NAME = "nydus-test"
# A DNS-1123 label: the rule for Deployment, DaemonSet and namespace names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
log = logging.getLogger(__name__)


class ApiActionRefused(Exception):
    """An API action was not run: read-only mode, or no confirmation."""


@dataclass(frozen=True)
class ApiAction:
    """A change to the cluster, shown to the operator before it is sent."""

    verb: str
    kind: str
    namespace: str
    name: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.verb} {self.kind} {self.namespace}/{self.name}"

    def preview(self) -> str:
        """Return the request and, for a create, the manifest as JSON, masked."""
        text = self.summary
        if self.manifest:
            text += "\n" + json.dumps(self.manifest, indent=2)
        return mask_secrets(text)


def check_name(value: str, what: str) -> str:
    """Return value if it is a valid DNS-1123 label; raise ValueError naming it."""
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: use at most 63 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


def workload_labels(name: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, WORKLOAD_LABEL: name}


def create_workload(
    kind: str, image: str, namespace: str, name: str = DEFAULT_WORKLOAD_NAME
) -> ApiAction:
    """Return the action that creates a test Deployment or DaemonSet of image."""
    if kind not in WORKLOAD_KINDS:
        raise ValueError(
            f"invalid workload kind {kind!r}: use {' or '.join(WORKLOAD_KINDS)}"
        )
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"invalid image {image!r}: give a reference like REPO:TAG")
    check_name(namespace, "namespace")
    check_name(name, "workload name")
    labels = workload_labels(name)
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "test", "image": image}]},
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": template,
    }
    if kind == "Deployment":
        spec["replicas"] = 1
    manifest = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }
    return ApiAction("create", kind, namespace, name, manifest)


def cleanup_actions(client: KubeClient, namespace: str) -> list[ApiAction]:
    """Return a delete action per test workload the console created in namespace."""
    check_name(namespace, "namespace")
    selector = f"{MANAGED_BY}={MANAGER},{WORKLOAD_LABEL}"
    actions = []
    for kind in WORKLOAD_KINDS:
        for item in client.list_workloads(kind, namespace, selector):
            name = str((item.get("metadata") or {}).get("name", ""))
            actions.append(ApiAction("delete", kind, namespace, name))
    return actions


class ApiActionGate:
    """Read-only mode, confirmation and audit for actions sent to the API server."""

    def __init__(
        self, audit: AuditLog, *, read_only: bool, cluster_read_only: bool = False
    ) -> None:
        self.audit = audit
        self.read_only = read_only
        self.cluster_read_only = cluster_read_only

    def refusal(self) -> str:
        """Return why API actions are not allowed, or '' if they are."""
        if self.read_only:
            return "the console runs with --read-only"
        if self.cluster_read_only:
            return "the inventory's [kubernetes] table sets read_only = true"
        return ""

    def run(self, action: ApiAction, client: KubeClient, *, confirmed_by: str) -> None:
        """Send a confirmed action; raise ApiActionRefused or KubeError."""
        base = {
            "cluster": client.context,
            "server": client.server,
            "action": f"{action.verb} {action.kind}",
            "object": f"{action.namespace}/{action.name}",
        }
        reason = self.refusal()
        if not reason and not confirmed_by:
            reason = "the action was not confirmed"
        if reason:
            log.warning("refused %s: %s", action.summary, reason)
            self.audit.append({**base, "outcome": "refused", "reason": reason})
            raise ApiActionRefused(f"{action.summary} refused: {reason}")
        try:
            _send(action, client)
        except KubeError as exc:
            self.audit.append({**base, "outcome": "failed", "error": str(exc)})
            raise
        self.audit.append({**base, "outcome": "ran", "confirmed_by": confirmed_by})


def _send(action: ApiAction, client: KubeClient) -> None:
    if action.kind == "Pod":
        _send_pod(action, client)
    elif action.verb == "create":
        client.create_workload(action.namespace, action.manifest)
    elif action.verb == "delete":
        client.delete_workload(action.kind, action.namespace, action.name)
    else:
        raise ValueError(f"unsupported API action verb {action.verb!r}")


def _send_pod(action: ApiAction, client: KubeClient) -> None:
    if action.verb == "create":
        client.create_pod(action.namespace, action.manifest)
    elif action.verb == "delete":
        client.delete_pod(action.namespace, action.name)
    else:
        raise ValueError(f"unsupported API action verb {action.verb!r}")
