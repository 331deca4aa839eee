"""The setup wizard on a fresh booted node: containerd only, no Nydus.

The node runs real systemd, sshd and containerd 1.6. The release tarballs
are built by the test from the doubles (tests/doubles/release_tarball.py)
with their .sha256 files. The tests share one node and run in file order:
a plan that changes nothing, a plan past an unreachable node, an answer
that would break a config, a corrupted tarball that is refused, a first
start that fails and is rolled back, a run interrupted by killing sshd and
then resumed, a second run with nothing to do, a concurrent edit, and a
restart that fails on the set-up node and is rolled back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit
from console_run import run_console
from doubles.release_tarball import build_release
from testbed.errors import NodeBootError, TestbedUnavailable
from testbed.fixtures import _unavailable
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import (
    CONTAINERD_CONFIG,
    GRPC_SOCKET,
    SNAPSHOTTER_CONFIG,
    SNAPSHOTTER_UNIT,
    boot_fleet,
    nydus_plugin_listed,
)

from nydus_console.actions import ActionGate
from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.setup.answers import Answers
from nydus_console.setup.apply import StepStatus
from nydus_console.setup.plan import PlanStep
from nydus_console.setup.release import unpack_binaries
from nydus_console.setup.session import NodeSetup
from nydus_console.setup.state import SetupStateStore

pytestmark = pytest.mark.nspawn

NODE = "setup-node1"
UNIT_FILE = f"/etc/systemd/system/{SNAPSHOTTER_UNIT}"
NYDUSD_CONFIG = "/etc/nydus/nydusd-config.json"
ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
DOCKER_CONFIG = "/root/.docker/config.json"
# base64 of "user:secret-password", a login that must never be shown.
REGISTRY_AUTH = "dXNlcjpzZWNyZXQtcGFzc3dvcmQ="
# Where setup may write; their listing must not change in a plan-only run.
WATCHED = ["/etc", "/usr/local", "/var/lib/containerd", "/var/tmp"]


@pytest.fixture(scope="module")
def fresh_fleet() -> Iterator[NspawnFleet]:
    """One node of the ``absent`` profile: containerd only."""
    try:
        fleet = boot_fleet(("absent",), hostname_prefix="setup")
    except (TestbedUnavailable, NodeBootError) as error:
        _unavailable(error)
    try:
        docker_config = {"auths": {"registry.example.com": {"auth": REGISTRY_AUTH}}}
        fleet.node(NODE).write_file(DOCKER_CONFIG, json.dumps(docker_config), 0o600)
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("setup-home")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def inventory(fresh_fleet: NspawnFleet, home: Path) -> Path:
    return fresh_fleet.write_inventory(home / "inventory.toml")


def setup_args(inventory: Path, release: list[Path], *extra: str) -> list[str]:
    tarballs = [arg for path in release for arg in ("--tarball", str(path))]
    return ["setup", "--inventory", str(inventory), "--node", NODE, *tarballs, *extra]


def tree(node: Node) -> str:
    """Every path under WATCHED with its type, size, mode and mtime."""
    script = 'find "$@" -xdev -printf "%p %y %s %m %T@\\n" 2>/dev/null | sort'
    return node.exec(["sh", "-c", script, "tree", *WATCHED], check=True).stdout


def changed(before: str | list[str], after: str | list[str]) -> list[str]:
    """Return the lines of one listing that the other lacks."""
    old = set(before.splitlines() if isinstance(before, str) else before)
    new = set(after.splitlines() if isinstance(after, str) else after)
    return sorted((old - new) | (new - old))


def audit_entries(home: Path) -> list[dict[str, object]]:
    return AuditLog(home / ".state" / "nydus-console" / "audit.jsonl").entries()


def test_plan_only_changes_nothing(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    node = fresh_fleet.node(NODE)
    before = tree(node)
    result = run_console(*setup_args(inventory, release, "--plan-only"), home=home)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "1.6" in out, out
    assert f"create {SNAPSHOTTER_CONFIG}" in out
    assert f"update {CONTAINERD_CONFIG}" in out
    assert "+[proxy_plugins.nydus]" in out or "+  [proxy_plugins.nydus]" in out
    assert "KillMode=process" in out
    assert "install /usr/local/bin/containerd-nydus-grpc" in out
    assert "--plan-only: nothing was changed" in out
    assert "registry logins in /root/.docker/config.json  registry.example.com" in out
    assert REGISTRY_AUTH not in out
    assert changed(_without_runtime(before), _without_runtime(tree(node))) == []
    assert audit_entries(home) == []


def test_plan_only_plans_past_an_unreachable_node(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    data = tomlkit.parse(inventory.read_text())
    nodes = tomlkit.table()
    # Nothing listens on port 1 of this machine's loopback address.
    nodes["gone"] = {"address": "127.0.0.1", "port": 1, "connect_timeout": 5}
    for name, table in data["nodes"].items():
        nodes[name] = table
    data["nodes"] = nodes
    two = home / "two-nodes.toml"
    two.write_text(tomlkit.dumps(data))
    tarballs = [arg for path in release for arg in ("--tarball", str(path))]
    result = run_console(
        "setup", "--inventory", str(two), *tarballs, "--plan-only", home=home
    )
    out = result.stdout
    assert result.returncode == 3, result.stderr + out
    assert "== gone: unreachable" in out
    assert f"== {NODE}: plan (" in out
    assert "== not reached: gone" in out
    assert out.index("== gone: unreachable") < out.index(f"== {NODE}: plan (")


def test_answer_that_breaks_a_config_is_refused(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    node = fresh_fleet.node(NODE)
    before = tree(node)
    result = run_console(
        *setup_args(inventory, release, "--set", "metrics_address=banana", "--yes"),
        home=home,
    )
    assert result.returncode == 64, result.stderr + result.stdout
    assert "answer metrics_address gives metrics.address = \"banana\"" in (
        result.stdout
    )
    assert "does not have the expected form" in result.stdout
    assert "applying" not in result.stdout
    assert changed(_without_runtime(before), _without_runtime(tree(node))) == []
    assert audit_entries(home) == []


def test_corrupted_tarball_is_refused(
    fresh_fleet: NspawnFleet,
    inventory: Path,
    release: list[Path],
    home: Path,
    tmp_path: Path,
) -> None:
    node = fresh_fleet.node(NODE)
    corrupt = tmp_path / release[1].name
    data = bytearray(release[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    Path(f"{corrupt}.sha256").write_text(Path(f"{release[1]}.sha256").read_text())
    before = tree(node)
    result = run_console(
        *setup_args(inventory, [release[0], corrupt], "--yes"), home=home
    )
    assert result.returncode == 64, result.stderr + result.stdout
    assert f"{corrupt} has sha256" in result.stderr
    assert "nothing was uploaded or installed" in result.stderr
    # The same damage with a checksum made from the damaged copy: gzip's CRC
    # finds it, and nothing is planned or installed.
    digest = hashlib.sha256(data).hexdigest()
    Path(f"{corrupt}.sha256").write_text(f"{digest}  {corrupt.name}\n")
    result = run_console(
        *setup_args(inventory, [release[0], corrupt], "--yes"), home=home
    )
    assert result.returncode == 64, result.stderr + result.stdout
    assert f"{corrupt} is damaged" in result.stderr
    assert "checksum verified" not in result.stdout
    assert changed(_without_runtime(before), _without_runtime(tree(node))) == []


def test_read_only_and_unconfirmed_runs_change_nothing(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    node = fresh_fleet.node(NODE)
    before = tree(node)
    unconfirmed = run_console(*setup_args(inventory, release), home=home)
    assert unconfirmed.returncode == 2, unconfirmed.stderr + unconfirmed.stdout
    assert "the plan was not confirmed" in unconfirmed.stdout
    read_only = run_console(
        "--read-only", *setup_args(inventory, release, "--yes"), home=home
    )
    assert read_only.returncode == 2, read_only.stderr + read_only.stdout
    assert "refused: the console runs with --read-only" in read_only.stdout
    assert "refused (read-only)" in read_only.stdout
    assert "install /usr/local/bin/containerd-nydus-grpc failed" not in (
        read_only.stdout
    )
    assert changed(_without_runtime(before), _without_runtime(tree(node))) == []
    [entry] = audit_entries(home)
    assert entry["outcome"] == "refused"
    assert entry["action"] == "upload containerd-nydus-grpc"
    # Nothing ran, so no progress is kept and the next plan owes nothing.
    store = SetupStateStore(home / ".state" / "nydus-console" / "setup")
    assert store.load(NODE) is None
    again = run_console(*setup_args(inventory, release, "--plan-only"), home=home)
    assert "an interrupted run had not restarted it yet" not in again.stdout


def test_failed_first_start_is_rolled_back(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    """A snapshotter that cannot start on a fresh node is not left restarting.

    sshd listens on port 22 of the node, so a metrics address on that port
    passes validation but the snapshotter fails to bind it and exits.
    """
    node = fresh_fleet.node(NODE)
    containerd = node.read_file(CONTAINERD_CONFIG)
    result = run_console(
        *setup_args(
            inventory, release, "--yes", "--set", "metrics_address=127.0.0.1:22"
        ),
        home=home,
    )
    out = result.stdout
    assert result.returncode == 2, result.stderr + out
    assert "bind: address already in use" in out
    assert (
        f"Rolled back {NYDUSD_CONFIG}, {SNAPSHOTTER_CONFIG}, {UNIT_FILE}; "
        f"{SNAPSHOTTER_UNIT} was not running before setup, so it is stopped"
    ) in out
    for path in (NYDUSD_CONFIG, SNAPSHOTTER_CONFIG, UNIT_FILE):
        assert node.exec(["test", "-e", path]).returncode != 0, path
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "inactive"
    assert node.unit_property(SNAPSHOTTER_UNIT, "UnitFileState") != "enabled"
    assert node.read_file(CONTAINERD_CONFIG) == containerd
    assert node.unit_property("containerd.service", "ActiveState") == "active"
    SetupStateStore(home / ".state" / "nydus-console" / "setup").clear(NODE)


async def test_interrupted_run_resumes(
    fresh_fleet: NspawnFleet,
    inventory: Path,
    release: list[Path],
    home: Path,
    tmp_path: Path,
) -> None:
    node = fresh_fleet.node(NODE)
    original_containerd = node.read_file(CONTAINERD_CONFIG)
    store = SetupStateStore(home / ".state" / "nydus-console" / "setup")
    fleet = Fleet(load_inventory(inventory))
    seen: list[tuple[str, StepStatus]] = []

    def progress(step: PlanStep, status: StepStatus, detail: str) -> None:
        seen.append((step.id, status))
        if step.id == f"write:{UNIT_FILE}" and status is StepStatus.DONE:
            node.kill_sshd()

    try:
        spec, transport = fleet.specs[NODE], fleet.transports[NODE]
        gate = ActionGate(
            AuditLog(home / ".state" / "nydus-console" / "audit.jsonl"),
            read_only=False,
        )
        setup = NodeSetup(spec, transport, gate, store=store)
        plan = await setup.plan(Answers(), unpack_binaries(release, tmp_path))
        outcome = await setup.apply(plan, confirmed_by="--yes", progress=progress)
    finally:
        await fleet.close()
        node.start_sshd()
    assert outcome.unreachable and not outcome.ok
    state = store.load(NODE)
    assert state is not None
    assert f"write:{UNIT_FILE}" in state.done
    assert f"restart:{SNAPSHOTTER_UNIT}" in state.pending
    # The files written before the connection dropped are in place.
    assert "KillMode=process" in node.read_file(UNIT_FILE)
    assert node.read_file(CONTAINERD_CONFIG) == original_containerd

    result = run_console(*setup_args(inventory, release, "--yes", "--json"), home=home)
    assert result.returncode == 0, result.stderr + result.stdout
    assert REGISTRY_AUTH not in result.stdout
    document = json.loads(result.stdout)
    [report] = document["nodes"]
    assert report["status"] == "set up"
    assert f"write:{UNIT_FILE}" in report["done_before"]
    steps = [step["id"] for step in report["steps"]]
    assert f"write:{UNIT_FILE}" not in steps
    assert f"restart:{SNAPSHOTTER_UNIT}" in steps
    assert "restart:containerd.service" in steps
    assert all(check["ok"] for check in report["verification"]), report
    assert store.load(NODE) is None
    job = document["prometheus_scrape_job"]
    assert "job_name: nydus" in job
    assert "metrics_path: /v1/metrics" in job
    assert f"{node.address}:9110" in job
    assert document["grafana_dashboard"] == 20245

    # The node runs Nydus for real: the unit, the plugin, the kept config.
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    assert node.unit_property(SNAPSHOTTER_UNIT, "KillMode") == "process"
    assert node.unit_property(SNAPSHOTTER_UNIT, "UnitFileState") == "enabled"
    assert node.exec(["test", "-S", GRPC_SOCKET]).returncode == 0
    assert node.exec(["test", "-d", ROOT]).returncode == 0
    assert nydus_plugin_listed(node)
    containerd = node.read_file(CONTAINERD_CONFIG)
    assert 'bin_dir = "/usr/lib/cni"' in containerd
    assert 'snapshotter = "nydus"' in containerd
    backups = node.exec(["sh", "-c", f"ls {CONTAINERD_CONFIG}.*.bak"])
    assert backups.returncode == 0
    assert backups.stdout.strip()
    actions = [entry["action"] for entry in audit_entries(home)]
    assert "upload containerd-nydus-grpc" in actions
    assert f"write {CONTAINERD_CONFIG}" in actions


def test_second_run_has_nothing_to_do(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    node = fresh_fleet.node(NODE)
    before = tree(node)
    pid = node.unit_property(SNAPSHOTTER_UNIT, "MainPID")
    result = run_console(*setup_args(inventory, release, "--yes"), home=home)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "nothing to do; Nydus is set up as answered" in result.stdout
    assert "containerd-nydus-grpc          v0.15.15, sha256" in result.stdout
    assert "ok   ctr snapshots --snapshotter nydus ls answers" in result.stdout
    assert node.unit_property(SNAPSHOTTER_UNIT, "MainPID") == pid
    assert changed(_without_runtime(before), _without_runtime(tree(node))) == []


def _without_runtime(listing: str) -> list[str]:
    """Drop the files that running services change by themselves.

    containerd updates its metadata database, and the snapshotter writes its
    database, sockets and logs below its root.
    """
    return [
        line
        for line in listing.splitlines()
        if not line.startswith(
            ("/run", "/var/lib/containerd/io.containerd.metadata", f"{ROOT}/")
        )
    ]


async def test_concurrent_edit_fails_step_then_resumes(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    node = fresh_fleet.node(NODE)
    store = SetupStateStore(home / ".state" / "nydus-console" / "setup")
    fleet = Fleet(load_inventory(inventory))
    try:
        spec, transport = fleet.specs[NODE], fleet.transports[NODE]
        gate = ActionGate(
            AuditLog(home / ".state" / "nydus-console" / "audit.jsonl"),
            read_only=False,
        )
        setup = NodeSetup(spec, transport, gate, store=store)
        plan = await setup.plan(Answers(prometheus=True), {})
        assert [step.id for step in plan.steps] == [
            f"write:{SNAPSHOTTER_CONFIG}",
            f"restart:{SNAPSHOTTER_UNIT}",
        ]
        # Someone edits the file after the plan was made: the write must stop.
        edited = node.read_file(SNAPSHOTTER_CONFIG) + "# edited by hand\n"
        node.write_file(SNAPSHOTTER_CONFIG, edited)
        outcome = await setup.apply(plan, confirmed_by="--yes", progress=_quiet)
    finally:
        await fleet.close()
    assert not outcome.ok
    assert "changed on the node since it was read" in outcome.results[-1].detail
    assert node.read_file(SNAPSHOTTER_CONFIG) == edited
    state = store.load(NODE)
    assert state is not None
    assert state.failed == f"write:{SNAPSHOTTER_CONFIG}"

    result = run_console(
        *setup_args(inventory, release, "--yes", "--set", "prometheus=true"),
        home=home,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    written = node.read_file(SNAPSHOTTER_CONFIG)
    assert "# edited by hand" in written
    assert 'address = ":9110"' in written
    assert f"{node.address}:9110" in result.stdout
    assert store.load(NODE) is None


def test_failed_restart_rolls_back_the_config(
    fresh_fleet: NspawnFleet, inventory: Path, release: list[Path], home: Path
) -> None:
    """A valid config the snapshotter cannot start with is put back.

    sshd listens on port 22 of the node, so a metrics address on that port
    passes validation but the snapshotter fails to bind it and exits.
    """
    node = fresh_fleet.node(NODE)
    config = node.read_file(SNAPSHOTTER_CONFIG)
    result = run_console(
        *setup_args(
            inventory, release, "--yes", "--set", "metrics_address=127.0.0.1:22"
        ),
        home=home,
    )
    out = result.stdout
    assert result.returncode == 2, result.stderr + out
    assert f"restart:{SNAPSHOTTER_UNIT} failed" in out
    assert "bind: address already in use" in out
    assert (
        f"Rolled back {SNAPSHOTTER_CONFIG} and restarted {SNAPSHOTTER_UNIT}: "
        "active again"
    ) in out
    assert node.read_file(SNAPSHOTTER_CONFIG) == config
    assert node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "active"
    rejected = node.exec(["sh", "-c", f"cat {SNAPSHOTTER_CONFIG}.*-rejected.bak"])
    assert 'address = "127.0.0.1:22"' in rejected.stdout
    assert nydus_plugin_listed(node)
    SetupStateStore(home / ".state" / "nydus-console" / "setup").clear(NODE)


def _quiet(step: PlanStep, status: StepStatus, detail: str) -> None:
    return None
