"""Runbook files, their validation, parameters and the runner, against doubles.

The runner's behaviour on booted nodes is in test_runbooks_nspawn.py.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from factbuilder import healthy_facts, unit
from runbook_doubles import (
    NODE,
    RecordingTransport,
    ScriptedHooks,
    make_runner,
    result,
    with_stray,
)

from nydus_console.audit import AuditLog
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.runbooks import load_runbooks, parse_runbook
from nydus_console.runbooks.loader import referenced_runbooks
from nydus_console.runbooks.model import RunbookError
from nydus_console.runbooks.params import (
    MissingParameter,
    ParamUnavailable,
    ParamValues,
    checked_removable,
    parse_assignments,
    resolve_facts,
    substitute,
)
from nydus_console.runbooks.report import Choice, RunStatus, StepStatus
from nydus_console.runbooks.runner import run_on_nodes
from nydus_console.runbooks.state import StateStore
from nydus_console.transport.base import CommandResult, ErrorKind, TransportError

SHIPPED_IDS = {
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
# The setup wizard, not a runbook, handles "nydus-snapshotter is not installed".
OWNED_ELSEWHERE = {"setup"}

MARKERS = """\
id = "markers"
title = "Touch three markers"
applies = "tests"

[[step]]
id = "first"
title = "Touch the first marker"
why = "a test"
on_failure = "nothing"
action = ["touch", "/tmp/first"]

[[step]]
id = "second"
title = "Touch the second marker"
why = "a test"
on_failure = "nothing"
action = ["touch", "/tmp/second"]

[[step]]
id = "third"
title = "Touch the third marker"
why = "a test"
on_failure = "nothing"
action = ["touch", "/tmp/third"]
"""


def markers() -> object:
    return parse_runbook("markers.toml", MARKERS)


# -- the files -----------------------------------------------------------------------


def test_every_shipped_runbook_loads() -> None:
    runbooks = load_runbooks()
    assert set(runbooks) == SHIPPED_IDS
    for runbook in runbooks.values():
        assert runbook.steps, runbook.id
        assert runbook.source == f"{runbook.id}.toml"


def test_checks_name_existing_runbooks() -> None:
    referenced = set(referenced_runbooks())
    missing = referenced - set(load_runbooks()) - OWNED_ELSEWHERE
    assert not missing, f"checks name runbooks that do not exist: {missing}"


def runbook_values(node: object) -> list[str]:
    """Return every `runbook` string anywhere in a parsed TOML document."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "runbook" and isinstance(v, str)]
        for value in node.values():
            found += runbook_values(value)
        return found
    if isinstance(node, list):
        return [value for item in node for value in runbook_values(item)]
    return []


def test_signatures_name_existing_runbooks() -> None:
    catalogue = resources.files("nydus_console.assets").joinpath("signatures.toml")
    if not catalogue.is_file():
        pytest.skip("no signature catalogue in this build")
    named = set(runbook_values(tomllib.loads(catalogue.read_text()))) - {""}
    missing = named - set(load_runbooks()) - OWNED_ELSEWHERE
    assert not missing, f"signatures name runbooks that do not exist: {missing}"


def test_destructive_steps_are_marked() -> None:
    for runbook in load_runbooks().values():
        for step in runbook.steps:
            program = step.command[0] if step.command else ""
            if step.reboot or program == "kill" or step.command[:2] == ("rm", "-rf"):
                assert step.destructive, f"{runbook.id}: {step.id}"


def bad(text: str) -> str:
    with pytest.raises(RunbookError) as caught:
        parse_runbook("bad.toml", text)
    return str(caught.value)


HEAD = 'id = "bad"\ntitle = "t"\napplies = "a"\n'
STEP = '[[step]]\nid = "s"\ntitle = "t"\nwhy = "w"\non_failure = "f"\n'


def test_placeholder_in_shell_script_rejected() -> None:
    message = bad(HEAD + STEP + 'action = ["sh", "-c", "kill {snapshotter_main_pid}"]')
    assert "cannot contain a placeholder" in message
    assert "bad.toml: step 1 (s)" in message


def test_unknown_parameter_rejected() -> None:
    message = bad(HEAD + STEP + 'action = ["kill", "{nonsense}"]')
    assert "unknown parameter {nonsense}" in message


def test_reboot_must_be_destructive() -> None:
    assert "must be destructive" in bad(HEAD + STEP + "reboot = true")


