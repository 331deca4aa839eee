"""`nydus-console bundle` on booted nodes: members, masking, gaps, diagnose.

nc-node1 and nc-node2 are healthy, nc-node3 has the broken-root profile (its
snapshotter fails to start). Credentials are planted in nc-node2's nydusd
and containerd configs and its snapshotter log, and taken out afterwards.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_run import run_console
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import (
    CONTAINERD_CONFIG,
    DEFAULT_SNAPSHOTTER_ROOT,
    NYDUSD_CONFIG,
    SNAPSHOTTER_CONFIG,
)

pytestmark = pytest.mark.nspawn

SECRETS = (
    "planted-registry-auth-5f1c",
    "planted-containerd-password-77ab",
    "planted-log-token-91d0",
    "planted-s3-secret-c3e4",
)
SNAPSHOTTER_LOG = f"{DEFAULT_SNAPSHOTTER_ROOT}/logs/nydus-snapshotter.log"
UNREACHABLE = "root@127.0.0.1:1"


@dataclass
class Bundle:
    result: subprocess.CompletedProcess[str]
    path: Path
    members: dict[str, bytes]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.member("MANIFEST.json"))

    def member(self, name: str) -> str:
        return self.members[name].decode()

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.manifest["nodes"] if n["name"] == name)

    def findings(self, node: str) -> dict[str, dict[str, Any]]:
        document = json.loads(self.member(f"{node}/findings.json"))
        return {f["check"]: f for f in document}


def read_bundle(path: Path) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    with tarfile.open(path) as archive:
        for info in archive.getmembers():
            top, _, name = info.name.partition("/")
            assert top == path.name.removesuffix(".tar.gz")
            data = archive.extractfile(info)
            assert data is not None
            members[name] = data.read()
    return members


def plant_secrets(node: Node) -> dict[str, str]:
    """Put credentials into nc-node2's files; return the texts to restore."""
    saved = {path: node.read_file(path) for path in (NYDUSD_CONFIG, CONTAINERD_CONFIG)}
    nydusd = json.loads(saved[NYDUSD_CONFIG])
    nydusd["device"]["backend"]["config"]["auth"] = SECRETS[0]
    node.write_file(NYDUSD_CONFIG, json.dumps(nydusd, indent=2) + "\n")
    registry = (
        '\n[plugins."io.containerd.grpc.v1.cri".registry.configs'
        '."registry.example".auth]\n'
        f'  username = "ops"\n  password = "{SECRETS[1]}"\n'
    )
    node.write_file(CONTAINERD_CONFIG, saved[CONTAINERD_CONFIG] + registry)
    lines = (
        f'time="2026-01-01T00:00:00Z" level=info msg="login" token="{SECRETS[2]}"\n'
        f'time="2026-01-01T00:00:01Z" level=info msg="backend" '
        f"access_key_secret={SECRETS[3]}\n"
    )
    size = node.exec(["stat", "-c", "%s", SNAPSHOTTER_LOG], check=True).stdout
    saved["log size"] = size.strip()
    node.exec(["sh", "-c", 'printf %s "$1" >> "$2"', "sh", lines, SNAPSHOTTER_LOG])
    return saved


def restore(node: Node, saved: dict[str, str]) -> None:
    size = saved.pop("log size")
    node.exec(["truncate", "-s", size, SNAPSHOTTER_LOG], check=True)
    for path, text in saved.items():
        node.write_file(path, text)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def inventory(nspawn_fleet: NspawnFleet, home: Path) -> Path:
    return nspawn_fleet.write_inventory(home / "inventory.toml")


@pytest.fixture(scope="module")
def bundle(nspawn_fleet: NspawnFleet, home: Path, inventory: Path) -> Iterator[Bundle]:
    """One bundle of the three nodes, with nc-node2's credentials planted."""
    node = nspawn_fleet.node("nc-node2")
    saved = plant_secrets(node)
    try:
        result = run_console("bundle", "--inventory", str(inventory), home=home)
    finally:
        restore(node, saved)
    assert result.stdout.strip(), result.stderr
    path = Path(result.stdout.strip())
    yield Bundle(result, path, read_bundle(path))


