"""The Textual application: owns the fleet, schedules probes, routes results."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from nydus_console import locations
from nydus_console.actions import Action, ActionGate, ActionRefused
from nydus_console.audit import AuditLog
from nydus_console.fleet import Fleet
from nydus_console.inventory import Inventory
from nydus_console.screens.commands import console_commands
from nydus_console.screens.confirm import ConfirmActionModal
from nydus_console.screens.fleet import FleetScreen
from nydus_console.screens.help import HelpScreen
from nydus_console.screens.hostkey import HostKeyModal
from nydus_console.screens.logs import LogScreen
from nydus_console.screens.messages import (
    ActionFinished,
    HostKeyAccepted,
    IncidentReportWritten,
    NodeProbed,
)
from nydus_console.screens.node import NodeScreen
from nydus_console.transport.base import ErrorKind, HostKeyError, TransportError

if TYPE_CHECKING:
    from nydus_console.metrics.service import FleetMetrics

ASSETS = resources.files("nydus_console.assets")
CSS_FILE = str(ASSETS.joinpath("app.tcss"))
LOGS_CSS_FILE = str(ASSETS.joinpath("logs.tcss"))
METRICS_CSS_FILE = str(ASSETS.joinpath("metrics.tcss"))
CONFIG_CSS_FILE = str(ASSETS.joinpath("config.tcss"))
SETUP_CSS_FILE = str(ASSETS.joinpath("setup.tcss"))
MULTIRUN_CSS_FILE = str(ASSETS.joinpath("multirun.tcss"))
IMAGES_CSS_FILE = str(ASSETS.joinpath("images.tcss"))


class NydusConsoleApp(App[None]):
    TITLE = "nydus-console"
    CSS_PATH = [
        CSS_FILE,
        LOGS_CSS_FILE,
        METRICS_CSS_FILE,
        CONFIG_CSS_FILE,
        SETUP_CSS_FILE,
        MULTIRUN_CSS_FILE,
        IMAGES_CSS_FILE,
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
    ]

    def __init__(
        self,
        inventory: Inventory,
        *,
        read_only: bool = False,
        refresh_seconds: float = 10.0,
        prometheus_url: str = "",
        fleet: Fleet | None = None,
        audit: AuditLog | None = None,
        metrics: FleetMetrics | None = None,
    ) -> None:
        super().__init__()
        self.fleet = fleet or Fleet(inventory)
        self.read_only = read_only
        self.gate = ActionGate(
            audit or AuditLog(locations.audit_log_file()), read_only=read_only
        )
        self.probe_interval = refresh_seconds if refresh_seconds > 0 else 10.0
        self.probing_enabled = refresh_seconds > 0
        self._in_flight: set[str] = set()
        self._timer: Timer | None = None
        self._announced_keys: set[str] = set()
        self.prometheus_url = prometheus_url or inventory.prometheus_url
        self.metrics_interval = inventory.metrics_interval
        self._metrics = metrics

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a toast; plain text by default, because messages carry node data."""
        super().notify(
            message, title=title, severity=severity, timeout=timeout, markup=markup
        )

    def action_help_quit(self) -> None:
        """Tell what quits on ctrl+c, which copies text and does not quit.

        Textual's own message is markup, which this app's plain notify would
        show as it is written.
        """
        self.notify("Press q to quit nydus-console.", title="Do you want to quit?")

    def on_delivery_complete(self, event: events.DeliveryComplete) -> None:
        """Tell where a saved screenshot went, in plain text.

        Textual's own message is markup too; preventing the default keeps it
        from being shown as well.
        """
        if event.name != "screenshot":
            return
        event.prevent_default()
        where = f" to {event.path}" if event.path is not None else ""
        self.notify(f"Saved screenshot{where}", title="Screenshot")

    def on_mount(self) -> None:
        if self.read_only:
            self.sub_title = "read-only"
        self.push_screen(FleetScreen())
        for name, reason in self.fleet.inventory.left_out.items():
            self.notify(
                f"cluster node {name} is left out of the fleet: {reason}",
                severity="warning",
                timeout=30,
            )
        self.refresh_all(force=True, full=True)
        self._timer = self.set_interval(self.probe_interval, self._tick)

    async def on_unmount(self) -> None:
        if self._metrics is not None:
            await self._metrics.close()
        await self.fleet.close()

    # -- probing ----------------------------------------------------------------

    def _tick(self) -> None:
        if self.probing_enabled:
            self.refresh_all()

    def refresh_all(self, force: bool = False, full: bool = False) -> None:
        """Probe every node that is not already being probed."""
        if force:
            self.fleet.reset_backoff()
        for name in self.fleet.specs:
            self.probe(name, full=full)

    def probe(self, name: str, full: bool = False) -> None:
        if name in self._in_flight:
            return
        self._in_flight.add(name)
        self.run_worker(
            self._probe(name, full),
            name=f"probe {name}",
            group="probe",
            description=f"probe node {name}",
            exit_on_error=False,
        )

    async def _probe(self, name: str, full: bool) -> None:
        report = await self.fleet.probe_node(name, full=full)
        self.post_message(NodeProbed(report))

    @on(NodeProbed)
    def node_probed(self, message: NodeProbed) -> None:
        report = message.report
        self._in_flight.discard(report.spec.name)
        for screen in self.screen_stack:
            if isinstance(screen, FleetScreen):
                screen.update_report(report)
            elif isinstance(screen, NodeScreen) and screen.node == report.spec.name:
                screen.show_report(report)
        self._announce_unknown_key(report.spec.name)

    def _announce_unknown_key(self, name: str) -> None:
        error = self.fleet.reports[name].error
        if not isinstance(error, HostKeyError) or name in self._announced_keys:
            return
        self._announced_keys.add(name)
        if error.kind == ErrorKind.HOST_KEY_UNKNOWN:
            self.notify(
                f"{name}: unknown host key. Open the node and press k to review it.",
                severity="warning",
                timeout=8,
            )
        else:
            self.notify(
                f"{name}: host key CHANGED; connection refused.",
                severity="error",
                timeout=12,
            )

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "probe" or event.state != WorkerState.ERROR:
            return
        name = worker.name.removeprefix("probe ")
        self._in_flight.discard(name)
        self.log.error(f"probe of {name} failed: {worker.error!r}")
        self.notify(f"probe of {name} failed: {worker.error}", severity="error")

    # -- refresh settings ---------------------------------------------------------

    def toggle_auto_refresh(self) -> None:
        self.probing_enabled = not self.probing_enabled
        state = f"every {self.probe_interval:g}s" if self.probing_enabled else "off"
        self.notify(f"auto-refresh {state}")

    def set_refresh_interval(self, seconds: float) -> None:
        self.probe_interval = seconds
        self.probing_enabled = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(seconds, self._tick)
        self.notify(f"auto-refresh every {seconds:g}s")
        if isinstance(self.screen, FleetScreen):
            self.screen.update_status_line()

    # -- navigation ----------------------------------------------------------------

    def open_node(self, name: str) -> None:
        self.push_screen(NodeScreen(name))

    def open_setup(self, node: str) -> None:
        """Open the setup screen of a node that has no snapshotter yet."""
        from nydus_console.screens.setup import SetupScreen

        self.push_screen(SetupScreen(node))

    def open_logs(
        self, node: str | None = None, nodes: list[str] | None = None
    ) -> None:
        """Follow the logs of `node`, of `nodes` merged, or of every node merged."""
        if node is not None:
            self.push_screen(LogScreen(node))
            return
        chosen = nodes or list(self.fleet.specs)
        if len(chosen) == 1:
            self.push_screen(LogScreen(chosen[0]))
        else:
            self.push_screen(LogScreen(nodes=chosen))

    def metrics_service(self) -> FleetMetrics:
        """The fleet's metrics reader, made when a metrics screen first opens."""
        if self._metrics is None:
            from nydus_console.metrics.service import FleetMetrics

            self._metrics = FleetMetrics(self.fleet, self.prometheus_url)
        return self._metrics

    def open_drift(self, kind: str = "snapshotter") -> None:
        """Compare one config file across every node."""
        from nydus_console.screens.drift import DriftScreen

        self.push_screen(DriftScreen(kind))

    def open_images(self, reference: str = "") -> None:
        """Inspect an image in its registry."""
        from nydus_console.screens.images import ImageScreen

        self.push_screen(ImageScreen(reference))

    def open_convert(self, node: str, source: str = "") -> None:
        """Convert an image with nydusify on `node`."""
        from nydus_console.screens.convert import ConvertScreen

        self.push_screen(ConvertScreen(node, source))

    def open_build(self, node: str) -> None:
        """Build a Nydus image with buildkit on `node`."""
        from nydus_console.screens.build import BuildScreen

        self.push_screen(BuildScreen(node))

    def open_config(self, node: str, kind: str = "") -> None:
        """Edit a config file of `node`; without `kind`, ask which one first."""
        from nydus_console.configedit.remote import KIND_TITLES, config_path
        from nydus_console.screens.configedit import ConfigScreen
        from nydus_console.screens.configmodals import ConfigKindModal

        if kind:
            self.push_screen(ConfigScreen(node, kind))
            return
        spec, facts = self.fleet.specs[node], self.fleet.reports[node].facts
        paths = {k: config_path(k, spec, facts) for k in KIND_TITLES}

        def chosen(choice: str | None) -> None:
            if choice:
                self.push_screen(ConfigScreen(node, choice))

        self.push_screen(ConfigKindModal(node, paths), chosen)

    def open_kube_pods(self) -> None:
        """Open the cluster pods screen of the inventory's [kubernetes] context."""
        from nydus_console.kube.config import load_kubeconfig
        from nydus_console.kube.errors import KubeError
        from nydus_console.screens.kubepods import KubePodsScreen, cluster_source

        template = self.fleet.inventory.kubernetes
        kubeconfig = template.kubeconfig if template else ""
        try:
            config = load_kubeconfig(kubeconfig or None)
            context = config.pick(template.context if template else None)
        except KubeError as error:
            text = error.screen_text()
            self.notify(f"Cluster pods not opened: {text}", severity="error")
            return
        screen = KubePodsScreen(
            cluster_source(kubeconfig), context, list(config.contexts)
        )
        self.push_screen(screen)

    def open_metrics(self, node: str | None = None) -> None:
        """Show the metrics of `node`, or of every node when it is None."""
        from nydus_console.screens.metrics import FleetMetricsScreen, NodeMetricsScreen

        if node is None:
            self.push_screen(FleetMetricsScreen())
        else:
            self.push_screen(NodeMetricsScreen(node))

    def ask_host_key(self, name: str) -> None:
        error = self.fleet.reports[name].error
        if not isinstance(error, HostKeyError) or error.key is None:
            self.notify(f"{name} has no unknown host key to review")
            return

        def decided(accepted: bool | None) -> None:
            if accepted:
                self.fleet.accept_host_key(name)
                assert error.key is not None
                self.gate.audit.append(
                    {
                        "node": name,
                        "action": "accept host key",
                        "outcome": "ran",
                        "key": f"{error.key.key_type} {error.key.fingerprint}",
                    }
                )
                self.post_message(HostKeyAccepted(name))

        self.push_screen(HostKeyModal(name, error.key), decided)

    @on(HostKeyAccepted)
    def host_key_accepted(self, message: HostKeyAccepted) -> None:
        self.notify(f"host key of {message.node} accepted and stored")
        self._announced_keys.discard(message.node)
        self.probe(message.node, full=True)

    # -- actions that change a node ---------------------------------------------

    def request_action(self, node: str, action: Action) -> None:
        """Show the command and run it through the gate once confirmed."""
        spec = self.fleet.specs[node]
        refusal = self.gate.refusal(spec)
        if refusal:
            self.gate.record_refusal(action, spec, refusal)
            self.notify(f"{action.name} not run: {refusal}", severity="error")
            return

        def decided(confirmation: str | None) -> None:
            if confirmation:
                self.run_worker(
                    self._run_action(node, action, confirmation),
                    name=f"action {node}",
                    group="action",
                    description=f"{action.name} on {node}",
                    exit_on_error=False,
                )

        self.push_screen(ConfirmActionModal(node, spec.address, action), decided)

    async def _run_action(self, node: str, action: Action, confirmation: str) -> None:
        spec = self.fleet.specs[node]
        transport = self.fleet.transports[node]
        try:
            result = await self.gate.run(
                action, spec, transport, confirmed_by=confirmation
            )
        except (ActionRefused, TransportError) as exc:
            self.post_message(ActionFinished(node, action.name, None, str(exc)))
            return
        error = result.stderr.strip()[-300:] if result.exit_status else ""
        self.post_message(ActionFinished(node, action.name, result.exit_status, error))

    @on(ActionFinished)
    def action_finished(self, message: ActionFinished) -> None:
        if message.exit_status == 0:
            self.notify(f"{message.action} on {message.node} done")
        else:
            status = (
                "" if message.exit_status is None else f" (exit {message.exit_status})"
            )
            self.notify(
                f"{message.action} on {message.node} failed{status}: {message.error}",
                severity="error",
                timeout=12,
            )
        self.probe(message.node, full=True)

    # -- incident report -----------------------------------------------------------

    def write_incident_report(self) -> None:
        """Write the report of the last hour under the state dir, in a worker."""
        self.run_worker(
            self._write_incident_report(),
            name="incident report",
            group="report",
            description="incident report of the last hour",
            exit_on_error=False,
        )

    async def _write_incident_report(self) -> None:
        from nydus_console.incident import write_last_hour

        try:
            path = await write_last_hour(self.fleet, self.gate.audit.path)
        except OSError as exc:
            self.post_message(IncidentReportWritten("", str(exc)))
            return
        self.post_message(IncidentReportWritten(str(path)))

    @on(IncidentReportWritten)
    def incident_report_written(self, message: IncidentReportWritten) -> None:
        if message.error:
            self.notify(
                f"incident report not written: {message.error}", severity="error"
            )
            return
        self.notify(
            f"incident report of the last hour saved to {message.path}", timeout=20
        )

    async def action_quit(self) -> None:
        """Quit, after asking when a config screen holds edits not written."""
        from nydus_console.screens.configedit import ConfigScreen

        for screen in self.screen_stack:
            if isinstance(screen, ConfigScreen) and screen.has_unsaved_edits():
                screen.leave_then(self.exit, "Quit")
                return
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from console_commands(self, screen)
