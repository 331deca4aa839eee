"""Node access through a node-shell pod, against a real kube-apiserver.

There is no kubelet here, so the pod never runs: these tests cover what the
API server accepts and refuses, the gate, cleanup and the start timeout.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from console_run import run_console
from doubles.kubelet_exec_double import KubeletExecDouble
from testbed.kube import VIEWER_CONTEXT, VIEWER_USER, ClusterWriter, KubeApiServer

from nydus_console.audit import AuditLog
from nydus_console.cli import build_parser
from nydus_console.kube.actions import MANAGED_BY, MANAGER, ApiActionGate
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import KubeError
from nydus_console.kube.nodeshell import (
    CONFIRMED_BY,
    NODE_SHELL_LABEL,
    NSENTER,
    NodeShellSettings,
    cleanup_node_shells,
    create_node_shell,
    open_exec,
)
from nydus_console.kubecli import run_kube
from nydus_console.transport.base import SocketState, TransportError
from nydus_console.transport.pod import PodTransport

pytestmark = pytest.mark.kube
IMAGE = "registry.example.com/tools/busybox:1.36"


@pytest.fixture
def namespace(kube_apiserver: KubeApiServer) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    ClusterWriter(kube_apiserver).namespace(name)
    return name


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuditLog:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return AuditLog(tmp_path / "state" / "nydus-console" / "audit.jsonl")


def client(server: KubeApiServer, context: str | None = None) -> KubeClient:
    return KubeClient.from_kubeconfig(str(server.kubeconfig), context)


def pods(server: KubeApiServer, namespace: str) -> list[str]:
    found = server.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    return sorted(item["metadata"]["name"] for item in found)


def settings(namespace: str, timeout: float = 60.0) -> NodeShellSettings:
    return NodeShellSettings(image=IMAGE, namespace=namespace, start_timeout=timeout)


def test_node_shell_spec_accepted_by_api_server(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    taints = [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
    ]
    ClusterWriter(kube_apiserver).node("shell-a", "10.0.9.1", taints=taints)
    action = create_node_shell("shell-a", settings(namespace))
    gate = ApiActionGate(audit, read_only=False)
    gate.run(action, client(kube_apiserver), confirmed_by=CONFIRMED_BY)
    pod = kube_apiserver.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods/{action.name}"
    )
    spec = pod["spec"]
    assert spec["nodeName"] == "shell-a"
    assert spec["hostPID"] is True
    assert spec["tolerations"] == [{"operator": "Exists"}]
    (container,) = spec["containers"]
    assert container["securityContext"]["privileged"] is True
    assert container["image"] == IMAGE
    command = container["command"]
    assert command[: len(NSENTER)] == list(NSENTER)
    assert command[len(NSENTER) :] == ["sleep", "3600"]
    assert not any(word in ("sh", "bash", "-c") for word in command)
    labels = pod["metadata"]["labels"]
    assert labels == {MANAGED_BY: MANAGER, NODE_SHELL_LABEL: "shell-a"}
    (entry,) = audit.entries()
    assert (entry["action"], entry["outcome"]) == ("create Pod", "ran")


def test_cleanup_deletes_only_labelled_pods(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    admin = client(kube_apiserver)
    gate = ApiActionGate(audit, read_only=False)
    ours = [create_node_shell(n, settings(namespace)) for n in ("n-1", "n-2")]
    for action in ours:
        gate.run(action, admin, confirmed_by=CONFIRMED_BY)

    writer = ClusterWriter(kube_apiserver)
    writer.pod(namespace, "app-0", "n-1")
    # Pods with only one of the two labels belong to someone else.
    for name, labels in (
        ("lookalike", {NODE_SHELL_LABEL: "n-1"}),
        ("managed", {MANAGED_BY: MANAGER}),
    ):
        body = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": IMAGE}]},
        }
        kube_apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)

    actions = cleanup_node_shells(admin, namespace)
    assert sorted(a.name for a in actions) == sorted(a.name for a in ours)
    code, out = workload(kube_apiserver, "list", "-n", namespace, "--json")
    listed = json.loads(out)["node_shells"]
    assert sorted((r["name"], r["node"]) for r in listed) == sorted(
        (a.name, a.manifest["spec"]["nodeName"]) for a in ours
    )

    code, out = workload(kube_apiserver, "delete", "-n", namespace, "--yes")
    assert code == 0, out
    for action in ours:
        assert f"done: delete Pod {namespace}/{action.name}" in out
    assert pods(kube_apiserver, namespace) == ["app-0", "lookalike", "managed"]
    code, out = workload(kube_apiserver, "delete", "-n", namespace, "--yes")
    assert (code, out.strip()) == (0, f"no node-shell pods in namespace {namespace}")


def workload(server: KubeApiServer, *args: str) -> tuple[int, str]:
    argv = ["kube", "workload", *args, "--node-shells"]
    argv += ["--kubeconfig", str(server.kubeconfig)]
    out = io.StringIO()
    code = run_kube(build_parser().parse_args(argv), out)
    return code, out.getvalue()


def test_read_only_refuses_audits_and_creates_nothing(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    gate = ApiActionGate(audit, read_only=True)
    transport = PodTransport(
        "shell-a", client(kube_apiserver), gate, settings(namespace)
    )
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["cat", "/etc/os-release"]))
    assert "refused: the console runs with --read-only" in str(caught.value)
    assert pods(kube_apiserver, namespace) == []
    (entry,) = audit.entries()
    assert entry["outcome"] == "refused"
    assert entry["action"] == "create Pod"


def grant(server: KubeApiServer, namespace: str, rules: list[dict[str, Any]]) -> None:
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    server.request("POST", f"{base}/roles", {"metadata": {"name": "r"}, "rules": rules})
    binding = {
        "metadata": {"name": "r"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "r",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": VIEWER_USER,
            }
        ],
    }
    server.request("POST", f"{base}/rolebindings", binding)


def test_rbac_denial_names_the_missing_permission(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    viewer = client(kube_apiserver, VIEWER_CONTEXT)
    gate = ApiActionGate(audit, read_only=False)
    transport = PodTransport("shell-a", viewer, gate, settings(namespace))
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["true"]))
    assert 'the missing permission is "create" on "pods"' in str(caught.value)
    pod_rule = {"apiGroups": [""], "resources": ["pods"]}
    grant(
        kube_apiserver, namespace, [pod_rule | {"verbs": ["create", "get", "delete"]}]
    )
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["true"]))
    assert 'the missing permission is "create" on "pods/exec"' in str(caught.value)
    exec_rule = {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/r"
    role = kube_apiserver.request("GET", base)
    role["rules"].append(exec_rule)
    kube_apiserver.request("PUT", base, role)
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["true"]))
    assert 'the missing permission is "get" on "pods/exec"' in str(caught.value)
    assert pods(kube_apiserver, namespace) == []
    assert audit.entries() == []


def test_exec_denial_names_pods_exec(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    action = create_node_shell("shell-a", settings(namespace))
    ApiActionGate(audit, read_only=False).run(
        action, client(kube_apiserver), confirmed_by=CONFIRMED_BY
    )
    grant(
        kube_apiserver,
        namespace,
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    )
    with pytest.raises(KubeError) as caught:
        open_exec(client(kube_apiserver, VIEWER_CONTEXT), action, ["true"], False)
    text = str(caught.value)
    assert f'user "{VIEWER_USER}"' in text
    # A websocket exec is a GET: API servers before 1.30 check "get".
    assert 'the missing permission is "get" on "pods/exec"' in text
    assert "create and get on pods/exec" in caught.value.next_step


def test_pod_never_running_times_out(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    gate = ApiActionGate(audit, read_only=False)
    shell = settings(namespace, timeout=0.5)
    transport = PodTransport("shell-b", client(kube_apiserver), gate, shell)
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["true"]))
    text = str(caught.value)
    assert "on node shell-b did not start within 0.5 s (phase Pending)" in text
    assert "kubelet on shell-b" in text
    assert f"pull image {IMAGE}" in text
    assert pods(kube_apiserver, namespace) == []
    outcomes = [(e["action"], e["outcome"]) for e in audit.entries()]
    assert outcomes == [("create Pod", "ran"), ("delete Pod", "ran")]


def test_read_only_doctor_reports_refusal(
    kube_apiserver: KubeApiServer, namespace: str, tmp_path: Path
) -> None:
    label = uuid.uuid4().hex[:8]
    ClusterWriter(kube_apiserver).node("shell-c", "10.0.9.3", labels={"ns": label})
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(
        "[kubernetes]\n"
        f'kubeconfig = "{kube_apiserver.kubeconfig}"\n'
        f'label_selector = "ns={label}"\n'
        'node_access = "pod"\n'
        f'node_shell_namespace = "{namespace}"\n'
    )
    result = run_console(
        "--read-only", "doctor", "--inventory", str(inventory), "--json", home=tmp_path
    )
    assert result.stdout, result.stderr
    (report,) = json.loads(result.stdout)["nodes"]
    assert report["name"] == "shell-c"
    assert report["address"] == "pod on shell-c"
    assert "refused: the console runs with --read-only" in report["error"]["message"]
    assert pods(kube_apiserver, namespace) == []
    log = tmp_path / ".state" / "nydus-console" / "audit.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["action"], e["outcome"]) for e in entries] == [("create Pod", "refused")]


def mark_running_when_created(server: KubeApiServer, namespace: str) -> Thread:
    """Write Running status on the first node-shell pod, as its kubelet would."""

    def run() -> None:
        path = f"/api/v1/namespaces/{namespace}/pods"
        for _ in range(600):
            found = server.request("GET", path)["items"]
            if found:
                name = found[0]["metadata"]["name"]
                ClusterWriter(server).pod_status(namespace, name, running=True)
                return
            time.sleep(0.05)

    thread = Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_failed_exec_deletes_the_pod(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    # The node's kubelet address is loopback, where no kubelet listens: the
    # API server accepts the exec, then cannot reach the kubelet.
    ClusterWriter(kube_apiserver).node("shell-d", "127.0.0.1", hostname="127.0.0.1")
    gate = ApiActionGate(audit, read_only=False)
    transport = PodTransport(
        "shell-d", client(kube_apiserver), gate, settings(namespace)
    )
    thread = mark_running_when_created(kube_apiserver, namespace)
    with pytest.raises(TransportError) as caught:
        asyncio.run(transport.run(["cat", "/etc/hostname"]))
    thread.join()
    text = str(caught.value)
    assert "exec in the node-shell pod failed" in text
    assert "127.0.0.1:10250" in text
    assert "kubelet" in caught.value.next_step
    assert transport.pod is None
    assert pods(kube_apiserver, namespace) == []
    outcomes = [(e["action"], e["outcome"]) for e in audit.entries()]
    assert outcomes == [("create Pod", "ran"), ("delete Pod", "ran")]


def test_exec_sends_each_word_as_one_command_parameter(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    certs = kube_apiserver.workdir / "certs"
    with KubeletExecDouble(certs / "apiserver.crt", certs / "apiserver.key") as kubelet:
        writer = ClusterWriter(kube_apiserver)
        writer.node("shell-e", "127.0.0.1", hostname="127.0.0.1")
        endpoints = {"kubeletEndpoint": {"Port": kubelet.port}}
        kube_apiserver.request(
            "PATCH",
            "/api/v1/nodes/shell-e/status",
            {"status": {"daemonEndpoints": endpoints}},
            patch=True,
        )
        action = create_node_shell("shell-e", settings(namespace))
        admin = client(kube_apiserver)
        ApiActionGate(audit, read_only=False).run(
            action, admin, confirmed_by=CONFIRMED_BY
        )
        argv = ["cat", "; reboot", "$(id)", "a b", "&command=evil", "--", "-t", "é"]
        with pytest.raises(KubeError) as caught:
            open_exec(admin, action, argv, False)
    assert "exec is not carried out" in str(caught.value)
    (path,) = kubelet.paths
    assert path.startswith(f"/exec/{namespace}/{action.name}/shell?")
    assert kubelet.commands() == [[*NSENTER, *argv]]


@pytest.fixture
def running_shell(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> Iterator[tuple[PodTransport, KubeletExecDouble]]:
    """A PodTransport whose node's kubelet is a double that runs commands."""
    certs = kube_apiserver.workdir / "certs"
    kubelet = KubeletExecDouble(
        certs / "apiserver.crt", certs / "apiserver.key", run_commands=True
    )
    with kubelet:
        name = f"shell-{uuid.uuid4().hex[:6]}"
        ClusterWriter(kube_apiserver).node(name, "127.0.0.1", hostname="127.0.0.1")
        kube_apiserver.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {
                "status": {
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}
                }
            },
            patch=True,
        )
        gate = ApiActionGate(audit, read_only=False)
        transport = PodTransport(
            name, client(kube_apiserver), gate, settings(namespace)
        )
        mark_running_when_created(kube_apiserver, namespace)
        yield transport, kubelet


