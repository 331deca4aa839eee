"""`nydus-console metrics`: daemon and snapshotter metrics without the UI."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TextIO

from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory, check_prometheus_url
from nydus_console.metrics import units
from nydus_console.metrics.derive import DaemonFigures, NodeFigures
from nydus_console.metrics.model import NodeSample
from nydus_console.metrics.service import FleetMetrics

EXIT_UNREACHABLE = 3
DEFAULT_GAP_SECONDS = 2.0


def prometheus_url(text: str) -> str:
    if not check_prometheus_url(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL of a Prometheus server"
        )
    return text


def gap_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not 0 <= seconds <= 300:
        raise argparse.ArgumentTypeError(f"{text!r}: use 0 to 300 seconds")
    return seconds


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--prometheus",
        type=prometheus_url,
        metavar="URL",
        help="read every node's snapshotter metrics from this Prometheus server "
        "instead of each node (default: [metrics] prometheus_url of the inventory)",
    )
    parser.add_argument(
        "--interval",
        type=gap_seconds,
        default=DEFAULT_GAP_SECONDS,
        metavar="SECONDS",
        help="poll twice this far apart so that rates can be shown; 0 polls once "
        f"and shows counters only (default {DEFAULT_GAP_SECONDS:g})",
    )


async def run_metrics(
    inventory: Inventory,
    *,
    prometheus: str | None,
    interval: float,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    fleet = Fleet(inventory)
    metrics = FleetMetrics(fleet, prometheus or inventory.prometheus_url)
    try:
        figures = await metrics.poll()
        if interval > 0:
            await asyncio.sleep(interval)
            figures = await metrics.poll()
    finally:
        await metrics.close()
        await fleet.close()
    if as_json:
        documents = [metrics.document(f.node) for f in figures]
        json.dump({"nodes": documents}, out, indent=2)
        out.write("\n")
    else:
        for node in figures:
            out.write(render_node(metrics.samples[node.node], node))
    if any(f.error for f in figures):
        return EXIT_UNREACHABLE
    return 1 if any(f.problems or f.daemon_errors for f in figures) else 0


HEADER = (
    f"  {'DAEMON':<16} {'STATE':<8} {'PID':>7} {'READ/s':>12} {'ERR':>6} "
    f"{'P50':>8} {'P99':>8} {'HIT':>6} {'INFL':>4} {'HUNG':>4} {'RSS':>10}"
)


def render_node(sample: NodeSample, figures: NodeFigures) -> str:
    lines = [f"{sample.node}  ({_source_text(sample)})"]
    if sample.error:
        lines.append(f"  unreachable: {sample.error}")
        return "\n".join(lines) + "\n\n"
    lines.append("  " + snapshotter_line(figures))
    if sample.daemons:
        lines.append(HEADER)
    for daemon in sample.daemons:
        lines.append(
            _daemon_row(daemon.id, daemon.state, daemon.pid, figures.daemons[daemon.id])
        )
        lines += [f"    {path}: {error}" for path, error in daemon.errors.items()]
    if not sample.daemons and not sample.problems:
        lines.append("  no nydusd daemons")
    lines += [f"  problem: {problem}" for problem in sample.problems]
    lines += [f"  note: {note}" for note in sample.notes]
    return "\n".join(lines) + "\n\n"


def _source_text(sample: NodeSample) -> str:
    if sample.source == "prometheus":
        return "from Prometheus"
    return f"from the node, {len(sample.daemons)} daemon(s)"


def snapshotter_line(figures: NodeFigures) -> str:
    snap = figures.snapshotter
    if snap is None:
        return "snapshotter: no metrics endpoint read"
    if not snap.collected:
        return (
            "snapshotter: no values yet; they appear after its first collect "
            "interval (1 minute by default)"
        )
    return (
        f"snapshotter: cpu {units.percent((snap.cpu_percent or 0) / 100)}  "
        f"memory {units.kib(snap.memory_kb)}  fds {units.count(snap.fds)}  "
        f"threads {units.count(snap.threads)}  hung I/O {units.count(snap.hung_io)}  "
        f"daemon deaths {units.count(snap.daemon_deaths)}"
    )


def _daemon_row(name: str, state: str, pid: int, fig: DaemonFigures) -> str:
    read = "restarted" if fig.restarted else units.per_second(fig.read_bps)
    return (
        f"  {name[:16]:<16} {state or '-':<8} {pid or '-':>7} {read:>12} "
        f"{units.percent(fig.read_error_ratio):>6} "
        f"{units.latency_bound(fig.latency_p50_us):>8} "
        f"{units.latency_bound(fig.latency_p99_us):>8} "
        f"{units.percent(fig.cache_hit_ratio, 0):>6} {units.count(fig.inflight):>4} "
        f"{units.count(fig.hung_io):>4} {units.kib(fig.rss_kb):>10}"
    )
