"""Node screen: every check with its status, evidence and next step."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from nydus_console.actions import reset_and_restart
from nydus_console.checks import symptom_checks
from nydus_console.findings import Finding, Status, problem_rank
from nydus_console.fleet import NodeReport
from nydus_console.screens.render import age_text, status_text
from nydus_console.transport.base import ErrorKind, HostKeyError

# A failure of this check means the node has no snapshotter to diagnose.
SETUP_CHECK = "snapshotter.installed"
# Footer labels of the keys that change the node, when read-only mode refuses
# that. The keys stay on: pressing one shows and audits the refusal, and the
# config editor still shows the config.
READ_ONLY_LABELS = {
    "restart_snapshotter": "Restart service (refused, read-only)",
    "edit_config": "Edit config (view only, read-only)",
}


class NodeScreen(Screen[None]):
    """Findings of one node; the panel below explains the highlighted check."""

    BINDING_GROUP_TITLE = "Node"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Fleet", id="node.back"),
        Binding("r", "refresh", "Refresh", id="node.refresh"),
        Binding("x", "toggle_skipped", "Show skipped", id="node.toggle_skipped"),
        Binding("l", "logs", "Logs", id="node.logs"),
        Binding("m", "metrics", "Metrics", id="node.metrics"),
        Binding("e", "edit_config", "Edit config", id="node.edit_config"),
        Binding("b", "runbook", "Runbook", id="node.runbook"),
        Binding("S", "setup", "Set up Nydus", id="node.setup"),
        Binding("k", "accept_host_key", "Accept host key", id="node.accept_host_key"),
        Binding(
            "R",
            "restart_snapshotter",
            "Restart service",
            id="node.restart_snapshotter",
        ),
    ]

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.show_skipped = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="node-summary")
        yield DataTable(id="node-checks", cursor_type="row")
        with VerticalScroll(id="node-detail-scroll"):
            yield Static(id="node-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.node
        table = self.query_one(DataTable)
        table.add_column("Status", key="status", width=9)
        table.add_column("Check", key="check", width=38)
        table.add_column("Finding", key="message")
        self.show_report(self.report)
        self.set_interval(1.0, self.update_summary)
        table.focus()
        if self.app.gate.refusal(self.report.spec):  # type: ignore[attr-defined]
            self.label_refused_keys()

    def label_refused_keys(self) -> None:
        """Mark in the footer the keys whose changes read-only mode refuses."""
        # Each screen has its own copy of the key map, so only this one changes.
        bindings = self._bindings.key_to_bindings
        for key, listed in bindings.items():
            bindings[key] = [
                replace(b, description=READ_ONLY_LABELS[b.action])
                if b.action in READ_ONLY_LABELS
                else b
                for b in listed
            ]
        self.refresh_bindings()

    @property
    def report(self) -> NodeReport:
        return self.app.fleet.reports[self.node]  # type: ignore[attr-defined, no-any-return]

    def findings(self) -> list[Finding]:
        """Return the findings to list: problems first, causes before symptoms."""
        shown = [
            f
            for f in self.report.findings
            if self.show_skipped or f.status != Status.SKIP
        ]
        symptoms = symptom_checks()
        return sorted(shown, key=lambda f: problem_rank(f, symptoms))

    def show_report(self, report: NodeReport) -> None:
        try:
            table = self.query_one(DataTable)
        except NoMatches:
            return  # a probe that ends while the screen closes: nothing to show
        cursor = table.cursor_row
        table.clear()
        for finding in self.findings():
            table.add_row(
                status_text(str(finding.status)),
                Text(finding.title),
                Text(finding.message),
                key=finding.check,
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.update_summary()
        self.show_detail()
        self.refresh_bindings()

    def update_summary(self) -> None:
        report = self.report
        summary = report.summary()
        parts = [
            f"[b]{escape(report.spec.name)}[/b] ({escape(report.spec.address)})",
            f"status [b]{report.status}[/b]",
        ]
        if summary:
            parts += [
                f"service {escape(summary['service'])}",
                f"snapshotter {escape(summary['snapshotter'])}",
                f"nydusd {escape(summary['nydusd'])}",
                f"containerd {escape(summary['containerd'])}",
                f"driver {escape(summary['fs_driver'])}",
                f"daemons {summary['daemons']}",
            ]
        parts.append(
            f"probed {age_text(report.probed_at, self.app.fleet.clock())} ago "  # type: ignore[attr-defined]
            f"in {report.seconds:.2f}s"
        )
        self.query_one("#node-summary", Static).update("  |  ".join(parts))

    def show_detail(self) -> None:
        detail = self.query_one("#node-detail", Static)
        report = self.report
        if report.error is not None:
            detail.update(error_markup(report))
            return
        finding = self.highlighted()
        detail.update(finding_markup(finding) if finding else "")

    def highlighted(self) -> Finding | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((f for f in self.report.findings if f.check == row_key.value), None)

    @on(DataTable.RowHighlighted, "#node-checks")
    def row_highlighted(self) -> None:
        self.show_detail()
        self.refresh_bindings()

    def action_refresh(self) -> None:
        self.app.probe(self.node, full=True)  # type: ignore[attr-defined]

    def action_toggle_skipped(self) -> None:
        self.show_skipped = not self.show_skipped
        self.show_report(self.report)

    def action_logs(self) -> None:
        self.app.open_logs(self.node)  # type: ignore[attr-defined]

    def action_metrics(self) -> None:
        self.app.open_metrics(self.node)  # type: ignore[attr-defined]

    def action_edit_config(self) -> None:
        self.app.open_config(self.node)  # type: ignore[attr-defined]

    def action_setup(self) -> None:
        self.app.open_setup(self.node)  # type: ignore[attr-defined]

    def needs_setup(self) -> bool:
        """Return whether the node has no snapshotter: the setup screen is offered."""
        return self.report.error is None and any(
            f.check == SETUP_CHECK and f.status == Status.FAIL
            for f in self.report.findings
        )

    def action_runbook(self) -> None:
        """Open the runbook of the highlighted finding in the runner screen."""
        finding = self.highlighted()
        if finding is not None and finding.runbook == "setup" and self.needs_setup():
            self.action_setup()
            return
        runbook = self.highlighted_runbook()
        if not runbook:
            self.notify("the highlighted check has no runbook", severity="warning")
            return
        from nydus_console.screens.runbook import RunbookScreen

        self.app.push_screen(RunbookScreen(self.node, runbook))

    def highlighted_runbook(self) -> str:
        """Return the runbook id of the highlighted finding, if one is shipped."""
        from nydus_console.runbooks import load_runbooks

        finding = self.highlighted()
        if finding is None or finding.runbook not in load_runbooks():
            return ""
        return finding.runbook

    def action_accept_host_key(self) -> None:
        self.app.ask_host_key(self.node)  # type: ignore[attr-defined]

    def action_restart_snapshotter(self) -> None:
        unit = self.report.spec.paths.snapshotter_unit
        self.app.request_action(self.node, reset_and_restart(unit))  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restart_snapshotter":
            facts = self.report.facts
            # Read-only mode leaves the key on: the refusal is shown and audited.
            return (
                self.report.error is None
                and facts is not None
                and facts.systemd_running
            )
        if action == "runbook":
            finding = self.highlighted()
            if finding is not None and finding.runbook == "setup":
                return self.needs_setup()
            return self.report.error is None and bool(self.highlighted_runbook())
        if action == "setup":
            return self.needs_setup()
        if action == "accept_host_key":
            error = self.report.error
            return isinstance(error, HostKeyError) and (
                error.kind == ErrorKind.HOST_KEY_UNKNOWN
            )
        return True


def finding_markup(finding: Finding) -> str:
    """Render a finding with the next step first, then the evidence behind it."""
    lines = [
        f"[b]{escape(finding.title)}[/b]  ({finding.check}, {finding.status})",
        escape(finding.message),
    ]
    if finding.next_step:
        lines.append(f"\n[b]Next step[/b]: {escape(finding.next_step)}")
    if finding.runbook:
        lines.append(f"[b]Runbook[/b]: {escape(finding.runbook)} (press b to run it)")
    for evidence in finding.evidence:
        lines.append(f"\n[b]Evidence[/b] [dim]{escape(evidence.source)}[/dim]")
        lines += [f"  {escape(line)}" for line in evidence.lines]
    return "\n".join(lines)


def error_markup(report: NodeReport) -> str:
    error = report.error
    assert error is not None
    lines = [
        f"[b red]{escape(report.spec.name)} could not be probed: {error.kind}[/]",
        escape(error.message),
    ]
    if error.next_step:
        lines.append(f"\n[b]Next step[/b]: {escape(error.next_step)}")
    if isinstance(error, HostKeyError) and error.key is not None:
        lines.append(f"\nServer key: {error.key.key_type} {error.key.fingerprint}")
        if error.kind == ErrorKind.HOST_KEY_UNKNOWN:
            lines.append("Press [b]k[/b] to review and accept this key.")
    return "\n".join(lines)
