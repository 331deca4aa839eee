"""Incident reports: the audit log of a time window as a Markdown timeline.

The audit log records every action the console ran or refused, with its
time, node, command, exit status and the end of its output. Runbook steps
are actions named `RUNBOOK: step title`. Findings are not stored with
times, so a report shows the findings of the nodes involved as they are
when the report is written, marked "at report time".
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nydus_console import __version__, locations
from nydus_console.configs import mask_secrets
from nydus_console.diagnose import match_record
from nydus_console.findings import Finding, Status
from nydus_console.fleet import Fleet, NodeReport
from nydus_console.inventory import Inventory, NodeSpec, parse_node_argument
from nydus_console.logs.parsers import masked, parse_journal_json
from nydus_console.transport.base import TransportError

UTC = datetime.UTC
OUTPUT_LINES = 12
# Journal entries read per node for the window, the newest kept.
JOURNAL_LIMIT = 20_000
ACCEPTED_FORMS = (
    "ISO 8601 such as 2026-03-01T08:00:00Z or 2026-03-01 (UTC unless it "
    "names an offset), or a time before now such as 90s, 30m, 2h, 1d or 1h30m"
)
# The times a window may name: journalctl and the audit log take times as
# seconds since 1970, and Python's datetime ends with the year 9999.
EARLIEST = datetime.datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime.datetime(9999, 12, 31, tzinfo=UTC)
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TimeError(ValueError):
    """A --since or --until value that is not a time."""


def parse_moment(text: str, now: datetime.datetime, option: str) -> datetime.datetime:
    """Return the time `text` names: ISO 8601, `now`, or a duration before now.

    Raise TimeError for text that is not a time and for a time outside
    EARLIEST..LATEST, such as a duration that reaches before 1970.
    """
    value = text.strip()
    if value == "now":
        return now
    try:
        moment = _moment(value, now)
    except OverflowError:
        moment = None
    except ValueError:
        raise TimeError(
            f"{option} {text!r} is not a time; give {ACCEPTED_FORMS}"
        ) from None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise TimeError(
            f"{option} {text!r} is out of range; give a time from "
            f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}, as {ACCEPTED_FORMS}"
        )
    return moment


def _moment(value: str, now: datetime.datetime) -> datetime.datetime:
    """Parse a duration before now or an ISO 8601 time, as UTC."""
    if _DURATION.match(value):
        try:
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value))
        except ValueError:  # int() rejects numbers of more than 4300 digits
            raise OverflowError(value) from None
        return now - datetime.timedelta(seconds=seconds)
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# The result of an audit entry, for the summary's counts.
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUSED = "refused"
NOT_COMPLETED = "not completed"
# The `event` of the entries that follow an action without being one.
VERIFICATION = "verification"
RUN_END = "runbook run"


@dataclass
class AuditEntry:
    """One audit line in a window, with its time parsed.

    `verification` is the audited outcome of the step's verification that
    followed this action, when there was one.
    """

    time: datetime.datetime
    data: dict[str, Any]
    verification: AuditEntry | None = None

    @property
    def node(self) -> str:
        return str(self.data.get("node", ""))

    @property
    def action(self) -> str:
        return str(self.data.get("action", "?"))

    @property
    def event(self) -> str:
        return str(self.data.get("event", ""))

    @property
    def runbook(self) -> str:
        """Return the runbook of a runbook step (`RUNBOOK: step title`), or ""."""
        if self.event == RUN_END:
            return self.action
        if self.data.get("runbook"):
            return str(self.data["runbook"])
        head, sep, _ = self.action.partition(": ")
        return head if sep and " " not in head else ""

    @property
    def state(self) -> str:
        """Return SUCCEEDED, FAILED, REFUSED or NOT_COMPLETED.

        An action that exited 0 but whose verification failed has failed.
        A conversion is audited with outcome `succeeded` or `failed` and its
        exit status; without an exit status it did not complete.
        """
        outcome = str(self.data.get("outcome", ""))
        if self.event:
            return _event_state(self.event, outcome)
        if outcome == REFUSED:
            return REFUSED
        if outcome in ("ran", SUCCEEDED, FAILED) and _exit_status(self.data) != 0:
            return FAILED if _exit_status(self.data) is not None else NOT_COMPLETED
        if outcome not in ("ran", SUCCEEDED):
            return NOT_COMPLETED
        if self.verification is not None and self.verification.state != SUCCEEDED:
            return FAILED
        return SUCCEEDED

    @property
    def result(self) -> str:
        state = self.state
        data = self.data
        if self.event:
            return _event_result(self)
        if state == REFUSED:
            return f"refused: {data.get('reason', '')}"
        if state == NOT_COMPLETED:
            why = data.get("error") or data.get("outcome") or "no outcome recorded"
            return f"not completed: {why}"
        status = _exit_status(data)
        if state == FAILED and status != 0:
            error = f": {data['error']}" if data.get("error") else ""
            return f"failed (exit status {status}){error}"
        if state == FAILED and self.verification is not None:
            return f"failed: {_verification_text(self.verification)}"
        return SUCCEEDED

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED


def _exit_status(data: dict[str, Any]) -> int | None:
    """Return the recorded exit status: 0 when an action ran without one."""
    status = data.get("exit_status")
    if status is None and data.get("outcome") == "ran":
        return 0
    return status if isinstance(status, int) else None


def _event_state(event: str, outcome: str) -> str:
    if event == VERIFICATION:
        return SUCCEEDED if outcome == "verified" else FAILED
    if event == RUN_END:
        return SUCCEEDED if outcome == "completed" else FAILED
    return SUCCEEDED


def _event_result(entry: AuditEntry) -> str:
    data = entry.data
    if entry.event == VERIFICATION:
        return _verification_text(entry)
    if entry.event == RUN_END:
        outcome = str(data.get("outcome", "ended"))
        where = f" at step {data['stopped_at']}" if data.get("stopped_at") else ""
        return f"{outcome}{where}"
    return str(data.get("outcome", "recorded"))


def _verification_text(entry: AuditEntry) -> str:
    outcome = str(entry.data.get("outcome", "verification"))
    detail = str(entry.data.get("detail", ""))
    if entry.state == SUCCEEDED:
        return "verified"
    return f"{outcome}: {detail}" if detail else outcome


def attach_verifications(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Join each verification to the action it verified; return the other entries.

    A verification follows the run of its step's action on the same node,
    under the same action name. One without such an action (a manual step)
    stays an entry of its own.
    """
    kept: list[AuditEntry] = []
    last: dict[tuple[str, str], AuditEntry] = {}
    for entry in entries:
        key = (entry.node, entry.action)
        if entry.event == VERIFICATION:
            action = last.pop(key, None)
            if action is not None:
                action.verification = entry
                continue
        elif not entry.event:
            last[key] = entry
        kept.append(entry)
    return kept


