"""Recovery runbooks run for real on a booted node that has their condition.

Each test breaks nc-node2 the way the runbook's `applies` text describes,
checks that the health checks see the problem, dry-runs the runbook and
proves that the dry run changed nothing (no action reached the node, the
audit log is empty, the units and files are as before), then runs it and
ends with the health checks passing and the units restarted by the node's
own systemd. Manual steps are done by the test in the operator's place,
with the files and commands the step's text names. One test aborts a run
between two steps and resumes it; one reboots the node within a run, with
sshd killed and started again in place of the reboot. Each test puts the
node back as it found it, because the fleet is shared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from runbook_doubles import ScriptedHooks
from test_runbooks_nspawn import (
    REBOOT_RUNBOOK,
    findings_of,
    runner_for,
    statuses,
    wait_for_sockets,
)
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import (
    CONTAINERD_CONFIG,
    DEFAULT_SNAPSHOTTER_ROOT,
    MISSING_NYDUSD_CONFIG,
    NYDUSD_CONFIG,
    SNAPSHOTTER_CONFIG,
    SNAPSHOTTER_UNIT,
    containerd_config,
    nydusd_config_json,
    restart_containerd,
    restart_snapshotter,
    snapshotter_config,
    wait_until,
)

from nydus_console.audit import AuditLog
from nydus_console.findings import Status
from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.runbooks import parse_runbook
from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunReport,
    RunStatus,
    StepStatus,
)
from nydus_console.runbooks.state import StateStore

pytestmark = pytest.mark.nspawn

NODE = "nc-node2"
CONTAINERD_UNIT = "containerd.service"
DROP_IN_DIR = f"/etc/systemd/system/{SNAPSHOTTER_UNIT}.d"
START_LIMIT_DROP_IN = f"{DROP_IN_DIR}/50-test-start-limit.conf"
SOCKET_DIR = f"{DEFAULT_SNAPSHOTTER_ROOT}/socket"
LOG_DIR = f"{DEFAULT_SNAPSHOTTER_ROOT}/logs"
# The statuses a runbook's `needed_if = "fail"` acts on.
FAILING = (Status.WARN, Status.FAIL)
# Programs, ctr verbs and systemctl verbs that change a node; a dry run calls none.
CHANGING_PROGRAMS = {"kill", "rm", "rmdir", "mkdir", "mv", "cp", "tee", "touch"}
CHANGING_CTR_VERBS = {"rm", "pull", "import", "delete", "remove", "prepare", "commit"}
CHANGING_VERBS = {
    "start", "stop", "restart", "reload", "reset-failed", "daemon-reload",
    "enable", "disable", "kill",
}  # fmt: skip


@pytest.fixture
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    """nc-node2, with its configs, units and the services' states put back."""
    node = nspawn_fleet.node(NODE)
    saved = {
        path: node.read_file(path) for path in (SNAPSHOTTER_CONFIG, CONTAINERD_CONFIG)
    }
    yield node
    node.exec(["rm", "-f", START_LIMIT_DROP_IN, MISSING_NYDUSD_CONFIG])
    node.exec(["rmdir", "--ignore-fail-on-non-empty", DROP_IN_DIR])
    node.systemctl("daemon-reload", check=True)
    for path, text in saved.items():
        if node.read_file(path) != text:
            node.write_file(path, text)
    backups = "ls /etc/nydus/*.bak /etc/containerd/*.bak 2>/dev/null | xargs -r rm -f"
    node.exec(["sh", "-c", backups])
    restart_snapshotter(node)
    wait_for_sockets(node)
    restart_containerd(node)


