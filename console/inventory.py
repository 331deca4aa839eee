"""Nodes to manage: `--node` arguments, an inventory TOML, ~/.ssh/config aliases.

With none of these, the console manages the machine it runs on.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
import socket
import tomllib
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nydus_console.locations import expand

DEFAULT_SNAPSHOTTER_CONFIG = "/etc/nydus/config.toml"
DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|target)$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9_.:@\[\]-]{1,128}$")


# The source of the inventory used when neither a file nor a node is given.
LOCAL_SOURCE = "this machine (nothing configured)"


class InventoryError(ValueError):
    """An invalid node specification; the message names the value and the fix."""


@dataclass(frozen=True)
class NodePaths:
    """Per-node locations; k3s, rke2 and hand-made installs differ from these."""

    snapshotter_config: str = DEFAULT_SNAPSHOTTER_CONFIG
    containerd_config: str = DEFAULT_CONTAINERD_CONFIG
    snapshotter_unit: str = "nydus-snapshotter.service"
    containerd_unit: str = "containerd.service"
    containerd_socket: str = "/run/containerd/containerd.sock"
    # Empty means: the snapshotter's own [log] dir, else <root>/logs.
    log_dir: str = ""


DEFAULT_NODE_SHELL_IMAGE = "busybox:1.36"
DEFAULT_NODE_SHELL_NAMESPACE = "default"
NODE_ACCESS_KINDS = ("ssh", "pod")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class PodAccess:
    """A cluster node reached through a node-shell pod instead of SSH.

    `read_only` is the console's --read-only, `cluster_read_only` the
    [kubernetes] table's read_only; either refuses creating the pod.
    """

    kubeconfig: str = ""
    context: str = ""
    image: str = DEFAULT_NODE_SHELL_IMAGE
    namespace: str = DEFAULT_NODE_SHELL_NAMESPACE
    read_only: bool = False
    cluster_read_only: bool = False


@dataclass(frozen=True)
class NodeSpec:
    """One node and how to reach it. `local` nodes run commands without SSH."""

    name: str
    host: str = ""
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    jump_host: str | None = None
    sudo: bool = False
    read_only: bool = False
    local: bool = False
    connect_timeout: float = 10.0
    # The `instance` label of this node's series in Prometheus, or its host part.
    prometheus_instance: str = ""
    paths: NodePaths = field(default_factory=NodePaths)
    # Set for cluster nodes reached through a node-shell pod.
    pod_access: PodAccess | None = None

    @property
    def address(self) -> str:
        if self.local:
            return "local"
        if self.pod_access is not None:
            return f"pod on {self.name}"
        login = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        port = f":{self.port}" if self.port else ""
        return f"{login}{host}{port}"


DEFAULT_METRICS_INTERVAL = 5.0
MIN_METRICS_INTERVAL = 1.0


# The address of a cluster node that SSH connects to.
CLUSTER_ADDRESS_KINDS = ("internal-ip", "external-ip", "hostname")


@dataclass(frozen=True)
class ClusterTemplate:
    """The [kubernetes] table: a cluster whose nodes join the fleet over SSH.

    `node_table` holds the node keys every cluster node gets: [defaults]
    with the table's ssh_user, ssh_port, key, jump_host, sudo and read_only
    on top. `address` names the node address SSH connects to.
    """

    source: str
    kubeconfig: str = ""
    context: str = ""
    address: str = "internal-ip"
    label_selector: str = ""
    node_table: Mapping[str, Any] = field(default_factory=dict)
    node_access: str = "ssh"
    node_shell_image: str = DEFAULT_NODE_SHELL_IMAGE
    node_shell_namespace: str = DEFAULT_NODE_SHELL_NAMESPACE

    @property
    def read_only(self) -> bool:
        """Whether cluster nodes are read-only, which also blocks API actions."""
        return self.node_table.get("read_only", False) is True

    def node_spec(
        self, name: str, address: str, *, read_only: bool = False
    ) -> NodeSpec:
        """Return the target of cluster node `name` reached at `address`.

        With node_access = "pod" the node is reached through a node-shell
        pod; `read_only` is the console's --read-only, which refuses it.
        """
        where = f"[kubernetes] node {name}"
        table = {k: v for k, v in self.node_table.items() if k != "known_hosts"}
        spec = _node_from_table(
            name, table | {"address": address}, {}, self.source, where=where
        )
        if self.node_access != "pod":
            return spec
        access = PodAccess(
            kubeconfig=self.kubeconfig,
            context=self.context,
            image=self.node_shell_image,
            namespace=self.node_shell_namespace,
            read_only=read_only,
            cluster_read_only=self.read_only,
        )
        return replace(spec, pod_access=access)


@dataclass
class Inventory:
    """The nodes and the settings shared by all of them."""

    nodes: list[NodeSpec]
    known_hosts: list[str] = field(default_factory=list)
    source: str = "local machine"
    prometheus_url: str = ""
    metrics_interval: float = DEFAULT_METRICS_INTERVAL
    kubernetes: ClusterTemplate | None = None
    # Cluster nodes that are not in the fleet, by name, with why and the fix.
    left_out: dict[str, str] = field(default_factory=dict)


def local_inventory() -> Inventory:
    """Return an inventory with this machine as its only node."""
    node = NodeSpec(name=socket.gethostname() or "localhost", local=True)
    return Inventory(nodes=[node], source=LOCAL_SOURCE)


def parse_node_argument(text: str) -> NodeSpec:
    """Parse `[user@]host[:port]`, where host may be `[v6-address]`."""
    user: str | None = None
    rest = text
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        _check(_USER.match(user), "user", user, text)
    host, port = _split_host_port(rest, text)
    # Two nodes on one host differ by port, so the port is part of the name.
    name = host if port is None else f"{host}:{port}"
    return NodeSpec(name=name, host=host, port=port, user=user)


def _split_host_port(text: str, original: str) -> tuple[str, int | None]:
    port_text = None
    if text.startswith("["):
        close = text.find("]")
        _check(close > 0, "address", text, original)
        host, tail = text[1:close], text[close + 1 :]
        if tail:
            _check(tail.startswith(":"), "address", text, original)
            port_text = tail[1:]
        _check(_is_ip(host), "IPv6 address", host, original)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    _check(_valid_host(host), "host", host, original)
    return host, _parse_port(port_text, original) if port_text is not None else None


def _parse_port(text: str, original: str) -> int:
    _check(text.isdigit() and 0 < int(text) < 65536, "port", text, original)
    return int(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _valid_host(text: str) -> bool:
    return _is_ip(text) or bool(_HOSTNAME.match(text))


def _check(condition: object, what: str, value: str, original: str) -> None:
    if not condition:
        raise InventoryError(
            f"invalid {what} {value!r} in node {original!r}: "
            "expected [user@]host[:port], with host a name, an IPv4 address or "
            "[an IPv6 address]"
        )


# -- inventory file -------------------------------------------------------------

_NODE_KEYS = {
    "address",
    "user",
    "port",
    "identity_file",
    "jump_host",
    "sudo",
    "read_only",
    "connect_timeout",
    "prometheus_instance",
}
_PATH_KEYS = {f.name for f in fields(NodePaths)}
_DEFAULT_KEYS = (
    _NODE_KEYS - {"address", "prometheus_instance"} | _PATH_KEYS | {"known_hosts"}
)


def load_inventory(path: Path) -> Inventory:
    """Read an inventory TOML; raise InventoryError naming the file and key."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InventoryError(
            f"inventory file {str(path)!r} not found; create it or drop --inventory"
        ) from None
    except IsADirectoryError:
        raise InventoryError(
            f"inventory {str(path)!r} is a directory; give the TOML file inside it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InventoryError(f"cannot read inventory {str(path)!r}: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(
            f"inventory {str(path)!r} is not valid TOML: {exc}"
        ) from None
    return parse_inventory(data, str(path))


def _nodes_from_tables(
    tables: Mapping[str, Any], defaults: dict[str, Any], source: str
) -> list[NodeSpec]:
    """Read every [nodes.NAME] table; report the problems of all nodes at once."""
    nodes: list[NodeSpec] = []
    problems: list[str] = []
    for name, table in tables.items():
        try:
            checked = _table(table, f"nodes.{name}", source)
            nodes.append(_node_from_table(name, checked, defaults, source))
        except InventoryError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise InventoryError(problems[0])
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise InventoryError(f"{len(problems)} nodes are invalid:\n{listed}")
    return nodes


def parse_inventory(data: Mapping[str, Any], source: str) -> Inventory:
    unknown = set(data) - {"defaults", "nodes", "metrics", "kubernetes"}
    if unknown:
        raise InventoryError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; "
            "expected [defaults], [metrics], [kubernetes] and [nodes.NAME] tables"
        )
    defaults = _table(data.get("defaults", {}), "defaults", source)
    _reject_unknown(defaults, _DEFAULT_KEYS, "[defaults]", source)
    nodes_table = _table(data.get("nodes", {}), "nodes", source)
    nodes = _nodes_from_tables(nodes_table, defaults, source)
    cluster = None
    if "kubernetes" in data:
        table = _table(data["kubernetes"], "kubernetes", source)
        cluster = cluster_template(table, defaults, source)
    if not nodes and cluster is None:
        raise InventoryError(
            f"{source}: no [nodes.NAME] table; add at least one node, or a "
            "[kubernetes] table whose cluster nodes join the fleet"
        )
    known = defaults.get("known_hosts", [])
    if isinstance(known, str):
        known = [known]
    if not isinstance(known, list) or not all(isinstance(k, str) for k in known):
        raise InventoryError(f"{source}: known_hosts must be a path or list of paths")
    inventory = Inventory(
        nodes=nodes,
        known_hosts=[expand(k) for k in known],
        source=source,
        kubernetes=cluster,
    )
    _metrics_settings(inventory, _table(data.get("metrics", {}), "metrics", source))
    return inventory


