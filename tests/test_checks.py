"""Each check on the sample configs and on crafted broken ones."""

from __future__ import annotations

import pytest
from factbuilder import (
    CONTAINERD_CONFIG,
    GRPC,
    SAMPLES,
    SNAPSHOTTER_CONFIG,
    healthy_facts,
    unit,
)

from nydus_console.checks import RULES, load_checks, run_checks, symptom_checks
from nydus_console.facts import NodeFacts, ProcessInfo
from nydus_console.findings import Finding, Status, worst_finding
from nydus_console.inventory import NodePaths
from nydus_console.transport.base import SocketState


def findings_of(facts: NodeFacts) -> dict[str, Finding]:
    return {f.check: f for f in run_checks(facts, NodePaths())}


def with_snapshotter(text: str) -> dict[str, Finding]:
    return findings_of(healthy_facts(snapshotter=text))


def test_every_check_has_rule_and_order() -> None:
    ids = [c.id for c in load_checks()]
    assert sorted(ids) == sorted(RULES)
    assert len(ids) == len(set(ids))
    for index, check in enumerate(load_checks()):
        for required in check.requires:
            assert required in ids[:index], f"{check.id} requires later {required}"


def test_healthy_node_has_no_problem() -> None:
    findings = findings_of(healthy_facts())
    bad = {
        k: f.message
        for k, f in findings.items()
        if f.status not in (Status.OK, Status.SKIP)
    }
    assert bad == {}
    assert findings["socket.grpc"].status == Status.OK
    assert findings["config.nydusd_config"].status == Status.OK


@pytest.mark.parametrize(
    "name",
    ["config.toml", "config-blockdev.toml", "config-proxy.toml", "config-fscache.toml"],
)
def test_snapshotter_samples_parse_and_validate(name: str) -> None:
    text = (SAMPLES / "snapshotter" / name).read_text()
    findings = with_snapshotter(text)
    for check in (
        "config.parses",
        "config.version",
        "config.root",
        "config.fs_driver",
        "config.daemon_mode",
        "config.recover_policy",
        "config.failover_policy",
        "config.threads_number",
    ):
        assert findings[check].status == Status.OK, findings[check].message


def test_blockdev_sample_needs_no_nydusd_config() -> None:
    text = (SAMPLES / "snapshotter" / "config-blockdev.toml").read_text()
    assert with_snapshotter(text)["config.nydusd_config"].status == Status.SKIP


def test_fscache_sample_on_old_kernel_fails() -> None:
    facts = healthy_facts(
        snapshotter=(SAMPLES / "snapshotter" / "config-fscache.toml").read_text()
    )
    facts.kernel_release = "4.19.91-26.an8.x86_64"
    finding = findings_of(facts)["config.fscache_kernel"]
    assert finding.status == Status.FAIL
    assert "4.19.91" in finding.message
    assert "fusedev" in finding.next_step


def test_fscache_without_ondemand_config_fails() -> None:
    facts = healthy_facts(
        snapshotter=(SAMPLES / "snapshotter" / "config-fscache.toml").read_text()
    )
    facts.kernel_release = "6.1.0-13-amd64"
    facts.devices.add("cachefiles")
    facts.kernel_config = {"CONFIG_CACHEFILES_ONDEMAND": "n"}
    assert findings_of(facts)["config.fscache_kernel"].status == Status.FAIL
    facts.kernel_config = {"CONFIG_CACHEFILES_ONDEMAND": "y"}
    assert findings_of(facts)["config.fscache_kernel"].status == Status.OK


def test_root_outside_containerd_root_gives_exact_fix() -> None:
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        'root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"',
        'root = "/data/containerd-nydus"',
    )
    containerd = CONTAINERD_CONFIG.replace(
        'root = "/var/lib/containerd"', 'root = "/data/containerd"'
    )
    finding = findings_of(
        healthy_facts(snapshotter=snapshotter, containerd=containerd)
    )["config.root_location"]
    assert finding.status == Status.FAIL
    assert "/data/containerd-nydus" in finding.message
    assert 'root = "/data/containerd/io.containerd.snapshotter.v1.nydus"' in (
        finding.next_step
    )
    assert "mkdir -p /data/containerd/io.containerd.snapshotter.v1.nydus" in (
        finding.next_step
    )
    sources = [e.source for e in finding.evidence]
    assert "/etc/nydus/config.toml" in sources
    assert "/etc/containerd/config.toml" in sources


