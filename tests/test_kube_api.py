"""The Kubernetes view against a real kube-apiserver 1.20 with etcd on 127.0.0.1.

Nodes, pods and events are written as a kubelet would write them (objects,
then their status subresource); there is no kubelet or scheduler.
"""

from __future__ import annotations

import io
import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.kube import VIEWER_CONTEXT, VIEWER_USER, ClusterWriter, KubeApiServer

from nydus_console.cli import build_parser, resolve_inventory
from nydus_console.kube.client import KubeClient
from nydus_console.kube.errors import KubeError, KubeErrorKind
from nydus_console.kube.watch import PodUpdate, PodWatch
from nydus_console.kubecli import run_kube

pytestmark = pytest.mark.kube

SANDBOX_ERROR = (
    "Failed to create pod sandbox: rpc error: code = NotFound desc = failed to "
    'create containerd container: create snapshot: missing parent "k8s.io/2/'
    'sha256:59b1c6a2" bucket: not found'
)
MEDIA_TYPE_ERROR = (
    'Failed to pull image "registry.example.com/app:nydus": rpc error: code = '
    'Unknown desc = failed to pull and unpack image "registry.example.com/app:'
    'nydus": failed to extract layer sha256:5e1a: failed to get stream processor '
    "for application/vnd.oci.image.layer.nydus.blob.v1: no processor for media-type"
)
MOUNT_EIO = (
    "Error: failed to create containerd task: failed to create shim task: OCI "
    "runtime create failed: runc create failed: unable to start container "
    "process: error during container init: mount callback failed on "
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/ab12/rootfs: read "
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/ab12/rootfs/etc/passwd: "
    "input/output error"
)


@pytest.fixture(scope="module")
def cluster(kube_apiserver: KubeApiServer) -> ClusterWriter:
    return ClusterWriter(kube_apiserver)


@pytest.fixture
def namespace(cluster: ClusterWriter) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.namespace(name)
    return name


def kube(server: KubeApiServer, *args: str) -> tuple[int, str]:
    """Run `nydus-console kube ARGS --kubeconfig K`; return (status, stdout)."""
    argv = ["kube", *args, "--kubeconfig", str(server.kubeconfig)]
    out = io.StringIO()
    code = run_kube(build_parser().parse_args(argv), out)
    return code, out.getvalue()


def test_contexts_lists_both_users(kube_apiserver: KubeApiServer) -> None:
    code, out = kube(kube_apiserver, "contexts", "--json")
    document = json.loads(out)
    assert code == 0
    assert document["current"] == "nc-admin"
    assert [c["name"] for c in document["contexts"]] == ["nc-admin", "nc-viewer"]
    assert document["contexts"][0]["server"] == kube_apiserver.url
    assert "token" not in out


def test_nodes_show_addresses_versions_conditions_and_taints(
    kube_apiserver: KubeApiServer, cluster: ClusterWriter
) -> None:
    suffix = uuid.uuid4().hex[:6]
    good, bad = f"good-{suffix}", f"bad-{suffix}"
    labels = {"test": suffix}
    cluster.node(good, "10.77.0.1", labels=labels)
    cluster.node(
        bad,
        "10.77.0.2",
        ready="False",
        pressure=("DiskPressure",),
        labels=labels,
        taints=[{"key": "nydus", "value": "broken", "effect": "NoSchedule"}],
    )
    try:
        code, out = kube(kube_apiserver, "nodes", "-l", f"test={suffix}", "--json")
    finally:
        cluster.delete_node(good)
        cluster.delete_node(bad)
    document = json.loads(out)
    nodes = {n["name"]: n for n in document["nodes"]}
    assert code == 1
    assert nodes[good]["status"] == "Ready"
    assert nodes[good]["internal_ip"] == "10.77.0.1"
    assert nodes[good]["kubelet_version"] == "v1.20.2"
    assert nodes[good]["runtime_version"] == "containerd://1.6.20"
    assert nodes[bad]["status"] == "NotReady"
    assert nodes[bad]["ready_message"] == "container runtime is down"
    assert nodes[bad]["pressure"] == ["DiskPressure"]
    # The TaintNodesByCondition admission plugin adds not-ready on create.
    assert "nydus=broken:NoSchedule" in nodes[bad]["taints"]
    assert nodes[bad]["labels"] == labels


