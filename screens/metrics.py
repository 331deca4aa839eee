"""Metrics screens: one node's daemons with sparklines, and every node side by side.

Both poll only while shown: a pushed-over or popped screen stops its timer,
and coming back polls at once. Polls run in one worker per screen; a poll
still running when the timer fires again is not doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Label, Sparkline, Static
from textual.worker import Worker, WorkerState

from nydus_console.metrics import units
from nydus_console.metrics.derive import (
    DaemonFigures,
    NodeFigures,
    SnapshotterFigures,
)
from nydus_console.metrics.model import DaemonSample, NodeSample
from nydus_console.metricscli import snapshotter_line
from nydus_console.screens.render import age_text

if TYPE_CHECKING:
    from nydus_console.metrics.service import FleetMetrics

INTERVAL_CHOICES = (2.0, 5.0, 10.0, 30.0, 60.0)
SEVERITY_LABELS = ("ok", "degraded", "failing", "unreachable")
SEVERITY_STYLES = ("green", "yellow", "bold red", "bold red")


class MetricsPolled(Message):
    """A metrics poll finished; `figures` has one entry per polled node."""

    def __init__(self, figures: list[NodeFigures]) -> None:
        super().__init__()
        self.figures = figures


class _PollingScreen(Screen[None]):
    """Polls some nodes' metrics on a timer while the screen is shown."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self._polling = False
        self.polled_at = 0.0

    @property
    def service(self) -> FleetMetrics:
        return self.app.metrics_service()  # type: ignore[attr-defined, no-any-return]

    @property
    def interval(self) -> float:
        return self.app.metrics_interval  # type: ignore[attr-defined, no-any-return]

    def nodes(self) -> list[str]:
        raise NotImplementedError

    def on_mount(self) -> None:
        self._start_timer()
        self.set_interval(1.0, self.update_summary)
        self.poll()

    def _start_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(self.interval, self.poll)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.poll()

    def poll(self) -> None:
        if self._polling:
            return
        self._polling = True
        self._poll_worker()

    @work(group="metrics", exit_on_error=False, description="poll metrics")
    async def _poll_worker(self) -> None:
        try:
            figures = await self.service.poll(self.nodes())
        finally:
            self._polling = False
        self.post_message(MetricsPolled(figures))

    @on(Worker.StateChanged)
    def poll_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "metrics" or event.state != WorkerState.ERROR:
            return
        self._polling = False
        self.app.notify(
            f"metrics poll failed: {event.worker.error}", severity="error", timeout=10
        )

    @on(MetricsPolled)
    def metrics_polled(self, message: MetricsPolled) -> None:
        self.polled_at = self.app.fleet.clock()  # type: ignore[attr-defined]
        self.show(message.figures)

    def show(self, figures: list[NodeFigures]) -> None:
        raise NotImplementedError

    def update_summary(self) -> None:
        raise NotImplementedError

    def age(self) -> str:
        if not self.polled_at:
            return "polling..."
        now = self.app.fleet.clock()  # type: ignore[attr-defined]
        return f"polled {age_text(self.polled_at, now)} ago, every {self.interval:g}s"

    def action_refresh(self) -> None:
        self.poll()

    def action_cycle_interval(self) -> None:
        current = self.interval
        later = [c for c in INTERVAL_CHOICES if c > current]
        chosen = later[0] if later else INTERVAL_CHOICES[0]
        self.app.metrics_interval = chosen  # type: ignore[attr-defined]
        self._start_timer()
        self.app.notify(f"metrics polled every {chosen:g}s")
        self.update_summary()


# -- one node --------------------------------------------------------------------

DAEMON_COLUMNS = (
    ("Daemon", "id", 22),
    ("State", "state", 8),
    ("PID", "pid", 7),
    ("Read/s", "read", 12),
    ("Errors", "errors", 7),
    ("p50", "p50", 9),
    ("p99", "p99", 9),
    ("Hit", "hit", 5),
    ("Infl", "inflight", 4),
    ("Hung", "hung", 4),
    ("RSS", "rss", 10),
    ("Image", "image", None),
)


def daemon_cells(daemon: DaemonSample, fig: DaemonFigures) -> list[Text]:
    read = "restarted" if fig.restarted else units.per_second(fig.read_bps)
    state_style = "green" if daemon.state == "RUNNING" else "yellow"
    hung_style = "bold red" if fig.hung_io else ""
    error_style = "bold red" if (fig.read_error_ratio or 0) > 0 else ""
    return [
        Text(daemon.id, style="red" if daemon.errors else ""),
        Text(daemon.state or "-", style=state_style if daemon.state else "dim"),
        Text(str(daemon.pid or "-")),
        Text(read),
        Text(units.percent(fig.read_error_ratio), style=error_style),
        Text(units.latency_bound(fig.latency_p50_us)),
        Text(units.latency_bound(fig.latency_p99_us)),
        Text(units.percent(fig.cache_hit_ratio, 0)),
        Text(units.count(fig.inflight)),
        Text(units.count(fig.hung_io), style=hung_style),
        Text(units.kib(fig.rss_kb)),
        Text(", ".join(daemon.images) or daemon.mountpoint or "-"),
    ]


