"""Node arguments, inventory files and ~/.ssh/config aliases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_console.cli import build_parser, main, resolve_inventory
from nydus_console.inventory import (
    InventoryError,
    load_inventory,
    parse_node_argument,
    ssh_config_aliases,
)


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("node-1", None, "node-1", None),
        ("ops@node-1.example.internal:2222", "ops", "node-1.example.internal", 2222),
        ("10.0.0.5", None, "10.0.0.5", None),
        ("root@[::1]:2200", "root", "::1", 2200),
        ("fd00::5", None, "fd00::5", None),
    ],
)
def test_valid_node_arguments(
    text: str, user: str | None, host: str, port: int | None
) -> None:
    spec = parse_node_argument(text)
    assert (spec.user, spec.host, spec.port) == (user, host, port)


HOSTILE = [
    "node;rm -rf /",
    "$(id)",
    "`id`",
    "node\nother",
    "a'b",
    'a"b',
    "node:0",
    "node:99999",
    "node:22x",
    "-oProxyCommand=id",
    "user name@node",
    "@node",
    "node|cat",
    "node&",
    "[::1",
    "[nothost]:22",
    "",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_node_arguments_rejected(text: str) -> None:
    with pytest.raises(InventoryError, match="invalid"):
        parse_node_argument(text)


SAFE_HOST = re.compile(r"^[A-Za-z0-9_.:-]+$")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_accepted_argument_is_inert(text: str) -> None:
    try:
        spec = parse_node_argument(text)
    except InventoryError:
        return
    assert SAFE_HOST.match(spec.host)
    assert not spec.host.startswith("-")
    assert spec.user is None or re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", spec.user)


def test_hostile_argument_exits_with_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    code = main(["doctor", "--node", f"x;touch {marker}"])
    assert code == 64
    assert "invalid host" in capsys.readouterr().err
    assert not marker.exists()


def write(tmp_path: Path, text: str, name: str = "inventory.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_inventory_defaults_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_nydus").write_text("key")
    inventory = load_inventory(
        write(
            tmp_path,
            """
[defaults]
user = "ops"
sudo = true
identity_file = "~/.ssh/id_nydus"
known_hosts = "/etc/nydus-console/known_hosts"
containerd_config = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"

[nodes.edge-1]
address = "10.0.0.7"
port = 2222
read_only = true
containerd_socket = "/run/k3s/containerd/containerd.sock"

