"""Node profiles: install the Nydus doubles and write configs into booted nodes.

A profile turns a freshly booted node into one of the states the console
must diagnose:

- ``healthy``: nydus-snapshotter.service runs the containerd-nydus-grpc
  double with the default root, containerd uses the nydus proxy plugin and
  CRI's snapshotter is ``nydus``.
- ``healthy-metrics``: ``healthy``, and the snapshotter also serves
  Prometheus metrics on ``:9110`` (every address of the node, path
  /v1/metrics), collected every 2 s.
- ``broken-root``: containerd's root is /data/containerd but the
  snapshotter's is /data/containerd-nydus (it must be
  /data/containerd/io.containerd.snapshotter.v1.nydus), and ``nydusd_config``
  names a missing file, so the unit keeps failing until systemd's start
  limit leaves it ``failed``.
- ``absent``: containerd only, nothing of Nydus installed.

The building blocks (config text builders, ``install_doubles``,
``write_snapshotter_config``, ``restart_snapshotter``,
``reconfigure_snapshotter``) are public so tests can write their own config
into a node and restart the unit. ``fetch_node_metrics`` reads an HTTP
endpoint from inside a node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .nspawn import Node, NspawnFleet

DOUBLES_SOURCE = Path(__file__).resolve().parent.parent / "doubles"
DOUBLES_DIR = "/usr/local/lib/nydus-doubles"
DOUBLE_FILES = (
    "unix_http.py",
    "nydusd_double.py",
    "containerd_nydus_grpc_double.py",
    "prometheus_text.py",
    "metrics_http.py",
    "snapshotter_metrics.py",
    "snapshotter_metrics_collector.py",
)

SNAPSHOTTER_UNIT = "nydus-snapshotter.service"
SNAPSHOTTER_CONFIG = "/etc/nydus/config.toml"
NYDUSD_CONFIG = "/etc/nydus/nydusd-config.json"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
DEFAULT_CONTAINERD_ROOT = "/var/lib/containerd"
DEFAULT_SNAPSHOTTER_ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
GRPC_SOCKET = "/run/containerd-nydus/containerd-nydus-grpc.sock"
SYSTEM_SOCKET = "/run/containerd-nydus/system.sock"
MISSING_NYDUSD_CONFIG = "/etc/nydus/nydusd-config.fusedev.json"
METRICS_PORT = 9110
METRICS_ADDRESS = f":{METRICS_PORT}"
METRICS_PATH = "/v1/metrics"
HEALTHY_METRICS_INTERVAL = "2s"

# The same settings as upstream's nydus-snapshotter.fusedev.service, with the
# binary path of a manual install.
SNAPSHOTTER_UNIT_TEXT = """\
[Unit]
Description=nydus snapshotter
After=network.target local-fs.target
Before=containerd.service

[Service]
Type=simple
Environment=HOME=/root
ExecStart=/usr/local/bin/containerd-nydus-grpc --config /etc/nydus/config.toml
Restart=always
RestartSec=1
KillMode=process
OOMScoreAdjust=-999
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
"""


def _wrapper(script: str) -> str:
    return f'#!/bin/sh\nexec /usr/bin/python3 -B {DOUBLES_DIR}/{script} "$@"\n'


def snapshotter_config(
    root: str = DEFAULT_SNAPSHOTTER_ROOT,
    *,
    fs_driver: str = "fusedev",
    daemon_mode: str = "dedicated",
    nydusd_config: str = NYDUSD_CONFIG,
    system_controller: bool = True,
    log_to_stdout: bool = False,
    metrics_address: str = "",
    metrics_collect_interval: str = "",
    extra: str = "",
) -> str:
    """Return a version 1 config.toml for containerd-nydus-grpc.

    A metrics_address such as ":9110" or "127.0.0.1:9110" turns on the
    Prometheus endpoint. metrics_collect_interval is a Go duration such as
    "5s", and without it the snapshotter collects every minute. extra is
    appended verbatim, for tables the arguments do not cover.
    """
    metrics = _metrics_table(metrics_address, metrics_collect_interval)
    return f"""\
version = 1
root = "{root}"
address = "{GRPC_SOCKET}"
daemon_mode = "{daemon_mode}"
cleanup_on_close = false

[system]
enable = {str(system_controller).lower()}
address = "{SYSTEM_SOCKET}"

[daemon]
nydusd_config = "{nydusd_config}"
nydusd_path = "/usr/local/bin/nydusd"
fs_driver = "{fs_driver}"
recover_policy = "restart"
threads_number = 4
log_rotation_size = 100
failover_policy = "resend"

[log]
log_to_stdout = {str(log_to_stdout).lower()}
level = "info"
log_rotation_compress = true
log_rotation_local_time = true
log_rotation_max_age = 7
log_rotation_max_backups = 5
log_rotation_max_size = 100

[remote]
convert_vpc_registry = false

[snapshot]
enable_nydus_overlayfs = false
sync_remove = false

