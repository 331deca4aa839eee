"""The console side of benchmarks/metrics_poll.py: metrics polls and health probes.

Usage: metrics_poll_console.py INVENTORY SETTINGS_JSON

Runs in its own process so that benchmarks/metrics_poll.py can count this
process's CPU time alone. It prints one JSON object per line on stdout:
``{"event": "window_start"}`` and ``{"event": "window_end"}`` around the
steady-state window (the parent reads the CPU counters as each line arrives),
then ``{"event": "result", ...}`` with everything this process measured.

Phases, in order:

1. ``Fleet.probe_all(full=True)``, which opens one SSH connection per node,
   then two unmeasured ``FleetMetrics.poll()`` rounds, which open the
   forwarded channels and start each node's history.
2. Per-node poll cost: ``rounds`` measured ``FleetMetrics.poll()`` rounds of
   every node, then ``single_polls`` polls of one node at a time, then
   ``probe_rounds`` rounds of ``Fleet.probe_all()``. Each is timed with
   ``time.process_time()``.
3. Steady state: a metrics poll of every node every ``interval`` seconds and
   ``Fleet.probe_all()`` every ``refresh`` seconds, each on a fixed schedule
   that skips a tick while the previous run is still going, as the TUI's
   timers do. After ``warmup`` seconds the window of ``window`` seconds starts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import load_inventory
from nydus_console.metrics.derive import NodeFigures
from nydus_console.metrics.service import FleetMetrics

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def own_cpu_seconds() -> float:
    """Return utime + stime of this process from /proc/self/stat (clock ticks)."""
    text = Path("/proc/self/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib() -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) of this process in KiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@dataclass
class PollCheck:
    """Counts of what the polls returned, to tell a clean run from a broken one."""

    expected_daemons: int
    expect_snapshotter: bool
    node_polls: int = 0
    clean: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def add(self, metrics: FleetMetrics, figures: list[NodeFigures]) -> None:
        for figure in figures:
            self.node_polls += 1
            found = self.problems_of(metrics, figure.node)
            if found:
                self.problems.update(found)
            else:
                self.clean += 1

    def problems_of(self, metrics: FleetMetrics, node: str) -> list[str]:
        sample = metrics.samples[node]
        if sample.error:
            return [f"error: {sample.error}"]
        found = [f"problem: {problem}" for problem in sample.problems]
        if len(sample.daemons) != self.expected_daemons:
            found.append(
                f"{len(sample.daemons)} daemons listed, "
                f"expected {self.expected_daemons}"
            )
        for daemon in sample.daemons:
            found += [
                f"daemon {path}: {error}" for path, error in daemon.errors.items()
            ]
            if daemon.fs is None or daemon.backend is None or daemon.cache is None:
                found.append("a daemon returned no fs, backend or blobcache metrics")
        if self.expect_snapshotter and sample.snapshotter is None:
            found.append("no snapshotter metrics")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "node_polls": self.node_polls,
            "clean": self.clean,
            # Node names and daemon ids differ between nodes, so the first
            # few distinct messages are enough to see what went wrong.
            "problems": dict(self.problems.most_common(5)),
        }


def count_probe_errors(reports: list[NodeReport], errors: Counter[str]) -> int:
    ok = 0
    for report in reports:
        if report.error is not None:
            errors[f"{report.error.kind}: {report.error.message}"] += 1
        elif report.facts is not None:
            ok += 1
    return ok


class Ticker:
    """Runs `action` every `interval` seconds from `start`, skipping busy ticks.

    Textual's set_interval ticks on a fixed schedule, and the TUI's handlers
    return at once while the previous poll or probe of a node still runs.
    Here a slow node holds up the next probe_all() round of every node.
    """

    def __init__(
        self, name: str, interval: float, action: Callable[[], Awaitable[None]]
    ) -> None:
        self.name = name
        self.interval = interval
        self.action = action
        self.busy = False
        self.started = 0
        self.skipped = 0
        self.walls: list[float] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, start: float, stop: float) -> None:
        loop = asyncio.get_running_loop()
        tick = start
        while tick < stop:
            await asyncio.sleep(max(0.0, tick - loop.time()))
            if self.busy:
                self.skipped += 1
            else:
                self.busy = True
                self.started += 1
                task = asyncio.create_task(self._once())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            tick += self.interval
        await asyncio.sleep(max(0.0, stop - loop.time()))
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def _once(self) -> None:
        began = time.perf_counter()
        try:
            await self.action()
        finally:
            self.walls.append(time.perf_counter() - began)
            self.busy = False

    def as_json(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval,
            "started": self.started,
            "skipped": self.skipped,
            "wall_median_s": statistics.median(self.walls) if self.walls else None,
            "wall_max_s": max(self.walls) if self.walls else None,
        }


async def measure_rounds(
    metrics: FleetMetrics, rounds: int, check: PollCheck
) -> list[dict[str, float]]:
    """Poll every node `rounds` times; return the CPU and wall time of each round."""
    samples = []
    for _ in range(rounds):
        await asyncio.sleep(0.2)
        cpu = time.process_time()
        wall = time.perf_counter()
        figures = await metrics.poll()
        samples.append(
            {
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.perf_counter() - wall,
            }
        )
        check.add(metrics, figures)
    return samples


async def measure_single(
    metrics: FleetMetrics, names: list[str], count: int, check: PollCheck
) -> list[float]:
    """Poll one node at a time, `count` polls over the nodes in turn."""
    cpu_samples = []
    for index in range(count):
        name = names[index % len(names)]
        await asyncio.sleep(0.01)
        cpu = time.process_time()
        figures = await metrics.poll([name])
        cpu_samples.append(time.process_time() - cpu)
        check.add(metrics, figures)
    return cpu_samples


async def measure_probes(fleet: Fleet, count: int) -> list[float]:
    """Run `count` probe_all() rounds, as a health refresh does; return their CPU."""
    cpu_samples = []
    for _ in range(count):
        await asyncio.sleep(0.2)
        cpu = time.process_time()
        await fleet.probe_all()
        cpu_samples.append(time.process_time() - cpu)
    return cpu_samples


async def steady_state(
    fleet: Fleet, metrics: FleetMetrics, settings: dict[str, Any], check: PollCheck
) -> dict[str, Any]:
    probe_errors: Counter[str] = Counter()
    probe_ok = {"ok": 0, "reports": 0}
    in_window = {"on": False}

    async def poll_metrics() -> None:
        figures = await metrics.poll()
        if in_window["on"]:
            check.add(metrics, figures)

    async def refresh() -> None:
        reports = await fleet.probe_all()
        if in_window["on"]:
            probe_ok["ok"] += count_probe_errors(reports, probe_errors)
            probe_ok["reports"] += len(reports)

    loop = asyncio.get_running_loop()
    start = loop.time()
    # The window opens 50 ms before a tick when warmup is a multiple of both
    # intervals, so that the runs of that tick count in the window.
    window_start = start + settings["warmup"] - 0.05
    stop = window_start + settings["window"]
    # Both schedules start no run after the window's end. A run that is still
    # going then finishes before window_end is printed, so the window can end
    # late, and elapsed_s records its actual length.
    poller = Ticker("metrics", settings["interval"], poll_metrics)
    prober = Ticker("probe", settings["refresh"], refresh)
    tickers = asyncio.gather(poller.run(start, stop), prober.run(start, stop))

    await asyncio.sleep(max(0.0, window_start - loop.time()))
    # Only runs that start inside the window count in the window's figures.
    poller.started = poller.skipped = prober.started = prober.skipped = 0
    poller.walls.clear()
    prober.walls.clear()
    in_window["on"] = True
    memory_before = memory_kib()
    before = (own_cpu_seconds(), time.process_time(), time.perf_counter())
    emit("window_start")
    await tickers
    after = (own_cpu_seconds(), time.process_time(), time.perf_counter())
    emit("window_end")
    in_window["on"] = False
    elapsed = after[2] - before[2]
    return {
        "elapsed_s": elapsed,
        "proc_stat_cpu_s": after[0] - before[0],
        "process_time_cpu_s": after[1] - before[1],
        "percent_of_core": 100 * (after[1] - before[1]) / elapsed,
        "metrics": poller.as_json(),
        "probe": prober.as_json(),
        "probe_ok": probe_ok["ok"],
        "probe_reports": probe_ok["reports"],
        "probe_errors": dict(probe_errors.most_common(5)),
        "rss_kib_before": memory_before["VmRSS"],
        "rss_kib_after": memory_kib()["VmRSS"],
    }


async def run(inventory_path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    imported = {"cpu_s": time.process_time(), "rss_kib": memory_kib()["VmRSS"]}
    fleet = Fleet(load_inventory(inventory_path))
    metrics = FleetMetrics(fleet)
    names = list(fleet.specs)
    result: dict[str, Any] = {"n": len(names), "after_imports": imported}
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        errors: Counter[str] = Counter()
        ok = count_probe_errors(await fleet.probe_all(full=True), errors)
        result["cold_probe"] = {
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall,
            "ok": ok,
            "errors": dict(errors.most_common(5)),
        }
        cpu, wall = time.process_time(), time.perf_counter()
        await metrics.poll()
        result["first_poll"] = {
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall,
        }
        await metrics.poll()

        check = PollCheck(settings["daemons"], settings["snapshotter_metrics"])
        rounds = await measure_rounds(metrics, settings["rounds"], check)
        single = await measure_single(metrics, names, settings["single_polls"], check)
        result["rounds"] = {
            "count": len(rounds),
            "cpu_s": [r["cpu_s"] for r in rounds],
            "wall_s": [r["wall_s"] for r in rounds],
            "cpu_median_s": statistics.median(r["cpu_s"] for r in rounds),
            "wall_median_s": statistics.median(r["wall_s"] for r in rounds),
        }
        result["per_node_poll_cpu_s"] = result["rounds"]["cpu_median_s"] / len(names)
        result["single"] = {
            "count": len(single),
            "cpu_median_s": statistics.median(single),
            "cpu_p90_s": statistics.quantiles(single, n=10)[-1],
        }
        probes = await measure_probes(fleet, settings["probe_rounds"])
        result["probe_rounds"] = {
            "count": len(probes),
            "cpu_s": probes,
            "cpu_median_s": statistics.median(probes),
        }
        result["poll_check"] = check.as_json()
        sample = metrics.samples[names[0]]
        result["example"] = {
            "node": names[0],
            "daemons": len(sample.daemons),
            "snapshotter_samples": (
                len(sample.snapshotter.samples) if sample.snapshotter else 0
            ),
        }

        gc.collect()
        steady_check = PollCheck(settings["daemons"], settings["snapshotter_metrics"])
        result["steady"] = await steady_state(fleet, metrics, settings, steady_check)
        result["steady"]["poll_check"] = steady_check.as_json()
        result["memory_kib"] = memory_kib()
    finally:
        await metrics.close()
        await fleet.close()
    return result


def main(argv: list[str]) -> int:
    inventory_path, settings = Path(argv[0]), json.loads(argv[1])
    emit("result", **asyncio.run(run(inventory_path, settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
