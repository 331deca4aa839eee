"""Gather a node's facts in one round trip (two on the first visit).

The probe script (assets/probe.sh) runs under `sh -c` with every variable part
passed as a separate argument. The prober remembers which files and sockets the
node's configs point at, so later refreshes fetch them in the same round trip.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from nydus_console.configs import (
    NYDUSD_DEFAULT_CONFIG,
    SNAPSHOTTER_DEFAULT_ADDRESS,
    SNAPSHOTTER_DEFAULT_ROOT,
    ConfigError,
    parse_snapshotter_config,
)
from nydus_console.facts import (
    FileRead,
    NodeFacts,
    parse_processes,
    parse_systemctl_show,
    parse_version,
)
from nydus_console.inventory import NodeSpec
from nydus_console.transport.base import (
    ErrorKind,
    SocketState,
    Transport,
    TransportError,
)

FULL_PROBE_INTERVAL = 600.0
PROBE_TIMEOUT = 30.0


@cache
def probe_script() -> str:
    return resources.files("nydus_console.assets").joinpath("probe.sh").read_text()


@dataclass
class ProbePlan:
    """Paths to read, stat and glob, and sockets to connect to, on one node."""

    reads: list[str] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def arguments(self) -> list[str]:
        return (
            [f"r:{p}" for p in self.reads]
            + [f"s:{p}" for p in self.stats]
            + [f"g:{p}" for p in self.roots]
        )

    def missing_from(self, done: ProbePlan) -> ProbePlan:
        return ProbePlan(
            [p for p in self.reads if p not in done.reads],
            [p for p in self.stats if p not in done.stats],
            [p for p in self.roots if p not in done.roots],
        )

    @property
    def empty(self) -> bool:
        return not (self.reads or self.stats or self.roots)


class NodeProber:
    """Probes one node repeatedly, carrying what it learned between rounds."""

    def __init__(self, spec: NodeSpec, transport: Transport) -> None:
        self.spec = spec
        self.transport = transport
        self.plan = self._default_plan()
        self._containerd_pid = 0
        self._snapshotter_pid = 0
        self._last_full = 0.0
        self._cached: NodeFacts | None = None

    def _default_plan(self) -> ProbePlan:
        paths = self.spec.paths
        return ProbePlan(
            reads=[
                paths.snapshotter_config,
                paths.containerd_config,
                NYDUSD_DEFAULT_CONFIG,
            ],
            roots=[SNAPSHOTTER_DEFAULT_ROOT],
        )

    async def probe(self, full: bool = False) -> NodeFacts:
        """Collect fresh facts; raise TransportError if the node is unreachable."""
        now = time.monotonic()
        full = full or now - self._last_full > FULL_PROBE_INTERVAL
        plan = self.plan
        facts = NodeFacts(node=self.spec.name, collected_at=time.time())
        output = await self._run(self._arguments(full, plan.arguments()))
        apply_probe_output(facts, output, plan)
        facts.round_trips = 1
        needed = plan_from_facts(facts, self.spec)
        extra = needed.missing_from(plan)
        if not extra.empty:
            output = await self._run(self._arguments("paths", extra.arguments()))
            apply_probe_output(facts, output, extra)
            facts.round_trips += 1
        await self._probe_sockets(facts, needed.sockets + facts.api_sockets)
        self._remember(facts, needed, full, now)
        return facts

    def _arguments(self, mode: bool | str, paths: list[str]) -> list[str]:
        paths_spec = self.spec.paths
        if isinstance(mode, str):
            flag = mode
        else:
            flag = "1" if mode else "0"
        nydusd = self._cached_nydusd_path()
        return [
            "sh",
            "-c",
            probe_script(),
            "nydus-console-probe",
            os.urandom(8).hex(),
            paths_spec.snapshotter_unit,
            paths_spec.containerd_unit,
            paths_spec.containerd_socket,
            str(self._containerd_pid),
            str(self._snapshotter_pid),
            nydusd,
            flag,
            *paths,
        ]

    def _cached_nydusd_path(self) -> str:
        if self._cached is None:
            return "nydusd"
        read = self._cached.file(self.spec.paths.snapshotter_config)
        try:
            return parse_snapshotter_config(read.text).nydusd_path
        except ConfigError:
            return "nydusd"

    async def _run(self, argv: list[str]) -> str:
        result = await self.transport.run(argv, timeout=PROBE_TIMEOUT)
        if "::nc-" not in result.stdout:
            raise TransportError(
                ErrorKind.FAILED,
                f"the probe on {self.spec.name} produced no output (exit status "
                f"{result.exit_status}): {result.stderr.strip()[:300]}",
                "check that /bin/sh works for this user on the node",
            )
        return result.stdout

    async def _probe_sockets(self, facts: NodeFacts, sockets: list[str]) -> None:
        unique = list(dict.fromkeys(sockets))
        states = await asyncio.gather(
            *(self.transport.probe_unix_socket(path) for path in unique)
        )
        for path, state in zip(unique, states, strict=True):
            facts.sockets[path] = refine_socket_state(state, facts.path_types.get(path))

    def _remember(
        self, facts: NodeFacts, needed: ProbePlan, full: bool, now: float
    ) -> None:
        if full:
            self._last_full = now
        previous = self._cached
        if previous is not None:
            if facts.plugins_output is None:
                facts.plugins_output = previous.plugins_output
                facts.plugins_rc = previous.plugins_rc
            if not facts.versions:
                facts.versions = previous.versions
            if facts.kernel_config is None:
                facts.kernel_config = previous.kernel_config
            if not facts.systemd_probed:
                facts.systemd_output = previous.systemd_output
                facts.systemd_rc = previous.systemd_rc
                facts.units = previous.units
                facts.snapshotter_journal = previous.snapshotter_journal
        self._containerd_pid = _unit_pid(
            facts, self.spec.paths.containerd_unit, "containerd"
        )
        self._snapshotter_pid = _unit_pid(
            facts, self.spec.paths.snapshotter_unit, "containerd-nydu"
        )
        self.plan = needed
        self._cached = facts


def refine_socket_state(state: SocketState, path_type: str | None) -> SocketState:
    """Use the probe's file type where sshd only reported that the open failed.

    OpenSSH reports every failed streamlocal open with the same "open failed",
    whether the socket is missing or nothing listens on it.
    """
    if path_type == "-" and state in (SocketState.UNKNOWN, SocketState.DENIED):
        return SocketState.MISSING
    if path_type == "socket" and state is SocketState.UNKNOWN:
        return SocketState.REFUSED
    return state


def _unit_pid(facts: NodeFacts, unit_name: str, comm: str) -> int:
    unit = facts.units.get(unit_name)
    if unit is not None and unit.main_pid:
        return unit.main_pid
    found = [p for p in facts.processes if p.comm == comm and p.state != "Z"]
    return found[0].pid if found else 0


def plan_from_facts(facts: NodeFacts, spec: NodeSpec) -> ProbePlan:
    """Return the paths and sockets the node's configs point at."""
    paths = spec.paths
    plan = ProbePlan(reads=[paths.snapshotter_config, paths.containerd_config])
    read = facts.file(paths.snapshotter_config)
    try:
        config = parse_snapshotter_config(read.text) if read.status == "ok" else None
    except ConfigError:
        config = None
    if config is None:
        plan.reads.append(NYDUSD_DEFAULT_CONFIG)
        plan.roots.append(SNAPSHOTTER_DEFAULT_ROOT)
        plan.sockets.append(SNAPSHOTTER_DEFAULT_ADDRESS)
        plan.stats.append(SNAPSHOTTER_DEFAULT_ADDRESS)
        return plan
    if config.needs_nydusd_config:
        plan.reads.append(config.nydusd_config)
        # Read too, so that a wrong nydusd_config can point at the file that exists.
        if config.nydusd_config != NYDUSD_DEFAULT_CONFIG:
            plan.reads.append(NYDUSD_DEFAULT_CONFIG)
    if config.mirrors_dir:
        plan.stats.append(config.mirrors_dir)
    plan.roots.append(config.root)
    plan.stats.append(config.root)
    plan.sockets.append(config.address)
    if config.system_enable:
        plan.sockets.append(config.system_address)
    plan.stats += plan.sockets
    return plan


