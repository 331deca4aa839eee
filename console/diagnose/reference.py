"""Render docs/signatures.md from the signature catalogue."""

from __future__ import annotations

from nydus_console.diagnose.catalogue import Clause, Signature, load_catalogue
from nydus_console.diagnose.fold import fill

_HEADER = """# Signature reference

Generated from `assets/signatures.toml` by `scripts/gen-signature-reference`;
edit the TOML, not this page. `nydus-console diagnose`, `doctor`, the node
screen and the log view match these signatures. A finding of a signature has
the check id `sig.<id>`; `runbook` names the recovery runbook, when one fits.

A signature matches in one of three ways:

- **pattern**: a regular expression searched in each line of the sources
  named (every source when none is named). Log lines are parsed first, so the
  pattern is searched in the message and fields of a journald, logrus, nydusd
  or klog line, without its prefix.
- **condition**: facts from config files, systemd unit files and versions
  that must hold together.
- **config problem**: a problem that `config validate` reports in a config
  file given to `diagnose`.
"""


def signature_reference() -> str:
    """Return the Markdown reference of every signature, in catalogue order."""
    lines = [_HEADER]
    for signature in load_catalogue().signatures:
        lines += _section(signature)
    return "\n".join(lines).rstrip() + "\n"


def _section(signature: Signature) -> list[str]:
    runbook = f", runbook `{signature.runbook}`" if signature.runbook else ""
    lines = [
        f"## {signature.title}",
        "",
        f"`sig.{signature.id}`, {signature.severity}{runbook}.",
        "",
        fill(signature.explanation, {}),
        "",
        f"Matches: {_matches(signature)}",
        "",
    ]
    if signature.examples:
        lines += ["Example:", "", "```", signature.examples[0], "```", ""]
    lines += [f"Next step: {fill(signature.next_step, {})}", ""]
    return lines


def _matches(signature: Signature) -> str:
    if signature.pattern is not None:
        where = ", ".join(sorted(signature.sources)) or "any source"
        how = "no line matches" if signature.absent else "a line matches"
        text = f"{how} `{signature.pattern.pattern}` ({where})"
        if signature.min_count > 1:
            per = f" with the same {signature.count_by}" if signature.count_by else ""
            text += f", at least {signature.min_count} lines of one file{per}"
        return text
    if signature.when_any:
        groups = [" and ".join(map(_clause, group)) for group in signature.when_any]
        return "; or ".join(groups)
    problem = signature.problem
    assert problem is not None
    parts = [f"{problem.severity or 'any'} problem"]
    if problem.kinds:
        parts.append(f"in a {' or '.join(problem.kinds)} config")
    if problem.key is not None:
        parts.append(f"on a key matching `{problem.key.pattern}`")
    if problem.message is not None:
        parts.append(f"with a message matching `{problem.message.pattern}`")
    return "`config validate` reports an " + " ".join(parts)


def _clause(clause: Clause) -> str:
    if clause.op in ("set", "unset"):
        text = f"`{clause.fact}` is {clause.op}"
    else:
        target = f"`{clause.other}`" if clause.other else f"`{clause.value!r}`"
        text = f"`{clause.fact}` {clause.op} {target}"
    if clause.if_known:
        text += " (when known)"
    return text
