"""The runbook data model: a runbook, its parameters, steps and conditions.

Runbooks are TOML files under assets/runbooks/ (loader.py reads and validates
them). Nothing in this module runs on a node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# A placeholder in an argument: `{name}`. Values replace it inside one
# argument only, never inside a shell script.
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
DEFAULT_VERIFY_TIMEOUT = 30.0
DEFAULT_REBOOT_TIMEOUT = 900.0
REBOOT_ARGV = ("systemctl", "reboot")

# The tests of each condition source, as written in the runbook files.
CONDITION_TESTS: dict[str, tuple[str, ...]] = {
    "command": (
        "succeeds",
        "fails",
        "prints",
        "prints-nothing",
        "matches",
        "does-not-match",
    ),
    "fact": ("present", "absent", "equals", "differs"),
    "checks": ("pass", "fail"),
    "unit": ("steady",),
    "steps": ("ran", "failed"),
}


class RunbookError(ValueError):
    """An invalid runbook file; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Condition:
    """A test on the node, its health checks or the run so far.

    Exactly one source is set. `argv` is a command whose exit status or output
    decides, `fact` a parameter taken from the node's facts, `checks` health
    check ids, and `steps` earlier steps of this run. `unit` is a systemd unit
    that must stay active with the same main PID, and `socket`, if set, must
    accept connections.
    """

    source: str
    test: str
    argv: tuple[str, ...] = ()
    fact: str = ""
    checks: tuple[str, ...] = ()
    unit: str = ""
    socket: str = ""
    steps: tuple[str, ...] = ()
    # The value of `equals` and `differs`, and the regular expression of
    # `matches` and `does-not-match`.
    value: str = ""

    def describe(self) -> str:
        """Return the condition in words, with placeholders unresolved."""
        if self.source == "command":
            words = " ".join(self.argv)
            extra = f" /{self.value}/" if self.value else ""
            return f"`{words}` {self.test}{extra}"
        if self.source == "fact":
            extra = f" {self.value!r}" if self.value else ""
            return f"{self.fact} {self.test}{extra}"
        if self.source == "checks":
            return _describe_checks(self.checks, self.test)
        if self.source == "unit":
            socket = f" and {self.socket} accepts connections" if self.socket else ""
            return f"{self.unit} active with a steady main PID{socket}"
        verb = "ran" if self.test == "ran" else "failed"
        return f"step {' or '.join(self.steps)} {verb} in this run"


@dataclass(frozen=True)
class ConfigEdit:
    """Keys to set or remove in one of the node's config files."""

    config: str
    values: tuple[tuple[str, Any], ...] = ()
    remove: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{key} = {value!r}" for key, value in self.values]
        parts += [f"remove {key}" for key in self.remove]
        return f"in the {self.config} config: " + ", ".join(parts)


@dataclass(frozen=True)
class FileWrite:
    """A whole file to write atomically, with a backup of the old one."""

    path: str
    content: str


@dataclass(frozen=True)
class Step:
    """One step: whether it is needed, what it does, how success is checked."""

    id: str
    title: str
    why: str
    on_failure: str
    # The step is needed when every condition holds; none means always.
    check: tuple[Condition, ...] = ()
    action: tuple[str, ...] = ()
    edit: ConfigEdit | None = None
    write: FileWrite | None = None
    # Instructions for a step the operator does by hand.
    manual: str = ""
    reboot: bool = False
    destructive: bool = False
    verify: tuple[Condition, ...] = ()
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT
    reboot_timeout: float = DEFAULT_REBOOT_TIMEOUT
    # Seconds to wait after the action, before the verification starts.
    settle: float = 0.0
    continue_on_failure: bool = False

    @property
    def kind(self) -> str:
        if self.reboot:
            return "reboot"
        if self.edit is not None:
            return "edit"
        if self.write is not None:
            return "write"
        if self.manual:
            return "manual"
        return "command"

    @property
    def command(self) -> tuple[str, ...]:
        """Return the action's argument list, with placeholders unresolved."""
        if self.reboot and not self.action:
            return REBOOT_ARGV
        return self.action


@dataclass(frozen=True)
class Param:
    """A value the operator gives (`--param NAME=VALUE`), or one a query reads.

    A query is a read-only command run on the node; its output, split into
    lines or words, is the value.
    """

    name: str
    description: str
    default: str = ""
    required: bool = False
    query: tuple[str, ...] = ()
    split: str = "words"

    @property
    def from_operator(self) -> bool:
        return not self.query


@dataclass(frozen=True)
class Runbook:
    """A recovery procedure: when it applies and its ordered steps."""

    id: str
    title: str
    applies: str
    steps: tuple[Step, ...]
    params: dict[str, Param] = field(default_factory=dict)
    # The file it was read from and the sha256 of its text: an interrupted
    # run resumes only with the same text.
    source: str = ""
    digest: str = ""

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index_of(self, step_id: str) -> int:
        return [step.id for step in self.steps].index(step_id)


def _describe_checks(checks: tuple[str, ...], test: str) -> str:
    names = ", ".join(checks)
    if len(checks) == 1:
        return f"health check {names} {'passes' if test == 'pass' else 'fails'}"
    if test == "pass":
        return f"health checks {names} pass"
    return f"one of the health checks {names} fails"


def placeholders(text: str) -> list[str]:
    """Return the parameter names used in `text`, in order."""
    return PLACEHOLDER.findall(text)
