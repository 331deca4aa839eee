"""What a node has before setup: OS, kernel, devices, containerd and Nydus.

Everything here only reads. The node's facts come from the probe the other
checks use; one more script reads the OS name, the checksums of installed
Nydus binaries and which k3s or rke2 directories exist.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from nydus_console.configedit.remote import ConfigReadError, read_text
from nydus_console.configs import (
    CONTAINERD_DEFAULT_ROOT,
    NYDUSD_DEFAULT_CONFIG,
    ConfigError,
    parse_containerd_config,
)
from nydus_console.facts import NodeFacts, parse_kernel_release
from nydus_console.inventory import DEFAULT_CONTAINERD_CONFIG, NodeSpec
from nydus_console.probe import NodeProber
from nydus_console.transport.base import ErrorKind, Transport, TransportError

BIN_DIR = "/usr/local/bin"
BINARIES = (
    "nydusd",
    "nydus-image",
    "nydusify",
    "containerd-nydus-grpc",
    "nydus-overlayfs",
)
# The snapshotter and nydusd must be there; the others are tools.
REQUIRED_BINARIES = ("containerd-nydus-grpc", "nydusd")
# The binaries whose --version the probe reads, by the probe's component name.
PROBED_VERSIONS = {"containerd-nydus-grpc": "snapshotter", "nydusd": "nydusd"}
DOCKER_CONFIG = "/root/.docker/config.json"
UNIT_DIR = "/etc/systemd/system"
FSCACHE_MIN_KERNEL = (5, 19)


@dataclass(frozen=True)
class Layout:
    """Paths of containerd's files in a Kubernetes distribution."""

    name: str
    config_dir: str
    root: str
    socket: str
    units: tuple[str, ...]

    @property
    def template(self) -> str:
        return f"{self.config_dir}/config.toml.tmpl"

    @property
    def generated(self) -> str:
        return f"{self.config_dir}/config.toml"


# k3s and rke2 regenerate config.toml at every start; changes go into the
# template beside it (config.toml.tmpl), which they render instead.
LAYOUTS = (
    Layout(
        "k3s",
        "/var/lib/rancher/k3s/agent/etc/containerd",
        "/var/lib/rancher/k3s/agent/containerd",
        "/run/k3s/containerd/containerd.sock",
        ("k3s.service", "k3s-agent.service"),
    ),
    Layout(
        "rke2",
        "/var/lib/rancher/rke2/agent/etc/containerd",
        "/var/lib/rancher/rke2/agent/containerd",
        "/run/k3s/containerd/containerd.sock",
        ("rke2-server.service", "rke2-agent.service"),
    ),
)


class SurveyError(Exception):
    """The node could not be surveyed: a file it must read, or the script output."""


@cache
def survey_script() -> str:
    text = resources.files("nydus_console.assets").joinpath("setup_survey.sh")
    lines = text.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@dataclass
class ContainerdSetup:
    """containerd as the node runs it: config file, root, socket and unit."""

    layout: str
    config_path: str
    config_text: str | None
    config_version: int
    root: str
    socket: str
    unit: str
    version: str
    # k3s and rke2: the generated file the template starts from.
    base_path: str = ""


