"""Validation of configs against the schema and the shared config rules, and the
`config validate` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factbuilder import CONTAINERD_CONFIG, SAMPLES, SNAPSHOTTER_CONFIG, healthy_facts

from nydus_console.checks import run_checks
from nydus_console.cli import main
from nydus_console.configedit.document import load_document
from nydus_console.configedit.validate import (
    Problem,
    ValidationContext,
    validate,
)
from nydus_console.findings import Status
from nydus_console.inventory import NodePaths

NYDUS = SAMPLES / "nydus" / "misc"
V2_TOML = NYDUS / "configs" / "nydusd-config-v2.toml"
SECRETS_IN_SAMPLES = (
    "base64_encoded",
    "bear_token",
    "my_access_key_id",
    "my_access_key_secret",
    "fc4a7db5614afc2f400e9478bebed1aefdbc9d7cd03210b84f144683a7a6fd1a",
)
DRAGONFLY_WARNING = {("warning", "device.cache.config.compressed")}
REGISTRY_V1 = {
    ("error", "device.backend.config.host"),
    ("error", "device.backend.config.repo"),
}
REGISTRY_V2 = {
    ("error", "backend.registry.host"),
    ("error", "backend.registry.repo"),
    ("warning", "backend.registy"),
}
EXPECTED = {
    "snapshotter/config.toml": set(),
    "snapshotter/config-blockdev.toml": set(),
    "snapshotter/config-proxy.toml": set(),
    "snapshotter/config-fscache.toml": set(),
    "containerd/config-v2.toml": set(),
    "containerd/config-v3.toml": set(),
    "containerd/config-v3-runtime-keys.toml": {
        ("error", 'plugins."io.containerd.cri.v1.runtime".containerd.snapshotter'),
        (
            "warning",
            'plugins."io.containerd.cri.v1.images".disable_snapshot_annotations',
        ),
    },
    "nydus/misc/configs/nydusd-config.json": REGISTRY_V1,
    "nydus/misc/performance/nydusd_config.json": {
        ("error", "device.backend.config.repo")
    },
    "nydus/misc/configs/nydusd-config-v2.toml": REGISTRY_V2
    | {
        ("warning", "cache.enable_encryption"),
        ("warning", "cache.enable_convergent_encryption"),
        ("warning", "cache.encryption_key"),
    },
    "nydus/misc/configs/nydusd-blob-cache-entry-configuration-v2.toml": REGISTRY_V2
    | {("warning", "metadata_path")},
    "nydus/misc/configs/nydusd-blob-cache-entry.toml": {("error", "type")},
    "nydus/misc/configs/nydusd-boostrap-blob-cache-entry.json": {("error", "type")},
    **{
        f"nydus/misc/dragonfly/{path.name}": DRAGONFLY_WARNING
        for path in (NYDUS / "dragonfly").glob("*.json")
    },
}


def problems_of(
    relative: str, context: ValidationContext | None = None
) -> list[Problem]:
    path = SAMPLES / relative
    return validate(load_document("", path.read_text(), str(path)), context)


def check_text(
    kind: str, text: str, context: ValidationContext | None = None
) -> list[Problem]:
    return validate(load_document(kind, text, f"/etc/{kind}.conf"), context)


def only(problems: list[Problem], key: str) -> Problem:
    matching = [p for p in problems if p.key == key]
    assert len(matching) == 1, [(p.key, p.message) for p in problems]
    return matching[0]


# -- samples ---------------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_has_expected_problems(relative: str) -> None:
    found = {(p.severity, p.key) for p in problems_of(relative)}
    assert found == EXPECTED[relative]


def test_every_config_sample_is_listed() -> None:
    samples = {
        str(path.relative_to(SAMPLES))
        for pattern in ("snapshotter/*.toml", "containerd/*.toml", "nydus/misc/*/*")
        for path in SAMPLES.glob(pattern)
    }
    assert samples == set(EXPECTED)


def test_rejected_template_error_explains_snapshotter() -> None:
    problem = only(
        problems_of("nydus/misc/configs/nydusd-config.json"),
        "device.backend.config.host",
    )
    assert "failed to parse configuration information" in problem.message
    assert 'device.backend.config.host = "registry.example.com"' in problem.fix
    assert "snapshotter fills host and repo" in problem.fix
    assert (problem.line, problem.column) == (5, 7)


def test_template_passes_with_its_snapshotter_config() -> None:
    path = NYDUS / "configs" / "nydusd-config.json"
    document = load_document("nydusd", path.read_text(), "/etc/nydus/n.json")
    snapshotter = SNAPSHOTTER_CONFIG.replace(
        "/etc/nydus/nydusd-config.fusedev.json", "/etc/nydus/n.json"
    )
    assert validate(document, ValidationContext(snapshotter_text=snapshotter)) == []
    assert validate(document, ValidationContext(nydusd_template=True)) == []
    assert validate(document, ValidationContext(snapshotter_text=SNAPSHOTTER_CONFIG))


def test_misspelt_registry_table_suggests_name() -> None:
    problem = only(
        problems_of("nydus/misc/configs/nydusd-config-v2.toml"), "backend.registy"
    )
    assert "did you mean backend.registry?" in problem.message
    assert problem.fix == "rename backend.registy to backend.registry"
    assert (
        problem.line == V2_TOML.read_text().splitlines().index("[backend.registy]") + 1
    )


def test_dragonfly_warning_names_ignored_key() -> None:
    problem = only(
        problems_of("nydus/misc/dragonfly/nydusd-config.json"),
        "device.cache.config.compressed",
    )
    assert "has no effect" in problem.message
    assert problem.value == "false"


# -- schema problems -------------------------------------------------------------------


def test_unknown_key_suggests_closest() -> None:
    text = SNAPSHOTTER_CONFIG.replace("fs_driver =", "fs_drivr =")
    problem = only(check_text("snapshotter", text), "daemon.fs_drivr")
    assert problem.severity == "warning"
    assert "did you mean daemon.fs_driver?" in problem.message
    assert problem.value == '"fusedev"'
    assert problem.line == text.splitlines().index('fs_drivr = "fusedev"') + 1


def test_unknown_key_without_close_match() -> None:
    problem = only(check_text("snapshotter", "version = 1\nzzz_qqq = 1\n"), "zzz_qqq")
    assert "did you mean" not in problem.message
    assert problem.fix == "remove zzz_qqq, or correct its name"


def test_containerd_keys_outside_nydus_are_not_reported() -> None:
    text = (
        CONTAINERD_CONFIG
        + '\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "x"\n'
    )
    assert check_text("containerd", text) == []
    text = CONTAINERD_CONFIG.replace(
        'type = "snapshot"', 'type = "snapshot"\n    adress = "x"'
    )
    assert only(check_text("containerd", text), "proxy_plugins.nydus.adress")


@pytest.mark.parametrize(
    ("old", "new", "key", "message", "fix"),
    [
        (
            "version = 1",
            "version = 2",
            "version",
            "allowed values: 1",
            "set version = 1",
        ),
        (
            "threads_number = 4",
            "threads_number = 2048",
            "daemon.threads_number",
            "must be at most 1024",
            "at most 1024, such as daemon.threads_number = 0",
        ),
        (
            "threads_number = 4",
            'threads_number = "4"',
            "daemon.threads_number",
            "expected a whole number, found a string",
            "daemon.threads_number",
        ),
        (
            'daemon_mode = "dedicated"',
            'daemon_mode = "single"',
            "daemon_mode",
            "allowed values:",
            'one of "dedicated", "multiple", "shared", "none"',
        ),
        (
            'gc_period = "24h"',
            'gc_period = "1 day"',
            "cache_manager.gc_period",
            "Go duration",
            'cache_manager.gc_period = "24h"',
        ),
        (
            "log_to_stdout = false",
            'log_to_stdout = "no"',
            "log.log_to_stdout",
            "expected true or false",
            "log.log_to_stdout = false",
        ),
    ],
)
def test_schema_errors(old: str, new: str, key: str, message: str, fix: str) -> None:
    assert old in SNAPSHOTTER_CONFIG
    problem = only(check_text("snapshotter", SNAPSHOTTER_CONFIG.replace(old, new)), key)
    assert problem.severity == "error"
    assert message in problem.message
    assert fix in problem.fix
    assert problem.line is not None


def test_missing_version_is_an_error() -> None:
    problem = only(
        check_text("snapshotter", "[daemon]\nfs_driver = 'fusedev'\n"), "version"
    )
    assert problem.severity == "error"
    assert problem.fix == "set version = 1"
    assert problem.line is None


def test_long_root_reports_bytes_and_exports() -> None:
    root = "/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.nydus"
    text = SNAPSHOTTER_CONFIG.replace(
        "/var/lib/containerd/io.containerd.snapshotter.v1.nydus", root
    )
    problem = only(check_text("snapshotter", text), "root")
    assert problem.severity == "error"
    assert "72 bytes, max is 70" in problem.message
    assert "exports" in problem.fix


def test_keychain_conflict_is_an_error() -> None:
    text = SNAPSHOTTER_CONFIG.replace(
        "enable_cri_keychain = false", "enable_cri_keychain = true"
    ).replace("enable_kubeconfig_keychain = false", "enable_kubeconfig_keychain = true")
    problem = only(
        check_text("snapshotter", text), "remote.auth.enable_kubeconfig_keychain"
    )
    assert problem.severity == "error"
    assert "can't be set at the same time" in problem.message


def test_prefetch_threads_checked_only_when_enabled() -> None:
    base = (
        NYDUS / "dragonfly" / "nydusd-http-proxy-nofallback-config.json"
    ).read_text()
    off = base.replace('"threads_count": 10', '"threads_count": 0')
    assert {p.key for p in check_text("nydusd", off)} == {
        "device.cache.config.compressed"
    }
    on = off.replace('"enable": false', '"enable": true')
    problem = only(check_text("nydusd", on), "fs_prefetch.threads_count")
    assert "outside 1 to 1024" in problem.message


def test_v1_rejects_http_proxy_backend() -> None:
    text = json.dumps(
        {"device": {"backend": {"type": "http-proxy", "config": {}}}, "mode": "direct"}
    )
    problem = only(check_text("nydusd", text), "device.backend.type")
    assert problem.severity == "error"
    assert '"registry"' in problem.fix


def test_v1_key_of_other_backend_warns() -> None:
    text = json.dumps(
        {
            "device": {
                "backend": {
                    "type": "localfs",
                    "config": {"dir": "/blobs", "host": "registry.example.com"},
                }
            },
            "mode": "direct",
        }
    )
    problem = only(check_text("nydusd", text), "device.backend.config.host")
    assert problem.severity == "warning"
    assert "the localfs backend does not read it" in problem.message


# -- shared rules with context ---------------------------------------------------------


def test_root_location_needs_containerd_context() -> None:
    text = SNAPSHOTTER_CONFIG.replace(
        "/var/lib/containerd/io.containerd.snapshotter.v1.nydus", "/data/nydus"
    )
    assert check_text("snapshotter", text) == []
    context = ValidationContext(containerd_text=CONTAINERD_CONFIG)
    problem = only(check_text("snapshotter", text, context), "root")
    assert problem.severity == "error"
    assert "is not /var/lib/containerd/io.containerd.snapshotter.v1.nydus" in (
        problem.message
    )
    assert '[proxy_plugins.nydus.exports] root = "/data/nydus"' in problem.fix
    exported = CONTAINERD_CONFIG.replace(
        'type = "snapshot"',
        'type = "snapshot"\n  [proxy_plugins.nydus.exports]\n    root = "/data/nydus"',
    )
    assert (
        check_text("snapshotter", text, ValidationContext(containerd_text=exported))
        == []
    )


def test_root_location_same_as_health_check() -> None:
    text = SNAPSHOTTER_CONFIG.replace(
        "/var/lib/containerd/io.containerd.snapshotter.v1.nydus", "/data/nydus"
    )
    facts = healthy_facts(snapshotter=text)
    finding = {f.check: f for f in run_checks(facts, NodePaths())}[
        "config.root_location"
    ]
    assert finding.status == Status.FAIL
    context = ValidationContext.from_facts(facts, NodePaths())
    problem = only(check_text("snapshotter", text, context), "root")
    assert problem.message == finding.message
    assert problem.fix == finding.next_step


def test_proxy_address_needs_snapshotter_context() -> None:
    text = CONTAINERD_CONFIG.replace(
        "/run/containerd-nydus/containerd-nydus-grpc.sock", "/run/other.sock"
    )
    assert check_text("containerd", text) == []
    context = ValidationContext(snapshotter_text=SNAPSHOTTER_CONFIG)
    problem = only(
        check_text("containerd", text, context), "proxy_plugins.nydus.address"
    )
    assert problem.severity == "error"
    assert "containerd dials /run/other.sock" in problem.message
    assert 'address = "/run/containerd-nydus/containerd-nydus-grpc.sock"' in (
        problem.fix
    )


def test_missing_proxy_plugin_needs_no_context() -> None:
    problem = only(check_text("containerd", "version = 2\n"), "proxy_plugins.nydus")
    assert problem.severity == "error"
    keys = {p.key for p in check_text("containerd", "version = 2\n")}
    assert 'plugins."io.containerd.grpc.v1.cri".containerd.snapshotter' in keys


def test_cri_annotations_error_when_nydus_pulls() -> None:
    text = CONTAINERD_CONFIG.replace(
        "disable_snapshot_annotations = false", "disable_snapshot_annotations = true"
    )
    key = 'plugins."io.containerd.grpc.v1.cri".containerd.disable_snapshot_annotations'
    problem = only(check_text("containerd", text), key)
    assert problem.severity == "error"
    assert problem.value == "true"


def test_kernel_rules_need_kernel_context() -> None:
    fscache = (SAMPLES / "snapshotter" / "config-fscache.toml").read_text()
    assert check_text("snapshotter", fscache) == []
    old = ValidationContext(kernel_release="5.10.0-28-amd64", devices={"fuse"})
    problem = only(check_text("snapshotter", fscache, old), "daemon.fs_driver")
    assert "older than 5.19" in problem.message
    no_fuse = ValidationContext(kernel_release="6.1.0", devices=set())
    problem = only(
        check_text("snapshotter", SNAPSHOTTER_CONFIG, no_fuse), "daemon.fs_driver"
    )
    assert "/dev/fuse is missing" in problem.message


def test_path_rules_need_probed_paths() -> None:
    text = SNAPSHOTTER_CONFIG.replace(
        "[remote.mirrors_config]", '[remote.mirrors_config]\ndir = "/etc/nydus/certs.d"'
    )
    assert check_text("snapshotter", text) == []
    context = ValidationContext(
        path_types={
            "/etc/nydus/certs.d": "-",
            "/etc/nydus/nydusd-config.fusedev.json": "-",
        }
    )
    problems = check_text("snapshotter", text, context)
    mirrors = only(problems, "remote.mirrors_config.dir")
    assert "does not exist" in mirrors.message
    nydusd = only(problems, "daemon.nydusd_config")
    assert "read FUSE configuration file" in nydusd.message


def test_healthy_node_validates_clean() -> None:
    facts = healthy_facts()
    context = ValidationContext.from_facts(facts, NodePaths())
    for kind, text in (
        ("snapshotter", facts.file("/etc/nydus/config.toml").text),
        ("containerd", facts.file("/etc/containerd/config.toml").text),
    ):
        assert check_text(kind, text, context) == []
    nydusd_path = "/etc/nydus/nydusd-config.fusedev.json"
    document = load_document("nydusd", facts.file(nydusd_path).text, nydusd_path)
    assert validate(document, context) == []


# -- secrets ---------------------------------------------------------------------------


def test_secret_values_are_masked() -> None:
    text = json.dumps(
        {
            "device": {
                "backend": {
                    "type": "registry",
                    "config": {
                        "host": "r.example",
                        "repo": "a/b",
                        "auth": 12345,
                        "registry_tokn": "eyJhbGciOi.secret",
                    },
                }
            },
            "mode": "direct",
        }
    )
    problems = check_text("nydusd", text)
    auth = only(problems, "device.backend.config.auth")
    assert auth.value == "***"
    token = only(problems, "device.backend.config.registry_tokn")
    assert token.value == "***"
    assert "12345" not in repr(problems)
    assert "eyJhbGciOi" not in repr(problems)


def test_only_credentials_are_masked() -> None:
    problems = problems_of("nydus/misc/configs/nydusd-config-v2.toml")
    assert only(problems, "cache.enable_encryption").value == "true"
    assert only(problems, "cache.encryption_key").value == "***"
    assert only(problems, "backend.registy").value == ""


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_output_masks_secrets(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        str(V2_TOML),
        str(NYDUS / "configs" / "nydusd-blob-cache-entry-configuration-v2.toml"),
    ]
    main(["config", "validate", *files, *(["--json"] if as_json else [])])
    out = capsys.readouterr().out
    assert "cache.encryption_key = ***" in out or '"value": "***"' in out
    for secret in SECRETS_IN_SAMPLES:
        assert secret not in out


# -- the command -----------------------------------------------------------------------


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["config", "validate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_clean_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(SAMPLES / "snapshotter" / "config.toml")], capsys)
    assert code == 0
    assert "no problems (snapshotter config)" in out


def test_cli_warnings_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = NYDUS / "dragonfly" / "nydusd-config.json"
    code, out, _ = run([str(path)], capsys)
    assert code == 1
    assert f"{path}:26:9: warning: device.cache.config.compressed = false:" in out
    assert "    fix: remove device.cache.config.compressed" in out


def test_cli_errors_exit_2_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = NYDUS / "performance" / "nydusd_config.json"
    code, out, _ = run([str(path), "--json"], capsys)
    assert code == 2
    report = json.loads(out)
    assert report["exit_code"] == 2
    (entry,) = report["files"]
    assert entry["kind"] == "nydusd"
    (problem,) = entry["problems"]
    assert problem["key"] == "device.backend.config.repo"
    assert problem["severity"] == "error"
    assert (problem["line"], problem["column"]) == (5, 13)
    assert problem["fix"]


def test_cli_files_together_form_context(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    snapshotter = tmp_path / "config.toml"
    snapshotter.write_text(
        SNAPSHOTTER_CONFIG.replace(
            "/var/lib/containerd/io.containerd.snapshotter.v1.nydus", "/data/nydus"
        )
    )
    containerd = tmp_path / "containerd.toml"
    containerd.write_text(CONTAINERD_CONFIG)
    template = NYDUS / "configs" / "nydusd-config.json"
    code, out, _ = run([str(snapshotter), str(template)], capsys)
    assert code == 0, out
    code, out, _ = run([str(snapshotter), str(containerd)], capsys)
    assert code == 2
    assert f'{snapshotter}:2:1: error: root = "/data/nydus":' in out


def test_cli_syntax_error_names_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "config.toml"
    broken.write_text('version = 1\n[daemon]\nfs_driver = "fusedev\n')
    code, out, _ = run([str(broken), "--kind", "snapshotter"], capsys)
    assert code == 2
    assert f"{broken}:3:" in out
    assert "fix the syntax at line 3" in out


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("config.toml", []),
        ("nydusd.toml", []),
        ("settings", ["--kind", "snapshotter"]),
        ("nydusd-config", ["--kind", "nydusd"]),
    ],
)
def test_cli_table_header_first_is_toml(
    name: str, args: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / name
    broken.write_text('[daemon\nnydusd_path = "/usr/bin/nydusd"\n')
    code, out, _ = run([str(broken), *args], capsys)
    assert code == 2
    assert f"{broken}:1:8: error: Unexpected character" in out
    assert "Expecting value" not in out


def test_table_header_first_loads_as_toml() -> None:
    text = '[backend]\ntype = "registry"\n'
    assert load_document("nydusd", text, "nydusd-config").format == "toml"
    assert load_document("", "[daemon]\n", "config.toml").format == "toml"


def test_cli_json_array_is_not_a_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array = tmp_path / "nydusd.json"
    array.write_text("[1, 2]\n")
    code, out, _ = run([str(array)], capsys)
    assert code == 2
    assert f"{array}:1:1: error: the top level must be a JSON object" in out


def test_cli_kind_option_overrides_detection(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    odd = tmp_path / "settings.toml"
    odd.write_text("version = 1\n")
    code, _, err = run([str(odd)], capsys)
    assert code == 64
    assert "cannot tell which config" in err
    code, out, _ = run([str(odd), "--kind", "snapshotter"], capsys)
    assert code == 0, out


def test_cli_plain_text_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("restart the snapshotter after lunch\n")
    code, out, err = run([str(notes)], capsys)
    assert code == 64
    assert f"cannot tell which config {notes} is: it is neither TOML nor JSON" in err
    assert out == ""
    named = tmp_path / "broken.toml"
    named.write_text("restart the snapshotter\n")
    code, out, _ = run([str(named)], capsys)
    assert code == 2, "a .toml file gets its syntax error"
    assert f"{named}:1:" in out


@pytest.mark.parametrize(
    "args",
    [[], ["/nonexistent/config.toml"], ["--kind", "docker", "x.toml"]],
    ids=["no file", "missing file", "bad kind"],
)
def test_cli_usage_errors_exit_64(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["config", "validate", *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 64
    assert capsys.readouterr().err


def test_cli_config_needs_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["config"])
    assert caught.value.code == 64


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        (":9110", True),
        ("127.0.0.1:65535", True),
        ("[::1]:9110", True),
        ("127.0.0.1:0", False),
        ("127.0.0.1:65536", False),
        ("127.0.0.1:99999", False),
        ("banana", False),
    ],
)
def test_metrics_address_port_range(address: str, valid: bool) -> None:
    text = f'version = 1\n[metrics]\naddress = "{address}"\n'
    problems = validate(load_document("snapshotter", text, "config.toml"))
    flagged = [p for p in problems if "metrics.address" in p.message]
    assert (not flagged) is valid, flagged
