"""Render docs/runbooks.md from the runbook files (scripts/gen-runbook-reference)."""

from __future__ import annotations

from nydus_console.runbooks.loader import load_runbooks, referenced_runbooks
from nydus_console.runbooks.model import CONDITION_TESTS, Condition, Runbook, Step
from nydus_console.runbooks.params import FACT_PARAMS

HEADER = """\
# Runbook reference

Generated from `assets/runbooks/*.toml` by `scripts/gen-runbook-reference`;
edit the TOML, not this page. The user guide's Runbooks section describes
how to run them.

Every step has a check that decides whether it is needed, an action, a
verification that must hold afterwards and what to do when it fails. The
verification is polled until its timeout, 30 s unless the step sets another.
Values in braces come from the node or the operator. Each fills one argument
of the command and is never parsed by a shell. Destructive steps run only
after the node's name is typed (or given with `--yes-destructive NODE`).
"""

FORMAT = """\
## File format

One file per runbook, `assets/runbooks/<id>.toml`:

- `id`, `title`, `applies` (when the runbook applies, in plain words).
- `[params.NAME]`: a value the operator gives with `--param NAME=VALUE`
  (`description`, optional `default`, `required = true`), or one a
  read-only `query` command reads from the node (its output split into
  `words` or `lines`).
- `[[step]]`: `id`, `title`, `why`, `on_failure`, and exactly one of
  `action` (an argument list), `edit` (`config` = snapshotter, nydusd or
  containerd, `set` a table of keys and values, `remove` a list of keys),
  `write` (`path` and `content`, replaced atomically with a backup),
  `manual` (instructions for the operator) or `reboot = true` (runs
  `systemctl reboot`, or `action`, then waits for the node to go down and
  come back, for at most `reboot_timeout` seconds, default 900).
  `destructive = true` marks kill, removal of data and reboot steps;
  `continue_on_failure = true` lets later steps handle a failure;
  `settle` waits that many seconds before the verification;
  `verify_timeout` limits the verification.
- `check` (the step is needed when every condition holds; without one it
  always runs) and `verify` are a table or a list of tables with one
  source and its test: `needed_if` in a check, `ok_if` in a verification.

| source | tests |
|---|---|
"""

SOURCES = {
    "command": "`command = [...]`: a read-only command on the node; "
    "`matches` takes a regular expression in `value`",
    "fact": "`fact = NAME`: a parameter; `equals` and `differs` take `value`",
    "checks": "`checks = [...]`: health check ids; `pass` means ok or skipped (the "
    "check does not apply), `fail` means warn, fail or unknown",
    "unit": "`unit`, optional `socket`: active with the same main PID for 3 s",
    "steps": "`steps = [...]`: earlier steps of this run",
}


def runbook_reference() -> str:
    lines = [HEADER, FORMAT.rstrip("\n")]
    for source, tests in CONDITION_TESTS.items():
        lines.append(f"| {SOURCES[source]} | {', '.join(tests)} |")
    lines += ["", "## Values from the node", "", "| name | value |", "|---|---|"]
    for name, param in FACT_PARAMS.items():
        lines.append(f"| `{{{name}}}` | {param.description} |")
    lines.append("")
    checks = referenced_runbooks()
    for runbook in sorted(load_runbooks().values(), key=lambda r: r.id):
        lines += _runbook_section(runbook, checks.get(runbook.id, []))
    return "\n".join(lines).rstrip() + "\n"


def _runbook_section(runbook: Runbook, checks: list[str]) -> list[str]:
    lines = [f"## {runbook.title}", "", f"`{runbook.id}`"]
    if checks:
        lines[-1] += ", named by the checks " + ", ".join(f"`{c}`" for c in checks)
    lines += ["", _flat(runbook.applies), ""]
    for param in runbook.params.values():
        if param.from_operator:
            how = " (required)" if param.required else ""
            if param.default:
                how = f" (default `{param.default}`)"
            lines.append(f"- `--param {param.name}=...`{how}: {param.description}")
        else:
            query = " ".join(param.query)
            lines.append(f"- `{{{param.name}}}`: {param.description}: `{query}`")
    if runbook.params:
        lines.append("")
    for number, step in enumerate(runbook.steps, start=1):
        lines += _step_section(number, step)
    return lines


def _step_section(number: int, step: Step) -> list[str]:
    mark = " (destructive)" if step.destructive else ""
    lines = [f"### {number}. {step.title}{mark}", "", _flat(step.why), ""]
    lines.append(f"- Needed when: {_conditions(step.check) or 'always'}")
    lines.append(f"- Does: {_action(step)}")
    if step.verify:
        limit = f" (within {step.verify_timeout:g} s)"
        lines.append(f"- Verified by: {_conditions(step.verify)}{limit}")
    if step.continue_on_failure:
        lines.append("- A failure does not stop the run.")
    lines += [f"- On failure: {_flat(step.on_failure)}", ""]
    return lines


def _conditions(conditions: tuple[Condition, ...]) -> str:
    return "; and ".join(_escape(c.describe()) for c in conditions)


def _action(step: Step) -> str:
    if step.kind == "reboot":
        return f"reboot with `{' '.join(step.command)}` and wait for the node"
    if step.edit is not None:
        return _escape(step.edit.describe())
    if step.write is not None:
        return f"write `{step.write.path}` (atomically, with a backup)"
    if step.manual:
        return "by hand: " + _flat(step.manual)
    return f"`{' '.join(step.command)}`"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
