"""Cluster pods screen: pods failing with Nydus errors, live, grouped by node.

A thread worker follows the pods and their events (console/kube/watch.py)
and posts each change. The table keeps one row per failing pod, nodes in
name order. The pane below shows the selected pod's status and events, and
the known failures they match with the runbook.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, Protocol

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from nydus_console.kube.errors import KubeError
from nydus_console.kube.pods import UNSCHEDULED, PodReport, pod_findings
from nydus_console.kube.watch import PodUpdate
from nydus_console.screens.render import status_text

COLUMNS = (
    ("node", "Node"),
    ("pod", "Pod"),
    ("status", "Status"),
    ("ready", "Ready"),
    ("known", "Known failure"),
)


class PodSource(Protocol):
    """The source of pod updates: PodWatch, or recorded updates in tests."""

    def updates(self) -> Iterator[PodUpdate]: ...

    def stop(self) -> None: ...


class PodChanged(Message):
    """The watch of a context reported a change (or an error) of its pods."""

    def __init__(self, update: PodUpdate, context: str) -> None:
        super().__init__()
        self.update = update
        self.context = context


def shown(pod: PodReport, include_all: bool) -> bool:
    """Return whether the pod gets a row: failing, and nydus-related unless
    include_all."""
    return pod.failing and (pod.nydus_related or include_all)


class KubePodsScreen(Screen[None]):
    """Failing pods of the cluster, updated as the API server reports changes.

    `open_source(context)` returns the watch of a kubeconfig context; `c`
    switches to the next of `contexts`.
    """

    BINDING_GROUP_TITLE = "Cluster pods"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="kube_pods.back"),
        Binding("a", "toggle_all", "All failing", id="kube_pods.all"),
        Binding("c", "next_context", "Next context", id="kube_pods.context"),
    ]

    def __init__(
        self,
        open_source: Callable[[str], PodSource],
        context: str,
        contexts: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.open_source = open_source
        self.context = context
        self.contexts = list(contexts) or [context]
        self.include_all = False
        self.pods: dict[str, PodReport] = {}
        self.status_line = ""
        # Until the first list is read the cursor stays on the first row;
        # after it, it follows its pod while rows come and go.
        self.synced = False
        self._source: PodSource | None = None
        self._lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="kube-pods-status")
        yield DataTable(id="kube-pods-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="kube-pods-detail-scroll"):
            yield Static(id="kube-pods-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self._start()

    def on_unmount(self) -> None:
        self._stop_source(closing=True)

    def _start(self) -> None:
        """Follow the pods of self.context, from an empty table."""
        self._stop_source()
        self.sub_title = f"cluster pods: {self.context}"
        self.status_line = f"reading the pods of {self.context}…"
        self.synced = False
        self.pods.clear()
        self.rebuild()
        self._show_status()
        self._follow(self.context)

    def _stop_source(self, closing: bool = False) -> None:
        with self._lock:
            if self._source is not None:
                self._source.stop()
            self._source = None
            if closing:
                # No context is shown any more, so a watch that opens late
                # stops at once and its messages are dropped.
                self.context = ""

    @work(
        thread=True,
        group="kube-pods",
        exclusive=True,
        exit_on_error=False,
        name="follow cluster pods",
    )
    def _follow(self, context: str) -> None:
        try:
            source = self.open_source(context)
        except KubeError as error:
            self.post_message(PodChanged(PodUpdate("error", error=error), context))
            return
        with self._lock:
            # The screen closed or switched context while the watch opened.
            if context != self.context:
                source.stop()
            else:
                self._source = source
        for update in source.updates():
            self.post_message(PodChanged(update, context))

    def action_next_context(self) -> None:
        if len(self.contexts) < 2:
            self.notify(f"{self.context} is the only context of the kubeconfig")
            return
        position = (
            self.contexts.index(self.context) if self.context in self.contexts else -1
        )
        self.context = self.contexts[(position + 1) % len(self.contexts)]
        self._start()

    # -- updates --------------------------------------------------------------

    @on(PodChanged)
    def pod_changed(self, message: PodChanged) -> None:
        if message.context != self.context:
            return  # a late change of the context shown before
        update = message.update
        if update.kind == "error":
            self.status_line = f"reading the cluster failed: {error_text(update)}"
        elif update.kind == "synced":
            self.status_line = f"watching the pods of {self.context}{self._where()}"
            self.synced = True
        elif update.pod is not None:
            self._apply(update)
        self._show_status()

    def _where(self) -> str:
        """Return " in namespace shop" when the watch reads one namespace."""
        with self._lock:
            namespace = getattr(self._source, "namespace", "")
        return f" in namespace {namespace}" if namespace else ""

    def _apply(self, update: PodUpdate) -> None:
        pod = update.pod
        assert pod is not None
        if update.kind == "deleted":
            self.pods.pop(pod.key, None)
        else:
            self.pods[pod.key] = pod
        self.rebuild()

    def _show_status(self) -> None:
        rows = self.visible_pods()
        nodes = len({p.node for p in rows})
        scope = "failing" if self.include_all else "failing with a Nydus cause"
        text = f"{self.status_line}. {len(rows)} pods {scope} on {nodes} nodes"
        self.query_one("#kube-pods-status", Static).update(escape(text))

    def visible_pods(self) -> list[PodReport]:
        pods = [p for p in self.pods.values() if shown(p, self.include_all)]
        return sorted(pods, key=lambda p: (not p.node, p.node, p.key))

    def rebuild(self) -> None:
        """Redraw every row, keeping the cursor on the same pod."""
        table = self.query_one(DataTable)
        current = self.selected_pod() if self.synced else None
        table.clear()
        for pod in self.visible_pods():
            known = pod.signatures[0] if pod.signatures else "-"
            status = "fail" if pod.signatures else "warn"
            table.add_row(
                Text(pod.node or UNSCHEDULED),
                Text(pod.key),
                status_text(status).append(f" {pod.status}"),
                Text(pod.ready),
                Text(known),
                key=pod.key,
            )
        if current is not None and current.key in self.pods:
            keys = [p.key for p in self.visible_pods()]
            if current.key in keys:
                table.move_cursor(row=keys.index(current.key))
        self.show_detail()

    def selected_pod(self) -> PodReport | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.pods.get(str(key))

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        pod = self.selected_pod()
        detail = self.query_one("#kube-pods-detail", Static)
        detail.update(detail_text(pod) if pod is not None else "")

    def action_toggle_all(self) -> None:
        self.include_all = not self.include_all
        self.rebuild()
        self._show_status()


def error_text(update: PodUpdate) -> str:
    """The error of an update, its next step worded with the screen's keys."""
    error = update.error
    return error.screen_text() if error is not None else "unknown error"


