"""Bare asyncssh fan-out: the floor any asyncssh-based client can reach.

Usage:
  floor.py cold PORTS_FILE KEY COMMAND_FILE
  floor.py warm PORTS_FILE KEY COMMAND_FILE ROUNDS NODE_COUNTER

cold opens one connection per port, runs the command once on each and exits.
warm opens the connections, runs one discarded round and then ROUNDS measured
rounds. NODE_COUNTER is a cpuacct.usage file read around each round. Host keys
are not checked (known_hosts=None). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import asyncssh


def connect(port: int, key: asyncssh.SSHKey) -> object:
    return asyncssh.connect(
        "127.0.0.1",
        port,
        username="root",
        client_keys=[key],
        known_hosts=None,
        agent_path=None,
    )


async def probe_once(port: int, key: asyncssh.SSHKey, command: str) -> int | None:
    async with connect(port, key) as conn:  # type: ignore[attr-defined]
        result = await conn.run(command, check=False)
        return result.exit_status


async def run_cold(ports: list[int], key: asyncssh.SSHKey, command: str) -> dict:
    started = time.perf_counter()
    cpu_started = time.process_time()
    results = await asyncio.gather(
        *(probe_once(port, key, command) for port in ports), return_exceptions=True
    )
    return {
        "ok": sum(1 for result in results if result == 0),
        "n": len(ports),
        "errors": sorted({repr(r) for r in results if isinstance(r, BaseException)}),
        "fanout_s": time.perf_counter() - started,
        "fanout_cpu_s": time.process_time() - cpu_started,
    }


def read_counter(path: Path) -> float:
    return int(path.read_text()) / 1e9


async def run_warm(
    ports: list[int],
    key: asyncssh.SSHKey,
    command: str,
    rounds: int,
    node_counter: Path,
) -> dict:
    conns = await asyncio.gather(*(connect(port, key) for port in ports))
    walls, cpus, node_cpus, oks = [], [], [], []
    try:
        for index in range(rounds + 1):
            node_started = read_counter(node_counter)
            started = time.perf_counter()
            cpu_started = time.process_time()
            results = await asyncio.gather(
                *(conn.run(command, check=False) for conn in conns)
            )
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            node_cpu = read_counter(node_counter) - node_started
            if index == 0:
                continue
            walls.append(wall)
            cpus.append(cpu)
            node_cpus.append(node_cpu)
            oks.append(sum(1 for result in results if result.exit_status == 0))
    finally:
        for conn in conns:
            conn.close()
        await asyncio.gather(*(conn.wait_closed() for conn in conns))
    return {
        "ok": min(oks),
        "n": len(ports),
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "node_cpu_s": statistics.median(node_cpus),
        "rounds": rounds,
        "walls": walls,
    }


def main(argv: list[str]) -> int:
    mode, ports_file, key_file, command_file = argv[:4]
    ports = [int(line) for line in Path(ports_file).read_text().split()]
    key = asyncssh.read_private_key(key_file)
    command = Path(command_file).read_text()
    if mode == "cold":
        result = asyncio.run(run_cold(ports, key, command))
    elif mode == "warm":
        rounds = int(argv[4])
        counter = Path(argv[5])
        result = asyncio.run(run_warm(ports, key, command, rounds, counter))
    else:
        print(f"unknown mode {mode!r}: expected cold or warm", file=sys.stderr)
        return 64
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
