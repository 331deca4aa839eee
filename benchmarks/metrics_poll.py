"""CPU cost of the console's metrics polling, against N nodes with live sockets.

Run from the repository root as root, with the venv that has nydus-console
installed (py-spy too, for --py-spy):

    python benchmarks/metrics_poll.py                  # 50 nodes, about 3 minutes
    python benchmarks/metrics_poll.py --write          # also update docs/benchmarks.md
    python benchmarks/metrics_poll.py --py-spy /tmp/metrics.raw   # and profile

Every node is an sshd on 127.0.0.1 (benchmarks/sshd_fleet.py) that logs in as
root on this machine. Each node also has its own snapshotter double
(tests/doubles/containerd_nydus_grpc_double.py), started on this machine with
a config file of its own. That config puts the root, the gRPC socket, the
system controller socket and the nydusd API sockets under a per-node
directory, and the Prometheus endpoint on a port of its own on 127.0.0.1.
The inventory points each node's snapshotter_config at that file, so every
node's probe and metrics poll reach that node's sockets through that node's
SSH connection.

The console runs in a child process (benchmarks/metrics_poll_console.py), and
only that process's CPU time is the console's. The sshd group and the doubles'
group are cgroup-v1 cpuacct groups, reported as node-side CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpuacct import CpuacctGroup, machine_busy_seconds, process_cpu_seconds
from report import command_output, machine_description
from sshd_fleet import SshdFleet, make_workdir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testbed.loopback import free_ports  # noqa: E402
from testbed.profiles import nydusd_config_json  # noqa: E402
from testbed.ssh import InventoryNode, write_inventory  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCUMENT = REPO / "docs" / "benchmarks.md"
DOUBLES = REPO / "tests" / "doubles"
CONSOLE_SIDE = HERE / "metrics_poll_console.py"
SECTION_TITLE = "## Metrics polling"
# The snapshotter double rejects a longer root, as nydus-snapshotter's config
# validation does, because <root>/socket/<id>/api.sock must fit in sun_path.
MAX_ROOT_BYTES = 70
START_TIMEOUT = 60.0
TARGET_PERCENT = 5.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the nodes' snapshotters -------------------------------------------------------


@dataclass(frozen=True)
class NodeFiles:
    """One node's snapshotter config and the paths the double creates from it."""

    name: str
    directory: Path
    metrics_port: int

    @property
    def config(self) -> Path:
        return self.directory / "config.toml"

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def system_socket(self) -> Path:
        return self.directory / "system.sock"

    @property
    def grpc_socket(self) -> Path:
        return self.directory / "grpc.sock"


def snapshotter_config(
    node: NodeFiles,
    nydusd_config: Path,
    nydusd_path: Path,
    metrics: bool,
    collect_interval: str,
) -> str:
    """Return a version 1 config.toml with every path under the node's directory.

    The same settings as the testbed's healthy profile
    (tests/testbed/profiles.py), except for the paths and the metrics address.
    """
    text = f"""\
version = 1
root = "{node.root}"
address = "{node.grpc_socket}"
daemon_mode = "dedicated"
cleanup_on_close = false

[system]
enable = true
address = "{node.system_socket}"

[daemon]
nydusd_config = "{nydusd_config}"
nydusd_path = "{nydusd_path}"
fs_driver = "fusedev"
recover_policy = "restart"
threads_number = 4
log_rotation_size = 100
failover_policy = "resend"

[log]
log_to_stdout = false
level = "info"

[cache_manager]
disable = false
gc_period = "24h"
"""
    if metrics:
        text += (
            f'\n[metrics]\naddress = "127.0.0.1:{node.metrics_port}"\n'
            f'collect_interval = "{collect_interval}"\n'
        )
    return text