@dataclass
class AuditWindow:
    """The audit entries between two times, and the lines that could not be read."""

    since: datetime.datetime
    until: datetime.datetime
    entries: list[AuditEntry] = field(default_factory=list)
    unreadable: int = 0
    # Entries of the window left out because their node was not asked for.
    left_out: int = 0
    left_out_nodes: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[str]:
        return list(dict.fromkeys(e.node for e in self.entries if e.node))


def read_window(
    path: Path,
    since: datetime.datetime,
    until: datetime.datetime,
    nodes: Iterable[str] = (),
) -> AuditWindow:
    """Read the audit entries of [since, until], of `nodes` when given, in order.

    The entries of the window that name another node are counted as left out.
    """
    wanted = set(nodes)
    window = AuditWindow(since, until)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return window
    for line in text.splitlines():
        entry = _entry(line)
        if entry is None:
            window.unreadable += bool(line.strip())
            continue
        if not since <= entry.time <= until:
            continue
        if not wanted or entry.node in wanted:
            window.entries.append(entry)
            continue
        window.left_out += 1
        if entry.node not in window.left_out_nodes:
            window.left_out_nodes.append(entry.node)
    window.entries.sort(key=lambda e: e.time)
    window.entries = attach_verifications(window.entries)
    return window


def _entry(line: str) -> AuditEntry | None:
    try:
        data = json.loads(line)
        moment = datetime.datetime.fromisoformat(str(data["time"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return AuditEntry(moment.astimezone(UTC), data)


# -- rendering -------------------------------------------------------------------


@dataclass
class ReportInput:
    """The inputs of a report: the audit window and the nodes as examined now."""

    window: AuditWindow
    audit_path: Path
    now: datetime.datetime
    # The nodes as checked at report time; None when no node was reached.
    examination: Examination | None = None
    # Where the nodes of the report come from, when the window was limited to
    # them: "inventory /path" or "the --node selection".
    scope: str = ""

    @property
    def checked(self) -> list[NodeReport] | None:
        return None if self.examination is None else self.examination.reports

    @property
    def sightings(self) -> list[Sighting]:
        return [] if self.examination is None else self.examination.sightings


def render_report(data: ReportInput) -> str:
    """Return the Markdown report: summary, timeline, findings at report time."""
    lines = [f"# Incident report: {_span(data.window)}", ""]
    lines += _summary(data)
    lines += ["", "## Timeline", ""]
    lines += _timeline(data) or ["Nothing was recorded in this window."]
    lines += ["", f"## Findings at report time ({_stamp(data.now)})", ""]
    lines += _findings_section(data.checked)
    lines += [
        "",
        "---",
        f"Written by nydus-console {__version__} from {data.audit_path}. "
        "Times are UTC. Credentials are masked as ***.",
    ]
    return mask_secrets("\n".join(lines)) + "\n"


def _summary(data: ReportInput) -> list[str]:
    window = data.window
    entries = window.entries
    lines = ["## Summary", "", f"- Window: {_span(window)}."]
    per_node = Counter(e.node or "(no node)" for e in entries)
    nodes = ", ".join(f"{n} ({c} entries)" for n, c in per_node.items())
    lines.append(f"- Nodes: {nodes or 'none in the audit log'}.")
    lines.append(f"- Actions: {_action_counts(entries)}.")
    runbooks = _runbook_runs(entries)
    if runbooks:
        lines.append(f"- Runbooks: {', '.join(runbooks)}.")
    operators = sorted({str(e.data.get("operator", "?")) for e in entries})
    if operators:
        lines.append(f"- Operators: {', '.join(operators)}.")
    failed = [e for e in entries if not e.ok and e.event != RUN_END]
    if failed:
        last = failed[-1]
        lines.append(
            f"- Last failed or refused: {_clock(last.time)} {last.node}: "
            f"{last.action}: {last.result}."
        )
    seen = dict.fromkeys(f"{s.title} on {s.node}" for s in data.sightings)
    if seen:
        lines.append(f"- Seen in the journals: {'; '.join(seen)}.")
    lines.append(f"- Now: {_now_summary(data.checked)}.")
    if window.left_out:
        lines.append(_left_out(data))
    if window.unreadable:
        lines.append(f"- Audit lines that could not be read: {window.unreadable}.")
    return lines


def _left_out(data: ReportInput) -> str:
    window = data.window
    count = len(window.left_out_nodes)
    nodes = "node" if count == 1 else "nodes"
    scope = f" outside {data.scope}" if data.scope else ""
    return (
        f"- Left out: {window.left_out} audit entries of {count} other {nodes}"
        f"{scope}; the audit log is shared by every inventory used on this machine."
    )


def _runbook_runs(entries: list[AuditEntry]) -> list[str]:
    """Return each runbook run on a node, with how it ended when that was audited."""
    runs: dict[str, str] = {}
    for entry in entries:
        if not entry.runbook:
            continue
        run = f"{entry.runbook} on {entry.node}"
        if entry.event == RUN_END:
            runs[run] = f"{run} ({entry.result})"
        else:
            runs.setdefault(run, run)
    return list(runs.values())


def _action_counts(entries: list[AuditEntry]) -> str:
    actions = [e for e in entries if e.event != RUN_END]
    if not actions:
        return "none"
    states = Counter(e.state for e in actions)
    ran = [e for e in actions if e.state in (SUCCEEDED, FAILED)]
    succeeded = states[SUCCEEDED]
    refused = states[REFUSED]
    broken = states[NOT_COMPLETED]
    parts = [f"{len(ran)} ran ({succeeded} succeeded, {len(ran) - succeeded} failed)"]
    if refused:
        parts.append(f"{refused} refused")
    if broken:
        parts.append(f"{broken} not completed")
    return ", ".join(parts)


def _now_summary(checked: list[NodeReport] | None) -> str:
    if checked is None:
        return "no node was checked for this report"
    if not checked:
        return "no node to check"
    return "; ".join(f"{r.spec.name} {_node_status(r)}" for r in checked)


def _node_status(report: NodeReport) -> str:
    if report.error is not None:
        return f"unreachable ({report.error.kind})"
    counts = Counter(f.status for f in report.findings)
    shown = [
        f"{counts[s]} {word}"
        for s, word in ((Status.FAIL, "failing"), (Status.WARN, "warning"))
        if counts[s]
    ]
    return ", ".join(shown) if shown else "ok"


def _timeline(data: ReportInput) -> list[str]:
    events: list[tuple[datetime.datetime, list[str]]] = [
        (entry.time, _entry_lines(entry)) for entry in data.window.entries
    ]
    events += [(s.time, _sighting_lines(s)) for s in data.sightings]
    events.sort(key=lambda event: event[0])
    lines: list[str] = []
    for _, block in events:
        lines += ["", *block]
    return lines[1:]


def _entry_lines(entry: AuditEntry) -> list[str]:
    title = entry.action
    if entry.event == RUN_END:
        title = f"runbook {entry.action} ended"
    elif entry.event == VERIFICATION:
        title = f"{entry.action}: verification"
    lines = [f"### {_clock(entry.time)} {entry.node or '-'}: {title}", ""]
    lines.append(f"- Result: {entry.result}")
    if entry.verification is not None:
        lines.append(f"- Verification: {_verification_text(entry.verification)}")
    if entry.event == RUN_END and entry.data.get("detail"):
        lines.append(f"- Detail: {entry.data['detail']}")
    lines.append(f"- Operator: {entry.data.get('operator', '?')}")
    written = written_path(entry.data)
    if written:
        lines.append(f"- Wrote: {written}")
        if entry.data.get("changes"):
            lines.append(f"- Changed: {entry.data['changes']}")
    elif entry.data.get("command"):
        lines.append(f"- Command: `{_inline(str(entry.data['command']))}`")
    for key, label in (("input", "Input"), ("key", "Host key")):
        if entry.data.get(key):
            lines.append(f"- {label}: {entry.data[key]}")
    return lines + _output(entry)


def written_path(data: dict[str, Any]) -> str:
    """Return the file a config write replaced, or "" for other entries.

    The path is an audit field; older entries have it only in the write
    script's command line (`sh -c SCRIPT write-file PATH ...`).
    """
    if data.get("path"):
        return str(data["path"])
    try:
        argv = shlex.split(str(data.get("command", "")))
    except ValueError:
        return ""
    if argv[:2] == ["sh", "-c"] and argv[3:4] == ["write-file"] and len(argv) > 4:
        return argv[4]
    return ""


def _sighting_lines(sighting: Sighting) -> list[str]:
    return [
        f"### {_clock(sighting.time)} {sighting.node}: seen: {sighting.title}",
        "",
        f"- Severity: {sighting.severity} ({sighting.check})",
        f"- Journal lines in the window: {sighting.count}; the first:",
        "",
        "  ```",
        f"  {sighting.line}",
        "  ```",
    ]


def _output(entry: AuditEntry) -> list[str]:
    text = "\n".join(
        str(entry.data[k]).strip() for k in ("stdout", "stderr") if entry.data.get(k)
    )
    if not text:
        return []
    shown = text.splitlines()
    if len(shown) > OUTPUT_LINES:
        shown = [f"[{len(shown) - OUTPUT_LINES} earlier lines left out]"] + shown[
            -OUTPUT_LINES:
        ]
    return [
        "- Output (the end of it):",
        "",
        "  ```",
        *[f"  {x}" for x in shown],
        "  ```",
    ]


def _findings_section(checked: list[NodeReport] | None) -> list[str]:
    if checked is None:
        return ["Not checked: the report was written without reaching the nodes."]
    if not checked:
        return ["No node was involved in this window."]
    lines: list[str] = []
    for report in checked:
        lines += [f"### {report.spec.name}: {_node_status(report)}", ""]
        if report.error is not None:
            lines += [f"Not reached: {report.error}", ""]
            continue
        problems = [f for f in report.findings if f.status in _SHOWN]
        lines += [_finding_line(f) for f in problems] or ["Every check passed."]
        lines.append("")
    return lines[:-1]


_SHOWN = (Status.FAIL, Status.WARN, Status.UNKNOWN)


def _finding_line(finding: Finding) -> str:
    line = f"- **{finding.status.upper()}** {finding.title}: {finding.message}"
    if finding.next_step:
        line += f" Next step: {finding.next_step}"
    return line


def _span(window: AuditWindow) -> str:
    return f"{_stamp(window.since)} to {_stamp(window.until)}"


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _inline(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")


# -- what the journals show -------------------------------------------------------


@dataclass
class Sighting:
    """A known failure in a node's journal: its first line in the window."""

    time: datetime.datetime
    node: str
    title: str
    check: str
    severity: str
    count: int
    line: str


def journal_command(
    units: Iterable[str], since: datetime.datetime, until: datetime.datetime
) -> list[str]:
    """Return journalctl reading the units' entries of the window (newest kept)."""
    argv = ["journalctl", "--no-pager", "-o", "json", "-n", str(JOURNAL_LIMIT)]
    for unit in units:
        argv += ["-u", unit]
    return argv + [
        "--since",
        f"@{int(since.timestamp())}",
        "--until",
        f"@{int(until.timestamp()) + 1}",
    ]


def sightings_in(node: str, lines: Iterable[str]) -> list[Sighting]:
    """Return one Sighting per signature the journal lines match, first line kept."""
    found: dict[str, Sighting] = {}
    for line in lines:
        if not line.strip():
            continue
        record = masked(parse_journal_json(node, "", line))
        if record.timestamp is None:
            continue
        for match in match_record(record):
            seen = found.get(match.check)
            if seen is not None:
                seen.count += 1
                continue
            found[match.check] = Sighting(
                datetime.datetime.fromtimestamp(record.timestamp, UTC),
                node,
                match.signature.title,
                match.check,
                match.signature.severity,
                1,
                record.message,
            )
    return sorted(found.values(), key=lambda s: s.time)


async def _node_sightings(
    fleet: Fleet, name: str, since: datetime.datetime, until: datetime.datetime
) -> list[Sighting]:
    paths = fleet.specs[name].paths
    argv = journal_command(
        (paths.snapshotter_unit, paths.containerd_unit), since, until
    )
    try:
        result = await fleet.transports[name].run(argv, timeout=60)
    except TransportError:
        return []
    return sightings_in(name, result.stdout.splitlines()) if result.ok else []


# -- nodes and files ---------------------------------------------------------------


def involved_specs(
    window: AuditWindow, inventory: Inventory, selected: bool
) -> list[NodeSpec]:
    """Return the nodes to check: the selected ones, or those the window names.

    A node of the audit log that the inventory lacks is reached at the
    address its entries recorded.
    """
    if selected:
        return list(inventory.nodes)
    known = {spec.name: spec for spec in inventory.nodes}
    specs: list[NodeSpec] = []
    for name in window.nodes:
        if name in known:
            specs.append(known[name])
            continue
        address = next(
            (
                str(e.data["address"])
                for e in window.entries
                if e.node == name and e.data.get("address")
            ),
            "",
        )
        if address and address != "local":
            specs.append(replace(parse_node_argument(address), name=name))
    return specs


@dataclass
class Examination:
    """The nodes as checked at report time, and what their journals showed."""

    reports: list[NodeReport] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)


async def examine_nodes(
    inventory: Inventory,
    specs: list[NodeSpec],
    since: datetime.datetime,
    until: datetime.datetime,
) -> Examination:
    """Run every check on the nodes, as `doctor` does, and read their journals.

    The nodes are reached with the inventory's settings (its known_hosts).
    """
    if not specs:
        return Examination()
    fleet = Fleet(replace(inventory, nodes=specs))
    try:
        await fleet.probe_all(full=True)
        return await fleet_examination(fleet, list(fleet.specs), since, until)
    finally:
        await fleet.close()


async def fleet_examination(
    fleet: Fleet,
    names: Iterable[str],
    since: datetime.datetime,
    until: datetime.datetime,
) -> Examination:
    """Take the fleet's latest reports of the nodes and read their journals."""
    reports = [fleet.reports[name] for name in names if name in fleet.specs]
    reachable = [r.spec.name for r in reports if r.facts is not None]
    found = await asyncio.gather(
        *(_node_sightings(fleet, name, since, until) for name in reachable)
    )
    sightings = sorted((s for group in found for s in group), key=lambda s: s.time)
    return Examination(reports, sightings)


async def write_last_hour(fleet: Fleet, audit_path: Path) -> Path:
    """Write the report of the last hour for the fleet's nodes; return its path.

    The findings are the fleet's latest probe of each node the hour involves.
    """
    now = datetime.datetime.now(UTC)
    since = now - datetime.timedelta(hours=1)
    window = read_window(audit_path, since, now, fleet.specs)
    examination = await fleet_examination(fleet, window.nodes, since, now)
    path = default_report_path(now)
    scope = f"the console's nodes ({fleet.inventory.source})"
    data = ReportInput(window, audit_path, now, examination, scope)
    text = render_report(data)
    await asyncio.to_thread(write_report, path, text)
    return path


def reports_dir() -> Path:
    return locations.state_dir() / "reports"


def default_report_path(now: datetime.datetime) -> Path:
    return reports_dir() / f"incident-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"


def write_report(path: Path, text: str) -> None:
    """Write a new file readable by its owner only; FileExistsError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
