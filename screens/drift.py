"""Config drift screen: one config file compared across every node, key by key.

Rows are the keys whose value is not the same everywhere; a column per node
shows its value, the ones that differ from most nodes highlighted.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from nydus_console.configedit.document import Document
from nydus_console.configedit.drift import DriftReport, compare
from nydus_console.configedit.remote import (
    KIND_TITLES,
    ConfigReadError,
    load_node_config,
)
from nydus_console.configedit.schema import KINDS
from nydus_console.fleet import Fleet


class DriftCompared(Message):
    """The files of every node were read and compared."""

    def __init__(self, report: DriftReport) -> None:
        super().__init__()
        self.report = report


async def read_documents(fleet: Fleet, kind: str) -> DriftReport:
    """Read `kind` from every reachable node and compare the documents."""
    names = list(fleet.specs)
    results = await asyncio.gather(*(_read(fleet, n, kind) for n in names))
    documents = {
        n: r for n, r in zip(names, results, strict=True) if isinstance(r, Document)
    }
    report = compare(kind, documents)
    report.unreadable = {
        n: r for n, r in zip(names, results, strict=True) if isinstance(r, str)
    }
    return report


async def _read(fleet: Fleet, name: str, kind: str) -> Document | str:
    report = fleet.reports[name]
    if report.facts is None or report.error is not None:
        report = await fleet.probe_node(name)
    if report.error is not None:
        return f"unreachable: {report.error.kind}"
    try:
        config = await load_node_config(
            fleet.transports[name], report.spec, report.facts, kind
        )
    except ConfigReadError as exc:
        return str(exc)
    if config.document is not None:
        return config.document
    if not config.exists:
        return f"{config.path} does not exist"
    return f"syntax error: {config.syntax}"


def ordered_nodes(report: DriftReport) -> list[str]:
    """Nodes that differ from most first, most differences first."""
    odd = {n: len(report.outliers_of(n)) for n in report.nodes}
    return sorted(report.nodes, key=lambda n: (-odd[n], report.nodes.index(n)))


class DriftScreen(Screen[None]):
    """Keys of one config that differ between nodes."""

    BINDING_GROUP_TITLE = "Config drift"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="drift.back"),
        Binding("r", "reload", "Reload", id="drift.reload"),
        Binding("k", "cycle_kind", "Next config", id="drift.kind"),
    ]

    def __init__(self, kind: str = "snapshotter") -> None:
        super().__init__()
        self.kind = kind
        self.report: DriftReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="drift-summary")
        # The key column stays in view when the node columns scroll.
        yield DataTable(
            id="drift-table", cursor_type="cell", zebra_stripes=True, fixed_columns=1
        )
        yield Static(id="drift-unreadable")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "config drift"
        self.query_one(DataTable).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.query_one("#drift-summary", Static).update(
            f"reading the {KIND_TITLES[self.kind]} of every node..."
        )
        self._compare(self.kind)

    @work(group="drift", exclusive=True, exit_on_error=False, description="compare")
    async def _compare(self, kind: str) -> None:
        report = await read_documents(self.app.fleet, kind)  # type: ignore[attr-defined]
        self.post_message(DriftCompared(report))

    @on(DriftCompared)
    def compared(self, message: DriftCompared) -> None:
        if message.report.kind != self.kind:
            return  # a comparison of the config shown before
        self.report = message.report
        self.show(message.report)

    def show(self, report: DriftReport) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("Key", key="key")
        table.add_column("Most nodes", key="majority")
        nodes = ordered_nodes(report)
        for node in nodes:
            table.add_column(node, key=node)
        for drift in report.keys:
            cells = [Text(drift.key), Text(drift.majority or "(no majority)")]
            for node in nodes:
                odd = node in drift.outliers
                cells.append(
                    Text(drift.shown[node], style="bold red" if odd else "dim")
                )
            table.add_row(*cells, key=drift.key)
        self._summary(report)

    def _summary(self, report: DriftReport) -> None:
        title = KIND_TITLES[report.kind]
        if not report.nodes:
            text = f"no node's {title} could be read"
        elif not report.keys:
            text = f"{title}: every key has the same value on {len(report.nodes)} nodes"
        else:
            odd = sorted({n for k in report.keys for n in k.outliers})
            text = (
                f"{title}: {len(report.keys)} keys differ on {len(report.nodes)} "
                f"nodes; nodes that differ from most: {', '.join(odd)}"
            )
        self.query_one("#drift-summary", Static).update(escape(text))
        lines = [f"{n}: not compared: {r}" for n, r in report.unreadable.items()]
        self.query_one("#drift-unreadable", Static).update(escape("\n".join(lines)))

    def action_cycle_kind(self) -> None:
        self.kind = KINDS[(KINDS.index(self.kind) + 1) % len(KINDS)]
        self.action_reload()
