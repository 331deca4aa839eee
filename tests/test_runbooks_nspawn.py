"""Runbooks on booted Debian nodes: real systemd, sshd, containerd and cgroups.

The snapshotter is the test double, installed as the real unit. Every test
breaks nc-node2 the way a field report describes, runs the runbook through
the runner (or the command line) and checks the node afterwards. Each test
puts the node back as it found it, because the fleet is shared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from console_run import run_console
from runbook_doubles import ScriptedHooks
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import (
    CONTAINERD_CONFIG,
    GRPC_SOCKET,
    SNAPSHOTTER_CONFIG,
    SNAPSHOTTER_UNIT,
    SYSTEM_SOCKET,
    containerd_config,
    healthy_snapshotter_config,
    restart_containerd,
    restart_snapshotter,
    snapshotter_config,
    wait_until,
)

from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.findings import Status
from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.runbooks import load_runbooks, parse_runbook
from nydus_console.runbooks.report import Choice, RunReport, RunStatus, StepStatus
from nydus_console.runbooks.runner import RunbookRunner
from nydus_console.runbooks.state import StateStore

pytestmark = pytest.mark.nspawn

NODE = "nc-node2"
UNIFIED_CGROUP = "/sys/fs/cgroup/unified/system.slice/nydusd"
DROP_IN_DIR = f"/etc/systemd/system/{SNAPSHOTTER_UNIT}.d"
CONSOLE_DROP_IN = f"{DROP_IN_DIR}/90-nydus-console-kill-mode.conf"


def wait_for_sockets(node: Node) -> None:
    wait_until(
        lambda: all(
            node.exec(["test", "-S", path]).returncode == 0
            for path in (GRPC_SOCKET, SYSTEM_SOCKET)
        ),
        f"{SNAPSHOTTER_UNIT} on {node.name} did not create its sockets",
    )


@pytest.fixture
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    """nc-node2, with its configs, units and backups restored after the test."""
    node = nspawn_fleet.node(NODE)
    saved = {
        path: node.read_file(path) for path in (SNAPSHOTTER_CONFIG, CONTAINERD_CONFIG)
    }
    yield node
    changed = False
    for path, text in saved.items():
        if node.read_file(path) != text:
            node.write_file(path, text)
            changed = True
    backups = "ls /etc/nydus/*.bak /etc/containerd/*.bak 2>/dev/null | xargs -r rm -f"
    node.exec(["sh", "-c", backups])
    if changed:
        restart_containerd(node)
    if node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") != "active" or changed:
        restart_snapshotter(node)
    wait_for_sockets(node)


@pytest.fixture
async def fleet(nspawn_fleet: NspawnFleet, tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml")))
    yield fleet
    await fleet.close()


def runner_for(
    runbook_id: str,
    fleet: Fleet,
    tmp_path: Path,
    hooks: ScriptedHooks | None = None,
    **options: object,
) -> RunbookRunner:
    runbook = options.pop("runbook", None) or load_runbooks()[runbook_id]
    return RunbookRunner(
        runbook,  # type: ignore[arg-type]
        fleet.specs[NODE],
        fleet.transports[NODE],
        ActionGate(AuditLog(tmp_path / "audit.jsonl"), read_only=False),
        hooks or ScriptedHooks(confirmed_by=NODE),
        store=StateStore(tmp_path / "state"),
        probe=fleet.probers[NODE].probe,
        **options,  # type: ignore[arg-type]
    )


def statuses(report: RunReport) -> dict[str, StepStatus]:
    return {result.step: result.status for result in report.results}


async def findings_of(fleet: Fleet) -> dict[str, Status]:
    report = await fleet.probe_node(NODE, full=True)
    return {f.check: f.status for f in report.findings}


async def single_snapshotter(fleet: Fleet) -> tuple[Status, list[str]]:
    """Return the status of the one-process check and the processes it saw."""
    report = await fleet.probe_node(NODE, full=True)
    finding = next(
        f for f in report.findings if f.check == "process.single_snapshotter"
    )
    return finding.status, [line for e in finding.evidence for line in e.lines]


# -- duplicate-snapshotter -----------------------------------------------------------


def start_stray(node: Node) -> str:
    """Start a second containerd-nydus-grpc with the same config; return its PID."""
    started = node.exec(
        [
            "sh",
            "-c",
            "setsid /usr/local/bin/containerd-nydus-grpc --config "
            f"{SNAPSHOTTER_CONFIG} --daemons 0 >/dev/null 2>&1 & echo $!",
        ],
        check=True,
    )
    pid = started.stdout.strip()
    # The double names itself once Python has started.
    wait_until(
        lambda: (
            node.exec(["cat", f"/proc/{pid}/comm"]).stdout.strip() == "containerd-nydu"
        ),
        f"the stray snapshotter {pid} did not start",
    )
    return pid


def test_duplicate_snapshotter_cli(
    node: Node, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    main_pid = node.unit_property(SNAPSHOTTER_UNIT, "MainPID")
    stray = start_stray(node)
    try:
        inventory = nspawn_fleet.write_inventory(tmp_path / "inventory.toml")
        completed = run_console(
            "runbook", "run", "duplicate-snapshotter", "--inventory", str(inventory),
            "--node", NODE, "--yes", "--yes-destructive", NODE, "--json",
            home=tmp_path,
        )  # fmt: skip
    finally:
        node.exec(["sh", "-c", f"kill -KILL {stray} 2>/dev/null; true"])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (report,) = json.loads(completed.stdout)
    steps = {r["step"]: r for r in report["results"]}
    assert steps["stop-stray"]["status"] == "done"
    assert steps["stop-stray"]["command"] == f"kill -TERM {stray}"
    assert main_pid not in steps["stop-stray"]["command"].split()
    assert steps["restart"]["status"] == "done"
    assert node.exec(["test", "-e", f"/proc/{stray}"]).returncode == 1
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    logged = AuditLog(tmp_path / ".state" / "nydus-console" / "audit.jsonl").entries()
    # Verifications and the run's end are audited as events, without a command.
    audit = [entry for entry in logged if "event" not in entry]
    commands = [entry["command"] for entry in audit]
    assert f"kill -TERM {stray}" in commands
    assert f"systemctl restart {SNAPSHOTTER_UNIT}" in commands
    assert all(entry["outcome"] == "ran" for entry in audit)
    verified = [e for e in logged if e.get("event") == "verification"]
    assert {e["step"]: e["outcome"] for e in verified}["restart"] == "verified"
    assert (logged[-1]["event"], logged[-1]["outcome"]) == ("runbook run", "completed")


def test_read_only_cli_reports_refused_step(
    node: Node, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    stray = start_stray(node)
    try:
        inventory = nspawn_fleet.write_inventory(tmp_path / "inventory.toml")
        completed = run_console(
            "--read-only", "runbook", "run", "duplicate-snapshotter",
            "--inventory", str(inventory), "--node", NODE,
            "--yes", "--yes-destructive", NODE,
            home=tmp_path,
        )  # fmt: skip
        still_running = node.exec(["test", "-e", f"/proc/{stray}"]).returncode == 0
    finally:
        node.exec(["sh", "-c", f"kill -KILL {stray} 2>/dev/null; true"])
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert still_running
    assert f"[{NODE}]   refused (read-only): " in output
    assert "on failure" not in output
    assert "failed" not in output
    assert f"{NODE}: duplicate-snapshotter refused (read-only)" in output
    assert "read-only mode refused step 1, which did not run" in output
    audit = AuditLog(tmp_path / ".state" / "nydus-console" / "audit.jsonl").entries()
    assert [(e["command"], e["outcome"]) for e in audit] == [
        (f"kill -TERM {stray}", "refused")
    ]


async def test_duplicate_snapshotter_health_ok(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    stray = start_stray(node)
    try:
        # The probe may run before the stray has taken over the sockets.
        for _ in range(20):
            status, processes = await single_snapshotter(fleet)
            if status == Status.FAIL:
                break
            await asyncio.sleep(0.5)
        assert status == Status.FAIL, processes
        report = await runner_for("duplicate-snapshotter", fleet, tmp_path).run()
    finally:
        node.exec(["sh", "-c", f"kill -KILL {stray} 2>/dev/null; true"])
    assert report.status is RunStatus.COMPLETED, report.results
    after = await findings_of(fleet)
    assert after["process.single_snapshotter"] == Status.OK
    assert after["service.state"] == Status.OK
    assert after["socket.grpc"] == Status.OK


# -- leftover-cgroup -----------------------------------------------------------------


def start_leftover(node: Node) -> str:
    """Create the nydusd cgroup with a sleeping process in it; return the PID."""
    node.exec(["mkdir", "-p", UNIFIED_CGROUP], check=True)
    script = f"echo $$ > {UNIFIED_CGROUP}/cgroup.procs && exec sleep 1000"
    started = node.exec(
        ["sh", "-c", f"setsid sh -c '{script}' >/dev/null 2>&1 & echo $!"],
        check=True,
    )
    pid = started.stdout.strip()
    wait_until(
        lambda: pid in node.read_file(f"{UNIFIED_CGROUP}/cgroup.procs").split(),
        f"process {pid} did not join {UNIFIED_CGROUP}",
    )
    return pid


def remove_leftover(node: Node) -> None:
    script = (
        f"[ -d {UNIFIED_CGROUP} ] || exit 0; "
        f'for p in $(cat {UNIFIED_CGROUP}/cgroup.procs); do kill -KILL "$p"; done; '
        f"sleep 0.5; rmdir {UNIFIED_CGROUP}"
    )
    node.exec(["sh", "-c", script])


async def test_leftover_cgroup_runbook(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    pid = start_leftover(node)
    try:
        report = await runner_for("leftover-cgroup", fleet, tmp_path).run()
    finally:
        remove_leftover(node)
    assert report.status is RunStatus.COMPLETED, report.results
    steps = statuses(report)
    assert steps == {
        "stop-service": StepStatus.DONE,
        "kill-leftovers": StepStatus.DONE,
        "remove-cgroup": StepStatus.DONE,
        "reset-failed": StepStatus.NOT_NEEDED,
        "start-service": StepStatus.DONE,
    }
    kill = next(r for r in report.results if r.step == "kill-leftovers")
    assert kill.command == f"kill -KILL {pid}"
    assert node.exec(["test", "-d", UNIFIED_CGROUP]).returncode == 1
    assert node.exec(["test", "-e", f"/proc/{pid}"]).returncode == 1
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    assert (await findings_of(fleet))["cgroup.leftover"] == Status.OK


# -- root-outside-containerd ---------------------------------------------------------


async def test_root_outside_containerd_runbook(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    # The broken-root profile's roots, with a nydusd config that exists, so
    # that only the root is wrong.
    node.write_file(CONTAINERD_CONFIG, containerd_config("/data/containerd"))
    node.write_file(SNAPSHOTTER_CONFIG, snapshotter_config("/data/containerd-nydus"))
    expected = "/data/containerd/io.containerd.snapshotter.v1.nydus"
    try:
        restart_containerd(node)
        restart_snapshotter(node)
        wait_for_sockets(node)
        assert (await findings_of(fleet))["config.root_location"] == Status.FAIL
        report = await runner_for("root-outside-containerd", fleet, tmp_path).run()
        config = node.read_file(SNAPSHOTTER_CONFIG)
        after = await findings_of(fleet)
    finally:
        node.write_file(SNAPSHOTTER_CONFIG, healthy_snapshotter_config())
        node.write_file(CONTAINERD_CONFIG, containerd_config())
        restart_containerd(node)
        restart_snapshotter(node)
        node.exec(["rm", "-rf", "--", "/data"])
    assert report.status is RunStatus.COMPLETED, report.results
    steps = statuses(report)
    assert steps["set-root"] is StepStatus.DONE
    assert steps["export-root"] is StepStatus.NOT_NEEDED
    assert steps["restart-snapshotter"] is StepStatus.DONE
    assert steps["restart-containerd"] is StepStatus.NOT_NEEDED
    assert f'root = "{expected}"' in config
    assert after["config.root_location"] == Status.OK
    assert after["service.state"] == Status.OK


# -- cri-snapshotter-toggle ----------------------------------------------------------


async def test_cri_snapshotter_toggle_restarts_containerd(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    original = node.read_file(CONTAINERD_CONFIG)
    before_pid = node.unit_property("containerd.service", "MainPID")
    report = await runner_for("cri-snapshotter-toggle", fleet, tmp_path).run()
    assert report.status is RunStatus.COMPLETED, report.results
    assert [r.status for r in report.results] == [StepStatus.DONE] * 4
    assert node.read_file(CONTAINERD_CONFIG) == original
    assert node.unit_property("containerd.service", "MainPID") != before_pid
    logged = AuditLog(tmp_path / "audit.jsonl").entries()
    audit = [entry for entry in logged if "event" not in entry]
    restarts = [
        e for e in audit if e["command"] == "systemctl restart containerd.service"
    ]
    writes = [e for e in audit if e["action"].endswith(f"write {CONTAINERD_CONFIG}")]
    assert len(restarts) == 2
    assert len(writes) == 2
    key = 'plugins."io.containerd.grpc.v1.cri".containerd.snapshotter'
    assert [w["changes"] for w in writes] == [f'{key} = ""', f'{key} = "nydus"']
    assert {w["path"] for w in writes} == {CONTAINERD_CONFIG}
    findings = await findings_of(fleet)
    assert findings["containerd.cri_snapshotter"] == Status.OK
    assert findings["containerd.plugin"] == Status.OK


# -- KillMode drop-in ----------------------------------------------------------------


async def test_kill_mode_drop_in_added(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    breaking = f"{DROP_IN_DIR}/10-kill-mode.conf"
    node.write_file(breaking, "[Service]\nKillMode=control-group\n")
    node.systemctl("daemon-reload", check=True)
    try:
        assert node.unit_property(SNAPSHOTTER_UNIT, "KillMode") == "control-group"
        report = await runner_for("snapshotter-not-running", fleet, tmp_path).run()
        kill_mode = node.unit_property(SNAPSHOTTER_UNIT, "KillMode")
        drop_in = node.read_file(CONSOLE_DROP_IN)
    finally:
        node.exec(["rm", "-f", breaking, CONSOLE_DROP_IN])
        node.exec(["rmdir", DROP_IN_DIR])
        node.systemctl("daemon-reload", check=True)
    assert report.status is RunStatus.COMPLETED, report.results
    steps = statuses(report)
    assert steps["kill-mode"] is StepStatus.DONE
    assert steps["daemon-reload"] is StepStatus.DONE
    assert steps["restart"] is StepStatus.NOT_NEEDED
    assert kill_mode == "process"
    assert "KillMode=process" in drop_in
    assert node.unit_property(SNAPSHOTTER_UNIT, "KillMode") == "process"


# -- dry run, abort, resume ----------------------------------------------------------


async def test_dry_run_changes_nothing_on_node(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    node.systemctl("stop", SNAPSHOTTER_UNIT, check=True)
    calls: list[tuple[str, ...]] = []
    transport = fleet.transports[NODE]
    real_run = transport.run

    async def recording_run(argv: list[str], **options: object) -> object:
        calls.append(tuple(argv))
        return await real_run(argv, **options)  # type: ignore[arg-type]

    transport.run = recording_run  # type: ignore[method-assign]
    hooks = ScriptedHooks(confirmed_by=NODE)
    report = await runner_for(
        "snapshotter-not-running", fleet, tmp_path, hooks, dry_run=True
    ).run()
    assert report.status is RunStatus.COMPLETED
    assert statuses(report)["restart"] is StepStatus.DRY_RUN
    assert hooks.confirmed == []
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "inactive"
    assert AuditLog(tmp_path / "audit.jsonl").entries() == []
    programs = {argv[2] if argv[:2] == ("sh", "-c") else argv[0] for argv in calls}
    assert ("systemctl", "restart", SNAPSHOTTER_UNIT) not in calls
    assert "kill" not in programs
    assert not (tmp_path / "state").exists()


async def test_abort_midway_and_resume(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    pid = start_leftover(node)
    try:
        hooks = ScriptedHooks([Choice.RUN, Choice.ABORT], confirmed_by=NODE)
        aborted = await runner_for("leftover-cgroup", fleet, tmp_path, hooks).run()
        stopped_state = node.unit_property(SNAPSHOTTER_UNIT, "ActiveState")
        leftover_alive = node.exec(["test", "-e", f"/proc/{pid}"]).returncode == 0
        resumed = await runner_for("leftover-cgroup", fleet, tmp_path).run()
    finally:
        remove_leftover(node)
    assert aborted.status is RunStatus.ABORTED
    assert aborted.stopped_at == 2
    assert [r.step for r in aborted.ran()] == ["stop-service"]
    assert stopped_state == "inactive"
    assert leftover_alive
    assert resumed.status is RunStatus.COMPLETED, resumed.results
    assert resumed.resumed_at == 2
    assert statuses(resumed)["kill-leftovers"] is StepStatus.DONE
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    assert not StateStore(tmp_path / "state").path("leftover-cgroup", NODE).exists()


REBOOT_RUNBOOK = """\
id = "reboot-test"
title = "Touch a marker, reboot, touch another"
applies = "tests: the reboot is simulated by stopping and starting sshd"

