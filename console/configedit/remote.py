"""A node's config files: where they are, reading them, and planning a change.

The snapshotter and containerd configs are at the node's inventory paths;
the nydusd config is the one the snapshotter config names in `[daemon]
nydusd_config`. Changing the snapshotter or the nydusd config restarts the
snapshotter (nydusd daemons read their config when they start); changing
containerd's restarts containerd.
"""

from __future__ import annotations

from dataclasses import dataclass

from nydus_console.configedit.apply import ConfigChange
from nydus_console.configedit.document import (
    ConfigSyntaxError,
    Document,
    load_document,
)
from nydus_console.configedit.drift import describe_changes
from nydus_console.configedit.validate import (
    Problem,
    ValidationContext,
    syntax_problem,
    validate,
)
from nydus_console.configs import (
    ConfigError,
    SnapshotterConfig,
    parse_snapshotter_config,
)
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import Transport, TransportError

NYDUSD_DEFAULT_CONFIG = "/etc/nydus/nydusd-config.json"
KIND_TITLES = {
    "snapshotter": "snapshotter config",
    "nydusd": "nydusd config",
    "containerd": "containerd config",
}


class ConfigReadError(Exception):
    """A config file could not be read from a node; the message says why."""


@dataclass
class NodeConfig:
    """One config file of one node as read, with its document or syntax error."""

    node: str
    kind: str
    path: str
    text: str | None
    document: Document | None = None
    syntax: ConfigSyntaxError | None = None

    @property
    def exists(self) -> bool:
        return self.text is not None


def snapshotter_model(
    facts: NodeFacts | None, spec: NodeSpec
) -> SnapshotterConfig | None:
    if facts is None:
        return None
    read = facts.file(spec.paths.snapshotter_config)
    if read.status != "ok":
        return None
    try:
        return parse_snapshotter_config(read.text)
    except ConfigError:
        return None


def config_path(kind: str, spec: NodeSpec, facts: NodeFacts | None) -> str:
    """Where the `kind` config of a node is."""
    if kind == "snapshotter":
        return spec.paths.snapshotter_config
    if kind == "containerd":
        return spec.paths.containerd_config
    model = snapshotter_model(facts, spec)
    return model.nydusd_config if model is not None else NYDUSD_DEFAULT_CONFIG


def restart_target(
    kind: str, spec: NodeSpec, facts: NodeFacts | None
) -> tuple[str, str]:
    """The unit to restart after a change to `kind`, and the socket it must open."""
    if kind == "containerd":
        return spec.paths.containerd_unit, spec.paths.containerd_socket
    model = snapshotter_model(facts, spec)
    socket = model.address if model is not None else ""
    return spec.paths.snapshotter_unit, socket


async def read_text(transport: Transport, path: str) -> str | None:
    """Return the text of `path` on the node, or None when it does not exist."""
    try:
        result = await transport.run(["cat", "--", path])
    except TransportError as exc:
        raise ConfigReadError(f"{path} on {transport.name}: {exc}") from None
    if result.ok:
        return result.stdout
    if "No such file" in result.stderr:
        return None
    raise ConfigReadError(
        f"{path} on {transport.name} could not be read: {result.stderr.strip()}"
    )


async def load_node_config(
    transport: Transport, spec: NodeSpec, facts: NodeFacts | None, kind: str
) -> NodeConfig:
    path = config_path(kind, spec, facts)
    text = await read_text(transport, path)
    config = NodeConfig(spec.name, kind, path, text)
    if text is None:
        return config
    try:
        config.document = load_document(kind, text, path)
    except ConfigSyntaxError as exc:
        config.syntax = exc
    return config


def node_context(
    facts: NodeFacts | None, spec: NodeSpec, kind: str
) -> ValidationContext:
    if facts is None:
        return ValidationContext(paths=spec.paths)
    context = ValidationContext.from_facts(facts, spec.paths)
    # The node's nydusd config is the snapshotter's template: it fills in the
    # registry host and repository per image.
    context.nydusd_template = kind == "nydusd"
    return context


def problems_of(
    config: NodeConfig, document: Document | None, context: ValidationContext
) -> list[Problem]:
    if config.syntax is not None and document is None:
        return [syntax_problem(config.syntax)]
    if document is None:
        return []
    return validate(document, context)


def plan_change(
    config: NodeConfig,
    new_text: str,
    spec: NodeSpec,
    facts: NodeFacts | None,
    restart: bool,
) -> ConfigChange:
    unit, socket = restart_target(config.kind, spec, facts) if restart else ("", "")
    changes = describe_changes(config.kind, config.text, new_text)
    return ConfigChange(config.path, config.text, new_text, unit, socket, changes)
