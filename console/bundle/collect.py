"""Collect one node's support data with read-only commands.

The probe gives the facts, configs and findings. The collector then reads
the `--version` output of the three programs, /etc/os-release, /proc/mounts,
the snapshotter and containerd unit files with their drop-ins (`systemctl
cat`) and the last lines of every log source. A source that cannot be read
is recorded as a gap and the rest is still collected. A source with nothing
in it, such as the journal of a unit that is not installed, is listed as
such instead of stored as an empty file.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from nydus_console.bundle.model import NodeBundle
from nydus_console.diagnose import diagnose_texts, fold_findings
from nydus_console.facts import NodeFacts, ProcessInfo
from nydus_console.findings import Finding, Status
from nydus_console.fleet import Fleet, NodeReport
from nydus_console.logs.follow import LogSource, check_unit, rejects_output_fields
from nydus_console.logs.sources import plan_node_sources
from nydus_console.transport.base import CommandResult, Transport, TransportError

COMMAND_TIMEOUT = 60.0
Progress = Callable[[str], None]


async def collect_node(
    fleet: Fleet, name: str, lines: int, progress: Progress
) -> NodeBundle:
    """Probe a node and read its data; an unreachable node gets only its error."""
    spec = fleet.specs[name]
    bundle = NodeBundle(name, spec.address)
    progress(f"{name}: probing")
    report = await fleet.probe_node(name, full=True)
    if report.error is not None:
        bundle.error = report.error
        progress(f"{name}: unreachable ({report.error.kind})")
        return bundle
    collector = NodeCollector(report, fleet.transports[name], bundle, progress)
    try:
        await collector.collect(lines)
    except TransportError as exc:
        # The node went away while it was read: keep what was collected.
        bundle.missing("the rest of the node's data", f"{exc.kind}: {exc.message}")
    collector.add_findings()
    progress(f"{name}: collected {len(bundle.members)} files, {len(bundle.gaps)} gaps")
    return bundle


class NodeCollector:
    """Reads one reachable node into a NodeBundle."""

    def __init__(
        self,
        report: NodeReport,
        transport: Transport,
        bundle: NodeBundle,
        progress: Progress,
    ) -> None:
        assert report.facts is not None
        self.report = report
        self.facts: NodeFacts = report.facts
        self.transport = transport
        self.bundle = bundle
        self.progress = progress

    async def collect(self, lines: int) -> None:
        await self.versions()
        self.configs()
        self.facts_files()
        await self.mounts()
        await self.unit_files()
        await self.logs(lines)

    async def run(self, argv: list[str]) -> CommandResult:
        return await self.transport.run(argv, timeout=COMMAND_TIMEOUT)

    # -- versions --------------------------------------------------------------

    async def versions(self) -> None:
        self.progress(f"{self.bundle.name}: reading versions")
        summary = [f"kernel: {self.facts.kernel_release or 'unknown'}"]
        for component, (path, version) in sorted(self.facts.versions.items()):
            summary.append(f"{component}: {version or 'unknown'} ({path or 'absent'})")
            if path:
                await self._version_output(component, path)
        os_release = await self.run(["cat", "/etc/os-release"])
        if os_release.ok:
            summary.append(f"os: {_pretty_name(os_release.stdout)}")
            self.bundle.add("system/os-release", os_release.stdout, "/etc/os-release")
        else:
            self.bundle.missing("/etc/os-release", _reason(os_release))
        self.bundle.add(
            "versions.txt", "\n".join(summary) + "\n", "versions", diagnose=False
        )

    async def _version_output(self, component: str, path: str) -> None:
        result = await self.run([path, "--version"])
        name = path.rsplit("/", 1)[-1]
        if result.ok:
            text = result.stdout + result.stderr
            self.bundle.add(f"versions/{name}.txt", text, f"{path} --version")
        else:
            self.bundle.missing(f"{path} --version ({component})", _reason(result))

    # -- configs ---------------------------------------------------------------

    def configs(self) -> None:
        for path, read in sorted(self.facts.files.items()):
            if read.status == "ok":
                about = f"{path}, credentials masked"
                self.bundle.add(f"configs{path}", read.text, about)
            elif read.status == "missing":
                self.bundle.notes.append(f"{path} does not exist on the node")
            else:
                self.bundle.missing(path, read.status)

    # -- facts -----------------------------------------------------------------

    def facts_files(self) -> None:
        facts = self.facts
        self.bundle.add("facts/ps.txt", ps_table(facts.processes), "processes")
        if facts.plugins_output is not None:
            self.bundle.add(
                "facts/ctr-plugins.txt", facts.plugins_output, "ctr plugin ls"
            )
        self.bundle.add(
            "facts/sockets.txt", sockets_text(facts), "sockets", diagnose=False
        )
        self.bundle.add(
            "facts/units.txt", units_text(facts), "systemd units", diagnose=False
        )
        self.bundle.add(
            "facts/facts.json",
            json.dumps(facts_document(facts), indent=2, sort_keys=True) + "\n",
            "every fact the probe gathered",
            diagnose=False,
        )

    async def mounts(self) -> None:
        result = await self.run(["cat", "/proc/mounts"])
        if result.ok:
            self.bundle.add(
                "facts/mounts.txt", result.stdout, "/proc/mounts", diagnose=False
            )
        else:
            self.bundle.missing("/proc/mounts", _reason(result))

    async def unit_files(self) -> None:
        """Add the snapshotter's and containerd's unit files and drop-ins."""
        if not self.facts.systemd_running:
            self.bundle.notes.append("no unit files: systemd is not running")
            return
        paths = self.report.spec.paths
        for unit in dict.fromkeys((paths.snapshotter_unit, paths.containerd_unit)):
            result = await self.run(["systemctl", "cat", "--", unit])
            item = f"systemctl cat {unit}"
            if result.ok and result.stdout.strip():
                about = f"{item}: the unit file and its drop-ins"
                self.bundle.add(f"units/{unit}", result.stdout, about)
                continue
            state, why = await check_unit(self.transport, unit)
            if state == "no unit":
                self.bundle.without_entries(item, why)
            else:
                self.bundle.missing(item, why or _reason(result))

    # -- findings --------------------------------------------------------------

    def add_findings(self) -> None:
        self.bundle.findings = bundle_findings(self.report, self.bundle)
        shown = [f for f in self.bundle.findings if f.status != Status.SKIP]
        self.bundle.add(
            "findings.json",
            json.dumps([f.to_dict() for f in shown], indent=2) + "\n",
            "findings: the doctor checks and the matched signatures",
            diagnose=False,
        )
        self.bundle.add(
            "findings.txt",
            findings_text(shown),
            "the same findings as text",
            diagnose=False,
        )

    # -- logs ------------------------------------------------------------------

    async def logs(self, lines: int) -> None:
        sources, notes = plan_node_sources(self.report)
        self.bundle.notes += notes
        for index, source in enumerate(sources, 1):
            self.progress(
                f"{self.bundle.name}: reading log {index}/{len(sources)} "
                f"({source.target})"
            )
            await self._log(source, lines)

    async def _log(self, source: LogSource, lines: int) -> None:
        result = await self.run(source.command(lines, follow=False))
        if not result.ok and rejects_output_fields(result.stderr):
            plain = replace(source, output_fields=False)
            result = await self.run(plain.command(lines, follow=False))
        item = (
            f"journal of {source.target}" if source.kind == "journal" else source.target
        )
        if not result.ok:
            self.bundle.missing(item, _reason(result))
            return
        if not result.stdout.strip():
            self.bundle.without_entries(item, await self._why_empty(source))
            return
        count = len(result.stdout.splitlines())
        self.bundle.add(
            log_member(source), result.stdout, f"{item}, last {count} lines"
        )

    async def _why_empty(self, source: LogSource) -> str:
        if source.kind != "journal":
            return f"{source.target} is empty"
        state, why = await check_unit(self.transport, source.target)
        if state == "no unit":
            return why
        return f"the journal has no entries of {source.target}"


def log_member(source: LogSource) -> str:
    """Return where a source's lines go; the names tell diagnose their source."""
    if source.kind == "journal":
        return f"logs/journal/{source.target}.json"
    return "logs/files" + source.target


