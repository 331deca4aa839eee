"""The SSH transport against real OpenSSH servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.loopback import LoopbackFleet, LoopbackServer

from nydus_console.fleet import UNREACHABLE, Fleet
from nydus_console.inventory import Inventory, NodeSpec
from nydus_console.transport.base import ErrorKind, TransportError
from nydus_console.transport.hostkeys import HostKeyStore
from nydus_console.transport.ssh import SSHTarget, SSHTransport

pytestmark = pytest.mark.sshd


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's ~/.ssh (known_hosts, config, agent) out of every test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (tmp_path / "home").mkdir()


def spec_for(fleet: LoopbackFleet, server: LoopbackServer, **extra: object) -> NodeSpec:
    assert fleet.client_key is not None
    values: dict[str, object] = {
        "name": server.name,
        "host": server.address,
        "port": server.port,
        "user": "root",
        "identity_file": str(fleet.client_key.private_path),
    }
    values.update(extra)
    return NodeSpec(**values)  # type: ignore[arg-type]


def fleet_of(specs: list[NodeSpec], store: HostKeyStore) -> Fleet:
    return Fleet(Inventory(nodes=specs, source="test"), host_keys=store)


def fingerprint(public_line: str) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", "-"],
        input=public_line,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    return out.split()[1]


async def test_unknown_key_shown_then_accepted(
    loopback_sshd: LoopbackFleet, tmp_path: Path
) -> None:
    server = loopback_sshd.servers[0]
    own = tmp_path / "state" / "known_hosts"
    fleet = fleet_of([spec_for(loopback_sshd, server)], HostKeyStore(own))
    try:
        report = await fleet.probe_node(server.name)
        assert report.status == UNREACHABLE
        assert report.error is not None
        assert report.error.kind is ErrorKind.HOST_KEY_UNKNOWN
        key = report.error.key  # type: ignore[attr-defined]
        assert key.key_type == "ssh-ed25519"
        assert key.fingerprint == fingerprint(server.host_public_key)
        assert "ssh_host_ed25519_key.pub" in report.error.next_step
        assert key.fingerprint in report.error.message
        assert not own.exists(), "nothing is trusted before the operator accepts"

        fleet.accept_host_key(server.name)
        assert f"[127.0.0.1]:{server.port} ssh-ed25519 " in own.read_text()
        report = await fleet.probe_node(server.name, full=True)
        assert report.error is None, report.error
        assert report.facts is not None and report.facts.kernel_release
    finally:
        await fleet.close()


async def test_changed_key_refused(
    loopback_sshd: LoopbackFleet, tmp_path: Path
) -> None:
    server, other = loopback_sshd.servers[0], loopback_sshd.servers[1]
    stale = tmp_path / "known_hosts"
    stale.write_text(f"[127.0.0.1]:{server.port} {other.host_public_key}\n")
    fleet = fleet_of(
        [spec_for(loopback_sshd, server)], HostKeyStore(tmp_path / "own", [stale])
    )
    try:
        report = await fleet.probe_node(server.name)
        assert report.error is not None
        assert report.error.kind is ErrorKind.HOST_KEY_CHANGED
        assert "CHANGED" in report.error.message
        assert f"ssh-keygen -R '[127.0.0.1]:{server.port}' -f {stale}" in (
            report.error.next_step
        )
        with pytest.raises(ValueError, match="changed"):
            fleet.accept_host_key(server.name)
    finally:
        await fleet.close()


@pytest.fixture
def trusted(loopback_sshd: LoopbackFleet, tmp_path: Path) -> HostKeyStore:
    return HostKeyStore(tmp_path / "own", [loopback_sshd.write_known_hosts()])


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


async def test_bad_nodes_never_delay_good_ones(
    loopback_sshd: LoopbackFleet,
    trusted: HostKeyStore,
    silent_listener: int,
    tmp_path: Path,
) -> None:
    good = [spec_for(loopback_sshd, s) for s in loopback_sshd.servers]
    server = loopback_sshd.servers[0]
    refused = spec_for(loopback_sshd, server, name="refused", port=closed_port())
    silent = spec_for(
        loopback_sshd, server, name="silent", port=silent_listener, connect_timeout=4.0
    )
    stranger = tmp_path / "stranger_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True
    )
    wrong_key = spec_for(
        loopback_sshd, server, name="wrong-key", identity_file=str(stranger)
    )
    not_a_key = spec_for(
        loopback_sshd, server, name="not-a-key", identity_file=str(Path(__file__))
    )
    fleet = fleet_of([*good, refused, silent, wrong_key, not_a_key], trusted)
    try:
        reports = {r.spec.name: r for r in await fleet.probe_all(full=True)}
    finally:
        await fleet.close()
    for spec in good:
        assert reports[spec.name].error is None, reports[spec.name].error
        # The silent node's probe ends only at its 4 s timeout.
        assert reports[spec.name].seconds < reports["silent"].seconds
    kinds = {
        name: reports[name].error.kind  # type: ignore[union-attr]
        for name in ("refused", "silent", "wrong-key")
    }
    assert kinds["refused"] is ErrorKind.REFUSED
    assert kinds["silent"] is ErrorKind.TIMED_OUT
    assert kinds["wrong-key"] is ErrorKind.AUTH_FAILED
    bad_file = reports["not-a-key"].error
    assert bad_file is not None and bad_file.kind is ErrorKind.FAILED
    assert "cannot be used" in bad_file.message
    assert str(Path(__file__)) in bad_file.message
    assert "sent no SSH banner within 4 s" in reports["silent"].error.message  # type: ignore[union-attr]


async def test_backoff_answers_fast_then_recovers(
    loopback_sshd: LoopbackFleet, trusted: HostKeyStore
) -> None:
    server = loopback_sshd.servers[0]
    spec = spec_for(loopback_sshd, server, port=closed_port())
    transport = SSHTransport(
        SSHTarget(
            name="n",
            host="127.0.0.1",
            port=spec.port,
            user="root",
            identity_file=spec.identity_file,
        ),
        trusted,
    )
    with pytest.raises(TransportError) as first:
        await transport.run(["true"])
    with pytest.raises(TransportError) as second:
        await transport.run(["true"])
    assert second.value is first.value, "within the backoff the last error returns"
    await transport.close()


async def test_sessions_beyond_limit_are_queued(
    loopback_sshd: LoopbackFleet, trusted: HostKeyStore
) -> None:
    server = loopback_sshd.servers[1]
    assert loopback_sshd.client_key is not None
    target = SSHTarget(
        name="q",
        host="127.0.0.1",
        port=server.port,
        user="root",
        identity_file=str(loopback_sshd.client_key.private_path),
        max_sessions=4,
    )
    transport = SSHTransport(target, trusted)
    try:
        results = await asyncio.gather(
            *(transport.run(["sh", "-c", f"sleep 0.2; echo {i}"]) for i in range(12))
        )
    finally:
        await transport.close()
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(12)]
    assert all(r.ok for r in results)


async def test_stream_close_ends_remote_command(
    loopback_sshd: LoopbackFleet, trusted: HostKeyStore
) -> None:
    server = loopback_sshd.servers[2]
    assert loopback_sshd.client_key is not None
    target = SSHTarget(
        name="s",
        host="127.0.0.1",
        port=server.port,
        user="root",
        identity_file=str(loopback_sshd.client_key.private_path),
    )
    transport = SSHTransport(target, trusted)
    marker = "nc-stream-marker-7731"
    try:
        lines = transport.stream(
            ["sh", "-c", f"while :; do echo {marker}; sleep 0.1; done"]
        )
        got = [await anext(lines) for _ in range(3)]
        await lines.aclose()  # type: ignore[attr-defined]
        assert got == [marker] * 3
        await asyncio.sleep(0.5)
        left = await transport.run(
            ["sh", "-c", "ps -eo args | grep -c '[n]c-stream-marker'"]
        )
        assert left.stdout.strip() == "0", "closing the PTY channel must end it"
    finally:
        await transport.close()


async def test_sshd_killed_mid_command(tmp_path: Path) -> None:
    with LoopbackFleet(1, workdir=tmp_path / "lb") as fleet:
        server = fleet.servers[0]
        assert fleet.client_key is not None
        target = SSHTarget(
            name="k",
            host="127.0.0.1",
            port=server.port,
            user="root",
            identity_file=str(fleet.client_key.private_path),
        )
        transport = SSHTransport(
            target, HostKeyStore(tmp_path / "o", [fleet.write_known_hosts()])
        )
        await transport.run(["true"])
        slow = asyncio.create_task(transport.run(["sleep", "10"], timeout=20))
        await asyncio.sleep(0.5)
        fleet.close()
        with pytest.raises(TransportError) as caught:
            await asyncio.wait_for(slow, 10)
        assert caught.value.kind is ErrorKind.DISCONNECTED
        transport.reset_backoff()
        with pytest.raises(TransportError) as again:
            await transport.run(["true"])
        assert again.value.kind is ErrorKind.REFUSED
        await transport.close()


async def test_jump_host_used_and_blamed(
    loopback_sshd: LoopbackFleet, trusted: HostKeyStore
) -> None:
    bastion, target = loopback_sshd.servers[0], loopback_sshd.servers[1]
    good = spec_for(
        loopback_sshd,
        target,
        name="via-bastion",
        jump_host=f"root@127.0.0.1:{bastion.port}",
    )
    dead_port = closed_port()
    bad = spec_for(
        loopback_sshd,
        target,
        name="via-dead-bastion",
        jump_host=f"root@127.0.0.1:{dead_port}",
    )
    fleet = fleet_of([good, bad], trusted)
    try:
        reports = {r.spec.name: r for r in await fleet.probe_all(full=True)}
    finally:
        await fleet.close()
    assert reports["via-bastion"].error is None, reports["via-bastion"].error
    error = reports["via-dead-bastion"].error
    assert error is not None
    assert error.kind is ErrorKind.REFUSED
    assert error.message.startswith(f"jump host root@127.0.0.1:{dead_port} of ")


async def _http_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    linger_zero = struct.pack("ii", 1, 0)
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, linger_zero
    )
    writer.close()


@pytest.mark.parametrize("serve", [_http_answer, _reset], ids=["http", "reset"])
async def test_port_without_sshd_is_named(serve: Any, tmp_path: Path) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = SSHTarget(name="w", host="127.0.0.1", port=port, connect_timeout=5)
    transport = SSHTransport(target, HostKeyStore(tmp_path / "known_hosts"))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.run(["true"])
    finally:
        await transport.close()
        server.close()
    assert caught.value.kind is ErrorKind.DISCONNECTED
    assert f"check that port {port} serves SSH" in str(caught.value)
