"""Writing a saved log view: paths, existing files and the errors shown to the user."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from nydus_console.logs.save import (
    SaveError,
    resolve_save_path,
    saved_logs_dir,
    write_lines,
)


def test_writes_new_file(tmp_path: Path) -> None:
    target = tmp_path / "view.log"
    assert write_lines(target, ["a\n", "b\n"]) == 2
    assert target.read_text() == "a\nb\n"


def test_existing_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "view.log"
    target.write_text("old\n")
    with pytest.raises(SaveError) as raised:
        write_lines(target, ["new\n"])
    assert raised.value.exists
    assert raised.value.message == (
        f"{target} already exists; overwrite it or choose another name"
    )
    assert target.read_text() == "old\n"


def test_overwrite_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "view.log"
    target.write_text("old\n")
    assert write_lines(target, ["new\n"], overwrite=True) == 1
    assert target.read_text() == "new\n"


def test_missing_directory_names_mkdir(tmp_path: Path) -> None:
    target = tmp_path / "a b" / "view.log"
    with pytest.raises(SaveError) as raised:
        write_lines(target, ["x\n"])
    assert not raised.value.exists
    assert raised.value.message == (
        f"the directory {target.parent} does not exist; create it with "
        f"mkdir -p '{target.parent}' or choose another path"
    )


def test_directory_path_needs_file_name(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="is a directory; add a file name"):
        write_lines(tmp_path, ["x\n"])


def test_file_in_path_is_not_directory(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(SaveError, match="is a file, not a directory"):
        write_lines(tmp_path / "plain" / "view.log", ["x\n"])


def test_permission_denied_names_path() -> None:
    # sysfs rejects new files for every user, root included.
    target = Path("/sys/nydus-console-view.log")
    with pytest.raises(SaveError) as raised:
        write_lines(target, ["x\n"])
    assert raised.value.message.startswith(f"permission denied writing {target}; ")
    assert str(saved_logs_dir()) in raised.value.message


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "view.log"

    def lines() -> Iterator[str]:
        yield "first\n"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SaveError) as raised:
        write_lines(target, lines())
    assert raised.value.message == (
        f"writing {target} failed: No space left on device; nothing was saved"
    )
    assert not target.exists()


def test_full_device_is_not_removed() -> None:
    # Every write to /dev/full fails with ENOSPC.
    full = Path("/dev/full")
    with pytest.raises(SaveError) as raised:
        write_lines(full, ["x\n"], overwrite=True)
    assert raised.value.message == (
        "writing /dev/full failed: No space left on device; the file is incomplete"
    )
    assert full.is_char_device()


def test_saved_logs_dir_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    directory = saved_logs_dir()
    assert directory == tmp_path / "state" / "nydus-console" / "saved-logs"
    write_lines(directory / "view.log", ["x\n"])
    assert (directory / "view.log").read_text() == "x\n"


def test_resolve_expands_home_and_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert resolve_save_path("~/x.log") == tmp_path / "x.log"
    assert resolve_save_path(" logs/y.log ") == tmp_path / "logs" / "y.log"
    with pytest.raises(SaveError, match="enter the path"):
        resolve_save_path("  ")
