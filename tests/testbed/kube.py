"""A real Kubernetes API server on 127.0.0.1: Debian's etcd and a built kube-apiserver.

Debian ships no kube-apiserver binary, so scripts/build-kube-apiserver builds
v1.20.2 from Debian's ``kubernetes`` source package once and caches it under
``${NC_CACHE:-/var/cache/nydus-console-testbed}/kube-apiserver/``.
scripts/test.sh runs that build and exports ``NC_KUBE_APISERVER`` with the
binary's path, so the fixture expects the binary.

``KubeApiServer`` starts etcd (package etcd-server) and kube-apiserver with
free ports and a fresh data directory, RBAC authorization and a static token
file with two users: ``nc-admin`` (group system:masters) and ``nc-viewer``
(no groups, no permissions until a test binds a Role). Its kubeconfig has a
context for each user, ``nc-admin`` being the current one. There is no
controller manager, scheduler or kubelet: tests write Nodes, Pods and Events
themselves, with the status a kubelet would write through the status
subresource.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import TestbedUnavailable
from .loopback import free_ports

ETCD = "/usr/bin/etcd"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
ADMIN_TOKEN = "nc-admin-token-0d9f1e"
VIEWER_TOKEN = "nc-viewer-token-7b2c4a"
ADMIN_CONTEXT = "nc-admin"
VIEWER_CONTEXT = "nc-viewer"
VIEWER_USER = "nc-viewer"


def cache_dir() -> Path:
    return Path(os.environ.get("NC_CACHE", "/var/cache/nydus-console-testbed"))


class KubeBinaryMissing(TestbedUnavailable):
    """No built kube-apiserver. `expected` is true when a build should have made it."""

    def __init__(self, message: str, *, expected: bool) -> None:
        super().__init__(message)
        self.expected = expected


def kube_apiserver_binary() -> Path:
    """Return the built kube-apiserver, or raise KubeBinaryMissing with the reason.

    NC_KUBE_APISERVER names the binary when a build was run for this test
    session (scripts/test.sh sets it); otherwise the default cache path is
    looked at, and a missing binary there means it was not built here.
    """
    given = os.environ.get("NC_KUBE_APISERVER", "")
    binary = Path(given) if given else cache_dir() / "kube-apiserver" / "kube-apiserver"
    if os.access(binary, os.X_OK):
        return binary
    log = binary.parent / "build.log"
    failed = binary.parent / "build.failed"
    if failed.is_file():
        cause = f"its build failed ({failed.read_text().strip()}); log {log}"
    elif log.is_file():
        cause = f"its build did not finish; log {log}"
    else:
        cause = "it was never built on this machine"
    message = (
        f"no kube-apiserver at {binary}: {cause}. "
        "Build it with `sudo scripts/build-kube-apiserver` (5 to 9 minutes)"
    )
    raise KubeBinaryMissing(message, expected=bool(given))


class KubeApiServer:
    """etcd and kube-apiserver processes, their data, certs and logs under workdir."""

    def __init__(self, workdir: Path, binary: Path | None = None) -> None:
        self.workdir = workdir
        self.binary = binary
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self.etcd_port = 0
        self.port = 0
        self.kubeconfig = workdir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        # kube-apiserver writes a self-signed serving certificate for
        # 127.0.0.1 into --cert-dir when it is given none.
        return self.workdir / "certs" / "apiserver.crt"

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- start and stop ------------------------------------------------------

    def start(self) -> None:
        """Start etcd and kube-apiserver; return when /readyz returns ok.

        Raises TestbedUnavailable when a binary is missing, RuntimeError or
        TimeoutError with the end of the log when a process does not get ready.
        """
        binary = self.binary or kube_apiserver_binary()
        if not os.access(ETCD, os.X_OK):
            raise TestbedUnavailable(f"{ETCD} is not installed (package etcd-server)")
        if shutil.which("openssl") is None:
            raise TestbedUnavailable("openssl is not installed (package openssl)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            self._start_etcd(deadline)
            self._start_apiserver(binary, deadline)
        except BaseException:
            self.stop()
            raise
        self.write_kubeconfig()

    def _start_etcd(self, deadline: float) -> None:
        self.etcd_port, peer = free_ports(2)
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{peer}"
        argv = [
            ETCD,
            "--name=nc",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=nc={peer_url}",
        ]
        self.etcd = self._launch(argv, "etcd.log")
        self._wait(self.etcd, "etcd", self._etcd_healthy, deadline)

    def _etcd_healthy(self) -> bool:
        status, body = _get(f"http://127.0.0.1:{self.etcd_port}/health")
        return status == 200 and b'"true"' in body

    def _start_apiserver(self, binary: Path, deadline: float) -> None:
        (self.port,) = free_ports(1)
        key, public = self.workdir / "sa.key", self.workdir / "sa.pub"
        _run(["openssl", "genrsa", "-out", str(key), "2048"])
        _run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(public)])
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(
            f"{ADMIN_TOKEN},nc-admin,nc-admin-uid,system:masters\n"
            f"{VIEWER_TOKEN},{VIEWER_USER},nc-viewer-uid\n"
        )
        argv = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={public}",
            f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            # No controller creates the default ServiceAccount, which this
            # admission plugin would require of every pod.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            # As kubeadm and most distributions set it: node-shell pods are
            # privileged, which the API server refuses without it.
            "--allow-privileged=true",
        ]
        self.apiserver = self._launch(argv, "kube-apiserver.log")
        self._wait(self.apiserver, "kube-apiserver", self._ready, deadline)

    def _ready(self) -> bool:
        status, body = _get(f"{self.url}/readyz", token=ADMIN_TOKEN)
        return status == 200 and body.strip() == b"ok"

    def _launch(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("wb") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        name: str,
        ready: Any,
        deadline: float,
    ) -> None:
        log = self.workdir / f"{name}.log"
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode} before it "
                    f"was ready; log {log}:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name} was not ready within {READY_TIMEOUT} s; "
                    f"log {log}:\n{_tail(log)}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd: SIGTERM, SIGKILL after STOP_TIMEOUT."""
        for process in (self.apiserver, self.etcd):
            if process is not None:
                _terminate(process)
        self.apiserver = self.etcd = None

    # --- clients -----------------------------------------------------------------

    def write_kubeconfig(self, path: Path | None = None) -> Path:
        """Write a kubeconfig with the admin and viewer contexts (JSON is YAML)."""
        path = path or self.kubeconfig
        users = {ADMIN_CONTEXT: ADMIN_TOKEN, VIEWER_CONTEXT: VIEWER_TOKEN}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "nc-testbed",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [
                {"name": name, "user": {"token": token}}
                for name, token in users.items()
            ],
            "contexts": [
                {"name": name, "context": {"cluster": "nc-testbed", "user": name}}
                for name in users
            ],
            "current-context": ADMIN_CONTEXT,
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
        return path

    def request(
        self, method: str, path: str, body: object = None, *, patch: bool = False
    ) -> Any:
        """Send one API request as nc-admin and return the decoded JSON response.

        Raises RuntimeError with the status and body for a status >= 400.
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data, method=method)
        request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
        kind = "application/merge-patch+json" if patch else "application/json"
        request.add_header("Content-Type", kind)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(
                f"{method} {path} returned {error.code}: {error.read()[:2000]!r}"
            ) from None


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # Readiness only: the serving certificate may not be written yet.
    context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _run(argv: list[str]) -> None:
    subprocess.run(
        argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError as error:
        return f"(log not readable: {error})"


# -- objects as a kubelet would write them ------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ClusterWriter:
    """Creates Namespaces, Nodes, Pods, Events and RBAC objects as nc-admin.

    Nodes get their status through the status subresource, as a kubelet
    reports it; pods are created and then get their status the same way.
    """

    def __init__(self, server: KubeApiServer) -> None:
        self.server = server

    def namespace(self, name: str) -> None:
        self.server.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    def node(
        self,
        name: str,
        internal_ip: str,
        *,
        hostname: str = "",
        ready: str = "True",
        pressure: tuple[str, ...] = (),
        taints: list[dict[str, str]] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        body = {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []},
        }
        self.server.request("POST", "/api/v1/nodes", body)
        now = _now()
        conditions = [
            {
                "type": kind,
                "status": "True" if kind in pressure else "False",
                "reason": f"Kubelet{'Has' if kind in pressure else 'HasNo'}{kind}",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": ready,
                "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
                "message": "kubelet is posting ready status"
                if ready == "True"
                else "container runtime is down",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        addresses = [{"type": "Hostname", "address": hostname or name}]
        if internal_ip:
            # Without one the Node reports no InternalIP, as some cloud nodes do.
            addresses.insert(0, {"type": "InternalIP", "address": internal_ip})
        status = {
            "addresses": addresses,
            "conditions": conditions,
            "nodeInfo": {
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "containerd://1.6.20",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": os.uname().release,
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "0" * 32,
                "systemUUID": name,
                "bootID": name,
            },
        }
        self.server.request(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, patch=True
        )

    def delete_node(self, name: str) -> None:
        self.server.request("DELETE", f"/api/v1/nodes/{name}")

    def pod(
        self,
        namespace: str,
        name: str,
        node: str,
        *,
        image: str = "registry.example.com/app:nydus",
        init: bool = False,
    ) -> None:
        spec: dict[str, Any] = {
            "nodeName": node,
            "containers": [{"name": "app", "image": image}],
        }
        if init:
            spec["initContainers"] = [{"name": "setup", "image": image}]
        self.server.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {"metadata": {"name": name, "labels": {"app": name}}, "spec": spec},
        )

    def pod_status(
        self,
        namespace: str,
        name: str,
        *,
        waiting: str = "",
        message: str = "",
        init_waiting: str = "",
        running: bool = False,
    ) -> None:
        """Write the status a kubelet reports: waiting with a reason, or running."""
        now = _now()
        state: dict[str, Any] = (
            {"running": {"startedAt": now}}
            if running
            else {
                "waiting": {
                    "reason": waiting or "ContainerCreating",
                    "message": message,
                }
            }
        )
        status: dict[str, Any] = {
            "phase": "Running" if running else "Pending",
            "hostIP": "10.0.0.1",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": running,
                    "restartCount": 0,
                    "image": "registry.example.com/app:nydus",
                    "imageID": "",
                    "state": state,
                }
            ],
        }
        if init_waiting:
            status["initContainerStatuses"] = [
                {
                    "name": "setup",
                    "ready": False,
                    "restartCount": 0,
                    "image": "registry.example.com/app:nydus",
                    "imageID": "",
                    "state": {"waiting": {"reason": init_waiting, "message": message}},
                }
            ]
            status["containerStatuses"][0]["state"] = {
                "waiting": {"reason": "PodInitializing"}
            }
        self.server.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            patch=True,
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        self.server.request(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0",
        )

    def event(
        self,
        namespace: str,
        pod: str,
        reason: str,
        message: str,
        *,
        kind: str = "Warning",
        count: int = 1,
    ) -> None:
        """Post an Event about a pod, as kubelet's event recorder does."""
        now = _now()
        self.server.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            {
                "metadata": {"generateName": f"{pod}."},
                "involvedObject": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod,
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": count,
                "source": {"component": "kubelet", "host": "node"},
                "firstTimestamp": now,
                "lastTimestamp": now,
            },
        )

    def grant(
        self, user: str, name: str, resources: list[str], namespace: str = ""
    ) -> None:
        """Let user get, list and watch resources (in namespace, or cluster-wide)."""
        kind = "Role" if namespace else "ClusterRole"
        base = "/apis/rbac.authorization.k8s.io/v1"
        scope = f"{base}/namespaces/{namespace}" if namespace else base
        rule = {
            "apiGroups": [""],
            "resources": resources,
            "verbs": ["get", "list", "watch"],
        }
        self.server.request(
            "POST",
            f"{scope}/{kind.lower()}s",
            {"metadata": {"name": name}, "rules": [rule]},
        )
        self.server.request(
            "POST",
            f"{scope}/{kind.lower()}bindings",
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": kind,
                    "name": name,
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": user,
                    }
                ],
            },
        )
