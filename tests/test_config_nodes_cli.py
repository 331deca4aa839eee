"""`config get`, `config set` and `config drift` against booted nodes over sshd.

nc-node3 is the broken node: its snapshotter root and nydusd_config differ
from the healthy nodes. Tests that write put the files and units back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_run import run_console
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import SNAPSHOTTER_CONFIG, SNAPSHOTTER_UNIT

WRITABLE = "nc-node2"


@pytest.fixture
def inventory(nspawn_fleet: NspawnFleet, tmp_path: Path) -> Path:
    return nspawn_fleet.write_inventory(tmp_path / "inventory.toml")


@pytest.fixture
def one_node(nspawn_fleet: NspawnFleet, tmp_path: Path) -> Path:
    node = nspawn_fleet.node(WRITABLE)
    path = nspawn_fleet.write_inventory(tmp_path / "one.toml")
    text = path.read_text()
    # Keep only the writable node's table: the tests change one node.
    head, _, tables = text.partition("[nodes.")
    kept = [t for t in tables.split("[nodes.") if t.startswith(node.name)]
    path.write_text(head + "".join("[nodes." + t for t in kept))
    return path


@pytest.fixture
def restore(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    node = nspawn_fleet.node(WRITABLE)
    saved = node.read_file(SNAPSHOTTER_CONFIG)
    yield node
    if node.read_file(SNAPSHOTTER_CONFIG) != saved:
        node.write_file(SNAPSHOTTER_CONFIG, saved)
        node.systemctl("reset-failed", SNAPSHOTTER_UNIT)
        node.systemctl("restart", SNAPSHOTTER_UNIT, check=True)


def test_get_reads_every_node(inventory: Path, tmp_path: Path) -> None:
    result = run_console(
        "config",
        "get",
        "root",
        "--kind",
        "snapshotter",
        "--inventory",
        str(inventory),
        "--json",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["node"]: row for row in json.loads(result.stdout)}
    assert rows["nc-node1"]["value"].endswith("io.containerd.snapshotter.v1.nydus")
    assert rows["nc-node3"]["value"] == "/data/containerd-nydus"
    assert rows["nc-node3"]["shown"] == '"/data/containerd-nydus"'
    assert rows["nc-node1"]["path"] == SNAPSHOTTER_CONFIG


def test_drift_finds_the_broken_node(inventory: Path, tmp_path: Path) -> None:
    result = run_console(
        "config", "drift", "--inventory", str(inventory), "--json", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    keys = {k["key"]: k for k in json.loads(result.stdout)["keys"]}
    assert keys["root"]["outliers"] == ["nc-node3"]
    assert keys["daemon.nydusd_config"]["outliers"] == ["nc-node3"]


def test_dry_run_writes_nothing(one_node: Path, restore: Node, tmp_path: Path) -> None:
    before = restore.read_file(SNAPSHOTTER_CONFIG)
    result = run_console(
        "config",
        "set",
        "log.level",
        "debug",
        "--dry-run",
        "--inventory",
        str(one_node),
        home=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '+level = "debug"' in result.stdout
    assert restore.read_file(SNAPSHOTTER_CONFIG) == before


def test_set_without_yes_writes_nothing(
    one_node: Path, restore: Node, tmp_path: Path
) -> None:
    before = restore.read_file(SNAPSHOTTER_CONFIG)
    result = run_console(
        "config",
        "set",
        "log.level",
        "debug",
        "--inventory",
        str(one_node),
        home=tmp_path,
    )
    assert result.returncode == 2
    assert "add --yes" in result.stdout
    assert restore.read_file(SNAPSHOTTER_CONFIG) == before


def test_set_writes_restarts_and_audits(
    one_node: Path, restore: Node, tmp_path: Path
) -> None:
    result = run_console(
        "config",
        "set",
        "log.level",
        "debug",
        "--yes",
        "--inventory",
        str(one_node),
        home=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'level = "debug"' in restore.read_file(SNAPSHOTTER_CONFIG)
    assert f"ok     verify {SNAPSHOTTER_UNIT}" in result.stdout
    audit = (tmp_path / ".state" / "nydus-console" / "audit.jsonl").read_text()
    entries = [json.loads(line) for line in audit.splitlines()]
    actions = [entry["action"] for entry in entries]
    assert actions[0] == f"write {SNAPSHOTTER_CONFIG}"
    assert f"restart {SNAPSHOTTER_UNIT}" in actions
    assert entries[0]["path"] == SNAPSHOTTER_CONFIG
    assert entries[0]["changes"] == 'log.level = "debug"'
    # The report shows what was written, not the write script.
    report = run_console(
        "report", "--since", "1h", "--no-check", "--inventory", str(one_node),
        home=tmp_path,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert f"- Wrote: {SNAPSHOTTER_CONFIG}\n" in report.stdout
    assert '- Changed: log.level = "debug"\n' in report.stdout
    assert "set -eu" not in report.stdout


def test_read_only_refuses_and_audits(
    one_node: Path, restore: Node, tmp_path: Path
) -> None:
    before = restore.read_file(SNAPSHOTTER_CONFIG)
    result = run_console(
        "--read-only",
        "config",
        "set",
        "log.level",
        "debug",
        "--yes",
        "--inventory",
        str(one_node),
        home=tmp_path,
    )
    assert result.returncode == 2
    assert "read-only" in result.stdout
    assert restore.read_file(SNAPSHOTTER_CONFIG) == before
    audit = (tmp_path / ".state" / "nydus-console" / "audit.jsonl").read_text()
    assert json.loads(audit.splitlines()[0])["outcome"] == "refused"


def test_new_error_blocks_the_write(
    one_node: Path, restore: Node, tmp_path: Path
) -> None:
    before = restore.read_file(SNAPSHOTTER_CONFIG)
    # Valid on its own, but not containerd's root plus the plugin's name.
    elsewhere = "/srv/nydus"
    result = run_console(
        "config",
        "set",
        "root",
        elsewhere,
        "--kind",
        "snapshotter",
        "--yes",
        "--inventory",
        str(one_node),
        home=tmp_path,
    )
    assert result.returncode == 2
    assert "not written: this change brings the errors above" in result.stdout
    assert restore.read_file(SNAPSHOTTER_CONFIG) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "daemon.fs_driver", "bogus"), "invalid value 'bogus'"),
        (("get", "no.such.key"), "no config has a key 'no.such.key'."),
        (("get", "log_level"), "'log_level' (did you mean log.level?)"),
        (("set", "daemon.threads_number", "many"), "daemon.threads_number"),
    ],
)
def test_usage_errors_name_the_value(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = run_console("config", *args, "--node", "127.0.0.1:1", home=tmp_path)
    assert result.returncode == 64
    assert message in result.stderr
