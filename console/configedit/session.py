"""An editing session of one node's config file, for the config screen.

The session keeps the file as read (the baseline) and the document being
edited. Problems of the edited document are compared with those of the
baseline, so that only errors an edit brings in block writing. The raw text
view shows credentials as ***; a *** left in place gets its old value back
when the text is parsed again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nydus_console.configedit.apply import ConfigChange
from nydus_console.configedit.document import (
    ConfigEditError,
    ConfigSyntaxError,
    Document,
    load_document,
)
from nydus_console.configedit.keys import KeyPath, format_key
from nydus_console.configedit.remote import NodeConfig, plan_change
from nydus_console.configedit.schema import KeyEntry
from nydus_console.configedit.validate import (
    Problem,
    ValidationContext,
    syntax_problem,
    validate,
)
from nydus_console.configedit.values import display_value
from nydus_console.configs import mask_secrets
from nydus_console.facts import NodeFacts
from nydus_console.inventory import NodeSpec

MASK = "***"
ProblemId = tuple[str, str, str]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


# The value of a key that is not in the file.
UNSET: Any = _Unset()


def problem_id(problem: Problem) -> ProblemId:
    """Identify a problem across edits: its position changes, its text does not."""
    return (problem.severity, problem.key, problem.message)


@dataclass(frozen=True)
class MarkedProblem:
    """A problem of the edited document, and whether the file as read had it."""

    problem: Problem
    existing: bool

    @property
    def blocking(self) -> bool:
        return self.problem.severity == "error" and not self.existing


def starter_text(path: str) -> str:
    """The text a missing file starts from: an empty JSON object or TOML file."""
    return "{}\n" if path.endswith(".json") else ""


class EditSession:
    """The baseline of one config file and the document being edited."""

    def __init__(self, config: NodeConfig, context: ValidationContext) -> None:
        self.config = config
        self.context = context
        # The text a write must find on the node; None: the file must not exist.
        self.baseline = config.text
        self.document: Document | None = config.document
        if config.text is None:
            self.document = load_document(
                config.kind, starter_text(config.path), config.path
            )
        self._problems: list[Problem] | None = None
        self._before = {problem_id(p) for p in self._baseline_problems()}
        # Paths masked in the last raw text, with the values they hid.
        self._masked: dict[KeyPath, Any] = {}

    def _baseline_problems(self) -> list[Problem]:
        if self.config.syntax is not None:
            return [syntax_problem(self.config.syntax)]
        if self.document is None:
            return []
        return validate(self.document, self.context)

    # -- state --------------------------------------------------------------

    @property
    def text(self) -> str:
        """The edited text; the file as read while it does not parse."""
        if self.document is None:
            return self.config.text or ""
        return self.document.dumps()

    @property
    def changed(self) -> bool:
        if self.document is None:
            return False
        original = self.baseline
        if original is None:
            original = starter_text(self.config.path)
        return self.text != original

    def value(self, entry: KeyEntry) -> Any:
        """Return the value of `entry` in the edited document, or UNSET."""
        if self.document is None:
            return UNSET
        return self.document.get(entry.name, UNSET)

    # -- editing ------------------------------------------------------------

    def put(self, entry: KeyEntry, value: Any) -> bool:
        """Set the key of `entry` to `value`, or remove it when value is UNSET.

        Returns whether the document changed. Raises ConfigEditError when
        the key cannot be placed in the file.
        """
        document = self._editable()
        current = document.get(entry.name, UNSET)
        if type(current) is type(value) and current == value:
            return False
        if value is UNSET:
            document.unset(entry.name)
        else:
            document.set(entry.name, value)
        self._problems = None
        return True

    def _editable(self) -> Document:
        if self.document is None:
            raise ConfigEditError(
                f"{self.config.path} has a syntax error; fix it in the raw view first"
            )
        return self.document

    def raw_text(self) -> tuple[str, bool]:
        """Return the text for the raw view, and whether credentials are masked.

        Masking is skipped when the masked text would not parse back to the
        same keys, such as a credential written as an inline table.
        """
        text = self.text
        self._masked = {}
        if self.document is None:
            return text, False
        masked = mask_secrets(text)
        if masked == text:
            return text, True
        hidden = self._hidden_values(masked)
        if hidden is None:
            return text, False
        self._masked = hidden
        return masked, True

    def _hidden_values(self, masked: str) -> dict[KeyPath, Any] | None:
        assert self.document is not None
        try:
            shown = load_document(self.config.kind, masked, self.config.path)
        except (ConfigSyntaxError, ValueError):
            return None
        hidden: dict[KeyPath, Any] = {}
        before, after = self.document.data(), shown.data()
        for path, old, new in _differences(before, after, ()):
            if new != MASK:
                return None
            hidden[path] = old
        return hidden

    def replace_text(self, text: str) -> None:
        """Parse `text` from the raw view or an editor and make it the document.

        A masked credential still shown as *** gets its old value back.
        Raises ConfigSyntaxError, leaving the document as it was.
        """
        document = load_document(self.config.kind, text, self.config.path)
        for path, value in self._masked.items():
            key = format_key(path)
            if document.get(key) == MASK:
                document.set(key, value)
        self.document = document
        self.config.syntax = None
        self._problems = None

    # -- problems and the diff ----------------------------------------------

    def problems(self) -> list[MarkedProblem]:
        """Problems of the edited document, marking those the file already had."""
        if self.document is None:
            found = self._baseline_problems()
        else:
            if self._problems is None:
                self._problems = validate(self.document, self.context)
            found = self._problems
        return [MarkedProblem(p, problem_id(p) in self._before) for p in found]

    def blocking(self) -> list[Problem]:
        """Errors the edits brought in; they keep the file from being written."""
        return [m.problem for m in self.problems() if m.blocking]

    def diff(self) -> str:
        """Return the unified diff from the file as read, credentials as ***.

        The texts are compared before masking, so a changed credential shows
        as a removed and an added line that both read ***.
        """
        name = self.config.path
        lines = difflib.unified_diff(
            (self.baseline or "").splitlines(keepends=True),
            self.text.splitlines(keepends=True),
            fromfile=f"{name} (on {self.config.node})",
            tofile=f"{name} (edited)",
        )
        return "".join(mask_secrets(line) for line in lines)

    def unknown_keys(self) -> list[tuple[str, str]]:
        """Return the keys the schema does not know, with their masked values.

        Only the outermost unknown key is listed, as validation reports it.
        """
        if self.document is None:
            return []
        finder = _UnknownKeys(self.document)
        finder.visit(self.document.data(), ())
        return finder.found

    def plan(
        self, spec: NodeSpec, facts: NodeFacts | None, restart: bool
    ) -> ConfigChange:
        """Return the change that writes the edited text, restarting or not."""
        return plan_change(self.config, self.text, spec, facts, restart)


def _differences(
    before: Any, after: Any, prefix: KeyPath
) -> Iterator[tuple[KeyPath, Any, Any]]:
    """Yield (path, before, after) for each leaf value that differs."""
    if isinstance(before, dict) and isinstance(after, dict):
        for name in before.keys() | after.keys():
            yield from _differences(
                before.get(name, UNSET), after.get(name, UNSET), (*prefix, name)
            )
        return
    if before != after:
        yield prefix, before, after


class _UnknownKeys:
    """Walks a document the way validation does, collecting unknown keys."""

    def __init__(self, document: Document) -> None:
        self.schema = document.schema
        self.version = document.version
        self.known = self.schema.paths(self.version)
        self.parents = {
            path[:depth] for path in self.known for depth in range(1, len(path))
        }
        self.found: list[tuple[str, str]] = []
        self.secret_names = [p[-1] for p, e in self.known.items() if e.secret]

    def visit(self, table: dict[str, Any], prefix: KeyPath) -> None:
        for name, value in table.items():
            path = (*prefix, name)
            entry = self.known.get(path)
            inside = isinstance(value, dict) and (
                (entry is not None and entry.type == "table")
                or (entry is None and path in self.parents)
            )
            if inside:
                self.visit(value, path)
            elif entry is None and not self.schema.is_open(prefix, self.version):
                self.found.append((format_key(path), self.shown(name, value)))

    def shown(self, name: str, value: Any) -> str:
        """Render a value, masked when its name is close to a credential's.

        A misspelt credential key still holds a credential.
        """
        close = difflib.get_close_matches(name, self.secret_names, cutoff=0.6)
        return display_value(None, name, value, secret=bool(close))