def test_id_must_match_file_name() -> None:
    message = bad(HEAD.replace('"bad"', '"other"') + STEP + 'action = ["true"]')
    assert "must match the file name" in message


def test_unknown_key_rejected() -> None:
    message = bad(HEAD + STEP + 'action = ["true"]\nrun_as = "root"')
    assert "unknown key 'run_as'" in message


def test_step_needs_one_action() -> None:
    message = bad(HEAD + STEP + 'action = ["true"]\nmanual = "do it"')
    assert "exactly one of action" in message


def test_condition_test_must_fit_source() -> None:
    text = STEP + 'action = ["true"]\ncheck = { fact = "node", needed_if = "fails" }'
    assert "with fact use one of" in bad(HEAD + text)


def test_unknown_health_check_rejected() -> None:
    condition = 'check = { checks = ["no.such"], needed_if = "fail" }'
    text = STEP + 'action = ["true"]\n' + condition
    assert "unknown health check 'no.such'" in bad(HEAD + text)


def test_steps_condition_needs_earlier_step() -> None:
    text = STEP + 'action = ["true"]\ncheck = { steps = ["s"], needed_if = "ran" }'
    assert "is not an earlier step" in bad(HEAD + text)


# -- parameters --------------------------------------------------------------------


def values(**found: tuple[str, ...]) -> ParamValues:
    return ParamValues(dict(found))


def test_whole_placeholder_expands_per_value() -> None:
    argv = substitute(("kill", "-TERM", "{pids}"), values(pids=("1", "2")))
    assert argv == ("kill", "-TERM", "1", "2")


def test_placeholder_inside_word_needs_one_value() -> None:
    with pytest.raises(MissingParameter):
        substitute(("cat", "{dirs}/cgroup.procs"), values(dirs=("/a", "/b")))


def test_value_stays_one_argument() -> None:
    hostile = "x; rm -rf / $(reboot) 'q'"
    argv = substitute(("ctr", "images", "pull", "{image}"), values(image=(hostile,)))
    assert argv[-1] == hostile
    assert len(argv) == 4


def test_missing_value_names_the_reason() -> None:
    empty = ParamValues({"image": ()}, {"image": "not given"})
    with pytest.raises(MissingParameter) as caught:
        substitute(("pull", "{image}"), empty)
    assert caught.value.name == "image"
    assert "not given" in str(caught.value)


@pytest.mark.parametrize(
    "path", ["/", "/var/lib", "/var", "var/lib/containerd", "/var/lib/../lib", "/usr"]
)
def test_system_directories_never_removable(path: str) -> None:
    with pytest.raises(ParamUnavailable):
        checked_removable(path)


def test_containerd_root_removable() -> None:
    assert checked_removable("/var/lib/containerd") == "/var/lib/containerd"
    assert checked_removable("/data/containerd/") == "/data/containerd"


def test_stale_pids_exclude_main_pid() -> None:
    facts = with_stray(healthy_facts(), pid=4242)
    resolved = resolve_facts(facts, NodeSpec(name=NODE))
    assert resolved.get("stale_snapshotter_pids") == ("4242",)
    assert resolved.get("snapshotter_main_pid") == ("100",)


def test_expected_root_from_containerd() -> None:
    resolved = resolve_facts(healthy_facts(), NodeSpec(name=NODE))
    expected = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
    assert resolved.get("expected_root") == (expected,)
    assert resolved.get("expected_root_fits") == ("yes",)
    assert resolved.get("containerd_root") == ("/var/lib/containerd",)


