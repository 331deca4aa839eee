"""`nydus-console convert`: the plan, the log parser and runs on a node.

The runs use the nydusify double (tests/doubles/nydusify_double.py): on
this machine through the local transport for the quoting properties, and
on a booted testbed node over real sshd for progress, failure, cancel,
read-only refusal, credentials, history and re-run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_run import run_console as shared_run_console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import DOUBLES_DIR

from nydus_console.fleet import make_transport
from nydus_console.images.convert import ConvertError, ConvertOptions, plan_convert
from nydus_console.images.progress import ConvertProgress, go_duration, parse_line
from nydus_console.images.run import stream_step
from nydus_console.inventory import load_inventory
from nydus_console.transport.hostkeys import HostKeyStore
from nydus_console.transport.local import LocalTransport
from nydus_console.transport.quoting import quote_argv

DOUBLE = Path(__file__).parent / "doubles" / "nydusify_double.py"
NODE = "nc-node1"
CONTROL = "/etc/nydus-doubles/nydusify.json"
RECORD = "/var/log/nydusify-double.jsonl"
PID_FILE = "/run/nydusify-double.pid"
SOURCE = "reg.example:5000/team/app:v1"


# --- the plan -----------------------------------------------------------------


def test_plan_builds_every_flag_and_the_default_target() -> None:
    plan = plan_convert(
        ConvertOptions(
            source="team/app:1.0",
            fs_version="5",
            compressor="lz4_block",
            chunk_size="1048576",
            batch_size="0x10000",
            platform="linux/arm64/v8",
            merge_platform=True,
            source_insecure=True,
            target_insecure=True,
            backend_type="localfs",
            backend_config_file="/etc/nydus/backend.json",
            prefetch_patterns=("/usr/bin", "/etc/nginx"),
            work_dir="/var/tmp/nydusify",
            check=True,
        )
    )
    assert str(plan.target) == "docker.io/team/app:1.0-nydus"
    assert plan.argv == (
        "nydusify", "convert",
        "--source", "docker.io/team/app:1.0",
        "--target", "docker.io/team/app:1.0-nydus",
        "--fs-version", "5", "--compressor", "lz4_block",
        "--chunk-size", "0x100000", "--batch-size", "0x10000",
        "--platform", "linux/arm64/v8",
        "--merge-platform", "--source-insecure", "--target-insecure",
        "--backend-type", "localfs",
        "--backend-config-file", "/etc/nydus/backend.json",
        "--prefetch-patterns", "--work-dir", "/var/tmp/nydusify",
    )  # fmt: skip
    assert plan.stdin == "/usr/bin\n/etc/nginx\n"
    assert plan.check_argv[:2] == ("nydusify", "check")
    assert "--multi-platform" in plan.check_argv
    assert plan.check_argv[-4:] == (
        "--target-backend-type", "localfs",
        "--target-backend-config-file", "/etc/nydus/backend.json",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"source": "a;b"}, "'a;b'"),
        ({"source": "app", "target": "x y"}, "'x y'"),
        ({"source": f"app@sha256:{'a' * 64}"}, "give TARGET"),
        ({"source": "app:v1", "target": "docker.io/library/app:v1"}, "is SOURCE"),
        ({"source": "app", "fs_version": "7"}, "--fs-version '7'"),
        ({"source": "app", "compressor": "gzip"}, "--compressor 'gzip'"),
        ({"source": "app", "chunk_size": "0x3000"}, "--chunk-size '0x3000'"),
        ({"source": "app", "chunk_size": "big"}, "--chunk-size 'big'"),
        ({"source": "app", "batch_size": "0x2000000"}, "--batch-size '0x2000000'"),
        ({"source": "app", "platform": "linux"}, "--platform 'linux'"),
        (
            {"source": "app", "platform": "linux/amd64", "all_platforms": True},
            "not both",
        ),
        ({"source": "app", "oci_ref": True, "fs_version": "5"}, "--oci-ref"),
        ({"source": "app", "backend_type": "oss"}, "--backend-config-file"),
        (
            {"source": "app", "backend_type": "ftp", "backend_config_file": "/b"},
            "--backend-type 'ftp'",
        ),
        (
            {"source": "app", "backend_type": "oss", "backend_config_file": "b.json"},
            "absolute path",
        ),
        ({"source": "app", "prefetch_patterns": ("usr/bin",)}, "'usr/bin'"),
        ({"source": "app", "prefetch_patterns": ("/a\nb",)}, "--prefetch-pattern"),
        ({"source": "app", "work_dir": "--help"}, "--work-dir '--help'"),
        ({"source": "app", "nydusify": "-x"}, "--nydusify '-x'"),
    ],
)
def test_bad_options_are_refused_naming_the_value(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConvertError) as caught:
        plan_convert(ConvertOptions(**options))
    assert named in str(caught.value)


hostile = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
)


def _or(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(valid), hostile)


@settings(max_examples=300, deadline=None)
@given(
    source=_or(SOURCE),
    target=_or(""),
    platform=_or("linux/amd64"),
    work_dir=_or("/var/tmp/w"),
    pattern=_or("/usr/bin"),
    chunk=_or("0x100000"),
)
def test_any_value_is_refused_or_stays_one_literal_word(
    source: str, target: str, platform: str, work_dir: str, pattern: str, chunk: str
) -> None:
    options = ConvertOptions(
        source=source,
        target=target,
        platform=platform,
        work_dir=work_dir,
        prefetch_patterns=(pattern,),
        chunk_size=chunk,
    )
    try:
        plan = plan_convert(options)
    except ConvertError:
        return
    assert shlex.split(quote_argv(plan.argv)) == list(plan.argv)
    assert work_dir in plan.argv
    assert plan.stdin == pattern + "\n"


# --- the log parser -----------------------------------------------------------


def test_converter_lines_become_stages_with_elapsed_times() -> None:
    progress = ConvertProgress()
    lines = [
        'time="2026-12-04T22:10:00Z" level=info msg="pulling image '
        'docker.io/library/nginx:latest" module=converter',
        'time="2026-12-04T22:10:02Z" level=info msg="pulled image '
        'docker.io/library/nginx:latest  , elapse 2.5s" module=converter',
        "INFO[0002] converting image docker.io/library/nginx:latest  module=converter",
        'time="2026-12-04T22:11:05Z" level=info msg="converted image '
        'docker.io/library/nginx:latest-nydus (cached 1/3), elapse 1m3.2s" '
        "module=converter",
        'time="2026-12-04T22:11:05Z" level=info msg="pushing image '
        'docker.io/library/nginx:latest-nydus" module=converter',
    ]
    events = [progress.feed(line) for line in lines]
    assert [e.verb for e in events if e] == [
        "pulling",
        "pulled",
        "converting",
        "converted",
        "pushing",
    ]
    assert progress.stages["pull"].elapsed == 2.5
    assert progress.stages["convert"].elapsed == pytest.approx(63.2)
    assert progress.stages["convert"].cached == "(cached 1/3)"
    assert progress.stages["push"].state == "running"
    progress.feed(
        'time="2026-12-04T22:11:09Z" level=fatal msg="failed to push image: '
        'unexpected status 401 Unauthorized"'
    )
    assert (
        progress.last_error
        == "failed to push image: unexpected status 401 Unauthorized"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2.5s", 2.5), ("52ms", 0.052), ("1h2m3s", 3723.0), ("3µs", 3e-6), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


def test_go_duration_rejects_other_text() -> None:
    assert go_duration("soon") is None
    assert go_duration("2.5") is None


def test_plain_text_is_kept_as_the_message() -> None:
    line = parse_line("Incorrect Usage: flag provided but not defined: -x")
    assert line.level == ""
    assert line.message.startswith("Incorrect Usage")


def test_only_error_level_lines_count_as_the_last_error() -> None:
    progress = ConvertProgress()
    progress.feed('time="t" level=info msg="converting image a/b:c" module=converter')
    progress.feed('time="t" level=warning msg="retrying" module=converter')
    assert progress.fallback_error() == ""
    progress.feed("sh: 1: nydusify: not found")
    assert progress.fallback_error() == "sh: 1: nydusify: not found"
    progress.feed('time="t" level=error msg="cannot push"')
    progress.feed('time="t" level=info msg="cleaning up"')
    assert progress.fallback_error() == "cannot push"


def test_running_stages_end_as_the_run_ended() -> None:
    progress = ConvertProgress()
    progress.feed('time="t" level=info msg="pulling image a/b:c" module=converter')
    progress.end("failed")
    assert progress.stages["pull"].state == "failed"
    assert progress.stages["push"].state == "waiting"


# --- runs on this machine through the local transport --------------------------


@pytest.fixture
def local_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wrapper = tmp_path / "nydusify"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -B {DOUBLE} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("NYDUSIFY_DOUBLE_RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("NYDUSIFY_DOUBLE_CONTROL", str(tmp_path / "control.json"))
    return wrapper


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(work_dir=hostile, pattern=hostile)
def test_hostile_values_reach_nydusify_verbatim_and_never_a_shell(
    local_double: Path, tmp_path: Path, work_dir: str, pattern: str
) -> None:
    canary = tmp_path / "canary"
    options = ConvertOptions(
        source=SOURCE,
        nydusify=str(local_double),
        work_dir=f"$(touch {canary}){work_dir}",
        prefetch_patterns=(f"/`touch {canary}`{pattern}",),
    )
    try:
        plan = plan_convert(options)
    except ConvertError:
        return
    record = tmp_path / "record.jsonl"
    before = len(_records(record))
    result = asyncio.run(stream_step(LocalTransport(), plan.argv, plan.stdin))
    assert result.exit_status == 0, result.progress.tail
    call = _records(record)[before]
    assert call["argv"] == list(plan.argv[1:])
    assert call["stdin"] == plan.stdin
    assert not canary.exists()


def test_failed_push_ends_the_push_stage_as_failed(
    local_double: Path, tmp_path: Path
) -> None:
    (tmp_path / "control.json").write_text(
        json.dumps({"fail_at": "push", "error": "failed to push image: denied"})
    )
    plan = plan_convert(ConvertOptions(source=SOURCE, nydusify=str(local_double)))
    result = asyncio.run(stream_step(LocalTransport(), plan.argv, plan.stdin))
    stages = result.to_dict()["stages"]
    assert [stages[s]["state"] for s in ("pull", "convert", "push")] == [
        "done",
        "done",
        "failed",
    ]
    assert result.last_error == "failed to push image: denied"


@pytest.mark.parametrize(
    ("program", "status", "name"),
    [
        ("nydusify", 127, "nydusify is not installed"),
        (
            "/nonexistent/nydusify",
            127,
            "nydusify (/nonexistent/nydusify) is not installed",
        ),
        ("{tmp}/plain-file", 126, "nydusify ({tmp}/plain-file) cannot be executed"),
    ],
)
def test_missing_nydusify_is_named_with_the_way_to_set_its_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    program: str,
    status: int,
    name: str,
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    # sh is found before the wrapper runs; nydusify is looked up in PATH.
    monkeypatch.setenv("PATH", f"{empty}:/usr/bin:/bin")
    if program == "nydusify" and any(
        (Path(d) / "nydusify").exists() for d in ("/usr/bin", "/bin")
    ):
        pytest.skip("this machine has a nydusify in /usr/bin or /bin")
    (tmp_path / "plain-file").write_text("not a program\n")
    program, name = (text.replace("{tmp}", str(tmp_path)) for text in (program, name))
    plan = plan_convert(ConvertOptions(source=SOURCE, nydusify=program))
    result = asyncio.run(
        stream_step(LocalTransport(), plan.argv, plan.stdin, node="node-a")
    )
    assert result.exit_status == status
    assert result.last_error == (
        f"{name} on node-a (exit {status}): install it or set the "
        "nydusify path (--nydusify PATH)"
    )


# --- runs on a booted node over sshd ------------------------------------------


@pytest.fixture(scope="module")
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    node = nspawn_fleet.node(NODE)
    node.write_file(f"{DOUBLES_DIR}/nydusify_double.py", DOUBLE.read_text())
    node.write_file(
        "/usr/local/bin/nydusify",
        f'#!/bin/sh\nexec /usr/bin/python3 -B {DOUBLES_DIR}/nydusify_double.py "$@"\n',
        0o755,
    )
    yield node
    node.exec(
        ["rm", "-f", "/usr/local/bin/nydusify", CONTROL, RECORD, PID_FILE,
         "/root/.docker/config.json"]
    )  # fmt: skip


@pytest.fixture
def control(node: Node) -> Iterator[Any]:
    def write(**settings: Any) -> None:
        node.write_file(CONTROL, json.dumps(settings))

    node.exec(["rm", "-f", CONTROL, RECORD, PID_FILE])
    yield write
    node.exec(["rm", "-f", CONTROL, PID_FILE])


@pytest.fixture
def inventory(nspawn_fleet: NspawnFleet, tmp_path: Path) -> Path:
    return nspawn_fleet.write_inventory(tmp_path / "inventory.toml")


def run_console(
    *args: str, home: Path, check_rc: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console in a child process; check its exit status if given."""
    done = shared_run_console(*args, home=home, timeout=180)
    if check_rc is not None:
        assert done.returncode == check_rc, done.stdout + done.stderr
    return done


