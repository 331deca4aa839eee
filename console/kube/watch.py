"""Live pod updates: list pods and pod events, then follow their changes.

`PodWatch.updates()` blocks and yields a `PodUpdate` whenever a pod or one of
its events changes, with the pod's report computed again (its status,
events and the signatures its lines match). Two threads read the pod and the
event streams; each watch request ends after a few seconds and is sent again
from the last version seen, and an expired version (HTTP 410) lists again.
`stop()` ends the iteration from any thread, within about a second.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nydus_console.diagnose import SignatureMatcher, default_matcher
from nydus_console.kube.client import KubeClient, WatchExpired
from nydus_console.kube.errors import KubeError
from nydus_console.kube.pods import (
    PodReport,
    attach_events,
    event_key,
    match_pod,
    parse_pod,
)

POLL_SECONDS = 0.5
RETRY_SECONDS = 2.0
EVENT_SELECTOR = "involvedObject.kind=Pod"


@dataclass
class PodUpdate:
    """What changed: `kind` is "synced" (the first list is read), "changed",
    "deleted" or "error" (then `error` says why; the watch keeps trying)."""

    kind: str
    pod: PodReport | None = None
    error: KubeError | None = None


class PodWatch:
    """Follow the pods (of one namespace, or all) and their events."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str = "",
        matcher: SignatureMatcher | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.matcher = matcher or default_matcher()
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._events: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def reports(self) -> list[PodReport]:
        """The current report of every pod known to the watch."""
        return [self._report(key) for key in sorted(self._pods)]

    def updates(self) -> Iterator[PodUpdate]:
        """Yield updates until stop(); the first list's pods come as "changed"."""
        readers = [
            threading.Thread(
                target=self._follow,
                args=(resource,),
                daemon=True,
                name=f"kube-watch-{resource}",
            )
            for resource in ("pods", "events")
        ]
        for reader in readers:
            reader.start()
        synced: set[str] = set()
        while not self._stop.is_set():
            try:
                resource, kind, body = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if kind == "ERROR":
                yield PodUpdate("error", error=body)
                continue
            yield from self._apply(resource, kind, body)
            if kind == "LISTED" and resource not in synced:
                synced.add(resource)
                if len(synced) == 2:
                    yield PodUpdate("synced")

    # -- readers (threads) ------------------------------------------------------

    def _follow(self, resource: str) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list(resource)
                version = self._watch(resource, version)
            except WatchExpired:
                version = ""
            except KubeError as error:
                self._queue.put((resource, "ERROR", error))
                self._stop.wait(RETRY_SECONDS)

    def _list(self, resource: str) -> str:
        if resource == "pods":
            document = self.client.list_pods(self.namespace)
        else:
            document = self.client.list_events(self.namespace, EVENT_SELECTOR)
        self._queue.put((resource, "LISTED", document.get("items") or []))
        return str((document.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, resource: str, version: str) -> str:
        selector = EVENT_SELECTOR if resource == "events" else ""
        for kind, body in self.client.watch(
            resource, version, self.namespace, selector
        ):
            version = str((body.get("metadata") or {}).get("resourceVersion", version))
            if kind != "BOOKMARK":
                self._queue.put((resource, kind, body))
            if self._stop.is_set():
                break
        return version

    # -- state --------------------------------------------------------------------

    def _apply(self, resource: str, kind: str, body: Any) -> Iterator[PodUpdate]:
        if resource == "pods":
            return self._apply_pod(kind, body)
        return self._apply_event(kind, body)

    def _apply_pod(self, kind: str, body: Any) -> Iterator[PodUpdate]:
        if kind == "LISTED":
            gone = set(self._pods)
            self._pods = {_pod_key(item): item for item in body}
            for key in sorted(gone - set(self._pods)):
                yield PodUpdate("deleted", self._report_of(key, {}))
            for key in sorted(self._pods):
                yield PodUpdate("changed", self._report(key))
            return
        key = _pod_key(body)
        if kind == "DELETED":
            self._pods.pop(key, None)
            self._events.pop(key, None)
            yield PodUpdate("deleted", self._report_of(key, body))
            return
        self._pods[key] = body
        yield PodUpdate("changed", self._report(key))

    def _apply_event(self, kind: str, body: Any) -> Iterator[PodUpdate]:
        if kind == "LISTED":
            self._events = {}
            for item in body:
                self._store_event(item)
            for key in sorted(k for k in self._events if k in self._pods):
                yield PodUpdate("changed", self._report(key))
            return
        key = self._store_event(body, deleted=kind == "DELETED")
        if key in self._pods:
            yield PodUpdate("changed", self._report(key))

    def _store_event(
        self, body: dict[str, Any], *, deleted: bool = False
    ) -> tuple[str, str]:
        key = event_key(body)
        uid = str((body.get("metadata") or {}).get("uid", ""))
        events = self._events.setdefault(key, {})
        if deleted:
            events.pop(uid, None)
        else:
            events[uid] = body
        return key

    def _report(self, key: tuple[str, str]) -> PodReport:
        return self._report_of(key, self._pods[key])

    def _report_of(self, key: tuple[str, str], raw: dict[str, Any]) -> PodReport:
        if not raw:
            raw = {"metadata": {"namespace": key[0], "name": key[1]}}
        report = parse_pod(raw)
        attach_events([report], self._events.get(key, {}).values())
        match_pod(report, self.matcher)
        return report


def _pod_key(body: dict[str, Any]) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
