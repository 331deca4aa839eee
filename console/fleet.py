"""The fleet: one transport and prober per node, and reports built from probes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nydus_console import locations
from nydus_console.checks import run_checks, symptom_checks
from nydus_console.configs import ConfigError, parse_snapshotter_config
from nydus_console.diagnose import node_findings
from nydus_console.facts import NodeFacts
from nydus_console.findings import Finding, Status, worst, worst_finding
from nydus_console.inventory import Inventory, NodeSpec, PodAccess
from nydus_console.probe import NodeProber
from nydus_console.transport.base import HostKeyError, Transport, TransportError
from nydus_console.transport.hostkeys import HostKeyStore
from nydus_console.transport.local import LocalTransport

UNREACHABLE = "unreachable"
log = logging.getLogger(__name__)


@dataclass
class NodeReport:
    """The latest probe of one node: its findings, or why it was unreachable."""

    spec: NodeSpec
    facts: NodeFacts | None = None
    findings: list[Finding] = field(default_factory=list)
    error: TransportError | None = None
    probed_at: float = 0.0
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.error is not None:
            return UNREACHABLE
        if self.facts is None:
            return "pending"
        return str(worst([f.status for f in self.findings]))

    @property
    def worst(self) -> Finding | None:
        return worst_finding(self.findings, symptom_checks())

    def summary(self) -> dict[str, str]:
        """Return the columns of the fleet table for this node."""
        facts = self.facts
        if facts is None:
            return {}
        return {
            "service": service_summary(facts, self.spec),
            "snapshotter": facts.version("snapshotter") or "-",
            "nydusd": facts.version("nydusd") or "-",
            "containerd": facts.version("containerd") or "-",
            "fs_driver": fs_driver_of(facts, self.spec),
            "daemons": str(daemon_count(facts)),
        }

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.spec.name,
            "address": self.spec.address,
            "status": self.status,
            "probed_at": self.probed_at,
            "probe_seconds": round(self.seconds, 3),
        }
        if self.error is not None:
            data["error"] = {
                "kind": str(self.error.kind),
                "message": self.error.message,
                "next_step": self.error.next_step,
            }
            key = getattr(self.error, "key", None)
            if key is not None:
                data["error"]["host_key"] = {
                    "type": key.key_type,
                    "fingerprint": key.fingerprint,
                }
            return data
        data["summary"] = self.summary()
        data["findings"] = [f.to_dict() for f in self.findings]
        return data


def service_summary(facts: NodeFacts, spec: NodeSpec) -> str:
    unit = facts.units.get(spec.paths.snapshotter_unit)
    if not facts.systemd_running:
        running = facts.processes_named("containerd-nydu")
        return "running (no systemd)" if running else "not running (no systemd)"
    if unit is None or not unit.loaded:
        return "not installed"
    return f"{unit.get('ActiveState')}/{unit.get('SubState')}"


def fs_driver_of(facts: NodeFacts, spec: NodeSpec) -> str:
    read = facts.file(spec.paths.snapshotter_config)
    if read.status != "ok":
        return "-"
    try:
        return parse_snapshotter_config(read.text).fs_driver
    except ConfigError:
        return "?"


def daemon_count(facts: NodeFacts) -> int:
    running = [p for p in facts.processes_named("nydusd") if p.state != "Z"]
    return max(len(facts.api_sockets), len(running))


def make_transport(spec: NodeSpec, host_keys: HostKeyStore | None) -> Transport:
    if spec.local:
        return LocalTransport(spec.name, use_sudo=spec.sudo)
    if spec.pod_access is not None:
        return pod_transport(spec.name, spec.pod_access)
    # asyncssh takes about 0.15 s to import, so a session on this machine alone
    # never loads it.
    from nydus_console.transport.ssh import SSHTarget, SSHTransport

    target = SSHTarget(
        name=spec.name,
        host=spec.host,
        port=spec.port,
        user=spec.user,
        identity_file=spec.identity_file,
        jump_host=spec.jump_host,
        sudo=spec.sudo,
        connect_timeout=spec.connect_timeout,
    )
    return SSHTransport(target, host_keys)


def pod_transport(node: str, access: PodAccess) -> Transport:
    """Build the node-shell pod transport of a cluster node (node_access = "pod")."""
    from nydus_console.audit import AuditLog
    from nydus_console.kube.actions import ApiActionGate
    from nydus_console.kube.client import KubeClient
    from nydus_console.kube.nodeshell import NodeShellSettings
    from nydus_console.transport.pod import PodTransport

    client = KubeClient.from_kubeconfig(
        access.kubeconfig or None, access.context or None
    )
    gate = ApiActionGate(
        AuditLog(locations.audit_log_file()),
        read_only=access.read_only,
        cluster_read_only=access.cluster_read_only,
    )
    settings = NodeShellSettings(image=access.image, namespace=access.namespace)
    return PodTransport(node, client, gate, settings)


def _reset_backoff(transport: Transport) -> None:
    reset = getattr(transport, "reset_backoff", None)
    if reset is not None:
        reset()


class Fleet:
    """Owns the transports of every node; probes them concurrently."""

    def __init__(
        self,
        inventory: Inventory,
        host_keys: HostKeyStore | None = None,
        transport_factory: Callable[[NodeSpec], Transport] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inventory = inventory
        # Wall clock for probe times; tests pass a fixed one.
        self.clock = clock
        self.host_keys = host_keys or HostKeyStore(
            locations.known_hosts_file(), [Path(p) for p in inventory.known_hosts]
        )
        factory = transport_factory or (lambda s: make_transport(s, self.host_keys))
        self.specs = {spec.name: spec for spec in inventory.nodes}
        self.transports = {name: factory(spec) for name, spec in self.specs.items()}
        self.probers = {
            name: NodeProber(spec, self.transports[name])
            for name, spec in self.specs.items()
        }
        self.reports = {name: NodeReport(spec) for name, spec in self.specs.items()}

    async def probe_node(self, name: str, full: bool = False) -> NodeReport:
        spec = self.specs[name]
        started = self.clock()
        report = NodeReport(spec, probed_at=started)
        try:
            facts = await self.probers[name].probe(full=full)
        except TransportError as exc:
            report.error = exc
            previous = self.reports[name].error
            # Log a failure once, not on every refresh while it lasts.
            if previous is None or previous.kind != exc.kind:
                log.warning(
                    "probe of %s (%s) failed: %s: %s",
                    name,
                    spec.address,
                    exc.kind,
                    exc.message,
                )
        else:
            if self.reports[name].error is not None:
                log.info("probe of %s (%s) succeeded again", name, spec.address)
            report.facts = facts
            report.findings = run_checks(facts, spec.paths)
            # Known failures in the journal, configs and versions: as evidence
            # of a failing check when one reports them, else as findings.
            report.findings += node_findings(facts, spec.paths, report.findings)
        report.seconds = max(0.0, self.clock() - started)
        self.reports[name] = report
        return report

    async def probe_all(self, full: bool = False) -> list[NodeReport]:
        return list(
            await asyncio.gather(*(self.probe_node(n, full) for n in self.specs))
        )

    def accept_host_key(self, name: str) -> None:
        """Trust the key a node presented when its report showed it unknown."""
        error = self.reports[name].error
        if not isinstance(error, HostKeyError) or error.key is None:
            raise ValueError(f"{name} has no unknown host key to accept")
        if error.kind != error.kind.HOST_KEY_UNKNOWN:
            raise ValueError(f"the host key of {name} changed; it cannot be accepted")
        self.host_keys.accept(error.key)
        _reset_backoff(self.transports[name])

    def reset_backoff(self) -> None:
        for transport in self.transports.values():
            _reset_backoff(transport)

    async def close(self) -> None:
        await asyncio.gather(
            *(t.close() for t in self.transports.values()), return_exceptions=True
        )


def exit_code(reports: list[NodeReport]) -> int:
    """Exit status of `doctor`: 3 unreachable, 2 fail, 1 warn or unknown, 0 ok."""
    statuses = {r.status for r in reports}
    if UNREACHABLE in statuses:
        return 3
    if Status.FAIL in statuses:
        return 2
    if statuses & {Status.WARN, Status.UNKNOWN}:
        return 1
    return 0