def node_records(node: Node) -> list[dict[str, Any]]:
    done = node.exec(["cat", RECORD])
    return [json.loads(line) for line in done.stdout.splitlines()]


def audit(home: Path) -> list[dict[str, Any]]:
    path = home / ".state" / "nydus-console" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.nspawn
def test_conversion_on_a_node_reports_stages_and_is_recorded(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(cached="(cached 1/2)")
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE,
        "--yes", "--check", "--prefetch-pattern", "/usr/bin",
        "--target-insecure", "--json",
        home=tmp_path, check_rc=0,
    )  # fmt: skip
    report = json.loads(done.stdout)
    stages = report["convert"]["stages"]
    assert [stages[s]["state"] for s in ("pull", "convert", "push")] == ["done"] * 3
    assert [stages[s]["elapsed"] for s in ("pull", "convert", "push")] == [
        0.052,
        1.25,
        0.31,
    ]
    assert stages["pull"]["cached"] == "(cached 1/2)"
    assert report["convert"]["exit_status"] == 0
    assert report["check"]["outcome"] == "succeeded"
    calls = node_records(node)
    assert calls[0]["argv"] == report["command"][1:]
    assert calls[0]["stdin"] == "/usr/bin\n"
    assert calls[1]["argv"][0] == "check"
    entry = audit(tmp_path)[-1]
    assert entry["outcome"] == "succeeded"
    assert entry["node"] == NODE
    assert entry["command"] == quote_argv(report["command"])
    listing = run_console("convert", "--history", home=tmp_path, check_rc=0)
    assert "  1  " in listing.stdout
    assert NODE in listing.stdout
    assert "succeeded" in listing.stdout