# -- output parsing ---------------------------------------------------------------


def split_sections(output: str) -> list[tuple[list[str], str]]:
    """Split probe output into (header words, body) pairs."""
    first = output.find("::nc-")
    if first < 0:
        return []
    marker = output[first : output.index("::", first + 5) + 2]
    sections = []
    for chunk in output[first:].split(f"{marker} ")[1:]:
        header, _, body = chunk.partition("\n")
        if body.endswith("\n"):
            body = body[:-1]
        sections.append((header.split(" "), body))
    return sections


def apply_probe_output(facts: NodeFacts, output: str, plan: ProbePlan) -> None:
    """Fill `facts` from one run of the probe script with `plan`'s path list."""
    tagged = (
        [("r", p) for p in plan.reads]
        + [("s", p) for p in plan.stats]
        + [("g", p) for p in plan.roots]
    )
    process_table = ""
    for words, body in split_sections(output):
        name = words[0]
        if name == "procs":
            process_table = body
        elif name == "cmdlines":
            facts.processes = parse_processes(process_table, body)
        elif name in ("file", "path", "apisocks"):
            _apply_path_section(facts, words, body, tagged)
        else:
            _apply_system_section(facts, name, words, body)


def _apply_path_section(
    facts: NodeFacts, words: list[str], body: str, tagged: list[tuple[str, str]]
) -> None:
    index = int(words[1]) - 1
    if not 0 <= index < len(tagged):
        return
    path = tagged[index][1]
    if words[0] == "file":
        status = words[2] if len(words) > 2 else "missing"
        text = body if status == "ok" else ""
        facts.files[path] = FileRead(path, status, text)  # type: ignore[arg-type]
    elif words[0] == "path":
        facts.path_types[path] = words[2] if len(words) > 2 else "-"
    else:
        found = [line for line in body.splitlines() if line]
        facts.api_sockets += found
        # The glob only lists paths that exist.
        facts.path_types.update({path: "socket" for path in found})


