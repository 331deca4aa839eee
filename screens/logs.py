"""Log screen: follows the journal units and log files of one node or many."""

from __future__ import annotations

import asyncio
import datetime
import gc
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len
from rich.control import strip_control_codes
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from nydus_console.diagnose.matcher import default_matcher
from nydus_console.fleet import Fleet
from nydus_console.logs.buffer import LogBuffer, OrderedRecord
from nydus_console.logs.follow import LogFollower, LogSource, check_unit
from nydus_console.logs.records import Level, LogRecord, compile_pattern
from nydus_console.logs.save import saved_logs_dir
from nydus_console.logs.sources import plan_node_sources
from nydus_console.screens.known import KnownFailureModal, KnownLine
from nydus_console.screens.logview import LogRow, LogView
from nydus_console.screens.messages import LogLinesRead, LogSourceChecked
from nydus_console.screens.savelog import SavedFile, SaveLogModal
from nydus_console.screens.textbox import TextBox
from nydus_console.transport.base import Transport, TransportError

BUFFER_CAPACITY = 20_000
# Lines read from each source before following it.
INITIAL_LINES = 200
# Records read by the followers are drawn at most this often (seconds).
FLUSH_SECONDS = 0.1
# Seconds to wait for the followers' commands to exit when the screen closes.
STOP_SECONDS = 3.0
LEVEL_FILTERS = (
    ("all", Level.TRACE),
    ("info+", Level.INFO),
    ("warning+", Level.WARNING),
    ("error+", Level.ERROR),
)
CONTEXT_CHOICES = (0, 2, 5)
# More selected rows than this are not copied: rendering them would stall the
# screen, and terminals limit the size of an OSC 52 clipboard write.
COPY_MAX_LINES = 5_000
LEVEL_STYLES = {
    Level.TRACE: "dim",
    Level.DEBUG: "dim",
    Level.INFO: "green",
    Level.WARNING: "yellow",
    Level.ERROR: "red",
    Level.FATAL: "bold red",
}
LEVEL_NAMES = {
    Level.TRACE: "TRACE",
    Level.DEBUG: "DEBUG",
    Level.INFO: "INFO",
    Level.WARNING: "WARN",
    Level.ERROR: "ERROR",
    Level.FATAL: "FATAL",
}
# Fields that repeat what the source column already shows.
HIDDEN_FIELDS = frozenset({"unit", "pid"})
SOURCE_WIDTH_MAX = 28
NODE_WIDTH_MAX = 20
# Records outlive CPython's young generations before the ring buffer drops
# them. At 10,000 lines a second the collector then ran a full collection
# about once a second (77 in 95 s in benchmarks/logs_keys.py), each holding up
# the screen for tens to hundreds of ms. Records form no reference cycles and
# reference counting frees them, so while a log screen is open a full
# collection waits for this many younger ones instead of CPython's 10.
FULL_COLLECTION_AFTER = 100
# Exit statuses of CHECK_FILE, which runs as `sh -c CHECK_FILE sh PATH`.
CHECK_FILE = 'test -e "$1" || exit 3; test -r "$1" || exit 4; test -s "$1" || exit 5'
CHECK_MISSING, CHECK_UNREADABLE, CHECK_EMPTY = 3, 4, 5


# -- sources -----------------------------------------------------------------


@dataclass
class SourceState:
    """One followed source and what the console last learned about it."""

    node: str
    source: LogSource
    label: str
    enabled: bool = True
    state: str = "starting"
    detail: str = ""
    lines: int = 0

    def describe(self) -> str:
        if not self.enabled:
            return "hidden"
        if self.state == "following" and self.lines == 0:
            if self.source.kind == "journal":
                return f"following, the journal has no entries for {self.target}"
            return "following, no lines yet"
        return f"{self.state}: {self.detail}" if self.detail else self.state

    @property
    def target(self) -> str:
        return self.source.target


def display_label(source: LogSource) -> str:
    """Return a short name that distinguishes sources: a nydusd log gets its id."""
    path = Path(source.target)
    if source.kind == "file" and path.name == "nydusd.log":
        return f"nydusd {path.parent.name}"
    return source.label


