"""nydus-console's own fan-out, in process: a cold probe, then pooled refreshes.

Usage: console_refresh.py INVENTORY ROUNDS NODE_COUNTER

Runs `Fleet.probe_all(full=True)` once (it opens the connections), then ROUNDS
times `Fleet.probe_all()` over the pooled connections, exactly as the TUI's
auto-refresh does. NODE_COUNTER is a cpuacct.usage file read around each round.
Prints one JSON object; a round counts a node as ok only if its probe returned
facts and no transport error. Its refresh_command is the first node's refresh
probe command line as the last round sent it (up to the random nonce), for the
bare asyncssh floor to run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import load_inventory
from nydus_console.transport.quoting import quote_argv


def read_counter(path: Path) -> float:
    return int(path.read_text()) / 1e9


def count_ok(reports: list[NodeReport]) -> int:
    return sum(1 for r in reports if r.error is None and r.facts is not None)


async def measure(inventory_path: Path, rounds: int, node_counter: Path) -> dict:
    fleet = Fleet(load_inventory(inventory_path))
    samples = []
    errors: Counter[str] = Counter()
    round_trips: Counter[int] = Counter()
    try:
        for index in range(rounds + 1):
            node_started = read_counter(node_counter)
            started = time.perf_counter()
            cpu_started = time.process_time()
            reports = await fleet.probe_all(full=index == 0)
            samples.append(
                {
                    "wall_s": time.perf_counter() - started,
                    "cpu_s": time.process_time() - cpu_started,
                    "node_cpu_s": read_counter(node_counter) - node_started,
                    "ok": count_ok(reports),
                }
            )
            for report in reports:
                if report.error is not None:
                    errors[f"{report.error.kind}: {report.error.message}"] += 1
                elif report.facts is not None:
                    round_trips[report.facts.round_trips] += 1
        prober = next(iter(fleet.probers.values()))
        refresh_command = quote_argv(prober._arguments(False, prober.plan.arguments()))
        # The probe skips `ctr` and the --version calls while these PIDs live.
        hints = {
            "containerd": prober._containerd_pid,
            "snapshotter": prober._snapshotter_pid,
        }
    finally:
        await fleet.close()
    cold, warm = samples[0], samples[1:]
    return {
        "n": len(fleet.specs),
        "cold": cold,
        "ok": min(sample["ok"] for sample in samples),
        "wall_s": statistics.median(s["wall_s"] for s in warm),
        "cpu_s": statistics.median(s["cpu_s"] for s in warm),
        "node_cpu_s": statistics.median(s["node_cpu_s"] for s in warm),
        "walls": [s["wall_s"] for s in warm],
        "round_trips": {str(k): v for k, v in sorted(round_trips.items())},
        "errors": dict(errors.most_common(5)),
        "refresh_command": refresh_command,
        "refresh_hints": hints,
    }


def main(argv: list[str]) -> int:
    inventory_path, rounds, counter = Path(argv[0]), int(argv[1]), Path(argv[2])
    print(json.dumps(asyncio.run(measure(inventory_path, rounds, counter))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