def test_exported_root_is_accepted() -> None:
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        'root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"',
        'root = "/data/nydus"',
    )
    containerd = (
        CONTAINERD_CONFIG + '\n[proxy_plugins.nydus.exports]\nroot = "/data/nydus"\n'
    )
    finding = findings_of(
        healthy_facts(snapshotter=snapshotter, containerd=containerd)
    )["config.root_location"]
    assert finding.status == Status.OK


def test_k3s_root_over_70_bytes_points_at_exports() -> None:
    k3s_root = (
        "/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.nydus"
    )
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        'root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"',
        f'root = "{k3s_root}"',
    )
    containerd = CONTAINERD_CONFIG.replace(
        'root = "/var/lib/containerd"',
        'root = "/var/lib/rancher/k3s/agent/containerd"',
    )
    findings = findings_of(
        healthy_facts(snapshotter=snapshotter, containerd=containerd)
    )
    assert findings["config.root"].status == Status.FAIL
    assert "72 bytes, max is 70" in findings["config.root"].message
    assert "exports" in findings["config.root"].next_step


@pytest.mark.parametrize(
    ("edit", "check", "text"),
    [
        (
            ("version = 1", "version = 2"),
            "config.version",
            "unsupported configuration version 2",
        ),
        (
            ("version = 1\n", ""),
            "config.version",
            "unsupported configuration version 0",
        ),
        (
            ('fs_driver = "fusedev"', 'fs_driver = "none"'),
            "config.fs_driver",
            "'none' is not valid",
        ),
        (
            ('daemon_mode = "dedicated"', 'daemon_mode = "single"'),
            "config.daemon_mode",
            "invalid daemon mode 'single'",
        ),
        (
            ('recover_policy = "failover"', 'recover_policy = "always"'),
            "config.recover_policy",
            "invalid recover policy 'always'",
        ),
        (
            ("threads_number = 4", "threads_number = 2048"),
            "config.threads_number",
            "2048 is too big, max 1024",
        ),
        (
            (
                "log_rotation_size = 100",
                'log_rotation_size = 100\nfailover_policy = "x"',
            ),
            "config.failover_policy",
            "invalid failover policy 'x'",
        ),
    ],
)
def test_invalid_values_fail(edit: tuple[str, str], check: str, text: str) -> None:
    assert edit[0] in SNAPSHOTTER_CONFIG
    finding = with_snapshotter(SNAPSHOTTER_CONFIG.replace(edit[0], edit[1], 1))[check]
    assert finding.status == Status.FAIL
    assert text in finding.message
    assert finding.next_step


def test_toml_syntax_error_names_line() -> None:
    broken = SNAPSHOTTER_CONFIG.replace('level = "info"', 'level = "info', 1)
    findings = with_snapshotter(broken)
    finding = findings["config.parses"]
    assert finding.status == Status.FAIL
    line = broken.splitlines().index('level = "info') + 1
    assert f"line {line}" in finding.next_step
    assert findings["config.version"].status == Status.SKIP


def test_missing_config_skips_dependents() -> None:
    findings = findings_of(healthy_facts(snapshotter=None))
    assert findings["config.present"].status == Status.FAIL
    assert findings["config.root"].status == Status.SKIP
    assert "not checked" in findings["config.root"].message


def test_missing_nydusd_config_fails() -> None:
    findings = findings_of(healthy_facts(nydusd=None))
    finding = findings["config.nydusd_config"]
    assert finding.status == Status.FAIL
    assert "/etc/nydus/nydusd-config.fusedev.json" in finding.message
    assert "read FUSE configuration file" in finding.message


def test_invalid_nydusd_config_lists_problems() -> None:
    findings = findings_of(healthy_facts(nydusd='{"device": {"backend": {}}}'))
    message = findings["config.nydusd_config"].message
    assert "device.backend.type" in message
    assert "mode" in message


