"""`nydus-console diagnose PATH...`: match collected files against the signatures.

Offline: it reads only the files named (a directory stands for every file
under it, `-` for standard input) and reaches no node.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nydus_console import __version__
from nydus_console.diagnose import Diagnosis, diagnose_texts
from nydus_console.diagnose.inputs import read_path
from nydus_console.findings import Finding, Status

EXIT_USAGE = 64


def add_diagnose_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="find known failures in collected logs, configs and command output",
        description="Match journal exports, log files, configs, unit files and "
        "the output of ctr, kubectl, ps, lsof, nydusify and buildctl against "
        "the catalogue of known Nydus failures, offline. Each file's format is "
        "detected from its content. Exit status: 0 no findings, 1 warnings "
        f"only, 2 failures, {EXIT_USAGE} invalid arguments or a file that "
        "cannot be read.",
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
    stdin_text = sys.stdin.read() if "-" in args.paths else None
    for path in args.paths:
        try:
            found = read_path(path, stdin_text)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"nydus-console: cannot read {path}: {reason}", file=sys.stderr)
            return EXIT_USAGE
        if not found:
            print(f"nydus-console: {path} contains no files", file=sys.stderr)
            return EXIT_USAGE
        texts += found
    diagnosis = diagnose_texts(texts)
    if args.json:
        print(json.dumps(diagnosis_document(diagnosis), indent=2))
    else:
        print(render_diagnosis(diagnosis))
    return diagnosis.exit_code


def diagnosis_document(diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "schema": "nydus-console/diagnose/v1",
        "version": __version__,
        "exit_code": diagnosis.exit_code,
        "inputs": [
            {
                "file": item.name,
                "format": item.format,
                "source": item.source,
                "lines": len(item.text.splitlines()),
            }
            for item in diagnosis.inputs
        ],
        "versions": {
            component: {"version": found.version, "from": found.where}
            for component, found in diagnosis.versions.items()
        },
        "findings": [finding.to_dict() for finding in diagnosis.findings],
    }


_HEADINGS = ((Status.FAIL, "FAIL", "failures"), (Status.WARN, "WARN", "warnings"))


def render_diagnosis(diagnosis: Diagnosis) -> str:
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
    lines.append(f"read: {read}")
    lines.append(
        f"{failures} failure(s), {warnings} warning(s) in "
        f"{len(diagnosis.inputs)} file(s)"
    )
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
