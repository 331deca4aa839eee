"""Incident report times, windows and rendering, without nodes."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from nydus_console.cli import main
from nydus_console.configedit.apply import write_action
from nydus_console.incident import (
    ReportInput,
    TimeError,
    parse_moment,
    read_window,
    render_report,
)

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("30m", NOW - datetime.timedelta(minutes=30)),
        ("1h30m", NOW - datetime.timedelta(minutes=90)),
        ("2d", NOW - datetime.timedelta(days=2)),
        ("2026-03-01T08:00:00Z", NOW.replace(hour=8)),
        ("2026-03-01T09:00:00+01:00", NOW.replace(hour=8)),
        ("2026-03-01 08:00", NOW.replace(hour=8)),
        ("2026-02-28", datetime.datetime(2026, 2, 28, tzinfo=datetime.UTC)),
    ],
)
def test_moments(text: str, expected: datetime.datetime) -> None:
    assert parse_moment(text, NOW, "--since") == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-1h", "", "2026-13-01"])
def test_bad_moment_names_value_and_forms(text: str) -> None:
    with pytest.raises(TimeError) as error:
        parse_moment(text, NOW, "--since")
    assert f"--since {text!r} is not a time" in str(error.value)
    assert "ISO 8601" in str(error.value)
    assert "30m, 2h, 1d" in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "99999999h",
        "999999999999999999999w",
        "9" * 5000 + "s",
        "21000d",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:00:00-05:00",
        "1969-12-31T23:59:59Z",
    ],
)
def test_out_of_range_moment_names_range(text: str) -> None:
    with pytest.raises(TimeError) as error:
        parse_moment(text, NOW, "--until")
    assert f"--until {text!r} is out of range" in str(error.value)
    assert "from 1970-01-01 to 9999-12-31" in str(error.value)


def test_range_ends_are_times() -> None:
    assert parse_moment("1970-01-01", NOW, "--since").year == 1970
    assert parse_moment("9999-12-31", NOW, "--until").year == 9999


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a time"),
        (["--since", "99999999h"], "--since '99999999h' is out of range"),
        (["--since", "2h", "--until", "0001-01-01T00:00:00+01:00"], "out of range"),
        (["--since", "2h", "--until", "soon"], "--until 'soon' is not a time"),
        (["--since", "1h", "--until", "2h"], "is after --until"),
    ],
)
def test_bad_times_exit_64(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", *args, "--no-check"]) == 64
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_since_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report"])
    assert exit_info.value.code == 64
    assert "--since" in capsys.readouterr().err


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give the console an empty home; return where its audit log goes."""
    for name, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "nydus-console" / "audit.jsonl"


def _line(minutes: int, node: str, action: str, **fields: object) -> str:
    moment = NOW - datetime.timedelta(minutes=minutes)
    entry = {"time": moment.isoformat(), "node": node, "action": action, **fields}
    return json.dumps(entry)


def test_window_order_nodes_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(10, "a", "second", outcome="ran", exit_status=0),
                _line(90, "a", "too old", outcome="ran", exit_status=0),
                "{broken",
                _line(20, "b", "first", outcome="refused", reason="read-only"),
            ]
        )
    )
    since = NOW - datetime.timedelta(hours=1)
    window = read_window(path, since, NOW)
    assert [e.action for e in window.entries] == ["first", "second"]
    assert window.unreadable == 1
    assert [e.action for e in read_window(path, since, NOW, ["a"]).entries] == [
        "second"
    ]
    text = render_report(ReportInput(window, path, NOW))
    assert text.index("b: first") < text.index("a: second")
    assert "- Actions: 1 ran (1 succeeded, 0 failed), 1 refused." in text
    assert "- Audit lines that could not be read: 1." in text


def test_output_in_a_missing_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(tmp_path, monkeypatch)
    output = tmp_path / "typo" / "incident.md"
    code = main(["report", "--since", "1h", "--no-check", "--output", str(output)])
    assert code == 64
    err = capsys.readouterr().err
    assert f"folder {tmp_path / 'typo'} of --output" in err
    assert "create it first" in err
    assert not (tmp_path / "typo").exists()


