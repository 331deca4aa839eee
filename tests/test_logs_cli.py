"""`nydus-console logs` on this machine's files and on booted nodes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_logs_follow import install_old_journalctl
from testbed.nspawn import NspawnFleet

from nydus_console.inventory import InventoryError, load_inventory, local_inventory
from nydus_console.logcli import run_logs, validate_lines

LINES = (
    'time="2024-01-01T00:00:00Z" level=info msg="started"\n'
    'time="2024-01-01T00:00:01Z" level=error msg="mount failed" error="EIO"\n'
)


async def test_logs_prints_parsed_lines(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text(LINES)
    out = io.StringIO()
    code = await run_logs(
        local_inventory(),
        unit=None,
        path=str(log),
        lines=10,
        follow=False,
        grep="mount",
        as_json=True,
        out=out,
    )
    assert code == 0
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["level"] == "error"
    assert entry["message"] == "mount failed"
    assert entry["fields"] == {"error": "EIO"}
    assert entry["time"] == 1704067201.0


async def test_grep_ignores_case_unless_upper(tmp_path: Path) -> None:
    log = tmp_path / "nydus-snapshotter.log"
    log.write_text(
        'time="2024-01-01T00:00:01Z" level=error msg="Registry refused the pull"\n'
    )

    async def matches(pattern: str) -> int:
        out = io.StringIO()
        await run_logs(
            local_inventory(),
            unit=None,
            path=str(log),
            lines=10,
            follow=False,
            grep=pattern,
            as_json=True,
            out=out,
        )
        return len(out.getvalue().splitlines())

    assert await matches("registry refused") == 1
    assert await matches("Registry") == 1
    assert await matches("REGISTRY") == 0, "an upper-case letter makes case count"


async def test_missing_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone.log"
    code = await run_logs(
        local_inventory(),
        unit=None,
        path=str(missing),
        lines=10,
        follow=False,
        grep=None,
        as_json=False,
        out=io.StringIO(),
    )
    assert code == 1
    assert str(missing) in capsys.readouterr().err


async def test_logs_of_old_journalctl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_old_journalctl(tmp_path, monkeypatch)
    out = io.StringIO()
    code = await run_logs(
        local_inventory(),
        unit="nydus-snapshotter.service",
        path=None,
        lines=10,
        follow=False,
        grep=None,
        as_json=True,
        out=out,
    )
    assert code == 0
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["message"] == "from the old journal"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["logs", "--file", "relative.log"], "must be an absolute path"),
        (["logs", "--grep", "("], "invalid --grep"),
        (["logs", "--unit", "a.service", "--file", "/x"], "not both"),
        (["logs", "-n", "-5"], "invalid -n/--lines -5"),
        (["logs", "-n", "0"], "invalid -n/--lines 0"),
        (["logs", "-n", "99999999999"], "invalid -n/--lines 99999999999"),
        (["logs", "-f", "-n", "1000001"], "invalid -n/--lines 1000001"),
    ],
)
def test_logs_bad_arguments(argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nydus_console", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 64
    assert message in result.stderr


def test_lines_zero_allowed_with_follow() -> None:
    validate_lines(0, follow=True)
    validate_lines(1_000_000, follow=False)
    with pytest.raises(InventoryError, match="from 1 to"):
        validate_lines(0, follow=False)


@pytest.mark.nspawn
@pytest.mark.parametrize("follow", [False, True])
async def test_logs_of_missing_unit(
    nspawn_fleet: NspawnFleet, capsys: pytest.CaptureFixture[str], follow: bool
) -> None:
    inventory = load_inventory(nspawn_fleet.write_inventory())
    code = await run_logs(
        inventory,
        unit="kubelet.service",
        path=None,
        lines=10,
        follow=follow,
        grep=None,
        as_json=False,
        out=io.StringIO(),
    )
    assert code == 1
    err = capsys.readouterr().err
    for node in ("nc-node1", "nc-node2", "nc-node3"):
        assert f"{node}: kubelet.service is not installed on {node}" in err


@pytest.mark.nspawn
async def test_logs_of_installed_unit(
    nspawn_fleet: NspawnFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = load_inventory(nspawn_fleet.write_inventory())
    inventory.nodes = inventory.nodes[:1]
    out = io.StringIO()
    code = await run_logs(
        inventory,
        unit="containerd.service",
        path=None,
        lines=10,
        follow=False,
        grep=None,
        as_json=False,
        out=out,
    )
    assert code == 0
    assert "not installed" not in capsys.readouterr().err
    assert out.getvalue().strip()


@pytest.mark.nspawn
async def test_logs_of_failed_snapshotter(nspawn_fleet: NspawnFleet) -> None:
    inventory = load_inventory(nspawn_fleet.write_inventory())
    inventory.nodes = [n for n in inventory.nodes if n.name == "nc-node3"]
    out = io.StringIO()
    code = await run_logs(
        inventory,
        unit=None,
        path=None,
        lines=50,
        follow=False,
        grep=None,
        as_json=False,
        out=out,
    )
    assert code == 0
    text = out.getvalue()
    assert "FATAL   failed to start nydus-snapshotter" in text
    assert "read FUSE configuration file" in text