def write_failing_pods(cluster: ClusterWriter, ns: str) -> None:
    cluster.pod(ns, "sandbox", "node-a")
    cluster.pod_status(ns, "sandbox", waiting="ContainerCreating")
    cluster.event(ns, "sandbox", "FailedCreatePodSandBox", SANDBOX_ERROR, count=4)
    cluster.pod(ns, "pull", "node-b")
    cluster.pod_status(
        ns,
        "pull",
        waiting="ImagePullBackOff",
        message='Back-off pulling image "registry.example.com/app:nydus"',
    )
    cluster.event(ns, "pull", "Failed", MEDIA_TYPE_ERROR)
    cluster.pod(ns, "init", "node-a", init=True)
    cluster.pod_status(
        ns,
        "init",
        init_waiting="CreateContainerError",
        message="context deadline exceeded",
    )
    cluster.pod(ns, "mount", "node-b")
    cluster.pod_status(ns, "mount", waiting="RunContainerError", message=MOUNT_EIO)
    cluster.pod(ns, "healthy", "node-a")
    cluster.pod_status(ns, "healthy", running=True)
    cluster.event(ns, "healthy", "Pulled", "Successfully pulled image", kind="Normal")
    cluster.pod(ns, "crash", "node-a", image="registry.example.com/other:latest")
    cluster.pod_status(
        ns,
        "crash",
        waiting="CrashLoopBackOff",
        message="back-off 5m0s restarting failed container",
    )


def test_pods_failing_with_nydus_causes_grouped_by_node(
    kube_apiserver: KubeApiServer, cluster: ClusterWriter, namespace: str
) -> None:
    write_failing_pods(cluster, namespace)
    code, out = kube(kube_apiserver, "pods", "-n", namespace, "--json")
    document = json.loads(out)
    assert code == 2
    nodes = {n["node"]: n for n in document["nodes"]}
    assert sorted(nodes) == ["node-a", "node-b"]
    pods_a = {p["name"]: p for p in nodes["node-a"]["pods"]}
    assert sorted(pods_a) == ["init", "sandbox"]
    assert pods_a["init"]["status"] == "Init:CreateContainerError"
    assert pods_a["sandbox"]["signatures"] == ["missing-parent-sandbox"]
    assert any("FailedCreatePodSandBox (x4)" in x for x in pods_a["sandbox"]["lines"])
    runbooks = {f["check"]: f["runbook"] for f in nodes["node-a"]["findings"]}
    assert runbooks == {
        "sig.init-create-container-error": "cri-snapshotter-toggle",
        "sig.missing-parent-sandbox": "missing-parent-sandbox",
    }
    runbooks = {f["check"]: f["runbook"] for f in nodes["node-b"]["findings"]}
    assert runbooks == {
        "sig.nydus-layer-no-processor": "bypassed-snapshotter",
        "sig.mount-callback-eio": "mount-callback-eio",
    }
    # The crash loop has no Nydus cause; --all lists it too.
    code, out = kube(kube_apiserver, "pods", "-n", namespace, "--all", "--json")
    names = [p["name"] for n in json.loads(out)["nodes"] for p in n["pods"]]
    assert "crash" in names
    assert "healthy" not in names


def test_pods_text_names_the_runbook_per_node(
    kube_apiserver: KubeApiServer, cluster: ClusterWriter, namespace: str
) -> None:
    cluster.pod(namespace, "sandbox", "node-c")
    cluster.pod_status(namespace, "sandbox")
    cluster.event(namespace, "sandbox", "FailedCreatePodSandBox", SANDBOX_ERROR)
    code, out = kube(kube_apiserver, "pods", "-n", namespace)
    assert code == 2
    assert "== node node-c: fail (1 failing pod)" in out
    assert f"pod {namespace}/sandbox  ContainerCreating  0/1" in out
    assert "runbook: nydus-console runbook show missing-parent-sandbox " in out
    assert "--node node-c" in out


# -- watch -----------------------------------------------------------------------


