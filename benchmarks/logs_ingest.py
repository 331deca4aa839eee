"""Log ingest benchmark: the console's follower against a bare `cat` over SSH.

Usage: python benchmarks/logs_ingest.py [--lines 1000000]

One sshd on 127.0.0.1 (the testbed's loopback tier) serves a file of logrus
lines. The anchor reads it with `cat` over one asyncssh connection. The console
follows it with LogFollower (tail -n N -F over a PTY) and parses every line into
a LogBuffer of the default capacity, until every line has arrived. The script
prints both rates, their ratio and the console process's RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testbed.loopback import LoopbackFleet  # noqa: E402

from nydus_console.logs.buffer import LogBuffer  # noqa: E402
from nydus_console.logs.follow import LogFollower, LogSource  # noqa: E402
from nydus_console.transport.hostkeys import HostKeyStore  # noqa: E402
from nydus_console.transport.ssh import SSHTarget, SSHTransport  # noqa: E402


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def write_log(path: Path, count: int) -> None:
    with path.open("w") as handle:
        for number in range(count):
            handle.write(
                f'time="2026-12-04T18:00:00.{number % 1000000:06d}000Z" level=info '
                f'msg="prepare snapshot {number}" key=k8s.io/{number}/extract\n'
            )


async def measure(fleet: LoopbackFleet, log: Path, count: int) -> dict[str, float]:
    server = fleet.servers[0]
    assert fleet.client_key is not None
    target = SSHTarget(
        name="bench",
        host="127.0.0.1",
        port=server.port,
        user="root",
        identity_file=str(fleet.client_key.private_path),
    )
    transport = SSHTransport(
        target,
        HostKeyStore(Path(tempfile.mkdtemp()) / "kh", [fleet.write_known_hosts()]),
    )
    conn = await transport.connection()
    started = time.perf_counter()
    result = await conn.run(f"cat {log}", check=True)
    raw_seconds = time.perf_counter() - started
    assert str(result.stdout).count("\n") == count
    del result
    before = rss_kib()
    buffer = LogBuffer()
    follower = LogFollower(transport, "bench", LogSource("file", str(log)), lines=count)
    started = time.perf_counter()
    batches = follower.batches()
    async for batch in batches:
        buffer.extend(batch)
        if buffer.received >= count:
            break
    console_seconds = time.perf_counter() - started
    await batches.aclose()  # type: ignore[attr-defined]
    growth = rss_kib() - before
    await transport.close()
    return {
        "raw_s": raw_seconds,
        "console_s": console_seconds,
        "rss_growth_mib": growth / 1024,
        "dropped": buffer.dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, LoopbackFleet(1) as fleet:
        log = Path(workdir) / "nydus-snapshotter.log"
        write_log(log, args.lines)
        numbers = asyncio.run(measure(fleet, log, args.lines))
    raw_rate = args.lines / numbers["raw_s"]
    console_rate = args.lines / numbers["console_s"]
    print(f"lines: {args.lines}")
    print(f"bare cat over SSH: {numbers['raw_s']:.2f} s ({raw_rate:,.0f} lines/s)")
    print(
        f"console follower: {numbers['console_s']:.2f} s "
        f"({console_rate:,.0f} lines/s), ratio {console_rate / raw_rate:.3f}x"
    )
    print(
        f"RSS growth: {numbers['rss_growth_mib']:.1f} MiB; "
        f"buffer dropped {numbers['dropped']:,.0f} lines (capacity 50,000)"
    )


if __name__ == "__main__":
    main()