def ps_table(processes: list[ProcessInfo]) -> str:
    """Return the processes as a `ps` table, a zombie as `[comm] <defunct>`."""
    rows = ["    PID    PPID S COMMAND"]
    for process in processes:
        command = process.command
        if process.state == "Z":
            command = f"[{process.comm}] <defunct>"
        rows.append(f"{process.pid:>7} {process.ppid:>7} {process.state} {command}")
    return "\n".join(rows) + "\n"


def sockets_text(facts: NodeFacts) -> str:
    rows = [f"{path}: {state}" for path, state in sorted(facts.sockets.items())]
    rows += [f"nydusd API socket: {path}" for path in facts.api_sockets]
    rows += [f"{path}: {kind}" for path, kind in sorted(facts.path_types.items())]
    return "\n".join(rows) + "\n"


def units_text(facts: NodeFacts) -> str:
    blocks = []
    for name, unit in sorted(facts.units.items()):
        props = "\n".join(f"{k}={v}" for k, v in sorted(unit.properties.items()))
        blocks.append(f"[{name}]\n{props}")
    return "\n\n".join(blocks) + "\n"


def facts_document(facts: NodeFacts) -> dict[str, Any]:
    collected = datetime.datetime.fromtimestamp(facts.collected_at, datetime.UTC)
    return {
        "node": facts.node,
        "collected_at": collected.isoformat(timespec="seconds"),
        "kernel_release": facts.kernel_release,
        "devices": sorted(facts.devices),
        "filesystems": sorted(facts.filesystems),
        "systemd_running": facts.systemd_running,
        "units": {n: u.properties for n, u in facts.units.items()},
        "processes": [
            {"pid": p.pid, "ppid": p.ppid, "state": p.state, "command": p.command}
            for p in facts.processes
        ],
        "nydusd_cgroups": facts.nydusd_cgroups,
        "versions": {
            c: {"path": p, "version": v} for c, (p, v) in facts.versions.items()
        },
        "files": {path: read.status for path, read in facts.files.items()},
        "path_types": facts.path_types,
        "api_sockets": facts.api_sockets,
        "sockets": {path: str(state) for path, state in facts.sockets.items()},
    }


