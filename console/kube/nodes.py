"""Node objects of the cluster as the console shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Conditions that are bad when "True"; Ready is bad when not "True".
PRESSURE_CONDITIONS = (
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
)


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass
class ClusterNode:
    """One Node: addresses, versions, readiness, pressure, labels and taints.

    `ready` is the Ready condition's status ("True", "False", "Unknown", or
    "" when the node reports none). `pressure` lists the pressure conditions
    that are "True".
    """

    name: str
    internal_ip: str = ""
    external_ip: str = ""
    hostname: str = ""
    kubelet_version: str = ""
    runtime_version: str = ""
    os_image: str = ""
    kernel_version: str = ""
    ready: str = ""
    ready_reason: str = ""
    ready_message: str = ""
    pressure: list[str] = field(default_factory=list)
    unschedulable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Ready, NotReady or Unknown, with SchedulingDisabled like kubectl."""
        state = {"True": "Ready", "False": "NotReady"}.get(self.ready, "Unknown")
        if self.unschedulable:
            state += ",SchedulingDisabled"
        return state

    @property
    def runtime(self) -> str:
        """The container runtime and version, "containerd://1.6.20"."""
        return self.runtime_version

    def address(self, kind: str) -> str:
        """Return the address of kind "internal-ip", "external-ip" or "hostname"."""
        return {
            "internal-ip": self.internal_ip,
            "external-ip": self.external_ip,
            "hostname": self.hostname,
        }.get(kind, "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "internal_ip": self.internal_ip,
            "external_ip": self.external_ip,
            "hostname": self.hostname,
            "kubelet_version": self.kubelet_version,
            "runtime_version": self.runtime_version,
            "os_image": self.os_image,
            "kernel_version": self.kernel_version,
            "ready": self.ready,
            "ready_reason": self.ready_reason,
            "ready_message": self.ready_message,
            "pressure": list(self.pressure),
            "unschedulable": self.unschedulable,
            "labels": dict(self.labels),
            "taints": [str(t) for t in self.taints],
        }


def parse_node(raw: dict[str, Any]) -> ClusterNode:
    """Build a ClusterNode from a Node object's JSON."""
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    info = status.get("nodeInfo") or {}
    addresses = _addresses(status.get("addresses") or [])
    conditions = {str(c.get("type")): c for c in status.get("conditions") or [] if c}
    ready = conditions.get("Ready") or {}
    return ClusterNode(
        name=str(metadata.get("name", "")),
        internal_ip=addresses.get("InternalIP", ""),
        external_ip=addresses.get("ExternalIP", ""),
        hostname=addresses.get("Hostname", ""),
        kubelet_version=str(info.get("kubeletVersion", "")),
        runtime_version=str(info.get("containerRuntimeVersion", "")),
        os_image=str(info.get("osImage", "")),
        kernel_version=str(info.get("kernelVersion", "")),
        ready=str(ready.get("status", "")),
        ready_reason=str(ready.get("reason", "") or ""),
        ready_message=str(ready.get("message", "") or ""),
        pressure=[
            name
            for name in PRESSURE_CONDITIONS
            if (conditions.get(name) or {}).get("status") == "True"
        ],
        unschedulable=bool(spec.get("unschedulable", False)),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        taints=[
            Taint(
                str(t.get("key", "")),
                str(t.get("value", "") or ""),
                str(t.get("effect", "")),
            )
            for t in spec.get("taints") or []
            if isinstance(t, dict)
        ],
    )


def _addresses(entries: list[Any]) -> dict[str, str]:
    """Return the first address of each type."""
    found: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("type") and entry.get("address"):
            found.setdefault(str(entry["type"]), str(entry["address"]))
    return found
