"""Benchmark nydus-console against Ansible, pssh and bare asyncssh in one run.

Setup, once per machine (root, Debian 12):

    apt-get install -y pssh tmux openssh-server openssh-client
    python3 -m venv /tmp/nc-bench-ansible
    /tmp/nc-bench-ansible/bin/pip install ansible-core

Ansible lives in its own venv so that it cannot change the console's packages.
Point --ansible at another `ansible` executable to use a different install.
benchmarks/setup.sh runs these steps.

Run from the repository root with the venv that has nydus-console installed:

    python benchmarks/run.py                 # N = 10, 50, 100, about 9 minutes
    python benchmarks/run.py --quick         # N = 10 only, a smoke run
    python benchmarks/run.py --write         # also update docs/benchmarks.md

Every node is an sshd on 127.0.0.1 that logs in as root on this machine, so
the probes see this machine. The script needs root for sshd, mount namespaces
and cgroups.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cpuacct import (
    CpuacctGroup,
    machine_busy_seconds,
    process_cpu_seconds,
)
from report import render_markdown, update_document
from sshd_fleet import SshdFleet, make_workdir
from tmux_driver import TmuxServer, find_process

from nydus_console.fleet import make_transport
from nydus_console.inventory import load_inventory
from nydus_console.probe import NodeProber
from nydus_console.transport.quoting import quote_argv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCUMENT = REPO / "docs" / "benchmarks.md"
DEFAULT_ANSIBLE = Path("/tmp/nc-bench-ansible/bin/ansible")

# The anchors' probe: one remote command per node.
REFERENCE_PROBE = (
    "uname -r; test -e /dev/fuse && echo fuse; cat /etc/hostname; "
    "ps -eo pid,comm | grep -c containerd; ls /run >/dev/null; cat /proc/loadavg"
)
SSH_OPTIONS = (
    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
    "-o LogLevel=ERROR -o BatchMode=yes"
)
COMMAND_TIMEOUT = 600.0


@dataclass
class Sample:
    """One measured run of one case."""

    wall_s: float
    client_cpu_s: float
    node_cpu_s: float
    other_cpu_s: float
    ok: int
    n: int
    details: dict[str, object] = field(default_factory=dict)


def median_summary(samples: list[Sample]) -> dict[str, object]:
    """Return medians of each measure and the worst ok count over samples."""
    return {
        "wall_s": statistics.median(s.wall_s for s in samples),
        "client_cpu_s": statistics.median(s.client_cpu_s for s in samples),
        "node_cpu_s": statistics.median(s.node_cpu_s for s in samples),
        "other_cpu_s": max(s.other_cpu_s for s in samples),
        "ok": min(s.ok for s in samples),
        "n": samples[0].n,
        "reps": len(samples),
        "walls": [round(s.wall_s, 3) for s in samples],
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """Runs the cases of one node count against one fleet."""

    def __init__(
        self,
        fleet: SshdFleet,
        workdir: Path,
        client: CpuacctGroup,
        ansible: Path | None,
        console: Path,
    ) -> None:
        assert fleet.client_key is not None
        self.fleet = fleet
        self.n = fleet.count
        self.workdir = workdir
        self.client = client
        self.ansible = ansible
        self.console = console
        self.key = fleet.client_key.private_path
        self.inventory = fleet.write_console_inventory(workdir / "inventory.toml")
        self.ansible_inventory = fleet.write_ansible_inventory(
            workdir / "inventory.ini"
        )
        self.pssh_hosts = fleet.write_pssh_hosts(workdir / "pssh_hosts")
        self.ports = fleet.write_ports(workdir / "ports")
        self.reference_file = workdir / "reference_probe.sh"
        self.reference_file.write_text(REFERENCE_PROBE)
        self.console_probe_file = workdir / "console_probe.sh"
        self.console_probe_file.write_text(console_probe_command(self.inventory))
        self.console_env = console_environment(workdir / "xdg")
        self._control_dirs = 0

    # -- measuring one command ---------------------------------------------------

    def measure(
        self,
        argv: list[str],
        count_ok: Callable[[subprocess.CompletedProcess[str]], int],
        env: dict[str, str] | None = None,
    ) -> Sample:
        """Run argv in the client cpuacct group and return its wall and CPU times."""
        busy_started = machine_busy_seconds()
        client_started = self.client.seconds()
        node_started = self.fleet.group.seconds()
        started = time.perf_counter()
        result = subprocess.run(
            self.client.wrap(argv),
            capture_output=True,
            text=True,
            env=env,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        wall = time.perf_counter() - started
        client_cpu = self.client.seconds() - client_started
        node_cpu = self.fleet.group.seconds() - node_started
        other = machine_busy_seconds() - busy_started - client_cpu - node_cpu
        ok = count_ok(result)
        details: dict[str, object] = {"exit_status": result.returncode}
        if ok < self.n:
            details["stderr"] = result.stderr[-600:]
            details["stdout"] = result.stdout[-600:]
        return Sample(wall, client_cpu, node_cpu, other, ok, self.n, details)

    # -- the cases -----------------------------------------------------------------

    def doctor(self) -> Sample:
        argv = [
            str(self.console),
            "doctor",
            "--inventory",
            str(self.inventory),
            "--json",
        ]
        return self.measure(argv, count_doctor_ok, env=self.console_env)

    def floor_cold(self, command_file: Path) -> Sample:
        argv = [
            sys.executable,
            str(HERE / "floor.py"),
            "cold",
            str(self.ports),
            str(self.key),
            str(command_file),
        ]
        return self.measure(argv, count_json_ok)

    def pssh(self) -> Sample:
        argv = [
            "parallel-ssh",
            "-h",
            str(self.pssh_hosts),
            "-p",
            str(self.n),
            "-x",
            f"-i {self.key} {SSH_OPTIONS}",
            "-i",
            REFERENCE_PROBE,
        ]
        return self.measure(argv, count_pssh_ok)

    def ansible_env(self, control_dir: Path) -> dict[str, str]:
        home = self.workdir / "ansible_home"
        return {
            **os.environ,
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.workdir / "ansible_remote_tmp"),
            "ANSIBLE_SSH_EXTRA_ARGS": "-o UserKnownHostsFile=/dev/null",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_NOCOLOR": "1",
        }

    def new_control_dir(self) -> Path:
        self._control_dirs += 1
        path = self.workdir / "ansible_cp" / str(self._control_dirs)
        path.mkdir(parents=True)
        return path

    def ansible_run(self, module: str, control_dir: Path) -> Sample:
        assert self.ansible is not None
        argv = [
            str(self.ansible),
            "all",
            "-i",
            str(self.ansible_inventory),
            "-m",
            module,
            "-a",
            REFERENCE_PROBE,
            "-f",
            str(self.n),
        ]
        return self.measure(argv, count_ansible_ok, env=self.ansible_env(control_dir))

    def close_ansible_masters(self, control_dir: Path) -> None:
        """Stop the ControlPersist masters Ansible left, then anything else left."""
        for socket in control_dir.iterdir():
            subprocess.run(
                ["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "unused"],
                capture_output=True,
                check=False,
                timeout=10,
            )
        self.client.kill_all()

    def console_refresh(self, rounds: int) -> dict[str, object]:
        argv = [
            sys.executable,
            str(HERE / "console_refresh.py"),
            str(self.inventory),
            str(rounds),
            str(self.fleet.group.usage_file),
        ]
        result = run_json(self.client.wrap(argv), env=self.console_env)
        return result

    def floor_warm(self, command_file: Path, rounds: int) -> dict[str, object]:
        argv = [
            sys.executable,
            str(HERE / "floor.py"),
            "warm",
            str(self.ports),
            str(self.key),
            str(command_file),
            str(rounds),
            str(self.fleet.group.usage_file),
        ]
        return run_json(self.client.wrap(argv))


def run_json(argv: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[-6:])} failed with status {result.returncode}:\n"
            f"{result.stderr[-2000:]}"
        )
    data: dict[str, object] = json.loads(result.stdout)
    return data


def count_doctor_ok(result: subprocess.CompletedProcess[str]) -> int:
    """Count nodes whose probe ran: no transport error and a findings list."""
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        return 0
    return sum(
        1
        for node in document.get("nodes", [])
        if "error" not in node
        and "findings" in node
        and node.get("status") not in ("unreachable", "pending")
    )


def count_json_ok(result: subprocess.CompletedProcess[str]) -> int:
    try:
        return int(json.loads(result.stdout)["ok"])
    except (json.JSONDecodeError, KeyError):
        return 0


def count_pssh_ok(result: subprocess.CompletedProcess[str]) -> int:
    return result.stdout.count("[SUCCESS]")


def count_ansible_ok(result: subprocess.CompletedProcess[str]) -> int:
    return sum(
        1
        for line in result.stdout.splitlines()
        if " | CHANGED | rc=0" in line or " | SUCCESS | rc=0" in line
    )


def console_probe_command(inventory_path: Path) -> str:
    """Return the command line the console sends for a full probe of one node.

    Every node in the benchmark inventory has the same paths, so one line
    is valid for all of them. Only the random section nonce differs between runs.
    """
    spec = load_inventory(inventory_path).nodes[0]
    prober = NodeProber(spec, make_transport(spec, None))
    return quote_argv(prober._arguments(True, prober.plan.arguments()))


def console_environment(root: Path) -> dict[str, str]:
    """Return an environment whose XDG directories are empty and private to root."""
    env = dict(os.environ)
    for name in ("CONFIG", "STATE", "CACHE", "DATA"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(path)
    return env


def summarize_refresh(data: dict[str, object]) -> dict[str, object]:
    return {
        "wall_s": data["wall_s"],
        "client_cpu_s": data["cpu_s"],
        "node_cpu_s": data["node_cpu_s"],
        "ok": data["ok"],
        "n": data["n"],
        "reps": len(data["walls"]),  # type: ignore[arg-type]
        "walls": [round(w, 3) for w in data["walls"]],  # type: ignore[attr-defined]
        **{
            key: data[key]
            for key in (
                "round_trips",
                "errors",
                "cold",
                "refresh_command",
                "refresh_hints",
            )
            if key in data
        },
    }


# -- per node count ---------------------------------------------------------------


def run_node_count(
    n: int, options: argparse.Namespace, client: CpuacctGroup, console: Path
) -> dict[str, dict[str, object]]:
    """Measure every fan-out case at n nodes and return their summaries."""
    workdir = make_workdir(f"nc-bench-{n}-")
    results: dict[str, dict[str, object]] = {}
    log(f"N={n}: starting {n} sshd instances")
    try:
        with SshdFleet(n, workdir / "nodes") as fleet:
            bench = Bench(fleet, workdir, client, options.ansible, console)
            results.update(run_cold_cases(bench, options))
            if options.ansible is not None:
                results.update(run_ansible_cases(bench, options))
            log(f"N={n}: console refresh, {options.rounds} rounds after a cold probe")
            results["console_refresh"] = summarize_refresh(
                bench.console_refresh(options.rounds)
            )
            log_summary("console_refresh", results["console_refresh"])
            refresh_file = workdir / "console_refresh_probe.sh"
            refresh_file.write_text(
                str(results["console_refresh"].pop("refresh_command"))
            )
            for name, command_file in (
                ("floor_warm_refresh", refresh_file),
                ("floor_warm_console", bench.console_probe_file),
                ("floor_warm_reference", bench.reference_file),
            ):
                log(f"N={n}: {name}, {options.rounds} rounds")
                results[name] = summarize_refresh(
                    bench.floor_warm(command_file, options.rounds)
                )
                log_summary(name, results[name])
    finally:
        client.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def run_cold_cases(bench: Bench, options: argparse.Namespace) -> dict[str, dict]:
    """Run the cold cases round-robin, so that drift hits each case alike."""
    cases: dict[str, tuple[Callable[[], Sample], int]] = {
        "doctor": (bench.doctor, options.reps),
        "floor_cold_console": (
            lambda: bench.floor_cold(bench.console_probe_file),
            options.reps,
        ),
        "floor_cold_reference": (
            lambda: bench.floor_cold(bench.reference_file),
            options.reps,
        ),
        "pssh": (bench.pssh, options.pssh_reps),
    }
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for rep in range(max(reps for _, reps in cases.values())):
        for name, (case, reps) in cases.items():
            if rep >= reps:
                continue
            sample = case()
            samples[name].append(sample)
            log(
                f"N={bench.n}: {name} rep {rep + 1}: wall {sample.wall_s:.2f} s, "
                f"client CPU {sample.client_cpu_s:.2f} s, node CPU "
                f"{sample.node_cpu_s:.2f} s, ok {sample.ok}/{sample.n}"
            )
            if sample.ok < sample.n:
                log(f"  not every node answered: {sample.details}")
    return {name: median_summary(values) for name, values in samples.items()}


def run_ansible_cases(bench: Bench, options: argparse.Namespace) -> dict[str, dict]:
    """Run Ansible -m shell cold, then warm with its masters alive, then -m raw."""
    results: dict[str, dict] = {}
    control_dir = bench.new_control_dir()
    try:
        cold = bench.ansible_run("shell", control_dir)
        log_sample(bench.n, "ansible_shell cold", cold)
        results["ansible_shell"] = median_summary([cold])
        warm = []
        for index in range(options.ansible_warm_rounds):
            sample = bench.ansible_run("shell", control_dir)
            log_sample(bench.n, f"ansible_shell warm round {index + 1}", sample)
            warm.append(sample)
        results["ansible_shell_warm"] = median_summary(warm)
    finally:
        bench.close_ansible_masters(control_dir)
    control_dir = bench.new_control_dir()
    try:
        raw = bench.ansible_run("raw", control_dir)
        log_sample(bench.n, "ansible_raw", raw)
        results["ansible_raw"] = median_summary([raw])
    finally:
        bench.close_ansible_masters(control_dir)
    return results


def log_sample(n: int, name: str, sample: Sample) -> None:
    log(
        f"N={n}: {name}: wall {sample.wall_s:.2f} s, client CPU "
        f"{sample.client_cpu_s:.2f} s, node CPU {sample.node_cpu_s:.2f} s, "
        f"ok {sample.ok}/{sample.n}"
    )
    if sample.ok < sample.n:
        log(f"  not every node answered: {sample.details}")


def log_summary(name: str, summary: dict[str, object]) -> None:
    log(
        f"  {name}: median wall {summary['wall_s']:.3f} s, CPU "
        f"{summary['client_cpu_s']:.3f} s, node CPU {summary['node_cpu_s']:.3f} s, "
        f"ok {summary['ok']}/{summary['n']}"
    )
    if summary.get("errors"):
        log(f"  errors: {summary['errors']}")


# -- terminal cases -----------------------------------------------------------------


def run_first_frame(samples: int, console: Path) -> dict[str, object]:
    """Time launch to first frame for the console (local mode) and a minimal app."""
    workdir = make_workdir("nc-bench-ttff-")
    env = {
        f"XDG_{name}_HOME": str(workdir / name.lower())
        for name in ("CONFIG", "STATE", "CACHE", "DATA")
    }
    for path in env.values():
        Path(path).mkdir()
    apps = {
        "console": ([str(console)], "sort:"),
        "minimal": (
            [sys.executable, str(HERE / "minimal_app.py")],
            "minimal-app-ready",
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in apps}
    try:
        with TmuxServer(f"nc-bench-{os.getpid()}") as tmux:
            for index in range(samples):
                for name, (argv, marker) in apps.items():
                    session, pid, started = tmux.launch(argv, env)
                    seen = tmux.wait_for_text(session, marker, timeout=60)
                    times[name].append(seen - started)
                    tmux.kill_session(session, pid)
                    log(
                        f"first frame {name} sample {index + 1}: {seen - started:.3f} s"
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        name: {
            "median_s": statistics.median(values),
            "samples": [round(v, 3) for v in values],
        }
        for name, values in times.items()
    }


def run_idle(n: int, warmup: float, window: float, console: Path) -> dict[str, object]:
    """Run the TUI against n nodes with --refresh 5 and measure a steady window."""
    workdir = make_workdir("nc-bench-idle-")
    log(f"idle: starting {n} sshd instances")
    try:
        with (
            SshdFleet(n, workdir / "nodes") as fleet,
            TmuxServer(f"nc-bench-idle-{os.getpid()}") as tmux,
        ):
            inventory = fleet.write_console_inventory(workdir / "inventory.toml")
            env = {
                key: value
                for key, value in console_environment(workdir / "xdg").items()
                if key.startswith("XDG_")
            }
            argv = [str(console), "--inventory", str(inventory), "--refresh", "5"]
            session, pane_pid, started = tmux.launch(argv, env)
            tmux.wait_for_text(session, "sort:", timeout=60)
            pid = find_process(pane_pid, "nydus-console")
            log(
                f"idle: console pid {pid} drew its first frame; warming up "
                f"until {warmup:.0f} s after launch"
            )
            time.sleep(max(0.0, started + warmup - time.perf_counter()))
            startup_cpu = process_cpu_seconds(pid)
            before = (
                process_cpu_seconds(pid),
                fleet.group.seconds(),
                machine_busy_seconds(),
                time.perf_counter(),
            )
            log(f"idle: measuring for {window:.0f} s")
            time.sleep(window)
            after = (
                process_cpu_seconds(pid),
                fleet.group.seconds(),
                machine_busy_seconds(),
                time.perf_counter(),
            )
            screen = tmux.capture(session)
            tmux.kill_session(session, pane_pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = after[3] - before[3]
    console_cpu = after[0] - before[0]
    node_cpu = after[1] - before[1]
    status = next((line.strip() for line in screen.splitlines() if "sort:" in line), "")
    return {
        "n": n,
        "window_s": elapsed,
        "warmup_s": warmup,
        "startup_cpu_s": startup_cpu,
        "console_cpu_s": console_cpu,
        "console_percent": 100 * console_cpu / elapsed,
        "node_cpu_s": node_cpu,
        "node_percent": 100 * node_cpu / elapsed,
        "other_cpu_s": after[2] - before[2] - console_cpu - node_cpu,
        "status_line": status,
    }


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark nydus-console against Ansible, pssh and bare asyncssh "
        "over N loopback sshd instances.",
        epilog="Setup: apt-get install -y pssh tmux; python3 -m venv "
        "/tmp/nc-bench-ansible && /tmp/nc-bench-ansible/bin/pip install ansible-core "
        "(or run benchmarks/setup.sh).",
    )
    parser.add_argument(
        "--nodes",
        default="10,50,100",
        help="comma-separated node counts (default 10,50,100)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: N=10, 3 first-frame samples, a 10-node idle check of 10 s",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"replace the results section of {DOCUMENT}",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also save the raw results as JSON"
    )
    parser.add_argument(
        "--ansible",
        type=Path,
        default=DEFAULT_ANSIBLE,
        help=f"the ansible executable (default {DEFAULT_ANSIBLE})",
    )
    parser.add_argument(
        "--skip-terminal",
        action="store_true",
        help="skip the first-frame and idle cases",
    )
    options = parser.parse_args(argv)

    options.node_counts = [int(n) for n in options.nodes.split(",") if n.strip()]
    options.reps, options.pssh_reps, options.rounds = 5, 3, 5
    options.ansible_warm_rounds = 3
    options.ttff_samples, options.idle = 5, (50, 60.0, 60.0)

    if options.quick:
        options.node_counts = [10]
        options.ttff_samples, options.idle = 3, (10, 10.0, 10.0)

    if options.write and options.quick:
        parser.error("--write records full runs only; drop --quick")

    if not options.ansible.exists():
        log(
            f"{options.ansible} not found: the Ansible anchors are skipped "
            "(see the setup steps in --help)"
        )
        options.ansible = None
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if os.geteuid() != 0:
        print("run.py needs root: it starts sshd and uses cgroups", file=sys.stderr)
        return 1
    for tool in ("parallel-ssh", "tmux", "ssh"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is not installed; see the setup steps in --help",
                file=sys.stderr,
            )
            return 1
    console = Path(sys.executable).parent / "nydus-console"
    started = time.time()
    client = CpuacctGroup(f"nc-bench-client-{os.getpid()}")
    results: dict[str, object] = {"started": started, "quick": options.quick}
    try:
        fanout = {}
        for n in options.node_counts:
            fanout[str(n)] = run_node_count(n, options, client, console)
        results["fanout"] = fanout
        if not options.skip_terminal:
            results["first_frame"] = run_first_frame(options.ttff_samples, console)
            results["idle"] = run_idle(*options.idle, console=console)
    finally:
        client.remove()
    results["seconds"] = time.time() - started
    log(f"finished in {results['seconds']:.0f} s")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    markdown = render_markdown(results, options.ansible)
    print(markdown)
    if options.write:
        update_document(DOCUMENT, markdown)
        log(f"updated {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
