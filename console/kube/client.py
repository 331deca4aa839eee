"""A blocking client of one cluster context, returning the API's JSON as dicts.

The `kubernetes` package is imported when the first client is built, not
when this module is imported. Objects come back as the API server's JSON
(camelCase keys), not as the library's model classes, which saves their
conversion and keeps fields the models do not know.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from nydus_console.kube.config import KubeConfig, load_kubeconfig
from nydus_console.kube.errors import KubeError, KubeErrorKind, api_error

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
# A watch request ends after this many seconds and is sent again, so that a
# stopped watch does not hold its thread for longer.
WATCH_SECONDS = 5


class KubeClient:
    """The API of one context of a kubeconfig. Every method blocks."""

    def __init__(self, config: KubeConfig, context: str | None = None) -> None:
        self.config = config
        self.context = config.pick(context)
        self.server = config.server_of(self.context)
        self._api: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, context: str | None = None
    ) -> KubeClient:
        return cls(load_kubeconfig(kubeconfig), context)

    def _core(self) -> Any:
        return self._apis()[0]

    def _apps(self) -> Any:
        return self._apis()[1]

    def _authz(self) -> Any:
        from kubernetes import client

        return client.AuthorizationV1Api(self._core().api_client)

    def _apis(self) -> tuple[Any, Any]:
        with self._lock:
            if self._api is None:
                self._api = self._build()
            return self._api

    def _build(self) -> tuple[Any, Any]:
        from kubernetes import client, config

        configuration = client.Configuration()
        # One retry, so that a request to an API server that is down fails
        # within seconds. The connection pool reads it when it is built.
        configuration.retries = 1
        # The library has no type hints; mypy --strict refuses untyped calls.
        factory: Any = config.new_client_from_config
        try:
            api_client = factory(
                config_file=self.config.search_path,
                context=self.context,
                persist_config=False,
                client_configuration=configuration,
            )
        except config.ConfigException as exc:
            raise KubeError(
                KubeErrorKind.CONFIG,
                f"context {self.context} in {self.config.describe()} cannot be "
                f"used: {exc}",
                "fix the context's cluster and user entries",
            ) from None
        return client.CoreV1Api(api_client), client.AppsV1Api(api_client)

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api[0].api_client.close()
                self._api = None

    # -- reads ------------------------------------------------------------------

    def list_nodes(self, label_selector: str = "") -> list[dict[str, Any]]:
        answer = self._call(
            "list nodes",
            lambda api: api.list_node(label_selector=label_selector),
        )
        return _items(answer)

    def list_pods(
        self, namespace: str = "", field_selector: str = ""
    ) -> dict[str, Any]:
        """Return the PodList (items and metadata.resourceVersion)."""
        if namespace:
            return self._call(
                f"list pods in namespace {namespace}",
                lambda api: api.list_namespaced_pod(
                    namespace, field_selector=field_selector
                ),
            )
        return self._call(
            "list pods",
            lambda api: api.list_pod_for_all_namespaces(field_selector=field_selector),
        )

    def list_events(
        self, namespace: str = "", field_selector: str = ""
    ) -> dict[str, Any]:
        """Return the EventList (items and metadata.resourceVersion)."""
        if namespace:
            return self._call(
                f"list events in namespace {namespace}",
                lambda api: api.list_namespaced_event(
                    namespace, field_selector=field_selector
                ),
            )
        return self._call(
            "list events",
            lambda api: api.list_event_for_all_namespaces(
                field_selector=field_selector
            ),
        )

    # -- workloads (apps/v1) -------------------------------------------------------

    def list_workloads(
        self, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """Return the Deployments or DaemonSets of a namespace with the labels."""
        plural = _plural(kind)
        answer = self._call(
            f"list {plural} in namespace {namespace}",
            lambda api: getattr(api, f"list_namespaced_{_method(kind)}")(
                namespace, label_selector=label_selector
            ),
            apps=True,
        )
        return _items(answer)

    def create_workload(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = str(body.get("kind", ""))
        return self._call(
            f"create {kind} in namespace {namespace}",
            lambda api: getattr(api, f"create_namespaced_{_method(kind)}")(
                namespace, body
            ),
            apps=True,
        )

    def delete_workload(self, kind: str, namespace: str, name: str) -> None:
        self._call(
            f"delete {kind} {namespace}/{name}",
            lambda api: getattr(api, f"delete_namespaced_{_method(kind)}")(
                name, namespace, propagation_policy="Background"
            ),
            apps=True,
        )

    # -- pods the console creates (node-shell pods) ------------------------------

    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name", ""))
        return self._call(
            f"create pod {namespace}/{name}",
            lambda api: api.create_namespaced_pod(namespace, body),
        )

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            f"read pod {namespace}/{name}",
            lambda api: api.read_namespaced_pod(name, namespace),
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(
            f"delete pod {namespace}/{name}",
            lambda api: api.delete_namespaced_pod(
                name, namespace, grace_period_seconds=0
            ),
        )

    def list_labelled_pods(
        self, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        answer = self._call(
            f"list pods in namespace {namespace}",
            lambda api: api.list_namespaced_pod(
                namespace, label_selector=label_selector
            ),
        )
        return _items(answer)

    def may(
        self, verb: str, resource: str, namespace: str, subresource: str = ""
    ) -> bool:
        """Ask the API server whether this user may `verb` the resource.

        A SelfSubjectAccessReview, which every authenticated user may send.
        """
        attributes = {"verb": verb, "resource": resource, "namespace": namespace}
        if subresource:
            attributes["subresource"] = subresource
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        answer = self._call(
            f"review access to {verb} {resource}",
            lambda api: api.create_self_subject_access_review(body),
            authz=True,
        )
        return bool((answer.get("status") or {}).get("allowed", False))

    def core_api(self) -> Any:
        """The CoreV1Api, for the websocket calls of the `stream` helper."""
        return self._core()

    def _call(
        self,
        what: str,
        request: Callable[[Any], Any],
        *,
        apps: bool = False,
        authz: bool = False,
    ) -> dict[str, Any]:
        api = self._authz() if authz else self._apps() if apps else self._core()
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = request_raw(api, request)
        except ApiException as exc:
            raise api_error(exc.status or 0, exc.body, self.context, what) from None
        except HTTPError as exc:
            raise self.unreachable(exc) from None
        document = json.loads(response.data or b"{}")
        return document if isinstance(document, dict) else {}

    def unreachable(self, exc: BaseException) -> KubeError:
        reason = getattr(exc, "reason", None) or exc
        return KubeError(
            KubeErrorKind.UNREACHABLE,
            f"cannot reach the API server {self.server} of context "
            f"{self.context}: {reason}",
            "check that the server runs and that this machine can reach it "
            "(VPN, proxy, firewall)",
        )

    # -- watch ------------------------------------------------------------------

    def watch(
        self,
        resource: str,
        resource_version: str,
        namespace: str = "",
        field_selector: str = "",
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (type, object) changes of "pods" or "events" after a version.

        Ends after WATCH_SECONDS (the caller watches again from the last
        version it saw). Raises WatchExpired when the version is too old
        (HTTP 410), so the caller must list again, and KubeError otherwise.
        """
        api = self._core()
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        call = _watch_call(api, resource, namespace)
        arguments: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "timeout_seconds": WATCH_SECONDS,
            "allow_watch_bookmarks": True,
            "_preload_content": False,
            "_request_timeout": (CONNECT_TIMEOUT, WATCH_SECONDS + READ_TIMEOUT),
        }
        if field_selector:
            arguments["field_selector"] = field_selector
        what = f"watch {resource}"
        try:
            response = call(**arguments)
            try:
                for line in _lines(response.stream(decode_content=True)):
                    yield _event(line, self.context, what)
            finally:
                response.release_conn()
        except ApiException as exc:
            if exc.status == 410:
                raise WatchExpired(KubeErrorKind.NOT_FOUND, f"{what}: 410") from None
            raise api_error(exc.status or 0, exc.body, self.context, what) from None
        except HTTPError as exc:
            raise self.unreachable(exc) from None