[cache_manager]
disable = false
gc_period = "24h"
{metrics}{extra}"""


def _metrics_table(address: str, collect_interval: str) -> str:
    if not address:
        return ""
    table = f'\n[metrics]\naddress = "{address}"\n'
    if collect_interval:
        table += f'collect_interval = "{collect_interval}"\n'
    return table


def healthy_snapshotter_config(metrics: bool = False) -> str:
    """Return the config.toml of the healthy profile, or of healthy-metrics.

    Tests that change a node's config restore it with this.
    """
    if not metrics:
        return snapshotter_config()
    return snapshotter_config(
        metrics_address=METRICS_ADDRESS,
        metrics_collect_interval=HEALTHY_METRICS_INTERVAL,
    )


def nydusd_config_json(host: str = "ghcr.io", repo: str = "dragonflyoss/nginx") -> str:
    """Return a legacy (v1) nydusd JSON config: registry backend with blobcache."""
    config = {
        "device": {
            "backend": {
                "type": "registry",
                "config": {
                    "scheme": "https",
                    "host": host,
                    "repo": repo,
                    "timeout": 5,
                    "connect_timeout": 5,
                    "retry_limit": 2,
                },
            },
            "cache": {
                "type": "blobcache",
                "config": {"work_dir": f"{DEFAULT_SNAPSHOTTER_ROOT}/cache"},
            },
        },
        "mode": "direct",
        "digest_validate": False,
        "iostats_files": False,
        "enable_xattr": True,
        "fs_prefetch": {"enable": True, "threads_count": 4, "prefetch_all": True},
    }
    return json.dumps(config, indent=2) + "\n"


def containerd_config(
    root: str = DEFAULT_CONTAINERD_ROOT, *, nydus: bool = True
) -> str:
    """Return a containerd 1.6 config (version 2), with the proxy plugin if nydus."""
    proxy = f"""
[proxy_plugins]
  [proxy_plugins.nydus]
    type = "snapshot"
    address = "{GRPC_SOCKET}"
"""
    snapshotter = "nydus" if nydus else "overlayfs"
    return f"""\
version = 2
root = "{root}"
state = "/run/containerd"
{proxy if nydus else ""}
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    disable_apparmor = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "{snapshotter}"
      disable_snapshot_annotations = false
      discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
"""


def install_doubles(node: Node) -> None:
    """Install the doubles, their wrappers on the real paths, and the unit file."""
    for name in DOUBLE_FILES:
        text = (DOUBLES_SOURCE / name).read_text()
        node.write_file(f"{DOUBLES_DIR}/{name}", text, 0o644)
    node.write_file(
        "/usr/local/bin/containerd-nydus-grpc",
        _wrapper("containerd_nydus_grpc_double.py"),
        0o755,
    )
    node.write_file("/usr/local/bin/nydusd", _wrapper("nydusd_double.py"), 0o755)
    node.write_file(f"/etc/systemd/system/{SNAPSHOTTER_UNIT}", SNAPSHOTTER_UNIT_TEXT)
    node.systemctl("daemon-reload", check=True)


def write_snapshotter_config(
    node: Node, text: str, path: str = SNAPSHOTTER_CONFIG
) -> None:
    node.write_file(path, text, 0o644)


def restart_snapshotter(node: Node) -> None:
    """Clear the unit's failed state and start counter, then restart it."""
    node.systemctl("reset-failed", SNAPSHOTTER_UNIT)
    node.systemctl("restart", SNAPSHOTTER_UNIT, check=True)


def reconfigure_snapshotter(node: Node, text: str) -> None:
    """Write text as the snapshotter's config.toml, restart it and wait for its socket.

    The old process removes the gRPC socket when it stops, so the socket
    exists again only once the new process listens.
    """
    write_snapshotter_config(node, text)
    restart_snapshotter(node)
    wait_until(
        lambda: _socket_exists(node, GRPC_SOCKET),
        f"{SNAPSHOTTER_UNIT} on {node.name} did not create {GRPC_SOCKET}",
    )


# The node's python3 runs this. It prints the HTTP status on one line, then the body.
_FETCH_SCRIPT = """\
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=5) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
except OSError as error:
    status, body = 0, str(error).encode()
sys.stdout.write(f"{status}\\n{body.decode()}")
"""


def fetch_node_metrics(
    node: Node, path: str = METRICS_PATH, port: int = METRICS_PORT
) -> tuple[int, str]:
    """Send GET http://127.0.0.1:<port><path> inside node; return (status, body).

    The status is 0, with the error as the body, when nothing listens.
    """
    url = f"http://127.0.0.1:{port}{path}"
    result = node.exec(["python3", "-c", _FETCH_SCRIPT, url], check=True)
    status, _, body = result.stdout.partition("\n")
    return int(status), body