class Snapshotters:
    """One snapshotter double per node, all in one cpuacct group."""

    def __init__(self, workdir: Path, names: list[str], options: argparse.Namespace):
        self.workdir = workdir
        self.options = options
        ports = free_ports(len(names))
        self.nodes = [
            NodeFiles(name, workdir / f"n{index:03d}", port)
            for index, (name, port) in enumerate(zip(names, ports, strict=True))
        ]
        self.group = CpuacctGroup(f"nc-bench-doubles-{os.getpid()}")
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Snapshotters:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        nydusd_config = self.workdir / "nydusd-config.json"
        nydusd_config.write_text(nydusd_config_json())
        nydusd = self.workdir / "nydusd"
        nydusd.write_text(
            f'#!/bin/sh\nexec {sys.executable} -B {DOUBLES / "nydusd_double.py"} "$@"\n'
        )
        nydusd.chmod(0o755)
        double = DOUBLES / "containerd_nydus_grpc_double.py"
        for node in self.nodes:
            node.directory.mkdir(parents=True)
            if len(str(node.root).encode()) > MAX_ROOT_BYTES:
                raise ValueError(
                    f"snapshotter root {node.root} is longer than {MAX_ROOT_BYTES} "
                    "bytes; use a shorter TMPDIR"
                )
            node.config.write_text(
                snapshotter_config(
                    node,
                    nydusd_config,
                    nydusd,
                    self.options.snapshotter_metrics,
                    self.options.collect_interval,
                )
            )
            argv = [sys.executable, "-B", str(double), "--config", str(node.config)]
            argv += ["--daemons", str(self.options.daemons)]
            with (node.directory / "snapshotter.out").open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        self.group.wrap(argv),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        # Its own process group, which its nydusd children join.
                        start_new_session=True,
                    )
                )
        self._wait_until_ready()

    def _ready(self, node: NodeFiles) -> bool:
        sockets = list((node.root / "socket").glob("*/api.sock"))
        if len(sockets) < self.options.daemons or not node.system_socket.exists():
            return False
        if not self.options.snapshotter_metrics:
            return True
        try:
            with socket.create_connection(("127.0.0.1", node.metrics_port), 1.0):
                return True
        except OSError:
            return False

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.nodes)
        while waiting:
            for node, process in zip(self.nodes, self.processes, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the snapshotter double of {node.name} exited with status "
                        f"{process.returncode}; see {node.directory}/snapshotter.out"
                    )
            waiting = [node for node in waiting if not self._ready(node)]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} snapshotter doubles were not ready within "
                    f"{START_TIMEOUT} s, for example {waiting[0].name}; see "
                    f"{waiting[0].directory}/snapshotter.out"
                )
            if waiting:
                time.sleep(0.2)

    def close(self) -> None:
        """Stop every double and its nydusd children, then remove the group."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # nydusd doubles outlive their snapshotter (KillMode=process), and any
        # process left in the group gets SIGKILL here.
        self.group.remove()


# -- the console process -----------------------------------------------------------


def console_environment(root: Path) -> dict[str, str]:
    """Return an environment whose XDG directories are empty and private to root."""
    env = dict(os.environ)
    for name in ("CONFIG", "STATE", "CACHE", "DATA"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(path)
    return env


def start_py_spy(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Sample pid for seconds with py-spy, without pausing it, into output."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    argv += ["--rate", "250", "--nonblocking", "--format", "raw", "-o", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_console(
    inventory: Path,
    workdir: Path,
    options: argparse.Namespace,
    groups: dict[str, CpuacctGroup],
) -> dict[str, Any]:
    """Run the console side, read the CPU counters around its window, return all."""
    settings = {
        "interval": options.interval,
        "refresh": options.refresh,
        "warmup": options.warmup,
        "window": options.window,
        "rounds": options.rounds,
        "single_polls": options.single_polls,
        "probe_rounds": options.probe_rounds,
        "daemons": options.daemons,
        "snapshotter_metrics": options.snapshotter_metrics,
    }
    argv = [sys.executable, str(CONSOLE_SIDE), str(inventory), json.dumps(settings)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        env=console_environment(workdir / "xdg"),
        text=True,
    )
    assert process.stdout is not None
    marks: dict[str, dict[str, float]] = {}
    result: dict[str, Any] = {}
    profiler = None
    try:
        for line in process.stdout:
            message = json.loads(line)
            event = message.pop("event")
            if event in ("window_start", "window_end"):
                marks[event] = read_counters(process.pid, groups)
                log(f"console: {event.replace('_', ' ')}")
            if event == "window_start" and options.py_spy:
                profiler = start_py_spy(process.pid, options.window, options.py_spy)
            if event == "result":
                result = message
        if process.wait() != 0 or not result:
            raise RuntimeError(
                f"{CONSOLE_SIDE.name} exited with status {process.returncode}"
            )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if profiler is not None:
            _, errors = profiler.communicate(timeout=60)
            if profiler.returncode != 0:
                log(f"py-spy failed: {errors.decode(errors='replace').strip()}")
    result["window"] = window_figures(marks["window_start"], marks["window_end"])
    return result


def read_counters(pid: int, groups: dict[str, CpuacctGroup]) -> dict[str, float]:
    counters = {"console": process_cpu_seconds(pid), "machine": machine_busy_seconds()}
    counters |= {name: group.seconds() for name, group in groups.items()}
    counters["time"] = time.perf_counter()
    return counters


def window_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    elapsed = after["time"] - before["time"]
    cpu = {name: after[name] - before[name] for name in before if name != "time"}
    other = cpu["machine"] - cpu["console"] - cpu["sshd"] - cpu["doubles"]
    return {
        "elapsed_s": elapsed,
        "console_cpu_s": cpu["console"],
        "console_percent": 100 * cpu["console"] / elapsed,
        "sshd_cpu_s": cpu["sshd"],
        "sshd_percent": 100 * cpu["sshd"] / elapsed,
        "doubles_cpu_s": cpu["doubles"],
        "doubles_percent": 100 * cpu["doubles"] / elapsed,
        "other_cpu_s": other,
    }


# -- py-spy output -----------------------------------------------------------------


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Return the hottest functions (own samples) and packages (inclusive samples).

    py-spy's raw format is one line per distinct stack: frames from the
    outermost to the innermost separated by ";", then a space and a count.
    """
    own: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for package in {package_of(frame) for frame in frames}:
            packages[package] = packages.get(package, 0) + count
    hottest = sorted(own.items(), key=lambda item: -item[1])[:top]
    by_package = sorted(packages.items(), key=lambda item: -item[1])[:top]
    return {
        "samples": total,
        "own": [(frame, count / total) for frame, count in hottest],
        "packages": [(package, count / total) for package, count in by_package],
    }