@dataclass
class Survey:
    """Everything setup needs to know about one node, read without changing it."""

    node: str
    os_name: str
    kernel: str
    fuse: bool
    fscache: bool
    fscache_reason: str
    systemd: bool
    containerd: ContainerdSetup
    binaries: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    snapshotter_unit: str = "nydus-snapshotter.service"
    unit_active: str = ""
    unit_enabled: str = ""
    registry_credentials: list[str] = field(default_factory=list)
    facts: NodeFacts | None = None

    def installed(self, binary: str) -> bool:
        return bool(self.binaries.get(binary))

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def rows(self) -> list[tuple[str, str]]:
        """Return (what, found) pairs for the terminal and JSON."""
        ctd = self.containerd
        rows = [
            ("OS", self.os_name or "unknown"),
            ("kernel", self.kernel or "unknown"),
            ("/dev/fuse", "present" if self.fuse else "missing"),
            ("fscache", self.fscache_reason),
            ("systemd", "running" if self.systemd else "not running"),
            ("containerd", ctd.version or "not found"),
            ("containerd layout", ctd.layout),
            (
                "containerd config",
                f"{ctd.config_path} (version {ctd.config_version})"
                if ctd.config_text is not None
                else f"{ctd.config_path} (missing)",
            ),
            ("containerd root", ctd.root),
            ("containerd socket", ctd.socket),
        ]
        for name in BINARIES:
            rows.append((f"{BIN_DIR}/{name}", self._binary_row(name)))
        hosts = ", ".join(self.registry_credentials) or "none"
        rows.append((f"registry logins in {DOCKER_CONFIG}", hosts))
        return rows

    def to_dict(self) -> dict[str, object]:
        return {what: found for what, found in self.rows()}

    def _binary_row(self, name: str) -> str:
        found = self.binaries.get(name, "")
        if not found:
            return "missing"
        component = PROBED_VERSIONS.get(name, "")
        version = self.facts.version(component) if self.facts and component else ""
        return f"{version}, sha256 {found[:12]}" if version else f"sha256 {found[:12]}"


def fscache_support(facts: NodeFacts) -> tuple[bool, str]:
    """Return whether the kernel can run nydusd's fscache driver, and the reason."""
    release = facts.kernel_release
    if parse_kernel_release(release) < FSCACHE_MIN_KERNEL:
        return False, f"not supported: kernel {release or '?'} is older than 5.19"
    config = facts.kernel_config or {}
    missing = [
        key
        for key in ("CONFIG_CACHEFILES_ONDEMAND", "CONFIG_EROFS_FS_ONDEMAND")
        if config and config.get(key) not in ("y", "m")
    ]
    if missing:
        return False, f"not supported: the kernel lacks {', '.join(missing)}"
    if "cachefiles" not in facts.devices:
        return False, "not supported: /dev/cachefiles is missing"
    return True, "supported (kernel 5.19 or later, /dev/cachefiles present)"


def unit_path(spec: NodeSpec) -> str:
    return f"{UNIT_DIR}/{spec.paths.snapshotter_unit}"


async def survey_node(spec: NodeSpec, transport: Transport) -> Survey:
    """Read the node; raise TransportError when it cannot be reached.

    Raise SurveyError when a file setup must read exists but cannot be read.
    """
    try:
        return await _survey(spec, transport)
    except ConfigReadError as exc:
        raise SurveyError(
            f"{exc}. Fix or move the file, then run setup again"
        ) from None


async def _survey(spec: NodeSpec, transport: Transport) -> Survey:
    facts = await NodeProber(spec, transport).probe(full=True)
    layout_paths = [layout.config_dir for layout in LAYOUTS]
    nonce = secrets.token_hex(8)
    binaries = [f"{BIN_DIR}/{name}" for name in BINARIES]
    argv = ["sh", "-c", survey_script(), "setup-survey", nonce, *binaries, "--"]
    result = await transport.run([*argv, *layout_paths])
    if not result.ok:
        raise TransportError(
            ErrorKind.FAILED,
            f"the survey script failed on {spec.name}: {result.stderr.strip()[-300:]}",
        )
    sections = parse_survey(result.stdout, nonce)
    containerd = await _containerd(spec, transport, facts, sections["paths"])
    fscache, reason = fscache_support(facts)
    survey = Survey(
        node=spec.name,
        os_name=sections["os"],
        kernel=facts.kernel_release,
        fuse="fuse" in facts.devices,
        fscache=fscache,
        fscache_reason=reason,
        systemd=facts.systemd_running,
        containerd=containerd,
        binaries={
            name: sections["bins"].get(f"{BIN_DIR}/{name}", "") for name in BINARIES
        },
        facts=facts,
    )
    survey.snapshotter_unit = spec.paths.snapshotter_unit
    unit = facts.units.get(spec.paths.snapshotter_unit)
    if unit is not None:
        survey.unit_active = unit.get("ActiveState") if unit.loaded else ""
        survey.unit_enabled = unit.get("UnitFileState")
    for path in (spec.paths.snapshotter_config, NYDUSD_DEFAULT_CONFIG, unit_path(spec)):
        survey.files[path] = await read_text(transport, path)
    survey.registry_credentials = await _registry_hosts(transport)
    return survey