def test_param_assignments_parsed() -> None:
    assert parse_assignments(["image=a:b=c"]) == {"image": "a:b=c"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_assignments(["Image=x"])


# -- the runner ----------------------------------------------------------------------


def audit_of(tmp_path: Path) -> list[dict[str, object]]:
    """Return the audit entries of the actions, without verifications and run ends."""
    return [e for e in events_of(tmp_path) if "event" not in e]


def events_of(tmp_path: Path) -> list[dict[str, object]]:
    return AuditLog(tmp_path / "audit.jsonl").entries()


def failed_service_with_stray() -> NodeFacts:
    facts = with_stray(healthy_facts())
    name = "nydus-snapshotter.service"
    facts.units[name] = unit(name, active="failed", sub="failed", pid=0)
    return facts


async def test_dry_run_runs_no_action(tmp_path: Path) -> None:
    runbook = load_runbooks()["duplicate-snapshotter"]
    # Every command succeeds, so `systemctl is-failed` reports a failed unit.
    transport = RecordingTransport(result)
    hooks = ScriptedHooks()
    runner = make_runner(
        runbook,
        tmp_path,
        transport,
        hooks,
        facts=failed_service_with_stray,
        dry_run=True,
    )
    report = await runner.run()
    assert report.status is RunStatus.COMPLETED
    statuses = {r.step: r.status for r in report.results}
    assert statuses["stop-stray"] is StepStatus.DRY_RUN
    assert statuses["reset-failed"] is StepStatus.DRY_RUN
    assert statuses["restart"] is StepStatus.DRY_RUN
    # Only the read-only check of the reset-failed step reached the node.
    assert transport.calls == [
        ("systemctl", "is-failed", "--quiet", "nydus-snapshotter.service")
    ]
    assert hooks.confirmed == []
    assert audit_of(tmp_path) == []
    assert not (tmp_path / "state").exists()


async def test_dry_run_shows_resolved_commands(tmp_path: Path) -> None:
    runbook = load_runbooks()["duplicate-snapshotter"]
    runner = make_runner(
        runbook,
        tmp_path,
        RecordingTransport(),
        ScriptedHooks(),
        facts=lambda: with_stray(healthy_facts(), pid=777),
    )
    plan = {step.step.id: step for step in await runner.plan()}
    assert plan["stop-stray"].command == ("kill", "-TERM", "777")
    assert plan["stop-stray"].needed
    assert plan["restart"].command_line == "systemctl restart nydus-snapshotter.service"
    assert not plan["reset-failed"].needed


AFTER_EDIT = """\
id = "after-edit"
title = "Write a marker, then act on it"
applies = "tests"

[[step]]
id = "write"
title = "Write the marker"
why = "a test"
on_failure = "nothing"
check = { command = ["test", "-e", "/tmp/marker"], needed_if = "fails" }
action = ["touch", "/tmp/marker"]

[[step]]
id = "reload"
title = "Act on the marker"
why = "a test"
on_failure = "nothing"
check = { steps = ["write"], needed_if = "ran" }
action = ["cat", "/tmp/marker"]
"""


async def test_dry_run_shows_steps_after_a_step_it_would_run(tmp_path: Path) -> None:
    runbook = parse_runbook("after-edit.toml", AFTER_EDIT)
    transport = RecordingTransport(lambda argv: result(argv, int(argv[0] == "test")))
    hooks = ScriptedHooks()
    runner = make_runner(runbook, tmp_path, transport, hooks, dry_run=True)
    report = await runner.run()
    assert [r.status for r in report.results] == [StepStatus.DRY_RUN] * 2
    assert ("touch", "/tmp/marker") not in transport.calls
    assert ("cat", "/tmp/marker") not in transport.calls


async def test_steps_run_through_the_gate(tmp_path: Path) -> None:
    transport = RecordingTransport()
    report = await make_runner(markers(), tmp_path, transport, ScriptedHooks()).run()
    assert report.status is RunStatus.COMPLETED
    touched = [argv for argv in transport.calls if argv[0] == "touch"]
    assert touched == [("touch", "/tmp/first"), ("touch", "/tmp/second")] + [
        ("touch", "/tmp/third")
    ]
    entries = audit_of(tmp_path)
    assert [e["command"] for e in entries] == [" ".join(a) for a in touched]
    assert all(e["action"].startswith("markers: ") for e in entries)
    assert not StateStore(tmp_path / "state").path("markers", NODE).exists()


async def test_abort_midway_keeps_state(tmp_path: Path) -> None:
    transport = RecordingTransport()
    hooks = ScriptedHooks([Choice.RUN, Choice.ABORT])
    report = await make_runner(markers(), tmp_path, transport, hooks).run()
    assert report.status is RunStatus.ABORTED
    assert report.stopped_at == 2
    assert [r.step for r in report.ran()] == ["first"]
    assert [argv for argv in transport.calls if argv[0] == "touch"] == [
        ("touch", "/tmp/first")
    ]
    saved = StateStore(tmp_path / "state").load("markers", NODE)
    assert saved is not None
    assert saved.next_index == 1
    assert saved.ran == ["first"]


async def test_aborted_run_resumes_at_stop(tmp_path: Path) -> None:
    first = RecordingTransport()
    hooks = ScriptedHooks([Choice.RUN, Choice.ABORT])
    await make_runner(markers(), tmp_path, first, hooks).run()
    second = RecordingTransport()
    resumed_hooks = ScriptedHooks()
    report = await make_runner(markers(), tmp_path, second, resumed_hooks).run()
    assert report.status is RunStatus.COMPLETED
    assert report.resumed_at == 2
    assert [argv for argv in second.calls if argv[0] == "touch"] == [
        ("touch", "/tmp/second"),
        ("touch", "/tmp/third"),
    ]
    assert [r.step for r in report.results] == ["first", "second", "third"]
    assert "resuming markers at step 2" in resumed_hooks.notes


async def test_changed_runbook_is_not_resumed(tmp_path: Path) -> None:
    await make_runner(
        markers(), tmp_path, RecordingTransport(), ScriptedHooks([Choice.ABORT])
    ).run()
    changed = parse_runbook("markers.toml", MARKERS.replace("/tmp/third", "/tmp/3"))
    report = await make_runner(
        changed, tmp_path, RecordingTransport(), ScriptedHooks()
    ).run()
    assert report.status is RunStatus.NOT_STARTED
    assert "--fresh" in report.message
    fresh = await make_runner(
        changed, tmp_path, RecordingTransport(), ScriptedHooks(), fresh=True
    ).run()
    assert fresh.status is RunStatus.COMPLETED


async def test_skip_and_dry_run_choices(tmp_path: Path) -> None:
    transport = RecordingTransport()
    hooks = ScriptedHooks([Choice.SKIP, Choice.DRY_RUN, Choice.RUN])
    report = await make_runner(markers(), tmp_path, transport, hooks).run()
    statuses = [r.status for r in report.results]
    assert statuses == [StepStatus.SKIPPED, StepStatus.DRY_RUN, StepStatus.DONE]
    assert [argv for argv in transport.calls if argv[0] == "touch"] == [
        ("touch", "/tmp/third")
    ]


def failing_second(argv: tuple[str, ...]) -> CommandResult:
    status = 1 if argv == ("touch", "/tmp/second") else 0
    return result(argv, status)


async def test_failure_stops_the_run(tmp_path: Path) -> None:
    transport = RecordingTransport(failing_second)
    report = await make_runner(markers(), tmp_path, transport, ScriptedHooks()).run()
    assert report.status is RunStatus.FAILED
    assert report.stopped_at == 2
    assert ("touch", "/tmp/third") not in transport.calls
    assert report.results[-1].exit_status == 1


async def test_retry_after_failure(tmp_path: Path) -> None:
    attempts: list[int] = []

    def flaky(argv: tuple[str, ...]) -> CommandResult:
        if argv == ("touch", "/tmp/second"):
            attempts.append(1)
            return result(argv, 0 if len(attempts) > 1 else 1)
        return result(argv)

    hooks = ScriptedHooks(after_failure=Choice.RETRY)
    transport = RecordingTransport(flaky)
    report = await make_runner(markers(), tmp_path, transport, hooks).run()
    assert report.status is RunStatus.COMPLETED
    assert len(attempts) == 2
    assert hooks.confirmed == ["first", "second", "second", "third"]


async def test_destructive_step_needs_node_name(tmp_path: Path) -> None:
    runbook = load_runbooks()["duplicate-snapshotter"]
    transport = RecordingTransport()
    hooks = ScriptedHooks(confirmed_by="yes")
    runner = make_runner(
        runbook, tmp_path, transport, hooks, facts=lambda: with_stray(healthy_facts())
    )
    report = await runner.run()
    assert report.status is RunStatus.FAILED
    assert "not the node name" in report.results[0].detail
    assert not [argv for argv in transport.calls if argv[0] == "kill"]
    # The SIGTERM step may fail and go on to the SIGKILL step; both are refused.
    entries = audit_of(tmp_path)
    assert [e["outcome"] for e in entries] == ["refused", "refused"]


async def test_verification_failure_reported(tmp_path: Path) -> None:
    runbook = load_runbooks()["duplicate-snapshotter"]
    transport = RecordingTransport()
    runner = make_runner(
        runbook,
        tmp_path,
        transport,
        ScriptedHooks(),
        facts=lambda: with_stray(healthy_facts()),
    )
    report = await runner.run()
    first = report.results[0]
    # The stray never goes away in these facts, so both kill steps fail to verify.
    assert first.status is StepStatus.FAILED
    assert first.detail.startswith("verification failed: stale_snapshotter_pids")
    assert "{" not in first.detail, "parameters are filled in"
    assert report.step_counts() == "0 step(s) done, 2 failed"
    assert report.results[1].step == "kill-stray"
    assert report.status is RunStatus.FAILED
    kills = [argv for argv in transport.calls if argv[0] == "kill"]
    assert kills == [("kill", "-TERM", "4242"), ("kill", "-KILL", "4242")]
    # The kills exited 0; the audit log records that their verification failed
    # and that the run failed.
    entries = events_of(tmp_path)
    assert [e.get("event", e["outcome"]) for e in entries] == [
        "ran",
        "verification",
        "ran",
        "verification",
        "runbook run",
    ]
    verification = entries[1]
    assert verification["action"] == entries[0]["action"]
    assert verification["outcome"] == "verification failed"
    assert verification["step"] == first.step
    assert verification["runbook"] == "duplicate-snapshotter"
    assert "4242" in str(verification["detail"])
    end = entries[-1]
    assert end["action"] == "duplicate-snapshotter"
    assert end["outcome"] == "failed"
    assert end["stopped_at"] == report.stopped_at
    assert "stopped after a failure" in str(end["detail"])


async def test_completed_run_is_audited(tmp_path: Path) -> None:
    report = await make_runner(
        markers(), tmp_path, RecordingTransport(), ScriptedHooks()
    ).run()
    assert report.status is RunStatus.COMPLETED
    end = events_of(tmp_path)[-1]
    assert (end["event"], end["action"], end["outcome"]) == (
        "runbook run",
        "markers",
        "completed",
    )


async def test_aborted_run_is_audited(tmp_path: Path) -> None:
    hooks = ScriptedHooks([Choice.RUN, Choice.ABORT])
    await make_runner(markers(), tmp_path, RecordingTransport(), hooks).run()
    end = events_of(tmp_path)[-1]
    assert (end["event"], end["outcome"], end["stopped_at"]) == (
        "runbook run",
        "aborted",
        2,
    )


SKIPPED_CHECK = """\
id = "skipped-check"
title = "Verify with a check that does not apply to fusedev"
applies = "tests"

[[step]]
id = "confirm"
title = "Confirm the config"
why = "a test"
on_failure = "nothing"
manual = "nothing to do"
verify = { checks = ["config.fs_driver", "config.fscache_kernel"], ok_if = "pass" }
verify_timeout = 0
"""


async def test_skipped_check_counts_as_passed(tmp_path: Path) -> None:
    # config.fscache_kernel is skipped on a fusedev node: it cannot fail there.
    runbook = parse_runbook("skipped-check.toml", SKIPPED_CHECK)
    runner = make_runner(runbook, tmp_path, RecordingTransport(), ScriptedHooks())
    report = await runner.run()
    assert report.status is RunStatus.COMPLETED, report.results
    assert report.results[0].status is StepStatus.DONE


async def test_several_nodes_stop_at_first_failure(tmp_path: Path) -> None:
    runners = []
    for index, answer in enumerate([failing_second, None, None]):
        spec = NodeSpec(name=f"node-{index}", host="192.0.2.1")
        transport = RecordingTransport(answer) if answer else RecordingTransport()
        runners.append(
            make_runner(
                markers(), tmp_path / str(index), transport, ScriptedHooks(), spec=spec
            )
        )
    reports = await run_on_nodes(runners, parallel=1)
    assert [r.status for r in reports] == [
        RunStatus.FAILED,
        RunStatus.NOT_STARTED,
        RunStatus.NOT_STARTED,
    ]
    assert "earlier node failed" in reports[1].message


async def test_nodes_run_in_parallel_until_failure(tmp_path: Path) -> None:
    runners = [
        make_runner(
            markers(),
            tmp_path / str(index),
            RecordingTransport(),
            ScriptedHooks(),
            spec=NodeSpec(name=f"node-{index}", host="192.0.2.1"),
        )
        for index in range(3)
    ]
    reports = await run_on_nodes(runners, parallel=2)
    assert all(r.status is RunStatus.COMPLETED for r in reports)


async def test_each_node_report_given_as_it_ends(tmp_path: Path) -> None:
    runners = []
    for index, answer in enumerate([None, failing_second, None]):
        spec = NodeSpec(name=f"node-{index}", host="192.0.2.1")
        transport = RecordingTransport(answer) if answer else RecordingTransport()
        runners.append(
            make_runner(
                markers(), tmp_path / str(index), transport, ScriptedHooks(), spec=spec
            )
        )
    ended: list[tuple[str, RunStatus]] = []
    reports = await run_on_nodes(
        runners, on_report=lambda r: ended.append((r.node, r.status))
    )
    assert ended == [
        ("node-0", RunStatus.COMPLETED),
        ("node-1", RunStatus.FAILED),
        ("node-2", RunStatus.NOT_STARTED),
    ]
    assert [(r.node, r.status) for r in reports] == ended


REBOOT = """\
id = "reboots"
title = "Reboot between two markers"
applies = "tests"

[[step]]
id = "before"
title = "Touch a marker"
why = "a test"
on_failure = "nothing"
action = ["touch", "/tmp/before"]

[[step]]
id = "reboot"
title = "Reboot"
why = "a test"
on_failure = "nothing"
reboot = true
destructive = true

[[step]]
id = "after"
title = "Touch a marker"
why = "a test"
on_failure = "nothing"
action = ["touch", "/tmp/after"]
"""


def rebooting_node() -> RecordingTransport:
    """A node whose connection drops at `systemctl reboot` and returns later."""
    state = {"rebooted": False, "down_polls": 0}

    def answer(argv: tuple[str, ...]) -> CommandResult | TransportError:
        if argv == ("systemctl", "reboot"):
            state["rebooted"] = True
            return TransportError(ErrorKind.DISCONNECTED, "connection lost")
        if state["rebooted"] and state["down_polls"] < 3:
            state["down_polls"] += 1
            return TransportError(ErrorKind.REFUSED, "connection refused")
        if argv[0] == "cat":
            boot = "boot-2" if state["rebooted"] else "boot-1"
            return result(argv, stdout=boot + "\n")
        return result(argv)

    return RecordingTransport(answer)


async def test_reboot_waits_for_return(tmp_path: Path) -> None:
    transport = rebooting_node()
    hooks = ScriptedHooks()
    report = await make_runner(
        parse_runbook("reboots.toml", REBOOT), tmp_path, transport, hooks
    ).run()
    assert report.status is RunStatus.COMPLETED, report.results
    assert ("touch", "/tmp/after") in transport.calls
    assert "the node is down" in hooks.notes
    assert "the node is back" in hooks.notes
    entries = audit_of(tmp_path)
    assert [e["outcome"] for e in entries] == ["ran", "failed", "ran"]


async def test_reboot_state_saved_before_reboot(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    seen: list[dict[str, object]] = []
    transport = rebooting_node()
    original = transport.answer

    def spy(argv: tuple[str, ...]) -> CommandResult | TransportError:
        if argv == ("systemctl", "reboot"):
            seen.append(json.loads(store.path("reboots", NODE).read_text()))
        return original(argv)

    transport.answer = spy
    await make_runner(
        parse_runbook("reboots.toml", REBOOT), tmp_path, transport, ScriptedHooks()
    ).run()
    (saved,) = seen
    expected = {"step": "reboot", "boot_id": "boot-1", "down_seen": False}
    assert saved["reboot"] == expected
    assert saved["next_index"] == 1


# -- the command line ----------------------------------------------------------------


async def test_destructive_skipped_without_flag(tmp_path: Path) -> None:
    from io import StringIO

    from nydus_console.runbooks.terminal import AutoHooks, StepPrinter

    out = StringIO()
    hooks = AutoHooks(StepPrinter(out, 4), destructive_nodes=["other-node"])
    transport = RecordingTransport()
    runner = make_runner(
        load_runbooks()["duplicate-snapshotter"],
        tmp_path,
        transport,
        hooks,
        facts=lambda: with_stray(healthy_facts()),
    )
    report = await runner.run()
    steps = {r.step: r.status for r in report.results}
    assert steps["stop-stray"] is StepStatus.SKIPPED
    assert steps["kill-stray"] is StepStatus.SKIPPED
    assert f"add --yes-destructive {NODE} to run it" in out.getvalue()
    assert not [argv for argv in transport.calls if argv[0] == "kill"]


class FailureAsked(ScriptedHooks):
    async def after_failure(self, *args: object) -> object:  # type: ignore[override]
        raise AssertionError("asked about a failure, but nothing ran")


async def test_read_only_step_refused_not_failed(tmp_path: Path) -> None:
    hooks = FailureAsked()
    transport = RecordingTransport()
    runner = make_runner(markers(), tmp_path, transport, hooks, read_only=True)
    report = await runner.run()
    assert report.status is RunStatus.REFUSED
    assert report.stopped_at == 1
    assert "read-only mode refused step 1" in report.message
    (refused,) = report.results
    assert refused.status is StepStatus.REFUSED
    assert str(refused.status) == "refused (read-only)"
    assert "the console runs with --read-only" in refused.detail
    assert not [argv for argv in transport.calls if argv[0] == "touch"]
    assert runner.history.failed == []
    (entry,) = audit_of(tmp_path)
    assert entry["outcome"] == "refused"
    assert entry["reason"] == "the console runs with --read-only"


async def test_read_only_node_refuses_reboot(tmp_path: Path) -> None:
    runbook = parse_runbook("reboots.toml", REBOOT)
    spec = NodeSpec(name=NODE, host="192.0.2.1", read_only=True)
    transport = rebooting_node()
    hooks = ScriptedHooks([Choice.SKIP])
    report = await make_runner(runbook, tmp_path, transport, hooks, spec=spec).run()
    assert report.status is RunStatus.REFUSED
    assert report.stopped_at == 2
    refused = report.results[-1]
    assert refused.status is StepStatus.REFUSED
    assert f"node {NODE} is read-only in the inventory" in refused.detail
    assert ("systemctl", "reboot") not in transport.calls
    saved = StateStore(tmp_path / "state").load(runbook.id, NODE)
    assert saved is not None
    assert saved.reboot is None
    assert saved.next_index == 1


async def test_cli_prints_refused_step_without_failure_advice(tmp_path: Path) -> None:
    from io import StringIO

    from nydus_console.runbookcli import EXIT_FAILED, run_exit_status
    from nydus_console.runbooks.terminal import AutoHooks, StepPrinter

    out = StringIO()
    hooks = AutoHooks(StepPrinter(out, 3), destructive_nodes=[])
    runner = make_runner(
        markers(), tmp_path, RecordingTransport(), hooks, read_only=True
    )
    report = await runner.run()
    printed = out.getvalue()
    last = printed.splitlines()[-1]
    assert last.startswith(f"[{NODE}]   refused (read-only): ")
    assert last.endswith("refused: the console runs with --read-only")
    assert "on failure" not in printed
    assert "failed" not in printed
    assert run_exit_status([report]) == EXIT_FAILED


def test_cli_lists_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    from nydus_console.cli import main

    assert main(["runbook", "list", "--json"]) == 0
    listed = {row["id"] for row in json.loads(capsys.readouterr().out)}
    assert listed == SHIPPED_IDS


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", "no-such"], "no runbook 'no-such'"),
        (["run", "stale-snapshot", "--node", "n1"], "needs --param image=VALUE"),
        (["run", "leftover-cgroup"], "needs --node NAME"),
        (["run", "leftover-cgroup", "--node", "n1", "--param", "x=1"], "no parameter"),
        (
            ["run", "leftover-cgroup", "--node", "n1", "--yes-destructive", "n2"],
            "names a node the run does not include",
        ),
    ],
)
def test_cli_rejects_bad_arguments(
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from nydus_console.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["runbook", *arguments]) == 64
    assert message in capsys.readouterr().err


def test_runbook_reference_is_current() -> None:
    from nydus_console.runbooks.reference import runbook_reference

    page = Path(__file__).parent.parent / "docs" / "runbooks.md"
    assert page.read_text() == runbook_reference(), (
        "docs/runbooks.md is out of date: run scripts/gen-runbook-reference"
    )


async def test_bare_node_gets_no_runbook_but_setup(tmp_path: Path) -> None:
    def bare() -> NodeFacts:
        facts = healthy_facts(snapshotter=None, nydusd=None)
        facts.units = {}
        facts.processes = []
        facts.versions.pop("snapshotter", None)
        return facts

    transport = RecordingTransport()
    runner = make_runner(
        load_runbooks()["snapshotter-not-running"],
        tmp_path,
        transport,
        ScriptedHooks(),
        facts=bare,
    )
    report = await runner.run()
    assert report.status is RunStatus.NOT_STARTED
    assert "nydus-snapshotter is not installed on" in report.message
    assert "nydus-console setup --node" in report.message
    assert transport.calls == [], "nothing ran on the node"
    assert not audit_of(tmp_path)