def _report_of(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n")
    window = read_window(path, NOW - datetime.timedelta(hours=1), NOW)
    return render_report(ReportInput(window, path, NOW))


def test_failed_verification_fails_the_step(tmp_path: Path) -> None:
    restart = "snapshotter-not-running: Restart the snapshotter service"
    text = _report_of(
        tmp_path,
        [
            _line(30, "n1", restart, outcome="ran", exit_status=0),
            _line(
                29,
                "n1",
                restart,
                event="verification",
                runbook="snapshotter-not-running",
                step="restart",
                outcome="verification failed",
                detail="nydus-snapshotter.service was not active and steady "
                "within 45 s (last state failed/failed)",
            ),
            _line(
                29,
                "n1",
                "snapshotter-not-running",
                event="runbook run",
                outcome="failed",
                stopped_at=2,
                detail="stopped after a failure at step 2",
            ),
            _line(20, "n1", restart, outcome="ran", exit_status=0),
            _line(
                19, "n1", restart, event="verification", outcome="verified", step="x"
            ),
        ],
    )
    assert "- Actions: 2 ran (1 succeeded, 1 failed)." in text
    assert (
        "- Result: failed: verification failed: nydus-snapshotter.service was "
        "not active and steady within 45 s" in text
    )
    assert "- Verification: verified" in text
    assert "- Runbooks: snapshotter-not-running on n1 (failed at step 2)." in text
    assert "n1: runbook snapshotter-not-running ended" in text
    assert "- Last failed or refused: 2026-03-01 11:30:00 n1: " + restart in text
    # The verifications are part of their action's entry, not entries of their own.
    assert text.count(f"n1: {restart}\n") == 2


def test_failed_conversions_count_as_failed(tmp_path: Path) -> None:
    convert = "convert r/app:1 to r/app:1-nydus"
    text = _report_of(
        tmp_path,
        [
            _line(40, "n1", convert, outcome="failed", exit_status=1, error="denied"),
            _line(30, "n1", convert, outcome="failed", exit_status=127, error=""),
            _line(20, "n1", convert, outcome="succeeded", exit_status=0, error=""),
            _line(10, "n1", convert, outcome="connection lost", exit_status=None),
        ],
    )
    assert "- Actions: 3 ran (1 succeeded, 2 failed), 1 not completed." in text
    assert "- Result: failed (exit status 1): denied" in text
    assert "- Result: failed (exit status 127)\n" in text
    assert "- Result: not completed: connection lost" in text


def _recent(minutes: int, node: str, action: str, **fields: object) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=minutes)
    entry = {"time": moment.isoformat(), "node": node, "action": action, **fields}
    return json.dumps(entry)


def test_inventory_limits_the_report_to_its_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = isolate(tmp_path, monkeypatch)
    audit.parent.mkdir(parents=True)
    # Another inventory's node, at an address where nothing listens: reaching
    # it would fail and make the report exit 3.
    other = {"address": "root@127.0.0.1:1", "outcome": "ran", "exit_status": 0}
    audit.write_text(
        "\n".join(
            [
                _recent(30, "elsewhere", "restart containerd.service", **other),
                _recent(20, "elsewhere", "restart containerd.service", **other),
                _recent(10, "gpu-1", "restart kubelet", outcome="refused", reason="x"),
            ]
        )
        + "\n"
    )
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        '[nodes.gpu-1]\naddress = "root@127.0.0.1:1"\nread_only = true\n'
    )
    code = main(["report", "--inventory", str(inventory), "--since", "1h"])
    out = capsys.readouterr().out
    assert "elsewhere" not in out
    assert "gpu-1: restart kubelet" in out
    assert (
        f"- Left out: 2 audit entries of 1 other node outside inventory {inventory}"
        in out
    )
    # gpu-1 is reached (and cannot be), the other inventory's node never.
    assert code == 3
    assert "### gpu-1: unreachable" in out
    code = main(["report", "--since", "1h", "--node", "gpu-1", "--no-check"])
    out = capsys.readouterr().out
    assert code == 0
    assert "elsewhere" not in out
    assert "outside the --node selection" in out


def test_config_writes_show_path_and_changes(tmp_path: Path) -> None:
    path = "/etc/nydus/config.toml"
    write = write_action(path, "new\n", "old\n", "20260301T110000Z")
    old_style = {"command": write.command_line, "outcome": "ran", "exit_status": 0}
    new_style = dict(old_style, path=path, changes='log.level = "debug"')
    text = _report_of(
        tmp_path,
        [
            _line(30, "n1", f"write {path}", **old_style),
            _line(20, "n1", f"write {path}", **new_style),
        ],
    )
    assert text.count(f"- Wrote: {path}\n") == 2
    assert text.count("- Changed: ") == 1
    assert '- Changed: log.level = "debug"\n' in text
    assert "set -eu" not in text
    assert "- Command:" not in text
