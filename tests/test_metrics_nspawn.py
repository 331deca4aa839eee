"""`nydus-console metrics` against booted Debian nodes, and its usage errors.

The snapshotter and nydusd are doubles installed as real units. Both record
the requests they serve with the process that connected, so the tests can
tell the console's requests, which sshd forwards, from the snapshotter's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_run import run_console
from doubles.unix_http import REQUEST_LOG_PATH
from testbed.nspawn import Node, NspawnFleet
from testbed.profiles import DOUBLES_DIR, SYSTEM_SOCKET

HEALTHY = ("nc-node1", "nc-node2")
BROKEN = "nc-node3"
EXIT_USAGE = 64
NYDUSD_PATHS = [
    "/api/v1/daemon",
    "/api/v1/metrics",
    "/api/v1/metrics/backend",
    "/api/v1/metrics/blobcache",
    "/api/v1/metrics/inflight",
]
# Paths under /api/v1/daemons/ that the console must never request:
# {id}/backend returns registry credentials, and records is a stub (501).
DAEMON_SUBPATH = re.compile(r"^/api/v1/daemons/.+")

_GET_SCRIPT = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from unix_http import request_json
status, body = request_json(sys.argv[2], "GET", sys.argv[3], timeout=5.0)
print(json.dumps({"status": status, "body": body}))
"""


def node_get(node: Node, socket: str, path: str) -> Any:
    """GET `path` from a unix socket inside the node, as a local client would."""
    result = node.exec(
        ["python3", "-c", _GET_SCRIPT, DOUBLES_DIR, socket, path], check=True
    )
    reply = json.loads(result.stdout)
    assert reply["status"] == 200, reply
    return reply["body"]


def last_request(node: Node, socket: str) -> int:
    log = node_get(node, socket, REQUEST_LOG_PATH)
    return max((entry["seq"] for entry in log), default=0)


def requests_since(node: Node, socket: str, seq: int) -> list[dict[str, Any]]:
    return [e for e in node_get(node, socket, REQUEST_LOG_PATH) if e["seq"] > seq]


@dataclass
class MetricsRun:
    """One `metrics --json` run and what the healthy nodes served before it."""

    returncode: int
    stderr: str
    document: dict[str, Any]
    # node name -> the system controller's daemon objects before the run
    daemon_objects: dict[str, list[dict[str, Any]]]
    # (node name, socket path) -> the sequence number of its last request
    request_marks: dict[tuple[str, str], int]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.document["nodes"] if n["node"] == name)


@pytest.fixture(scope="module")
def metrics_run(
    nspawn_fleet: NspawnFleet, tmp_path_factory: pytest.TempPathFactory
) -> MetricsRun:
    home = tmp_path_factory.mktemp("home")
    inventory = nspawn_fleet.write_inventory(home / "inventory.toml")
    objects: dict[str, list[dict[str, Any]]] = {}
    marks: dict[tuple[str, str], int] = {}
    for name in HEALTHY:
        node = nspawn_fleet.node(name)
        objects[name] = node_get(node, SYSTEM_SOCKET, "/api/v1/daemons")
        sockets = [SYSTEM_SOCKET] + [d["api_socket"] for d in objects[name]]
        for socket in sockets:
            marks[(name, socket)] = last_request(node, socket)
    result = run_console(
        "metrics", "--json", "--interval", "2", "--inventory", str(inventory), home=home
    )
    assert result.stdout, result.stderr
    return MetricsRun(
        result.returncode, result.stderr, json.loads(result.stdout), objects, marks
    )


@pytest.mark.nspawn
def test_every_node_reported(metrics_run: MetricsRun) -> None:
    names = {node["node"] for node in metrics_run.document["nodes"]}
    assert names == {*HEALTHY, BROKEN}
    # Every node is reachable, but the broken node's metrics cannot be read.
    assert metrics_run.returncode == 1, metrics_run.stderr


@pytest.mark.nspawn
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_node_daemons(
    metrics_run: MetricsRun, nspawn_fleet: NspawnFleet, name: str
) -> None:
    entry = metrics_run.node(name)
    assert entry["source"] == "node"
    assert "error" not in entry
    assert entry["problems"] == []
    expected = {d["id"]: d for d in metrics_run.daemon_objects[name]}
    assert expected, f"the system controller on {name} lists no daemon"
    assert {d["id"] for d in entry["daemons"]} == set(expected)
    node = nspawn_fleet.node(name)
    for daemon in entry["daemons"]:
        listed = expected[daemon["id"]]
        assert daemon["pid"] == listed["pid"]
        comm = node.exec(["cat", f"/proc/{daemon['pid']}/comm"], check=True)
        assert comm.stdout.strip() == "nydusd"
        assert daemon["api_socket"] == listed["api_socket"]
        images = {i["image_id"] for i in listed["instances"].values()}
        assert daemon["images"] == sorted(images)
        assert daemon["state"] == "RUNNING"
        info = node_get(node, listed["api_socket"], "/api/v1/daemon")
        assert daemon["version"] == info["version"]["package_ver"]
        assert daemon["errors"] == {}
        assert daemon["rss_kb"] > 0


