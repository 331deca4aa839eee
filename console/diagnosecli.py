"""`nydus-console diagnose PATH...`: match collected files against the signatures.

Offline: it reads only the files named (a directory stands for every file
under it, `-` for standard input) and reaches no node.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from nydus_console import __version__
from nydus_console.diagnose import Diagnosis, diagnose_texts
from nydus_console.diagnose.inputs import Skipped, read_inputs
from nydus_console.findings import Finding, Status

EXIT_USAGE = 64


def add_diagnose_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="find known failures in collected logs, configs and command output",
        description="Match journal exports, log files, configs, unit files and "
        "the output of ctr, kubectl, ps, lsof, nydusify and buildctl against "
        "the catalogue of known Nydus failures, offline. Each file's format is "
        "detected from its content; gzip is decompressed, and files that are "
        "compressed otherwise, binary or empty are listed as not analysed. "
        "Exit status: 0 no findings, 1 warnings only or a file not analysed, "
        f"2 failures, {EXIT_USAGE} invalid arguments, a file that cannot be "
        "read, or no file that could be analysed.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a file, a directory (every file under it) or - for standard input",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_diagnose(args: argparse.Namespace) -> int:
    texts: list[tuple[str, str]] = []
    skipped: list[Skipped] = []
    stdin = _read_stdin() if "-" in args.paths else None
    for path in args.paths:
        try:
            found, unread = read_inputs(path, stdin)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"nydus-console: cannot read {path}: {reason}", file=sys.stderr)
            return EXIT_USAGE
        if not found and not unread:
            print(f"nydus-console: {path} contains no files", file=sys.stderr)
            return EXIT_USAGE
        texts += found
        skipped += unread
    diagnosis = diagnose_texts(texts)
    code = exit_code(diagnosis, skipped)
    if args.json:
        print(json.dumps(diagnosis_document(diagnosis, skipped, code), indent=2))
    else:
        print(render_diagnosis(diagnosis, skipped))
    if not texts:
        print(
            "nydus-console: no file given could be analysed; see the reasons above",
            file=sys.stderr,
        )
    return code


def _read_stdin() -> bytes:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return bytes(buffer.read())
    return str(sys.stdin.read()).encode()


def exit_code(diagnosis: Diagnosis, skipped: list[Skipped]) -> int:
    """Return the findings' exit status, raised to 1 when a file was not analysed.

    With no file analysed at all it is EXIT_USAGE, because "no findings" would
    then mean nothing.
    """
    if not diagnosis.inputs:
        return EXIT_USAGE
    return max(diagnosis.exit_code, 1) if skipped else diagnosis.exit_code


def diagnosis_document(
    diagnosis: Diagnosis, skipped: list[Skipped] | None = None, code: int | None = None
) -> dict[str, Any]:
    return {
        "schema": "nydus-console/diagnose/v1",
        "version": __version__,
        "exit_code": diagnosis.exit_code if code is None else code,
        "inputs": [
            {
                "file": item.name,
                "format": item.format,
                "source": item.source,
                "lines": len(item.text.splitlines()),
            }
            for item in diagnosis.inputs
        ],
        "not_analysed": [
            {"file": item.name, "reason": item.reason} for item in skipped or []
        ],
        "versions": {
            component: {"version": found.version, "from": found.where}
            for component, found in diagnosis.versions.items()
        },
        "findings": [finding.to_dict() for finding in diagnosis.findings],
    }


_HEADINGS = ((Status.FAIL, "FAIL", "failures"), (Status.WARN, "WARN", "warnings"))


def render_diagnosis(diagnosis: Diagnosis, skipped: Sequence[Skipped] = ()) -> str:
    """Render findings grouped by severity, each with evidence and next step."""
    lines: list[str] = []
    for status, mark, heading in _HEADINGS:
        group = [f for f in diagnosis.findings if f.status == status]
        if not group:
            continue
        lines.append(f"== {heading} ({len(group)})")
        for finding in group:
            lines += render_finding(finding, mark)
    failures = sum(1 for f in diagnosis.findings if f.status == Status.FAIL)
    warnings = len(diagnosis.findings) - failures
    read = ", ".join(
        f"{i.name} ({_described(i.format, i.source)})" for i in diagnosis.inputs
    )
    if read:
        lines.append(f"read: {read}")
    lines += [f"NOT ANALYSED {item.name}: {item.reason}" for item in skipped]
    summary = (
        f"{failures} failure(s), {warnings} warning(s) in "
        f"{len(diagnosis.inputs)} file(s)"
    )
    if skipped:
        summary += f"; {len(skipped)} file(s) not analysed"
    lines.append(summary)
    return "\n".join(lines)


def _described(form: str, source: str) -> str:
    return f"{form}, {source}" if source and source != form else form


def render_finding(finding: Finding, mark: str) -> list[str]:
    lines = [f"{mark} {finding.title} [{finding.check}]", f"    {finding.message}"]
    for evidence in finding.evidence:
        for line in evidence.lines:
            lines.append(f"    {_located(evidence.source, line)}")
    if finding.next_step:
        lines.append(f"    next step: {finding.next_step}")
    if finding.runbook:
        lines.append(f"    runbook: {finding.runbook}")
    return lines


def _located(source: str, line: str) -> str:
    """Join a file and an evidence line `N: text` into `file:N: text`."""
    number, sep, rest = line.partition(": ")
    if sep and number.isdigit():
        return f"{source}:{number}: {rest}"
    return f"{source}: {line}"
