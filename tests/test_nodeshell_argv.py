"""The exec command of node-shell pods: hostile words stay separate argv elements."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nydus_console.kube.nodeshell import (
    NSENTER,
    NodeShellSettings,
    create_node_shell,
    listening_unix_sockets,
    nsenter_argv,
    pod_name,
    stdin_error,
)
from nydus_console.transport.quoting import UnsafeArgumentError

HOSTILE = [
    "; reboot",
    "$(rm -rf /)",
    "`id`",
    "a b\tc\nd",
    "' \" \\",
    "--",
    "-t",
    "1",
    "&& kill -9 1 ||",
    "*",
    "",
]
words = st.text(st.characters(blacklist_characters="\0"), max_size=40)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@given(st.lists(st.one_of(words, st.sampled_from(HOSTILE)), min_size=1))
def test_every_word_stays_one_element(argv: list[str]) -> None:
    command = nsenter_argv(argv)
    assert command[: len(NSENTER)] == list(NSENTER)
    assert command[len(NSENTER) :] == argv
    assert len(command) == len(NSENTER) + len(argv)


def test_hostile_words_are_not_joined_or_split() -> None:
    command = nsenter_argv(["cat", *HOSTILE])
    assert command == [*NSENTER, "cat", *HOSTILE]
    assert "sh" not in command
    assert "-c" not in command


def test_nsenter_ends_its_options_before_the_command() -> None:
    # A command word such as "-t" must not be read as an nsenter option.
    command = nsenter_argv(["-t", "2"])
    assert command[len(NSENTER) - 1] == "--"
    assert command[len(NSENTER) :] == ["-t", "2"]


def test_nul_byte_or_empty_command_rejected() -> None:
    with pytest.raises(UnsafeArgumentError, match="NUL byte"):
        nsenter_argv(["cat", "a\0b"])
    with pytest.raises(ValueError, match="empty command"):
        nsenter_argv([])


@given(st.text(max_size=300))
def test_pod_names_are_dns_labels(node: str) -> None:
    assert DNS_LABEL.match(pod_name(node))


def test_pod_command_is_argument_list() -> None:
    action = create_node_shell("node-1", NodeShellSettings())
    (container,) = action.manifest["spec"]["containers"]
    assert container["command"] == [*NSENTER, "sleep", "3600"]


@pytest.mark.parametrize("image", ["", "busybox latest", "a\nb"])
def test_invalid_image_names_key(image: str) -> None:
    with pytest.raises(ValueError, match="invalid node_shell_image"):
        create_node_shell("node-1", NodeShellSettings(image=image))


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", ""])
def test_stdin_needs_the_v5_protocol(protocol: str) -> None:
    error = stdin_error("tee", "node-1", protocol)
    assert error is not None
    assert "cannot send standard input to tee on node-1" in str(error)
    assert f"chose the {protocol or 'unknown'} exec protocol" in str(error)
    assert "over SSH" in error.next_step


def test_stdin_is_sent_with_v5() -> None:
    assert stdin_error("tee", "node-1", "v5.channel.k8s.io") is None


def test_proc_net_unix_lists_listening_sockets(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listening, bound:
        listening.bind(str(tmp_path / "api sock"))
        listening.listen()
        bound.bind(str(tmp_path / "bound.sock"))
        found = listening_unix_sockets(Path("/proc/net/unix").read_text())
    assert str(tmp_path / "api sock") in found
    assert str(tmp_path / "bound.sock") not in found