def source_states(node_sources: Iterable[tuple[str, LogSource]]) -> list[SourceState]:
    states: list[SourceState] = []
    seen: set[tuple[str, str]] = set()
    for node, source in node_sources:
        label = display_label(source)
        number = 2
        while (node, label) in seen:
            label = f"{display_label(source)} #{number}"
            number += 1
        seen.add((node, label))
        states.append(SourceState(node, source, label))
    return states


async def check_file(transport: Transport, path: str) -> tuple[str, str]:
    """Return the state of a log file before it is followed, and why."""
    try:
        result = await transport.run(["sh", "-c", CHECK_FILE, "sh", path], timeout=15)
    except TransportError as exc:
        return "failed", f"could not check {path}: {exc.message}"
    if result.exit_status == CHECK_MISSING:
        return "missing", f"{path} does not exist; it is followed once it appears"
    if result.exit_status == CHECK_UNREADABLE:
        return "unreadable", f"permission denied reading {path}; set sudo = true"
    if result.exit_status == CHECK_EMPTY:
        return "empty", f"{path} is empty"
    if result.exit_status != 0:
        return "failed", f"checking {path} failed: {result.stderr.strip()[-200:]}"
    return "following", ""


async def check_journal_unit(transport: Transport, unit: str) -> tuple[str, str]:
    """Return the state of a journal source before it is followed, and why."""
    checked, detail = await check_unit(transport, unit)
    if checked == "no unit":
        return checked, f"{detail}; entries it left in the journal are still shown"
    return ("following", "") if checked == "ok" else (checked, detail)


def tail_state(message: str) -> tuple[str, str] | None:
    """Read a source state from a message of `tail -F` about its file."""
    if not message.startswith("tail: "):
        return None
    if "has appeared" in message or "has been replaced" in message:
        return "following", ""
    if "No such file" in message or "has become inaccessible" in message:
        return "missing", message.removeprefix("tail: ")
    if "Permission denied" in message:
        return "unreadable", message.removeprefix("tail: ")
    return None


# -- filtering -----------------------------------------------------------------


def match_text(record: LogRecord, with_node: bool = False) -> str:
    """Return the text that include and exclude patterns are tried on.

    It holds the columns of the row but the time: the node (when the view
    shows that column), source label, level name, message and fields, so a
    pattern matches what the operator reads. Search tries the rendered row.
    """
    text = f"{record.source} {LEVEL_NAMES[record.level]} {message_text(record)}"
    if with_node:
        text = f"{record.node} {text}"
    fields = fields_text(record)
    return f"{text} {fields}" if fields else text


@dataclass
class RowFilter:
    """Rules of the view: level, include and exclude patterns, context lines."""

    level_index: int = 0
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    context: int = 0
    hidden: set[tuple[str, str]] = field(default_factory=set)
    # Whether rows show the node column, which patterns then match too.
    with_node: bool = False

    @property
    def min_level(self) -> Level:
        return LEVEL_FILTERS[self.level_index][1]


class RowSelector:
    """Selector of rows from records, keeping the context state between batches."""

    def __init__(self, rules: RowFilter) -> None:
        self.rules = rules
        self._before: deque[LogRow] = deque(maxlen=max(1, rules.context))
        self._after = 0

    def select(self, entries: Iterable[OrderedRecord]) -> list[LogRow]:
        """Return the rows to show of `entries`, which are in time order."""
        rows: list[LogRow] = []
        for entry in entries:
            self._take(entry, rows)
        return rows

    def _take(self, entry: OrderedRecord, rows: list[LogRow]) -> None:
        rules = self.rules
        key, seq, record = entry
        if (record.node, record.source) in rules.hidden:
            return
        if record.marker:
            rows.append(LogRow(key, seq, record))
            return
        if record.level < rules.min_level:
            return
        text = match_text(record, rules.with_node)
        if rules.exclude is not None and rules.exclude.search(text):
            return
        if rules.include is None:
            rows.append(LogRow(key, seq, record))
        elif rules.include.search(text):
            rows.extend(self._before)
            self._before.clear()
            rows.append(LogRow(key, seq, record))
            self._after = rules.context
        elif self._after > 0:
            rows.append(LogRow(key, seq, record, context=True))
            self._after -= 1
        elif rules.context:
            self._before.append(LogRow(key, seq, record, context=True))