@pytest.mark.nspawn
def test_failure_shows_exit_status_and_last_error(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(fail_at="push", error="failed to push image: unauthorized", exit=1)
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert "pushing reg.example:5000/team/app:v1-nydus" in done.stdout
    assert "nydusify convert exited with status 1" in done.stdout
    assert "last error: failed to push image: unauthorized" in done.stdout
    assert audit(tmp_path)[-1]["outcome"] == "failed"
    control(exit=3, error="conversion failed: disk full")
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert "exited with status 3" in done.stdout
    assert "last error: conversion failed: disk full" in done.stdout


@pytest.mark.nspawn
def test_json_after_a_failed_push_and_a_missing_nydusify(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(fail_at="push", error="failed to push image: unauthorized")
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        "--json", home=tmp_path, check_rc=1,
    )  # fmt: skip
    convert = json.loads(done.stdout)["convert"]
    assert convert["stages"]["push"]["state"] == "failed"
    assert convert["last_error"] == "failed to push image: unauthorized"
    missing = "/usr/local/bin/nydusify-absent"
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        "--nydusify", missing, home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert (
        f"last error: nydusify ({missing}) is not installed on {NODE} (exit 127): "
        "install it or set the nydusify path (--nydusify PATH)"
    ) in done.stdout


@pytest.mark.nspawn
def test_check_failure_fails_the_command(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(check_fail="bootstrap")
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        "--check", home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert "nydusify convert exited with status 0" in done.stdout
    assert "nydusify check exited with status 1" in done.stdout
    assert "validate bootstrap failed" in done.stdout


@pytest.mark.nspawn
def test_read_only_and_unconfirmed_runs_reach_nothing(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    done = run_console(
        "--read-only", "convert", SOURCE, "--inventory", str(inventory),
        "--node", NODE, "--yes", home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert "refused: the console runs with --read-only" in done.stderr
    done = run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE,
        home=tmp_path, check_rc=1,
    )  # fmt: skip
    assert "add --yes" in done.stdout
    assert [e["outcome"] for e in audit(tmp_path)] == ["refused", "refused"]
    assert node_records(node) == []


@pytest.mark.nspawn
def test_registry_auth_is_named_never_shown(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    secret = "node-registry-secret-77"
    auth = base64.b64encode(f"pusher:{secret}".encode()).decode()
    node.write_file(
        "/root/.docker/config.json",
        json.dumps({"auths": {"reg.example:5000": {"auth": auth}}}),
        0o600,
    )
    try:
        done = run_console(
            "convert", SOURCE, "quay.example/team/app:v1-nydus",
            "--inventory", str(inventory), "--node", NODE, "--dry-run",
            home=tmp_path, check_rc=0,
        )  # fmt: skip
    finally:
        node.exec(["rm", "-f", "/root/.docker/config.json"])
    assert "registry auth on the node: reg.example:5000" in done.stdout
    assert "no credentials for the source" not in done.stdout
    assert "no credentials for the target registry quay.example" in done.stdout
    assert "dry run: nothing was run" in done.stdout
    assert secret not in done.stdout + done.stderr
    assert auth not in done.stdout + done.stderr
    assert node_records(node) == []


@pytest.mark.nspawn
def test_rerun_repeats_a_history_entry(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        "--fs-version", "5", "--work-dir", "/tmp/nc work", home=tmp_path, check_rc=0,
    )  # fmt: skip
    run_console(
        "convert", "--rerun", "1", "--inventory", str(inventory), "--yes",
        home=tmp_path, check_rc=0,
    )  # fmt: skip
    first, second = node_records(node)
    assert first["argv"] == second["argv"]
    assert "/tmp/nc work" in second["argv"]
    assert "5" in second["argv"]
    done = run_console("convert", "--rerun", "9", home=tmp_path, check_rc=64)
    assert "entries 1 to 2" in done.stderr


@pytest.mark.nspawn
def test_cancel_closes_the_channel_and_ends_nydusify(
    node: Node, control: Any, nspawn_fleet: NspawnFleet, tmp_path: Path
) -> None:
    control(hang_at="convert")
    inventory = load_inventory(nspawn_fleet.write_inventory(tmp_path / "inv.toml"))
    spec = next(n for n in inventory.nodes if n.name == NODE)
    keys = HostKeyStore(tmp_path / "kh", [Path(p) for p in inventory.known_hosts])
    plan = plan_convert(ConvertOptions(source=SOURCE))

    async def scenario() -> Any:
        transport = make_transport(spec, keys)
        cancel = asyncio.Event()

        def on_event(event: Any) -> None:
            if event.verb == "converting":
                cancel.set()

        try:
            return await stream_step(
                transport, plan.argv, on_event=on_event, cancel=cancel
            )
        finally:
            await transport.close()

    result = asyncio.run(scenario())
    assert result.cancelled and result.outcome == "cancelled"
    assert result.progress.stages["convert"].state == "cancelled"
    assert result.last_error == "cancelled"
    pid = node_records(node)[0]["pid"]
    deadline = time.monotonic() + 30
    while node.exec(["kill", "-0", str(pid)]).returncode == 0:
        assert time.monotonic() < deadline, f"nydusify double {pid} still runs"
        time.sleep(0.2)


@pytest.mark.nspawn
def test_hostile_values_stay_literal_over_sshd(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    canary = "/tmp/nc-convert-canary"
    work_dir = f"/tmp/w'$(touch {canary})`touch {canary}`;touch {canary}\"'"
    pattern = f"/usr/$(touch {canary}) '\"; touch {canary}"
    run_console(
        "convert", SOURCE, "--inventory", str(inventory), "--node", NODE, "--yes",
        "--work-dir", work_dir, "--prefetch-pattern", pattern,
        home=tmp_path, check_rc=0,
    )  # fmt: skip
    call = node_records(node)[0]
    assert call["argv"][call["argv"].index("--work-dir") + 1] == work_dir
    assert call["stdin"] == pattern + "\n"
    assert node.exec(["test", "-e", canary]).returncode == 1


@pytest.mark.nspawn
def test_ctrl_c_cancels_the_run_on_the_node(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(hang_at="push")
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
        XDG_STATE_HOME=str(tmp_path / ".state"),
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "-m", "nydus_console", "convert", SOURCE]
    argv += ["--inventory", str(inventory), "--node", NODE, "--yes"]
    child = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        seen = []
        for line in child.stdout:
            seen.append(line)
            if line.startswith("pushing "):
                break
        assert seen and seen[-1].startswith("pushing "), "".join(seen)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 1, out + err
    assert "nydusify convert cancelled" in out
    assert audit(tmp_path)[-1]["outcome"] == "cancelled"
    pid = node_records(node)[0]["pid"]
    deadline = time.monotonic() + 30
    while node.exec(["kill", "-0", str(pid)]).returncode == 0:
        assert time.monotonic() < deadline, f"nydusify double {pid} still runs"
        time.sleep(0.2)
