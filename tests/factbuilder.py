"""Build NodeFacts by hand for rule tests, as a healthy node would report them."""

from __future__ import annotations

from pathlib import Path

from nydus_console.facts import FileRead, NodeFacts, ProcessInfo, UnitState
from nydus_console.inventory import NodePaths
from nydus_console.transport.base import SocketState

SAMPLES = Path(__file__).parent / "samples"
SNAPSHOTTER_CONFIG = (SAMPLES / "snapshotter" / "config.toml").read_text()
CONTAINERD_CONFIG = (SAMPLES / "containerd" / "config-v2.toml").read_text()
NYDUSD_CONFIG = (
    SAMPLES / "nydus" / "misc" / "configs" / "nydusd-config.json"
).read_text()
GRPC = "/run/containerd-nydus/containerd-nydus-grpc.sock"
SYSTEM = "/run/containerd-nydus/system.sock"
PLUGINS = (
    "TYPE                            ID        PLATFORMS      STATUS\n"
    "io.containerd.snapshotter.v1    overlayfs linux/amd64    ok\n"
    "io.containerd.snapshotter.v1    nydus     -              ok\n"
)


def unit(
    name: str,
    active: str = "active",
    sub: str = "running",
    pid: int = 100,
    restarts: int = 0,
    load: str = "loaded",
) -> UnitState:
    return UnitState(
        name,
        {
            "Id": name,
            "LoadState": load,
            "ActiveState": active,
            "SubState": sub,
            "MainPID": str(pid),
            "NRestarts": str(restarts),
            "Result": "success",
        },
    )


def healthy_facts(
    snapshotter: str | None = SNAPSHOTTER_CONFIG,
    containerd: str | None = CONTAINERD_CONFIG,
    nydusd: str | None = NYDUSD_CONFIG,
    nydusd_path: str = "/etc/nydus/nydusd-config.fusedev.json",
) -> NodeFacts:
    """Return the facts of a working fusedev node; tests then break one thing."""
    paths = NodePaths()
    facts = NodeFacts(node="node-1", collected_at=0.0, kernel_release="6.1.0-18-amd64")
    facts.devices = {"fuse"}
    facts.units = {
        paths.snapshotter_unit: unit(paths.snapshotter_unit, pid=100),
        paths.containerd_unit: unit(paths.containerd_unit, pid=50),
    }
    facts.processes = [
        ProcessInfo(50, "S", 1, "containerd", ["/usr/bin/containerd"]),
        ProcessInfo(
            100,
            "S",
            1,
            "containerd-nydu",
            [
                "/usr/local/bin/containerd-nydus-grpc",
                "--config",
                "/etc/nydus/config.toml",
            ],
        ),
    ]
    facts.plugins_output, facts.plugins_rc = PLUGINS, 0
    facts.versions = {
        "snapshotter": ("/usr/local/bin/containerd-nydus-grpc", "v0.15.15"),
        "nydusd": ("/usr/local/bin/nydusd", "v2.4.4"),
        "containerd": ("/usr/bin/containerd", "1.6.20"),
    }
    for path, text in (
        (paths.snapshotter_config, snapshotter),
        (paths.containerd_config, containerd),
        (nydusd_path, nydusd),
    ):
        facts.files[path] = (
            FileRead(path, "ok", text)
            if text is not None
            else FileRead(path, "missing")
        )
    facts.sockets = {GRPC: SocketState.LISTENING, SYSTEM: SocketState.LISTENING}
    return facts
