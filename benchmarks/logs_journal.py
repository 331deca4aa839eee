"""Journal ingest benchmark: the log follower against bare journalctl over SSH.

Usage, as root, with nodes booted by scripts/testbed-up:

    python benchmarks/logs_journal.py [--state DIR] [--entries 200000]
        [--rounds 3] [--profile]

A transient unit on the first node of the testbed in DIR writes ENTRIES
logrus lines to the journal. Every case then reads the last ENTRIES entries
of the unit's journal from that node over SSH:

- ssh: OpenSSH's client runs `journalctl --no-pager -o json -u UNIT -n
  ENTRIES` with its output to /dev/null (a new connection per run);
- ssh, console's fields: the same with the console's --output-fields, and
  again with a PTY (`ssh -tt`), as the console's stream uses one;
- channel: the console's command without --follow on one exec channel of the
  console's pooled asyncssh connection with a PTY, output read and dropped;
- console: LogFollower (journalctl with --follow through SSHTransport.stream)
  parses every entry into a LogBuffer of the log screen's capacity until all
  have arrived, with the console's fields and with every field.

Cases alternate for --rounds rounds and the medians are printed. journald
limits each unit to a burst of messages by default, so the script switches
that limit off on the node (a drop-in under /etc/systemd/journald.conf.d)
while it fills the journal, and removes the drop-in afterwards. --profile
runs one more console round under cProfile and prints where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.logs.buffer import LogBuffer
from nydus_console.logs.follow import LogFollower, LogSource
from nydus_console.screens.logs import BUFFER_CAPACITY
from nydus_console.transport.quoting import quote_argv
from nydus_console.transport.ssh import SSHTransport

DEFAULT_STATE = Path("/tmp/nydus-console-testbed")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RATE_LIMIT_DROP_IN = "/etc/systemd/journald.conf.d/nc-bench-no-rate-limit.conf"
FILL_SCRIPT_PATH = "/usr/local/bin/nc-bench-journal-fill"
# Writes argv[1] logrus lines to stdout, then stays alive for a while:
# journald drops _SYSTEMD_UNIT from lines it reads after the writer exited,
# and `journalctl -u` would then miss them.
FILL_SCRIPT = """\
import sys
import time

out = sys.stdout
for n in range(int(sys.argv[1])):
    out.write(
        f'time="2026-12-04T18:00:{n // 10000 % 60:02d}.{n % 10000:04d}00000Z" '
        f'level=info msg="prepare snapshot {n}" key=k8s.io/{n}/extract\\n'
    )
out.flush()
time.sleep(5)
"""


@dataclass
class Node:
    """The benchmark node: its name, SSH address and a way into its namespaces."""

    name: str
    address: str
    leader_pid: int
    state: Path

    def exec(self, argv: list[str], input_text: str | None = None) -> str:
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader_pid), "-a", "--", *argv],
            input=input_text,
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": NODE_PATH, "LANG": "C.UTF-8"},
        )
        return result.stdout

    def ssh_argv(self, command: str, tty: bool) -> list[str]:
        return [
            "ssh",
            *(["-tt"] if tty else ["-T"]),
            "-i",
            str(self.state / "client_ed25519"),
            "-o",
            f"UserKnownHostsFile={self.state / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"root@{self.address}",
            command,
        ]


def load_node(state: Path) -> Node:
    record = json.loads((state / "nodes.json").read_text())
    first = record["nodes"][0]
    return Node(first["name"], first["address"], int(first["leader_pid"]), state)


def fill_journal(node: Node, unit: str, entries: int) -> int:
    """Write `entries` lines from a transient unit; return the unit's entry count."""
    node.exec(["mkdir", "-p", str(Path(RATE_LIMIT_DROP_IN).parent)])
    node.exec(["tee", RATE_LIMIT_DROP_IN], "[Journal]\nRateLimitIntervalSec=0\n")
    node.exec(["tee", FILL_SCRIPT_PATH], FILL_SCRIPT)
    node.exec(["systemctl", "restart", "systemd-journald"])
    try:
        started = time.perf_counter()
        node.exec(
            ["systemd-run", "--unit", unit, "--collect", "--wait", "--quiet"]
            + ["python3", FILL_SCRIPT_PATH, str(entries)]
        )
        print(f"filled the journal in {time.perf_counter() - started:.1f} s")
    finally:
        node.exec(["rm", "-f", RATE_LIMIT_DROP_IN])
        node.exec(["systemctl", "restart", "systemd-journald"])
    listing = node.exec(["journalctl", "--no-pager", "-o", "cat", "-u", unit])
    return listing.count("\n")


@dataclass
class Sample:
    seconds: float
    cpu_seconds: float
    lines: int
    nbytes: int = 0


