"""Kubeconfig files: which ones are read, their contexts, and the one to use.

Like kubectl, `KUBECONFIG` may list several files separated by ":"; the
first file that defines a context, cluster or user wins, and the first
`current-context` found is the current one. Without `KUBECONFIG`,
~/.kube/config is read. The console never writes these files: picking a
context changes the console's own choice, not the file's current-context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nydus_console.kube.errors import KubeError, KubeErrorKind
from nydus_console.locations import expand

DEFAULT_KUBECONFIG = "~/.kube/config"
# The console has no --kubeconfig once it runs: its steps name the inventory.
_SCREEN_KUBECONFIG = (
    "set kubeconfig in the inventory's [kubernetes] table, or KUBECONFIG before "
    "starting the console"
)
_SCREEN_FIX_FILE = (
    "fix the file, or set kubeconfig in the inventory's [kubernetes] table to "
    "another one"
)


@dataclass(frozen=True)
class ContextInfo:
    """One context: its cluster's server, its user and default namespace."""

    name: str
    cluster: str
    user: str
    namespace: str
    server: str
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cluster": self.cluster,
            "user": self.user,
            "namespace": self.namespace,
            "server": self.server,
            "current": self.current,
        }


@dataclass
class KubeConfig:
    """The merged kubeconfig files; `paths` are the files that exist."""

    paths: list[str]
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    current: str = ""

    @property
    def search_path(self) -> str:
        """The files as the client library takes them, joined with ":"."""
        return os.pathsep.join(self.paths)

    def context_infos(self) -> list[ContextInfo]:
        infos = []
        for name, context in self.contexts.items():
            cluster = str(context.get("cluster", ""))
            server = self.clusters.get(cluster, {}).get("server", "")
            infos.append(
                ContextInfo(
                    name=name,
                    cluster=cluster,
                    user=str(context.get("user", "")),
                    namespace=str(context.get("namespace", "") or ""),
                    server=str(server),
                    current=name == self.current,
                )
            )
        return infos

    def pick(self, name: str | None) -> str:
        """Return the context to use: `name`, else the current one.

        Raises KubeError naming the known contexts when there is none.
        """
        chosen = name or self.current
        known = ", ".join(self.contexts) or "none"
        if not chosen:
            raise KubeError(
                KubeErrorKind.CONFIG,
                f"{self.describe()} sets no current-context",
                f"pass --context NAME (known contexts: {known})",
                f"set context in the inventory's [kubernetes] table (known "
                f"contexts: {known})",
            )
        if chosen not in self.contexts:
            raise KubeError(
                KubeErrorKind.CONFIG,
                f"context {chosen!r} is not in {self.describe()}",
                f"pick one of: {known}",
                f"set context in the inventory's [kubernetes] table to one of: {known}",
            )
        return chosen

    def namespace_of(self, context: str) -> str:
        """Return the context's namespace, "" when it sets none."""
        return str(self.contexts.get(context, {}).get("namespace", "") or "")

    def server_of(self, context: str) -> str:
        cluster = str(self.contexts.get(context, {}).get("cluster", ""))
        return str(self.clusters.get(cluster, {}).get("server", ""))

    def describe(self) -> str:
        return "kubeconfig " + (" and ".join(self.paths) or "(none)")


def kubeconfig_paths(explicit: str | None = None) -> list[str]:
    """Return the kubeconfig files to read: `explicit`, $KUBECONFIG or the default."""
    text = explicit or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    return [expand(part) for part in text.split(os.pathsep) if part]


def load_kubeconfig(explicit: str | None = None) -> KubeConfig:
    """Read and merge the kubeconfig files; raise KubeError when none is usable."""
    import yaml  # PyYAML comes with the kubernetes client

    wanted = kubeconfig_paths(explicit)
    existing = [path for path in wanted if Path(path).is_file()]
    if not existing:
        raise KubeError(
            KubeErrorKind.CONFIG,
            f"no kubeconfig file at {' or '.join(wanted)}",
            "pass --kubeconfig FILE, set KUBECONFIG, or set kubeconfig in the "
            "inventory's [kubernetes] table",
            _SCREEN_KUBECONFIG,
        )
    merged = KubeConfig(existing)
    for path in existing:
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeError(
                KubeErrorKind.CONFIG,
                f"cannot read kubeconfig {path}: {exc}",
                "fix the file or point --kubeconfig at another one",
                _SCREEN_FIX_FILE,
            ) from None
        _merge(merged, document or {}, path)
    return merged


def _merge(merged: KubeConfig, document: Any, path: str) -> None:
    if not isinstance(document, dict):
        raise KubeError(
            KubeErrorKind.CONFIG,
            f"kubeconfig {path} is not a mapping of clusters, users and contexts",
            "fix the file or point --kubeconfig at another one",
            _SCREEN_FIX_FILE,
        )
    for entry in _entries(document, "contexts"):
        merged.contexts.setdefault(entry["name"], _body(entry, "context"))
    for entry in _entries(document, "clusters"):
        merged.clusters.setdefault(entry["name"], _body(entry, "cluster"))
    for entry in _entries(document, "users"):
        merged.users.add(entry["name"])
    if not merged.current and document.get("current-context"):
        merged.current = str(document["current-context"])


def _entries(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = document.get(key) or []
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _body(entry: dict[str, Any], key: str) -> dict[str, Any]:
    body = entry.get(key)
    return body if isinstance(body, dict) else {}