def package_of(frame: str) -> str:
    """Return the top-level package of a py-spy frame "function (file:line)"."""
    location = frame.rpartition(" (")[2].rstrip(")")
    file = location.rsplit(":", 1)[0]
    return file.split("/", 1)[0].removesuffix(".py")


# -- report ------------------------------------------------------------------------

BEGIN = "<!-- metrics-poll:begin (benchmarks/metrics_poll.py --write replaces this) -->"
END = "<!-- metrics-poll:end -->"


def versions() -> str:
    """Return the commit and the versions of the packages on the measured path."""
    import importlib.metadata

    import nydus_console

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "console"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if changed:
        commit += ", with uncommitted changes under console/"
    parts = [
        f"nydus-console {nydus_console.__version__} (commit {commit})",
        command_output(["ssh", "-V"]),
        f"Python {sys.version.split()[0]}",
    ]
    # httpcore 1.0.9 imports sniffio for every lock, event and cancellation
    # shield it sets up. Without sniffio each import fails after a search of
    # sys.path, so whether it is installed changes the CPU time per request.
    for package in ("asyncssh", "httpx", "httpcore", "h11", "anyio", "sniffio"):
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    return "; ".join(parts)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Return the headline figures of a run."""
    console = results["console"]
    steady, window = console["steady"], console["window"]
    node_polls = steady["poll_check"]["node_polls"]
    growth_kib = steady["rss_kib_after"] - steady["rss_kib_before"]
    return {
        "nodes": console["n"],
        "per_node_poll_cpu_ms": 1000 * console["per_node_poll_cpu_s"],
        "single_node_poll_cpu_ms": 1000 * console["single"]["cpu_median_s"],
        "probe_round_cpu_s": console["probe_rounds"]["cpu_median_s"],
        "steady_percent_of_core": window["console_percent"],
        "target_percent": TARGET_PERCENT,
        "target_met": window["console_percent"] <= TARGET_PERCENT,
        "window_s": window["elapsed_s"],
        "rss_mib": console["memory_kib"]["VmRSS"] / 1024,
        "peak_rss_mib": console["memory_kib"]["VmHWM"] / 1024,
        "rss_growth_in_window_mib": growth_kib / 1024,
        "rss_growth_per_node_poll_kib": growth_kib / node_polls if node_polls else None,
        "clean_node_polls": [
            console["poll_check"]["clean"] + steady["poll_check"]["clean"],
            console["poll_check"]["node_polls"] + node_polls,
        ],
        "sshd_percent": window["sshd_percent"],
        "doubles_percent": window["doubles_percent"],
        "other_cpu_s": window["other_cpu_s"],
    }


def render_markdown(results: dict[str, Any]) -> str:
    console, head = results["console"], summary(results)
    steady, window, rounds = console["steady"], console["window"], console["rounds"]
    probes = console["probe_rounds"]
    settings = results["settings"]
    n, interval = head["nodes"], settings["interval"]
    met = "met" if head["target_met"] else "**not met**"
    checks = steady["poll_check"]
    capacity = (os.cpu_count() or 1) * window["elapsed_s"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results["started"]))
    lines = [
        f"### Run of {when}",
        "",
        f"Machine: {results['machine']}",
        "",
        f"Versions: {results['versions']}",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Each node: {settings['daemons']} nydusd "
        + ("double" if settings["daemons"] == 1 else "doubles")
        + "; snapshotter "
        + (
            f"metrics collected every {settings['collect_interval']} "
            f"({console['example']['snapshotter_samples']} samples kept per scrape)"
            if settings["snapshotter_metrics"]
            else "metrics endpoint off"
        )
        + ".",
        "",
        "| measure | value |",
        "|---|---|",
        f"| console CPU per node-poll: median of {rounds['count']} polls of all "
        f"{n} nodes, ÷ {n} | {head['per_node_poll_cpu_ms']:.2f} ms |",
        f"| console CPU of one poll of a single node, median of "
        f"{console['single']['count']} | {head['single_node_poll_cpu_ms']:.2f} ms |",
        f"| wall time of one poll of all {n} nodes, median | "
        f"{rounds['wall_median_s']:.2f} s |",
        f"| console CPU of one `probe_all()` round, median of "
        f"{probes['count']} | {probes['cpu_median_s']:.3f} s "
        f"({1000 * probes['cpu_median_s'] / n:.2f} ms per node) |",
        f"| **console CPU, {n} nodes, metrics every {interval:g} s and "
        f"`probe_all()` every {settings['refresh']:g} s, "
        f"{window['elapsed_s']:.0f} s window** | "
        f"**{window['console_percent']:.2f}% of one core** (target ≤ "
        f"{TARGET_PERCENT:g}%: {met}) |",
        f"| console RSS at the end (peak) | {head['rss_mib']:.0f} MiB "
        f"({head['peak_rss_mib']:.0f} MiB) |",
        f"| console RSS growth over the window | "
        f"{head['rss_growth_in_window_mib']:+.1f} MiB "
        f"({head['rss_growth_per_node_poll_kib']:.1f} KiB per node-poll) |",
        f"| node side in the window: sshd group, snapshotter and nydusd doubles | "
        f"{window['sshd_percent']:.1f}% and {window['doubles_percent']:.1f}% of "
        "one core |",
        "",
        f"Before the measurements: `probe_all(full=True)` took "
        f"{console['cold_probe']['cpu_s']:.2f} s CPU, the first metrics poll "
        f"(which opens the forwarded channels) {console['first_poll']['cpu_s']:.2f} "
        f"s. In the window: {steady['metrics']['started']} metrics polls "
        f"(median {steady['metrics']['wall_median_s']:.2f} s wall, max "
        f"{steady['metrics']['wall_max_s']:.2f} s, {steady['metrics']['skipped']} "
        f"ticks skipped) and {steady['probe']['started']} probe rounds (median "
        f"{steady['probe']['wall_median_s']:.2f} s, max "
        f"{steady['probe']['wall_max_s']:.2f} s, {steady['probe']['skipped']} "
        f"skipped). {checks['clean']} of {checks['node_polls']} node polls read "
        f"every endpoint without a problem, and {steady['probe_ok']} of "
        f"{steady['probe_reports']} probes returned facts. The console's own "
        f"`time.process_time()` counted {steady['process_time_cpu_s']:.2f} s in "
        f"the window, and /proc/PID/stat {window['console_cpu_s']:.2f} s. Other "
        f"processes on the machine used {window['other_cpu_s']:.1f} s of the "
        f"{capacity:.0f} CPU seconds the cores offered in the window.",
    ]
    return "\n".join(lines) + "\n"


def update_document(path: Path, markdown: str) -> None:
    """Replace this benchmark's results block, or append the section if absent.

    The file is read just before it is written, so that edits to other
    sections made while the benchmark ran are kept.
    """
    text = path.read_text()
    block = f"{BEGIN}\n{markdown}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{block}{tail}")
        return
    section = (
        f"\n{SECTION_TITLE}\n\n"
        "`benchmarks/metrics_poll.py` measures the CPU time the console spends "
        "polling nydusd and snapshotter metrics.\n\n"
        f"{block}\n"
    )
    path.write_text(text.rstrip("\n") + "\n" + section)


# -- main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the console's CPU time for metrics polls of N nodes, "
        "each an sshd on 127.0.0.1 with its own snapshotter and nydusd doubles."
    )

    # What runs and for how long.
    parser.add_argument("--nodes", type=int, default=50, help="node count (50)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between metrics polls (5)"
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=10.0,
        help="seconds between Fleet.probe_all() rounds, the TUI's default (10)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds of steady polling before the window (20)",
    )
    parser.add_argument(
        "--window", type=float, default=60.0, help="measured seconds (60)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=30,
        help="measured polls of every node for the per-node cost (30)",
    )
    parser.add_argument(
        "--single-polls",
        type=int,
        default=200,
        help="measured polls of one node at a time (200)",
    )
    parser.add_argument(
        "--probe-rounds",
        type=int,
        default=5,
        help="measured Fleet.probe_all() rounds for the cost of a health refresh (5)",
    )
    parser.add_argument(
        "--daemons", type=int, default=1, help="nydusd doubles per node (1)"
    )
    parser.add_argument(
        "--no-snapshotter-metrics",
        dest="snapshotter_metrics",
        action="store_false",
        help="leave [metrics] address out of the snapshotter configs",
    )
    parser.add_argument(
        "--collect-interval",
        default="10s",
        help="the snapshotters' [metrics] collect_interval, a Go duration (10s)",
    )

    # What to do with the results.
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="also sample the console process with py-spy during the window and "
        "write its raw (collapsed stack) output to FILE",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also save the raw results as JSON"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"replace or add the '{SECTION_TITLE[3:]}' results in {DOCUMENT}",
    )

    options = parser.parse_args(argv)
    if options.write and options.window < 60:
        parser.error("--write records windows of at least 60 s only")
    if options.write and options.py_spy is not None:
        parser.error("--write records runs without py-spy; drop one of them")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "metrics_poll.py needs root: it starts sshd and uses cgroups",
            file=sys.stderr,
        )
        return 1

    started = time.time()
    command = "python benchmarks/metrics_poll.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    # Read before the run, so that commits made during it do not show up.
    package_versions = versions()
    workdir = make_workdir("nc-mp-")
    try:
        log(f"starting {options.nodes} sshd instances")
        with SshdFleet(options.nodes, workdir / "sshd") as fleet:
            names = [node.name for node in fleet.nodes]
            log(f"starting {options.nodes} snapshotter doubles")
            with Snapshotters(workdir, names, options) as doubles:
                inventory = write_console_inventory(fleet, doubles, workdir)
                log("console: probing, then polling")
                console = run_console(
                    inventory,
                    workdir,
                    options,
                    {"sshd": fleet.group, "doubles": doubles.group},
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results: dict[str, Any] = {
        "started": started,
        "command": command.strip(),
        "machine": machine_description(),
        "versions": package_versions,
        "settings": {
            key: value if not isinstance(value, Path) else str(value)
            for key, value in vars(options).items()
        },
        "console": console,
    }
    if options.py_spy is not None and options.py_spy.exists():
        results["profile"] = summarize_profile(options.py_spy)
    results["summary"] = summary(results)

    log(f"finished in {time.time() - started:.0f} s")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    printed = dict(results["summary"])
    if "profile" in results:
        printed["profile"] = results["profile"]
    print(json.dumps(printed, indent=2))
    if options.write:
        update_document(DOCUMENT, render_markdown(results))
        log(f"updated {DOCUMENT}")
    return 0


def write_console_inventory(
    fleet: SshdFleet, doubles: Snapshotters, workdir: Path
) -> Path:
    """Write the inventory: one node per sshd, with its own snapshotter config."""
    assert fleet.client_key is not None
    nodes = [
        InventoryNode(
            node.name,
            "127.0.0.1",
            node.port,
            {"snapshotter_config": str(files.config)},
        )
        for node, files in zip(fleet.nodes, doubles.nodes, strict=True)
    ]
    return write_inventory(
        workdir / "inventory.toml",
        nodes,
        identity_file=fleet.client_key.private_path,
        known_hosts=fleet.known_hosts,
    )


if __name__ == "__main__":
    sys.exit(main())