def run_ssh(node: Node, command: str, tty: bool) -> Sample:
    """Run OpenSSH's client with output to /dev/null; CPU is the client's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(
            node.ssh_argv(command, tty),
            stdout=null,
            stdin=subprocess.DEVNULL,
            check=True,
        )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(seconds, cpu, 0)


async def run_channel(transport: SSHTransport, command: str, tty: bool) -> Sample:
    """Read a command's output on the pooled connection and drop it."""
    conn = await transport.connection()
    options = {"term_type": "dumb", "term_size": (4096, 50)} if tty else {}
    cpu = time.process_time()
    started = time.perf_counter()
    process = await conn.create_process(command, encoding=None, **options)
    nbytes = 0
    lines = 0
    while chunk := await process.stdout.read(1 << 20):
        nbytes += len(chunk)
        lines += chunk.count(b"\n")
    await process.wait()
    seconds = time.perf_counter() - started
    return Sample(seconds, time.process_time() - cpu, lines, nbytes)


async def run_console(
    transport: SSHTransport,
    node: str,
    unit: str,
    expected: int,
    output_fields: bool = True,
) -> Sample:
    """Follow the unit with LogFollower until `expected` records have arrived."""
    buffer = LogBuffer(BUFFER_CAPACITY)
    source = LogSource("journal", f"{unit}.service", output_fields=output_fields)
    follower = LogFollower(transport, node, source, lines=expected)
    cpu = time.process_time()
    started = time.perf_counter()
    batches = follower.batches()
    async for batch in batches:
        buffer.extend(batch)
        if buffer.received >= expected:
            break
    seconds = time.perf_counter() - started
    await batches.aclose()  # type: ignore[attr-defined]
    return Sample(seconds, time.process_time() - cpu, buffer.received)


async def measure(
    node: Node, unit: str, entries: int, rounds: int
) -> dict[str, list[Sample]]:
    fleet = Fleet(load_inventory(node.state / "inventory.toml"))
    transport = fleet.transports[node.name]
    assert isinstance(transport, SSHTransport)

    command = f"journalctl --no-pager -o json -u {unit}.service -n {entries}"
    source = LogSource("journal", f"{unit}.service")
    fields = quote_argv(source.command(entries, follow=False))
    probe = await run_channel(transport, command, tty=False)
    expected = probe.lines
    print(f"journalctl prints {expected} entries, {probe.nbytes / 1e6:.1f} MB of JSON")
    reduced = await run_channel(transport, fields, tty=False)
    print(f"with the console's fields: {reduced.nbytes / 1e6:.1f} MB")

    cases: dict[str, Callable[[], Awaitable[Sample]]] = {
        "ssh": lambda: asyncio.to_thread(run_ssh, node, command, False),
        "ssh, console's fields": lambda: asyncio.to_thread(
            run_ssh, node, fields, False
        ),
        "ssh -tt, console's fields": lambda: asyncio.to_thread(
            run_ssh, node, fields, True
        ),
        "channel with PTY, console's fields": lambda: run_channel(
            transport, fields, True
        ),
        "console": lambda: run_console(transport, node.name, unit, expected),
        "console, every field": lambda: run_console(
            transport, node.name, unit, expected, output_fields=False
        ),
    }

    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for number in range(rounds):
        for name, case in cases.items():
            load = os.getloadavg()[0]
            sample = await case()
            samples[name].append(sample)
            print(
                f"round {number + 1} {name:<34} {sample.seconds:6.2f} s, "
                f"client CPU {sample.cpu_seconds:5.2f} s, load before {load:.1f}"
            )
    samples["expected"] = [Sample(0, 0, expected, probe.nbytes)]
    await fleet.close()
    return samples


async def profile_console(node: Node, unit: str, expected: int) -> str:
    fleet = Fleet(load_inventory(node.state / "inventory.toml"))
    transport = fleet.transports[node.name]
    assert isinstance(transport, SSHTransport)
    await transport.connection()
    profiler = cProfile.Profile()
    profiler.enable()
    sample = await run_console(transport, node.name, unit, expected)
    profiler.disable()
    await fleet.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    return f"profiled console round: {sample.seconds:.2f} s\n{out.getvalue()}"


def report(samples: dict[str, list[Sample]]) -> None:
    expected = samples.pop("expected")[0]
    medians = {
        name: (
            statistics.median(s.seconds for s in runs),
            statistics.median(s.cpu_seconds for s in runs),
        )
        for name, runs in samples.items()
    }
    anchor = medians["ssh"][0]
    print(f"\nentries: {expected.lines}, JSON: {expected.nbytes / 1e6:.1f} MB")
    print("| case | median s | entries/s | client CPU s | rate vs ssh |")
    print("|---|---|---|---|---|")
    for name, (seconds, cpu) in medians.items():
        rate = expected.lines / seconds
        print(
            f"| {name} | {seconds:.2f} | {rate:,.0f} | {cpu:.2f} | "
            f"{anchor / seconds:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    node = load_node(args.state.resolve())
    unit = f"nc-bench-journal-{os.getpid()}"
    count = fill_journal(node, unit, args.entries)
    print(f"{unit}.service has {count} journal entries")
    samples = asyncio.run(measure(node, unit, args.entries, args.rounds))
    expected = samples["expected"][0].lines
    report(samples)
    if args.profile:
        print(asyncio.run(profile_console(node, unit, expected)))


if __name__ == "__main__":
    sys.exit(main())
