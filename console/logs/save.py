"""Write log lines to a file the operator chose; errors name the next step."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from nydus_console import locations


class SaveError(Exception):
    """Error of a failed save. `message` names the path and the next step.

    `exists` is set when the file already exists and was not to be overwritten.
    """

    def __init__(self, message: str, *, exists: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exists = exists


def saved_logs_dir() -> Path:
    """Return the directory that saved views go to unless another is chosen."""
    return locations.state_dir() / "saved-logs"


def resolve_save_path(text: str) -> Path:
    """Expand `~` and variables in a typed path and make it absolute.

    Raises SaveError for an empty path. A relative path is taken from the
    console's working directory.
    """
    if not text.strip():
        raise SaveError("enter the path of the file to save to")
    return Path(os.path.abspath(locations.expand(text.strip())))


def write_lines(path: Path, lines: Iterable[str], *, overwrite: bool = False) -> int:
    """Write `lines` (each ending in a newline) to `path`; return how many.

    The saved-logs directory is created when missing; any other missing
    directory is an error. Without `overwrite`, an existing file is left as it
    is and SaveError(exists=True) is raised. A new file that failed half-way
    is removed, so that no partial copy is left behind. An overwritten one is
    left incomplete, because it may be a device or a file someone else owns.
    """
    if path.is_dir():
        raise SaveError(f"{path} is a directory; add a file name to the path")
    if path.parent == saved_logs_dir():
        _create_saved_logs_dir(path.parent)
    try:
        out = path.open("w" if overwrite else "x", encoding="utf-8")
    except FileExistsError as exc:
        message = f"{path} already exists; overwrite it or choose another name"
        raise SaveError(message, exists=True) from exc
    except OSError as exc:
        raise SaveError(_open_error(path, exc)) from exc
    count = 0
    try:
        with out:
            for line in lines:
                out.write(line)
                count += 1
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if overwrite:
            outcome = "the file is incomplete"
        else:
            path.unlink(missing_ok=True)
            outcome = "nothing was saved"
        raise SaveError(f"writing {path} failed: {reason}; {outcome}") from exc
    return count


def _create_saved_logs_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SaveError(
            f"creating {directory} failed: {reason}; choose a path elsewhere"
        ) from exc


def _open_error(path: Path, exc: OSError) -> str:
    """Return what went wrong opening `path` for writing, and what to do."""
    if isinstance(exc, PermissionError):
        return (
            f"permission denied writing {path}; choose a directory you can write "
            f"to, such as {saved_logs_dir()}"
        )
    if isinstance(exc, FileNotFoundError):
        directory = shlex.quote(str(path.parent))
        return (
            f"the directory {path.parent} does not exist; create it with "
            f"mkdir -p {directory} or choose another path"
        )
    if isinstance(exc, NotADirectoryError):
        return (
            f"a part of {path.parent} is a file, not a directory; choose another path"
        )
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a directory; add a file name to the path"
    reason = exc.strerror or str(exc)
    return f"opening {path} for writing failed: {reason}; choose another path"