def _pretty_name(os_release: str) -> str:
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "unknown"


def _reason(result: CommandResult) -> str:
    detail = (result.stderr or result.stdout).strip().splitlines()
    text = detail[-1] if detail else ""
    return f"exit status {result.exit_status}" + (f": {text}" if text else "")


# -- findings ----------------------------------------------------------------------


def bundle_findings(report: NodeReport, bundle: NodeBundle) -> list[Finding]:
    """Return the doctor findings plus the signatures the collected files match.

    A signature that names a failing check adds its lines to that check, as
    `doctor` does; the others become findings of their own.
    """
    findings = [replace(f, evidence=list(f.evidence)) for f in report.findings]
    texts = [(m.path, m.text) for m in bundle.members if m.diagnose]
    known = {f.check for f in findings}
    found = [f for f in diagnose_texts(texts).findings if f.check not in known]
    return findings + fold_findings(found, findings)


def findings_text(findings: list[Finding]) -> str:
    lines: list[str] = []
    for finding in findings:
        lines.append(f"{finding.status.upper():<7} {finding.title}: {finding.message}")
        for evidence in finding.evidence:
            lines.append(f"    {evidence.source}:")
            lines += [f"      {line}" for line in evidence.lines]
        if finding.next_step:
            lines.append(f"    next step: {finding.next_step}")
    return "\n".join(lines) + "\n"
