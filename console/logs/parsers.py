"""Parsers for the log formats of journald, the snapshotter, nydusd and kubelet.

parse_text and parse_journal_json return a LogRecord for any input (a property
test checks this); a line no format matches is kept as it came, with level info.
The format parsers they try return None for a line that is not theirs.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable

from nydus_console.configs import mask_secrets, may_contain_secret
from nydus_console.logs.records import SYSLOG_PRIORITY, Level, LogRecord

# Longer messages are cut so that one huge line cannot exhaust the view.
MAX_MESSAGE = 64 * 1024

# logrus text: time="2024-01-17T16:14:22.998798369Z" level=info msg="..." k=v
_LOGRUS_PAIR = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_LOGRUS_START = re.compile(r'\s*(?:time="[^"]*"\s+)?level=\w+')
# nydusd: [2025-09-10 02:47:34.123456 +00:00] WARN [/src/backend/mod.rs:132] text
_NYDUSD = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([+-]\d\d:\d\d)\] "
    r"(TRACE|DEBUG|INFO|WARN|ERROR)\s+(?:\[([^\]]+:\d+)\] )?(.*)$",
    re.S,
)
# klog: E1212 11:34:51.360778     601 cri_stats_provider.go:455] "message" k="v"
_KLOG = re.compile(
    r"^([IWEF])(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+)\s+(\d+) ([^\]]+:\d+)\] (.*)$",
    re.S,
)
_KLOG_LEVELS = {"I": Level.INFO, "W": Level.WARNING, "E": Level.ERROR, "F": Level.FATAL}


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}… ({len(text) - MAX_MESSAGE} more characters cut)"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        # Without a backslash the quotes enclose the text as it is, and slicing
        # is far cheaper than json.loads, which matters at every log line.
        if "\\" not in value:
            return value[1:-1]
        try:
            unquoted: str = json.loads(value)
            return unquoted
        except ValueError:
            return value[1:-1]
    return value


def _rfc3339(text: str) -> float | None:
    """Parse RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    match = re.match(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text
    )
    if not match:
        return None
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    micro = (fraction or ".0")[:7].ljust(7, "0")
    try:
        when = datetime.datetime.fromisoformat(f"{base}{micro}{zone}")
    except ValueError:
        return None
    return when.timestamp()


def parse_logrus(node: str, source: str, line: str) -> LogRecord | None:
    """Parse a logrus text line (snapshotter, containerd); None if it is not one."""
    # A logrus line starts with its time or level; other text that merely
    # quotes one (systemd's "Started ... sh -c 'level=...'") is not one.
    if not _LOGRUS_START.match(line):
        return None
    pairs = {key: _unquote(value) for key, value in _LOGRUS_PAIR.findall(line)}
    if "level" not in pairs:
        return None
    message = pairs.pop("msg", "")
    level = Level.parse(pairs.pop("level"))
    timestamp = _rfc3339(pairs.pop("time", ""))
    return LogRecord(
        node,
        source,
        _clip(message),
        level,
        timestamp,
        {k: _clip(v) for k, v in pairs.items()},
        raw=line,
    )


def parse_nydusd(node: str, source: str, line: str) -> LogRecord | None:
    match = _NYDUSD.match(line)
    if not match:
        return None
    stamp, zone, level, location, message = match.groups()
    try:
        when = datetime.datetime.fromisoformat(f"{stamp.replace(' ', 'T')}{zone}")
        timestamp: float | None = when.timestamp()
    except ValueError:
        timestamp = None
    fields = {"location": location} if location else {}
    return LogRecord(
        node, source, _clip(message), Level.parse(level), timestamp, fields, raw=line
    )


def parse_klog(
    node: str, source: str, line: str, year: int | None = None
) -> LogRecord | None:
    """Parse a klog line (kubelet). klog has no year: the current one is assumed."""
    match = _KLOG.match(line)
    if not match:
        return None
    letter, month, day, clock, pid, location, rest = match.groups()
    year = year or datetime.datetime.now(datetime.UTC).year
    try:
        when = datetime.datetime.fromisoformat(
            f"{year}-{month}-{day}T{clock[:15]}+00:00"
        )
        timestamp: float | None = when.timestamp()
    except ValueError:
        timestamp = None
    message, fields = rest, {"pid": pid, "location": location}
    if rest.startswith('"'):
        end = re.match(r'"(?:[^"\\]|\\.)*"', rest)
        if end:
            message = _unquote(end.group(0))
            tail = rest[end.end() :]
            fields |= {k: _unquote(v) for k, v in _LOGRUS_PAIR.findall(tail)}
    return LogRecord(
        node, source, _clip(message), _KLOG_LEVELS[letter], timestamp, fields, raw=line
    )


TextParser = Callable[[str, str, str], "LogRecord | None"]
TEXT_PARSERS: tuple[TextParser, ...] = (parse_logrus, parse_nydusd, parse_klog)


def parse_structured(node: str, source: str, line: str) -> LogRecord | None:
    """Parse a line in one of the known text formats, or return None."""
    for parser in TEXT_PARSERS:
        record = parser(node, source, line)
        if record is not None:
            return record
    return None


def parse_text(node: str, source: str, line: str) -> LogRecord:
    """Parse a text line in any known format, or keep it raw."""
    record = parse_structured(node, source, line)
    if record is not None:
        return record
    level = Level.ERROR if line.lstrip().startswith("Error:") else Level.INFO
    return LogRecord(node, source, _clip(line), level, None, raw=line)


def _journal_message(value: object) -> str:
    """Return MESSAGE as text: journald sends binary data as a list of bytes."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(b & 0xFF for b in value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def parse_journal_json(node: str, source: str, line: str) -> LogRecord:
    """Parse one `journalctl -o json` line; the MESSAGE is parsed again as text."""
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        return parse_text(node, source, line)
    message = _journal_message(entry.get("MESSAGE"))
    record = parse_structured(node, source, message)
    if record is None:
        record = LogRecord(node, source, _clip(message), _priority(entry))
    try:
        record.timestamp = int(str(entry["__REALTIME_TIMESTAMP"])) / 1e6
    except (KeyError, ValueError):
        pass
    record.cursor = str(entry.get("__CURSOR", ""))
    unit = entry.get("_SYSTEMD_UNIT") or entry.get("SYSLOG_IDENTIFIER")
    if unit:
        record.fields.setdefault("unit", str(unit))
    if entry.get("_PID"):
        record.fields.setdefault("pid", str(entry["_PID"]))
    record.raw = line
    return record


def _priority(entry: dict[str, object]) -> Level:
    try:
        return SYSLOG_PRIORITY.get(int(str(entry.get("PRIORITY", 6))), Level.INFO)
    except ValueError:
        return Level.INFO


def masked(record: LogRecord) -> LogRecord:
    """Mask credential values in a record's message, fields and raw text."""
    # One check of all the text is much cheaper than masking each part, and
    # most lines contain no credential key at all.
    fields = " ".join(f"{k}={v}" for k, v in record.fields.items())
    if not may_contain_secret(f"{record.message}\n{record.raw}\n{fields}"):
        return record
    record.message = mask_secrets(record.message)
    record.raw = mask_secrets(record.raw)
    record.fields = {
        k: mask_secrets(f"{k}={v}").split("=", 1)[1] for k, v in record.fields.items()
    }
    return record