# -- formatting ------------------------------------------------------------------


# Cells of the time column, the space after it included.
TIME_CELLS = 19


def time_text(timestamp: float | None) -> str:
    """Return a timestamp as UTC month, day and time to the millisecond."""
    if timestamp is None:
        return "-".ljust(TIME_CELLS - 1)
    when = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return when.strftime("%m-%d %H:%M:%S.%f")[:-3]


def text_cells(text: str) -> int:
    """Return the cells `text` takes in a Text, which strips control codes."""
    return cell_len(text if text.isprintable() else strip_control_codes(text))


def level_cell(record: LogRecord) -> str:
    return LEVEL_NAMES[record.level].ljust(5) + " "


def message_text(record: LogRecord) -> str:
    return record.message.replace("\n", " ⏎ ")


def fields_text(record: LogRecord) -> str:
    """Return the fields that the other columns do not already show."""
    fields = [f"{k}={v}" for k, v in record.fields.items() if k not in HIDDEN_FIELDS]
    return " ".join(fields).replace("\n", " ⏎ ")


@dataclass
class RowFormat:
    """Columns of a row and the search pattern to highlight."""

    show_time: bool = True
    node_width: int = 0
    source_width: int = 12
    search: re.Pattern[str] | None = None
    current_seq: int = -1
    # Titles of the known failures that lines matched, by signature id.
    known: dict[str, str] = field(default_factory=dict)

    def render(self, row: LogRow) -> Text:
        record = row.record
        text = Text(no_wrap=True, end="")
        if self.show_time:
            text.append(time_text(record.timestamp) + " ", style="dim")
        if self.node_width:
            text.append(self._node_cell(record))
        text.append(self._source_cell(record), style="cyan")
        text.append(level_cell(record), style=LEVEL_STYLES[record.level])
        text.append(message_text(record))
        fields = fields_text(record)
        if fields:
            text.append(" " + fields, style="dim")
        self._decorate(row, text)
        if record.signature:
            text.append(self._known_cell(record), style="bold reverse magenta")
        return text

    def _known_cell(self, record: LogRecord) -> str:
        return f"  known failure: {self.known.get(record.signature, record.signature)} "

    def width(self, row: LogRow) -> int:
        """Return the cells of `render(row)` without building the text."""
        record = row.record
        cells = TIME_CELLS if self.show_time else 0
        if self.node_width:
            cells += text_cells(self._node_cell(record))
        cells += text_cells(self._source_cell(record))
        cells += len(level_cell(record))
        cells += text_cells(message_text(record))
        fields = fields_text(record)
        if fields:
            cells += 1 + text_cells(fields)
        if record.signature:
            cells += text_cells(self._known_cell(record))
        return cells

    def _node_cell(self, record: LogRecord) -> str:
        return record.node[: self.node_width].ljust(self.node_width) + " "

    def _source_cell(self, record: LogRecord) -> str:
        return record.source[: self.source_width].ljust(self.source_width) + " "

    def _decorate(self, row: LogRow, text: Text) -> None:
        if row.record.marker:
            text.stylize("italic yellow")
        elif row.context:
            text.stylize("dim")
        if self.search is not None:
            text.highlight_regex(self.search, style="reverse")
        if row.seq == self.current_seq:
            text.stylize("bold underline")


# -- screen ----------------------------------------------------------------------