@pytest.fixture
async def fleet(nspawn_fleet: NspawnFleet, tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet(load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml")))
    yield fleet
    await fleet.close()


# -- helpers -------------------------------------------------------------------------


@dataclass
class NodeSnapshot:
    """What a dry run must leave as it was: unit states, PIDs and files."""

    units: dict[str, tuple[str, str]]
    files: dict[str, str]

    @classmethod
    def take(cls, node: Node, paths: tuple[str, ...]) -> NodeSnapshot:
        units = {
            unit: (
                node.unit_property(unit, "ActiveState"),
                node.unit_property(unit, "MainPID"),
            )
            for unit in (SNAPSHOTTER_UNIT, CONTAINERD_UNIT)
        }
        files = {path: node.exec(["cat", "--", path]).stdout for path in paths}
        return cls(units, files)


def changes_node(argv: tuple[str, ...]) -> bool:
    if argv[:1] == ("systemctl",):
        verbs = [word for word in argv[1:] if not word.startswith("-")]
        return bool(verbs) and verbs[0] in CHANGING_VERBS
    if argv[:2] == ("sh", "-c"):
        return "write-file" in argv or "restart" in argv[3:4]
    if argv[:1] == ("ctr",):
        return bool(CHANGING_CTR_VERBS.intersection(argv))
    return argv[0] in CHANGING_PROGRAMS


async def dry_run_changes_nothing(
    runbook_id: str,
    node: Node,
    fleet: Fleet,
    tmp_path: Path,
    watched: tuple[str, ...] = (SNAPSHOTTER_CONFIG, CONTAINERD_CONFIG),
) -> RunReport:
    """Dry-run the runbook; assert that it ran no action and changed nothing."""
    before = NodeSnapshot.take(node, watched)
    calls: list[tuple[str, ...]] = []
    transport = fleet.transports[NODE]
    real_run = transport.run

    async def recording_run(argv: list[str], **options: object) -> object:
        calls.append(tuple(argv))
        return await real_run(argv, **options)  # type: ignore[arg-type]

    transport.run = recording_run  # type: ignore[method-assign]
    hooks = ScriptedHooks(confirmed_by=NODE)
    dry = tmp_path / "dry"
    try:
        report = await runner_for(runbook_id, fleet, dry, hooks, dry_run=True).run()
    finally:
        transport.run = real_run  # type: ignore[method-assign]
    assert report.status is RunStatus.COMPLETED, [r.detail for r in report.results]
    assert hooks.confirmed == []
    assert [c for c in calls if changes_node(c)] == []
    assert not (dry / "audit.jsonl").exists()
    assert not (dry / "state").exists()
    assert NodeSnapshot.take(node, watched) == before
    return report


def dry_run_steps(report: RunReport) -> list[str]:
    return [r.step for r in report.results if r.status is StepStatus.DRY_RUN]


def audited(tmp_path: Path) -> list[str]:
    """Return the commands of the audited actions, without verifications and ends."""
    entries = AuditLog(tmp_path / "audit.jsonl").entries()
    return [entry["command"] for entry in entries if "event" not in entry]


class Operator(ScriptedHooks):
    """Confirms every step and does the manual ones with the given functions."""

    def __init__(self, manual: dict[str, Callable[[], None]] | None = None) -> None:
        super().__init__(confirmed_by=NODE)
        self.manual = manual or {}
        self.done_by_hand: list[str] = []

    async def confirm(self, node: str, planned: PlannedStep) -> Decision:
        if planned.step.kind == "manual":
            action = self.manual.get(planned.step.id)
            if action is not None:
                await asyncio.to_thread(action)
            self.done_by_hand.append(planned.step.id)
        return await super().confirm(node, planned)


# -- snapshotter-not-running ---------------------------------------------------------


async def test_snapshotter_not_running_stopped_unit(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    node.systemctl("stop", SNAPSHOTTER_UNIT, check=True)
    before = await findings_of(fleet)
    assert before["service.state"] == Status.FAIL
    assert before["socket.grpc"] == Status.FAIL

    dry = await dry_run_changes_nothing(
        "snapshotter-not-running", node, fleet, tmp_path
    )
    assert dry_run_steps(dry) == ["restart"]

    report = await runner_for("snapshotter-not-running", fleet, tmp_path).run()
    assert report.status is RunStatus.COMPLETED, [r.detail for r in report.results]
    assert statuses(report) == {
        "stop-stray": StepStatus.NOT_NEEDED,
        "drop-in-directory": StepStatus.NOT_NEEDED,
        "kill-mode": StepStatus.NOT_NEEDED,
        "daemon-reload": StepStatus.NOT_NEEDED,
        "reset-failed": StepStatus.NOT_NEEDED,
        "restart": StepStatus.DONE,
    }
    assert audited(tmp_path) == [f"systemctl restart {SNAPSHOTTER_UNIT}"]
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    assert node.unit_property(SNAPSHOTTER_UNIT, "MainPID") != "0"
    after = await findings_of(fleet)
    assert after["service.state"] == Status.OK
    assert after["socket.grpc"] == Status.OK
    assert after["containerd.plugin"] == Status.OK


# -- bad-config ----------------------------------------------------------------------


def break_config(node: Node) -> None:
    """An invalid recover_policy and a nydusd config file that does not exist.

    A drop-in with a wide start limit makes the restart loop end in the
    failed state on a machine of any speed, as in the broken-root profile.
    """
    node.write_file(
        START_LIMIT_DROP_IN, "[Unit]\nStartLimitIntervalSec=300\nStartLimitBurst=3\n"
    )
    node.systemctl("daemon-reload", check=True)
    broken = snapshotter_config(nydusd_config=MISSING_NYDUSD_CONFIG).replace(
        'recover_policy = "restart"', 'recover_policy = "sometimes"'
    )
    node.write_file(SNAPSHOTTER_CONFIG, broken)
    restart_snapshotter(node)
    wait_until(
        lambda: node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "failed",
        f"{SNAPSHOTTER_UNIT} on {node.name} did not reach the failed state",
        timeout=90.0,
    )


async def test_bad_config_failed_unit(node: Node, fleet: Fleet, tmp_path: Path) -> None:
    break_config(node)
    journal = node.exec(["journalctl", "-u", SNAPSHOTTER_UNIT, "-n", "30"]).stdout
    assert "invalid recover policy" in journal
    before = await findings_of(fleet)
    assert before["config.recover_policy"] == Status.FAIL
    assert before["config.nydusd_config"] == Status.FAIL
    assert before["service.state"] == Status.FAIL

    dry = await dry_run_changes_nothing(
        "bad-config", node, fleet, tmp_path, (SNAPSHOTTER_CONFIG, NYDUSD_CONFIG)
    )
    assert dry_run_steps(dry) == [
        "fix-config",
        "nydusd-config",
        "reset-failed",
        "restart",
    ]

    # What the operator does: correct the key the check names, then install
    # the nydusd config at the path config.toml names.
    fixed = snapshotter_config(nydusd_config=MISSING_NYDUSD_CONFIG)
    operator = Operator(
        manual={
            "fix-config": lambda: node.write_file(SNAPSHOTTER_CONFIG, fixed),
            "nydusd-config": lambda: node.write_file(
                MISSING_NYDUSD_CONFIG, nydusd_config_json()
            ),
        }
    )
    report = await runner_for("bad-config", fleet, tmp_path, operator).run()
    assert report.status is RunStatus.COMPLETED, [r.detail for r in report.results]
    assert statuses(report) == {
        "fix-config": StepStatus.DONE,
        "nydusd-config": StepStatus.DONE,
        "create-mirrors-dir": StepStatus.NOT_NEEDED,
        "create-root": StepStatus.NOT_NEEDED,
        "reset-failed": StepStatus.DONE,
        "restart": StepStatus.DONE,
    }
    assert operator.done_by_hand == ["fix-config", "nydusd-config"]
    assert audited(tmp_path) == [
        f"systemctl reset-failed {SNAPSHOTTER_UNIT}",
        f"systemctl restart {SNAPSHOTTER_UNIT}",
    ]
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    after = await findings_of(fleet)
    for check in ("config.recover_policy", "config.nydusd_config", "service.state"):
        assert after[check] == Status.OK, check
    assert after["socket.grpc"] == Status.OK


# -- daemon-socket-missing -----------------------------------------------------------


def api_sockets(node: Node) -> list[str]:
    listing = node.exec(["sh", "-c", f"ls {SOCKET_DIR}/*/api.sock 2>/dev/null"])
    return listing.stdout.split()


def nydusd_pid(node: Node, daemon_id: str) -> str:
    """Return the PID of the nydusd started with `--id daemon_id`."""
    found = node.exec(["pgrep", "-f", f"nydusd.* --id {daemon_id} "], check=True)
    (pid,) = found.stdout.split()
    return pid


def kill_daemon(node: Node) -> tuple[str, str]:
    """Kill the service's nydusd; with recover_policy none it stays dead.

    Return the dead daemon's id and its API socket, which stays behind.
    """
    config = snapshotter_config().replace(
        'recover_policy = "restart"', 'recover_policy = "none"'
    )
    node.write_file(SNAPSHOTTER_CONFIG, config)
    restart_snapshotter(node)
    wait_for_sockets(node)
    wait_until(lambda: bool(api_sockets(node)), "the snapshotter started no nydusd")
    socket = api_sockets(node)[0]
    daemon_id = socket.split("/")[-2]
    node.exec(["kill", "-KILL", nydusd_pid(node, daemon_id)], check=True)
    # The snapshotter logs the death once its monitor notices it.
    wait_until(
        lambda: (
            f"Daemon {daemon_id} died"
            in node.read_file(f"{LOG_DIR}/nydus-snapshotter.log")
        ),
        f"the snapshotter did not notice that nydusd {daemon_id} died",
    )
    return daemon_id, socket


async def test_daemon_socket_missing_dead_daemon(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    daemon_id, dead_socket = kill_daemon(node)
    assert node.exec(["test", "-S", dead_socket]).returncode == 0
    before = await findings_of(fleet)
    assert before["nydusd.daemons"] in FAILING
    assert before["service.state"] == Status.OK
    main_pid = node.unit_property(SNAPSHOTTER_UNIT, "MainPID")

    dry = await dry_run_changes_nothing("daemon-socket-missing", node, fleet, tmp_path)
    assert dry_run_steps(dry) == ["read-daemon-log", "restart", "recreate-pods"]

    logs: list[str] = []
    operator = Operator(
        manual={
            "read-daemon-log": lambda: logs.append(
                node.read_file(f"{LOG_DIR}/{daemon_id}/nydusd.log")
            )
        }
    )
    report = await runner_for("daemon-socket-missing", fleet, tmp_path, operator).run()
    assert report.status is RunStatus.COMPLETED, [r.detail for r in report.results]
    assert statuses(report) == {
        "stop-stray": StepStatus.NOT_NEEDED,
        "read-daemon-log": StepStatus.DONE,
        "reset-failed": StepStatus.NOT_NEEDED,
        "restart": StepStatus.DONE,
        "recreate-pods": StepStatus.DONE,
    }
    assert operator.done_by_hand == ["read-daemon-log", "recreate-pods"]
    assert logs and logs[0].strip(), "the dead daemon left no log to read"
    assert audited(tmp_path) == [f"systemctl restart {SNAPSHOTTER_UNIT}"]
    assert node.unit_property(SNAPSHOTTER_UNIT, "MainPID") != main_pid
    # The restarted snapshotter removed the dead socket and started a daemon.
    assert node.exec(["test", "-e", dead_socket]).returncode == 1
    assert api_sockets(node) and dead_socket not in api_sockets(node)
    after = await findings_of(fleet)
    assert after["nydusd.daemons"] == Status.OK
    assert after["service.state"] == Status.OK


# -- bypassed-snapshotter ------------------------------------------------------------


BYPASS_CHECKS = (
    "containerd.proxy_plugin",
    "containerd.cri_snapshotter",
    "containerd.snapshot_annotations",
)


def bypass_nydus(node: Node) -> None:
    """Take nydus out of containerd's path and stop the snapshotter.

    containerd gets no proxy plugin, CRI pulls with overlayfs and passes no
    snapshot annotations, so every pull of a nydus image bypasses nydus.
    """
    config = containerd_config(nydus=False).replace(
        "disable_snapshot_annotations = false", "disable_snapshot_annotations = true"
    )
    node.write_file(CONTAINERD_CONFIG, config)
    restart_containerd(node)
    node.systemctl("stop", SNAPSHOTTER_UNIT, check=True)


async def test_bypassed_snapshotter_without_nydus(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    bypass_nydus(node)
    before = await findings_of(fleet)
    for check in BYPASS_CHECKS:
        assert before[check] in FAILING, check
    assert before["service.state"] in FAILING
    containerd_pid = node.unit_property(CONTAINERD_UNIT, "MainPID")

    dry = await dry_run_changes_nothing("bypassed-snapshotter", node, fleet, tmp_path)
    assert dry_run_steps(dry) == [
        "start-snapshotter", "proxy-plugin", "cri-snapshotter",
        # Planned against the file as it is: the run does it in cri-snapshotter.
        "snapshot-annotations",
        "restart-containerd",
    ]  # fmt: skip

    report = await runner_for("bypassed-snapshotter", fleet, tmp_path).run()
    assert report.status is RunStatus.COMPLETED, [r.detail for r in report.results]
    assert statuses(report) == {
        "reset-failed": StepStatus.NOT_NEEDED,
        "start-snapshotter": StepStatus.DONE,
        "proxy-plugin": StepStatus.DONE,
        "cri-snapshotter": StepStatus.DONE,
        # The cri-snapshotter edit turns the annotations on.
        "snapshot-annotations": StepStatus.NOT_NEEDED,
        "restart-containerd": StepStatus.DONE,
        # Without an image parameter there is nothing to pull again.
        "remove-image": StepStatus.NOT_NEEDED,
        "pull-again": StepStatus.NOT_NEEDED,
    }
    commands = audited(tmp_path)
    assert commands[0] == f"systemctl restart {SNAPSHOTTER_UNIT}"
    assert commands[-1] == f"systemctl restart {CONTAINERD_UNIT}"
    config = node.read_file(CONTAINERD_CONFIG)
    assert "[proxy_plugins.nydus]" in config
    assert node.unit_property(CONTAINERD_UNIT, "MainPID") != containerd_pid
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    after = await findings_of(fleet)
    for check in ("containerd.plugin", *BYPASS_CHECKS, "service.state", "socket.grpc"):
        assert after[check] == Status.OK, check


async def test_bypassed_snapshotter_abort_and_resume(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    bypass_nydus(node)
    bypassed = node.read_file(CONTAINERD_CONFIG)
    containerd_pid = node.unit_property(CONTAINERD_UNIT, "MainPID")
    # Run start-snapshotter and proxy-plugin, abort before cri-snapshotter.
    hooks = ScriptedHooks([Choice.RUN, Choice.RUN, Choice.ABORT], confirmed_by=NODE)
    aborted = await runner_for("bypassed-snapshotter", fleet, tmp_path, hooks).run()
    assert aborted.status is RunStatus.ABORTED, aborted.results
    assert aborted.stopped_at == 4
    assert [r.step for r in aborted.ran()] == ["start-snapshotter", "proxy-plugin"]

    # The one edit is complete, with a backup of the file before it, and
    # containerd still runs with the config it started with.
    edited = node.read_file(CONTAINERD_CONFIG)
    assert "[proxy_plugins.nydus]" in edited
    assert 'snapshotter = "overlayfs"' in edited
    backups = node.exec(["sh", "-c", f"ls {CONTAINERD_CONFIG}.*.bak"]).stdout.split()
    assert [node.read_file(path) for path in backups] == [bypassed]
    assert node.unit_property(CONTAINERD_UNIT, "MainPID") == containerd_pid
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    state_file = StateStore(tmp_path / "state").path("bypassed-snapshotter", NODE)
    saved = json.loads(state_file.read_text())
    assert saved["next_index"] == 3
    assert saved["ran"] == ["start-snapshotter", "proxy-plugin"]

    resumed = await runner_for("bypassed-snapshotter", fleet, tmp_path).run()
    assert resumed.status is RunStatus.COMPLETED, resumed.results
    assert resumed.resumed_at == 4
    steps = statuses(resumed)
    assert steps["cri-snapshotter"] is StepStatus.DONE
    assert steps["snapshot-annotations"] is StepStatus.NOT_NEEDED
    # The restart follows the edit made before the abort, too.
    assert steps["restart-containerd"] is StepStatus.DONE
    assert node.unit_property(CONTAINERD_UNIT, "MainPID") != containerd_pid
    assert not state_file.exists()
    after = await findings_of(fleet)
    for check in ("containerd.plugin", *BYPASS_CHECKS):
        assert after[check] == Status.OK, check


# -- a reboot within one run ---------------------------------------------------------


class SshdBouncer(ScriptedHooks):
    """Stops the node's sshd when the reboot wait begins, starts it once seen down.

    Every SSH connection drops with the kill, as in a reboot, and the same
    run has to reconnect when sshd is back.
    """

    def __init__(self, node: Node) -> None:
        super().__init__(confirmed_by=NODE)
        self.node = node
        self.started: asyncio.Task[None] | None = None

    def note(self, node: str, text: str) -> None:
        super().note(node, text)
        if text.startswith("waiting up to"):
            self.node.kill_sshd()
        elif text == "the node is down":
            self.started = asyncio.create_task(asyncio.to_thread(self.node.start_sshd))


async def test_reboot_step_reconnects_same_run(
    node: Node, fleet: Fleet, tmp_path: Path
) -> None:
    runbook = parse_runbook("reboot-test.toml", REBOOT_RUNBOOK)
    markers = ["/run/reboot-test-before", "/run/reboot-test-after"]
    hooks = SshdBouncer(node)
    try:
        report = await runner_for(
            runbook.id, fleet, tmp_path, hooks, runbook=runbook
        ).run()
        if hooks.started is not None:
            await hooks.started
        created = [node.exec(["test", "-e", m]).returncode == 0 for m in markers]
    finally:
        node.start_sshd()
        node.exec(["rm", "-f", *markers])
    assert report.status is RunStatus.COMPLETED, report.results
    assert report.resumed_at == 0
    assert statuses(report) == {
        "before": StepStatus.DONE,
        "reboot": StepStatus.DONE,
        "after": StepStatus.DONE,
    }
    assert hooks.notes.index("the node is down") < hooks.notes.index("the node is back")
    assert created == [True, True]
    assert not StateStore(tmp_path / "state").path(runbook.id, NODE).exists()