def test_bundle_lists_every_node(bundle: Bundle, home: Path) -> None:
    assert bundle.result.returncode == 0, bundle.result.stderr
    assert bundle.path.parent == home / ".state/nydus-console/bundles"
    assert bundle.path.name.startswith("nydus-bundle-nc-node1-nc-node2-nc-node3-")
    assert bundle.path.name.endswith("Z.tar.gz")
    assert bundle.path.stat().st_mode & 0o077 == 0
    assert [n["name"] for n in bundle.manifest["nodes"]] == [
        "nc-node1",
        "nc-node2",
        "nc-node3",
    ]
    assert bundle.manifest["log_lines"] == 2000
    assert "nc-node2: probing" in bundle.result.stderr
    readme = bundle.member("README.md")
    assert "## nc-node3" in readme
    assert "Collected:" in readme


@pytest.mark.parametrize("node", ["nc-node1", "nc-node2", "nc-node3"])
def test_bundle_members_of_a_node(bundle: Bundle, node: str) -> None:
    names = set(bundle.members)
    listed = {f["path"] for f in bundle.node(node)["files"]}
    assert listed == {n for n in names if n.startswith(f"{node}/")}
    for expected in (
        "versions.txt",
        "versions/containerd-nydus-grpc.txt",
        "versions/nydusd.txt",
        "versions/containerd.txt",
        "system/os-release",
        f"configs{SNAPSHOTTER_CONFIG}",
        f"configs{CONTAINERD_CONFIG}",
        "logs/journal/nydus-snapshotter.service.json",
        "logs/journal/containerd.service.json",
        "units/nydus-snapshotter.service",
        "units/containerd.service",
        "facts/ps.txt",
        "facts/sockets.txt",
        "facts/mounts.txt",
        "facts/facts.json",
        "findings.json",
        "findings.txt",
    ):
        assert f"{node}/{expected}" in names
    versions = bundle.member(f"{node}/versions.txt")
    assert "kernel: " in versions
    assert "os: Debian GNU/Linux 12" in versions
    assert "/usr/bin/containerd\n" in bundle.member(f"{node}/facts/ps.txt")
    assert " /proc proc " in bundle.member(f"{node}/facts/mounts.txt")


def test_healthy_node_has_its_log_files(bundle: Bundle) -> None:
    names = set(bundle.members)
    assert f"nc-node2/logs/files{SNAPSHOTTER_LOG}" in names
    assert f"nc-node2/configs{NYDUSD_CONFIG}" in names
    journal = bundle.member("nc-node2/logs/journal/nydus-snapshotter.service.json")
    assert all(json.loads(line)["MESSAGE"] for line in journal.splitlines())
    assert bundle.node("nc-node2")["not_collected"] == []
    statuses = {f["status"] for f in bundle.findings("nc-node2").values()}
    assert "fail" not in statuses


def test_broken_node_findings_and_journal(bundle: Bundle) -> None:
    findings = bundle.findings("nc-node3")
    failed = {check for check, f in findings.items() if f["status"] == "fail"}
    assert {"service.state", "config.root_location"} <= failed
    journal = bundle.member("nc-node3/logs/journal/nydus-snapshotter.service.json")
    assert "failed to start nydus-snapshotter" in journal
    assert "FAIL" in bundle.member("nc-node3/findings.txt")


def test_planted_secrets_never_appear(bundle: Bundle) -> None:
    for name, data in bundle.members.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} in {name}"
    containerd = bundle.member(f"nc-node2/configs{CONTAINERD_CONFIG}")
    assert 'password = "***"' in containerd
    nydusd = bundle.member(f"nc-node2/configs{NYDUSD_CONFIG}")
    assert '"auth": "***"' in nydusd
    log = bundle.member(f"nc-node2/logs/files{SNAPSHOTTER_LOG}")
    assert 'token="***"' in log
    assert "access_key_secret=" in log


def test_diagnose_reads_the_bundle(bundle: Bundle, home: Path, tmp_path: Path) -> None:
    """diagnose finds in the archive the signature failures the bundle lists."""
    result = run_console("diagnose", "--json", str(bundle.path), home=home)
    document = json.loads(result.stdout)
    failed = {f["check"] for f in document["findings"] if f["status"] == "fail"}
    assert failed, result.stdout
    failures = [f for f in document["findings"] if f["status"] == "fail"]
    for failure in failures:
        assert _listed(bundle, failure), failure["check"]
    read = [i["file"] for i in document["inputs"]]
    assert not any(name.endswith(("findings.json", "MANIFEST.json")) for name in read)
    assert any(
        name.endswith("nc-node3/logs/journal/nydus-snapshotter.service.json")
        for name in read
    )
    with tarfile.open(bundle.path) as archive:
        archive.extractall(tmp_path, filter="data")
    extracted = run_console("diagnose", "--json", str(tmp_path), home=home)
    again = json.loads(extracted.stdout)
    assert {f["check"] for f in again["findings"] if f["status"] == "fail"} == failed


