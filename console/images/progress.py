"""Follow nydusify's log lines: stages, elapsed times, the last error.

nydusify logs through logrus to stderr. Without a terminal a line reads
`time="..." level=info msg="pulled image REF , elapse 2.5s" module=converter`;
on a terminal `INFO[0003] pulled image ...  module=converter`. The converter
logs, in order: `pulling image SRC`, `pulled image SRC [(cached N/M)], elapse
DUR`, `converting image SRC`, `converted image TARGET [...], elapse DUR`,
`pushing image TARGET`, `pushed image TARGET, elapse DUR`; build cache lines
(`pulling cache`, `pushed cache`, ...) may come between. Errors end the run
with `level=fatal` (exit status 1); only lines at level error, fatal or
panic count as an error. When a run ends, a stage still running ends as
failed or cancelled.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field

STAGES = ("pull", "convert", "push")
STARTED = {"pulling": "pull", "converting": "convert", "pushing": "push"}
FINISHED = {"pulled": "pull", "converted": "convert", "pushed": "push"}
TAIL_LINES = 200
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_TTY_LINE = re.compile(r"^(DEBU|INFO|WARN|ERRO|FATA|PANI)\[[^\]]*\]\s+(.*)$")
_TTY_LEVELS = {
    "DEBU": "debug",
    "INFO": "info",
    "WARN": "warning",
    "ERRO": "error",
    "FATA": "fatal",
    "PANI": "panic",
}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_STAGE_MESSAGE = re.compile(
    r"^(pulling|pulled|converting|converted|pushing|pushed) image ([^\s,]+)"
    r"(?:\s*(\(cached [0-9]+/[0-9]+\)))?\s*(?:,\s*elapse (\S+))?"
)


def go_duration(text: str) -> float | None:
    """Return the seconds of a Go duration such as 2.5s or 1m3.2s."""
    if text in ("0", "0s"):
        return 0.0
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return round(total, 9) if position == len(text) and position else None


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str
    fields: dict[str, str]
    raw: str


def _unquote(value: str) -> str:
    if value.startswith('"'):
        try:
            text = json.loads(value)
        except ValueError:
            return value.strip('"')
        return text if isinstance(text, str) else value
    return value


def parse_line(raw: str) -> LogLine:
    """Parse one logrus line (text or terminal format); other text is kept."""
    line = raw.rstrip()
    tty = _TTY_LINE.match(line)
    if tty:
        body, found = tty.group(2), {}
        module = re.search(r"\s+module=(\S+)$", body)
        if module:
            found["module"] = module.group(1)
            body = body[: module.start()]
        return LogLine(_TTY_LEVELS[tty.group(1)], body.strip(), found, raw)
    found = {m.group(1): _unquote(m.group(2)) for m in _FIELD.finditer(line)}
    if "msg" in found and "level" in found:
        return LogLine(found["level"], found["msg"], found, raw)
    return LogLine("", line, {}, raw)


@dataclass
class Stage:
    name: str
    state: str = "waiting"
    reference: str = ""
    elapsed: float | None = None
    cached: str = ""


@dataclass(frozen=True)
class StageEvent:
    """A stage started (`pulling`) or finished (`pulled`, with elapsed time)."""

    verb: str
    stage: str
    reference: str
    elapsed: float | None
    cached: str

    def describe(self) -> str:
        text = f"{self.verb} {self.reference}"
        if self.cached:
            text += f" {self.cached}"
        if self.elapsed is not None:
            text += f" in {self.elapsed:.1f} s"
        return text


@dataclass
class ConvertProgress:
    """Stages, messages and the last error of one nydusify run."""

    stages: dict[str, Stage] = field(
        default_factory=lambda: {name: Stage(name) for name in STAGES}
    )
    last_error: str = ""
    notes: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def feed(self, raw: str) -> StageEvent | None:
        """Take one output line; return the stage event it reports, if any."""
        self.tail.append(raw)
        line = parse_line(raw)
        if line.level in ("error", "fatal", "panic"):
            self.last_error = line.message
        elif line.message.startswith("try to pull with plain HTTP"):
            self.notes.append(line.message)
        match = _STAGE_MESSAGE.match(line.message) if line.level else None
        if match is None:
            return None
        verb, reference, cached, elapse = match.groups()
        stage_name = STARTED.get(verb) or FINISHED[verb]
        stage = self.stages[stage_name]
        stage.reference = reference
        stage.cached = cached or ""
        if verb in STARTED:
            stage.state = "running"
            elapsed = None
        else:
            stage.state = "done"
            elapsed = stage.elapsed = go_duration(elapse) if elapse else None
        return StageEvent(verb, stage_name, reference, elapsed, stage.cached)

    def summary(self) -> dict[str, dict[str, object]]:
        """Return each stage's state, elapsed seconds and cache text."""
        return {
            name: {
                "state": stage.state,
                "elapsed": stage.elapsed,
                "cached": stage.cached,
            }
            for name, stage in self.stages.items()
        }

    def end(self, state: str) -> None:
        """Mark every stage still running as `state` (failed or cancelled)."""
        for stage in self.stages.values():
            if stage.state == "running":
                stage.state = state

    def fallback_error(self) -> str:
        """Return the last error-level line, else the last line outside logrus.

        Info and warning lines are progress, not errors; a line without a
        logrus level is text such as the shell's `nydusify: not found`.
        """
        if self.last_error:
            return self.last_error
        for raw in reversed(self.tail):
            line = parse_line(raw)
            if raw.strip() and not line.level:
                return line.message
        return ""