@pytest.fixture
def watch_updates(
    kube_apiserver: KubeApiServer, namespace: str
) -> Iterator[queue.Queue[PodUpdate]]:
    client = KubeClient.from_kubeconfig(str(kube_apiserver.kubeconfig))
    watch = PodWatch(client, namespace)
    updates: queue.Queue[PodUpdate] = queue.Queue()

    def pump() -> None:
        for update in watch.updates():
            updates.put(update)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield updates
    finally:
        watch.stop()
        thread.join(timeout=30)
        client.close()
        assert not thread.is_alive()


def next_update(updates: queue.Queue[PodUpdate], test: Any) -> PodUpdate:
    """Return the first update that passes test; fail on an error update."""
    while True:
        update = updates.get(timeout=60)
        assert update.kind != "error", update.error
        if test(update):
            return update


def test_watch_follows_pod_status_and_events(
    cluster: ClusterWriter, namespace: str, watch_updates: queue.Queue[PodUpdate]
) -> None:
    next_update(watch_updates, lambda u: u.kind == "synced")
    cluster.pod(namespace, "live", "node-w")
    cluster.pod_status(namespace, "live")
    created = next_update(watch_updates, lambda u: u.pod and u.pod.name == "live")
    assert not created.pod.failing
    cluster.event(namespace, "live", "FailedCreatePodSandBox", SANDBOX_ERROR)
    failing = next_update(
        watch_updates, lambda u: u.pod and u.pod.failing and u.pod.name == "live"
    )
    assert failing.pod.signatures == ["missing-parent-sandbox"]
    assert failing.pod.nydus_related
    cluster.pod_status(namespace, "live", running=True)
    running = next_update(watch_updates, lambda u: u.pod and u.pod.status == "Running")
    assert running.pod.phase == "Running"
    cluster.delete_pod(namespace, "live")
    next_update(watch_updates, lambda u: u.kind == "deleted")


# -- RBAC ------------------------------------------------------------------------