def test_mirrors_dir_must_exist() -> None:
    text = SNAPSHOTTER_CONFIG.replace(
        "[remote.mirrors_config]", '[remote.mirrors_config]\ndir = "/etc/nydus/certs.d"'
    )
    facts = healthy_facts(snapshotter=text)
    facts.path_types["/etc/nydus/certs.d"] = "-"
    finding = findings_of(facts)["config.mirrors_dir"]
    assert finding.status == Status.FAIL
    assert "/etc/nydus/certs.d does not exist" in finding.message
    facts.path_types["/etc/nydus/certs.d"] = "dir"
    assert findings_of(facts)["config.mirrors_dir"].status == Status.OK


def test_missing_fuse_device_fails() -> None:
    facts = healthy_facts()
    facts.devices = set()
    assert findings_of(facts)["config.fuse_device"].status == Status.FAIL


# -- containerd -----------------------------------------------------------------


def with_containerd(text: str) -> dict[str, Finding]:
    return findings_of(healthy_facts(containerd=text))


def test_containerd_v3_sample_passes() -> None:
    findings = with_containerd((SAMPLES / "containerd" / "config-v3.toml").read_text())
    for check in (
        "containerd.proxy_plugin",
        "containerd.cri_snapshotter",
        "containerd.snapshot_annotations",
    ):
        assert findings[check].status == Status.OK, findings[check].message


def test_containerd_v3_keys_in_runtime_table_fail() -> None:
    text = (SAMPLES / "containerd" / "config-v3-runtime-keys.toml").read_text()
    finding = with_containerd(text)["containerd.cri_snapshotter"]
    assert finding.status == Status.FAIL
    assert "io.containerd.cri.v1.runtime" in finding.message
    assert "io.containerd.cri.v1.images" in finding.next_step


def test_missing_proxy_plugin_fails() -> None:
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
    findings = with_containerd(text)
    assert findings["containerd.proxy_plugin"].status == Status.FAIL
    assert findings["containerd.cri_snapshotter"].status == Status.WARN
    assert findings["containerd.snapshot_annotations"].status == Status.WARN


def test_proxy_address_mismatch_names_both() -> None:
    text = CONTAINERD_CONFIG.replace(GRPC, "/run/nydus/other.sock")
    finding = with_containerd(text)["containerd.proxy_plugin"]
    assert finding.status == Status.FAIL
    assert "/run/nydus/other.sock" in finding.message
    assert GRPC in finding.next_step


def test_annotations_disabled_with_nydus_fails() -> None:
    text = CONTAINERD_CONFIG.replace(
        "disable_snapshot_annotations = false", "disable_snapshot_annotations = true"
    )
    assert with_containerd(text)["containerd.snapshot_annotations"].status == (
        Status.FAIL
    )


def test_containerd_syntax_error_fails() -> None:
    finding = with_containerd("version = 2\n[plugins\n")["containerd.config"]
    assert finding.status == Status.FAIL


def test_plugin_row_error_and_containerd_down() -> None:
    facts = healthy_facts()
    facts.plugins_output = facts.plugins_output.replace(  # type: ignore[union-attr]
        "nydus     -              ok", "nydus     -              error"
    )
    assert findings_of(facts)["containerd.plugin"].status == Status.FAIL
    facts.plugins_output, facts.plugins_rc = "ctr: failed to dial", 1
    finding = findings_of(facts)["containerd.plugin"]
    assert finding.status == Status.FAIL
    assert "containerd does not answer" in finding.message


# -- service, processes and sockets ---------------------------------------------


def test_restart_loop_fails_with_restart_count() -> None:
    facts = healthy_facts()
    facts.units["nydus-snapshotter.service"] = unit(
        "nydus-snapshotter.service", "activating", "auto-restart", 0, restarts=7
    )
    findings = findings_of(facts)
    assert findings["service.state"].status == Status.FAIL
    assert "restart loop" in findings["service.state"].message
    assert findings["service.restarts"].status == Status.WARN
    assert "7 times" in findings["service.restarts"].message