def restart_containerd(node: Node, root: str = DEFAULT_CONTAINERD_ROOT) -> None:
    node.systemctl("restart", "containerd.service", check=True)
    wait_until(
        lambda: (
            node.exec(["ctr", "--connect-timeout", "2s", "version"]).returncode == 0
        ),
        f"containerd on {node.name} did not answer `ctr version` after restart",
    )


def wait_until(
    condition: Callable[[], bool], message: str, timeout: float = 60.0
) -> None:
    """Poll condition every 0.1 s and raise TimeoutError with message on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} (waited {timeout} s)")
        time.sleep(0.1)


def nydus_plugin_listed(node: Node) -> bool:
    """Return whether ``ctr plugin ls`` shows the nydus proxy snapshotter row."""
    result = node.exec(["ctr", "--connect-timeout", "2s", "plugin", "ls"])
    return any(
        line.split()[:2] == ["io.containerd.snapshotter.v1", "nydus"]
        for line in result.stdout.splitlines()
    )


def _socket_exists(node: Node, path: str) -> bool:
    return node.exec(["test", "-S", path]).returncode == 0


def apply_healthy(node: Node, metrics: bool = False) -> None:
    install_doubles(node)
    node.write_file(NYDUSD_CONFIG, nydusd_config_json())
    write_snapshotter_config(node, healthy_snapshotter_config(metrics))
    node.write_file(CONTAINERD_CONFIG, containerd_config())
    node.systemctl("enable", SNAPSHOTTER_UNIT, check=True)
    restart_snapshotter(node)
    wait_until(
        lambda: (
            _socket_exists(node, GRPC_SOCKET) and _socket_exists(node, SYSTEM_SOCKET)
        ),
        f"{SNAPSHOTTER_UNIT} on {node.name} did not create {GRPC_SOCKET}",
    )
    restart_containerd(node)
    if not nydus_plugin_listed(node):
        raise RuntimeError(f"`ctr plugin ls` on {node.name} does not list nydus")


def apply_healthy_metrics(node: Node) -> None:
    apply_healthy(node, metrics=True)


def apply_broken_root(node: Node) -> None:
    install_doubles(node)
    node.write_file(NYDUSD_CONFIG, nydusd_config_json())
    write_snapshotter_config(
        node,
        snapshotter_config(
            "/data/containerd-nydus", nydusd_config=MISSING_NYDUSD_CONFIG
        ),
    )
    node.write_file(CONTAINERD_CONFIG, containerd_config("/data/containerd"))
    # systemd's default start limit (5 starts in 10 s) is missed when a loaded
    # machine spaces the double's starts out, and the unit then loops for
    # ever. A wider window makes it end in "failed" on any machine, which
    # gives tests a fixed state.
    node.write_file(
        f"/etc/systemd/system/{SNAPSHOTTER_UNIT}.d/start-limit.conf",
        "[Unit]\nStartLimitIntervalSec=300\nStartLimitBurst=3\n",
    )
    node.systemctl("daemon-reload", check=True)
    node.systemctl("enable", SNAPSHOTTER_UNIT, check=True)
    restart_snapshotter(node)
    restart_containerd(node)
    wait_until(
        lambda: node.unit_property(SNAPSHOTTER_UNIT, "ActiveState") == "failed",
        f"{SNAPSHOTTER_UNIT} on {node.name} did not reach the failed state",
        timeout=90.0,
    )


def apply_absent(node: Node) -> None:
    node.write_file(CONTAINERD_CONFIG, containerd_config(nydus=False))
    restart_containerd(node)


PROFILES: dict[str, Callable[[Node], None]] = {
    "healthy": apply_healthy,
    "healthy-metrics": apply_healthy_metrics,
    "broken-root": apply_broken_root,
    "absent": apply_absent,
}


def apply_profile(node: Node, name: str) -> None:
    """Apply the profile called name to a booted node."""
    try:
        apply = PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; known: {sorted(PROFILES)}"
        ) from None
    apply(node)


# nc-node2 stays without metrics: a second snapshotter started with its
# config, as the stray-process test does, would fail to bind :9110.
DEFAULT_FLEET_PROFILES = ("healthy-metrics", "healthy", "broken-root")


def boot_fleet(
    profiles: Sequence[str] = DEFAULT_FLEET_PROFILES, **fleet_options: Any
) -> NspawnFleet:
    """Boot one node per entry of profiles and apply the profiles in parallel.

    fleet_options go to NspawnFleet. The returned fleet is started, has its
    inventory written, and records each node's profile in ``node_profiles``.
    The caller must close it. On failure the fleet is closed before the
    exception propagates.
    """
    fleet = NspawnFleet(len(profiles), **fleet_options)
    try:
        fleet.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(profiles)) as pool:
            list(pool.map(apply_profile, fleet.nodes, profiles))
        fleet.timings["profiles"] = time.monotonic() - started
        fleet.node_profiles = dict(
            zip((n.name for n in fleet.nodes), profiles, strict=True)
        )
        fleet.write_inventory()
    except BaseException:
        fleet.close()
        raise
    return fleet