def test_healthy_node_bundle_diagnoses_clean(
    inventory: Path, home: Path, tmp_path: Path
) -> None:
    """No empty files: the journal of a unit that is not installed is listed."""
    output = tmp_path / "healthy.tar.gz"
    result = run_console(
        "bundle", "--inventory", str(inventory), "--node", "nc-node1",
        "--output", str(output), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    members = read_bundle(output)
    assert [name for name, data in members.items() if not data] == []
    assert "nc-node1/logs/journal/kubelet.service.json" not in members
    (node,) = json.loads(members["MANIFEST.json"])["nodes"]
    kubelet = "kubelet.service is not installed on nc-node1"
    assert {"item": "journal of kubelet.service", "reason": kubelet} in node[
        "no_entries"
    ]
    assert f"- journal of kubelet.service: {kubelet}" in members["README.md"].decode()
    snapshotter = members["nc-node1/units/nydus-snapshotter.service"].decode()
    assert snapshotter.startswith("# /")
    assert "ExecStart=" in snapshotter
    assert "ExecStart=" in members["nc-node1/units/containerd.service"].decode()
    diagnosed = run_console("diagnose", str(output), home=home)
    assert diagnosed.returncode == 0, diagnosed.stdout + diagnosed.stderr


def _listed(bundle: Bundle, failure: dict[str, Any]) -> bool:
    """Return whether a node's findings list a failure, or quote it in a check."""
    quoted = f"({failure['title']})"
    for node in ("nc-node1", "nc-node2", "nc-node3"):
        for check, finding in bundle.findings(node).items():
            if check == failure["check"]:
                return True
            if any(quoted in e["source"] for e in finding["evidence"]):
                return True
    return False


def test_unreachable_node_is_recorded(
    home: Path, inventory: Path, tmp_path: Path
) -> None:
    output = tmp_path / "two.tar.gz"
    result = run_console(
        "bundle",
        "--inventory",
        str(inventory),
        "--node",
        "nc-node1",
        "--node",
        UNREACHABLE,
        "--lines",
        "50",
        "--output",
        str(output),
        home=home,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == str(output)
    members = read_bundle(output)
    manifest = json.loads(members["MANIFEST.json"])
    nodes = {n["name"]: n for n in manifest["nodes"]}
    assert nodes["nc-node1"]["status"] == "complete"
    assert nodes["127.0.0.1:1"]["status"] == "unreachable"
    assert nodes["127.0.0.1:1"]["error"]["kind"] == "refused"
    assert manifest["log_lines"] == 50
    journal = members["nc-node1/logs/journal/containerd.service.json"].decode()
    assert 0 < len(journal.splitlines()) <= 50
    assert "unreachable" in members["README.md"].decode()


def test_existing_output_is_refused(
    home: Path, inventory: Path, tmp_path: Path
) -> None:
    output = tmp_path / "kept.tar.gz"
    output.write_text("keep me")
    result = run_console(
        "bundle", "--inventory", str(inventory), "--output", str(output), home=home
    )
    assert result.returncode == 64
    assert f"{output} exists" in result.stderr
    assert "probing" not in result.stderr
    assert output.read_text() == "keep me"


def test_unreadable_log_is_a_gap(
    nspawn_fleet: NspawnFleet, home: Path, inventory: Path, tmp_path: Path
) -> None:
    """A log file that cannot be read is listed; the rest is still collected."""
    node = nspawn_fleet.node("nc-node1")
    node.exec(["mv", SNAPSHOTTER_LOG, f"{SNAPSHOTTER_LOG}.moved"], check=True)
    try:
        output = tmp_path / "gap.tar.gz"
        result = run_console(
            "bundle",
            "--inventory",
            str(inventory),
            "--node",
            "nc-node1",
            "--output",
            str(output),
            home=home,
        )
    finally:
        node.exec(["mv", f"{SNAPSHOTTER_LOG}.moved", SNAPSHOTTER_LOG], check=True)
    assert result.returncode == 1, result.stderr
    manifest = json.loads(read_bundle(output)["MANIFEST.json"])
    gaps = manifest["nodes"][0]["not_collected"]
    assert [g["item"] for g in gaps] == [SNAPSHOTTER_LOG]
    assert "No such file" in gaps[0]["reason"]
    assert f"not collected: {SNAPSHOTTER_LOG}" in result.stderr
