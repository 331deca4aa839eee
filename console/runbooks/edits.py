"""Prepare the file-changing steps: a config edit, or a whole file to write.

Both become one write Action (configedit.apply.write_action): an atomic
replace with a backup, refused when the file changed on the node since it
was read. A config edit is validated first like `config set`, and an error
that the edit brings stops it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from nydus_console.actions import Action
from nydus_console.configedit.apply import backup_stamp, write_action
from nydus_console.configedit.document import ConfigEditError
from nydus_console.configedit.drift import describe_changes
from nydus_console.configedit.remote import (
    ConfigReadError,
    load_node_config,
    node_context,
    read_text,
)
from nydus_console.configedit.validate import Problem, validate
from nydus_console.configs import mask_secrets
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec
from nydus_console.runbooks.model import ConfigEdit, FileWrite
from nydus_console.runbooks.params import ParamValues, substitute_text
from nydus_console.transport.base import Transport


@dataclass
class PreparedWrite:
    """The write a step would make: its action and diff, or why there is none."""

    action: Action | None
    diff: str = ""
    # Why nothing is written: the file already has the content, or a problem.
    unchanged: bool = False
    problem: str = ""


def _identity(problem: Problem) -> tuple[str, str, str]:
    return (problem.severity, problem.key, problem.message)


async def prepare_edit(
    edit: ConfigEdit,
    transport: Transport,
    spec: NodeSpec,
    facts: NodeFacts,
    values: ParamValues,
) -> PreparedWrite:
    """Read the config from the node and apply `edit`; raise MissingParameter."""
    resolved = [(key, _resolved(value, values)) for key, value in edit.values]
    try:
        config = await load_node_config(transport, spec, facts, edit.config)
    except ConfigReadError as exc:
        return PreparedWrite(None, problem=str(exc))
    document = config.document
    if document is None:
        reason = config.syntax or f"{config.path} does not exist"
        return PreparedWrite(None, problem=f"cannot edit {config.path}: {reason}")
    context = node_context(facts, spec, edit.config)
    before = {_identity(p) for p in validate(document, context)}
    try:
        for key, value in resolved:
            document.set(key, value)
        for key in edit.remove:
            document.unset(key)
    except (ConfigEditError, ValueError) as exc:
        return PreparedWrite(None, problem=f"{config.path}: {exc}")
    if not document.changed:
        return PreparedWrite(None, unchanged=True)
    diff = document.diff(masked=True)
    new_errors = [
        p
        for p in validate(document, context)
        if p.severity == "error" and _identity(p) not in before
    ]
    if new_errors:
        messages = "; ".join(f"{p.key or p.file}: {p.message}" for p in new_errors)
        return PreparedWrite(None, diff, problem=f"the edit brings errors: {messages}")
    text = document.dumps()
    changes = describe_changes(config.kind, config.text, text)
    action = write_action(config.path, text, config.text, backup_stamp(), changes)
    return PreparedWrite(action, diff)


async def prepare_write(
    write: FileWrite, transport: Transport, values: ParamValues
) -> PreparedWrite:
    """Read the file's current text and plan replacing it; raise MissingParameter."""
    path = substitute_text(write.path, values)
    content = substitute_text(write.content, values)
    try:
        old = await read_text(transport, path)
    except ConfigReadError as exc:
        return PreparedWrite(None, problem=str(exc))
    if old == content:
        return PreparedWrite(None, unchanged=True)
    diff = "".join(
        difflib.unified_diff(
            mask_secrets(old or "").splitlines(keepends=True),
            mask_secrets(content).splitlines(keepends=True),
            fromfile=path if old is not None else "/dev/null",
            tofile=path,
        )
    )
    return PreparedWrite(write_action(path, content, old, backup_stamp()), diff)


def _resolved(value: object, values: ParamValues) -> object:
    if isinstance(value, str):
        return substitute_text(value, values)
    return value
