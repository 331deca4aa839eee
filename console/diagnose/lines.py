"""Parse one line of collected text into a log record and name its source.

A line may carry a `journalctl` prefix (short, short-iso, short-precise,
short-full or short-monotonic output), be one `journalctl -o json` entry, or
be a logrus, nydusd or klog line as the log parsers read it. The source comes
from the journal identifier or unit when there is one, else from the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nydus_console.diagnose.catalogue import Catalogue, SourceRule
from nydus_console.logs.parsers import parse_journal_json, parse_text
from nydus_console.logs.records import LogRecord

_JOURNAL_SHORT = re.compile(
    r"^(?:"
    # short and short-precise: "Nov 13 09:05:19[.123456]"
    r"[A-Z][a-z]{2} [ 0-3]?\d \d\d:\d\d:\d\d(?:\.\d+)?"
    # short-full: "Mon 2023-11-13 09:05:19 UTC"
    r"|[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Z]\w*"
    # short-iso and short-iso-precise: "2023-11-13T09:05:19+0000"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    # short-monotonic: "[  123.456789]"
    r"|\[\s*\d+\.\d+\]"
    r") (?P<host>\S+) (?P<ident>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$",
    re.S,
)


def journal_short_parts(line: str) -> tuple[str, str] | None:
    """Return (identifier, message) of a journalctl short line, else None."""
    match = _JOURNAL_SHORT.match(line)
    if match is None:
        return None
    return match.group("ident"), match.group("message")


def is_journal_json(line: str) -> bool:
    return line.startswith("{") and '"MESSAGE"' in line


class SourceClassifier:
    """Maps journal identifiers, units, log labels and file names to a source."""

    def __init__(self, rules: tuple[SourceRule, ...]) -> None:
        self.rules = rules
        self._known: dict[str, str] = {}

    def by_name(self, name: str) -> str:
        """Return the source kind a name stands for, or "" when none does."""
        kind = self._known.get(name)
        if kind is None:
            kind = next((r.kind for r in self.rules if r.names.search(name)), "")
            if len(self._known) < 4096:
                self._known[name] = kind
        return kind

    def by_content(self, lines: list[str]) -> str:
        """Return the source kind whose content pattern one of `lines` matches."""
        for rule in self.rules:
            if rule.content is None:
                continue
            if any(rule.content.search(line) for line in lines):
                return rule.kind
        return ""


@dataclass
class ParsedLine:
    record: LogRecord
    source: str


def parse_line(
    line: str, default_source: str, classifier: SourceClassifier
) -> ParsedLine:
    """Parse a line in any supported format; the source falls back to the file's."""
    if is_journal_json(line):
        record = parse_journal_json("", default_source, line)
        unit = record.fields.get("unit", "")
        return ParsedLine(record, classifier.by_name(unit) or default_source)
    parts = journal_short_parts(line)
    if parts is not None:
        ident, message = parts
        # An identifier that names no known source leaves the source unknown,
        # so that every signature may match the line. k3s and rke2 log for
        # containerd and kubelet under one identifier.
        source = classifier.by_name(ident)
        record = parse_text("", ident, message)
        record.raw = line
        return ParsedLine(record, source)
    return ParsedLine(parse_text("", default_source, line), default_source)


def shown_line(line: str, record: LogRecord) -> str:
    """Return the text to quote as evidence of a line.

    A journal JSON entry is quoted as its unit, message and fields: its raw
    form starts with cursor and boot ids and hides the message.
    """
    if not is_journal_json(line):
        return line
    fields = " ".join(
        f'{key}="{value}"' for key, value in record.fields.items() if key != "unit"
    )
    unit = record.fields.get("unit") or record.source or "journal"
    text = f"{unit}: {record.message}"
    return f"{text} {fields}" if fields else text


def classifier_for(catalogue: Catalogue) -> SourceClassifier:
    return SourceClassifier(catalogue.sources)
