"""Markdown tables for benchmarks/run.py and the results section of its document."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BEGIN = "<!-- results:begin (benchmarks/run.py --write replaces this section) -->"
END = "<!-- results:end -->"

FANOUT_ROWS = [
    ("ansible_shell", "Ansible `-m shell`, cold"),
    ("ansible_raw", "Ansible `-m raw`, cold"),
    ("pssh", "pssh, default kex"),
    ("floor_cold_reference", "bare asyncssh cold, whole process, reference probe"),
    ("floor_cold_console", "bare asyncssh cold, whole process, console probe"),
    ("doctor", "**`nydus-console doctor --json`**, cold, whole process"),
    ("ansible_shell_warm", "Ansible `-m shell`, warm ControlPersist masters"),
    ("floor_warm_reference", "bare asyncssh warm round, reference probe"),
    ("floor_warm_console", "bare asyncssh warm round, console full probe"),
    ("floor_warm_refresh", "bare asyncssh warm round, console refresh probe"),
    ("console_refresh", "**console `Fleet.probe_all()` refresh**, pooled"),
]

NODE_CPU_ROWS = [
    ("floor_cold_reference", "reference probe, cold (bare asyncssh)"),
    ("floor_cold_console", "console probe, cold (bare asyncssh)"),
    ("doctor", "console `doctor`, cold (everything it sends)"),
    ("floor_warm_reference", "reference probe, warm round (bare asyncssh)"),
    ("floor_warm_console", "console full probe, warm round (bare asyncssh)"),
    ("floor_warm_refresh", "console refresh probe, warm round (bare asyncssh)"),
    ("console_refresh", "console refresh (everything it sends)"),
]


@dataclass(frozen=True)
class Target:
    """One goal: console case and measure, anchor case and measure, and a limit."""

    label: str
    case: str
    measure: str
    anchor_case: str
    anchor_measure: str
    limit: float


TARGETS = [
    Target(
        "cold wall ≤ 1.2× bare asyncssh cold (console probe)",
        "doctor",
        "wall_s",
        "floor_cold_console",
        "wall_s",
        1.2,
    ),
    Target(
        "cold client CPU ≤ 0.05× Ansible `-m shell`",
        "doctor",
        "client_cpu_s",
        "ansible_shell",
        "client_cpu_s",
        0.05,
    ),
    Target(
        "cold client CPU ≤ 0.15× pssh (default kex)",
        "doctor",
        "client_cpu_s",
        "pssh",
        "client_cpu_s",
        0.15,
    ),
    Target(
        "refresh wall ≤ 1.5× bare asyncssh warm round (console refresh probe)",
        "console_refresh",
        "wall_s",
        "floor_warm_refresh",
        "wall_s",
        1.5,
    ),
    Target(
        "refresh wall ≤ 0.1× Ansible `-m shell` with warm masters",
        "console_refresh",
        "wall_s",
        "ansible_shell_warm",
        "wall_s",
        0.1,
    ),
    Target(
        "node CPU per probe, cold: `doctor` ≤ 0.5× reference probe",
        "doctor",
        "node_cpu_s",
        "floor_cold_reference",
        "node_cpu_s",
        0.5,
    ),
    Target(
        "node CPU per probe, refresh ≤ 0.5× reference probe (warm)",
        "console_refresh",
        "node_cpu_s",
        "floor_warm_reference",
        "node_cpu_s",
        0.5,
    ),
]


def command_output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as error:
        return f"unavailable ({error})"
    return (result.stdout or result.stderr).strip().splitlines()[0]


def machine_description() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    debian = Path("/etc/debian_version").read_text().strip()
    return (
        f"Debian {debian}, kernel {platform.release()}, {os.cpu_count()} vCPU "
        f"({cpu}), {memory_kib / 2**20:.0f} GiB RAM. The client and every node "
        "share these cores."
    )


def versions(ansible: Path | None) -> str:
    import asyncssh
    import cryptography
    import textual

    import nydus_console

    commit = command_output(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"]
    )
    parts = [
        f"nydus-console {nydus_console.__version__} (commit {commit})",
        command_output(["ssh", "-V"]),
        f"pssh {command_output(['parallel-ssh', '--version'])}",
        command_output([str(ansible), "--version"]) if ansible else "Ansible absent",
        command_output(["tmux", "-V"]),
        f"Python {platform.python_version()}",
        f"asyncssh {asyncssh.__version__}",
        f"cryptography {cryptography.__version__}",
        f"textual {textual.__version__}",
    ]
    return "; ".join(parts)


def cell(summary: dict | None) -> str:
    if summary is None:
        return "–"
    text = (
        f"{summary['wall_s']:.2f} / {summary['client_cpu_s']:.3f} "
        f"[{summary['node_cpu_s']:.2f}]"
    )
    if summary["ok"] < summary["n"]:
        text += f" (ok {summary['ok']}/{summary['n']})"
    return text


def ratio_row(target: Target, n: str, cases: dict[str, dict]) -> str | None:
    case, anchor = cases.get(target.case), cases.get(target.anchor_case)
    if case is None or anchor is None:
        return None
    value = case[target.measure]
    reference = anchor[target.anchor_measure]
    ratio = value / reference if reference else float("inf")
    met = "yes" if ratio <= target.limit else "**no**"
    unit = "s"
    if target.measure == "node_cpu_s":
        value, reference, unit = (
            1000 * value / case["n"],
            1000 * reference / anchor["n"],
            "ms/node",
        )
    return (
        f"| {target.label} | {n} | {value:.3f} {unit} | {reference:.3f} {unit} | "
        f"{ratio:.3f}× | {target.limit}× | {met} |"
    )


def render_markdown(results: dict, ansible: Path | None) -> str:
    fanout: dict[str, dict[str, dict]] = results.get("fanout", {})
    counts = list(fanout)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results["started"]))
    mode = "quick run" if results.get("quick") else "full run"
    lines = [
        f"### Run of {started} ({mode}, {results.get('seconds', 0):.0f} s)",
        "",
        f"Machine: {machine_description()}",
        "",
        f"Versions: {versions(ansible)}.",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        "#### Fan-out: median wall s / client CPU s [node CPU s]",
        "",
        "| case | " + " | ".join(f"N={n}" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for key, label in FANOUT_ROWS:
        cells = [cell(fanout[n].get(key)) for n in counts]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Repetitions: "
        + ", ".join(
            f"{key} {fanout[counts[0]][key]['reps']}"
            for key, _ in FANOUT_ROWS
            if counts and key in fanout[counts[0]]
        )
        + ". Warm rows and the console refresh are medians of rounds after one "
        "unmeasured priming round (the console's priming round is its cold "
        "`probe_all(full=True)`). Their client CPU is the process's own "
        "`time.process_time()` for the round.",
        "",
        "Other CPU (machine busy time minus the client and node groups, max per "
        "cold case): "
        + "; ".join(
            f"N={n}: "
            + ", ".join(
                f"{key} {summary['other_cpu_s']:.1f} s"
                for key, summary in fanout[n].items()
                if "other_cpu_s" in summary
            )
            for n in counts
        )
        + ".",
        "",
        "#### Node CPU per probe, ms per node (cpuacct of the sshd group ÷ N)",
        "",
        "| probe | " + " | ".join(f"N={n}" for n in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for key, label in NODE_CPU_ROWS:
        cells = [
            f"{1000 * fanout[n][key]['node_cpu_s'] / fanout[n][key]['n']:.1f}"
            if key in fanout[n]
            else "–"
            for n in counts
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += render_console_details(fanout, counts)
    lines += render_targets(results, fanout, counts)
    return "\n".join(lines) + "\n"


def render_console_details(
    fanout: dict[str, dict[str, dict]], counts: list[str]
) -> list[str]:
    lines = ["", "Console refresh details:", ""]
    for n in counts:
        refresh = fanout[n].get("console_refresh")
        if refresh is None:
            continue
        cold = refresh.get("cold", {})
        walls = ", ".join(f"{w:.2f}" for w in refresh["walls"])
        lines.append(
            f"- N={n}: in-process cold `probe_all(full=True)` "
            f"{cold.get('wall_s', 0):.2f} s wall, {cold.get('cpu_s', 0):.3f} s CPU; "
            f"refresh rounds {walls} s; "
            f"probes by round trips {refresh.get('round_trips')}; "
            f"errors {refresh.get('errors') or 'none'}; "
            f"PID hints {hints_text(refresh.get('refresh_hints'))}."
        )
    return lines


def hints_text(hints: dict | None) -> str:
    """Describe the PID hints the refresh probe sent and what they made it skip."""
    if not hints:
        return "not recorded"
    text = f"containerd {hints['containerd']}, snapshotter {hints['snapshotter']}"
    return text + (
        " (0 means not running; a refresh runs `systemctl`, `ctr` and the "
        "`--version` calls only when a hinted process is gone or, for 0, one "
        "has started)"
    )


def render_targets(
    results: dict, fanout: dict[str, dict[str, dict]], counts: list[str]
) -> list[str]:
    lines = [
        "",
        "#### Targets",
        "",
        "| target | N | console | anchor | ratio | limit | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        for n in counts:
            row = ratio_row(target, n, fanout[n])
            if row is not None:
                lines.append(row)
    frame = results.get("first_frame")
    if frame:
        console, minimal = frame["console"]["median_s"], frame["minimal"]["median_s"]
        ratio = console / minimal
        lines.append(
            f"| first frame ≤ 1.3× minimal Textual app | – | {console:.3f} s | "
            f"{minimal:.3f} s | {ratio:.3f}× | 1.3× | "
            f"{'yes' if ratio <= 1.3 else '**no**'} |"
        )
    idle = results.get("idle")
    if idle:
        percent = idle["console_percent"]
        lines.append(
            f"| idle CPU ≤ 5% of one core, refresh every 5 s | {idle['n']} | "
            f"{percent:.2f}% | – | – | 5% | {'yes' if percent <= 5 else '**no**'} |"
        )
    if frame:
        lines += [
            "",
            "First frame samples (s): console "
            + ", ".join(f"{v:.3f}" for v in frame["console"]["samples"])
            + "; minimal app "
            + ", ".join(f"{v:.3f}" for v in frame["minimal"]["samples"])
            + ".",
        ]
    if idle:
        lines += [
            "",
            f"Idle, {idle['n']} nodes, `--refresh 5`, measured from "
            f"{idle['warmup_s']:.0f} s after launch for {idle['window_s']:.1f} s: "
            f"console process {idle['console_cpu_s']:.2f} s CPU "
            f"({idle['console_percent']:.2f}% of one core; "
            f"{idle['startup_cpu_s']:.2f} s CPU before the window); node side "
            f"{idle['node_cpu_s']:.2f} s ({idle['node_percent']:.1f}% of one core); "
            f"other CPU {idle['other_cpu_s']:.1f} s. Status line at the end: "
            f"`{idle['status_line']}`.",
        ]
    return lines


def update_document(path: Path, markdown: str) -> None:
    """Replace the text between BEGIN and END in path with markdown."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no results markers; add {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{markdown}{END}{tail}")
