"""Read and validate runbook files (assets/runbooks/<id>.toml).

A file that breaks a rule raises RunbookError with the file, the field and
what to write instead. The rules keep the one runner safe: parameters go
into single arguments only and never into the script of `sh -c`, every name
a placeholder uses exists, and a reboot is always marked destructive.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from nydus_console.checks import load_checks
from nydus_console.configedit.schema import KINDS
from nydus_console.runbooks.model import (
    CONDITION_TESTS,
    DEFAULT_REBOOT_TIMEOUT,
    DEFAULT_VERIFY_TIMEOUT,
    PLACEHOLDER,
    Condition,
    ConfigEdit,
    FileWrite,
    Param,
    Runbook,
    RunbookError,
    Step,
    placeholders,
)
from nydus_console.runbooks.params import FACT_PARAMS

RUNBOOK_KEYS = {"id", "title", "applies", "params", "step"}
STEP_KEYS = {
    "id",
    "title",
    "why",
    "on_failure",
    "check",
    "action",
    "edit",
    "write",
    "manual",
    "reboot",
    "destructive",
    "verify",
    "verify_timeout",
    "reboot_timeout",
    "settle",
    "continue_on_failure",
}
PARAM_KEYS = {"description", "default", "required", "query", "split"}
CONDITION_KEYS = {
    "command",
    "fact",
    "checks",
    "unit",
    "socket",
    "steps",
    "value",
    "needed_if",
    "ok_if",
}
ACTION_KINDS = ("action", "edit", "write", "manual", "reboot")
SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash")


class _Reader:
    """Typed access to one TOML table, naming the file and table in errors."""

    def __init__(self, where: str, table: Mapping[str, Any], allowed: set[str]):
        self.where = where
        self.table = table
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(
                f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(allowed))}"
            )

    def fail(self, message: str) -> None:
        raise RunbookError(f"{self.where}: {message}")

    def text(self, key: str, required: bool = True) -> str:
        value = self.table.get(key, "")
        if not isinstance(value, str):
            self.fail(f"{key} must be a string")
        if required and not value.strip():
            self.fail(f"{key} is missing or empty")
        return str(value)

    def flag(self, key: str) -> bool:
        value = self.table.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false")
        return bool(value)

    def seconds(self, key: str, default: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.fail(f"{key} must be a number of seconds, 0 or more")
        return float(value)

    def words(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{key} must be a list of strings")
        return tuple(value)


def runbook_directory() -> Any:
    return resources.files("nydus_console.assets").joinpath("runbooks")


@cache
def load_runbooks() -> dict[str, Runbook]:
    """Read every runbook shipped in the package, keyed by id."""
    entries = sorted(runbook_directory().iterdir(), key=lambda entry: entry.name)
    files = [(entry.name, entry.read_text()) for entry in entries]
    return parse_runbooks(files)


def parse_runbooks(files: Iterable[tuple[str, str]]) -> dict[str, Runbook]:
    """Parse (file name, text) pairs of `.toml` files; other names are ignored."""
    runbooks: dict[str, Runbook] = {}
    for name, text in files:
        if name.endswith(".toml"):
            runbook = parse_runbook(name, text)
            runbooks[runbook.id] = runbook
    return runbooks


def load_runbook_file(path: Path) -> Runbook:
    return parse_runbook(path.name, path.read_text())


def parse_runbook(name: str, text: str) -> Runbook:
    """Parse one runbook file and check every rule; raise RunbookError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunbookError(f"{name}: invalid TOML: {exc}") from None
    table = _Reader(name, data, RUNBOOK_KEYS)
    runbook_id = table.text("id")
    if name != f"{runbook_id}.toml":
        table.fail(f"id {runbook_id!r} must match the file name ({name})")
    params = _params(name, data.get("params", {}))
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        table.fail("needs at least one [[step]]")
    steps: list[Step] = []
    for index, raw in enumerate(raw_steps, start=1):
        steps.append(_step(f"{name}: step {index}", raw, steps, params))
    return Runbook(
        id=runbook_id,
        title=table.text("title"),
        applies=table.text("applies"),
        steps=tuple(steps),
        params=params,
        source=name,
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _params(name: str, raw: Any) -> dict[str, Param]:
    if not isinstance(raw, dict):
        raise RunbookError(f"{name}: params must be a table of tables")
    params: dict[str, Param] = {}
    for param_name, entry in raw.items():
        where = f"{name}: params.{param_name}"
        if not PLACEHOLDER.fullmatch(f"{{{param_name}}}"):
            raise RunbookError(f"{where}: names are lower-case letters, digits and _")
        if param_name in FACT_PARAMS:
            raise RunbookError(f"{where}: {param_name} is already a fact parameter")
        if not isinstance(entry, dict):
            raise RunbookError(f"{where}: must be a table")
        params[param_name] = _param(where, param_name, entry, params)
    return params


def _param(
    where: str, name: str, entry: Mapping[str, Any], known: Mapping[str, Param]
) -> Param:
    table = _Reader(where, entry, PARAM_KEYS)
    query = table.words("query")
    split = table.text("split", required=False) or "words"
    if split not in ("words", "lines"):
        table.fail("split must be words or lines")
    if query:
        _check_argv(table, "query", query, set(FACT_PARAMS) | set(known))
    return Param(
        name=name,
        description=table.text("description"),
        default=table.text("default", required=False),
        required=table.flag("required"),
        query=query,
        split=split,
    )


def _step(
    where: str, raw: Any, earlier: list[Step], params: Mapping[str, Param]
) -> Step:
    if not isinstance(raw, dict):
        raise RunbookError(f"{where}: must be a table")
    table = _Reader(where, raw, STEP_KEYS)
    step_id = table.text("id")
    table.where = f"{where} ({step_id})"

    if not PLACEHOLDER.fullmatch("{" + step_id.replace("-", "_") + "}"):
        table.fail("id must be lower-case words joined by -")
    if step_id in {step.id for step in earlier}:
        table.fail("id is used by an earlier step")

    names = set(FACT_PARAMS) | set(params)
    earlier_ids = {step.id for step in earlier}
    step = Step(
        id=step_id,
        title=table.text("title"),
        why=table.text("why"),
        on_failure=table.text("on_failure"),
        check=_conditions(table, "check", names, earlier_ids),
        action=table.words("action"),
        edit=_edit(table, names),
        write=_write(table, names),
        manual=table.text("manual", required=False),
        reboot=table.flag("reboot"),
        destructive=table.flag("destructive"),
        verify=_conditions(table, "verify", names, earlier_ids | {step_id}),
        verify_timeout=table.seconds("verify_timeout", DEFAULT_VERIFY_TIMEOUT),
        reboot_timeout=table.seconds("reboot_timeout", DEFAULT_REBOOT_TIMEOUT),
        settle=table.seconds("settle", 0.0),
        continue_on_failure=table.flag("continue_on_failure"),
    )

    _check_action(table, step, names)
    for key in ("title", "why", "on_failure", "manual"):
        _check_names(table, key, getattr(step, key), names)
    return step


def _check_action(table: _Reader, step: Step, names: set[str]) -> None:
    kinds = [kind for kind in ACTION_KINDS if table.table.get(kind)]
    if step.reboot:
        kinds = [kind for kind in kinds if kind != "action"]
    if len(kinds) != 1:
        table.fail(
            "needs exactly one of action, edit, write, manual or reboot, "
            f"found {kinds or 'none'}"
        )
    if step.action:
        _check_argv(table, "action", step.action, names)
    if step.reboot and not step.destructive:
        table.fail("a reboot step must be destructive = true")
    if step.manual and step.destructive:
        table.fail("a manual step runs nothing, so it cannot be destructive")


def _check_argv(
    table: _Reader, key: str, argv: tuple[str, ...], names: set[str]
) -> None:
    if not argv:
        table.fail(f"{key} is an empty command")
    if placeholders(argv[0]):
        table.fail(f"{key}: the program name {argv[0]!r} cannot be a parameter")
    for word in argv:
        _check_names(table, key, word, names)
    if argv[0] in SHELLS and "-c" in argv:
        script = argv.index("-c") + 1
        if script < len(argv) and placeholders(argv[script]):
            table.fail(
                f"{key}: the script of {argv[0]} -c cannot contain a placeholder; "
                'pass the value as an argument after it and use "$1"'
            )


def _check_names(table: _Reader, key: str, text: str, names: set[str]) -> None:
    for name in placeholders(text):
        if name not in names:
            table.fail(
                f"{key}: unknown parameter {{{name}}}; declare it under [params] "
                "or use a fact parameter (docs/runbooks.md lists them)"
            )


def _conditions(
    table: _Reader, key: str, names: set[str], step_ids: set[str]
) -> tuple[Condition, ...]:
    raw = table.table.get(key, [])
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        table.fail(f"{key} must be a table or a list of tables")
    test_key = "needed_if" if key == "check" else "ok_if"
    return tuple(
        _condition(
            _Reader(f"{table.where}: {key}", item, CONDITION_KEYS),
            test_key,
            names,
            step_ids,
        )
        for item in items
    )


def _condition(
    table: _Reader, test_key: str, names: set[str], step_ids: set[str]
) -> Condition:
    sources = [source for source in CONDITION_TESTS if source in table.table]
    if len(sources) != 1:
        table.fail("needs exactly one of command, fact, checks, unit or steps")
    source = sources[0]
    test = table.text(test_key)
    if test not in CONDITION_TESTS[source]:
        allowed = ", ".join(CONDITION_TESTS[source])
        table.fail(f"{test_key} = {test!r}: with {source} use one of {allowed}")
    condition = Condition(
        source=source,
        test=test,
        argv=table.words("command"),
        fact=table.text("fact", required=False),
        checks=table.words("checks"),
        unit=table.text("unit", required=False),
        socket=table.text("socket", required=False),
        steps=table.words("steps"),
        value=table.text("value", required=False),
    )
    _check_condition(table, condition, names, step_ids)
    return condition


def _check_condition(
    table: _Reader, condition: Condition, names: set[str], step_ids: set[str]
) -> None:
    if condition.argv:
        _check_argv(table, "command", condition.argv, names)
    if condition.fact and condition.fact not in names:
        table.fail(f"fact {condition.fact!r} is not a known parameter")
    for text in (condition.unit, condition.socket):
        _check_names(table, "unit", text, names)
    known_checks = {check.id for check in load_checks()}
    for check_id in condition.checks:
        if check_id not in known_checks:
            table.fail(f"checks: unknown health check {check_id!r}")
    for step_id in condition.steps:
        if step_id not in step_ids:
            table.fail(f"steps: {step_id!r} is not an earlier step")
    if condition.test in ("equals", "differs", "matches", "does-not-match"):
        if not condition.value:
            table.fail(f"{condition.test} needs a value")


def _edit(table: _Reader, names: set[str]) -> ConfigEdit | None:
    raw = table.table.get("edit")
    if raw is None:
        return None
    edit = _Reader(f"{table.where}: edit", raw, {"config", "set", "remove"})
    config = edit.text("config")
    if config not in KINDS:
        edit.fail(f"config must be one of {', '.join(KINDS)}")
    values = raw.get("set", {})
    if not isinstance(values, dict):
        edit.fail("set must be a table of key = value")
    for value in values.values():
        if isinstance(value, str):
            _check_names(edit, "set", value, names)
    remove = edit.words("remove")
    if not values and not remove:
        edit.fail("needs keys to set or remove")
    return ConfigEdit(config, tuple(values.items()), remove)


def _write(table: _Reader, names: set[str]) -> FileWrite | None:
    raw = table.table.get("write")
    if raw is None:
        return None
    write = _Reader(f"{table.where}: write", raw, {"path", "content"})
    path = write.text("path")
    content = write.text("content")
    _check_names(write, "path", path, names)
    _check_names(write, "content", content, names)
    return FileWrite(path, content)


def referenced_runbooks() -> dict[str, list[str]]:
    """Return the runbook ids that health checks name, with the checks naming each."""
    found: dict[str, list[str]] = {}
    for check in load_checks():
        if check.runbook:
            found.setdefault(check.runbook, []).append(check.id)
    return found