[[step]]
id = "before"
title = "Touch the first marker"
why = "shows the step before the reboot ran once"
on_failure = "none"
action = ["touch", "/run/reboot-test-before"]

[[step]]
id = "reboot"
title = "Reboot"
why = "the test stops sshd when the runner starts waiting"
on_failure = "none"
reboot = true
destructive = true
action = ["true"]
reboot_timeout = 120

[[step]]
id = "after"
title = "Touch the second marker"
why = "shows the run continued after the node came back"
on_failure = "none"
action = ["touch", "/run/reboot-test-after"]
"""


class SshdStopper(ScriptedHooks):
    """Stops the node's sshd, dropping every connection, when the wait begins."""

    def __init__(self, node: Node) -> None:
        super().__init__(confirmed_by=NODE)
        self.node = node

    def note(self, node: str, text: str) -> None:
        super().note(node, text)
        if text.startswith("waiting up to"):
            self.node.kill_sshd()


async def test_reboot_resumes_after_interruption(
    node: Node, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    runbook = parse_runbook("reboot-test.toml", REBOOT_RUNBOOK)
    store = StateStore(tmp_path / "state")
    state_file = store.path(runbook.id, NODE)
    markers = ["/run/reboot-test-before", "/run/reboot-test-after"]

    first = Fleet(load_inventory(nspawn_fleet.write_inventory(tmp_path / "a.toml")))
    try:
        hooks = SshdStopper(node)
        task = asyncio.create_task(
            runner_for(runbook.id, first, tmp_path, hooks, runbook=runbook).run()
        )
        # The console is interrupted while the node is down.
        await wait_for_down_seen(state_file, task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        node.start_sshd()
        await first.close()
    assert "the node is down" in hooks.notes

    second = Fleet(load_inventory(nspawn_fleet.write_inventory(tmp_path / "b.toml")))
    try:
        report = await runner_for(
            runbook.id, second, tmp_path, ScriptedHooks(confirmed_by=NODE),
            runbook=runbook,
        ).run()  # fmt: skip
        created = [node.exec(["test", "-e", m]).returncode == 0 for m in markers]
    finally:
        node.exec(["rm", "-f", *markers])
        await second.close()

    assert report.status is RunStatus.COMPLETED, report.results
    assert report.resumed_at == 2
    assert statuses(report) == {
        "before": StepStatus.DONE,
        "reboot": StepStatus.DONE,
        "after": StepStatus.DONE,
    }
    assert created == [True, True]
    assert not state_file.exists()


async def wait_for_down_seen(state_file: Path, task: asyncio.Task[RunReport]) -> None:
    for _ in range(600):
        if task.done():
            raise AssertionError(f"the run ended early: {task.result()}")
        if state_file.exists():
            reboot = json.loads(state_file.read_text()).get("reboot")
            if reboot and reboot["down_seen"]:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the runner never saw the node down")
