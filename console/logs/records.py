"""One record type for every log line, whatever format it came in."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Level(enum.IntEnum):
    """Severity, ordered so that a filter can select "warning and worse"."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4
    FATAL = 5

    @classmethod
    def parse(cls, text: str) -> Level:
        """Map a level word of logrus, nydusd, klog or syslog to a Level."""
        return _LEVEL_WORDS.get(text.strip().lower(), Level.INFO)


_LEVEL_WORDS = {
    "trace": Level.TRACE,
    "debug": Level.DEBUG,
    "info": Level.INFO,
    "notice": Level.INFO,
    "warn": Level.WARNING,
    "warning": Level.WARNING,
    "error": Level.ERROR,
    "err": Level.ERROR,
    "fatal": Level.FATAL,
    "panic": Level.FATAL,
    "crit": Level.FATAL,
    "alert": Level.FATAL,
    "emerg": Level.FATAL,
    "i": Level.INFO,
    "w": Level.WARNING,
    "e": Level.ERROR,
    "f": Level.FATAL,
}

# journald PRIORITY (syslog severity) to Level.
SYSLOG_PRIORITY = {
    0: Level.FATAL,
    1: Level.FATAL,
    2: Level.FATAL,
    3: Level.ERROR,
    4: Level.WARNING,
    5: Level.INFO,
    6: Level.INFO,
    7: Level.DEBUG,
}


@dataclass
class LogRecord:
    """A parsed log line; `timestamp` is Unix seconds, None when the line has none."""

    node: str
    source: str
    message: str
    level: Level = Level.INFO
    timestamp: float | None = None
    fields: dict[str, str] = field(default_factory=dict)
    # The line as received, for "show raw" and for lines no parser understood.
    raw: str = ""
    # journald cursor of this entry; a follower resumes after it.
    cursor: str = ""
    # A marker line the console inserted (a gap, a reconnect), not a log line.
    marker: bool = False
    # Id of the known failure signature the line matches, "" for none.
    signature: str = ""


def compile_pattern(text: str) -> re.Pattern[str] | None:
    """Compile a filter that ignores case unless it contains an upper-case letter.

    Raises re.error for an invalid regular expression.
    """
    if not text:
        return None
    flags = 0 if any(c.isupper() for c in text) else re.IGNORECASE
    return re.compile(text, flags)
