"""Command palette entries for the screen the palette was opened from."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.screen import Screen

from nydus_console.configedit.remote import KIND_TITLES
from nydus_console.screens.fleet import FleetScreen
from nydus_console.screens.node import NodeScreen
from nydus_console.transport.base import ErrorKind, HostKeyError

if TYPE_CHECKING:
    from nydus_console.screens.app import NydusConsoleApp

REFRESH_CHOICES = (5.0, 10.0, 30.0, 60.0)  # listed in this order by the palette


def console_commands(
    app: NydusConsoleApp, screen: Screen[object]
) -> Iterator[SystemCommand]:
    if isinstance(screen, FleetScreen):
        yield from _fleet_commands(app, screen)
    elif isinstance(screen, NodeScreen):
        yield from _node_commands(app, screen)


def _fleet_commands(
    app: NydusConsoleApp, screen: FleetScreen
) -> Iterator[SystemCommand]:
    yield SystemCommand(
        "fleet: refresh all nodes",
        "Probe every node now",
        partial(app.refresh_all, True, True),
    )
    yield SystemCommand(
        "fleet: toggle auto-refresh",
        "Turn periodic probing on or off",
        screen.action_toggle_auto,
    )
    for seconds in REFRESH_CHOICES:
        yield SystemCommand(
            f"fleet: auto-refresh every {seconds:g}s",
            "Set the refresh interval",
            partial(app.set_refresh_interval, seconds),
        )
    yield SystemCommand(
        "fleet: filter", "Show only matching nodes", screen.action_filter
    )
    yield SystemCommand(
        "fleet: cycle sort", "Sort by status, name or age", screen.action_cycle_sort
    )
    yield SystemCommand(
        "fleet: logs of every node",
        "Follow the journal units and log files of all nodes in one view",
        app.open_logs,
    )
    for kind, title in KIND_TITLES.items():
        yield SystemCommand(
            f"fleet: {title} drift",
            f"Compare the {title} of every node, key by key",
            partial(app.open_drift, kind),
        )
    yield SystemCommand(
        "fleet: cluster pods",
        "Pods of the Kubernetes cluster failing with Nydus errors, live (p)",
        app.open_kube_pods,
    )
    yield SystemCommand(
        "fleet: inspect an image",
        "Read an image's manifest from its registry: layers, platforms, Nydus",
        app.open_images,
    )
    yield SystemCommand(
        "fleet: metrics of every node",
        "Read throughput, errors, latency and memory of all nodes, worst first",
        app.open_metrics,
    )
    yield SystemCommand(
        "fleet: write incident report (last hour)",
        "Write the audit log's last hour and the nodes' findings as Markdown",
        app.write_incident_report,
    )
    for name in app.fleet.specs:
        yield SystemCommand(
            f"node: metrics of {name}",
            "This node's nydusd daemons and snapshotter metrics",
            partial(app.open_metrics, name),
            discover=False,
        )
        yield SystemCommand(
            f"node: logs of {name}",
            "Follow this node's journal units and log files",
            partial(app.open_logs, name),
            discover=False,
        )
        yield SystemCommand(
            f"node: open {name}",
            "Show this node's checks",
            partial(app.open_node, name),
            discover=False,
        )
        yield SystemCommand(
            f"node: convert an image on {name}",
            "Run nydusify convert on this node and follow its stages",
            partial(app.open_convert, name),
            discover=False,
        )
        yield SystemCommand(
            f"node: build an image on {name}",
            "Run buildctl build with compression=nydus on this node",
            partial(app.open_build, name),
            discover=False,
        )


def _node_commands(app: NydusConsoleApp, screen: NodeScreen) -> Iterator[SystemCommand]:
    yield SystemCommand(
        f"node: refresh {screen.node}", "Probe this node now", screen.action_refresh
    )
    yield SystemCommand(
        "node: show or hide skipped checks",
        "Toggle checks skipped because a prerequisite failed",
        screen.action_toggle_skipped,
    )
    yield SystemCommand(
        f"node: convert an image on {screen.node}",
        "Run nydusify convert on this node and follow its stages",
        partial(app.open_convert, screen.node),
    )
    yield SystemCommand(
        f"node: build an image on {screen.node}",
        "Run buildctl build with compression=nydus on this node",
        partial(app.open_build, screen.node),
    )
    yield SystemCommand(
        f"node: logs of {screen.node}",
        "Follow this node's journal units and log files",
        screen.action_logs,
    )
    yield SystemCommand(
        f"node: metrics of {screen.node}",
        "This node's nydusd daemons and snapshotter metrics",
        screen.action_metrics,
    )
    for kind, title in KIND_TITLES.items():
        yield SystemCommand(
            f"node: edit {title} of {screen.node}",
            "Read the file, edit it as a form or as text, write it with a backup",
            partial(app.open_config, screen.node, kind),
        )
    if screen.needs_setup():
        yield SystemCommand(
            f"node: set up Nydus on {screen.node}",
            "Survey, answer, plan, apply and verify the first-time setup",
            screen.action_setup,
        )
    unit = screen.report.spec.paths.snapshotter_unit
    yield SystemCommand(
        f"node: restart {unit}",
        "Show the command, confirm, run it",
        screen.action_restart_snapshotter,
    )
    error = screen.report.error
    if isinstance(error, HostKeyError) and error.kind == ErrorKind.HOST_KEY_UNKNOWN:
        yield SystemCommand(
            f"node: review host key of {screen.node}",
            "Show the fingerprint and accept or cancel",
            partial(app.ask_host_key, screen.node),
        )
    yield SystemCommand(
        "fleet: back to the fleet", "Return to the fleet screen", app.pop_screen
    )
