"""Parameters of runbook steps: values taken from a node's facts, and substitution.

Every value is a tuple of strings. A placeholder that makes up a whole
argument expands to one argument per value, so `kill {stale_snapshotter_pids}`
kills each PID. Inside a longer argument it needs exactly one value. An empty
tuple means the node has no such value, and the reason is kept.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from nydus_console.configs import (
    ConfigError,
    ContainerdConfig,
    SnapshotterConfig,
    expected_root,
    parse_containerd_config,
    parse_snapshotter_config,
)
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.runbooks.model import PLACEHOLDER

DEFAULT_CONTAINERD_ROOT = "/var/lib/containerd"
# The snapshotter's root must fit `<root>/socket/<id>/api.sock` into the
# 108-byte unix socket path, so containerd-nydus-grpc v0.15.3 and later
# reject a root over 70 bytes.
MAX_ROOT_BYTES = 70
# Directories that a runbook never removes, whatever containerd's config
# names as its root.
PROTECTED_DIRECTORIES = frozenset(
    {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt"}
    | {"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr"}
    | {"/usr/local", "/var", "/var/lib", "/var/log", "/var/run"}
)


NONE_ON_NODE = "none on the node"


class ParamUnavailable(Exception):
    """The node has no value for a parameter; the message gives the reason."""


class MissingParameter(Exception):
    """A placeholder without a value, with its `name` and the `reason`."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"no value for {{{name}}}: {reason}")
        self.name = name
        self.reason = reason


@dataclass
class FactView:
    """One node's facts and inventory entry, with its configs parsed once."""

    facts: NodeFacts
    spec: NodeSpec

    @cached_property
    def snapshotter(self) -> SnapshotterConfig:
        read = self.facts.file(self.spec.paths.snapshotter_config)
        if read.status != "ok":
            raise ParamUnavailable(f"{read.path} is {read.status}")
        try:
            return parse_snapshotter_config(read.text)
        except ConfigError as exc:
            raise ParamUnavailable(f"{read.path}: {exc}") from None

    @cached_property
    def containerd(self) -> ContainerdConfig:
        read = self.facts.file(self.spec.paths.containerd_config)
        if read.status != "ok":
            raise ParamUnavailable(f"{read.path} is {read.status}")
        try:
            return parse_containerd_config(read.text)
        except ConfigError as exc:
            raise ParamUnavailable(f"{read.path}: {exc}") from None


@dataclass(frozen=True)
class FactParam:
    description: str
    resolve: Callable[[FactView], tuple[str, ...]]


def _main_pid(view: FactView) -> int:
    unit = view.facts.units.get(view.spec.paths.snapshotter_unit)
    return unit.main_pid if unit is not None else 0


def _stale_snapshotter_pids(view: FactView) -> tuple[str, ...]:
    if not view.facts.systemd_running:
        raise ParamUnavailable("without systemd no process is the service's own")
    main = _main_pid(view)
    running = view.facts.processes_named("containerd-nydu")
    return tuple(str(p.pid) for p in running if p.state != "Z" and p.pid != main)


def _snapshotter_main_pid(view: FactView) -> tuple[str, ...]:
    main = _main_pid(view)
    if not main:
        raise ParamUnavailable("systemd reports no main PID: the unit is not running")
    return (str(main),)


def _containerd_root(view: FactView) -> tuple[str, ...]:
    root = view.containerd.root or DEFAULT_CONTAINERD_ROOT
    return (checked_removable(root),)


def checked_removable(path: str) -> str:
    """Return `path` if a runbook may remove it; raise ParamUnavailable if not.

    The path must be absolute, normalised, and neither a system directory
    nor one of its parents.
    """
    normal = posixpath.normpath(path)
    if not path.startswith("/") or path not in (normal, normal + "/"):
        raise ParamUnavailable(f"{path!r} is not an absolute, normalised path")
    if normal in PROTECTED_DIRECTORIES or normal.count("/") < 2:
        raise ParamUnavailable(f"{normal} is a system directory; it is never removed")
    return normal


def _expected_root(view: FactView) -> tuple[str, ...]:
    return (expected_root(view.containerd.root or DEFAULT_CONTAINERD_ROOT),)


def _expected_root_fits(view: FactView) -> tuple[str, ...]:
    (root,) = _expected_root(view)
    return ("yes" if len(root.encode()) <= MAX_ROOT_BYTES else "no",)


def _nydusd_cgroups(view: FactView) -> tuple[str, ...]:
    found = sorted(posixpath.dirname(path) for path in view.facts.nydusd_cgroups)
    return tuple(found)


def _snapshotter_log_dir(view: FactView) -> tuple[str, ...]:
    config = view.snapshotter
    return (view.spec.paths.log_dir or config.log_dir or f"{config.root}/logs",)


def _path(attribute: str) -> Callable[[FactView], tuple[str, ...]]:
    return lambda view: (str(getattr(view.spec.paths, attribute)),)


