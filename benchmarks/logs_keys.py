"""Key latency benchmark: the log screen's keys while 10,000 lines a second arrive.

Usage: python benchmarks/logs_keys.py [--rate 10000] [--presses 40]
           [--interval 0.3] [--warmup 8]

A writer process appends logrus lines (70% info, 20% warning, 10% error) to a
file at RATE lines a second, RATE/100 lines every 10 ms. The console runs in a
private tmux server (150x40 cells) with its log screen following that file as
it would on a node: LogFollower over LocalTransport and `tail -F`.

After WARMUP seconds, which fill the 20,000-line buffer, the console presses
space, t, w, v and y in turn, PRESSES times each and INTERVAL seconds apart.
It sends each key event through the terminal driver, as the driver's input
thread does for a key typed, and records two times from that moment:

- handled: the key's action has returned;
- drawn: Textual runs the callbacks scheduled for after the next screen
  refresh (call_after_refresh).

The script prints p50, p95 and max per key and over all keys, the line rate
the screen took in meanwhile, the machine's load average and the pauses of
Python's full garbage collections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KEYS = {
    "space": ("toggle_follow", " "),
    "t": ("toggle_time", "t"),
    "w": ("toggle_wrap", "w"),
    "v": ("cycle_level", "v"),
    "y": ("copy", "y"),
}
WRITER = """\
import sys
import time

path, rate = sys.argv[1], int(sys.argv[2])
levels = ["info"] * 7 + ["warning"] * 2 + ["error"]
per_tick = max(1, rate // 100)
number = 0
next_tick = time.monotonic()
with open(path, "a", buffering=1 << 20) as out:
    while True:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        for _ in range(per_tick):
            level = levels[number % len(levels)]
            out.write(
                f'time="{stamp}.{number % 1000000:06d}Z" level={level} '
                f'msg="prepare snapshot {number}" key=k8s.io/{number}/extract\\n'
            )
            number += 1
        out.flush()
        next_tick += 0.01
        time.sleep(max(0.0, next_tick - time.monotonic()))
"""


@dataclass
class Press:
    key: str
    sent: float
    handled: float = 0.0
    drawn: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def run_inside(args: argparse.Namespace) -> None:
    """Run the console with a timed log screen; write the samples to args.out."""
    from textual import events

    from nydus_console.inventory import local_inventory
    from nydus_console.logs.follow import LogSource
    from nydus_console.screens.app import NydusConsoleApp
    from nydus_console.screens.logs import LogScreen

    presses: list[Press] = []
    current: list[Press] = []
    pauses: list[float] = []
    collecting: list[float] = []

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        """Record how long each full (generation 2) collection stops the loop."""
        if info["generation"] != 2:
            return
        if phase == "start":
            collecting.append(time.perf_counter())
        elif collecting:
            pauses.append(time.perf_counter() - collecting.pop())

    gc.callbacks.append(gc_timer)

    def timed(action: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            action()
            press = current[-1]
            press.handled = time.perf_counter()

            def drawn() -> None:
                press.drawn = time.perf_counter()
                press.done.set()

            screen.call_after_refresh(drawn)

        return run

    class TimedLogScreen(LogScreen):
        # Textual calls the on_mount of every class in the MRO, so the actions
        # are wrapped here and not in an on_mount that calls super().
        def __init__(self, node: str, sources: list[LogSource]) -> None:
            super().__init__(node, sources=sources)
            for name, _ in KEYS.values():
                action = getattr(self, f"action_{name}")
                setattr(self, f"action_{name}", timed(action))

    inventory = local_inventory()
    source = LogSource("file", str(args.log))
    screen = TimedLogScreen(inventory.nodes[0].name, sources=[source])

    class BenchApp(NydusConsoleApp):
        def on_ready(self) -> None:
            self.push_screen(screen)
            self.run_worker(self.press_keys(), name="press keys")

        async def press_keys(self) -> None:
            await asyncio.sleep(args.warmup)
            pauses.clear()
            cpu, received = time.process_time(), screen.buffer.received
            started = time.perf_counter()
            for number in range(args.presses * len(KEYS)):
                key = list(KEYS)[number % len(KEYS)]
                press = Press(key, time.perf_counter())
                current.append(press)
                assert self._driver is not None
                self._driver.send_message(events.Key(key, KEYS[key][1]))
                await asyncio.wait_for(press.done.wait(), 30)
                presses.append(press)
                await asyncio.sleep(args.interval)
            seconds = time.perf_counter() - started
            summary = {
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "received": screen.buffer.received - received,
                "dropped": screen.buffer.dropped + screen._pending_dropped,
                "gc_pauses": list(pauses),
                "presses": [
                    [p.key, p.handled - p.sent, p.drawn - p.sent] for p in presses
                ],
            }
            Path(args.out).write_text(json.dumps(summary))
            self.exit()

    BenchApp(inventory, refresh_seconds=0).run()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return f"{median * 1000:.1f} / {p95 * 1000:.1f} / {ordered[-1] * 1000:.1f}"


def report(summary: dict[str, object], rate: int) -> None:
    presses = summary["presses"]
    assert isinstance(presses, list)
    seconds = float(summary["seconds"])  # type: ignore[arg-type]
    received = int(summary["received"])  # type: ignore[call-overload]
    cpu = float(summary["cpu_seconds"])  # type: ignore[arg-type]
    print(
        f"lines taken in while pressing: {received / seconds:,.0f}/s "
        f"(writer {rate:,}/s); buffer dropped {summary['dropped']} in all; "
        f"console CPU {cpu / seconds:.0%} of one core"
    )
    pauses = summary["gc_pauses"]
    assert isinstance(pauses, list)
    longest = max(pauses, default=0.0) * 1000
    print(f"full garbage collections: {len(pauses)}, longest {longest:.0f} ms")
    print(
        "| key | action | presses | handled p50 / p95 / max ms "
        "| drawn p50 / p95 / max ms |"
    )
    print("|---|---|---|---|---|")
    for key, (action, _) in [*KEYS.items(), ("all", ("", ""))]:
        rows = [p for p in presses if key in ("all", p[0])]
        handled = percentiles([p[1] for p in rows])
        drawn = percentiles([p[2] for p in rows])
        print(f"| {key} | {action} | {len(rows)} | {handled} | {drawn} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        run_inside(args)
        return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nc-bench-keys-") as workdir:
        log, out = Path(workdir) / "snapshotter.log", Path(workdir) / "result.json"
        log.touch()
        summary = drive(args, log, out)
    print(f"load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    report(summary, args.rate)


def drive(args: argparse.Namespace, log: Path, out: Path) -> dict[str, object]:
    """Start the writer and the console in tmux; return the console's samples."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(args.rate)])
    socket = f"nc-bench-keys-{os.getpid()}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    inside = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--inside",
        f"--log={log}",
        f"--out={out}",
        f"--presses={args.presses}",
        f"--interval={args.interval}",
        f"--warmup={args.warmup}",
    ]
    command = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", *inside])
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "150", "-y", "40", command], check=True
    )
    try:
        budget = args.warmup + args.presses * len(KEYS) * (args.interval + 1) + 60
        deadline = time.monotonic() + budget
        while not out.exists():
            if time.monotonic() > deadline:
                pane = subprocess.run(
                    [*tmux, "capture-pane", "-p"], capture_output=True, text=True
                ).stdout
                raise SystemExit(f"no result after {budget:.0f} s; screen:\n{pane}")
            time.sleep(0.5)
        time.sleep(0.2)
        return dict(json.loads(out.read_text()))
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        writer.terminate()
        writer.wait()


if __name__ == "__main__":
    main()