@pytest.mark.nspawn
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_node_rates(metrics_run: MetricsRun, name: str) -> None:
    for daemon in metrics_run.node(name)["daemons"]:
        figures = daemon["figures"]
        # The nydusd double's data_read grows by 128 KiB every second.
        assert figures["read_bps"] is not None
        assert figures["read_bps"] > 0
        assert figures["read_ops"] > 0
        assert figures["read_error_ratio"] == 0
        assert figures["cache_hit_ratio"] is not None
        assert figures["restarted"] is False
        assert figures["inflight"] == 0
        assert figures["hung_io"] == 0


@pytest.mark.nspawn
def test_broken_node_system_socket(metrics_run: MetricsRun) -> None:
    entry = metrics_run.node(BROKEN)
    assert "error" not in entry
    assert entry["daemons"] == []
    (problem,) = [p for p in entry["problems"] if "daemon list" in p]
    assert f"{SYSTEM_SOCKET} does not exist on {BROKEN}" in problem


@pytest.mark.nspawn
@pytest.mark.parametrize("name", HEALTHY)
def test_requests_came_through_sshd(
    metrics_run: MetricsRun, nspawn_fleet: NspawnFleet, name: str
) -> None:
    node = nspawn_fleet.node(name)
    mark = metrics_run.request_marks[(name, SYSTEM_SOCKET)]
    system = requests_since(node, SYSTEM_SOCKET, mark)
    forwarded = [e for e in system if e["peer_comm"].startswith("sshd")]
    # One daemon list per poll, and the console polls twice.
    assert [e["path"] for e in forwarded] == ["/api/v1/daemons"] * 2
    for daemon in metrics_run.daemon_objects[name]:
        socket = daemon["api_socket"]
        served = requests_since(node, socket, metrics_run.request_marks[(name, socket)])
        paths = sorted(e["path"] for e in served if e["peer_comm"].startswith("sshd"))
        # The second poll reuses the first one's /api/v1/daemon answer: the
        # daemon kept its PID and is RUNNING.
        again = [p for p in NYDUSD_PATHS if p != "/api/v1/daemon"]
        assert paths == sorted(NYDUSD_PATHS + again)


@pytest.mark.nspawn
@pytest.mark.parametrize("name", HEALTHY)
def test_backend_never_requested(
    metrics_run: MetricsRun, nspawn_fleet: NspawnFleet, name: str
) -> None:
    node = nspawn_fleet.node(name)
    mark = metrics_run.request_marks[(name, SYSTEM_SOCKET)]
    system = requests_since(node, SYSTEM_SOCKET, mark)
    assert system, f"the system controller on {name} logged no request"
    assert [e["path"] for e in system if DAEMON_SUBPATH.match(e["path"])] == []
    assert {e["method"] for e in system} == {"GET"}


# -- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--prometheus", "ftp://prometheus.example:9090"],
            "'ftp://prometheus.example:9090' is not an http:// or https:// URL",
        ),
        (["--prometheus", "http://"], "'http://' is not an http:// or https:// URL"),
        (["--interval", "soon"], "'soon' is not a number of seconds"),
        (["--interval", "301"], "'301': use 0 to 300 seconds"),
    ],
)
def test_metrics_bad_arguments(argv: list[str], message: str, tmp_path: Path) -> None:
    result = run_console("metrics", *argv, home=tmp_path, timeout=60)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('prometheus_url = "prometheus:9090"', "prometheus_url = 'prometheus:9090'"),
        ("interval = 0.5", "interval = 0.5 must be a number of seconds"),
        ('scrape = "10s"', "unknown key(s) ['scrape'] in [metrics]"),
    ],
)
def test_metrics_bad_inventory(table: str, message: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[nodes.gpu-1]\naddress = "127.0.0.1"\n\n[metrics]\n{table}\n'
    )
    result = run_console(
        "metrics", "--inventory", str(inventory), home=tmp_path, timeout=60
    )
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert str(inventory) in result.stderr