FACT_PARAMS: dict[str, FactParam] = {
    "node": FactParam("the node's name in the inventory", lambda v: (v.spec.name,)),
    "snapshotter_unit": FactParam(
        "the snapshotter's systemd unit (inventory `snapshotter_unit`)",
        _path("snapshotter_unit"),
    ),
    "containerd_unit": FactParam(
        "containerd's systemd unit (inventory `containerd_unit`)",
        _path("containerd_unit"),
    ),
    "containerd_socket": FactParam(
        "the socket `ctr` talks to (inventory `containerd_socket`)",
        _path("containerd_socket"),
    ),
    "snapshotter_config": FactParam(
        "the snapshotter's config.toml (inventory `snapshotter_config`)",
        _path("snapshotter_config"),
    ),
    "containerd_config": FactParam(
        "containerd's config.toml (inventory `containerd_config`)",
        _path("containerd_config"),
    ),
    "snapshotter_main_pid": FactParam(
        "systemd's MainPID of the snapshotter unit", _snapshotter_main_pid
    ),
    "stale_snapshotter_pids": FactParam(
        "running containerd-nydus-grpc processes other than systemd's MainPID of "
        "the snapshotter unit",
        _stale_snapshotter_pids,
    ),
    "snapshotter_root": FactParam(
        "`root` of the snapshotter's config.toml", lambda v: (v.snapshotter.root,)
    ),
    "grpc_address": FactParam(
        "`address` of the snapshotter's config.toml (its gRPC socket)",
        lambda v: (v.snapshotter.address,),
    ),
    "nydusd_config": FactParam(
        "`[daemon] nydusd_config` of the snapshotter's config.toml",
        lambda v: (v.snapshotter.nydusd_config,),
    ),
    "snapshotter_log_dir": FactParam(
        "the snapshotter's log directory: inventory `log_dir`, else `[log] dir`, "
        "else <root>/logs",
        _snapshotter_log_dir,
    ),
    "containerd_root": FactParam(
        "`root` of containerd's config (default /var/lib/containerd); a system "
        "directory such as /var/lib is never given",
        _containerd_root,
    ),
    "expected_root": FactParam(
        "<containerd root>/io.containerd.snapshotter.v1.nydus, where CRI looks "
        "for the snapshotter's files",
        _expected_root,
    ),
    "expected_root_fits": FactParam(
        f"`yes` when expected_root is at most {MAX_ROOT_BYTES} bytes, else `no`",
        _expected_root_fits,
    ),
    "nydusd_cgroups": FactParam(
        "existing `system.slice/nydusd` cgroup directories (cgroup v2 and each "
        "v1 hierarchy)",
        _nydusd_cgroups,
    ),
}


@dataclass
class ParamValues:
    """Resolved parameter values, and why the empty ones are empty."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # Names whose value could not be read (as opposed to: the node has none).
    errors: set[str] = field(default_factory=set)

    def get(self, name: str) -> tuple[str, ...]:
        return self.values.get(name, ())

    def reason(self, name: str) -> str:
        return self.reasons.get(name, "no value")


def resolve_facts(facts: NodeFacts, spec: NodeSpec) -> ParamValues:
    """Resolve every fact parameter for one node."""
    view = FactView(facts, spec)
    resolved = ParamValues()
    for name, param in FACT_PARAMS.items():
        try:
            resolved.values[name] = param.resolve(view)
        except ParamUnavailable as exc:
            resolved.values[name] = ()
            resolved.reasons[name] = str(exc)
            resolved.errors.add(name)
        if not resolved.values[name] and name not in resolved.reasons:
            resolved.reasons[name] = NONE_ON_NODE
    return resolved


def substitute(argv: tuple[str, ...], values: ParamValues) -> tuple[str, ...]:
    """Replace the placeholders in each argument; raise MissingParameter.

    The result has exactly one element per argument, except where a whole
    argument is a single placeholder: that expands to one element per value.
    """
    result: list[str] = []
    for word in argv:
        whole = PLACEHOLDER.fullmatch(word)
        if whole is not None:
            result += _values_of(whole.group(1), values)
            continue
        result.append(substitute_text(word, values))
    return tuple(result)


def substitute_text(text: str, values: ParamValues) -> str:
    """Replace placeholders inside one string; each needs exactly one value."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        found = _values_of(name, values)
        if len(found) != 1:
            raise MissingParameter(
                name, f"{len(found)} values where one argument needs exactly one"
            )
        return found[0]

    return PLACEHOLDER.sub(one, text)


def _values_of(name: str, values: ParamValues) -> tuple[str, ...]:
    found = values.get(name)
    if not found:
        raise MissingParameter(name, values.reason(name))
    return found


def parse_assignments(items: list[str]) -> dict[str, str]:
    """Parse `--param NAME=VALUE` arguments; raise ValueError naming a bad one."""
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not PLACEHOLDER.fullmatch(f"{{{name}}}"):
            raise ValueError(
                f"--param {item!r}: expected NAME=VALUE with a lower-case NAME"
            )
        parsed[name] = value
    return parsed


def set_value(
    values: ParamValues, name: str, found: tuple[str, ...], reason: str = ""
) -> None:
    """Store a value, or an empty one with the reason it is empty."""
    values.values[name] = found
    values.errors.discard(name)
    if found:
        values.reasons.pop(name, None)
    else:
        values.reasons[name] = reason or "no value"


def render(text: str, values: ParamValues) -> str:
    """Replace each placeholder that has values, for display; keep the others."""

    def shown(match: re.Match[str]) -> str:
        found = values.get(match.group(1))
        return " ".join(found) if found else match.group(0)

    return PLACEHOLDER.sub(shown, text)
