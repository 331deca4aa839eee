"""The cluster pods screen: recorded pods for the snapshot, a live API server after."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from doubles.recorded_kube import RecordedPodWatch
from test_kube_api import SANDBOX_ERROR
from test_screens import SIZE, make_app, settle
from testbed.kube import VIEWER_CONTEXT, VIEWER_USER, ClusterWriter, KubeApiServer
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from nydus_console.screens.kubepods import KubePodsScreen, cluster_source


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    """Let the app run until condition holds; fail after a generous bound."""
    for _ in range(600):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the pods screen did not reach the expected state")


def rows(screen: KubePodsScreen) -> list[str]:
    return [str(key.value) for key in screen.query_one(DataTable).rows]


def status(screen: KubePodsScreen) -> str:
    return str(screen.query_one("#kube-pods-status", Static).render())


async def open_recorded(pilot: Pilot[Any]) -> KubePodsScreen:
    await settle(pilot)
    screen = KubePodsScreen(lambda context: RecordedPodWatch(), "prod")
    await pilot.app.push_screen(screen)
    await wait_for(pilot, lambda: "watching" in status(screen))
    return screen


async def test_recorded_pods_grouped_by_node(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen = await open_recorded(pilot)
        assert rows(screen) == ["shop/init", "shop/sandbox", "shop/mount", "shop/pull"]
        table = screen.query_one(DataTable)
        assert str(table.get_cell("shop/sandbox", "node")) == "node-a"
        assert str(table.get_cell("shop/sandbox", "known")) == "missing-parent-sandbox"
        assert "4 pods failing with a Nydus cause on 2 nodes" in status(screen)
        await pilot.press("a")
        assert "shop/crash" in rows(screen)
        assert "shop/healthy" not in rows(screen)


async def test_detail_names_the_runbook(tmp_path: Path) -> None:
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        screen = await open_recorded(pilot)
        table = screen.query_one(DataTable)
        table.move_cursor(row=rows(screen).index("shop/sandbox"))
        await pilot.pause()
        detail = str(screen.query_one("#kube-pods-detail", Static).render())
        assert "FailedCreatePodSandBox" in detail
        assert "Pod sandbox: snapshot parent missing" in detail
        assert "nydus-console runbook show missing-parent-sandbox --node node-a" in (
            detail
        )


async def test_cursor_starts_on_the_first_row(tmp_path: Path) -> None:
    def reversed_watch(context: str) -> RecordedPodWatch:
        # The pods come last first, as a live watch may report them.
        watch = RecordedPodWatch()
        watch.pods.reverse()
        return watch

    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = KubePodsScreen(reversed_watch, "prod")
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: "watching" in status(screen))
        assert rows(screen) == ["shop/init", "shop/sandbox", "shop/mount", "shop/pull"]
        assert screen.query_one(DataTable).cursor_row == 0
        selected = screen.selected_pod()
        assert selected is not None and selected.key == "shop/init"
        # After the first list the cursor follows its pod.
        await pilot.press("down")
        await pilot.press("a")
        selected = screen.selected_pod()
        assert selected is not None and selected.key == "shop/sandbox"


def test_snapshot_kube_pods(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_recorded(pilot)
        table = screen.query_one(DataTable)
        table.move_cursor(row=rows(screen).index("shop/sandbox"))
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


@pytest.mark.kube
async def test_live_pod_appears_and_recovers(
    kube_apiserver: KubeApiServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_apiserver.kubeconfig))
    writer = ClusterWriter(kube_apiserver)
    namespace = f"s-{uuid.uuid4().hex[:8]}"
    writer.namespace(namespace)
    key = f"{namespace}/live"
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        screen = pilot.app.screen
        assert isinstance(screen, KubePodsScreen)
        await wait_for(pilot, lambda: "watching" in status(screen))
        writer.pod(namespace, "live", "node-l")
        writer.pod_status(namespace, "live")
        writer.event(namespace, "live", "FailedCreatePodSandBox", SANDBOX_ERROR)
        await wait_for(pilot, lambda: key in rows(screen))
        known = screen.query_one(DataTable).get_cell(key, "known")
        assert str(known) == "missing-parent-sandbox"
        writer.pod_status(namespace, "live", running=True)
        await wait_for(pilot, lambda: key not in rows(screen))
        # The viewer may not list pods cluster-wide: the status line says so.
        await pilot.press("c")
        assert screen.context == "nc-viewer"
        await wait_for(pilot, lambda: "permission denied" in status(screen))
        # Pods and events are read at once, so either denial may come first.
        assert re.search(
            r"may not list (pods|events) at the cluster scope", status(screen)
        )
        assert rows(screen) == []
        await pilot.press("escape")


@pytest.mark.kube
async def test_screen_reads_the_context_namespace_and_words_errors_with_keys(
    kube_apiserver: KubeApiServer, tmp_path: Path
) -> None:
    writer = ClusterWriter(kube_apiserver)
    namespace = f"v-{uuid.uuid4().hex[:8]}"
    writer.namespace(namespace)
    writer.grant(VIEWER_USER, "read-pods", ["pods", "events"], namespace)
    config = json.loads(kube_apiserver.kubeconfig.read_text())
    config["contexts"][1]["context"]["namespace"] = namespace
    # A context whose token the API server does not know.
    config["users"].append({"name": "stale", "user": {"token": "expired"}})
    config["contexts"].append(
        {"name": "stale", "context": {"cluster": "nc-testbed", "user": "stale"}}
    )
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = KubePodsScreen(
            cluster_source(str(path)), VIEWER_CONTEXT, [VIEWER_CONTEXT, "stale"]
        )
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: "watching" in status(screen))
        assert f"watching the pods of {VIEWER_CONTEXT} in namespace {namespace}" in (
            status(screen)
        )
        await pilot.press("c")
        await wait_for(pilot, lambda: "failed" in status(screen))
        assert "rejected the credentials of context stale" in status(screen)
        assert "press c to switch to the next context" in status(screen)
        assert "--context" not in status(screen)
        await pilot.press("escape")


async def test_unopened_screen_names_what_to_set_in_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    async with make_app(tmp_path).run_test(size=SIZE) as pilot:
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.press("p")
        await pilot.pause()
        (note,) = [n for n in pilot.app._notifications if n.severity == "error"]
        assert "Cluster pods not opened: no kubeconfig file at" in note.message
        assert "kubeconfig in the inventory's [kubernetes] table" in note.message
        assert "--kubeconfig" not in note.message
