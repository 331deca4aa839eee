"""`nydus-console report` from an audit log written by real runs on booted nodes.

A stray snapshotter is started on nc-node2, and the duplicate-snapshotter
runbook removes it through the command line. Then a failing action that
prints a credential and a refused action go through the gate. The report of that
window lists them in order with their commands, output and results.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from pathlib import Path

import pytest
from test_bundle_nspawn import run_console
from test_runbooks_nspawn import start_stray, wait_for_sockets
from testbed.nspawn import NspawnFleet
from testbed.profiles import SNAPSHOTTER_UNIT

from nydus_console.actions import Action, ActionGate, ActionRefused
from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import load_inventory
from nydus_console.screens.app import NydusConsoleApp

pytestmark = pytest.mark.nspawn

NODE = "nc-node2"
SECRET = "planted-report-password-0c9e"
STALE_SECRET = "planted-stale-token-4b12"


async def gate_actions(inventory: Path, audit: AuditLog) -> None:
    """A failing action that prints a credential, then a refused one."""
    fleet = Fleet(load_inventory(inventory))
    spec, transport = fleet.specs[NODE], fleet.transports[NODE]
    script = f"echo login password={SECRET}; echo no registry >&2; exit 3"
    try:
        await ActionGate(audit, read_only=False).run(
            Action("probe registry login", ("sh", "-c", script)),
            spec,
            transport,
            confirmed_by=NODE,
        )
        with pytest.raises(ActionRefused):
            await ActionGate(audit, read_only=True).run(
                Action("restart containerd", ("systemctl", "restart", "containerd")),
                spec,
                transport,
                confirmed_by=NODE,
            )
    finally:
        await fleet.close()


def add_stale_entry(path: Path) -> None:
    """Add an entry two days old, with a credential an old console left unmasked."""
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    entry = {
        "time": old.isoformat(timespec="seconds"),
        "operator": "ops",
        "node": NODE,
        "action": "stale action",
        "command": "true",
        "outcome": "ran",
        "exit_status": 0,
        "stderr": f"token={STALE_SECRET}",
    }
    with path.open("a") as out:
        out.write(json.dumps(entry) + "\n")


@pytest.fixture(scope="module")
def home(nspawn_fleet: NspawnFleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a home whose audit log has the runbook run, gate actions, a stale line."""
    home = tmp_path_factory.mktemp("home")
    inventory = nspawn_fleet.write_inventory(home / "inventory.toml")
    node = nspawn_fleet.node(NODE)
    stray = start_stray(node)
    try:
        completed = run_console(
            "runbook", "run", "duplicate-snapshotter", "--inventory", str(inventory),
            "--node", NODE, "--yes", "--yes-destructive", NODE, home=home,
        )  # fmt: skip
    finally:
        node.exec(["sh", "-c", f"kill -KILL {stray} 2>/dev/null; true"])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    wait_for_sockets(node)
    audit_path = home / ".state/nydus-console/audit.jsonl"
    asyncio.run(gate_actions(inventory, AuditLog(audit_path)))
    add_stale_entry(audit_path)
    return home


def report(home: Path, *args: str) -> tuple[int, str, str]:
    inventory = str(home / "inventory.toml")
    result = run_console("report", "--inventory", inventory, *args, home=home)
    return result.returncode, result.stdout, result.stderr


def headings(text: str) -> list[str]:
    return re.findall(r"^### \S+ \S+ (.+)$", text, re.M)


def test_report_lists_the_run_in_order(home: Path) -> None:
    code, text, err = report(home, "--since", "1h")
    assert code == 0, err
    assert text.startswith("# Incident report: ")
    steps = [h for h in headings(text) if "duplicate-snapshotter:" in h]
    assert steps[0] == (
        f"{NODE}: duplicate-snapshotter: Stop every containerd-nydus-grpc that is "
        "not the service's main process"
    )
    assert (
        steps[-1] == f"{NODE}: duplicate-snapshotter: Restart the snapshotter service"
    )
    order = [h.split(": ", 1)[1] for h in headings(text) if "seen:" not in h]
    assert order[-2:] == ["probe registry login", "restart containerd"]
    assert f"- Command: `systemctl restart {SNAPSHOTTER_UNIT}`" in text
    assert "- Result: failed (exit status 3)" in text
    assert "- Result: refused: the console runs with --read-only" in text
    assert 'login password="***"' in text
    assert "no registry" in text
    summary = text.split("## Timeline")[0]
    assert f"- Runbooks: duplicate-snapshotter on {NODE} (completed)." in summary
    assert "1 refused" in summary
    assert "1 failed" in summary
    assert f"{NODE} ok" in summary or f"{NODE} 1 warning" in summary
    assert "stale action" not in text
    findings = text.split("## Findings at report time")[1]
    assert f"### {NODE}: " in findings


