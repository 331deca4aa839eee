"""Facts gathered from one node, and the parsers for the probe's raw output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from nydus_console.transport.base import SocketState

FileStatus = Literal["ok", "missing", "unreadable", "not probed"]
SYSTEMD_ABSENT_MARKERS = (
    "System has not been booted with systemd",
    "Failed to connect to bus",
)


@dataclass
class UnitState:
    """`systemctl show` properties of one unit."""

    name: str
    properties: dict[str, str]

    def get(self, key: str) -> str:
        return self.properties.get(key, "")

    @property
    def main_pid(self) -> int:
        return _int(self.get("MainPID"))

    @property
    def restarts(self) -> int:
        return _int(self.get("NRestarts"))

    @property
    def loaded(self) -> bool:
        return self.get("LoadState") == "loaded"

    def evidence(self) -> list[str]:
        keys = (
            "LoadState",
            "ActiveState",
            "SubState",
            "MainPID",
            "NRestarts",
            "Result",
            "ExecMainStatus",
            "ExecMainStartTimestamp",
        )
        return [f"{k}={self.properties[k]}" for k in keys if k in self.properties]


@dataclass
class ProcessInfo:
    pid: int
    state: str
    ppid: int
    comm: str
    cmdline: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"


@dataclass
class FileRead:
    path: str
    status: FileStatus
    text: str = ""


@dataclass
class PluginRow:
    type: str
    id: str
    platforms: str
    status: str


@dataclass
class NodeFacts:
    """Everything one probe learned about a node; checks read only this."""

    node: str
    collected_at: float
    kernel_release: str = ""
    devices: set[str] = field(default_factory=set)
    filesystems: set[str] = field(default_factory=set)
    kernel_config: dict[str, str] | None = None
    systemd_output: str = ""
    systemd_rc: int = 0
    # False when the probe reused the previous `systemctl show` (no PID changed).
    systemd_probed: bool = False
    # Last journal lines of the snapshotter unit, read only while it is not active.
    snapshotter_journal: str = ""
    units: dict[str, UnitState] = field(default_factory=dict)
    processes: list[ProcessInfo] = field(default_factory=list)
    nydusd_cgroups: dict[str, int] = field(default_factory=dict)
    plugins_output: str | None = None
    plugins_rc: int | None = None
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)
    files: dict[str, FileRead] = field(default_factory=dict)
    path_types: dict[str, str] = field(default_factory=dict)
    api_sockets: list[str] = field(default_factory=list)
    sockets: dict[str, SocketState] = field(default_factory=dict)
    round_trips: int = 0

    @property
    def systemd_running(self) -> bool:
        return not any(m in self.systemd_output for m in SYSTEMD_ABSENT_MARKERS)

    @property
    def plugins(self) -> list[PluginRow]:
        return parse_plugin_table(self.plugins_output or "")

    def file(self, path: str) -> FileRead:
        return self.files.get(path, FileRead(path, "not probed"))

    def processes_named(self, *prefixes: str) -> list[ProcessInfo]:
        return [p for p in self.processes if p.comm.startswith(prefixes)]

    def version(self, component: str) -> str:
        """Return the version string of a component, or '' when unknown."""
        return self.versions.get(component, ("", ""))[1]


# -- parsers ---------------------------------------------------------------------


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def parse_systemctl_show(text: str, unit_names: list[str]) -> dict[str, UnitState]:
    """Split `systemctl show` output for several units (blank-line separated)."""
    units: dict[str, UnitState] = {}
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if "=" in b]
    for index, block in enumerate(blocks):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        props.pop("rc", None)
        name = props.get("Id") or (unit_names[index] if index < len(unit_names) else "")
        if not name:
            continue
        for requested in unit_names:
            if requested == name or requested == props.get("Id"):
                name = requested
        units[name] = UnitState(name, props)
    return units


def parse_processes(table: str, cmdlines: str) -> list[ProcessInfo]:
    """Combine the probe's `pid state ppid comm` rows with `grep -azH` cmdlines."""
    args: dict[int, list[str]] = {}
    for record in cmdlines.split("\0"):
        record = record.lstrip("\n")
        match = re.match(r"/proc/(\d+)/cmdline:(.*)", record, re.S)
        if match:
            args.setdefault(int(match.group(1)), []).append(match.group(2))
    processes = []
    for line in table.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        processes.append(
            ProcessInfo(pid, parts[1], _int(parts[2]), parts[3], args.get(pid, []))
        )
    return processes


def parse_plugin_table(text: str) -> list[PluginRow]:
    """Parse `ctr plugin ls` (TYPE ID PLATFORMS STATUS) into rows."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] == "TYPE" or "." not in parts[0]:
            continue
        rows.append(PluginRow(*parts))
    return rows


_VERSION_PATTERNS = (
    re.compile(r"^\s*Version:\s*(\S+)", re.M),
    re.compile(r"containerd\S*\s+\S+\s+(v?\d[\w.~+-]*)"),
    re.compile(r"\b(v?\d+\.\d+\.\d+[\w.~+-]*)"),
)


def parse_version(text: str) -> str:
    """Pull the version out of `--version` output of any of the three binaries."""
    for pattern in _VERSION_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return ""


def parse_kernel_release(release: str) -> tuple[int, int]:
    """Return (major, minor) of a kernel release such as 5.19.0-1-amd64."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