class LogScreen(Screen[None]):
    """Screen that follows the logs of one node, or of many merged in time order."""

    BINDING_GROUP_TITLE = "Logs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="logs.back"),
        Binding(
            "space,p", "toggle_follow", "Pause", key_display="space", id="logs.pause"
        ),
        Binding("v", "cycle_level", "Level", id="logs.level"),
        # Keys that open a text box are priority bindings: they run before the
        # next keys are handed out, so a fast-typed "/pattern" lands in the box.
        Binding(
            "slash",
            "edit('include')",
            "Include",
            key_display="/",
            priority=True,
            id="logs.include",
        ),
        Binding(
            "backslash,x",
            "edit('exclude')",
            "Exclude",
            key_display="\\",
            priority=True,
            id="logs.exclude",
        ),
        Binding(
            "s,ctrl+f", "edit('search')", "Search", priority=True, id="logs.search"
        ),
        Binding("n", "next_match", "Next", id="logs.next"),
        Binding("N", "previous_match", "Previous", show=False, id="logs.previous"),
        Binding("c", "cycle_context", "Context", id="logs.context"),
        Binding("t", "toggle_time", "Time", id="logs.time"),
        Binding("w", "toggle_wrap", "Wrap", id="logs.wrap"),
        Binding("y", "copy", "Copy", id="logs.copy"),
        Binding("f", "explain", "Explain", id="logs.explain"),
        Binding("ctrl+s", "save", "Save", id="logs.save"),
        *(
            Binding(
                str(n),
                f"toggle_source({n - 1})",
                f"Source {n}",
                show=False,
                id=f"logs.source_{n}",
            )
            for n in range(1, 10)
        ),
    ]

    def __init__(
        self,
        node: str | None = None,
        *,
        nodes: list[str] | None = None,
        sources: list[LogSource] | None = None,
        capacity: int = BUFFER_CAPACITY,
    ) -> None:
        """Show `node`, or merge `nodes`; `sources` replaces the planned ones."""
        super().__init__()
        if nodes is not None:
            self.nodes = nodes
        else:
            self.nodes = [node] if node else []
        if not self.nodes:
            raise ValueError("a log screen needs a node")
        self.explicit_sources = sources
        self.buffer = LogBuffer(capacity)
        self.matcher = default_matcher()
        # The newest line of each known failure seen, by signature id, the
        # failure seen last at the end.
        self.known_seen: dict[str, KnownLine] = {}
        self.sources: list[SourceState] = []
        self.notes: list[str] = []
        self.rules = RowFilter(with_node=len(self.nodes) > 1)
        self.selector = RowSelector(self.rules)
        self.format = RowFormat(node_width=self._node_width())
        self.following = True
        self.unseen = 0
        self.message = Text()
        self._pending: list[LogRecord] = []
        self._pending_dropped = 0
        self._waiting_for_probe = False
        self._gc_threshold = gc.get_threshold()

    def _node_width(self) -> int:
        if len(self.nodes) < 2:
            return 0
        return min(NODE_WIDTH_MAX, max(len(n) for n in self.nodes))

    @property
    def fleet(self) -> Fleet:
        return self.app.fleet  # type: ignore[attr-defined, no-any-return]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="logs-sources")
        yield TextBox(placeholder="include regex (empty clears)", id="logs-include")
        yield TextBox(placeholder="exclude regex (empty clears)", id="logs-exclude")
        yield TextBox(placeholder="search regex, then n / N", id="logs-search")
        yield Static(id="logs-empty")
        yield LogView(self.format.render, self.format.width, id="logs-view")
        yield Static(id="logs-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "logs of " + ", ".join(self.nodes)
        young, middle, full = self._gc_threshold
        gc.set_threshold(young, middle, max(full, FULL_COLLECTION_AFTER))
        self.start_sources()
        self.set_interval(FLUSH_SECONDS, self.flush)
        self.view.focus()
        self.update_status()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    # -- followers ----------------------------------------------------------------

    def start_sources(self) -> None:
        planned: list[tuple[str, LogSource]] = []
        self.notes = []
        waiting = False
        for node in self.nodes:
            if self.explicit_sources is not None:
                planned += [(node, source) for source in self.explicit_sources]
                continue
            report = self.fleet.reports[node]
            waiting |= report.facts is None and report.error is None
            sources, notes = plan_node_sources(report)
            planned += [(node, source) for source in sources]
            self.notes += notes
        self.sources = source_states(planned)
        labels = [len(state.label) for state in self.sources] or [12]
        self.format.source_width = min(SOURCE_WIDTH_MAX, max(labels))
        for index in range(len(self.sources)):
            self.follow(index)
        if waiting and not self._waiting_for_probe:
            self._waiting_for_probe = True
            self.set_interval(1.0, self.start_when_probed)

    def start_when_probed(self) -> None:
        """Plan the sources again once a node that was not probed has been."""
        if self.sources or not self._waiting_for_probe:
            return
        reports = [self.fleet.reports[node] for node in self.nodes]
        if all(r.facts is None and r.error is None for r in reports):
            return
        self._waiting_for_probe = False
        self.start_sources()
        self.update_status()

    def follow(self, index: int) -> None:
        state = self.sources[index]
        self.run_worker(
            self._follow(index),
            name=f"logs {state.node} {state.label}",
            group="logs",
            description=f"follow {state.target} on {state.node}",
            exit_on_error=False,
        )

    async def _follow(self, index: int) -> None:
        state = self.sources[index]
        transport = self.fleet.transports[state.node]
        if state.source.kind == "file":
            checked, detail = await check_file(transport, state.target)
            self.post_message(LogSourceChecked(index, checked, detail))
            if checked == "unreadable":
                return
        else:
            checked, detail = await check_journal_unit(transport, state.target)
            self.post_message(LogSourceChecked(index, checked, detail))
        follower = LogFollower(transport, state.node, state.source, INITIAL_LINES)
        async for batch in follower.batches():
            self.post_message(LogLinesRead(index, batch))

    async def on_unmount(self) -> None:
        """Stop the followers and wait until their commands have exited."""
        gc.set_threshold(*self._gc_threshold)
        workers = [w for w in self.app.workers if w.node is self and w.group == "logs"]
        for worker in workers:
            worker.cancel()
        waits = [worker.wait() for worker in workers]
        results = asyncio.gather(*waits, return_exceptions=True)
        try:
            await asyncio.wait_for(results, STOP_SECONDS)
        except TimeoutError:
            self.log.warning(f"log followers still running after {STOP_SECONDS} s")

    @on(LogSourceChecked)
    def source_checked(self, message: LogSourceChecked) -> None:
        state = self.sources[message.source]
        state.state, state.detail = message.state, message.detail
        self.update_status()

    @on(LogLinesRead)
    def lines_read(self, message: LogLinesRead) -> None:
        state = self.sources[message.source]
        for record in message.records:
            record.source = state.label
            self._track_state(state, record)
            if not record.marker:
                self._recognise(record)
        self._pending.extend(message.records)
        excess = len(self._pending) - self.buffer.capacity
        if excess > 0:
            del self._pending[:excess]
            self._pending_dropped += excess

    def _recognise(self, record: LogRecord) -> None:
        """Mark a line that matches a known failure signature and remember it."""
        matches = self.matcher.match_record(record)
        if not matches:
            return
        match = matches[0]
        signature = match.signature
        record.signature = signature.id
        self.format.known[signature.id] = signature.title
        # Removed first, so that the failure seen last moves to the end.
        self.known_seen.pop(signature.id, None)
        self.known_seen[signature.id] = KnownLine(match, record.node)

    def action_explain(self) -> None:
        """Explain the current line's known failure, else those seen, newest first."""
        row = next(
            (r for r in self.view.rows if r.seq == self.format.current_seq), None
        )
        if row is not None and row.record.signature:
            match = self.matcher.match_record(row.record)[0]
            current = KnownLine(match, row.record.node)
            self.app.push_screen(KnownFailureModal([current], current=True))
        elif self.known_seen:
            newest_first = list(reversed(self.known_seen.values()))
            self.app.push_screen(KnownFailureModal(newest_first))
        else:
            self.app.notify("no line matches a known failure", timeout=4)

    def _track_state(self, state: SourceState, record: LogRecord) -> None:
        if record.marker:
            state.state, state.detail = "reconnecting", record.message.strip("- ")
            return
        from_tail = tail_state(record.message) if state.source.kind == "file" else None
        if from_tail is not None:
            record.marker = True
            record.level = Level.WARNING
            # The file check before following stored the reason in plainer words.
            if from_tail[0] != state.state:
                state.state, state.detail = from_tail
            return
        state.lines += 1
        if state.state != "following":
            state.state, state.detail = "following", ""

    # -- drawing ------------------------------------------------------------------

    def flush(self) -> None:
        """Move records read since the last flush into the buffer and the view.

        Late records go to their place in time, also above the top of a paused
        view, which then scrolls so that its top row stays where it was.
        """
        if not self._pending:
            return
        records, self._pending = self._pending, []
        # NOTE: Context lines are chosen among each flush's records. A late
        # record inserted between earlier rows gets no context lines until the
        # view is filtered again.
        rows = self.selector.select(self.buffer.extend(records))
        view = self.view
        anchor = None if self.following else view.top_anchor()
        view.merge(rows)
        oldest = self.buffer.oldest
        if oldest is not None:
            view.trim_before((oldest.key, oldest.seq))
        if self.following:
            view.scroll_end(animate=False, x_axis=False)
        else:
            self.unseen += len(rows)
            view.scroll_to_anchor(anchor)
        view.refresh()
        self.update_status()

    def refilter(self) -> None:
        """Select the rows to show from the whole buffer again."""
        self.selector = RowSelector(self.rules)
        rows = self.selector.select(self.buffer)
        self.view.replace(rows)
        self.unseen = 0
        if self.following:
            self.view.scroll_end(animate=False, x_axis=False)
        self.update_status()

    def update_status(self) -> None:
        self.query_one("#logs-sources", Static).update(self.sources_text())
        self.query_one("#logs-status", Static).update(self.status_text())
        empty = self.empty_text()
        self.query_one("#logs-empty", Static).update(empty)
        self.set_class(bool(empty.plain), "empty")

    def sources_text(self) -> Text:
        if len(self.nodes) > 1:
            text = self._sources_by_node()
        else:
            text = Text()
            for number, state in enumerate(self.sources, start=1):
                style = "dim" if not state.enabled else ""
                text.append(f"{number} {state.label}", style=f"bold {style}")
                text.append(f" {state.describe()}\n", style=style)
        for note in self.notes:
            text.append(note + "\n", style="italic")
        text.rstrip()
        return text

    def _sources_by_node(self) -> Text:
        """Return one line per node with each source's number, label and state.

        With several nodes one line per source would not fit above the view.
        """
        text = Text()
        numbered = list(enumerate(self.sources, start=1))
        for node in self.nodes:
            text.append(f"{node}:", style="bold")
            for number, state in numbered:
                if state.node != node:
                    continue
                word = "hidden" if not state.enabled else state.state
                style = "dim" if not state.enabled else ""
                text.append(f"  {number} {state.label}", style=f"bold {style}")
                text.append(f" {word}", style=style)
            text.append("\n")
        return text

    def status_text(self) -> Text:
        buffer = self.buffer
        received = buffer.received + self._pending_dropped
        parts = [f"received {received}", f"shown {len(self.view.rows)}"]
        dropped = buffer.dropped + self._pending_dropped
        if dropped:
            parts.append(f"{dropped} lines dropped (buffer of {buffer.capacity})")
        if buffer.late:
            parts.append(f"{buffer.late} late lines out of time order")
        if self.known_seen:
            parts.append(f"{len(self.known_seen)} known failures (f explains)")
        parts.append(f"level {LEVEL_FILTERS[self.rules.level_index][0]}")
        if self.rules.include is not None:
            parts.append(f"include /{self.rules.include.pattern}/")
        if self.rules.exclude is not None:
            parts.append(f"exclude /{self.rules.exclude.pattern}/")
        if self.rules.context:
            parts.append(f"context {self.rules.context}")
        if self.format.search is not None:
            parts.append(f"search /{self.format.search.pattern}/")
        parts.append("times UTC" if self.format.show_time else "times hidden")
        if self.following:
            parts.append("following")
        else:
            parts.append(f"PAUSED, {self.unseen} new lines (space resumes)")
        text = Text(" | ".join(parts))
        if self.message:
            text.append("\n")
            text.append_text(self.message)
        return text

    def empty_text(self) -> Text:
        """Return why the view is empty, or empty text when it shows rows."""
        if self.view.rows:
            return Text()
        if not self.sources:
            reasons = self.notes or ["no log source was found"]
            return Text("Nothing to follow: " + "; ".join(reasons))
        if self.buffer.received:
            return Text(
                f"None of the {self.buffer.received} lines received matches the "
                "level, include and exclude filters."
            )
        states = [f"{s.label}: {s.describe()}" for s in self.sources]
        return Text("No lines yet. " + "; ".join(states))

    def say(self, message: str, error: bool = False) -> None:
        self.message = Text(message, style="bold red" if error else "")
        self.update_status()

    # -- actions ----------------------------------------------------------------

    def key_escape(self, event: events.Key) -> None:
        """Clear a text selection, and keep escape from going back as well.

        This replaces Screen._key_escape, which clears the selection but lets
        the key go on to the escape binding.
        """
        if self.selections:
            self.clear_selection()
            event.stop()

    def action_back(self) -> None:
        """Close an open filter box, else go back."""
        focused = self.focused
        if isinstance(focused, Input):
            focused.remove_class("visible")
            self.view.focus()
            return
        self.app.pop_screen()

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.unseen = 0
            self.view.scroll_end(animate=False, x_axis=False)
        self.update_status()

    def action_cycle_level(self) -> None:
        self.rules.level_index = (self.rules.level_index + 1) % len(LEVEL_FILTERS)
        self.refilter()

    def action_cycle_context(self) -> None:
        index = CONTEXT_CHOICES.index(self.rules.context)
        self.rules.context = CONTEXT_CHOICES[(index + 1) % len(CONTEXT_CHOICES)]
        if self.rules.include is None:
            self.say("context lines are shown around include matches; press / first")
        self.refilter()

    def action_toggle_time(self) -> None:
        self.format.show_time = not self.format.show_time
        self.view.redraw(TIME_CELLS if self.format.show_time else -TIME_CELLS)
        self.update_status()

    def action_toggle_wrap(self) -> None:
        self.view.set_wrap(not self.view.wrap)
        if self.following:
            # Wrapping adds lines below the end; stay at the newest line.
            self.view.call_after_refresh(
                self.view.scroll_end, animate=False, x_axis=False
            )

    def action_toggle_source(self, index: int) -> None:
        if index >= len(self.sources):
            self.say(f"there is no source {index + 1}")
            return
        state = self.sources[index]
        state.enabled = not state.enabled
        self.rules.hidden ^= {(state.node, state.label)}
        self.refilter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool:
        # A priority key typed into an open box is text, not a command.
        return not (action == "edit" and isinstance(self.focused, Input))

    def action_edit(self, which: str) -> None:
        box = self.query_one(f"#logs-{which}", Input)
        box.add_class("visible")
        # Widget.focus() would move the focus only after the keys already
        # queued, which would then reach the view as commands.
        self.set_focus(box)

    @on(Input.Submitted)
    def input_submitted(self, event: Input.Submitted) -> None:
        which = (event.input.id or "").removeprefix("logs-")
        try:
            pattern = compile_pattern(event.value)
        except re.error as exc:
            self.say(f"invalid {which} regex {event.value!r}: {exc}", error=True)
            return
        event.input.remove_class("visible")
        self.view.focus()
        self.message = Text()
        if which == "search":
            self.start_search(pattern)
        else:
            setattr(self.rules, which, pattern)
            self.refilter()

    # -- search -----------------------------------------------------------------

    def start_search(self, pattern: re.Pattern[str] | None) -> None:
        self.format.search = pattern
        self.format.current_seq = -1
        self.view.redraw()
        if pattern is not None:
            self.action_next_match()
        else:
            self.update_status()

    def action_next_match(self) -> None:
        self.find_match(1)

    def action_previous_match(self) -> None:
        self.find_match(-1)

    def find_match(self, step: int) -> None:
        pattern = self.format.search
        if pattern is None:
            self.say("no search: press s or ctrl+f to search")
            return
        rows = self.view.rows
        start = self._search_start(step)
        for offset in range(len(rows)):
            index = (start + step * offset) % len(rows)
            if pattern.search(self.format.render(rows[index]).plain):
                self.show_match(index)
                return
        self.say(f"no shown line matches /{pattern.pattern}/")

    def _search_start(self, step: int) -> int:
        rows = self.view.rows
        seqs = [row.seq for row in rows]
        if self.format.current_seq in seqs:
            return seqs.index(self.format.current_seq) + step
        top = self.view.scroll_offset.y
        if step > 0:
            return self.view.row_at(top)
        return self.view.row_at(top + self.view.size.height - 1)

    def show_match(self, index: int) -> None:
        view = self.view
        self.format.current_seq = view.rows[index].seq
        self.following = False
        view.redraw()
        view.scroll_to(
            y=max(0, view.line_of(index) - view.size.height // 2), animate=False
        )
        self.say(f"match on line {index + 1} of {len(view.rows)} (n next, N previous)")

    @on(LogView.RowClicked)
    def row_clicked(self, event: LogView.RowClicked) -> None:
        """Make the clicked row the current one; following pauses to keep it."""
        self.format.current_seq = event.row.seq
        self.following = False
        self.view.redraw()
        self.update_status()

    # -- copying ------------------------------------------------------------------

    def action_copy(self) -> None:
        """Copy the selected text, else the current row, else the last row shown.

        The text is what the view shows, so a credential the parsers masked is
        copied masked. The terminal receives it as an OSC 52 escape sequence.
        """
        selected = self.view.selected_row_count()
        if selected > COPY_MAX_LINES:
            self.say(
                f"the selection has {selected} lines, more than the {COPY_MAX_LINES} "
                "that copy takes; select fewer lines or save the view with ctrl+s",
                error=True,
            )
            return
        lines = self.view.selected_lines()
        if not lines:
            row = self.copy_target()
            if row is None:
                self.say("nothing to copy: no line is shown")
                return
            lines = [self.format.render(row).plain]
        self.app.copy_to_clipboard("\n".join(lines))
        count = len(lines)
        summary = "1 line" if count == 1 else f"{count} lines"
        self.app.notify(f"copied {summary} to the clipboard", timeout=3)

    def copy_target(self) -> LogRow | None:
        """Return the current row when it is on screen, else the last row shown."""
        view = self.view
        on_screen = view.visible_rows()
        for index in on_screen:
            if view.rows[index].seq == self.format.current_seq:
                return view.rows[index]
        return view.rows[on_screen[-1]] if on_screen else None

    # -- saving -------------------------------------------------------------------

    def action_save(self) -> None:
        """Ask for a path, then write the shown rows there in a thread worker."""
        rows = list(self.view.rows)
        if not rows:
            self.say("nothing to save: no line is shown")
            return
        saved = RowFormat(True, self.format.node_width, self.format.source_width)

        def lines() -> Iterable[str]:
            return (saved.render(row).plain + "\n" for row in rows)

        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = self.nodes[0] if len(self.nodes) == 1 else "fleet"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        default = saved_logs_dir() / f"{safe}-{stamp}.log"
        self.app.push_screen(SaveLogModal(default, len(rows), lines), self.saved)

    def saved(self, result: SavedFile | None) -> None:
        if result is None:
            return
        path, count = result
        summary = "1 line" if count == 1 else f"{count} lines"
        self.say(f"saved {summary} to {path}")
        self.app.notify(f"saved {summary} to {path}")
