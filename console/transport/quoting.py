"""The one place where argument lists become shell command lines.

Remote commands travel over SSH as a single string that the login shell parses, so
every word is quoted here with POSIX single quotes. Nothing else in the project
joins words into a command line.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class UnsafeArgumentError(ValueError):
    """Raised for an argument that no quoting can carry safely (a NUL byte)."""


def quote_argv(argv: Sequence[str]) -> str:
    """Return a shell command line that runs `argv` with every word kept literal."""
    if not argv:
        raise ValueError("empty command: an argument list needs at least one word")
    words = []
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"command words must be str, got {type(word).__name__}")
        if "\0" in word:
            raise UnsafeArgumentError(f"argument contains a NUL byte: {word!r}")
        words.append(shlex.quote(word))
    return " ".join(words)


def with_sudo(argv: Sequence[str]) -> list[str]:
    """Prefix `argv` with non-interactive sudo, which fails instead of prompting."""
    return ["sudo", "-n", "--", *argv]
