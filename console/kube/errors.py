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
    """A Kubernetes call that failed; `message` says what, `next_step` what to do."""

    def __init__(self, kind: KubeErrorKind, message: str, next_step: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.next_step = next_step

    def __str__(self) -> str:
        if self.next_step:
            return f"{self.message}; next step: {self.next_step}"
        return self.message


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
    group = found["group"] or ""
    scope = f'in namespace "{found["ns"]}"' if found["ns"] else "at the cluster scope"
    api_group = f' in API group "{group}"' if group else ""
    role = "ClusterRole" if not found["ns"] else "Role"
    return KubeError(
        KubeErrorKind.FORBIDDEN,
        f'permission denied: user "{found["user"]}" (context {context}) may not '
        f"{verb} {resource}{api_group} {scope}; the missing permission is "
        f'"{verb}" on "{resource}"',
        f"bind the user to a {role} that allows {verb} on {resource}, for "
        f"example `kubectl create clusterrole nydus-console-read "
        f"--verb=get,list,watch --resource=nodes,pods,events` and a "
        f"ClusterRoleBinding to it",
    )


def api_error(status: int, body: Any, context: str, what: str) -> KubeError:
    """Turn an API status code and body into a KubeError."""
    message = status_message(body)
    if status == 401:
        return KubeError(
            KubeErrorKind.UNAUTHORIZED,
            f"the API server rejected the credentials of context {context} ({message})",
            "renew the token or client certificate in the kubeconfig, or pick "
            "another context with --context",
        )
    if status == 403:
        return forbidden_error(message, context)
    if status == 404:
        return KubeError(KubeErrorKind.NOT_FOUND, f"{what}: {message}")
    return KubeError(KubeErrorKind.API, f"{what} failed with HTTP {status}: {message}")
