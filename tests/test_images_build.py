"""`nydus-console build`: the plan, buildctl's plain progress and runs on a node.

The runs use the buildctl double (tests/doubles/buildctl_double.py): on
this machine through the local transport for the quoting properties, and
on a booted testbed node over real sshd for progress, failure, cancel,
dry run, read-only refusal and a node without buildkit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
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

from nydus_console.images.build import BuildError, BuildOptions, plan_build
from nydus_console.images.buildprogress import BuildProgress
from nydus_console.images.run import stream_step
from nydus_console.transport.local import LocalTransport
from nydus_console.transport.quoting import quote_argv

DOUBLE = Path(__file__).parent / "doubles" / "buildctl_double.py"
NODE = "nc-node1"
CONTROL = "/etc/nydus-doubles/buildctl.json"
RECORD = "/var/log/buildctl-double.jsonl"
SOCKET = "/run/buildkit/buildkitd.sock"
CONTEXT = "/srv/nc-build"
OUTPUT = "reg.example:5000/team/app:v1-nydus"
DOCKERFILE = "FROM alpine:3.20\nRUN apk add --no-cache curl\nCOPY app /bin/app\n"


# --- the plan -----------------------------------------------------------------


def test_plan_builds_the_buildctl_command() -> None:
    plan = plan_build(
        BuildOptions(
            context="/srv/app",
            output="reg.example:5000/team/app:v1",
            file="docker/Dockerfile.prod",
            platform="linux/amd64,linux/arm64",
            build_args=("VERSION=1.2", "NOTE=a b,c=d"),
            insecure=True,
        )
    )
    assert plan.argv == (
        "buildctl", "--addr", "unix:///run/buildkit/buildkitd.sock", "build",
        "--progress", "plain", "--frontend", "dockerfile.v0",
        "--local", "context=/srv/app", "--local", "dockerfile=/srv/app",
        "--opt", "filename=docker/Dockerfile.prod",
        "--opt", "platform=linux/amd64,linux/arm64",
        "--opt", "build-arg:VERSION=1.2", "--opt", "build-arg:NOTE=a b,c=d",
        "--output",
        "type=image,name=reg.example:5000/team/app:v1,push=true,"
        "compression=nydus,force-compression=true,oci-mediatypes=true,"
        "registry.insecure=true",
    )  # fmt: skip
    assert plan.dockerfile == "/srv/app/docker/Dockerfile.prod"


def test_plan_absolute_dockerfile_directory() -> None:
    plan = plan_build(
        BuildOptions(context="/srv/app", output="app:v1", file="/etc/b/Dockerfile")
    )
    assert "dockerfile=/etc/b" in plan.argv
    assert "filename=Dockerfile" in plan.argv
    assert "name=docker.io/library/app:v1," in plan.argv[-1]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"output": "a;b"}, "--output: 'a;b'"),
        ({"output": "App:v1"}, "'App:v1'"),
        ({"output": f"app@sha256:{'a' * 64}"}, "names a digest"),
        ({"context": "srv/app"}, "--context 'srv/app' must be an absolute path"),
        ({"context": "/srv/\napp"}, "--context"),
        ({"file": "../Dockerfile"}, "--file '../Dockerfile' leaves the context"),
        ({"file": "-f"}, "--file '-f'"),
        ({"platform": "linux"}, "--platform 'linux'"),
        ({"platform": "linux/amd64,"}, "--platform 'linux/amd64,'"),
        ({"build_args": ("VERSION",)}, "--build-arg 'VERSION' is not KEY=VALUE"),
        ({"build_args": ("1X=a",)}, "--build-arg '1X=a'"),
        ({"build_args": ("A=x\ny",)}, "--build-arg A: the value"),
        ({"build_args": ("NPM_TOKEN=abc",)}, "--build-arg NPM_TOKEN looks like"),
        ({"build_args": ("db_password=x",)}, "--build-arg db_password looks like"),
        ({"buildctl": "--debug"}, "--buildctl '--debug'"),
        ({"socket": "buildkitd.sock"}, "--buildkit-socket 'buildkitd.sock'"),
    ],
)
def test_bad_options_rejected_naming_value(options: dict[str, Any], named: str) -> None:
    values: dict[str, Any] = {"context": "/srv/app", "output": "app:v1", **options}
    with pytest.raises(BuildError) as caught:
        plan_build(BuildOptions(**values))
    assert named in str(caught.value)


def test_secret_build_arg_value_not_shown() -> None:
    with pytest.raises(BuildError) as caught:
        plan_build(
            BuildOptions(context="/c", output="a:1", build_args=("GH_TOKEN=s3cr3t",))
        )
    assert "s3cr3t" not in str(caught.value)


hostile = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
)


def _or(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(valid), hostile)


@settings(max_examples=300, deadline=None)
@given(
    output=_or(OUTPUT),
    context=_or("/srv/app"),
    file=_or("Dockerfile"),
    platform=_or("linux/amd64"),
    arg=_or("V=1"),
)
def test_plan_values_rejected_or_literal(
    output: str, context: str, file: str, platform: str, arg: str
) -> None:
    options = BuildOptions(
        context=context, output=output, file=file, platform=platform, build_args=(arg,)
    )
    try:
        plan = plan_build(options)
    except BuildError:
        return
    assert shlex.split(quote_argv(plan.argv)) == list(plan.argv)
    assert f"context={context}" in plan.argv
    assert f"build-arg:{arg}" in plan.argv
    assert plan.argv[-1].count(",") == 5


# --- buildctl's plain progress -------------------------------------------------

PLAIN = """\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 92B done
#1 DONE 0.0s

