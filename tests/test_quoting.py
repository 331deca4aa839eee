"""The one quoting function keeps every word literal for a real POSIX shell."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_console.transport.quoting import UnsafeArgumentError, quote_argv, with_sudo

HOSTILE = [
    "'; rm -rf / #",
    '"$(touch /tmp/nc-pwned)"',
    "`id`",
    "a\nb",
    "$HOME",
    "*",
    "--",
    "-rf",
    "\\",
    "'",
    '"',
    "a b",
    "",
    "${IFS}",
    "x;y|z&w",
    "\t",
]
# printf prints each argument NUL-terminated, so the shell's view of the words
# can be compared byte for byte.
ECHO = ["sh", "-c", 'for a; do printf "%s\\0" "$a"; done', "echo-args"]


def shell_words(argv: list[str]) -> list[str]:
    line = quote_argv([*ECHO, *argv])
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


def test_hostile_words_stay_literal(tmp_path: object) -> None:
    assert shell_words(HOSTILE) == HOSTILE


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_characters="\0", blacklist_categories=("Cs",)
            )
        ),
        max_size=6,
    )
)
def test_any_text_round_trips(words: list[str]) -> None:
    assert shell_words(words) == words


def test_nul_byte_rejected() -> None:
    with pytest.raises(UnsafeArgumentError, match="NUL"):
        quote_argv(["cat", "a\0b"])


def test_empty_command_rejected() -> None:
    with pytest.raises(ValueError, match="empty command"):
        quote_argv([])


def test_sudo_is_non_interactive() -> None:
    assert with_sudo(["systemctl", "show"]) == ["sudo", "-n", "--", "systemctl", "show"]
