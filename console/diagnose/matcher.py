"""Match log lines against the pattern signatures, cheaply enough for every line.

A line is lower-cased once and searched for the catalogue's keywords; only the
signatures whose keyword occurs run their regex. Most log lines contain no
keyword, so they cost one `lower()` and one substring search per keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from nydus_console.diagnose.catalogue import Catalogue, Signature, load_catalogue
from nydus_console.diagnose.lines import SourceClassifier, parse_line, shown_line
from nydus_console.logs.records import LogRecord

# Only the head of a longer line is searched. Error chains that signatures
# match are shorter, and the bound keeps a hostile line from costing
# seconds in every regex.
MAX_MATCH_CHARS = 8192
# Record fields that never carry an error text.
_QUIET_FIELDS = frozenset({"unit", "pid", "location", "time", "level"})


@dataclass(frozen=True)
class SignatureMatch:
    """One line that matched one signature.

    `text` is the line as read (the raw log line when there is one),
    `source` the source kind it came from ("" when unknown), `location` the
    file or log label, `line_number` its 1-based number in the file when known.
    `groups` are the pattern's named groups that matched.
    """

    signature: Signature
    text: str
    source: str = ""
    location: str = ""
    line_number: int | None = None
    groups: dict[str, str] = field(default_factory=dict)

    @property
    def check(self) -> str:
        """The id of the finding this match belongs to, `sig.<id>`."""
        return self.signature.check_id


def record_text(record: LogRecord) -> str:
    """Return the text signatures search: the message, then the fields' values."""
    text = record.message
    if record.fields:
        extra = " ".join(
            f"{key}={value}"
            for key, value in record.fields.items()
            if key not in _QUIET_FIELDS
        )
        if extra:
            text = f"{text} {extra}"
    return text[:MAX_MATCH_CHARS]


def _groups(match_groups: dict[str, str | None]) -> dict[str, str]:
    """Merge alternatives named `path`, `path2` ... into `path`."""
    groups: dict[str, str] = {}
    for name, value in match_groups.items():
        if value is not None:
            groups.setdefault(name.rstrip("0123456789"), value)
    return groups


class SignatureMatcher:
    """Compiled pattern signatures and a keyword index over them."""

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self.catalogue = catalogue or load_catalogue()
        self.classifier = SourceClassifier(self.catalogue.sources)
        self._patterns = tuple(
            s for s in self.catalogue.signatures if s.pattern is not None
        )
        index: dict[str, list[int]] = {}
        for position, signature in enumerate(self._patterns):
            if signature.absent:
                continue
            for keyword in signature.keywords:
                index.setdefault(keyword, []).append(position)
        self._keywords = tuple((k, tuple(v)) for k, v in index.items())

    def source_of(self, record: LogRecord) -> str:
        """Return the source kind of a record from the live log view."""
        return self.classifier.by_name(record.fields.get("unit") or record.source)

    def match_record(self, record: LogRecord) -> list[SignatureMatch]:
        """Return the signatures one parsed log record matches.

        Signatures that need several lines (`min_count`) or the absence of
        a line are left out: one record cannot decide them.
        """
        if record.marker:
            return []
        matches = self.match_line(
            record_text(record), self.source_of(record), shown=record.raw
        )
        return [m for m in matches if m.signature.min_count == 1]

    def match_text(self, text: str, source: str = "") -> list[SignatureMatch]:
        """Match every line of `text`, such as a command's output.

        `source` is the source kind of the text ("" when unknown). A line with
        a journalctl prefix or a journal JSON entry has its own source. Line
        numbers count from 1.
        """
        found: list[SignatureMatch] = []
        for number, line in enumerate(text.splitlines(), 1):
            parsed = parse_line(line, source, self.classifier)
            found += self.match_line(
                record_text(parsed.record),
                parsed.source,
                shown=shown_line(line, parsed.record),
                line_number=number,
            )
        return found

    def match_line(
        self,
        text: str,
        source: str,
        *,
        shown: str = "",
        location: str = "",
        line_number: int | None = None,
    ) -> list[SignatureMatch]:
        """Match the searchable text of one line; `shown` is the evidence text."""
        text = text[:MAX_MATCH_CHARS]
        found = [
            SignatureMatch(
                signature,
                shown or text,
                source,
                location,
                line_number,
                _groups(match.groupdict()),
            )
            for signature, match in self._search(text, source)
        ]
        if len(found) < 2:
            return found
        superseded = {name for m in found for name in m.signature.supersedes}
        return [m for m in found if m.signature.id not in superseded]

    def _search(
        self, text: str, source: str
    ) -> Iterator[tuple[Signature, re.Match[str]]]:
        lowered = text.lower()
        hit: set[int] = set()
        for keyword, positions in self._keywords:
            if keyword in lowered:
                hit.update(positions)
        for position in sorted(hit):
            signature = self._patterns[position]
            if not signature.applies_to(source):
                continue
            assert signature.pattern is not None
            match = signature.pattern.search(text)
            if match is not None:
                yield signature, match

    def pattern_signatures(self) -> tuple[Signature, ...]:
        return self._patterns


@cache
def default_matcher() -> SignatureMatcher:
    """Return the matcher of the shipped catalogue, built once."""
    return SignatureMatcher()


def match_record(record: LogRecord) -> list[SignatureMatch]:
    """Return the signatures a parsed log record matches (shipped catalogue)."""
    return default_matcher().match_record(record)


def match_text(text: str, source: str = "") -> list[SignatureMatch]:
    """Match every line of `text` against the shipped catalogue."""
    return default_matcher().match_text(text, source)
