"""`nydus-console diagnose`: field failures, healthy input, hostile input, output."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from doubles.recorded_facts import facts_from_json

from nydus_console.cli import main
from nydus_console.diagnose import content, diagnose_texts, node_findings
from nydus_console.diagnose.catalogue import load_catalogue
from nydus_console.diagnose.inputs import load_input, read_inputs, read_path
from nydus_console.diagnose.lines import SourceClassifier
from nydus_console.findings import Status
from nydus_console.inventory import NodePaths

SAMPLES = Path(__file__).parent / "samples"
FIELD = SAMPLES / "field"
HEALTHY = SAMPLES / "healthy"
CLASSIFIER = SourceClassifier(load_catalogue().sources)

# Each collected input of a field failure, the signature that must name it
# and the runbook its finding must lead to ("" where none fits).
FIELD_CASES = [
    (
        "snapshotter-nydusd-config-missing.journal",
        "nydusd-config-missing",
        "bad-config",
    ),
    (
        "docker-pull-snapshotter-timeout.txt",
        "snapshotter-socket-unreachable",
        "snapshotter-not-running",
    ),
    ("rootless-cgroup", "rootless-cgroup", "bad-config"),
    ("kubelet-imagefs.journal", "imagefs-stat-failed", "root-outside-containerd"),
    ("k3s-imagefs.journal", "imagefs-stat-failed", "root-outside-containerd"),
    ("fscache-kernel.journal", "fscache-singleton-einval", "bad-config"),
    ("cachefiles-lsof.txt", "cachefiles-busy", ""),
    ("zombie-nydusd-ps.txt", "nydusd-zombie", "duplicate-snapshotter"),
    ("nydusd-no-fuse-device.log", "fuse-device-missing", ""),
    ("nydusify-mount-fuse-init.log", "fuse-init-decode", ""),
    (
        "nerdctl-compose-no-processor.txt",
        "nydus-layer-no-processor",
        "bypassed-snapshotter",
    ),
    ("containerd2-runtime-keys.toml", "config-nydus-wiring", "bypassed-snapshotter"),
    ("containerd-parallel-unpack.toml", "parallel-unpack", ""),
    ("k3s-config.toml.tmpl", "containerd-config-duplicate-table", ""),
    ("prefetch-old-nydusd", "skew-nydusd-older-than-builder", ""),
    ("prefetch-old-nydusd", "nydusd-prefetch-failed", ""),
    (
        "sandbox-missing-parent.describe",
        "missing-parent-sandbox",
        "missing-parent-sandbox",
    ),
    ("pull-target-snapshot-exists.events", "target-snapshot-exists", "stale-snapshot"),
    ("pause-content-not-found", "content-digest-not-found", "stale-snapshot"),
    ("pause-content-not-found", "discard-unpacked-layers", ""),
    (
        "daemon-socket-not-found.log",
        "nydusd-died-socket-missing",
        "daemon-socket-missing",
    ),
    (
        "daemon-socket-not-found.events",
        "wait-running-socket-missing",
        "duplicate-snapshotter",
    ),
    ("failover-enosys.txt", "failover-mount-enosys", ""),
    ("failover-enosys.txt", "nydusd-died", "daemon-socket-missing"),
    ("nydusd-storm-ps.txt", "nydusd-duplicate-mountpoint", ""),
    ("first-start-oom.describe", "first-start-oom", ""),
    ("registry-transport-einval", "registry-backend-error", ""),
    ("registry-transport-einval", "mount-callback-einval", ""),
    ("registry-auth-eio", "registry-auth-failed", ""),
    ("proxy-html.journal.json", "registry-proxy-html", ""),
    ("dragonfly-mirror", "dragonfly-mirror-token", ""),
    ("dragonfly-mirror", "dragonfly-mirror-auth-through", ""),
    ("nydusify-ecr-push.log", "nydusify-push-rejected", ""),
    ("buildkit-nydus-export.txt", "buildkit-export-deadline", ""),
    ("buildkit-nydus-export.txt", "buildkit-nydus-without-force-compression", ""),
    ("invalid-tar-header.journal", "nydus-layer-invalid-tar", "bypassed-snapshotter"),
    ("ctr-plugin-ls-error.txt", "ctr-plugin-nydus-not-ok", "bypassed-snapshotter"),
    ("ctr-plugin-ls-no-nydus.txt", "ctr-plugin-nydus-missing", "bypassed-snapshotter"),
    (
        "duplicate-snapshotter.journal",
        "wait-running-socket-missing",
        "duplicate-snapshotter",
    ),
    ("duplicate-snapshotter.journal", "nydusd-zombie", "duplicate-snapshotter"),
    (
        "ps-two-snapshotters.txt",
        "duplicate-snapshotter-process",
        "duplicate-snapshotter",
    ),
    ("nydusd-loadconfig-invalid.log", "nydusd-config-invalid", "bad-config"),
    ("snapshotter-config-version.log", "snapshotter-config-invalid", "bad-config"),
    (
        "init-create-container-error.pods",
        "init-create-container-error",
        "cri-snapshotter-toggle",
    ),
    (
        "init-create-container-error.describe",
        "init-create-container-error",
        "cri-snapshotter-toggle",
    ),
    ("mount-callback-eio.events", "mount-callback-eio", "mount-callback-eio"),
    ("leftover-cgroup.journal", "leftover-cgroup", "leftover-cgroup"),
    ("nydus-snapshotter-no-killmode.service", "unit-killmode-not-process", ""),
    ("old-containerd", "skew-containerd-too-old", ""),
    ("old-snapshotter-keys", "skew-snapshotter-config-keys", ""),
]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["diagnose", *args])
    return code, capsys.readouterr().out


def findings_of(*paths: Path) -> dict[str, Any]:
    texts = [pair for path in paths for pair in read_path(str(path))]
    return {f.check: f for f in diagnose_texts(texts).findings}


@pytest.mark.parametrize(("sample", "signature", "runbook"), FIELD_CASES)
def test_field_sample_recognised(sample: str, signature: str, runbook: str) -> None:
    findings = findings_of(FIELD / sample)
    check = f"sig.{signature}"
    assert check in findings, sorted(findings)
    assert findings[check].runbook == runbook
    assert findings[check].evidence, "a finding names the lines behind it"


def test_field_samples_all_used() -> None:
    used = {case[0] for case in FIELD_CASES}
    present = {path.name for path in FIELD.iterdir()}
    assert present == used


def test_field_runbooks_cover_every_runbook() -> None:
    runbooks = {case[2] for case in FIELD_CASES if case[2]}
    assert runbooks == {
        "bypassed-snapshotter",
        "stale-snapshot",
        "duplicate-snapshotter",
        "bad-config",
        "root-outside-containerd",
        "cri-snapshotter-toggle",
        "missing-parent-sandbox",
        "mount-callback-eio",
        "leftover-cgroup",
        "snapshotter-not-running",
        "daemon-socket-missing",
    }


def test_cause_explains_restart_loop() -> None:
    findings = findings_of(FIELD / "snapshotter-nydusd-config-missing.journal")
    loop = findings["sig.snapshotter-restart-loop"]
    assert "sig.nydusd-config-missing" in loop.message
    assert loop.runbook == ""
    assert findings["sig.nydusd-config-missing"].runbook == "bad-config"


def test_registry_cause_holds_back_destructive_runbook() -> None:
    findings = findings_of(FIELD / "registry-auth-eio")
    eio = findings["sig.mount-callback-eio"]
    assert eio.runbook == ""
    assert "sig.registry-auth-failed" in eio.next_step


def test_evidence_names_file_and_line() -> None:
    findings = findings_of(FIELD / "kubelet-imagefs.journal")
    (evidence,) = findings["sig.imagefs-stat-failed"].evidence
    assert evidence.source.endswith("kubelet-imagefs.journal")
    assert evidence.lines[0].startswith("2: Dec 12 11:34:51 node-1 kubelet[601]: ")


def test_groups_fill_message() -> None:
    findings = findings_of(FIELD / "nydusd-storm-ps.txt")
    finding = findings["sig.nydusd-duplicate-mountpoint"]
    mountpoint = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus/mnt/cq81pj"
    assert mountpoint in finding.message
    assert f"umount -l {mountpoint}" in finding.next_step
    # The daemon that runs once is not reported.
    assert "a71k0z" not in json.dumps(finding.to_dict())


def test_healthy_input_has_no_findings(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [
        HEALTHY,
        SAMPLES / "containerd" / "config-v2.toml",
        SAMPLES / "containerd" / "config-v3.toml",
        SAMPLES / "snapshotter",
    ]
    code, out = run_cli(capsys, *map(str, paths))
    assert "0 failure(s), 0 warning(s)" in out
    assert code == 0


@pytest.mark.parametrize("sample", sorted(p.name for p in HEALTHY.iterdir()))
def test_healthy_file_alone_quiet(sample: str) -> None:
    assert findings_of(HEALTHY / sample) == {}


@pytest.mark.parametrize(
    ("name", "form", "source"),
    [
        ("nydus-snapshotter.journal", "journal", "snapshotter"),
        ("containerd.journal.json", "journal", "containerd"),
        ("kubelet.journal", "journal", "kubelet"),
        ("nydus-snapshotter.log", "log", "snapshotter"),
        ("nydusd.log", "log", "nydusd"),
        ("describe-pod.txt", "describe", "events"),
        ("events.txt", "events", "events"),
        ("pods.txt", "events", "events"),
        ("ctr-plugin-ls.txt", "ctr", "ctr"),
        ("ps.txt", "ps", "ps"),
        ("nydus-snapshotter.service", "unit", "unit"),
        ("nydusify-convert.log", "log", "nydusify"),
        ("buildctl.txt", "text", "buildctl"),
    ],
)
def test_format_detected(name: str, form: str, source: str) -> None:
    path = HEALTHY / name
    item = load_input(str(path), path.read_text(), CLASSIFIER)
    assert item.format == form
    assert item.source == source


def test_format_of_configs_detected() -> None:
    for path, kind in (
        (SAMPLES / "containerd" / "config-v3.toml", "containerd"),
        (SAMPLES / "snapshotter" / "config.toml", "snapshotter"),
        (FIELD / "dragonfly-mirror" / "nydusd-config.fusedev.json", "nydusd"),
        (FIELD / "k3s-config.toml.tmpl", "containerd"),
    ):
        item = load_input(str(path), path.read_text(), CLASSIFIER)
        assert item.format == "config", path
        assert item.config_kind == kind, path


def test_journal_lines_take_identifier_source() -> None:
    path = FIELD / "snapshotter-nydusd-config-missing.journal"
    item = load_input(str(path), path.read_text(), CLASSIFIER)
    sources = {line.text.split()[4].split("[")[0]: line.source for line in item.lines}
    assert sources == {"systemd": "systemd", "containerd-nydus-grpc": "snapshotter"}


def test_json_output_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, str(FIELD / "leftover-cgroup.journal"), "--json")
    document = json.loads(out)
    assert code == 2
    assert document["schema"] == "nydus-console/diagnose/v1"
    assert document["exit_code"] == 2
    (read,) = document["inputs"]
    assert read["format"] == "journal"
    assert read["lines"] == 2
    (finding,) = document["findings"]
    assert set(finding) == {
        "check",
        "title",
        "status",
        "message",
        "evidence",
        "next_step",
        "runbook",
    }
    assert finding["check"] == "sig.leftover-cgroup"
    assert finding["status"] == "fail"
    assert finding["runbook"] == "leftover-cgroup"
    (evidence,) = finding["evidence"]
    assert evidence["source"].endswith("leftover-cgroup.journal")
    assert evidence["lines"][0].startswith("2: ")


def test_json_lists_versions(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run_cli(capsys, str(FIELD / "prefetch-old-nydusd"), "--json")
    versions = json.loads(out)["versions"]
    assert versions["nydusd"]["version"] == "2.1.5"
    assert versions["builder"]["version"] == "2.2.2"
    assert versions["nydusd"]["from"].endswith("nydusd.log:1")


def test_text_output_groups_by_severity(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, str(FIELD / "buildkit-nydus-export.txt"))
    assert code == 2
    failures = out.index("== failures (1)")
    warnings = out.index("== warnings (1)")
    assert failures < out.index("FAIL buildkit Nydus export timed out") < warnings
    assert "buildkit-nydus-export.txt:6: error: failed to solve" in out
    assert "next step: upgrade buildkit" in out


def test_exit_code_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, str(FIELD / "first-start-oom.describe"))
    assert code == 1
    assert "0 failure(s), 1 warning(s)" in out


def test_exit_code_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diagnose", str(FIELD / "no-such-file.log")])
    assert code == 64
    assert "cannot read" in capsys.readouterr().err


def test_exit_code_no_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose"])
    assert exit_info.value.code == 64


def test_empty_directory_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagnose", str(tmp_path)]) == 64
    assert "contains no files" in capsys.readouterr().err


def test_stdin_is_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (FIELD / "mount-callback-eio.events").read_text()
    monkeypatch.setattr(sys, "stdin", _Stdin(text))
    code, out = run_cli(capsys, "-")
    assert code == 2
    assert "<stdin>:2: 3s" in out
    assert "runbook: mount-callback-eio" in out


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text


def _run_installed(
    *paths: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nydus_console", "diagnose", "--json"]
    return subprocess.run(
        [*command, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_hostile_input_finishes(tmp_path: Path) -> None:
    binary = tmp_path / "core.bin"
    binary.write_bytes(bytes(range(256)) * 4096)
    long_line = tmp_path / "long.log"
    fragment = "mount callback failed missing parent api.sock nydus.blob "
    long_line.write_text((fragment * (1024 * 1024 // len(fragment))) + "\n")
    invalid = tmp_path / "invalid.journal"
    invalid.write_bytes(
        b"Nov 13 09:05:19 node-1 containerd-nydus-grpc[1]: \xff\xfe\xc3( "
        b"Daemon x died\n" + b"\x80" * 5000 + b"\n"
    )
    result = _run_installed(binary, long_line, invalid)
    assert result.returncode in (1, 2), result.stderr
    document = json.loads(result.stdout)
    assert len(document["inputs"]) == 2
    assert document["not_analysed"] == [
        {"file": str(binary), "reason": "binary, not a log or text"}
    ]
    checks = {f["check"] for f in document["findings"]}
    assert "sig.nydusd-died" in checks


def test_hostile_evidence_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    line = (
        'level=error msg="failed to destroy cgroup, err still contains running '
        "processes"
    )
    path.write_text(line + " x" * 200_000 + '"\n')
    findings = findings_of(path)
    (evidence,) = findings["sig.leftover-cgroup"].evidence
    assert len(evidence.lines[0]) < 1000


def test_node_facts_add_evidence_to_checks() -> None:
    from nydus_console.checks import run_checks

    data = json.loads((SAMPLES / "facts" / "nc-node3.json").read_text())
    facts = facts_from_json(data)
    paths = NodePaths()
    checks = run_checks(facts, paths)
    extra = node_findings(facts, paths, checks)
    assert extra == []
    config = next(f for f in checks if f.check == "config.nydusd_config")
    sources = [e.source for e in config.evidence]
    assert "journalctl -u nydus-snapshotter.service (nydusd config file missing)" in (
        sources
    )
    # The journal lines that service.state already quotes are not repeated.
    state = next(f for f in checks if f.check == "service.state")
    assert not any("keeps failing" in e.source for e in state.evidence)


def test_node_facts_add_findings_without_check() -> None:
    from nydus_console.checks import run_checks

    data = json.loads((SAMPLES / "facts" / "nc-node1.json").read_text())
    data["versions"]["containerd"] = ["/usr/bin/containerd", "1.3.9"]
    facts = facts_from_json(data)
    checks = run_checks(facts, NodePaths())
    extra = node_findings(facts, NodePaths(), checks)
    assert [f.check for f in extra] == ["sig.skew-containerd-too-old"]
    assert extra[0].status == Status.FAIL
    assert extra[0].evidence[0].source == "/usr/bin/containerd --version"


def test_healthy_node_facts_quiet() -> None:
    from nydus_console.checks import run_checks

    for name in ("nc-node1.json", "nc-node2.json"):
        facts = facts_from_json(json.loads((SAMPLES / "facts" / name).read_text()))
        checks = run_checks(facts, NodePaths())
        assert node_findings(facts, NodePaths(), checks) == []


def test_other_json_is_not_a_config(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"apiVersion": "v1", "items": [], "kind": "List"}))
    item = load_input(str(path), path.read_text(), CLASSIFIER)
    assert item.format == "text"
    assert findings_of(path) == {}


JOURNAL = FIELD / "leftover-cgroup.journal"


def test_gzip_file_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.txt.gz"
    path.write_bytes(gzip.compress(JOURNAL.read_bytes()))
    code, out = run_cli(capsys, str(path))
    assert code == 2
    assert f"{path}:2: " in out
    assert f"read: {path} (journal)" in out


def _not_text_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    cases = {
        "empty.log": (b"", "empty file"),
        "blank.log": (b"\0" * 300 + b"\n  \n", "no text"),
        "random.bin": (random.Random(7).randbytes(5000), "binary"),
        "journal.txt.xz": (lzma.compress(JOURNAL.read_bytes()), "`xzcat "),
        "journal.txt.bz2": (bz2.compress(JOURNAL.read_bytes()), "`bzcat "),
        "broken.gz": (gzip.compress(JOURNAL.read_bytes())[:40], "gzip -t"),
        "ls": (Path("/bin/ls").read_bytes(), "executable"),
    }
    found = []
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        found.append((tmp_path / name, reason))
    return found


def test_files_without_text_not_analysed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path, reason in _not_text_cases(tmp_path):
        code, out = run_cli(capsys, str(path))
        assert code == 64, path
        assert f"NOT ANALYSED {path}: " in out
        assert reason in out, out
        assert "read:" not in out


def test_file_not_analysed_raises_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "core").write_bytes(Path("/bin/ls").read_bytes())
    healthy = HEALTHY / "nydus-snapshotter.journal"
    code, out = run_cli(capsys, str(healthy), str(tmp_path), "--json")
    document = json.loads(out)
    assert code == document["exit_code"] == 1
    assert document["findings"] == []
    (skipped,) = document["not_analysed"]
    assert skipped["file"] == str(tmp_path / "core")
    assert "executable" in skipped["reason"]


def test_gzip_larger_than_limit_not_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "MAX_GUNZIPPED", 100)
    path = tmp_path / "journal.gz"
    path.write_bytes(gzip.compress(JOURNAL.read_bytes()))
    texts, (skipped,) = read_inputs(str(path))
    assert texts == []
    assert "zcat" in skipped.reason and "split" in skipped.reason


def test_log_with_nul_tail_is_read(tmp_path: Path) -> None:
    # A log cut short by a crash often ends in NUL bytes.
    path = tmp_path / "crash.journal"
    path.write_bytes(JOURNAL.read_bytes() + b"\0" * 20000)
    assert "sig.leftover-cgroup" in findings_of(path)


def test_gzipped_stdin_is_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = gzip.compress(JOURNAL.read_bytes())
    monkeypatch.setattr(sys, "stdin", _BinaryStdin(data))
    code, out = run_cli(capsys, "-")
    assert code == 2
    assert "<stdin>:2: " in out


class _BinaryStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_tar_without_suffix_named(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(JOURNAL, arcname="journal.txt")
    renamed = tmp_path / "bundle.gz"
    archive.rename(renamed)
    texts, (skipped,) = read_inputs(str(renamed))
    assert texts == []
    assert skipped.reason.startswith("a tar archive")
    assert f"tar -xf {renamed}" in skipped.reason


def test_tar_gz_bundle_still_read(tmp_path: Path) -> None:
    archive = tmp_path / "collected.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(JOURNAL, arcname="journal.txt")
    assert "sig.leftover-cgroup" in findings_of(archive)


def test_journal_json_evidence_quotes_the_message(tmp_path: Path) -> None:
    entry = {
        "__CURSOR": "s=abc;i=1",
        "_BOOT_ID": "b0",
        "__REALTIME_TIMESTAMP": "1733300000000000",
        "PRIORITY": "3",
        "_SYSTEMD_UNIT": "nydus-snapshotter.service",
        "MESSAGE": 'time="2024-12-04T08:13:20Z" level=fatal msg="failed to start '
        'nydus-snapshotter" error="failed to initialize snapshotter: wait until '
        "daemon is RUNNING: daemon socket /var/lib/containerd/io.containerd."
        'snapshotter.v1.nydus/socket/d1/api.sock: not found"',
    }
    export = tmp_path / "journal.json"
    export.write_text(json.dumps(entry) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "nydus_console", "diagnose", str(export)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    evidence = [line for line in result.stdout.splitlines() if f"{export}:1:" in line]
    assert evidence
    for line in evidence:
        assert "__CURSOR" not in line
        assert line.endswith(
            ':1: nydus-snapshotter.service: failed to start nydus-snapshotter error="'
            "failed to initialize snapshotter: wait until daemon is RUNNING: daemon "
            "socket /var/lib/containerd/io.containerd.snapshotter.v1.nydus/socket/d1/"
            'api.sock: not found"'
        )