def test_unit_not_found_fails() -> None:
    facts = healthy_facts()
    facts.units["nydus-snapshotter.service"] = unit(
        "nydus-snapshotter.service", "inactive", "dead", 0, load="not-found"
    )
    finding = findings_of(facts)["service.state"]
    assert finding.status == Status.FAIL
    assert "not installed" in finding.message


def test_second_snapshotter_process_named() -> None:
    facts = healthy_facts()
    facts.processes.append(
        ProcessInfo(4242, "S", 1, "containerd-nydu", ["containerd-nydus-grpc"])
    )
    finding = findings_of(facts)["process.single_snapshotter"]
    assert finding.status == Status.FAIL
    assert "kill 4242" in finding.next_step
    assert "main PID 100" in finding.next_step


def test_zombie_nydusd_warns() -> None:
    facts = healthy_facts()
    facts.processes.append(ProcessInfo(777, "Z", 100, "nydusd", []))
    finding = findings_of(facts)["process.zombie_nydusd"]
    assert finding.status == Status.WARN
    assert "777" in finding.evidence[0].lines[0]


def test_leftover_cgroup_only_fails_when_stopped() -> None:
    facts = healthy_facts()
    facts.nydusd_cgroups = {"/sys/fs/cgroup/system.slice/nydusd/cgroup.procs": 2}
    assert findings_of(facts)["cgroup.leftover"].status == Status.OK
    facts.units["nydus-snapshotter.service"] = unit(
        "nydus-snapshotter.service", "inactive", "dead", 0
    )
    assert findings_of(facts)["cgroup.leftover"].status == Status.FAIL


@pytest.mark.parametrize(
    ("state", "status", "text"),
    [
        (SocketState.REFUSED, Status.FAIL, "refuses connections"),
        (SocketState.MISSING, Status.FAIL, "does not exist"),
        (SocketState.DENIED, Status.UNKNOWN, "permission denied"),
        (SocketState.UNKNOWN, Status.UNKNOWN, "socket"),
    ],
)
def test_grpc_socket_states(state: SocketState, status: Status, text: str) -> None:
    facts = healthy_facts()
    facts.sockets[GRPC] = state
    finding = findings_of(facts)["socket.grpc"]
    assert finding.status == status
    assert text in finding.message


def test_dead_daemon_socket_warns() -> None:
    facts = healthy_facts()
    sock = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus/socket/d1/api.sock"
    facts.api_sockets = [sock]
    facts.sockets[sock] = SocketState.REFUSED
    finding = findings_of(facts)["nydusd.daemons"]
    assert finding.status == Status.WARN
    assert "1 of 1" in finding.message


def test_no_systemd_is_reported_not_crashed() -> None:
    facts = healthy_facts()
    facts.systemd_output = (
        "System has not been booted with systemd as init system (PID 1). "
        "Can't operate.\nFailed to connect to bus: Host is down"
    )
    facts.units = {}
    findings = findings_of(facts)
    assert findings["systemd.running"].status == Status.WARN
    assert findings["service.state"].status == Status.OK
    assert findings["service.restarts"].status == Status.SKIP


def test_not_installed_node() -> None:
    facts = healthy_facts(snapshotter=None, nydusd=None)
    facts.versions = {"containerd": ("/usr/bin/containerd", "1.6.20")}
    facts.processes = []
    facts.units = {
        "nydus-snapshotter.service": unit(
            "nydus-snapshotter.service", "inactive", "dead", 0, load="not-found"
        )
    }
    findings = findings_of(facts)
    assert findings["snapshotter.installed"].status == Status.FAIL
    assert "not installed" in findings["snapshotter.installed"].message
    assert findings["service.state"].status == Status.SKIP


def test_check_reference_is_current() -> None:
    from pathlib import Path

    from nydus_console.checks import check_reference

    page = Path(__file__).parent.parent / "docs" / "checks.md"
    assert page.read_text() == check_reference(), (
        "docs/checks.md is stale: run scripts/gen-check-reference"
    )
    for check in load_checks():
        assert check.description, f"{check.id} has no description"