def parse_survey(output: str, nonce: str) -> dict[str, Any]:
    """Split the survey script's output into the OS name, binaries and paths."""
    marker = f"::nc-{nonce}::"
    found: dict[str, Any] = {"os": "", "bins": {}, "paths": {}, "end": False}
    section = ""
    for line in output.splitlines():
        if not line.startswith(marker):
            if section == "os" and line.strip() and not found["os"]:
                found["os"] = line.strip()
            continue
        words = line[len(marker) :].split()
        section = words[0] if words else ""
        if section == "bin" and len(words) == 3:
            found["bins"][words[1]] = "" if words[2] == "-" else words[2]
        elif section == "path" and len(words) == 3:
            found["paths"][words[1]] = words[2]
        elif section == "end":
            found["end"] = True
    if not found["end"]:
        raise SurveyError("the survey output ended early")
    return found


async def _containerd(
    spec: NodeSpec, transport: Transport, facts: NodeFacts, paths: dict[str, str]
) -> ContainerdSetup:
    layout = _layout(spec, paths)
    version = facts.version("containerd")
    if layout is None:
        path = spec.paths.containerd_config
        text = await read_text(transport, path)
        return _with_config(
            ContainerdSetup(
                "containerd",
                path,
                text,
                0,
                CONTAINERD_DEFAULT_ROOT,
                spec.paths.containerd_socket,
                spec.paths.containerd_unit,
                version,
            )
        )
    text = await read_text(transport, layout.template)
    base = layout.template
    if text is None:
        text = await read_text(transport, layout.generated)
        base = layout.generated
    unit = _loaded_unit(facts, layout.units)
    setup = ContainerdSetup(
        layout.name,
        layout.template,
        text,
        0,
        layout.root,
        layout.socket,
        unit,
        version,
        base_path=base,
    )
    return _with_config(setup)


def _layout(spec: NodeSpec, paths: dict[str, str]) -> Layout | None:
    """Return the node's k3s or rke2 layout, unless the inventory names a config."""
    if spec.paths.containerd_config != DEFAULT_CONTAINERD_CONFIG:
        return None
    for layout in LAYOUTS:
        if paths.get(layout.config_dir) == "dir":
            return layout
    return None


def _loaded_unit(facts: NodeFacts, units: tuple[str, ...]) -> str:
    for name in units:
        state = facts.units.get(name)
        if state is not None and state.loaded:
            return name
    return units[0]


def _with_config(setup: ContainerdSetup) -> ContainerdSetup:
    """Fill in the config version and root from the config text."""
    major = _major(setup.version)
    setup.config_version = 3 if major >= 2 else 2
    if setup.config_text is None:
        return setup
    try:
        parsed = parse_containerd_config(setup.config_text)
    except ConfigError:
        return setup
    setup.config_version = parsed.version
    if parsed.root and setup.layout == "containerd":
        setup.root = parsed.root
    return setup


def _major(version: str) -> int:
    digits = version.lstrip("v").split(".", 1)[0]
    return int(digits) if digits.isdigit() else 1


async def _registry_hosts(transport: Transport) -> list[str]:
    """Return the registries the node's docker config has logins for.

    Only the host names leave this function; the credentials are dropped.
    """
    try:
        text = await read_text(transport, DOCKER_CONFIG)
    except ConfigReadError:
        return []
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    auths = data.get("auths") if isinstance(data, dict) else None
    return sorted(auths) if isinstance(auths, dict) else []