#4 [1/3] FROM docker.io/library/alpine:3.20
#4 CACHED

#5 [2/3] RUN make
#5 0.215 cc -o app main.c
#5 ...

#6 [3/3] COPY app /bin/app
#6 ...

#5 [2/3] RUN make
#5 1.002 done
#5 DONE 1.3s

#7 exporting to image
#7 exporting layers
#7 exporting layers 0.4s done
#7 sha256:4f4f 1.2MB / 3.4MB 0.5s
#7 pushing layers
#7 pushing layers 2.1s done
#7 DONE 2.6s
"""


def test_progress_steps_state_and_elapsed() -> None:
    progress = BuildProgress()
    events = [progress.feed(line) for line in PLAIN.splitlines()]
    said = [e.describe() for e in events if e]
    assert said == [
        "#1 started: [internal] load build definition from Dockerfile",
        "#1 status: [internal] load build definition from Dockerfile: "
        "transferring dockerfile: 92B",
        "#1 done: [internal] load build definition from Dockerfile in 0.0 s",
        "#4 started: [1/3] FROM docker.io/library/alpine:3.20",
        "#4 cached: [1/3] FROM docker.io/library/alpine:3.20",
        "#5 started: [2/3] RUN make",
        "#6 started: [3/3] COPY app /bin/app",
        "#5 done: [2/3] RUN make in 1.3 s",
        "#7 started: exporting to image",
        "#7 status: exporting to image: exporting layers",
        "#7 status: exporting to image: pushing layers",
        "#7 done: exporting to image in 2.6 s",
    ]
    summary = progress.summary()
    assert summary["5"] == {
        "name": "[2/3] RUN make",
        "state": "done",
        "elapsed": 1.3,
        "detail": "",
    }
    assert summary["4"]["state"] == "cached"
    assert summary["6"]["state"] == "running"
    assert summary["7"]["detail"] == "pushing layers"
    assert progress.last_error == ""


@pytest.mark.parametrize(
    "final",
    [
        'error: failed to solve: process "/bin/sh -c false" did not complete '
        "successfully: exit code: 1",
        'ERROR: failed to solve: process "/bin/sh -c false" did not complete '
        "successfully: exit code: 1",
    ],
)
def test_progress_failed_step_and_error(final: str) -> None:
    progress = BuildProgress()
    progress.feed("#5 [2/3] RUN false")
    event = progress.feed(
        '#5 ERROR: process "/bin/sh -c false" did not complete successfully: '
        "exit code: 1"
    )
    assert event is not None and event.verb == "error"
    assert progress.steps[5].state == "error"
    for line in ("------", " > [2/3] RUN false:", "------", final):
        progress.feed(line)
    assert progress.fallback_error() == final.split(": ", 1)[1]
    progress.feed("#6 [3/3] COPY app /bin/app")
    cancelled = progress.feed("#6 CANCELED")
    assert cancelled is not None and cancelled.verb == "canceled"
    assert progress.steps[6].state == "canceled"


def test_progress_done_without_time() -> None:
    progress = BuildProgress()
    progress.feed("#3 [internal] load .dockerignore")
    event = progress.feed("#3 DONE")
    assert event is not None
    assert event.verb == "done"
    assert event.elapsed is None
    assert progress.steps[3].state == "done"


def test_progress_last_line_as_error() -> None:
    progress = BuildProgress()
    progress.feed("flag provided but not defined: -x")
    progress.feed("")
    assert progress.fallback_error() == "flag provided but not defined: -x"


# --- runs on this machine through the local transport --------------------------


@pytest.fixture
def local_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    wrapper = tmp_path / "buildctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -B {DOUBLE} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("BUILDCTL_DOUBLE_RECORD", str(tmp_path / "record.jsonl"))
    monkeypatch.setenv("BUILDCTL_DOUBLE_CONTROL", str(tmp_path / "control.json"))
    sock = tmp_path / "buildkitd.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    listener.close()
    return {"buildctl": wrapper, "socket": sock}


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=_or("NAME"), value=hostile)
def test_hostile_values_reach_buildctl_verbatim(
    local_double: dict[str, Path], tmp_path: Path, name: str, value: str
) -> None:
    canary = tmp_path / "canary"
    context = tmp_path / f"ctx $(touch {canary})`touch {canary}`"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    options = BuildOptions(
        context=str(context),
        output=OUTPUT,
        build_args=(f"A=$(touch {canary});{value}", f"{name}={value}"),
        buildctl=str(local_double["buildctl"]),
        socket=str(local_double["socket"]),
    )
    try:
        plan = plan_build(options)
    except BuildError:
        return
    record = tmp_path / "record.jsonl"
    before = len(_records(record))
    result = asyncio.run(
        stream_step(LocalTransport(), plan.argv, progress=BuildProgress())
    )
    assert result.exit_status == 0, result.progress.fallback_error()
    assert _records(record)[before]["argv"] == list(plan.argv[1:])
    assert not canary.exists()


# --- runs on a booted node over sshd ------------------------------------------

_MAKE_SOCKET = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])"
)


@pytest.fixture(scope="module")
def node(nspawn_fleet: NspawnFleet) -> Iterator[Node]:
    node = nspawn_fleet.node(NODE)
    node.write_file(f"{DOUBLES_DIR}/buildctl_double.py", DOUBLE.read_text())
    node.write_file(
        "/usr/local/bin/buildctl",
        f'#!/bin/sh\nexec /usr/bin/python3 -B {DOUBLES_DIR}/buildctl_double.py "$@"\n',
        0o755,
    )
    node.write_file(f"{CONTEXT}/Dockerfile", DOCKERFILE)
    node.exec(["rm", "-f", SOCKET])
    node.exec(["mkdir", "-p", "/run/buildkit"], check=True)
    node.exec(["python3", "-c", _MAKE_SOCKET, SOCKET], check=True)
    yield node
    node.exec(
        ["rm", "-rf", "/usr/local/bin/buildctl", CONTROL, RECORD, SOCKET, CONTEXT]
    )


@pytest.fixture
def control(node: Node) -> Iterator[Any]:
    def write(**values: Any) -> None:
        node.write_file(CONTROL, json.dumps(values))

    node.exec(["rm", "-f", CONTROL, RECORD])
    yield write
    node.exec(["rm", "-f", CONTROL])


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


def build_args(inventory: Path, *extra: str) -> list[str]:
    return [
        "build", "--inventory", str(inventory), "--node", NODE,
        "--context", CONTEXT, "--output", OUTPUT, *extra,
    ]  # fmt: skip


def node_records(node: Node) -> list[dict[str, Any]]:
    done = node.exec(["cat", RECORD])
    return [json.loads(line) for line in done.stdout.splitlines()]


def audit(home: Path) -> list[dict[str, Any]]:
    path = home / ".state" / "nydus-console" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.nspawn
def test_build_reports_steps_and_history(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control(cached=True)
    done = run_console(
        *build_args(inventory, "--yes", "--insecure", "--build-arg", "V=1", "--json"),
        home=tmp_path,
        check_rc=0,
    )
    report = json.loads(done.stdout)
    steps = report["build"]["steps"]
    assert steps["2"] == {
        "name": "[1/3] FROM alpine:3.20",
        "state": "cached",
        "elapsed": None,
        "detail": "",
    }
    assert [steps[n]["state"] for n in ("3", "4", "5")] == ["done"] * 3
    assert steps["3"]["elapsed"] == 0.2
    assert steps["5"]["name"] == "exporting to image"
    assert steps["5"]["elapsed"] == 0.5
    assert report["build"]["exit_status"] == 0
    assert node_records(node)[0]["argv"] == report["command"][1:]
    assert "registry.insecure=true" in report["command"][-1]
    entry = audit(tmp_path)[-1]
    assert entry["outcome"] == "succeeded"
    assert entry["command"] == quote_argv(report["command"])
    listing = run_console("build", "--history", home=tmp_path, check_rc=0)
    assert f"succeeded  {OUTPUT}" in listing.stdout


@pytest.mark.nspawn
def test_rerun_repeats_a_history_entry(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    run_console(
        *build_args(inventory, "--yes", "--platform", "linux/arm64"),
        home=tmp_path,
        check_rc=0,
    )
    run_console(
        "build", "--rerun", "1", "--inventory", str(inventory), "--yes",
        home=tmp_path, check_rc=0,
    )  # fmt: skip
    first, second = node_records(node)
    assert first["argv"] == second["argv"]
    assert "platform=linux/arm64" in second["argv"]
    done = run_console("build", "--rerun", "9", home=tmp_path, check_rc=64)
    assert "the build history has entries 1 to 2" in done.stderr
    done = run_console(
        "build", "--rerun", "1", "--output", OUTPUT, home=tmp_path, check_rc=64
    )
    assert "not both" in done.stderr


@pytest.mark.nspawn
def test_failure_shows_exit_status_and_last_error(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    error = 'process "/bin/sh -c apk add" did not complete successfully: exit code: 2'
    control(fail_at="2", error=error)
    done = run_console(*build_args(inventory, "--yes"), home=tmp_path, check_rc=1)
    assert "#3 started: [2/3] RUN apk add --no-cache curl" in done.stdout
    assert f"#3 error: [2/3] RUN apk add --no-cache curl: {error}" in done.stdout
    assert "buildctl build exited with status 1" in done.stdout
    assert f"last error: failed to solve: {error}" in done.stdout
    assert audit(tmp_path)[-1]["outcome"] == "failed"
    control(fail_at="push", error="unexpected status: 401 Unauthorized", exit=7)
    done = run_console(*build_args(inventory, "--yes"), home=tmp_path, check_rc=1)
    assert "exporting to image: pushing layers" in done.stdout
    assert "exited with status 7" in done.stdout
    assert "last error: failed to solve: unexpected status: 401" in done.stdout


@pytest.mark.nspawn
def test_dry_run_runs_nothing(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    done = run_console(*build_args(inventory, "--dry-run"), home=tmp_path, check_rc=0)
    assert "compression=nydus,force-compression=true" in done.stdout
    assert "dry run: nothing was run" in done.stdout
    assert node_records(node) == []
    assert not (tmp_path / ".state" / "nydus-console" / "audit.jsonl").exists()


@pytest.mark.nspawn
def test_read_only_and_unconfirmed_runs_reach_nothing(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    done = run_console(
        "--read-only", *build_args(inventory, "--yes"), home=tmp_path, check_rc=1
    )
    assert "refused: the console runs with --read-only" in done.stderr
    done = run_console(*build_args(inventory), home=tmp_path, check_rc=1)
    assert "add --yes" in done.stdout
    entries = audit(tmp_path)
    assert [e["outcome"] for e in entries] == ["refused", "refused"]
    assert entries[0]["action"] == f"build {OUTPUT} from {CONTEXT}"
    assert node_records(node) == []


@pytest.mark.nspawn
def test_node_without_buildkit_rejected(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    done = run_console(
        *build_args(
            inventory, "--yes", "--buildctl", "/opt/none/buildctl",
            "--buildkit-socket", "/run/none/buildkitd.sock", "--file", "Other",
        ),
        home=tmp_path,
        check_rc=1,
    )  # fmt: skip
    assert f"buildctl (/opt/none/buildctl) is not on the PATH of {NODE}" in done.stderr
    assert "buildkitd's socket /run/none/buildkitd.sock is missing" in done.stderr
    assert f"the Dockerfile {CONTEXT}/Other is not a file" in done.stderr
    assert "is not a directory" not in done.stderr
    assert node_records(node) == []


@pytest.mark.nspawn
def test_hostile_build_args_stay_literal_over_sshd(
    node: Node, control: Any, inventory: Path, tmp_path: Path
) -> None:
    control()
    canary = "/tmp/nc-build-canary"
    value = f"x'$(touch {canary})`touch {canary}`;touch {canary}\"' ,y=z"
    run_console(
        *build_args(inventory, "--yes", "--build-arg", f"V={value}"),
        home=tmp_path,
        check_rc=0,
    )
    argv = node_records(node)[0]["argv"]
    assert f"build-arg:V={value}" in argv
    assert node.exec(["test", "-e", canary]).returncode == 1


@pytest.mark.nspawn
def test_ctrl_c_cancels_the_build_on_the_node(
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
    argv = [sys.executable, "-m", "nydus_console", *build_args(inventory, "--yes")]
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
            if "pushing layers" in line:
                break
        assert seen and "pushing layers" in seen[-1], "".join(seen)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 1, out + err
    assert "buildctl build cancelled" in out
    assert audit(tmp_path)[-1]["outcome"] == "cancelled"
    pid = node_records(node)[0]["pid"]
    deadline = time.monotonic() + 30
    while node.exec(["kill", "-0", str(pid)]).returncode == 0:
        assert time.monotonic() < deadline, f"buildctl double {pid} still runs"
        time.sleep(0.2)
