"""Test workloads: previewed, confirmed, audited, read-only aware, our own only."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from testbed.kube import VIEWER_CONTEXT, VIEWER_USER, ClusterWriter, KubeApiServer

from nydus_console.audit import AuditLog
from nydus_console.cli import build_parser
from nydus_console.kubecli import run_kube

pytestmark = pytest.mark.kube
IMAGE = "registry.example.com/app:nydus"


@pytest.fixture
def namespace(kube_apiserver: KubeApiServer) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    ClusterWriter(kube_apiserver).namespace(name)
    return name


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuditLog:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return AuditLog(tmp_path / "state" / "nydus-console" / "audit.jsonl")


def console(
    server: KubeApiServer, *args: str, read_only: bool = False
) -> tuple[int, str]:
    argv = ["--read-only"] if read_only else []
    argv += ["kube", "workload", *args, "--kubeconfig", str(server.kubeconfig)]
    out = io.StringIO()
    code = run_kube(build_parser().parse_args(argv), out)
    return code, out.getvalue()


def workloads(server: KubeApiServer, namespace: str) -> list[str]:
    names = []
    for plural in ("deployments", "daemonsets"):
        path = f"/apis/apps/v1/namespaces/{namespace}/{plural}"
        names += [
            f"{plural}/{i['metadata']['name']}"
            for i in server.request("GET", path)["items"]
        ]
    return sorted(names)


def test_create_shows_the_manifest_and_needs_yes(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    args = ("create", "--image", IMAGE, "-n", namespace, "--kind", "daemonset")
    code, out = console(kube_apiserver, *args)
    assert code == 2
    assert f"create DaemonSet {namespace}/nydus-test" in out
    assert '"image": "registry.example.com/app:nydus"' in out
    assert "not sent: add --yes" in out
    code, _ = console(kube_apiserver, *args, "--dry-run")
    assert code == 0
    assert workloads(kube_apiserver, namespace) == []
    assert audit.entries() == []
    code, out = console(kube_apiserver, *args, "--yes")
    assert code == 0, out
    assert workloads(kube_apiserver, namespace) == ["daemonsets/nydus-test"]
    (entry,) = audit.entries()
    assert entry["action"] == "create DaemonSet"
    assert entry["object"] == f"{namespace}/nydus-test"
    assert entry["outcome"] == "ran"
    assert entry["cluster"] == "nc-admin"


def test_read_only_refuses_and_audits(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    code, out = console(
        kube_apiserver,
        "create",
        "--image",
        IMAGE,
        "-n",
        namespace,
        "--yes",
        read_only=True,
    )
    assert code == 2
    assert "refused: the console runs with --read-only" in out
    assert workloads(kube_apiserver, namespace) == []
    (entry,) = audit.entries()
    assert entry["outcome"] == "refused"


def test_delete_touches_only_our_workloads(
    kube_apiserver: KubeApiServer, namespace: str, audit: AuditLog
) -> None:
    for kind, name in (("deployment", "one"), ("daemonset", "two")):
        code, out = console(
            kube_apiserver,
            "create",
            "--image",
            IMAGE,
            "-n",
            namespace,
            "--kind",
            kind,
            "--name",
            name,
            "--yes",
        )
        assert code == 0, out
    # A Deployment of someone else, with the same image and a similar name.
    foreign = {
        "metadata": {"name": "nydus-test", "labels": {"app": "nydus-test"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nydus-test"}},
            "template": {
                "metadata": {"labels": {"app": "nydus-test"}},
                "spec": {"containers": [{"name": "c", "image": IMAGE}]},
            },
        },
    }
    kube_apiserver.request(
        "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", foreign
    )
    code, out = console(kube_apiserver, "list", "-n", namespace, "--json")
    listed = json.loads(out)["workloads"]
    assert sorted(w["name"] for w in listed) == ["one", "two"]
    code, out = console(kube_apiserver, "delete", "-n", namespace, "--yes")
    assert code == 0, out
    assert f"done: delete Deployment {namespace}/one" in out
    assert f"done: delete DaemonSet {namespace}/two" in out
    assert workloads(kube_apiserver, namespace) == ["deployments/nydus-test"]
    outcomes = [(e["action"], e["outcome"]) for e in audit.entries()]
    assert outcomes[-2:] == [("delete Deployment", "ran"), ("delete DaemonSet", "ran")]


def test_invalid_name_is_a_usage_error(
    kube_apiserver: KubeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = console(kube_apiserver, "create", "--image", IMAGE, "--name", "Bad_Name")
    assert code == 64
    assert "invalid workload name 'Bad_Name'" in capsys.readouterr().err


def test_denied_list_suggests_the_role_that_grants_it(
    kube_apiserver: KubeApiServer,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("list", "-n", namespace, "--context", VIEWER_CONTEXT)
    code, _ = console(kube_apiserver, *args)
    stderr = capsys.readouterr().err
    assert code == 3
    assert (
        f'may not list deployments in API group "apps" in namespace "{namespace}"'
    ) in stderr
    assert (
        f"kubectl create role nydus-console-deployments --namespace={namespace} "
        "--verb=get,list,watch --resource=deployments.apps"
    ) in stderr
    assert f"--role=nydus-console-deployments --user={VIEWER_USER}" in stderr
    assert "--resource=nodes" not in stderr
    # The Role the suggestion creates lets the viewer list Deployments: the
    # next denial is about DaemonSets.
    grant(kube_apiserver, namespace, "deployments")
    code, _ = console(kube_apiserver, *args)
    stderr = capsys.readouterr().err
    assert code == 3
    assert "may not list daemonsets" in stderr
    grant(kube_apiserver, namespace, "daemonsets")
    code, out = console(kube_apiserver, *args)
    assert code == 0, capsys.readouterr().err
    assert f"no test workloads in namespace {namespace}" in out


def grant(server: KubeApiServer, namespace: str, resource: str) -> None:
    """Create what the suggested `kubectl create role|rolebinding` create."""
    name = f"nydus-console-{resource}"
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    rule = {
        "apiGroups": ["apps"],
        "resources": [resource],
        "verbs": ["get", "list", "watch"],
    }
    server.request(
        "POST", f"{base}/roles", {"metadata": {"name": name}, "rules": [rule]}
    )
    binding = {
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
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


def test_dry_run_says_nothing_was_sent(
    kube_apiserver: KubeApiServer,
    namespace: str,
    audit: AuditLog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("create", "--image", IMAGE, "-n", namespace, "--dry-run")
    code, out = console(kube_apiserver, *args)
    assert code == 0
    assert out.rstrip().endswith("dry run: nothing was sent to the API server")
    capsys.readouterr()
    # With --json the changes are one JSON document and the note goes to stderr.
    code, out = console(kube_apiserver, *args, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["dry_run"] is True
    (change,) = document["changes"]
    assert change["action"] == f"create Deployment {namespace}/nydus-test"
    containers = change["manifest"]["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == IMAGE
    assert "dry run: nothing was sent to the API server" in capsys.readouterr().err
    assert workloads(kube_apiserver, namespace) == []
    assert audit.entries() == []
