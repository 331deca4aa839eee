"""Kubernetes errors worded for the operator: what failed and the next step."""

from __future__ import annotations

import enum
import json
import re
from typing import Any


class KubeErrorKind(enum.StrEnum):
    CONFIG = "config"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not found"
    API = "api error"


class KubeError(Exception):
    """A Kubernetes call that failed; `message` says what, `next_step` what to do.

    `next_step` is worded for the command line (its options); `screen_step`,
    when the step differs in the console, for its screens and keys.
    """

    def __init__(
        self,
        kind: KubeErrorKind,
        message: str,
        next_step: str = "",
        screen_step: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.next_step = next_step
        self.screen_step = screen_step

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message}; next step: {self.next_step}"
        return self.message

    def screen_text(self) -> str:
        """The error as the console's screens show it."""
        step = self.screen_step or self.next_step
        return f"{self.message}; next step: {step}" if step else self.message


# 'pods is forbidden: User "x" cannot list resource "pods" in API group "" at
# the cluster scope' (or 'in the namespace "y"').
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\w+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: (?:at the (?P<cluster>cluster) scope|in the namespace "(?P<ns>[^"]*)"))?'
)


def status_message(body: object) -> str:
    """Return the `message` of a Kubernetes Status body, or the body's text."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])
    return text.strip()[:500]


def forbidden_error(message: str, context: str) -> KubeError:
    """Word a 403: the user, the missing verb on the resource, and the grant."""
    found = _FORBIDDEN.search(message)
    if found is None:
        return KubeError(
            KubeErrorKind.FORBIDDEN,
            f"forbidden in context {context}: {message}",
            "ask the cluster admin for read access (get, list, watch) to nodes, "
            "pods and events",
        )
    verb, resource = found["verb"], found["resource"]
    group, namespace = found["group"] or "", found["ns"] or ""
    scope = f'in namespace "{namespace}"' if namespace else "at the cluster scope"
    api_group = f' in API group "{group}"' if group else ""
    return KubeError(
        KubeErrorKind.FORBIDDEN,
        f'permission denied: user "{found["user"]}" (context {context}) may not '
        f"{verb} {resource}{api_group} {scope}; the missing permission is "
        f'"{verb}" on "{resource}"',
        grant_step(found["user"], verb, resource, group, namespace),
    )


# The verbs a read needs together: a list is followed by a watch.
_READ_VERBS = ("get", "list", "watch")


def grant_step(user: str, verb: str, resource: str, group: str, namespace: str) -> str:
    """Return the kubectl commands that grant `verb` on `resource` to `user`.

    A denial in a namespace gets a Role and RoleBinding there, one at the
    cluster scope a ClusterRole and ClusterRoleBinding. The resource carries
    its API group (deployments.apps) and a denied read grants get, list and
    watch, which the console's reads need together.
    """
    verbs = ",".join(_READ_VERBS) if verb in _READ_VERBS else verb
    base, _, sub = resource.partition("/")
    qualified = f"{base}.{group}" if group else base
    if sub:
        qualified += f"/{sub}"
    name = "nydus-console-" + re.sub(r"[^a-z0-9]+", "-", resource.lower())
    kind = "role" if namespace else "clusterrole"
    where = f" --namespace={namespace}" if namespace else ""
    role = f"Role in namespace {namespace}" if namespace else "ClusterRole"
    return (
        f"bind the user to a {role} that allows {verbs} on {qualified}, for "
        f"example `kubectl create {kind} {name}{where} --verb={verbs} "
        f"--resource={qualified}` and `kubectl create {kind}binding {name}{where} "
        f"--{kind}={name} {_subject(user)}`"
    )


def _subject(user: str) -> str:
    """Return kubectl's subject option for a user or a service account."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return f"--serviceaccount={parts[2]}:{parts[3]}"
    return f"--user={user}"


def api_error(status: int, body: Any, context: str, what: str) -> KubeError:
    """Turn an API status code and body into a KubeError."""
    message = status_message(body)
    if status == 401:
        return KubeError(
            KubeErrorKind.UNAUTHORIZED,
            f"the API server rejected the credentials of context {context} ({message})",
            "renew the token or client certificate in the kubeconfig, or pick "
            "another context with --context",
            "renew the token or client certificate in the kubeconfig, or press c "
            "to switch to the next context",
        )
    if status == 403:
        return forbidden_error(message, context)
    if status == 404:
        return KubeError(KubeErrorKind.NOT_FOUND, f"{what}: {message}")
    return KubeError(KubeErrorKind.API, f"{what} failed with HTTP {status}: {message}")