def test_window_filters(home: Path) -> None:
    code, text, err = report(home, "--since", "3d", "--until", "1d", "--no-check")
    assert code == 0, err
    assert headings(text) == [f"{NODE}: stale action"]
    assert "Not checked" in text
    code, text, _ = report(home, "--since", "30d", "--until", "20d", "--no-check")
    assert headings(text) == []
    assert "Nothing was recorded in this window." in text


def test_secrets_never_appear(home: Path, tmp_path: Path) -> None:
    output = tmp_path / "incident.md"
    code, out, err = report(home, "--since", "3d", "--output", str(output))
    assert code == 0, err
    assert out.strip() == str(output)
    text = output.read_text()
    assert "stale action" in text
    for secret in (SECRET, STALE_SECRET):
        assert secret not in text
    assert output.stat().st_mode & 0o077 == 0
    code, _, err = report(home, "--since", "3d", "--output", str(output))
    assert code == 64
    assert "exists" in err


def test_broken_node_journal_is_seen(home: Path) -> None:
    code, text, err = report(home, "--since", "1d", "--node", "nc-node3")
    assert code == 0, err
    seen = [h for h in headings(text) if "seen:" in h]
    assert seen and all(h.startswith("nc-node3: seen: ") for h in seen)
    assert "- Seen in the journals: " in text
    assert "### nc-node3: " in text
    assert "**FAIL**" in text


BREAK_DROP_IN = f"/run/systemd/system/{SNAPSHOTTER_UNIT}.d/zz-report-test.conf"


def test_failed_verification_is_a_failed_step(
    nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    """A restart that exits 0 but leaves the service down is reported failed."""
    node = nspawn_fleet.node("nc-node1")
    inventory = str(nspawn_fleet.write_inventory(tmp_path / "inventory.toml"))
    node.exec(["mkdir", "-p", BREAK_DROP_IN.rsplit("/", 1)[0]], check=True)
    node.write_file(BREAK_DROP_IN, "[Service]\nExecStart=\nExecStart=/bin/false\n")
    try:
        node.systemctl("daemon-reload", check=True)
        node.systemctl("stop", SNAPSHOTTER_UNIT, check=True)
        run = run_console(
            "runbook", "run", "snapshotter-not-running", "--inventory", inventory,
            "--node", "nc-node1", "--yes", home=tmp_path,
        )  # fmt: skip
    finally:
        node.exec(["rm", "-f", BREAK_DROP_IN], check=True)
        node.systemctl("daemon-reload", check=True)
        node.systemctl("reset-failed", SNAPSHOTTER_UNIT)
        node.systemctl("restart", SNAPSHOTTER_UNIT, check=True)
        wait_for_sockets(node)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "verification failed" in run.stdout + run.stderr
    result = run_console(
        "report", "--since", "1h", "--no-check", "--inventory", inventory,
        home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    restart = "snapshotter-not-running: Restart the snapshotter service"
    block = text.split(f"nc-node1: {restart}\n", 1)[1].split("###", 1)[0]
    assert "- Result: failed: verification failed: " in block
    assert "succeeded" not in block
    summary = text.split("## Timeline")[0]
    assert "0 failed" not in summary
    assert "1 failed)" in summary
    assert "snapshotter-not-running on nc-node1 (failed at step " in summary


# -- the console's palette command -------------------------------------------------


async def test_palette_writes_report_of_last_hour(
    nspawn_fleet: NspawnFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command writes the last hour under the state dir and shows the path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    inventory.nodes = [n for n in inventory.nodes if n.name == "nc-node3"]
    audit = AuditLog(tmp_path / "audit.jsonl")
    app = NydusConsoleApp(inventory, refresh_seconds=0, audit=audit)
    async with app.run_test(size=(150, 36)) as pilot:
        await app.workers.wait_for_complete()
        check = Action("check unit", ("systemctl", "is-active", SNAPSHOTTER_UNIT))
        result = await app.gate.run(
            check,
            app.fleet.specs["nc-node3"],
            app.fleet.transports["nc-node3"],
            confirmed_by="nc-node3",
        )
        assert result.exit_status == 3
        (command,) = [
            c
            for c in app.get_system_commands(app.screen)
            if c.title == "fleet: write incident report (last hour)"
        ]
        command.callback()
        await app.workers.wait_for_complete()
        await pilot.pause()
        notes = [n.message for n in app._notifications]
    (path,) = (tmp_path / "state/nydus-console/reports").glob("incident-*.md")
    assert any(f"saved to {path}" in note for note in notes), notes
    text = path.read_text()
    assert "nc-node3: check unit" in headings(text)
    assert "- Result: failed (exit status 3)" in text
    assert any(h.startswith("nc-node3: seen: ") for h in headings(text))
    assert "### nc-node3: " in text.split("## Findings at report time")[1]
