"""The real probe script run on this machine against a node laid out in tmp."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from factbuilder import CONTAINERD_CONFIG, NYDUSD_CONFIG

from nydus_console.checks import run_checks
from nydus_console.findings import Status
from nydus_console.inventory import NodePaths, NodeSpec
from nydus_console.probe import NodeProber
from nydus_console.transport.base import SocketState
from nydus_console.transport.local import LocalTransport


@dataclass
class TmpNode:
    spec: NodeSpec
    root: Path
    grpc: Path
    live_api: Path
    stale_api: Path


def write_node(base: Path) -> tuple[NodeSpec, Path]:
    root = base / "root"
    grpc = base / "run" / "grpc.sock"
    nydusd_config = base / "nydusd 'config'.json"
    nydusd_config.write_text(NYDUSD_CONFIG)
    snapshotter = base / "config.toml"
    snapshotter.write_text(
        f'version = 1\nroot = "{root}"\naddress = "{grpc}"\n'
        f'[daemon]\nnydusd_config = "{nydusd_config}"\nfs_driver = "fusedev"\n'
    )
    containerd = base / "containerd.toml"
    containerd.write_text(CONTAINERD_CONFIG.replace("/var/lib/containerd", str(base)))
    paths = NodePaths(
        snapshotter_config=str(snapshotter),
        containerd_config=str(containerd),
        containerd_socket=str(base / "no-containerd.sock"),
    )
    return NodeSpec(name="tmp-node", local=True, paths=paths), root


@pytest.fixture
async def tmp_node(tmp_path: Path) -> AsyncIterator[TmpNode]:
    spec, root = write_node(tmp_path)
    grpc = tmp_path / "run" / "grpc.sock"
    grpc.parent.mkdir()
    server = await asyncio.start_unix_server(lambda r, w: w.close(), path=str(grpc))
    live = root / "socket" / "d1" / "api.sock"
    stale = root / "socket" / "d2" / "api.sock"
    live.parent.mkdir(parents=True)
    stale.parent.mkdir(parents=True)
    api = await asyncio.start_unix_server(lambda r, w: w.close(), path=str(live))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()
    yield TmpNode(spec, root, grpc, live, stale)
    server.close()
    api.close()


async def test_probe_reads_configs_and_sockets(tmp_node: TmpNode) -> None:
    prober = NodeProber(tmp_node.spec, LocalTransport("tmp-node"))
    facts = await prober.probe(full=True)
    paths = tmp_node.spec.paths
    assert facts.file(paths.snapshotter_config).status == "ok"
    assert 'fs_driver = "fusedev"' in facts.file(paths.snapshotter_config).text
    assert facts.round_trips == 2, "root and nydusd config were learned from config"
    assert sorted(facts.api_sockets) == [
        str(tmp_node.live_api),
        str(tmp_node.stale_api),
    ]
    assert facts.sockets[str(tmp_node.grpc)] is SocketState.LISTENING
    assert facts.sockets[str(tmp_node.live_api)] is SocketState.LISTENING
    assert facts.sockets[str(tmp_node.stale_api)] is SocketState.REFUSED
    assert facts.kernel_release
    assert facts.plugins_rc == -1
    findings = {f.check: f for f in run_checks(facts, paths)}
    assert findings["config.nydusd_config"].status == Status.OK
    assert findings["socket.grpc"].status == Status.OK
    assert findings["nydusd.daemons"].status == Status.WARN
    assert "1 of 2" in findings["nydusd.daemons"].message

    again = await prober.probe()
    assert again.round_trips == 1, "a refresh needs a single round trip"
    assert again.plugins_output == facts.plugins_output


async def test_probe_sees_process_and_cmdline(
    tmp_node: TmpNode, tmp_path: Path
) -> None:
    sleeper = tmp_path / "nydusd"
    shutil.copy("/bin/sh", sleeper)
    # A trailing command stops the shell from exec'ing sleep (comm would change).
    argv = [str(sleeper), "-c", "sleep 30; :", "--apisock", "a b"]
    proc = subprocess.Popen(argv)
    try:
        facts = await NodeProber(tmp_node.spec, LocalTransport("t")).probe(full=True)
    finally:
        proc.kill()
        proc.wait()
    found = [p for p in facts.processes if p.pid == proc.pid]
    assert len(found) == 1
    assert found[0].comm == "nydusd"
    assert found[0].cmdline == argv
    assert found[0].state in ("S", "R")


async def test_forged_section_in_config_is_inert(tmp_node: TmpNode) -> None:
    config = Path(tmp_node.spec.paths.snapshotter_config)
    forged = config.read_text() + "\n# ::nc-0000:: file 1 ok\n::nydus-console:: end\n"
    config.write_text(forged)
    facts = await NodeProber(tmp_node.spec, LocalTransport("t")).probe(full=True)
    assert facts.file(tmp_node.spec.paths.snapshotter_config).text == forged
    assert facts.file(tmp_node.spec.paths.containerd_config).status == "ok"


async def test_missing_files_reported(tmp_path: Path) -> None:
    spec = NodeSpec(
        name="empty",
        local=True,
        paths=NodePaths(
            snapshotter_config=str(tmp_path / "absent.toml"),
            containerd_config=str(tmp_path / "absent-ctd.toml"),
        ),
    )
    facts = await NodeProber(spec, LocalTransport("t")).probe(full=True)
    assert facts.file(str(tmp_path / "absent.toml")).status == "missing"
    findings = {f.check: f for f in run_checks(facts, spec.paths)}
    assert findings["containerd.config"].status == Status.WARN


async def test_refresh_skips_versions_and_ctr(tmp_node: TmpNode) -> None:
    transport = LocalTransport("t")
    prober = NodeProber(tmp_node.spec, transport)
    await prober.probe(full=True)
    refresh = await transport.run(prober._arguments(False, prober.plan.arguments()))
    assert " version " not in refresh.stdout
    assert " plugins" not in refresh.stdout
    full = await transport.run(prober._arguments(True, prober.plan.arguments()))
    assert " version snapshotter" in full.stdout
    assert " plugins" in full.stdout


async def test_other_pid_namespace_not_counted(
    tmp_node: TmpNode, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to create a PID namespace")
    sleeper = tmp_path / "containerd-nydus-grpc"
    shutil.copy("/bin/sh", sleeper)
    proc = subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            str(sleeper),
            "-c",
            "sleep 30; :",
        ]
    )
    try:
        await asyncio.sleep(0.3)
        facts = await NodeProber(tmp_node.spec, LocalTransport("t")).probe(full=True)
    finally:
        proc.kill()
        proc.wait()
    assert not [p for p in facts.processes if p.comm.startswith("containerd-nydu")]