class WatchExpired(KubeError):
    """The watch's resource version is gone (HTTP 410): list again."""


# The apps/v1 kinds the console creates, by their method-name part.
_WORKLOAD_METHODS = {"Deployment": "deployment", "DaemonSet": "daemon_set"}


def _method(kind: str) -> str:
    try:
        return _WORKLOAD_METHODS[kind]
    except KeyError:
        raise ValueError(f"unsupported workload kind {kind!r}") from None


def _plural(kind: str) -> str:
    return f"{kind.lower()}s"


def _watch_call(api: Any, resource: str, namespace: str) -> Callable[..., Any]:
    if resource == "pods":
        if namespace:
            return lambda **kw: api.list_namespaced_pod(namespace, **kw)
        return lambda **kw: api.list_pod_for_all_namespaces(**kw)
    if resource == "events":
        if namespace:
            return lambda **kw: api.list_namespaced_event(namespace, **kw)
        return lambda **kw: api.list_event_for_all_namespaces(**kw)
    raise ValueError(f"cannot watch {resource!r}: use pods or events")


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a stream of chunks into its lines; a watch sends one event a line."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _event(line: bytes, context: str, what: str) -> tuple[str, dict[str, Any]]:
    event = json.loads(line)
    kind = str(event.get("type", ""))
    body = event.get("object") or {}
    if kind == "ERROR":
        code = int(body.get("code", 0) or 0)
        if code == 410:
            raise WatchExpired(KubeErrorKind.NOT_FOUND, f"{what}: 410 expired")
        raise api_error(code, json.dumps(body), context, what)
    return kind, body


def request_raw(api: Any, request: Callable[[Any], Any]) -> Any:
    """Run a list call with `_preload_content=False` and a timeout."""

    class _Raw:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            method = getattr(api, name)
            return lambda *args, **kwargs: method(
                *args,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                **kwargs,
            )

    return request(_Raw())


def _items(document: dict[str, Any]) -> list[dict[str, Any]]:
    items = document.get("items") or []
    return [item for item in items if isinstance(item, dict)]
