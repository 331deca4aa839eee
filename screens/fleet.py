"""Fleet screen: one row per node, updated as each node's probe finishes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from nydus_console.fleet import NodeReport
from nydus_console.screens.render import STATUS_RANK, age_text, status_text
from nydus_console.screens.textbox import TextBox

COLUMNS = (
    ("node", "Node"),
    ("address", "Address"),
    ("status", "Status"),
    ("service", "Service"),
    ("snapshotter", "Snapshotter"),
    ("nydusd", "nydusd"),
    ("containerd", "containerd"),
    ("fs_driver", "Driver"),
    ("daemons", "Daemons"),
    ("age", "Age"),
    ("worst", "Worst finding"),
)
SORT_MODES = ("status", "name", "age")
SUMMARY_COLUMNS = (
    "service",
    "snapshotter",
    "nydusd",
    "containerd",
    "fs_driver",
    "daemons",
)
# Seconds between a probe result and the redraw that shows it, so that a burst
# of results is drawn once.
FLUSH_DELAY = 0.2
# Seconds between updates of the Age column.
AGE_INTERVAL = 5.0


class FleetScreen(Screen[None]):
    """Every node with its overall status and worst finding."""

    BINDING_GROUP_TITLE = "Fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", id="fleet.refresh"),
        # A priority binding runs before the next keys are handed out, so a
        # fast-typed "/name" lands in the filter box.
        Binding(
            "slash",
            "filter",
            "Filter",
            key_display="/",
            priority=True,
            id="fleet.filter",
        ),
        Binding("s", "cycle_sort", "Sort", id="fleet.sort"),
        Binding("a", "toggle_auto", "Auto-refresh", id="fleet.auto_refresh"),
        Binding("m", "metrics", "Metrics", id="fleet.metrics"),
        Binding("D", "drift", "Config drift", id="fleet.drift"),
        Binding("p", "kube_pods", "Cluster pods", show=False, id="fleet.kube_pods"),
        Binding("space", "toggle_mark", "Mark", id="fleet.mark"),
        Binding("b", "runbook", "Runbook", id="fleet.runbook"),
        Binding("l", "logs", "Logs", id="fleet.logs"),
        Binding(
            "escape",
            "clear_filter",
            "Clear filter",
            show=False,
            id="fleet.clear_filter",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.sort_mode = SORT_MODES[0]
        self._pending: set[str] = set()
        self._flush_timer: Timer | None = None
        # The text of every cell as last drawn, per node, to skip no-op updates.
        self._shown: dict[str, list[str]] = {}
        # Nodes marked for a runbook run, kept while they are filtered out.
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="fleet-status")
        yield TextBox(
            placeholder="filter: name, address, status or finding", id="fleet-filter"
        )
        yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        # The highlighted node's worst finding in full: on a narrow terminal
        # the table's last column is cut off or clipped.
        yield Static(id="fleet-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.rebuild()
        self.set_interval(AGE_INTERVAL, self.update_ages)
        table.focus()

    # -- rows -----------------------------------------------------------------

    def reports(self) -> list[NodeReport]:
        return list(self.app.fleet.reports.values())  # type: ignore[attr-defined]

    def visible_reports(self) -> list[NodeReport]:
        needle = self.filter_text.lower()
        shown = [r for r in self.reports() if needle in row_search_text(r)]
        return sorted(shown, key=self.sort_key)

    def sort_key(self, report: NodeReport) -> tuple[object, ...]:
        if self.sort_mode == "name":
            return (report.spec.name,)
        if self.sort_mode == "age":
            return (report.probed_at or float("inf"), report.spec.name)
        return (STATUS_RANK.get(report.status, 9), report.spec.name)

    def rebuild(self) -> None:
        """Redraw every row, keeping the cursor on the same node."""
        table = self.query_one(DataTable)
        # Follow the selected node only once the operator has moved off the top
        # row; until then the cursor stays on the worst node.
        current = self.selected_node() if table.cursor_row > 0 else None
        table.clear()
        self._shown.clear()
        now = self.now()
        for report in self.visible_reports():
            cells = row_cells(report, now, report.spec.name in self.marked)
            table.add_row(*cells, key=report.spec.name)
            self._shown[report.spec.name] = [str(cell) for cell in cells]
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))
        self.update_status_line()
        self.update_detail()

    def update_report(self, report: NodeReport) -> None:
        """Queue a node's new report; the table takes queued reports in batches.

        With many nodes, reports arrive in bursts. Redrawing once per burst
        instead of once per report keeps the screen's CPU use low.
        """
        self._pending.add(report.spec.name)
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Apply queued reports: cells in place, or a redraw if the order changed."""
        self._flush_timer = None
        pending, self._pending = self._pending, set()
        table = self.query_one(DataTable)
        order = [report.spec.name for report in self.visible_reports()]
        if order != [str(key.value) for key in table.rows]:
            self.rebuild()
            return
        reports = self.app.fleet.reports  # type: ignore[attr-defined]
        now = self.now()
        for name in pending & set(order):
            self.update_row(reports[name], now)
        self.update_status_line()
        self.update_detail()

    def update_row(self, report: NodeReport, now: float) -> None:
        """Change only the cells whose text changed."""
        table = self.query_one(DataTable)
        name = report.spec.name
        cells = row_cells(report, now, name in self.marked)
        shown = self._shown.get(name, [])
        for index, ((key, _), value) in enumerate(zip(COLUMNS, cells, strict=True)):
            if index >= len(shown) or shown[index] != str(value):
                table.update_cell(name, key, value, update_width=True)
        self._shown[name] = [str(cell) for cell in cells]

    def now(self) -> float:
        return float(self.app.fleet.clock())  # type: ignore[attr-defined]

    def update_ages(self) -> None:
        now = self.now()
        for name in list(self._shown):
            report = self.app.fleet.reports[name]  # type: ignore[attr-defined]
            self.update_row(report, now)

    @on(DataTable.RowHighlighted, "#fleet-table")
    def row_highlighted(self) -> None:
        self.update_detail()

    def update_detail(self) -> None:
        name = self.selected_node()
        reports = self.app.fleet.reports  # type: ignore[attr-defined]
        text = detail_text(reports[name]) if name in reports else Text()
        self.query_one("#fleet-detail", Static).update(text)

    def update_status_line(self) -> None:
        reports = self.reports()
        counts: dict[str, int] = {}
        for report in reports:
            counts[report.status] = counts.get(report.status, 0) + 1
        parts = [f"{counts[s]} {s}" for s in STATUS_RANK if counts.get(s)]
        app = self.app
        auto = (
            f"auto-refresh every {app.probe_interval:g}s"  # type: ignore[attr-defined]
            if app.probing_enabled  # type: ignore[attr-defined]
            else "auto-refresh off"
        )
        mode = "  READ-ONLY" if app.read_only else ""  # type: ignore[attr-defined]
        source = app.fleet.inventory.source  # type: ignore[attr-defined]
        noun = "node" if len(reports) == 1 else "nodes"
        line = (
            f"{len(reports)} {noun}: {', '.join(parts)}  |  sort: {self.sort_mode}"
            f"  |  {auto}  |  {source}{mode}"
        )
        left_out = app.fleet.inventory.left_out  # type: ignore[attr-defined]
        if left_out:
            line += f"  |  left out of the fleet: {', '.join(left_out)} (see log)"
        if self.marked:
            line += f"  |  {len(self.marked)} marked (b: runbook, l: logs)"
        if self.filter_text:
            line += f"  |  filter: {self.filter_text!r}"
            if not self.query_one(DataTable).row_count:
                line += " matches no node (escape clears it)"
        self.query_one("#fleet-status", Static).update(Text(line))

    def selected_node(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    # -- actions ----------------------------------------------------------------

    def action_metrics(self) -> None:
        self.app.open_metrics()  # type: ignore[attr-defined]

    def action_drift(self) -> None:
        self.app.open_drift()  # type: ignore[attr-defined]

    def action_kube_pods(self) -> None:
        self.app.open_kube_pods()  # type: ignore[attr-defined]

    def action_toggle_mark(self) -> None:
        name = self.selected_node()
        if name is None:
            return
        self.marked.symmetric_difference_update({name})
        reports = self.app.fleet.reports  # type: ignore[attr-defined]
        self.update_row(reports[name], self.now())
        self.update_status_line()

    def action_runbook(self) -> None:
        """Pick a runbook for the marked nodes, or for the highlighted one."""
        from nydus_console.screens.multirun import open_multirun

        specs = self.app.fleet.specs  # type: ignore[attr-defined]
        nodes = [n for n in specs if n in self.marked] or [self.selected_node()]
        if nodes != [None]:
            open_multirun(self.app, [str(n) for n in nodes])

    def action_logs(self) -> None:
        """Follow the logs of the marked nodes, else of the nodes shown, merged."""
        specs = self.app.fleet.specs  # type: ignore[attr-defined]
        marked = [name for name in specs if name in self.marked]
        shown = [report.spec.name for report in self.visible_reports()]
        if not marked and self.filter_text and shown:
            marked = shown  # the rows the filter shows
        self.app.open_logs(nodes=marked or None)  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self.app.refresh_all(force=True)  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool:
        # "/" typed into the open filter box is text, not a command.
        return not (action == "filter" and isinstance(self.focused, Input))

    def action_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.add_class("visible")
        # Widget.focus() would move the focus only after the keys already
        # queued, which would then run the table's and screen's bindings.
        self.set_focus(box)

    def action_clear_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.value = ""
        box.remove_class("visible")
        self.filter_text = ""
        self.rebuild()
        self.query_one(DataTable).focus()

    def action_cycle_sort(self) -> None:
        index = SORT_MODES.index(self.sort_mode)
        self.sort_mode = SORT_MODES[(index + 1) % len(SORT_MODES)]
        self.rebuild()

    def action_toggle_auto(self) -> None:
        self.app.toggle_auto_refresh()  # type: ignore[attr-defined]
        self.update_status_line()

    @on(Input.Changed, "#fleet-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.rebuild()

    @on(Input.Submitted, "#fleet-filter")
    def filter_submitted(self) -> None:
        self.query_one(DataTable).focus()

    @on(DataTable.RowSelected, "#fleet-table")
    def open_node(self, event: DataTable.RowSelected) -> None:
        self.app.open_node(str(event.row_key.value))  # type: ignore[attr-defined]


WORST_WIDTH = 60


def _clip(text: str, width: int = WORST_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def row_cells(report: NodeReport, now: float, marked: bool = False) -> list[object]:
    summary = report.summary()
    worst = report.worst
    if report.error is not None:
        problem: object = Text(
            _clip(f"{report.error.kind}: {report.error.message}"), style="red"
        )
    elif worst is not None:
        problem = Text(
            _clip(worst_summary(report)),
            style="red" if worst.status == "fail" else "yellow",
        )
    else:
        problem = Text("-" if report.facts is None else "all checks passed")
    # Node data is shown as plain Text: a string cell would be read as markup.
    return [
        Text(
            ("● " if marked else "")
            + report.spec.name
            + (" (ro)" if report.spec.read_only else "")
        ),
        Text(report.spec.address),
        status_text(report.status),
        *(Text(summary.get(column, "-")) for column in SUMMARY_COLUMNS),
        Text(age_text(report.probed_at, now)),
        problem,
    ]


def worst_summary(report: NodeReport) -> str:
    """Name the worst finding and count the other problems of the node."""
    worst = report.worst
    assert worst is not None
    others = sum(
        1 for f in report.findings if f.status in ("fail", "warn") and f is not worst
    )
    more = f" (+{others} more)" if others else ""
    return f"{worst.title}{more}"


def detail_text(report: NodeReport) -> Text:
    """Return the node's worst finding or connection error with its next step."""
    text = Text(f"{report.spec.name}: ", style="bold")
    if report.error is not None:
        text.append(f"{report.error.kind}: {report.error.message}", style="red")
        if report.error.next_step:
            text.append(f" Next step: {report.error.next_step}")
        return text
    worst = report.worst
    if worst is None:
        text.append("not probed yet" if report.facts is None else "all checks passed")
        return text
    style = "red" if worst.status == "fail" else "yellow"
    text.append(f"{worst.title}: {worst.message}", style=style)
    if worst.next_step:
        text.append(f" Next step: {worst.next_step}")
    return text


def row_search_text(report: NodeReport) -> str:
    worst = report.worst
    parts = [report.spec.name, report.spec.address, report.status]
    if worst is not None:
        parts += [worst.title, worst.message]
    if report.error is not None:
        parts.append(report.error.message)
    return " ".join(parts).lower()