def test_restricted_user_gets_the_missing_permission_named(
    kube_apiserver: KubeApiServer,
    cluster: ClusterWriter,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = KubeClient.from_kubeconfig(str(kube_apiserver.kubeconfig), VIEWER_CONTEXT)
    with pytest.raises(KubeError) as error:
        client.list_nodes()
    assert error.value.kind == KubeErrorKind.FORBIDDEN
    assert (
        f'user "{VIEWER_USER}" (context {VIEWER_CONTEXT}) may not list nodes at '
        'the cluster scope; the missing permission is "list" on "nodes"'
    ) in error.value.message
    # Pods of one namespace, but not its events: the events are named.
    cluster.grant(VIEWER_USER, "pods-only", ["pods"], namespace)
    code, _ = kube(kube_apiserver, "pods", "-n", namespace, "--context", VIEWER_CONTEXT)
    stderr = capsys.readouterr().err
    assert code == 3
    assert f'may not list events in namespace "{namespace}"' in stderr
    assert 'the missing permission is "list" on "events"' in stderr
    assert "next step: bind the user to a Role" in stderr
    cluster.grant(VIEWER_USER, "events-too", ["events"], namespace)
    code, out = kube(
        kube_apiserver, "pods", "-n", namespace, "--context", VIEWER_CONTEXT
    )
    assert code == 0, capsys.readouterr().err
    assert "no pods failing with a Nydus cause" in out


def test_unreachable_api_server_says_so(tmp_path: Path, kube_apiserver: Any) -> None:
    config = json.loads(kube_apiserver.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    client = KubeClient.from_kubeconfig(str(path))
    with pytest.raises(KubeError) as error:
        client.list_nodes()
    assert error.value.kind == KubeErrorKind.UNREACHABLE
    assert "cannot reach the API server https://127.0.0.1:1" in str(error.value)


def test_pods_watch_prints_failing_then_ok(
    kube_apiserver: KubeApiServer, cluster: ClusterWriter, namespace: str
) -> None:
    argv = [
        sys.executable,
        "-m",
        "nydus_console",
        "kube",
        "pods",
        "--watch",
        "--json",
        "-n",
        namespace,
        "--kubeconfig",
        str(kube_apiserver.kubeconfig),
    ]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A run started in the background of a shell inherits SIGINT ignored;
        # the watch is stopped the way ctrl+c in a terminal stops it.
        preexec_fn=_default_sigint,
    )
    try:
        cluster.pod(namespace, "flaky", "node-f")
        cluster.pod_status(
            namespace, "flaky", waiting="ErrImagePull", message=MEDIA_TYPE_ERROR
        )
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["state"] == "failing"
        assert first["pod"]["signatures"] == ["nydus-layer-no-processor"]
        cluster.pod_status(namespace, "flaky", running=True)
        second = json.loads(process.stdout.readline())
        assert second["state"] == "ok"
        assert second["pod"]["status"] == "Running"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- cluster nodes in the fleet ------------------------------------------------


def test_node_without_internal_ip_is_named_on_stderr(
    kube_apiserver: KubeApiServer,
    cluster: ClusterWriter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    suffix = uuid.uuid4().hex[:6]
    good, bare = f"good-{suffix}", f"bare-{suffix}"
    cluster.node(good, "127.0.0.1", labels={"fleet": suffix})
    cluster.node(bare, "", hostname=f"{bare}.lan", labels={"fleet": suffix})
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(
        "[kubernetes]\n"
        f'kubeconfig = "{kube_apiserver.kubeconfig}"\n'
        f'label_selector = "fleet={suffix}"\n'
        'address = "internal-ip"\n'
    )
    try:
        args = build_parser().parse_args(["doctor", "--inventory", str(inventory)])
        nodes = resolve_inventory(args).nodes
        stderr = capsys.readouterr().err
        # The console's own run (no command) shows them on its fleet screen.
        args = build_parser().parse_args(["--inventory", str(inventory)])
        quiet = resolve_inventory(args)
        tui_stderr = capsys.readouterr().err
    finally:
        cluster.delete_node(good)
        cluster.delete_node(bare)
    assert [n.name for n in nodes] == [good]
    assert (
        f"nydus-console: warning: cluster node {bare} is left out of the fleet: its "
        'Node reports no InternalIP address (address = "internal-ip"); it reports '
        f'Hostname {bare}.lan: set address = "hostname" in the [kubernetes] table '
        f"of {inventory}"
    ) in stderr
    assert good not in stderr
    assert list(quiet.left_out) == [bare]
    assert tui_stderr == ""


# -- the context's namespace -------------------------------------------------------


def namespaced_kubeconfig(server: KubeApiServer, path: Path, namespace: str) -> Path:
    """The testbed's kubeconfig with the viewer context set to namespace."""
    config = json.loads(server.kubeconfig.read_text())
    for context in config["contexts"]:
        if context["name"] == VIEWER_CONTEXT:
            context["context"]["namespace"] = namespace
    path.write_text(json.dumps(config))
    return path


def test_pods_read_the_context_namespace_unless_told_otherwise(
    kube_apiserver: KubeApiServer,
    cluster: ClusterWriter,
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster.grant(VIEWER_USER, "read-pods", ["pods", "events"], namespace)
    config = namespaced_kubeconfig(kube_apiserver, tmp_path / "kc", namespace)

    def viewer(*args: str) -> tuple[int, str]:
        argv = ["kube", *args, "--kubeconfig", str(config)]
        argv += ["--context", VIEWER_CONTEXT]
        out = io.StringIO()
        return run_kube(build_parser().parse_args(argv), out), out.getvalue()

    code, out = viewer("pods")
    assert code == 0, capsys.readouterr().err
    assert f"in namespace {namespace} of context {VIEWER_CONTEXT}" in out
    code, out = viewer("pods", "--json")
    assert json.loads(out)["namespace"] == namespace
    # --all-namespaces reads the cluster scope, which the viewer may not list.
    code, _ = viewer("pods", "--all-namespaces")
    assert code == 3
    assert "at the cluster scope" in capsys.readouterr().err
    # Test workloads default to the context's namespace too.
    code, _ = viewer("workload", "list")
    assert code == 3
    assert f'in namespace "{namespace}"' in capsys.readouterr().err
