"""Checks that Nydus works on a node after setup, and the monitoring summary.

The snapshotter unit must be active, its gRPC socket must accept a
connection, `ctr plugin ls` must list the nydus snapshotter as ok, and
`ctr snapshots --snapshotter nydus ls` must succeed, which only happens
when containerd reaches the snapshotter through the proxy plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

from nydus_console.facts import parse_plugin_table
from nydus_console.inventory import NodeSpec
from nydus_console.setup.answers import Settings
from nydus_console.setup.survey import Survey
from nydus_console.transport.base import SocketState, Transport

GRAFANA_DASHBOARD = 20245
METRICS_PATH = "/v1/metrics"
CTR_TIMEOUT = "5s"


@dataclass
class Verification:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


async def verify_node(
    spec: NodeSpec, transport: Transport, survey: Survey, settings: Settings
) -> list[Verification]:
    """Run the four checks; a TransportError propagates."""
    unit = spec.paths.snapshotter_unit
    socket = survey.containerd.socket
    checks: list[Verification] = []
    result = await transport.run(["systemctl", "is-active", unit])
    state = result.stdout.strip() or result.stderr.strip()
    checks.append(Verification(f"{unit} is active", state == "active", state))
    listening = await transport.probe_unix_socket(settings.address)
    checks.append(
        Verification(
            f"{settings.address} answers",
            listening in (SocketState.LISTENING, SocketState.DENIED),
            str(listening),
        )
    )
    ctr = ["ctr", "-a", socket, "--connect-timeout", CTR_TIMEOUT]
    plugins = await transport.run([*ctr, "plugin", "ls"])
    rows = [
        row
        for row in parse_plugin_table(plugins.stdout)
        if row.type == "io.containerd.snapshotter.v1" and row.id == "nydus"
    ]
    status = rows[0].status if rows else "not listed"
    detail = status if plugins.ok else plugins.stderr.strip()[-300:]
    checks.append(Verification("ctr plugin ls lists nydus ok", status == "ok", detail))
    snapshots = await transport.run(
        [*ctr, "-n", "k8s.io", "snapshots", "--snapshotter", "nydus", "ls"]
    )
    detail = (
        f"{len(snapshots.stdout.splitlines()[1:])} snapshot(s)"
        if snapshots.ok
        else snapshots.stderr.strip()[-300:]
    )
    checks.append(
        Verification(
            "ctr snapshots --snapshotter nydus ls answers", snapshots.ok, detail
        )
    )
    return checks


def scrape_target(spec: NodeSpec, settings: Settings) -> str:
    """host:port that Prometheus scrapes for this node's snapshotter."""
    port = settings.metrics_address.rsplit(":", 1)[-1]
    host = spec.host or spec.name
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def local_only(settings: Settings) -> bool:
    host = settings.metrics_address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def scrape_job(targets: list[str]) -> str:
    """Return the Prometheus scrape job for the snapshotters' metrics."""
    lines = [
        "scrape_configs:",
        "  - job_name: nydus",
        f"    metrics_path: {METRICS_PATH}",
        "    static_configs:",
        "      - targets:",
    ]
    lines += [f'          - "{target}"' for target in targets]
    return "\n".join(lines) + "\n"
