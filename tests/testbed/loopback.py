"""A light tier: many private OpenSSH sshd instances on 127.0.0.1.

For benchmarks and tests that need many SSH hosts but no systemd or
containerd behind them. All instances run in one private mount namespace
(``unshare --mount --propagation private``) in which an empty file is
bind-mounted over /root/.bashrc. sshd makes bash source that file for every
command, and the host's may be slow: on the development VM it runs
``pyenv init``, which costs about 150 ms per SSH command.

Every instance logs in as the host's root with the session's client key and
runs commands on the host itself, so tests must only run harmless commands.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import TestbedUnavailable
from .nspawn import LAUNCH_IN_CGROUPS_SCRIPT, cgroup_parents, remove_cgroup_tree
from .ssh import ClientKey, InventoryNode, read_ssh_banner, write_inventory
from .ssh import write_known_hosts as _write_known_hosts

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 20.0


@dataclass
class LoopbackServer:
    """One sshd instance: where it listens, its host key and its log."""

    name: str
    port: int
    host_public_key: str
    log_path: Path
    address: str = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Return count distinct free TCP ports on 127.0.0.1.

    NOTE: another process may take a port between this check and sshd's
    bind; start() then fails with the sshd log naming the port.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LoopbackFleet:
    """Start count sshd instances on 127.0.0.1 and stop them on close.

    Use it as a context manager. ``known_hosts`` contains ``[127.0.0.1]:PORT
    key`` lines and ``client_key`` the key every instance accepts for root.
    """

    def __init__(self, count: int, workdir: Path | None = None) -> None:
        if count < 1:
            raise ValueError(f"server count must be at least 1, got {count}")
        self.count = count
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="nc-loopback-"))
        self.servers: list[LoopbackServer] = []
        self.client_key: ClientKey | None = None
        self.known_hosts = self.workdir / "known_hosts"
        self.process: subprocess.Popen[bytes] | None = None
        # sshd puts each connection and session in a new session (setsid),
        # so a process group kill misses them. A cgroup contains them all.
        name = f"nc-loopback-{os.getpid()}-{id(self):x}"
        self.cgroups = [parent / name for parent in cgroup_parents()]
        self.timings: dict[str, float] = {}

    def __enter__(self) -> LoopbackFleet:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Generate keys and configs, start every sshd and wait for their banners."""
        if os.geteuid() != 0:
            raise TestbedUnavailable("loopback sshd servers need root")
        for tool in (SSHD, "unshare", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise TestbedUnavailable(
                    f"{tool} is not installed (Debian packages: openssh-server, "
                    "util-linux, openssh-client)"
                )
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # sshd exits with "Missing privilege separation directory" without it.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.client_key = ClientKey.generate(self.workdir)
        authorized_keys = self.workdir / "authorized_keys"
        authorized_keys.write_text(self.client_key.public_line + "\n")
        empty_bashrc = self.workdir / "empty_bashrc"
        empty_bashrc.write_text("")

        commands = []
        for index, port in enumerate(free_ports(self.count), start=1):
            server = self._configure(index, port, authorized_keys)
            self.servers.append(server)
            config = self.workdir / server.name / "sshd_config"
            commands.append(
                f"{SSHD} -D -e -f {shlex.quote(str(config))} "
                f"2> {shlex.quote(str(server.log_path))} &"
            )
        bashrc = "/root/.bashrc"
        script = "\n".join(
            [
                "set -e",
                f"if [ -e {bashrc} ]; then",
                f"  mount --bind {shlex.quote(str(empty_bashrc))} {bashrc}",
                "fi",
                *commands,
                "wait",
            ]
        )
        for cgroup in self.cgroups:
            cgroup.mkdir()
        cgroup_args = [str(cgroup) for cgroup in self.cgroups]
        launcher = ["sh", "-c", LAUNCH_IN_CGROUPS_SCRIPT, "sh", str(len(cgroup_args))]
        # The PID namespace makes the shell the reaper of every sshd and
        # session process, and the kernel reaps them all when the shell
        # dies. Without it they would become zombies of the host's PID 1.
        unshare = ["unshare", "--mount", "--propagation", "private"]
        unshare += ["--pid", "--fork", "--kill-child", "sh", "-c", script]
        with (self.workdir / "launcher.log").open("wb") as log:
            self.process = subprocess.Popen(
                launcher + cgroup_args + unshare,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_listening()
        self.write_known_hosts()
        self.timings["start"] = time.monotonic() - started

    def _configure(
        self, index: int, port: int, authorized_keys: Path
    ) -> LoopbackServer:
        directory = self.workdir / f"sshd{index}"
        directory.mkdir()
        host_key = directory / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sshd{index}"]
            + ["-f", str(host_key)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        (directory / "sshd_config").write_text(
            f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {directory}/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 64
LogLevel ERROR
"""
        )
        public_key = host_key.with_suffix(".pub").read_text().split()
        return LoopbackServer(
            name=f"sshd{index}",
            port=port,
            host_public_key=" ".join(public_key[:2]),
            log_path=directory / "sshd.log",
        )

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.servers)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "the loopback sshd launcher exited with status "
                    f"{self.process.returncode}; logs in {self.workdir}:\n"
                    + "\n".join(_log_tail(server) for server in self.servers)
                )
            waiting = [
                server
                for server in waiting
                if read_ssh_banner(server.address, server.port) is None
            ]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} loopback sshd servers did not answer within "
                    f"{START_TIMEOUT} s:\n" + "\n".join(_log_tail(s) for s in waiting)
                )
            if waiting:
                time.sleep(0.05)

    def write_known_hosts(self, path: Path | None = None) -> Path:
        """Write ``[127.0.0.1]:PORT key`` lines for every server."""
        entries = [(s.address, s.port, s.host_public_key) for s in self.servers]
        return _write_known_hosts(path or self.known_hosts, entries)

    def write_inventory(self, path: Path | None = None) -> Path:
        """Write the console's inventory TOML with one node per server."""
        assert self.client_key is not None
        nodes = [InventoryNode(s.name, s.address, s.port) for s in self.servers]
        return write_inventory(
            path or self.workdir / "inventory.toml",
            nodes,
            identity_file=self.client_key.private_path,
            known_hosts=self.known_hosts,
        )

    def close(self) -> None:
        """Stop every sshd and the sessions it forked, then remove the workdir.

        Safe to call more than once and after a failed start.
        """
        started = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            # The launcher leads its own process group (start_new_session),
            # which contains the shell and the sshd listeners.
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for cgroup in self.cgroups:
            remove_cgroup_tree(cgroup)
        if self.process is not None:
            self.process.wait(timeout=5)
        self.timings["stop"] = time.monotonic() - started
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _log_tail(server: LoopbackServer) -> str:
    try:
        text = server.log_path.read_text()[-1000:]
    except OSError as error:
        text = f"(no log: {error})"
    return f"{server.name} (port {server.port}): {text}"