[nodes.edge-2]
user = "root"
jump_host = "ops@bastion:2200"
""",
        )
    )
    first, second = inventory.nodes
    assert (first.name, first.host, first.port, first.user) == (
        "edge-1",
        "10.0.0.7",
        2222,
        "ops",
    )
    assert first.sudo and first.read_only
    assert first.paths.containerd_socket == "/run/k3s/containerd/containerd.sock"
    assert first.paths.containerd_config.startswith("/var/lib/rancher/k3s")
    assert first.identity_file is not None and "~" not in first.identity_file
    assert second.host == "edge-2"
    assert second.user == "root"
    assert second.jump_host == "ops@bastion:2200"
    assert inventory.known_hosts == ["/etc/nydus-console/known_hosts"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nodes.a]\naddres = 'x'\n", "unknown key(s) ['addres']"),
        ("[nodes.a]\nport = 0\n", "port must be 1-65535"),
        (
            "[nodes.a]\nsnapshotter_config = 'etc/nydus/config.toml'\n",
            "must be an absolute path",
        ),
        ("[nodes.a]\nsnapshotter_unit = 'nydus; reboot'\n", "not a systemd unit"),
        ("[nodes.a]\naddress = '$(reboot)'\n", "invalid host"),
        ("[nodes.a]\nsudo = 'yes'\n", "sudo must be true or false"),
        ("[defaults]\nuser = 'ops'\n", "no [nodes.NAME] table"),
        ("[nodes.a\n", "not valid TOML"),
        ("nodes = 3\n", "[nodes] must be a table"),
    ],
)
def test_inventory_errors_name_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "name", ["inv'; touch pwned #.toml", "$(touch pwned).toml", "inv\nx.toml"]
)
def test_hostile_inventory_paths_are_only_opened(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, "[nodes.a]\naddress = '127.0.0.1'\n", name)
    args = build_parser().parse_args(["doctor", "--inventory", str(path)])
    assert resolve_inventory(args).nodes[0].host == "127.0.0.1"
    assert not (tmp_path / "pwned").exists()


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not found"):
        load_inventory(tmp_path / "nope.toml")


def test_nothing_configured_means_this_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    inventory = resolve_inventory(build_parser().parse_args([]))
    assert len(inventory.nodes) == 1
    assert inventory.nodes[0].local


def test_ssh_config_aliases(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
Host bastion
  HostName 10.0.0.1
Host gpu-node-1 gpu-node-2 *.internal
  User ops
Host !nope gpu-*
""",
        "config",
    )
    assert ssh_config_aliases(config) == ["bastion", "gpu-node-1", "gpu-node-2"]
    assert ssh_config_aliases(config, "gpu-*") == ["gpu-node-1", "gpu-node-2"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--inventory", "INV", "doctor"],
        ["doctor", "--inventory", "INV"],
        ["--node", "a", "doctor", "--node", "b"],
    ],
)
def test_node_options_before_or_after_doctor(tmp_path: Path, argv: list[str]) -> None:
    inventory = write(tmp_path, "[nodes.inv-node]\naddress = '127.0.0.1'\n")
    args = build_parser().parse_args(
        [str(inventory) if a == "INV" else a for a in argv]
    )
    names = [n.name for n in resolve_inventory(args).nodes]
    assert names in (["inv-node"], ["a", "b"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--node", "-oProxyCommand=id@127.0.0.1:1"], "expected one argument"),
        (["--refresh", "abc"], "not a number of seconds"),
        (["--refresh", "0.01"], "at least 2 seconds"),
        (["--refresh", "-1"], "at least 2 seconds"),
        (["doctor", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_64(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 64
    assert message in capsys.readouterr().err


def test_same_host_other_port_is_another_node() -> None:
    args = build_parser().parse_args(
        ["--node", "root@127.0.0.1:2299", "--node", "127.0.0.1:1"]
    )
    names = [n.name for n in resolve_inventory(args).nodes]
    assert names == ["127.0.0.1:2299", "127.0.0.1:1"]


def test_node_option_selects_inventory_node(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        '[nodes.gpu-1]\naddress = "10.0.0.5"\n\n[nodes.gpu-2]\naddress = "10.0.0.6"\n'
    )
    args = build_parser().parse_args(
        ["--inventory", str(inventory), "--node", "gpu-2", "--node", "127.0.0.1:1"]
    )
    nodes = resolve_inventory(args).nodes
    assert [n.name for n in nodes] == ["gpu-2", "127.0.0.1:1"]
    assert nodes[0].host == "10.0.0.6"


def test_misspelt_node_is_an_error_not_the_whole_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/config aliases
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        '[nodes.gpu-1]\naddress = "10.0.0.5"\n\n[nodes.gpu-2]\naddress = "10.0.0.6"\n'
    )
    args = build_parser().parse_args(
        ["config", "get", "log.level", "--inventory", str(inventory), "--node", "gpu1"]
    )
    with pytest.raises(InventoryError) as caught:
        resolve_inventory(args)
    message = str(caught.value)
    assert "node 'gpu1' is not in" in message
    assert "did you mean 'gpu-1'?" in message
    assert "its nodes are gpu-1, gpu-2" in message


def test_address_with_inventory_keeps_only_named_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[nodes.gpu-1]\naddress = "10.0.0.5"\n')
    args = build_parser().parse_args(
        ["--inventory", str(inventory), "--node", "root@10.0.0.9"]
    )
    assert [n.name for n in resolve_inventory(args).nodes] == ["10.0.0.9"]


def test_ssh_alias_with_inventory_is_a_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host bastion\n  HostName 10.0.0.1\n")
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[nodes.gpu-1]\naddress = "10.0.0.5"\n')
    args = build_parser().parse_args(
        ["--inventory", str(inventory), "--node", "gpu-1", "--node", "bastion"]
    )
    assert [n.name for n in resolve_inventory(args).nodes] == ["gpu-1", "bastion"]


def test_duplicate_node_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--node", "a", "--node", "a"]) == 64
    assert "'a' is given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nodes.a]\nport = '22'\n", "port must be a number without quotes"),
        ("[nodes.a]\nknown_hosts = ['/x']\n", "allowed only in [defaults]"),
        ("[nodes.a]\naddress = 5\n", "address must be a string"),
        ("[nodes.a]\nidentity_file = '/nonexistent/key'\n", "does not exist"),
    ],
)
def test_inventory_type_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(write(tmp_path, text))
    assert message in str(caught.value)
    assert str(caught.value).count(str(tmp_path)) == 1


def test_inventory_directory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)


def test_every_invalid_node_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[nodes.a]\naddress = "10.0.0.1"\nport = "22"\n'
        '[nodes.b]\naddres = "10.0.0.2"\n'
        '[nodes.c]\naddress = "10.0.0.3"\n',
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message.startswith("2 nodes are invalid:")
    assert "[nodes.a] port must be a number without quotes" in message
    assert "in [nodes.b] (did you mean address for addres?)" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["runbook", "run", "bad-config", "--node", "gpu1", "--dry-run"],
        ["setup", "--node", "GPU-1", "--plan-only"],
    ],
    ids=["runbook", "setup"],
)
def test_misspelt_node_refused_by_runbook_and_setup(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = write(tmp_path, '[nodes.gpu-1]\naddress = "127.0.0.1"\nport = 1\n')
    assert main([*argv, "--inventory", str(inventory)]) == 64
    assert "did you mean 'gpu-1'?" in capsys.readouterr().err