class NodeMetricsScreen(_PollingScreen):
    """The daemons of one node, and sparklines for the highlighted one."""

    BINDING_GROUP_TITLE = "Node metrics"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="metrics.back"),
        Binding("r", "refresh", "Poll now", id="metrics.refresh"),
        Binding("i", "cycle_interval", "Interval", id="metrics.interval"),
    ]

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def nodes(self) -> list[str]:
        return [self.node]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="metrics-summary")
        yield DataTable(id="metrics-daemons", cursor_type="row")
        with Horizontal(id="metrics-detail"):
            with Vertical(id="metrics-sparks"):
                for key, title in SPARKS:
                    yield Label(title, id=f"spark-{key}-label")
                    yield Sparkline([], id=f"spark-{key}")
            with VerticalScroll(id="metrics-text-scroll"):
                yield Static(id="metrics-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.node} metrics"
        table = self.query_one(DataTable)
        for label, key, width in DAEMON_COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        super().on_mount()
        self.update_summary()

    @property
    def sample(self) -> NodeSample | None:
        return self.service.samples.get(self.node)

    @property
    def figures(self) -> NodeFigures | None:
        return self.service.figures.get(self.node)

    def show(self, figures: list[NodeFigures]) -> None:
        sample, node = self.sample, self.figures
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        if sample is not None and node is not None and not sample.error:
            for daemon in sample.daemons:
                cells = daemon_cells(daemon, node.daemons[daemon.id])
                table.add_row(*cells, key=daemon.id)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.update_summary()
        self.show_detail()

    def update_summary(self) -> None:
        parts = [f"[b]{escape(self.node)}[/b]", escape(self.age())]
        node = self.figures
        if node is not None:
            source = "Prometheus" if node.source == "prometheus" else "node sockets"
            parts.insert(1, f"from {source}")
            if not node.error:
                parts.append(escape(snapshotter_line(node)))
        self.query_one("#metrics-summary", Static).update("  |  ".join(parts))

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    @on(DataTable.RowHighlighted, "#metrics-daemons")
    def row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        daemon_id = self.highlighted()
        for key, title in SPARKS:
            series = self.service.history.spark(self.node, daemon_id or "", key)
            self.query_one(f"#spark-{key}", Sparkline).data = series
            self.query_one(f"#spark-{key}-label", Label).update(
                spark_title(key, title, series)
            )
        self.query_one("#metrics-text", Static).update(
            detail_markup(self.sample, self.figures, daemon_id)
        )


SPARKS = (
    ("read_bps", "Read throughput"),
    ("latency_p99_us", "p99 latency bound"),
    ("cache_hit_ratio", "Cache hit ratio"),
)


SPARK_FORMATS: dict[str, Callable[[float | None], str]] = {
    "read_bps": units.per_second,
    "latency_p99_us": units.latency_bound,
    "cache_hit_ratio": units.percent,
}


def spark_title(key: str, title: str, series: list[float]) -> str:
    """Return the label over a sparkline: the latest value and the highest shown."""
    if not series:
        return f"{title}: no samples yet"
    show = SPARK_FORMATS[key]
    return f"{title}: {show(series[-1])} (highest {show(max(series))})"


def detail_markup(
    sample: NodeSample | None, node: NodeFigures | None, daemon_id: str | None
) -> str:
    if sample is None or node is None:
        return "Reading the node's sockets..."
    if sample.error:
        return f"[b red]No metrics[/]: {escape(sample.error)}"
    lines: list[str] = []
    daemon = next((d for d in sample.daemons if d.id == daemon_id), None)
    if daemon is not None:
        lines += _daemon_lines(daemon, node.daemons[daemon.id])
    elif not sample.daemons and not sample.problems:
        lines.append("No nydusd daemons run on this node.")
    lines += [f"[red]problem[/] {escape(text)}" for text in sample.problems]
    lines += [f"[dim]note[/dim] {escape(note)}" for note in sample.notes]
    return "\n".join(lines)


def _daemon_lines(daemon: DaemonSample, fig: DaemonFigures) -> list[str]:
    lines = [
        f"[b]{escape(daemon.id)}[/b]  nydusd {escape(daemon.version or '-')}  "
        f"backend {escape(daemon.backend_type or '-')}",
        f"API socket {escape(daemon.api_socket or '-')}",
        f"reads {units.count(fig.read_ops)}/s, average "
        f"{units.duration_us(fig.read_avg_latency_us)}, p90 "
        f"{units.latency_bound(fig.latency_p90_us)}",
        f"backend {units.per_second(fig.backend_bps)}, errors "
        f"{units.percent(fig.backend_error_ratio)}, average "
        f"{_ms(fig.backend_avg_latency_ms)}",
        f"prefetch {units.size(fig.prefetch_bytes)} in "
        f"{units.count(fig.prefetch_requests)} requests, all data ready: "
        f"{_yes_no(fig.data_all_ready)}",
    ]
    if fig.restarted:
        lines.append("[yellow]restarted since the last poll: rates start again[/]")
    for path, error in daemon.errors.items():
        lines.append(f"[red]{escape(path)}[/]: {escape(error)}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


# -- the fleet ---------------------------------------------------------------------

FLEET_COLUMNS = (
    ("Node", "node", 22),
    ("Status", "status", 11),
    ("Daemons", "daemons", 7),
    ("Read/s", "read", 12),
    ("Errors", "errors", 7),
    ("p99", "p99", 9),
    ("Hung", "hung", 4),
    ("RSS", "rss", 10),
    ("Snap CPU", "cpu", 8),
    ("Snap mem", "memory", 10),
    ("Note", "note", None),
)

SortKey = Callable[[NodeFigures], tuple[float, ...]]
SORTS: tuple[tuple[str, SortKey], ...] = (
    ("worst first", lambda f: (-f.severity(), -(f.read_bps or 0))),
    ("read/s", lambda f: (-(f.read_bps or 0),)),
    ("errors", lambda f: (-(f.worst("read_error_ratio") or 0),)),
    ("p99", lambda f: (-(f.worst("latency_p99_us") or 0),)),
    ("RSS", lambda f: (-(f.rss_kb or 0),)),
)


def fleet_cells(sample: NodeSample | None, fig: NodeFigures) -> list[Text]:
    severity = fig.severity()
    snap = fig.snapshotter
    collected = snap is not None and snap.collected
    notes = (sample.problems + sample.notes) if sample else []
    note = fig.error or (notes[0] if notes else "")
    return [
        Text(fig.node),
        Text(SEVERITY_LABELS[severity], style=SEVERITY_STYLES[severity]),
        Text("-" if fig.error else str(len(fig.daemons))),
        Text(units.per_second(fig.read_bps)),
        Text(units.percent(fig.worst("read_error_ratio"))),
        Text(units.latency_bound(fig.worst("latency_p99_us"))),
        Text(units.count(fig.hung_io)),
        Text(units.kib(fig.rss_kb)),
        Text(
            units.percent((snap.cpu_percent or 0) / 100) if collected and snap else "-"
        ),
        Text(units.kib(snap.memory_kb) if collected and snap else "-"),
        Text(note[:160], style="dim"),
    ]


def _snap_cpu(snap: SnapshotterFigures | None) -> str:
    if snap is None or snap.cpu_percent is None:
        return "-"
    return units.percent(snap.cpu_percent / 100)


class FleetMetricsScreen(_PollingScreen):
    """A row per node, worst first; Enter opens the node's metrics."""

    BINDING_GROUP_TITLE = "Fleet metrics"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="fleet_metrics.back"),
        Binding("enter", "open_node", "Open", id="fleet_metrics.open"),
        Binding("s", "cycle_sort", "Sort", id="fleet_metrics.sort"),
        Binding("r", "refresh", "Poll now", id="fleet_metrics.refresh"),
        Binding("i", "cycle_interval", "Interval", id="fleet_metrics.interval"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_index = 0

    def nodes(self) -> list[str]:
        return list(self.app.fleet.specs)  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="metrics-summary")
        yield DataTable(id="metrics-fleet", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "fleet metrics"
        table = self.query_one(DataTable)
        for label, key, width in FLEET_COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        super().on_mount()
        self.update_summary()

    def show(self, figures: list[NodeFigures]) -> None:
        table = self.query_one(DataTable)
        selected = self.highlighted()
        table.clear()
        service = self.service
        ordered = sorted(service.figures.values(), key=SORTS[self.sort_index][1])
        for fig in ordered:
            table.add_row(
                *fleet_cells(service.samples.get(fig.node), fig), key=fig.node
            )
        keys = [fig.node for fig in ordered]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        self.update_summary()

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    def update_summary(self) -> None:
        service = self.service
        source = (
            "Prometheus " + escape(service.prometheus_url)
            if service.source == "prometheus"
            else "each node's sockets"
        )
        parts = [
            f"{len(self.nodes())} nodes from {source}",
            f"sorted {SORTS[self.sort_index][0]}",
            escape(self.age()),
        ]
        self.query_one("#metrics-summary", Static).update("  |  ".join(parts))

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.show([])

    def action_open_node(self) -> None:
        node = self.highlighted()
        if node is not None:
            self.app.push_screen(NodeMetricsScreen(node))

    @on(DataTable.RowSelected, "#metrics-fleet")
    def row_selected(self) -> None:
        self.action_open_node()
