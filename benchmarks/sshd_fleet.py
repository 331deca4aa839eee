"""N OpenSSH sshd instances on 127.0.0.1 whose CPU time one cpuacct group counts.

tests/testbed/loopback.py starts a similar fleet but puts it only in the unified
and name=systemd cgroup hierarchies, which have no cpuacct.usage counter. This
one adds the cpuacct group and an sftp subsystem, which Ansible uses to copy
its modules.

Every sshd runs in one private mount namespace where an empty file is
bind-mounted over /root/.bashrc: bash sources that file for every SSH command,
and a slow one (pyenv init costs about 150 ms) would dominate every number.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cpuacct import CpuacctGroup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testbed.loopback import free_ports  # noqa: E402
from testbed.ssh import (  # noqa: E402
    ClientKey,
    InventoryNode,
    read_ssh_banner,
    write_inventory,
    write_known_hosts,
)

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Node:
    """One sshd: its name in inventories, its port and its host public key."""

    name: str
    port: int
    host_public_key: str


class SshdFleet:
    """Start count sshd instances in a cpuacct group, and stop them on exit."""

    def __init__(self, count: int, workdir: Path) -> None:
        self.count = count
        self.workdir = workdir
        self.nodes: list[Node] = []
        self.group = CpuacctGroup(f"nc-bench-nodes-{os.getpid()}-{count}")
        self.client_key: ClientKey | None = None
        self.known_hosts = workdir / "known_hosts"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SshdFleet:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for tool in (SSHD, SFTP_SERVER, "unshare", "ssh-keygen"):
            if shutil.which(tool) is None and not Path(tool).exists():
                raise RuntimeError(f"{tool} is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # sshd exits with "Missing privilege separation directory" without it.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

        self.client_key = ClientKey.generate(self.workdir)
        authorized_keys = self.workdir / "authorized_keys"
        authorized_keys.write_text(self.client_key.public_line + "\n")
        empty_bashrc = self.workdir / "empty_bashrc"
        empty_bashrc.write_text("")

        lines = ["set -e"]
        if Path("/root/.bashrc").exists():
            lines.append(f"mount --bind {shlex.quote(str(empty_bashrc))} /root/.bashrc")
        for index, port in enumerate(free_ports(self.count)):
            config = self._configure(index, port, authorized_keys)
            log = config.with_name("sshd.log")
            lines.append(
                f"{SSHD} -D -e -f {shlex.quote(str(config))} "
                f"2> {shlex.quote(str(log))} &"
            )
        lines.append("wait")

        # The PID namespace makes the shell the reaper of every sshd and session,
        # and --kill-child ends them all when the shell dies.
        argv = ["unshare", "--mount", "--propagation", "private"]
        argv += ["--pid", "--fork", "--kill-child", "sh", "-c", "\n".join(lines)]
        with (self.workdir / "launcher.log").open("wb") as log:
            self.process = subprocess.Popen(
                self.group.wrap(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_listening()
        write_known_hosts(
            self.known_hosts,
            [("127.0.0.1", node.port, node.host_public_key) for node in self.nodes],
        )

    def _configure(self, index: int, port: int, authorized_keys: Path) -> Path:
        name = f"node{index:03d}"
        directory = self.workdir / name
        directory.mkdir()
        host_key = directory / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name]
            + ["-f", str(host_key)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        config = directory / "sshd_config"
        config.write_text(
            f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {directory}/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
MaxSessions 64
LogLevel ERROR
Subsystem sftp {SFTP_SERVER}
"""
        )
        public_key = host_key.with_suffix(".pub").read_text().split()
        self.nodes.append(Node(name, port, " ".join(public_key[:2])))
        return config

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.nodes)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the sshd launcher exited with status {self.process.returncode}; "
                    f"see the sshd.log files under {self.workdir}"
                )
            waiting = [
                n for n in waiting if read_ssh_banner("127.0.0.1", n.port) is None
            ]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} sshd instances sent no SSH banner within "
                    f"{START_TIMEOUT} s, for example {waiting[0].name} on port "
                    f"{waiting[0].port}; see {self.workdir}/{waiting[0].name}/sshd.log"
                )
            if waiting:
                time.sleep(0.05)

    # -- files for the clients ---------------------------------------------------

    def write_console_inventory(self, path: Path) -> Path:
        """Write the console's inventory TOML with one node per sshd."""
        assert self.client_key is not None
        nodes = [InventoryNode(n.name, "127.0.0.1", n.port) for n in self.nodes]
        return write_inventory(
            path,
            nodes,
            identity_file=self.client_key.private_path,
            known_hosts=self.known_hosts,
        )

    def write_ansible_inventory(self, path: Path) -> Path:
        assert self.client_key is not None
        lines = ["[nodes]"]
        lines += [
            f"{n.name} ansible_host=127.0.0.1 ansible_port={n.port}" for n in self.nodes
        ]
        lines += [
            "",
            "[nodes:vars]",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={self.client_key.private_path}",
            "ansible_python_interpreter=/usr/bin/python3",
        ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def write_pssh_hosts(self, path: Path) -> Path:
        path.write_text("".join(f"root@127.0.0.1:{n.port}\n" for n in self.nodes))
        return path

    def write_ports(self, path: Path) -> Path:
        path.write_text("".join(f"{n.port}\n" for n in self.nodes))
        return path

    # -- stop --------------------------------------------------------------------

    def close(self) -> None:
        """Stop every sshd and session, then remove the cpuacct group. Idempotent."""
        if self.process is not None and self.process.poll() is None:
            try:
                # The launcher leads its own process group (start_new_session).
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.group.remove()
        if self.process is not None and self.process.poll() is None:
            self.process.wait(timeout=5)


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
