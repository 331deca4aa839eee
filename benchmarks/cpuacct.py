"""CPU accounting through cgroup-v1 cpuacct groups and /proc/stat.

A process joins a group before it execs, so the group's counter includes every
child it forks, including daemonized ones such as Ansible's ControlPersist
masters, which getrusage() and /usr/bin/time miss.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

CPUACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Moves the shell into the group named by $0 (a cgroup.procs path), then execs
# the command, so the command and its descendants are counted from the start.
JOIN_AND_EXEC = 'echo $$ > "$0" && exec "$@"'


class CpuacctGroup:
    """A cpuacct group that this benchmark creates, reads and removes."""

    def __init__(self, name: str) -> None:
        if not (CPUACCT_ROOT / "cpuacct.usage").exists():
            raise RuntimeError(
                f"no cgroup-v1 cpuacct hierarchy at {CPUACCT_ROOT}; these benchmarks "
                "need a host with cpuacct mounted there (hybrid or legacy cgroups)"
            )
        self.path = CPUACCT_ROOT / name
        self.path.mkdir(exist_ok=True)

    @property
    def usage_file(self) -> Path:
        """The counter file: CPU time of every task in the group, in nanoseconds."""
        return self.path / "cpuacct.usage"

    def seconds(self) -> float:
        return int(self.usage_file.read_text()) / 1e9

    def wrap(self, argv: list[str]) -> list[str]:
        """Return argv prefixed so that the process joins this group first."""
        return ["sh", "-c", JOIN_AND_EXEC, str(self.path / "cgroup.procs"), *argv]

    def pids(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]

    def kill_all(self, timeout: float = 5.0) -> None:
        """Send SIGKILL to every process left in the group and wait until it is empty.

        Only processes this benchmark started join its groups.
        """
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes {pids} stayed in {self.path}")
            time.sleep(0.05)

    def remove(self) -> None:
        """Kill what is left in the group, then delete the group."""
        if not self.path.exists():
            return
        self.kill_all()
        # A killed task leaves the group only after its parent reaps it.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def machine_busy_seconds() -> float:
    """Return the CPU time all cores spent outside idle and iowait since boot."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """Return utime + stime of pid (all its threads, not its children)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is the state, the third field of stat; utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