def test_root_missing_warns_and_file_fails() -> None:
    root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
    facts = healthy_facts()
    facts.path_types[root] = "-"
    finding = findings_of(facts)["config.root"]
    assert finding.status == Status.WARN
    assert f"mkdir -p {root}" in finding.next_step
    facts.path_types[root] = "file"
    assert findings_of(facts)["config.root"].status == Status.FAIL
    facts.path_types[root] = "dir"
    assert findings_of(facts)["config.root"].status == Status.OK


def test_next_steps_quote_node_values() -> None:
    hostile = "/data/x; rm -rf ~"
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        'root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"',
        f'root = "{hostile}"',
    )
    facts = healthy_facts(snapshotter=snapshotter)
    facts.path_types[hostile] = "-"
    findings = findings_of(facts)
    assert "mkdir -p '/data/x; rm -rf ~'" in findings["config.root"].next_step
    assert 'root = "/data/x; rm -rf ~"' in findings["config.root_location"].next_step


def test_too_long_root_is_never_kept() -> None:
    long_root = "/" + "r" * 85
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        'root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"',
        f'root = "{long_root}"',
    )
    finding = findings_of(healthy_facts(snapshotter=snapshotter))[
        "config.root_location"
    ]
    assert "keep root" not in finding.next_step
    assert "/var/lib/containerd/io.containerd.snapshotter.v1.nydus" in finding.next_step


def test_missing_nydusd_config_points_at_existing_default() -> None:
    from nydus_console.facts import FileRead

    facts = healthy_facts(nydusd=None)
    default = "/etc/nydus/nydusd-config.json"
    facts.files[default] = FileRead(default, "ok", "{}")
    finding = findings_of(facts)["config.nydusd_config"]
    assert 'nydusd_config = "/etc/nydus/nydusd-config.json"' in finding.next_step


def test_failed_service_quotes_journal_cause() -> None:
    facts = healthy_facts()
    facts.units["nydus-snapshotter.service"] = unit(
        "nydus-snapshotter.service", "failed", "failed", 0, restarts=3
    )
    facts.snapshotter_journal = (
        "2023-11-13T09:05:19+0000 node-1 containerd-nydus-grpc[1314]: "
        'time="2023-11-13T09:05:19Z" level=fatal msg="failed to start '
        'nydus-snapshotter" error="failed to initialize snapshotter: load daemon '
        "configuration: read FUSE configuration file /etc/nydus/x.json: open "
        '/etc/nydus/x.json: no such file or directory"\n'
        "2023-11-13T09:05:19+0000 node-1 systemd[1]: nydus-snapshotter.service: "
        "Main process exited, code=exited, status=1/FAILURE\n"
    )
    finding = findings_of(facts)["service.state"]
    assert finding.status == Status.FAIL
    assert "last error: failed to start nydus-snapshotter: failed to initialize" in (
        finding.message
    )
    assert finding.evidence[1].source.startswith("journalctl -u nydus-snapshotter")
    assert any("level=fatal" in line for line in finding.evidence[1].lines)


def test_skip_names_the_check_that_failed() -> None:
    findings = findings_of(healthy_facts(snapshotter=None))
    assert findings["config.version"].status == Status.SKIP
    assert "Snapshotter config.toml readable" in findings["config.version"].message
    assert "valid TOML" not in findings["config.version"].message


def test_worst_finding_names_a_cause_before_a_symptom() -> None:
    symptoms = symptom_checks()
    assert {"service.state", "socket.grpc"} <= symptoms
    assert "config.nydusd_config" not in symptoms
    service = Finding("service.state", "Snapshotter service state", Status.FAIL, "")
    config = Finding("config.nydusd_config", "nydusd config", Status.FAIL, "")
    restarts = Finding("service.restarts", "Snapshotter restarts", Status.WARN, "")
    assert worst_finding([service, config], symptoms) is config
    assert worst_finding([service, config]) is service, "without symptoms: first"
    assert worst_finding([restarts, service], symptoms) is service, "fail beats warn"


def test_symptom_marks_name_known_checks() -> None:
    ids = {check.id for check in load_checks()}
    assert symptom_checks() <= ids
