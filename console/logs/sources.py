"""The log sources of a node: its journal units and the Nydus log files.

The log screen follows them and the support bundle reads their last lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nydus_console.configs import (
    ConfigError,
    SnapshotterConfig,
    parse_snapshotter_config,
)
from nydus_console.fleet import NodeReport
from nydus_console.logs.follow import LogSource

KUBELET_UNIT = "kubelet.service"


def snapshotter_settings(report: NodeReport) -> tuple[SnapshotterConfig, str]:
    """Return the snapshotter config of a probed node and a note if it was unread."""
    assert report.facts is not None
    path = report.spec.paths.snapshotter_config
    read = report.facts.file(path)
    if read.status == "ok":
        try:
            return parse_snapshotter_config(read.text), ""
        except ConfigError as exc:
            note = f"{path} is invalid ({exc}), so its log settings are defaults"
            return parse_snapshotter_config(""), note
    note = f"{path} could not be read ({read.status}), so its log settings are defaults"
    return parse_snapshotter_config(""), note


def daemon_ids(api_sockets: Iterable[str]) -> list[str]:
    """Return nydusd daemon ids: the directory names of their API sockets."""
    return sorted({Path(socket).parent.name for socket in api_sockets})


def plan_node_sources(report: NodeReport) -> tuple[list[LogSource], list[str]]:
    """Return the sources to follow on a node and notes on the ones left out."""
    name = report.spec.name
    if report.error is not None:
        error = report.error
        return [], [f"{name} is unreachable ({error.kind}): {error.message}"]
    facts = report.facts
    if facts is None:
        return [], [f"{name} has not been probed yet; its sources follow the probe"]

    paths = report.spec.paths
    sources: list[LogSource] = []
    notes: list[str] = []
    if facts.systemd_running:
        units = dict.fromkeys((paths.snapshotter_unit, paths.containerd_unit))
        units[KUBELET_UNIT] = None
        sources += [LogSource("journal", unit) for unit in units]
    else:
        notes.append(f"no journal: systemd is not running on {name}")

    config, note = snapshotter_settings(report)
    if note:
        notes.append(note)
    log_dir = paths.log_dir or config.log_dir
    if config.log_to_stdout:
        notes.append(
            "the snapshotter logs to stdout ([log] log_to_stdout = true), "
            f"so its lines are in the journal of {paths.snapshotter_unit}"
        )
    else:
        sources.append(LogSource("file", f"{log_dir}/nydus-snapshotter.log"))

    daemons = daemon_ids(facts.api_sockets)
    sources += [LogSource("file", f"{log_dir}/{d}/nydusd.log") for d in daemons]
    if not daemons:
        notes.append(f"no nydusd log: no nydusd API socket under {config.root}/socket")
    return sources, notes
