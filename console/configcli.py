"""`nydus-console config ...`: offline work on config files.

`config validate FILE...` checks snapshotter, nydusd and containerd configs
against their schemas and the config rules, without touching any node.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nydus_console.configedit.document import ConfigSyntaxError, Document, load_document
from nydus_console.configedit.schema import KINDS
from nydus_console.configedit.validate import (
    Problem,
    ValidationContext,
    syntax_problem,
    validate,
)

EXIT_USAGE = 64


def add_config_parser(commands: Any) -> Any:
    """Add the `config` command and its actions; return the actions' subparsers."""
    config = commands.add_parser(
        "config",
        help="validate, read or change snapshotter, nydusd and containerd configs",
        description="Work with the config files of nydus-snapshotter, nydusd "
        "and containerd.",
    )
    actions = config.add_subparsers(
        dest="config_command", metavar="ACTION", required=True
    )
    check = actions.add_parser(
        "validate",
        help="check config files offline",
        description="Check config files against the keys each program reads and "
        "the rules of the health checks, offline. Files given together are "
        "checked against each other (snapshotter root against containerd's, "
        "proxy plugin address, nydusd template). Exit status: 0 no problems, "
        f"1 warnings only, 2 errors, {EXIT_USAGE} invalid arguments or a file "
        "that cannot be read.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument(
        "--kind",
        choices=KINDS,
        help="the kind of every FILE (default: detected from content and name)",
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    return actions


def run_config(args: argparse.Namespace) -> int:
    if args.config_command == "validate":
        return run_validate(args.files, kind=args.kind or "", as_json=args.json)
    raise AssertionError(f"unhandled config action {args.config_command!r}")


@dataclass
class _Checked:
    path: Path
    text: str
    kind: str = ""
    document: Document | None = None
    problems: list[Problem] = field(default_factory=list)


def run_validate(files: list[Path], *, kind: str, as_json: bool) -> int:
    """Validate `files` and print their problems; return the exit status."""
    checked: list[_Checked] = []
    for path in files:
        try:
            checked.append(_load(path, kind))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(f"nydus-console: {exc}", file=sys.stderr)
            return EXIT_USAGE
    for item in checked:
        if item.document is not None:
            item.problems = validate(item.document, _context(item, checked))
    code = exit_status([p for item in checked for p in item.problems])
    if as_json:
        print(json.dumps(_report(checked, code), indent=2))
    else:
        print(render_problems(checked))
    return code


def _load(path: Path, kind: str) -> _Checked:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: it is not UTF-8 text") from None
    item = _Checked(path, text)
    try:
        item.document = load_document(kind, text, str(path))
        item.kind = item.document.kind
    except ConfigSyntaxError as exc:
        item.kind = kind
        item.problems = [syntax_problem(exc)]
    return item


def _context(item: _Checked, checked: list[_Checked]) -> ValidationContext:
    """Let the files given together inform each other's cross-file rules."""
    texts: dict[str, str] = {}
    for other in checked:
        if other is not item and other.document is not None:
            texts.setdefault(other.kind, other.text)
    # A nydusd config given with a snapshotter config is taken as its
    # [daemon] nydusd_config template, whatever path that key names.
    template = True if "snapshotter" in texts and item.kind == "nydusd" else None
    return ValidationContext(
        snapshotter_text=texts.get("snapshotter"),
        containerd_text=texts.get("containerd"),
        nydusd_text=texts.get("nydusd"),
        nydusd_template=template,
    )


def exit_status(problems: list[Problem]) -> int:
    if any(problem.severity == "error" for problem in problems):
        return 2
    return 1 if problems else 0


def render_problems(checked: list[_Checked]) -> str:
    lines: list[str] = []
    for item in checked:
        if not item.problems:
            lines.append(f"{item.path}: no problems ({item.kind} config)")
        for problem in item.problems:
            lines.append(render_problem(problem))
            if problem.fix:
                lines.append(f"    fix: {problem.fix}")
    problems = [p for item in checked for p in item.problems]
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    lines.append(f"{errors} error(s), {warnings} warning(s) in {len(checked)} file(s)")
    return "\n".join(lines)


def render_problem(problem: Problem) -> str:
    """Render `file:line:col: severity: key = value: message`."""
    where = ":".join(
        str(part) for part in (problem.file, problem.line, problem.column) if part
    )
    subject = ""
    if problem.key:
        subject = (
            f"{problem.key} = {problem.value}: "
            if problem.value
            else (f"{problem.key}: ")
        )
    return f"{where}: {problem.severity}: {subject}{problem.message}"


def _report(checked: list[_Checked], code: int) -> dict[str, Any]:
    return {
        "schema": "nydus-console/config-validate/v1",
        "exit_code": code,
        "files": [
            {
                "file": str(item.path),
                "kind": item.kind,
                "problems": [problem.to_dict() for problem in item.problems],
            }
            for item in checked
        ],
    }
