"""Follow `buildctl build --progress plain`: build steps, times, the last error.

buildctl writes its progress to stderr, one vertex (build step) per `#N`
number. The first line of a vertex names it. Later lines of the same
number are its status, its command output (prefixed by the seconds since
the step started) or its end:

    #5 [2/3] RUN make
    #5 0.215 cc -o app main.c
    #5 DONE 1.3s
    #6 [3/3] COPY app /bin/app
    #6 CACHED
    #7 exporting to image
    #7 exporting layers 0.4s done
    #7 pushing layers
    #7 pushing layers 2.1s done
    #7 DONE 2.6s

A failed step ends with `#N ERROR: message`, a cancelled one with
`#N CANCELED`. buildctl then prints `error: failed to solve: ...` (other
buildkit clients print `ERROR: ...`) and exits with status 1. When the
output switches to another step, buildctl prints `#N ...` for the step it
leaves and the header again when it comes back. A step that never started
ends with `#N DONE` and no time.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nydus_console.images.progress import TAIL_LINES

_VERTEX = re.compile(r"^#([0-9]+) (.*)$")
_DONE = re.compile(r"^DONE(?: ([0-9]+(?:\.[0-9]+)?)s)?$")
_OUTPUT = re.compile(r"^[0-9]+\.[0-9]+ ")
_STATUS_DONE = re.compile(r"^(.*?)(?:\s+[0-9]+(?:\.[0-9]+)?s)?\s+done$")
_TOP_ERROR = re.compile(r"^(?:ERROR|error): (.*)$")


@dataclass
class BuildStep:
    """One vertex of the build: `[2/3] RUN make`, `exporting to image`."""

    number: int
    name: str
    state: str = "running"
    elapsed: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class BuildEvent:
    """A step started, finished (done, cached, error, canceled) or moved on."""

    verb: str
    number: int
    name: str
    elapsed: float | None = None
    detail: str = ""

    def describe(self) -> str:
        text = f"#{self.number} {self.verb}: {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.elapsed is not None:
            text += f" in {self.elapsed:.1f} s"
        return text


@dataclass
class BuildProgress:
    """Steps, the last error and the output tail of one buildctl run."""

    steps: dict[int, BuildStep] = field(default_factory=dict)
    last_error: str = ""
    notes: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def feed(self, raw: str) -> BuildEvent | None:
        """Parse one output line and return the step event it reports, if any."""
        self.tail.append(raw)
        line = raw.rstrip()
        vertex = _VERTEX.match(line)
        if vertex is None:
            top = _TOP_ERROR.match(line)
            if top:
                self.last_error = top.group(1)
            return None
        number, rest = int(vertex.group(1)), vertex.group(2)
        step = self.steps.get(number)
        if step is None:
            self.steps[number] = BuildStep(number, rest)
            return BuildEvent("started", number, rest)
        return self._update(step, rest)

    def _update(self, step: BuildStep, rest: str) -> BuildEvent | None:
        # `#N ...` marks where buildctl switches to another step's output.
        if rest in (step.name, "...") or _OUTPUT.match(rest):
            return None
        done = _DONE.match(rest)
        if done:
            step.state = "done"
            step.elapsed = float(done.group(1)) if done.group(1) else None
            return BuildEvent("done", step.number, step.name, step.elapsed)
        if rest in ("CACHED", "CANCELED"):
            step.state = rest.lower()
            return BuildEvent(step.state, step.number, step.name)
        if rest.startswith("ERROR: "):
            step.state = "error"
            step.detail = self.last_error = rest[len("ERROR: ") :]
            return BuildEvent("error", step.number, step.name, detail=step.detail)
        return self._status(step, rest)

    def _status(self, step: BuildStep, rest: str) -> BuildEvent | None:
        finished = _STATUS_DONE.match(rest)
        detail = finished.group(1) if finished else rest
        if detail == step.detail:
            return None
        step.detail = detail
        # Layer transfers (`sha256:... 1.2MB / 3.4MB 0.5s`) change too often
        # to report each; named phases such as `pushing layers` are events.
        if detail.startswith("sha256:"):
            return None
        return BuildEvent("status", step.number, step.name, detail=detail)

    def end(self, state: str) -> None:
        """Mark every step still running as `state` (failed or cancelled)."""
        for step in self.steps.values():
            if step.state == "running":
                step.state = state

    def summary(self) -> dict[str, dict[str, Any]]:
        """Return each step by number with its name, state and elapsed time."""
        return {
            str(step.number): {
                "name": step.name,
                "state": step.state,
                "elapsed": step.elapsed,
                "detail": step.detail,
            }
            for step in self.steps.values()
        }

    def fallback_error(self) -> str:
        """Return the last error, else the last non-empty output line."""
        if self.last_error:
            return self.last_error
        for raw in reversed(self.tail):
            if raw.strip():
                return raw.strip()
        return ""