def _apply_system_section(
    facts: NodeFacts, name: str, words: list[str], body: str
) -> None:
    if name == "kernel":
        facts.kernel_release = body.strip()
    elif name == "devices":
        _apply_devices(facts, body)
    elif name == "kconfig":
        facts.kernel_config = dict(
            line.split("=", 1) for line in body.splitlines() if "=" in line
        )
    elif name == "systemd":
        text, rc = _strip_rc(body)
        facts.systemd_output, facts.systemd_rc = text, rc
        facts.units = parse_systemctl_show(text, [])
        facts.systemd_probed = True
    elif name == "journal":
        facts.snapshotter_journal = body
    elif name == "cgroups":
        for line in body.splitlines():
            count, _, path = line.partition(" ")
            if count.isdigit():
                facts.nydusd_cgroups[path] = int(count)
    elif name == "plugins":
        facts.plugins_output, facts.plugins_rc = _strip_rc(body)
    elif name == "version" and len(words) >= 2:
        path = " ".join(words[2:])
        facts.versions[words[1]] = (path, parse_version(body) if path else "")


def _apply_devices(facts: NodeFacts, body: str) -> None:
    for line in body.splitlines():
        if line.startswith("fs "):
            facts.filesystems.add(line.split()[-1])
        elif line:
            facts.devices.add(line)


def _strip_rc(body: str) -> tuple[str, int]:
    head, _, last = body.rstrip("\n").rpartition("\n")
    if last.startswith("rc="):
        try:
            return head, int(last[3:])
        except ValueError:
            return head, -1
    return body, 0
