"""The setup engine's pure parts: answers, the root rule, files, tarballs.

The whole wizard on a booted node is in test_setup_nspawn.py; these tests
cover the decisions and refusals that need no node.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from doubles.release_tarball import build_release, write_tarball

from nydus_console.configs import MAX_ROOT_BYTES, parse_containerd_config
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.setup.answers import (
    SHORT_ROOT,
    AnswerError,
    Answers,
    load_answers,
    resolve,
)
from nydus_console.setup.files import containerd_document, unit_text
from nydus_console.setup.plan import (
    PlanError,
    PlanStep,
    SetupPlan,
    check_node,
    desired_files,
    file_diff,
    plan_binaries,
    validate_files,
)
from nydus_console.setup.release import ReleaseError, unpack_binaries
from nydus_console.setup.survey import (
    LAYOUTS,
    ContainerdSetup,
    Survey,
    fscache_support,
    parse_survey,
)
from nydus_console.setup.verify import scrape_job, scrape_target
from nydus_console.setupcli import SetupCommand
from nydus_console.transport.local import LocalTransport
from nydus_console.transport.upload import upload_file

CONTAINERD_TEXT = """\
# site settings: keep this comment
version = 2
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
"""


def survey(
    root: str = "/var/lib/containerd", layout: str = "containerd", **extra: object
) -> Survey:
    containerd = ContainerdSetup(
        layout,
        "/etc/containerd/config.toml",
        CONTAINERD_TEXT,
        2,
        root,
        "/run/containerd/containerd.sock",
        "containerd.service",
        "1.6.20",
    )
    values: dict[str, object] = {
        "node": "node-1",
        "os_name": "Debian",
        "kernel": "6.1.0",
        "fuse": True,
        "fscache": False,
        "fscache_reason": "not supported: kernel 6.1",
        "systemd": True,
        "containerd": containerd,
    }
    values.update(extra)
    return Survey(**values)  # type: ignore[arg-type]


def test_defaults_derive_the_root_from_containerd() -> None:
    settings = resolve(Answers(), survey())
    assert settings.fs_driver == "fusedev"
    assert settings.root == "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
    assert not settings.export_root
    assert settings.metrics_address == "127.0.0.1:9110"
    assert settings.system_controller and settings.recover_policy == "restart"
    assert all(choice.why for choice in settings.choices)


def test_long_containerd_root_exports_a_short_root() -> None:
    k3s = LAYOUTS[0]
    settings = resolve(Answers(), survey(root=k3s.root, layout="k3s"))
    derived = f"{k3s.root}/io.containerd.snapshotter.v1.nydus"
    assert len(derived.encode()) > MAX_ROOT_BYTES
    assert settings.root == SHORT_ROOT
    assert settings.export_root
    document = containerd_document(CONTAINERD_TEXT, "config.toml", settings, 2)
    parsed = parse_containerd_config(document.dumps())
    assert parsed.exported_root == SHORT_ROOT


def test_prometheus_answer_opens_the_metrics_port() -> None:
    settings = resolve(Answers(prometheus=True), survey())
    assert settings.metrics_address == ":9110"
    spec = NodeSpec(name="node-1", host="10.0.0.5")
    job = scrape_job([scrape_target(spec, settings)])
    assert "job_name: nydus" in job
    assert "metrics_path: /v1/metrics" in job
    assert '"10.0.0.5:9110"' in job


def test_fscache_needs_kernel_support() -> None:
    with pytest.raises(AnswerError, match="fscache.*cannot work on node-1"):
        resolve(Answers(fs_driver="fscache"), survey())
    facts = NodeFacts("n", 0.0, kernel_release="6.1.0", devices={"cachefiles"})
    facts.kernel_config = {
        "CONFIG_CACHEFILES_ONDEMAND": "y",
        "CONFIG_EROFS_FS_ONDEMAND": "y",
    }
    assert fscache_support(facts)[0]
    facts.kernel_release = "5.10.0"
    assert fscache_support(facts) == (
        False,
        "not supported: kernel 5.10.0 is older than 5.19",
    )
    settings = resolve(
        Answers(fs_driver="fscache"), survey(fscache=True, fscache_reason="ok")
    )
    assert settings.daemon_mode == "shared"


def test_answers_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "answers.toml"
    path.write_text(
        '[setup]\nprometheus = true\nrecover_policy = "failover"\n'
        '[setup.registry]\nhost = "registry.example.com"\n'
    )
    answers = load_answers(path, ["recover_policy=restart", "system_controller=no"])
    assert answers.prometheus and answers.registry_host == "registry.example.com"
    assert answers.recover_policy == "restart"
    assert not answers.system_controller


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("fs_driver=blockdev", "fs_driver = 'blockdev' is not one of"),
        ("root=relative/path", "not an absolute path"),
        ("root=/" + "r" * 80, "at most 70"),
        ("colour=blue", "unknown answer 'colour'"),
        ("prometheus=maybe", "must be true or false"),
        ("no-equals-sign", "expected KEY=VALUE"),
        ("registry_host=bad host", "registry_host = 'bad host' is not a host"),
        (
            'registry_host=registry.example.com:5000/evil"',
            "registry_host = 'registry.example.com:5000/evil\"' is a URL or has a path",
        ),
        ("registry_host=https://registry.example.com", "is a URL or has a path"),
        ("registry_host=registry.example.com:0", "not a number from 1 to 65535"),
    ],
)
def test_bad_answers_name_the_value(flag: str, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        load_answers(None, [flag])


def test_containerd_merge_keeps_the_rest_of_the_file() -> None:
    settings = resolve(Answers(), survey())
    text = containerd_document(CONTAINERD_TEXT, "c.toml", settings, 2).dumps()
    assert text.startswith("# site settings: keep this comment\n")
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in text
    data = tomlkit.parse(text).unwrap()
    assert data["proxy_plugins"]["nydus"] == {
        "type": "snapshot",
        "address": "/run/containerd-nydus/containerd-nydus-grpc.sock",
    }
    cri = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["snapshotter"] == "nydus"
    assert cri["disable_snapshot_annotations"] is False
    again = containerd_document(text, "c.toml", settings, 2).dumps()
    assert again == text


def test_existing_snapshotter_config_keeps_other_keys() -> None:
    spec = NodeSpec(name="node-1", local=True)
    old = '# mine\nversion = 1\n\n[log]\nlevel = "debug"\n'
    node = survey(files={"/etc/nydus/config.toml": old})
    files = {f.kind: f for f in desired_files(spec, node, resolve(Answers(), node))}
    new = files["snapshotter"].new_text
    assert new.startswith("# mine\n")
    assert 'level = "debug"' in new
    assert "io.containerd.snapshotter.v1.nydus" in file_diff(files["snapshotter"])
    assert "KillMode=process" in files["unit"].new_text
    assert json.loads(files["nydusd"].new_text)["device"]["cache"]["config"] == {
        "work_dir": "/var/lib/containerd/io.containerd.snapshotter.v1.nydus/cache"
    }


def test_unit_keeps_nydusd_alive_across_restarts() -> None:
    text = unit_text("/etc/nydus/config.toml")
    assert "KillMode=process" in text
    assert "ExecStart=/usr/local/bin/containerd-nydus-grpc --config " in text
    assert "Before=containerd.service" in text


def test_missing_binaries_need_a_tarball() -> None:
    with pytest.raises(PlanError, match="give the release tarball"):
        plan_binaries(survey(binaries={}), {})


def test_node_without_prerequisites_is_rejected() -> None:
    with pytest.raises(PlanError, match="does not run systemd"):
        check_node(survey(systemd=False))
    # A masked unit is a symlink to /dev/null, which a write would replace.
    with pytest.raises(PlanError, match="nydus-snapshotter.service is masked"):
        check_node(survey(unit_enabled="masked"))
    node = survey()
    node.containerd.version = ""
    with pytest.raises(PlanError, match="containerd was not found"):
        check_node(node)


def test_release_tarballs_are_checked_first(tmp_path: Path) -> None:
    tarballs = build_release(tmp_path / "release")
    binaries = unpack_binaries(tarballs, tmp_path)
    assert set(binaries) == {
        "nydusd",
        "nydus-image",
        "nydusify",
        "containerd-nydus-grpc",
        "nydus-overlayfs",
    }
    grpc = binaries["containerd-nydus-grpc"]
    assert grpc.sha256 == hashlib.sha256(grpc.path.read_bytes()).hexdigest()
    version = subprocess.run(
        [sys.executable, str(grpc.path), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "v0.15.15" in version.stdout


def test_checksum_problems_refuse_the_tarball(tmp_path: Path) -> None:
    tarball = write_tarball(tmp_path / "t.tgz", {"bin/nydusd": b"#!/bin/sh\n"})
    Path(f"{tarball}.sha256").write_text("0" * 64 + "  t.tgz\n")
    with pytest.raises(ReleaseError, match="the tarball is corrupt"):
        unpack_binaries([tarball], tmp_path)
    Path(f"{tarball}.sha256").unlink()
    with pytest.raises(ReleaseError, match="no checksum file"):
        unpack_binaries([tarball], tmp_path)
    with pytest.raises(ReleaseError, match="does not exist"):
        unpack_binaries([tmp_path / "missing.tgz"], tmp_path)
    assert not (tmp_path / "nydusd").exists()


def _flip_and_resum(tarball: Path, target: Path) -> Path:
    """Copy `tarball` with one byte flipped and a .sha256 made from the copy."""
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    digest = hashlib.sha256(data).hexdigest()
    Path(f"{target}.sha256").write_text(f"{digest}  {target.name}\n")
    return target


def test_damaged_archive_with_matching_checksum_is_refused(tmp_path: Path) -> None:
    tarballs = build_release(tmp_path / "release")
    damaged = _flip_and_resum(tarballs[1], tmp_path / tarballs[1].name)
    gzip = subprocess.run(["gzip", "-t", str(damaged)], capture_output=True)
    assert gzip.returncode != 0
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ReleaseError) as caught:
        unpack_binaries([tarballs[0], damaged], out)
    assert str(damaged) in str(caught.value)
    assert "is damaged" in str(caught.value)
    assert list(out.iterdir()) == []


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    tarballs = build_release(tmp_path / "release")
    data = tarballs[0].read_bytes()
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(data[: len(data) - 40])
    digest = hashlib.sha256(cut.read_bytes()).hexdigest()
    Path(f"{cut}.sha256").write_text(f"{digest}  cut.tgz\n")
    with pytest.raises(ReleaseError, match="cut.tgz is damaged"):
        unpack_binaries([cut], tmp_path)


def test_tarball_lacking_a_binary_names_it(tmp_path: Path) -> None:
    tarball = write_tarball(
        tmp_path / "snap.tgz", {"bin/containerd-nydus-grpc": b"#!/bin/sh\n"}
    )
    with pytest.raises(ReleaseError) as caught:
        unpack_binaries([tarball], tmp_path)
    message = str(caught.value)
    assert "snap.tgz" in message
    assert "not nydus-overlayfs" in message


def test_survey_output_parses() -> None:
    output = (
        "::nc-ab:: os\nDebian GNU/Linux 12 (bookworm)\n"
        "::nc-ab:: bin /usr/local/bin/nydusd -\n"
        "::nc-ab:: bin /usr/local/bin/containerd-nydus-grpc " + "a" * 64 + "\n"
        "::nc-ab:: path /var/lib/rancher/k3s/agent/etc/containerd dir\n"
        "::nc-ab:: end\n"
    )
    found = parse_survey(output, "ab")
    assert found["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert found["bins"]["/usr/local/bin/nydusd"] == ""
    assert found["paths"]["/var/lib/rancher/k3s/agent/etc/containerd"] == "dir"


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "PATH": "/usr/bin"}
    return subprocess.run(
        [sys.executable, "-m", "nydus_console", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_cli_refuses_bad_input_with_exit_64(tmp_path: Path) -> None:
    result = run_cli("setup", "--set", "fs_driver=ext4", home=tmp_path)
    assert result.returncode == 64
    assert "fs_driver = 'ext4' is not one of fusedev, fscache" in result.stderr
    result = run_cli("setup", "--tarball", str(tmp_path / "x.tgz"), home=tmp_path)
    assert result.returncode == 64
    assert "x.tgz does not exist" in result.stderr


async def test_local_upload_copies_the_file(tmp_path: Path) -> None:
    source = tmp_path / "nydusd"
    source.write_bytes(b"#!/bin/sh\necho nydusd\n")
    target = tmp_path / "staging" / "nydusd"
    await upload_file(LocalTransport("here"), source, str(target))
    assert target.read_bytes() == source.read_bytes()
    assert not Path(f"{target}.part").exists()


def test_k3s_template_starts_from_generated_config() -> None:
    k3s = LAYOUTS[0]
    containerd = ContainerdSetup(
        "k3s",
        k3s.template,
        CONTAINERD_TEXT,
        2,
        k3s.root,
        k3s.socket,
        "k3s.service",
        "v1.7.11-k3s2",
        base_path=k3s.generated,
    )
    node = survey(containerd=containerd)
    settings = resolve(Answers(), node)
    spec = NodeSpec(name="node-1", host="10.0.0.5")
    files = {f.kind: f for f in desired_files(spec, node, settings)}
    template = files["containerd"]
    assert template.path == k3s.template
    assert template.old_text is None
    assert template.restarts == ("k3s.service",)
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in template.new_text
    assert f'root = "{SHORT_ROOT}"' in template.new_text


@pytest.mark.parametrize("layout", ["containerd", "k3s"])
def test_default_files_pass_config_validate(layout: str) -> None:
    k3s = LAYOUTS[0]
    node = survey(root=k3s.root, layout=layout) if layout == "k3s" else survey()
    settings = resolve(Answers(registry_host="[::1]:5000"), node)
    spec = NodeSpec(name="node-1", host="10.0.0.5")
    validate_files(spec, desired_files(spec, node, settings))


@pytest.mark.parametrize(
    ("answer", "value", "problem"),
    [
        ("metrics_address", "banana", "does not have the expected form"),
        ("metrics_address", "localhost:", "does not have the expected form"),
    ],
)
def test_answers_that_break_a_config_are_refused(
    answer: str, value: str, problem: str
) -> None:
    node = survey()
    settings = resolve(Answers().with_values({answer: value}, "--set"), node)
    spec = NodeSpec(name="node-1", host="10.0.0.5")
    with pytest.raises(AnswerError) as caught:
        validate_files(spec, desired_files(spec, node, settings))
    message = str(caught.value)
    assert f"answer {answer}" in message
    assert repr(value).strip("'") in message
    assert problem in message
    assert "nothing was changed" in message


def test_existing_config_errors_are_refused_too() -> None:
    node = survey()
    node.files["/etc/nydus/config.toml"] = (
        "[remote.auth]\nenable_cri_keychain = true\n"
        "enable_kubeconfig_keychain = true\n"
    )
    settings = resolve(Answers(), node)
    spec = NodeSpec(name="node-1", host="10.0.0.5")
    with pytest.raises(AnswerError, match="enable_kubeconfig_keychain"):
        validate_files(spec, desired_files(spec, node, settings))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("typed", "refusal"),
    [
        ("yes\n", ""),
        ("YES\n", ""),
        ("y\n", "cancelled: the answer was 'y', not yes; nothing was changed"),
        ("\n", "cancelled: the answer was '', not yes; nothing was changed"),
    ],
)
def test_confirmation_says_what_it_expects(
    typed: str, refusal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(typed))
    out = io.StringIO()
    args = argparse.Namespace(yes=False, json=False)
    command = SetupCommand(Answers(), {}, args, read_only=False, out=out)
    node = survey()
    plan = SetupPlan("node-1", node, resolve(Answers(), node), [])
    plan.steps = [PlanStep("daemon-reload", "reload", "why", "command")]
    assert command._confirmation("node-1", plan) == refusal
    assert "Type yes to apply, anything else cancels: " in out.getvalue()
    assert "terminal" not in refusal


def test_answers_file_rejects_unknown_tables_and_keys_once(tmp_path: Path) -> None:
    path = tmp_path / "answers.toml"
    path.write_text('[setup]\nfs_driver = "fusedev"\n[other]\nx = 1\n')
    with pytest.raises(AnswerError) as caught:
        load_answers(path, [])
    assert "unknown table [other]" in str(caught.value)
    path.write_text('[setup]\n[setup.registy]\nhost = "registry.example.com"\n')
    with pytest.raises(AnswerError) as caught:
        load_answers(path, [])
    assert "[setup.registy] (did you mean setup.registry?)" in str(caught.value)
    path.write_text('prometheus = true\n[other]\nx = 1\n')
    with pytest.raises(AnswerError, match=r"unknown table \[other\]"):
        load_answers(path, [])
    path.write_text('[setup]\nfs_drver = "fusedev"\nprometeus = true\n')
    with pytest.raises(AnswerError) as caught:
        load_answers(path, [])
    message = str(caught.value)
    assert "'fs_drver' (did you mean fs_driver?)" in message
    assert "'prometeus' (did you mean prometheus?)" in message
    assert message.count("fs_drver") == 1
    result = run_cli("setup", "--answers", str(path), home=tmp_path)
    assert result.returncode == 64
    assert result.stderr.count("fs_drver") == 1, result.stderr