def _metrics_settings(inventory: Inventory, table: dict[str, Any]) -> None:
    source = inventory.source
    _reject_unknown(table, {"prometheus_url", "interval"}, "[metrics]", source)
    url = table.get("prometheus_url", "")
    if not isinstance(url, str) or (url and not check_prometheus_url(url)):
        raise InventoryError(
            f"{source}: [metrics] prometheus_url = {url!r} is not an http:// or "
            'https:// URL; write it like "http://prometheus.example:9090"'
        )
    interval = table.get("interval", DEFAULT_METRICS_INTERVAL)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not (interval >= MIN_METRICS_INTERVAL)
    ):
        raise InventoryError(
            f"{source}: [metrics] interval = {interval!r} must be a number of "
            f"seconds, at least {MIN_METRICS_INTERVAL:g}"
        )
    inventory.prometheus_url = url
    inventory.metrics_interval = float(interval)


def check_prometheus_url(url: str) -> bool:
    """True when `url` is an http(s) URL with a host and a valid port, if any."""
    if any(c.isspace() for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


def _table(value: object, where: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError(f"{source}: [{where}] must be a table")
    return value


def _reject_unknown(
    table: Mapping[str, Any], allowed: Iterable[str], where: str, source: str
) -> None:
    unknown = sorted(set(table) - set(allowed))
    if "known_hosts" in unknown:
        raise InventoryError(
            f"{source}: known_hosts in {where} is allowed only in [defaults]"
        )
    if unknown:
        names = sorted(allowed)
        hints = []
        for key in unknown:
            match = difflib.get_close_matches(key, names, n=1)
            if match:
                hints.append(f"{match[0]} for {key}")
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise InventoryError(
            f"{source}: unknown key(s) {unknown} in {where}{hint}; "
            f"allowed: {', '.join(names)}"
        )


_CLUSTER_KEYS = {
    "kubeconfig",
    "context",
    "address",
    "label_selector",
    "ssh_user",
    "ssh_port",
    "key",
    "jump_host",
    "sudo",
    "read_only",
    "node_access",
    "node_shell_image",
    "node_shell_namespace",
}
# [kubernetes] keys that become node keys, by their node key name.
_CLUSTER_NODE_KEYS = {
    "ssh_user": "user",
    "ssh_port": "port",
    "key": "identity_file",
    "jump_host": "jump_host",
    "sudo": "sudo",
    "read_only": "read_only",
}


def cluster_template(
    table: Mapping[str, Any], defaults: Mapping[str, Any], source: str
) -> ClusterTemplate:
    """Read the [kubernetes] table; raise InventoryError naming the bad key."""
    where = "[kubernetes]"
    _reject_unknown(table, _CLUSTER_KEYS, where, source)
    address = _string(table.get("address", "internal-ip"), "address", where, source)
    if address not in CLUSTER_ADDRESS_KINDS:
        raise InventoryError(
            f"{source}: {where} address = {address!r} is not one of "
            f"{', '.join(CLUSTER_ADDRESS_KINDS)}; it names the node address "
            "SSH connects to"
        )
    node_table = dict(defaults) | {
        node_key: table[key]
        for key, node_key in _CLUSTER_NODE_KEYS.items()
        if key in table
    }
    kubeconfig = _string(table.get("kubeconfig", ""), "kubeconfig", where, source)
    template = ClusterTemplate(
        source=source,
        kubeconfig=expand(kubeconfig) if kubeconfig else "",
        context=_string(table.get("context", ""), "context", where, source),
        address=address,
        label_selector=_string(
            table.get("label_selector", ""), "label_selector", where, source
        ),
        node_table=node_table,
        **_node_shell_keys(table, where, source),
    )
    # Check the SSH keys once, with a node name and address that are valid.
    checked = {k: v for k, v in node_table.items() if k != "known_hosts"}
    _node_from_table(
        "cluster-node", checked | {"address": "192.0.2.1"}, {}, source, where
    )
    return template


def _node_shell_keys(
    table: Mapping[str, Any], where: str, source: str
) -> dict[str, str]:
    """Read node_access and the node-shell pod's image and namespace."""
    access = _string(table.get("node_access", "ssh"), "node_access", where, source)
    image = _string(
        table.get("node_shell_image", DEFAULT_NODE_SHELL_IMAGE),
        "node_shell_image",
        where,
        source,
    )
    namespace = _string(
        table.get("node_shell_namespace", DEFAULT_NODE_SHELL_NAMESPACE),
        "node_shell_namespace",
        where,
        source,
    )
    if access not in NODE_ACCESS_KINDS:
        raise InventoryError(
            f"{source}: {where} node_access = {access!r} is not one of "
            f"{' or '.join(NODE_ACCESS_KINDS)}; pod reaches nodes through a "
            "node-shell pod instead of SSH"
        )
    if not image or any(c.isspace() for c in image):
        raise InventoryError(
            f"{source}: {where} node_shell_image = {image!r} is not an image "
            "reference; give one like REPO:TAG"
        )
    if not _DNS_LABEL.match(namespace):
        raise InventoryError(
            f"{source}: {where} node_shell_namespace = {namespace!r} is not a "
            "namespace name; use lower-case letters, digits and '-'"
        )
    return {
        "node_access": access,
        "node_shell_image": image,
        "node_shell_namespace": namespace,
    }


def _node_from_table(
    name: str,
    table: dict[str, Any],
    defaults: dict[str, Any],
    source: str,
    where: str = "",
) -> NodeSpec:
    where = where or f"[nodes.{name}]"
    _reject_unknown(table, _NODE_KEYS | _PATH_KEYS, where, source)
    if not _NODE_NAME.match(name):
        raise InventoryError(
            f"{source}: invalid node name {name!r}: use letters, digits and "
            "_ . : @ [ ] - (at most 128)"
        )
    merged = {k: v for k, v in defaults.items() if k != "known_hosts"} | table
    address = merged.get("address", name)
    if not isinstance(address, str):
        raise InventoryError(f"{source}: {where} address must be a string")
    try:
        spec = parse_node_argument(address)
    except InventoryError as exc:
        raise InventoryError(f"{source}: {where} {exc}") from None
    port = merged.get("port", spec.port)
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise InventoryError(
            f"{source}: {where} port must be a number without quotes, got {port!r}"
        )
    if port is not None and not 0 < port < 65536:
        raise InventoryError(f"{source}: {where} port must be 1-65535, got {port}")
    user = merged.get("user", spec.user)
    if user is not None and not _USER.match(_string(user, "user", where, source)):
        raise InventoryError(f"{source}: {where} invalid user {user!r}")
    return replace(
        spec,
        name=name,
        port=port,
        user=user,
        identity_file=_optional_path(merged.get("identity_file"), where, source),
        jump_host=_optional_jump(merged.get("jump_host"), where, source),
        sudo=_bool(merged.get("sudo", False), "sudo", where, source),
        read_only=_bool(merged.get("read_only", False), "read_only", where, source),
        connect_timeout=_seconds(merged.get("connect_timeout", 10.0), where, source),
        prometheus_instance=_string(
            merged.get("prometheus_instance", ""), "prometheus_instance", where, source
        ),
        paths=_paths(merged, where, source),
    )


def _paths(merged: Mapping[str, Any], where: str, source: str) -> NodePaths:
    values: dict[str, str] = {}
    for key in _PATH_KEYS & set(merged):
        value = _string(merged[key], key, where, source)
        if key.endswith("_unit"):
            if not _UNIT.match(value):
                raise InventoryError(
                    f"{source}: {where} {key} {value!r} is not a systemd unit name "
                    "(for example nydus-snapshotter.service)"
                )
        elif value or key != "log_dir":
            _absolute(value, key, where, source)
        values[key] = value
    return NodePaths(**values)


def _absolute(value: str, key: str, where: str, source: str) -> None:
    if not value.startswith("/") or "\n" in value or "\0" in value:
        raise InventoryError(
            f"{source}: {where} {key} must be an absolute path on the node, "
            f"got {value!r}"
        )


def _string(value: object, key: str, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{source}: {where} {key} must be a string")
    return value


def _bool(value: object, key: str, where: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise InventoryError(f"{source}: {where} {key} must be true or false")
    return value


def _seconds(value: object, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InventoryError(
            f"{source}: {where} connect_timeout must be a positive number of "
            f"seconds, got {value!r}"
        )
    return float(value)


def _optional_path(value: object, where: str, source: str) -> str | None:
    if value is None:
        return None
    path = expand(_string(value, "identity_file", where, source))
    if not Path(path).is_file():
        raise InventoryError(
            f"{source}: {where} identity_file {path!r} does not exist or is not a "
            "file; point it at an OpenSSH private key"
        )
    return path


def _optional_jump(value: object, where: str, source: str) -> str | None:
    if value is None:
        return None
    try:
        spec = parse_node_argument(_string(value, "jump_host", where, source))
    except InventoryError as exc:
        raise InventoryError(f"{source}: {where} jump_host: {exc}") from None
    return spec.address


# -- ~/.ssh/config aliases ------------------------------------------------------


def ssh_config_aliases(path: Path, pattern: str = "*") -> list[str]:
    """Return the concrete `Host` aliases of an OpenSSH client config."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    aliases: list[str] = []
    for line in lines:
        words = line.strip().split()
        if len(words) < 2 or words[0].lower() != "host":
            continue
        for alias in words[1:]:
            wildcard = any(c in alias for c in "*?!")
            if not wildcard and fnmatch.fnmatchcase(alias, pattern):
                aliases.append(alias)
    return aliases


def reject_misspelt_nodes(inventory: Inventory, given: Iterable[str]) -> None:
    """Raise InventoryError for a --node value that is most likely a misspelt node.

    That is a plain name (no user, port, dot or bracket) that is neither a
    node of the inventory nor a Host alias of ~/.ssh/config. Any other value
    is a host reached over SSH.
    """
    names = [n.name for n in inventory.nodes]
    aliases: set[str] | None = None
    for text in given:
        if text in names or any(mark in text for mark in "@:.["):
            continue
        if aliases is None:
            aliases = set(ssh_config_aliases(Path("~/.ssh/config").expanduser()))
        if text in aliases:
            continue
        close = difflib.get_close_matches(text, names, n=1)
        if not close:
            close = [n for n in names if n.lower() == text.lower()]
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InventoryError(
            f"node {text!r} is not in {inventory.source}: {hint}its nodes are "
            f"{', '.join(names) or 'none'}. A host outside the inventory needs "
            "USER@HOST, an address or a Host alias of ~/.ssh/config"
        )
