"""Boot real Debian nodes with systemd-nspawn, each in its own network namespace.

Every node runs systemd as PID 1 with journald, OpenSSH and containerd, booted
from the shared read-only base of ``rootfs.py`` with ``--volatile=overlay``.
Node N of a fleet on subnet S has hostname ``nc-node<N>``, address
10.201.S.(4N+2)/30 in network namespace ``ncS n<N>`` (without the space), and
the host side of its veth pair ``ncSh<N>`` has 10.201.S.(4N+1). Each running
fleet claims a subnet in a registry under /run, so parallel sessions do not
collide and the leftovers of a crashed session are removed by the next one.

The pytest process launches nspawn with ``subprocess.Popen``, so it is the
parent and reaps the nodes. It works without systemd on the host, which is
why nspawn runs with ``--register=no --keep-unit`` and why each node gets its
own cgroup created here.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import rootfs
from .errors import NodeBootError, TestbedUnavailable
from .ssh import ClientKey, InventoryNode, wait_for_ssh, write_inventory
from .ssh import write_known_hosts as _write_known_hosts

# A node boots in 3 to 10 s on a quiet machine; other work on the same two
# cores has stretched it past 30 s.
BOOT_TIMEOUT = 90.0
SHUTDOWN_TIMEOUT = 10.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# One JSON file per running fleet, <prefix>.json with the owner's PID.
REGISTRY = Path("/run/nydus-console-testbed")
SUBNETS = 256


def cgroup_parents() -> list[Path]:
    """Return the cgroup hierarchies each node needs a directory in.

    A hybrid host (cgroup v1 with cgroup2 at /sys/fs/cgroup/unified) needs one
    in the unified and the name=systemd hierarchies, a pure cgroup2 host one
    at the root. nspawn with --keep-unit and no host systemd creates its
    payload/supervisor cgroups under its own cgroup, so without this parallel
    nodes collide at the host root.
    """
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    parents = [CGROUP_ROOT / "unified", CGROUP_ROOT / "systemd"]
    return [parent for parent in parents if (parent / "cgroup.procs").exists()]


def remove_cgroup_tree(path: Path) -> None:
    """Kill every process in the cgroup tree at path, then rmdir it depth first."""
    if not path.is_dir():
        return
    directories = sorted(
        (Path(root) for root, _, _ in os.walk(path)),
        key=lambda item: len(item.parts),
        reverse=True,
    )
    for directory in directories:
        try:
            pids = (directory / "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for directory in directories:
        while True:
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                # Killed processes leave the cgroup only once they are reaped.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args],
        check=check,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def _netns_names() -> list[str]:
    output = _ip("netns", "list").stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError as error:
        return f"(log {path} not readable: {error})"


def check_host() -> None:
    """Raise TestbedUnavailable when this machine cannot boot test nodes."""
    if os.geteuid() != 0:
        raise TestbedUnavailable("booting test nodes needs root")
    for tool in ("systemd-nspawn", "nsenter", "ip", "ssh-keygen", "zstd"):
        if shutil.which(tool) is None:
            raise TestbedUnavailable(
                f"{tool} is not installed (Debian packages: systemd-container, "
                "util-linux, iproute2, openssh-client, zstd)"
            )
    if not cgroup_parents():
        raise TestbedUnavailable(f"no usable cgroup hierarchy under {CGROUP_ROOT}")


@dataclass
class Node:
    """One booted node: its addresses, processes and helpers to act inside it."""

    index: int
    name: str
    machine: str
    address: str
    host_address: str
    netns: str
    host_veth: str
    log_path: Path
    cgroups: list[Path]
    port: int = 22
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    leader_pid: int = 0
    host_public_key: str = ""
    host_public_keys: list[str] = field(default_factory=list)

    def exec(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside every namespace of the node as root, without a shell."""
        return subprocess.run(
            ["nsenter", "-t", str(self.leader_pid), "-a", "--", *argv],
            input=input_text,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env={"PATH": NODE_PATH, "LANG": "C.UTF-8"},
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write text to path inside the node, creating parent directories.

        The write happens inside the node's mount namespace, so absolute
        symlinks resolve against the node's root, not the host's.
        """
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.exec(
            ["sh", "-c", script, "sh", path, f"{mode:o}"], input_text=text, check=True
        )

    def read_file(self, path: str) -> str:
        """Return the text of path inside the node."""
        return self.exec(["cat", "--", path], check=True).stdout

    def systemctl(
        self, *args: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``systemctl --no-pager ARGS`` inside the node."""
        return self.exec(["systemctl", "--no-pager", *args], check=check)

    def unit_property(self, unit: str, name: str) -> str:
        """Return one property of unit from ``systemctl show``."""
        result = self.systemctl("show", "--value", "-p", name, unit, check=True)
        return result.stdout.strip()

    def stop_sshd(self) -> None:
        """Stop ssh.service. Open connections keep running and new ones are refused."""
        self.systemctl("stop", "ssh.service", check=True)

    def kill_sshd(self) -> None:
        """SIGKILL every sshd process, sessions included, and keep sshd down.

        Sessions share ssh.service's cgroup because the node has no logind
        session handling (UsePAM no), so the kill drops every open
        connection. The stop afterwards cancels the restart that the unit's
        Restart=on-failure would schedule.
        """
        self.systemctl("kill", "--signal=SIGKILL", "ssh.service", check=True)
        self.systemctl("stop", "ssh.service")

    def start_sshd(self) -> None:
        """Start ssh.service and wait until it accepts connections on port 22."""
        self.systemctl("reset-failed", "ssh.service")
        self.systemctl("start", "ssh.service", check=True)
        wait_for_ssh(self.address, self.port, timeout=10)

    def pids(self) -> list[int]:
        """Return the host PIDs of every process in the node's cgroup tree."""
        found: list[int] = []
        for root, _, _ in os.walk(self.cgroups[0]):
            try:
                found += [
                    int(pid) for pid in Path(root, "cgroup.procs").read_text().split()
                ]
            except OSError:
                continue
        return found

    def pss_kib(self) -> int:
        """Return the summed proportional set size of the node's processes, in KiB."""
        total = 0
        for pid in self.pids():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
            if match:
                total += int(match.group(1))
        return total


class NspawnFleet:
    """Boot count nodes in parallel and tear them down on close.

    Use it as a context manager. ``subnet`` (the third octet of 10.201.x.y)
    defaults to the lowest one that no live fleet uses. It also makes the
    fleet's prefix ``nc<subnet>``, which names the network namespaces
    (``<prefix>n<N>``), host veths (``<prefix>h<N>``), machines and cgroups
    (``<prefix>-node<N>``). Hostnames are ``<hostname_prefix>-node<N>``.
    """

    def __init__(
        self,
        count: int,
        *,
        subnet: int | None = None,
        hostname_prefix: str = "nc",
        workdir: Path | None = None,
        boot_timeout: float = BOOT_TIMEOUT,
    ) -> None:
        if not 1 <= count <= 63:
            raise ValueError(f"node count must be between 1 and 63, got {count}")
        if subnet is not None and not 0 <= subnet < SUBNETS:
            raise ValueError(f"subnet must be between 0 and 255, got {subnet}")
        self.count = count
        self.requested_subnet = subnet
        self.subnet = -1
        self.prefix = ""
        self.hostname_prefix = hostname_prefix
        self.boot_timeout = boot_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="nc-fleet-"))
        self.nodes: list[Node] = []
        self.client_key: ClientKey | None = None
        self.known_hosts: Path = self.workdir / "known_hosts"
        self.base: Path | None = None
        self.timings: dict[str, float] = {}
        # Node name to profile name, filled by profiles.boot_fleet().
        self.node_profiles: dict[str, str] = {}
        self._closed = False

    def __enter__(self) -> NspawnFleet:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node(self, name: str) -> Node:
        """Return the node called name."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(
            f"no node {name!r} in fleet; nodes: {[n.name for n in self.nodes]}"
        )

    # --- start -----------------------------------------------------------

    def start(self) -> None:
        """Build or reuse the base, then boot every node and wait for sshd."""
        check_host()
        self.base = rootfs.ensure_base()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_key = ClientKey.generate(self.workdir)
        authorized_keys = self.workdir / "authorized_keys"
        authorized_keys.write_text(self.client_key.public_line + "\n")
        authorized_keys.chmod(0o644)

        atexit.register(self.close)
        self._claim_subnet()
        started = time.monotonic()
        for index in range(1, self.count + 1):
            node = self._plan_node(index)
            self.nodes.append(node)
            self._create_network(node)
            self._launch(node, authorized_keys)
        for node in self.nodes:
            self._wait_for_boot(node, started + self.boot_timeout)
        self.timings["boot"] = time.monotonic() - started
        for node in self.nodes:
            wait_for_ssh(node.address, node.port, timeout=self.boot_timeout)
            self._read_host_keys(node)
        self.timings["ssh_ready"] = time.monotonic() - started
        self.write_known_hosts()

    def _claim_subnet(self) -> None:
        """Claim a subnet in the registry, removing leftovers of dead owners."""
        REGISTRY.mkdir(parents=True, exist_ok=True)
        with (REGISTRY / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            held_subnets = set()
            for record in REGISTRY.glob("nc*.json"):
                try:
                    owner = json.loads(record.read_text())
                except (OSError, ValueError):
                    owner = {}
                if process_alive(int(owner.get("pid", 0))):
                    held_subnets.add(int(owner["subnet"]))
                    continue
                self.remove_leftovers(record.stem)
                record.unlink()
            if self.requested_subnet is None:
                free = [net for net in range(SUBNETS) if net not in held_subnets]
                if not free:
                    raise TestbedUnavailable(
                        f"all {SUBNETS} testbed subnets are in use"
                    )
                self.subnet = free[0]
            elif self.requested_subnet in held_subnets:
                raise TestbedUnavailable(
                    f"subnet {self.requested_subnet} is held by another live fleet; "
                    f"records in {REGISTRY}"
                )
            else:
                self.subnet = self.requested_subnet
            self.prefix = f"nc{self.subnet}"
            # A crash without a record (for example during the claim) can
            # still leave resources under this prefix.
            self.remove_leftovers(self.prefix)
            self._record.write_text(
                json.dumps({"pid": os.getpid(), "subnet": self.subnet})
            )

    @property
    def _record(self) -> Path:
        return REGISTRY / f"{self.prefix}.json"

    def _plan_node(self, index: int) -> Node:
        name = f"{self.prefix}-node{index}"
        return Node(
            index=index,
            name=f"{self.hostname_prefix}-node{index}",
            machine=name,
            address=f"10.201.{self.subnet}.{4 * index + 2}",
            host_address=f"10.201.{self.subnet}.{4 * index + 1}",
            netns=f"{self.prefix}n{index}",
            host_veth=f"{self.prefix}h{index}",
            log_path=self.workdir / f"{name}.log",
            cgroups=[parent / name for parent in cgroup_parents()],
        )

    @staticmethod
    def _create_network(node: Node) -> None:
        _ip("netns", "add", node.netns)
        # The peer is created inside the namespace because the host may
        # already have an eth0.
        _ip(
            "link",
            "add",
            node.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node.netns,
        )
        _ip("addr", "add", f"{node.host_address}/30", "dev", node.host_veth)
        _ip("link", "set", node.host_veth, "up")
        _ip("-n", node.netns, "addr", "add", f"{node.address}/30", "dev", "eth0")
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        _ip("-n", node.netns, "link", "set", "lo", "up")
        # Every probe of the node must stay on this host. Check that the
        # kernel routes its address through the new veth, not elsewhere.
        route = _ip("route", "get", node.address).stdout
        if f" dev {node.host_veth} " not in f"{route} ":
            raise NodeBootError(
                f"{node.address} is not routed through {node.host_veth}: "
                + route.strip()
            )

    def _launch(self, node: Node, authorized_keys: Path) -> None:
        assert self.base is not None
        for cgroup in node.cgroups:
            cgroup.mkdir()
        nspawn = [
            "systemd-nspawn",
            "--boot",
            f"--directory={self.base}",
            "--volatile=overlay",
            "--register=no",
            "--keep-unit",
            f"--uuid={uuid.uuid4()}",
            f"--machine={node.machine}",
            f"--hostname={node.name}",
            f"--network-namespace-path=/run/netns/{node.netns}",
            f"--bind-ro={authorized_keys}:{rootfs.NODE_AUTHORIZED_KEYS}",
            "--console=passive",
        ]
        # nspawn's private /dev lacks /dev/fuse, which fusedev nodes have.
        # With --keep-unit and no host systemd there is no device cgroup
        # policy, so the bind mount is enough to make it usable.
        if Path("/dev/fuse").exists():
            nspawn.append("--bind=/dev/fuse")
        cgroup_args = [str(cgroup) for cgroup in node.cgroups]
        argv = [
            "sh",
            "-c",
            LAUNCH_IN_CGROUPS_SCRIPT,
            "sh",
            str(len(cgroup_args)),
            *cgroup_args,
        ]
        with node.log_path.open("wb") as log:
            node.process = subprocess.Popen(
                argv + nspawn,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_for_boot(self, node: Node, deadline: float) -> None:
        assert node.process is not None
        state = "not started"
        while True:
            if node.process.poll() is not None:
                raise NodeBootError(
                    f"systemd-nspawn for {node.name} exited with status "
                    f"{node.process.returncode} during boot; log {node.log_path}:\n"
                    f"{_tail(node.log_path)}"
                )
            if node.leader_pid and not Path(f"/proc/{node.leader_pid}").exists():
                node.leader_pid = 0
            if not node.leader_pid:
                node.leader_pid = self._find_leader(node.process.pid)
            if node.leader_pid:
                result = node.exec(["systemctl", "is-system-running"], timeout=10)
                state = result.stdout.strip() or result.stderr.strip()
                if state in ("running", "degraded"):
                    return
            if time.monotonic() > deadline:
                raise NodeBootError(
                    f"{node.name} did not finish booting within {self.boot_timeout} s "
                    f"(last state: {state!r}); log {node.log_path}:\n"
                    + _tail(node.log_path)
                )
            time.sleep(0.1)

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int:
        """Return the host PID of the node's systemd, or 0 while it is not there yet.

        nspawn first forks a helper that sets up the namespaces and then
        exits, so a child of nspawn is the leader only once it is PID 1 in
        its own PID namespace.
        """
        try:
            children = Path(
                f"/proc/{nspawn_pid}/task/{nspawn_pid}/children"
            ).read_text()
        except OSError:
            return 0
        for pid in children.split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^NSpid:\s+(.*)$", status, re.MULTILINE)
            if match and match.group(1).split()[1:] == ["1"]:
                return int(pid)
        return 0

    @staticmethod
    def _read_host_keys(node: Node) -> None:
        keys = node.exec(
            ["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"], check=True
        ).stdout.splitlines()
        node.host_public_keys = [" ".join(line.split()[:2]) for line in keys if line]
        ed25519 = [
            key for key in node.host_public_keys if key.startswith("ssh-ed25519 ")
        ]
        if not ed25519:
            raise NodeBootError(f"{node.name} has no ed25519 host key: {keys}")
        node.host_public_key = ed25519[0]

    # --- files for SSH clients ---------------------------------------------

    def write_known_hosts(self, path: Path | None = None) -> Path:
        """Write ``<address> <key>`` lines for every host key of every node."""
        entries = [
            (node.address, node.port, key)
            for node in self.nodes
            for key in node.host_public_keys
        ]
        return _write_known_hosts(path or self.known_hosts, entries)

    def write_inventory(
        self,
        path: Path | None = None,
        node_options: dict[str, dict[str, object]] | None = None,
    ) -> Path:
        """Write the console's inventory TOML. node_options maps node names to keys."""
        assert self.client_key is not None
        options = node_options or {}
        nodes = [
            InventoryNode(node.name, node.address, node.port, options.get(node.name))
            for node in self.nodes
        ]
        return write_inventory(
            path or self.workdir / "inventory.toml",
            nodes,
            identity_file=self.client_key.private_path,
            known_hosts=self.known_hosts,
        )

    # --- teardown ------------------------------------------------------------

    def close(self) -> None:
        """Power off every node, then remove its network namespace and cgroups.

        Safe to call more than once and after a failed start.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        started = time.monotonic()
        for node in self.nodes:
            if node.leader_pid and node.process and node.process.poll() is None:
                # SIGRTMIN+3 makes systemd start an orderly poweroff.
                try:
                    os.kill(node.leader_pid, signal.SIGRTMIN + 3)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Killing the leader ends the node's PID namespace, and nspawn exits.
                for pid in (node.leader_pid, node.process.pid):
                    try:
                        if pid:
                            os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                node.process.wait(timeout=SHUTDOWN_TIMEOUT)
        errors: list[str] = []
        for node in self.nodes:
            errors += self._remove_node_resources(
                node.machine, node.netns, node.host_veth
            )
        if self.prefix:
            self._record.unlink(missing_ok=True)
        _remove_empty_netns_mount()
        self.timings["teardown"] = time.monotonic() - started
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise RuntimeError(
                "testbed teardown left resources behind:\n" + "\n".join(errors)
            )

    @staticmethod
    def _remove_node_resources(name: str, netns: str, host_veth: str) -> list[str]:
        errors = []
        for parent in cgroup_parents():
            try:
                remove_cgroup_tree(parent / name)
            except OSError as error:
                errors.append(f"cgroup {parent / name}: {error}")
        if netns in _netns_names():
            result = _ip("netns", "del", netns, check=False)
            if result.returncode:
                errors.append(f"netns {netns}: {result.stderr.strip()}")
        _ip("link", "del", host_veth, check=False)
        for directory in ("propagate", "unix-export", "incoming"):
            shutil.rmtree(f"/run/systemd/nspawn/{directory}/{name}", ignore_errors=True)
        return errors

    @classmethod
    def remove_leftovers(cls, prefix: str) -> list[str]:
        """Remove nodes, namespaces, veths and cgroups left by a fleet with prefix.

        Processes in a leftover node cgroup are killed with SIGKILL. Returns
        the names of the nodes it cleaned.
        """
        names: set[int] = set()
        node_pattern = re.compile(rf"{re.escape(prefix)}-node(\d+)")
        for parent in cgroup_parents():
            if parent.is_dir():
                for entry in parent.iterdir():
                    match = node_pattern.fullmatch(entry.name)
                    if match and entry.is_dir():
                        names.add(int(match.group(1)))
        netns_pattern = re.compile(rf"{re.escape(prefix)}n(\d+)")
        for netns in _netns_names():
            match = netns_pattern.fullmatch(netns)
            if match:
                names.add(int(match.group(1)))
        veths = _ip("-o", "link", "show").stdout
        for match in re.finditer(rf"^\d+: {re.escape(prefix)}h(\d+)[@:]", veths, re.M):
            names.add(int(match.group(1)))
        cleaned = []
        for index in sorted(names):
            name = f"{prefix}-node{index}"
            cls._remove_node_resources(name, f"{prefix}n{index}", f"{prefix}h{index}")
            cleaned.append(name)
        return cleaned


# Arguments: the number of cgroup directories, the directories, then the
# nspawn argv. The shell moves itself into each cgroup and then execs nspawn,
# so nspawn and everything below it start there. A preexec_fn would do the
# same but is unsafe when the caller runs threads.
LAUNCH_IN_CGROUPS_SCRIPT = """
count=$1; shift
while [ "$count" -gt 0 ]; do
  echo $$ > "$1/cgroup.procs"
  shift
  count=$((count - 1))
done
exec "$@"
"""


def process_alive(pid: int) -> bool:
    """Return whether pid runs. Zombies count as dead."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _remove_empty_netns_mount() -> None:
    """Unmount /run/netns, which ``ip netns add`` mounted, once no namespace is left."""
    if _netns_names():
        return
    subprocess.run(
        ["umount", "/run/netns"],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