def test_commands_run_through_the_kubelet_double(
    running_shell: tuple[PodTransport, KubeletExecDouble],
    kube_apiserver: KubeApiServer,
    namespace: str,
    audit: AuditLog,
) -> None:
    transport, kubelet = running_shell

    async def session() -> list[Any]:
        try:
            return [
                await transport.run(["printf", "%s|", "a b", "$(id)", ";"]),
                await transport.run(["ls", "/nonexistent-nodeshell"]),
            ]
        finally:
            await transport.close()

    printed, failed = asyncio.run(session())
    assert (printed.exit_status, printed.stdout) == (0, "a b|$(id)|;|")
    assert failed.exit_status == 2
    assert "/nonexistent-nodeshell" in failed.stderr
    assert kubelet.commands()[0] == [*NSENTER, "printf", "%s|", "a b", "$(id)", ";"]
    assert pods(kube_apiserver, namespace) == []
    outcomes = [(e["action"], e["outcome"]) for e in audit.entries()]
    assert outcomes == [("create Pod", "ran"), ("delete Pod", "ran")]


def test_stdin_under_v4_stops_before_the_command(
    running_shell: tuple[PodTransport, KubeletExecDouble],
) -> None:
    transport, kubelet = running_shell

    async def session() -> None:
        try:
            await transport.run(["tee", "/tmp/nodeshell-never-written"], input="x")
        finally:
            await transport.close()

    with pytest.raises(TransportError) as caught:
        asyncio.run(session())
    assert "chose the v4.channel.k8s.io exec protocol" in str(caught.value)
    # Only the command that reads no input ran, never tee.
    assert kubelet.commands() == [[*NSENTER, "true"]]


def test_stream_yields_lines_through_the_kubelet_double(
    running_shell: tuple[PodTransport, KubeletExecDouble],
) -> None:
    transport, kubelet = running_shell

    async def session() -> list[str]:
        try:
            return [line async for line in transport.stream(["printf", "a\nb c\n"])]
        finally:
            await transport.close()

    assert asyncio.run(session()) == ["a", "b c"]
    assert kubelet.commands() == [[*NSENTER, "printf", "a\nb c\n"]]


def test_socket_states_through_the_kubelet_double(
    running_shell: tuple[PodTransport, KubeletExecDouble], tmp_path: Path
) -> None:
    transport, _ = running_shell
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    async def session() -> list[SocketState]:
        try:
            return [
                await transport.probe_unix_socket(str(tmp_path / name))
                for name in ("api.sock", "bound.sock", "missing.sock")
            ]
        finally:
            await transport.close()

    with listening, bound:
        listening.bind(str(tmp_path / "api.sock"))
        listening.listen()
        bound.bind(str(tmp_path / "bound.sock"))
        states = asyncio.run(session())
    assert states == [SocketState.LISTENING, SocketState.REFUSED, SocketState.MISSING]
