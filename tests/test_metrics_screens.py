"""Pilot and snapshot tests of the node and fleet metrics screens.

Metrics polls replay samples recorded from the booted test nodes
(tests/samples/metrics): nc-node1 and nc-node2 run a snapshotter with one
nydusd and its Prometheus endpoint on; nc-node3 has no running snapshotter.
nc-node4 and nc-node5 are unreachable, as in the fleet screen tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doubles.recorded_metrics import RecordedMetrics, load_recorded_metrics
from factbuilder import SAMPLES
from test_screens import SIZE, make_fleet, quiet, settle
from textual.pilot import Pilot
from textual.widgets import DataTable, Sparkline, Static

from nydus_console.audit import AuditLog
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.help import HelpScreen
from nydus_console.screens.metrics import FleetMetricsScreen, NodeMetricsScreen

RECORDED = load_recorded_metrics(SAMPLES / "metrics")


def make_app(tmp_path: Path) -> tuple[NydusConsoleApp, RecordedMetrics]:
    fleet = make_fleet(tmp_path)
    metrics = RecordedMetrics(fleet, RECORDED)
    app = NydusConsoleApp(
        fleet.inventory,
        refresh_seconds=0,
        fleet=fleet,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        metrics=metrics,
    )
    return app, metrics


async def open_node_metrics(pilot: Pilot[Any], metrics: RecordedMetrics) -> None:
    await settle(pilot)
    # Two polls before the screen's own, so rates have two earlier samples.
    await metrics.poll(["nc-node1"])
    await metrics.poll(["nc-node1"])
    pilot.app.open_metrics("nc-node1")  # type: ignore[attr-defined]
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def cell(app: NydusConsoleApp, row: str, column: str) -> str:
    table = app.screen.query_one(DataTable)
    return str(table.get_cell(row, column))


async def test_node_metrics_show_the_recorded_daemon(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    daemon = RECORDED["nc-node1"][0].daemons[0]
    async with app.run_test(size=SIZE) as pilot:
        await open_node_metrics(pilot, metrics)
        assert isinstance(app.screen, NodeMetricsScreen)
        assert cell(app, daemon.id, "state") == "RUNNING"
        assert cell(app, daemon.id, "pid") == str(daemon.pid)
        assert cell(app, daemon.id, "read").endswith("KiB/s")
        assert cell(app, daemon.id, "p99").startswith("≤")
        summary = str(app.screen.query_one("#metrics-summary", Static).render())
        assert "snapshotter: cpu" in summary
        assert "memory" in summary


async def test_sparklines_grow_with_each_poll(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_node_metrics(pilot, metrics)
        spark = app.screen.query_one("#spark-read_bps", Sparkline)
        before = len(list(spark.data or []))
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(list(spark.data or [])) == before + 1


async def test_node_without_snapshotter_says_why(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_metrics("nc-node3")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert table.row_count == 0
        detail = str(app.screen.query_one("#metrics-text", Static).render())
        assert "system.sock does not exist on nc-node3" in detail


async def test_fleet_metrics_put_the_worst_first(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, FleetMetricsScreen)
        table = app.screen.query_one(DataTable)
        rows = [str(key.value) for key in table.rows]
        assert sorted(rows[:2]) == ["nc-node4", "nc-node5"]
        assert rows[2] == "nc-node3"
        assert sorted(rows[3:]) == ["nc-node1", "nc-node2"]
        assert cell(app, "nc-node4", "status") == "unreachable"
        assert cell(app, "nc-node3", "status") == "degraded"
        assert cell(app, "nc-node1", "status") == "ok"
        assert "refused" in cell(app, "nc-node4", "note")


async def test_enter_opens_the_node_and_escape_returns(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_metrics()
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("nc-node2"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeMetricsScreen)
        assert app.screen.node == "nc-node2"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetMetricsScreen)


async def test_hidden_screen_stops_polling(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    app.metrics_interval = 0.1
    replay = metrics.replays["nc-node1"]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_metrics("nc-node1")
        await pilot.pause(0.5)
        assert replay.reads >= 2
        app.push_screen(HelpScreen(app.screen))
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        hidden = replay.reads
        await pilot.pause(0.6)
        assert replay.reads == hidden
        app.pop_screen()
        await pilot.pause(0.3)
        assert replay.reads > hidden


async def test_sort_cycles_and_keeps_the_cursor(tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_metrics()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetMetricsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("nc-node1"))
        await pilot.press("s")
        summary = str(screen.query_one("#metrics-summary", Static).render())
        assert "sorted read/s" in summary
        assert screen.highlighted() == "nc-node1"


def test_snapshot_node_metrics(snap_compare: Any, tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_node_metrics(pilot, metrics)
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_fleet_metrics(snap_compare: Any, tmp_path: Path) -> None:
    app, metrics = make_app(tmp_path)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await metrics.poll()
        pilot.app.open_metrics()  # type: ignore[attr-defined]
        await pilot.app.workers.wait_for_complete()
        quiet(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