def detail_text(pod: PodReport) -> Text:
    """Return the pod's lines as kubectl shows them, then each known failure."""
    text = Text()
    text.append(f"{pod.key} on {pod.node or UNSCHEDULED}\n", style="bold")
    for line in pod.lines()[1:]:
        text.append(f"  {line}\n")
    for finding in pod_findings(pod):
        text.append("\n")
        text.append_text(status_text(str(finding.status)))
        text.append(f" {finding.title}: {finding.message}\n")
        if finding.next_step:
            text.append(f"  next step: {finding.next_step}\n")
        if finding.runbook:
            node = pod.node or "NODE"
            text.append(
                f"  runbook: nydus-console runbook show {finding.runbook} "
                f"--node {node}\n"
            )
    return text


def cluster_source(kubeconfig: str) -> Callable[[str], PodSource]:
    """Return a factory of PodWatch per context of the kubeconfig (blocking).

    Each watch reads its context's namespace, or every namespace when the
    context names none.
    """

    def open_watch(context: str) -> PodSource:
        from nydus_console.kube.client import KubeClient
        from nydus_console.kube.watch import PodWatch

        client = KubeClient.from_kubeconfig(kubeconfig or None, context or None)
        return PodWatch(client, client.config.namespace_of(client.context))

    return open_watch
