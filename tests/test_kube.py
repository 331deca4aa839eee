"""The Kubernetes engine without a cluster: kubeconfig, nodes, pods, inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nydus_console.findings import Status
from nydus_console.inventory import InventoryError, parse_inventory
from nydus_console.kube.config import load_kubeconfig
from nydus_console.kube.errors import KubeError, KubeErrorKind, api_error
from nydus_console.kube.nodes import parse_node
from nydus_console.kube.pods import parse_pod, scan_pods
from nydus_console.kube.targets import cluster_targets

SANDBOX_ERROR = (
    "Failed to create pod sandbox: rpc error: code = NotFound desc = failed to "
    'create containerd container: create snapshot: missing parent "k8s.io/2/'
    'sha256:59b1c6a2" bucket: not found'
)
MEDIA_TYPE_ERROR = (
    'Failed to pull image "registry.example.com/app:nydus": failed to pull and '
    'unpack image "registry.example.com/app:nydus": failed to extract layer '
    "sha256:5e1a: failed to get stream processor for "
    "application/vnd.oci.image.layer.nydus.blob.v1: no processor for media-type"
)


def kubeconfig(path: Path, contexts: list[str], current: str = "") -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": f"{c}-cluster", "cluster": {"server": f"https://{c}.example:6443"}}
            for c in contexts
        ],
        "users": [{"name": f"{c}-user", "user": {"token": "secret"}} for c in contexts],
        "contexts": [
            {"name": c, "context": {"cluster": f"{c}-cluster", "user": f"{c}-user"}}
            for c in contexts
        ],
    }
    if current:
        document["current-context"] = current
    path.write_text(json.dumps(document))
    return path


def pod(
    name: str,
    node: str = "node-1",
    waiting: str = "",
    message: str = "",
    init_waiting: str = "",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if waiting:
        status["containerStatuses"] = [
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": waiting, "message": message}},
            }
        ]
    if init_waiting:
        status["initContainerStatuses"] = [
            {
                "name": "setup",
                "state": {"waiting": {"reason": init_waiting, "message": message}},
            }
        ]
    return {
        "metadata": {"namespace": "default", "name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "x"}]},
        "status": status,
    }


def event(pod_name: str, reason: str, message: str, kind: str = "Warning") -> dict:
    return {
        "metadata": {"name": f"{pod_name}.1", "uid": f"e-{pod_name}-{reason}"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": pod_name},
        "type": kind,
        "reason": reason,
        "message": message,
        "count": 3,
        "source": {"component": "kubelet"},
        "lastTimestamp": "2026-12-04T10:00:00Z",
    }


# -- kubeconfig --------------------------------------------------------------------


def test_contexts_merge_kubeconfig_files_first_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", ["prod", "edge"], current="edge")
    second = kubeconfig(tmp_path / "b", ["prod", "lab"], current="lab")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    config = load_kubeconfig()
    infos = {i.name: i for i in config.context_infos()}
    assert list(infos) == ["prod", "edge", "lab"]
    assert config.current == "edge"
    assert infos["edge"].current
    assert infos["lab"].server == "https://lab.example:6443"
    assert config.pick(None) == "edge"
    assert config.pick("lab") == "lab"


def test_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    config = load_kubeconfig(str(kubeconfig(tmp_path / "c", ["prod"])))
    with pytest.raises(KubeError) as error:
        config.pick(None)
    assert "sets no current-context" in str(error.value)
    with pytest.raises(KubeError) as error:
        config.pick("stage")
    assert error.value.kind == KubeErrorKind.CONFIG
    assert "'stage' is not in kubeconfig" in str(error.value)
    assert "pick one of: prod" in str(error.value)


def test_missing_kubeconfig_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match=r"no kubeconfig file at .*nope"):
        load_kubeconfig(str(tmp_path / "nope"))


# -- errors ------------------------------------------------------------------------


def test_forbidden_names_the_missing_permission() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "message": 'pods is forbidden: User "viewer" cannot list resource '
            '"pods" in API group "" at the cluster scope',
            "code": 403,
        }
    )
    error = api_error(403, body, "prod", "list pods")
    assert error.kind == KubeErrorKind.FORBIDDEN
    assert 'user "viewer" (context prod) may not list pods at the cluster scope' in (
        error.message
    )
    assert 'the missing permission is "list" on "pods"' in error.message
    assert "ClusterRole" in error.next_step


def forbidden(text: str) -> KubeError:
    body = json.dumps({"kind": "Status", "message": text, "code": 403})
    return api_error(403, body, "viewer", "a request")


def test_forbidden_in_a_namespace_suggests_a_role_for_that_resource() -> None:
    error = forbidden(
        'deployments.apps is forbidden: User "viewer" cannot list resource '
        '"deployments" in API group "apps" in the namespace "shop"'
    )
    assert 'may not list deployments in API group "apps" in namespace "shop"' in (
        error.message
    )
    step = error.next_step
    assert "Role in namespace shop that allows get,list,watch on deployments.apps" in (
        step
    )
    assert (
        "kubectl create role nydus-console-deployments --namespace=shop "
        "--verb=get,list,watch --resource=deployments.apps"
    ) in step
    assert (
        "kubectl create rolebinding nydus-console-deployments --namespace=shop "
        "--role=nydus-console-deployments --user=viewer"
    ) in step
    assert "clusterrole" not in step.lower()
    assert "nodes" not in step


def test_forbidden_at_the_cluster_scope_suggests_a_cluster_role() -> None:
    error = forbidden(
        'User "system:serviceaccount:ci:runner" cannot create resource "pods/exec" '
        'in API group "" at the cluster scope'
    )
    step = error.next_step
    assert (
        "kubectl create clusterrole nydus-console-pods-exec --verb=create "
        "--resource=pods/exec"
    ) in step
    assert (
        "kubectl create clusterrolebinding nydus-console-pods-exec "
        "--clusterrole=nydus-console-pods-exec --serviceaccount=ci:runner"
    ) in step
    assert "--namespace" not in step


def test_unauthorized_points_at_the_credentials() -> None:
    error = api_error(401, b'{"message": "Unauthorized"}', "prod", "list nodes")
    assert error.kind == KubeErrorKind.UNAUTHORIZED
    assert "rejected the credentials of context prod" in str(error)


# -- nodes -------------------------------------------------------------------------


def raw_node(name: str, ip: str, ready: str = "True", **extra: Any) -> dict:
    return {
        "metadata": {"name": name, "labels": {"nydus": "true"}},
        "spec": extra.get("spec", {}),
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": f"{name}.lan"},
            ],
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady"},
                {"type": "DiskPressure", "status": extra.get("disk", "False")},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.20.2",
                "containerRuntimeVersion": "containerd://1.6.20",
            },
        },
    }


def test_parse_node_reads_addresses_conditions_and_taints() -> None:
    node = parse_node(
        raw_node(
            "gpu-1",
            "10.0.0.5",
            ready="False",
            disk="True",
            spec={
                "unschedulable": True,
                "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
            },
        )
    )
    assert (node.internal_ip, node.hostname) == ("10.0.0.5", "gpu-1.lan")
    assert node.status == "NotReady,SchedulingDisabled"
    assert node.pressure == ["DiskPressure"]
    assert [str(t) for t in node.taints] == ["gpu=yes:NoSchedule"]
    assert node.runtime == "containerd://1.6.20"


def inventory_with_cluster(tmp_path: Path, **table: Any) -> Any:
    key = tmp_path / "id"
    key.write_text("key")
    data = {
        "defaults": {"sudo": True, "known_hosts": ["/tmp/kh"]},
        "kubernetes": {"context": "prod", "ssh_user": "ops", "key": str(key)} | table,
    }
    return parse_inventory(data, "fleet.toml")


def test_cluster_template_turns_nodes_into_ssh_targets(tmp_path: Path) -> None:
    inventory = inventory_with_cluster(tmp_path, ssh_port=2222, jump_host="bastion")
    template = inventory.kubernetes
    assert inventory.nodes == []
    assert template.context == "prod"
    nodes = [parse_node(raw_node("n1", "10.0.0.1")), parse_node(raw_node("n2", ""))]
    targets = cluster_targets(nodes, template, [])
    (spec,) = targets.specs
    assert (spec.name, spec.address) == ("n1", "ops@10.0.0.1:2222")
    assert spec.sudo and spec.jump_host == "bastion"
    assert spec.identity_file == str(tmp_path / "id")
    assert targets.left_out == {"n2": targets.skipped["n2"]}
    assert targets.left_out["n2"] == (
        'its Node reports no InternalIP address (address = "internal-ip"); it '
        'reports Hostname n2.lan: set address = "hostname" in the [kubernetes] '
        "table of fleet.toml, or add a [nodes.n2] table with its address"
    )
    bare = raw_node("n3", "")
    bare["status"]["addresses"] = []
    targets = cluster_targets([parse_node(bare)], template, [])
    assert targets.left_out["n3"] == (
        'its Node reports no InternalIP address (address = "internal-ip"); it '
        "reports no address: add a [nodes.n3] table to fleet.toml with the address "
        'to reach it at, or set node_access = "pod" in [kubernetes] to reach it '
        "through a node-shell pod"
    )


def test_cluster_template_by_hostname_and_inventory_nodes_win(tmp_path: Path) -> None:
    template = inventory_with_cluster(tmp_path, address="hostname").kubernetes
    own = parse_inventory({"nodes": {"n1": {"address": "10.9.9.9"}}}, "x").nodes
    nodes = [parse_node(raw_node("n1", "10.0.0.1")), parse_node(raw_node("n2", "x"))]
    targets = cluster_targets(nodes, template, own)
    assert [s.address for s in targets.specs] == ["ops@n2.lan"]
    assert "[nodes] table is used" in targets.skipped["n1"]
    # n1 is in the fleet through its [nodes] table: it is not left out.
    assert targets.left_out == {}


def test_cluster_template_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="address = 'external' is not one of"):
        inventory_with_cluster(tmp_path, address="external")
    with pytest.raises(InventoryError, match=r"\[kubernetes\] port must be 1-65535"):
        inventory_with_cluster(tmp_path, ssh_port=70000)
    with pytest.raises(InventoryError, match=r"unknown key\(s\) \['user'\]"):
        inventory_with_cluster(tmp_path, user="root")


# -- pods --------------------------------------------------------------------------


def test_kubectl_status_of_init_and_main_containers() -> None:
    assert parse_pod(pod("a", init_waiting="CreateContainerError")).status == (
        "Init:CreateContainerError"
    )
    assert parse_pod(pod("b", waiting="ImagePullBackOff")).status == "ImagePullBackOff"
    assert parse_pod(pod("c")).status == "Pending"


def test_scan_groups_nydus_failures_by_node_with_runbooks() -> None:
    pods = [
        pod("sandbox", "node-1", waiting="ContainerCreating"),
        pod("pull", "node-2", waiting="ImagePullBackOff", message="Back-off"),
        pod("init", "node-1", init_waiting="CreateContainerError"),
        pod("crash", "node-2", waiting="CrashLoopBackOff", message="exit 1"),
        pod("fine", "node-2"),
    ]
    events = [
        event("sandbox", "FailedCreatePodSandBox", SANDBOX_ERROR),
        event("pull", "Failed", MEDIA_TYPE_ERROR),
        event("fine", "Scheduled", "assigned", kind="Normal"),
    ]
    groups = scan_pods(pods, events)
    assert [g.node for g in groups] == ["node-1", "node-2"]
    node1, node2 = groups
    assert [p.name for p in node1.pods] == ["sandbox", "init"]
    assert [p.name for p in node2.pods] == ["pull"]
    runbooks = {f.check: f.runbook for f in node1.findings}
    assert runbooks == {
        "sig.missing-parent-sandbox": "missing-parent-sandbox",
        "sig.init-create-container-error": "cri-snapshotter-toggle",
    }
    (finding,) = node2.findings
    assert finding.runbook == "bypassed-snapshotter"
    assert finding.status == Status.FAIL
    assert finding.evidence[0].source == "pod default/pull"
    assert node1.pods[0].signatures == ["missing-parent-sandbox"]
    everything = scan_pods(pods, events, include_all=True)
    assert "crash" in [p.name for g in everything for p in g.pods]


def test_pod_lines_mask_credentials() -> None:
    leaky = pod("p", waiting="ErrImagePull", message="pull nydus password=hunter2")
    (group,) = scan_pods([leaky], [])
    text = "\n".join(group.pods[0].lines())
    assert "hunter2" not in text


def test_cli_import_leaves_kubernetes_unloaded() -> None:
    code = (
        "import sys, nydus_console.cli, nydus_console.kube.watch\n"
        "print('kubernetes' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_kube_rejects_node_options(capsys: pytest.CaptureFixture[str]) -> None:
    from nydus_console.cli import main

    assert main(["kube", "pods", "--node", "gpu-1"]) == 64
    assert "--node and --ssh-hosts do not apply" in capsys.readouterr().err


def test_unreadable_kubeconfig_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nydus_console.cli import main

    path = tmp_path / "config"
    path.write_text("clusters: [")
    assert main(["kube", "contexts", "--kubeconfig", str(path)]) == 64
    assert f"cannot read kubeconfig {path}" in capsys.readouterr().err


def test_build_script_returns_cached_binary(tmp_path: Path) -> None:
    binary = tmp_path / "kube-apiserver" / "kube-apiserver"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    script = Path(__file__).parent.parent / "scripts" / "build-kube-apiserver"
    result = subprocess.run(
        [str(script)],
        env=dict(os.environ, NC_CACHE=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(binary)
    assert not (tmp_path / "kube-apiserver" / "build.log").exists()


def test_console_log_names_left_out_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from nydus_console import cli, locations
    from nydus_console.inventory import Inventory
    from nydus_console.screens.app import NydusConsoleApp

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(NydusConsoleApp, "run", lambda self: None)
    inventory = Inventory(nodes=[], source="fleet.toml")
    inventory.left_out = {"bare-1": "its Node reports no InternalIP address"}
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        cli.run_tui(inventory, read_only=False, refresh=0)
    finally:
        # run_tui adds a file handler to the root logger: remove it again.
        for handler in list(root.handlers):
            if handler not in handlers:
                handler.close()
                root.removeHandler(handler)
        root.setLevel(level)
    text = locations.log_file().read_text()
    assert (
        "WARNING nydus_console: cluster node bare-1 is left out of the fleet: its "
        "Node reports no InternalIP address"
    ) in text
