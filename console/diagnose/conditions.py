"""Condition signatures: clauses over configs, systemd units and versions.

A fact is named `versions.<component>`, `<config kind>.<key>` or
`<unit role>.<Section>.<Key>`. A clause on a fact whose file or version is
unknown is undecided, so the signature does not fire, unless the clause has
`if_known` set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nydus_console.configedit.document import ConfigEditError, Document
from nydus_console.diagnose.catalogue import Clause, Signature
from nydus_console.diagnose.units import UnitFile
from nydus_console.findings import Evidence

_VERSION = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def version_tuple(text: str, precision: int = 3) -> tuple[int, ...] | None:
    """Parse "v2.1.5", "1.6.20~ds1" or "2.2" into (2, 1, 5), (1, 6, 20), (2, 2, 0)."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    parts = tuple(int(part or 0) for part in match.groups())
    return parts[:precision]


@dataclass
class Version:
    version: str
    where: str


@dataclass
class Subjects:
    """The inputs of conditions: configs by kind, units by role, versions."""

    documents: dict[str, Document] = field(default_factory=dict)
    units: dict[str, UnitFile] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)


def variants(
    documents: dict[str, list[Document]],
    units: dict[str, list[UnitFile]],
    versions: dict[str, Version],
) -> list[Subjects]:
    """Pair the n-th config of each kind and the n-th unit of each role.

    With the files of one node there is one of each, so one variant. Files of
    several nodes given together are paired in the order they were given.
    """
    sizes = [len(found) for found in documents.values()]
    sizes += [len(found) for found in units.values()]
    count = max(sizes, default=1)
    return [
        Subjects(
            {kind: found[min(i, len(found) - 1)] for kind, found in documents.items()},
            {role: found[min(i, len(found) - 1)] for role, found in units.items()},
            versions,
        )
        for i in range(count)
    ]


@dataclass
class Fact:
    known: bool
    value: Any = None
    evidence: Evidence | None = None


def resolve(subjects: Subjects, name: str) -> Fact:
    """Look up a fact by name; `known` is False when its subject is missing."""
    subject, _, rest = name.partition(".")
    if subject == "versions":
        found = subjects.versions.get(rest)
        if found is None:
            return Fact(False)
        return Fact(
            True, found.version, Evidence(found.where, [f"{rest} {found.version}"])
        )
    if subject in subjects.units:
        return _unit_fact(subjects.units[subject], rest)
    if subject in subjects.documents:
        return _config_fact(subjects.documents[subject], rest)
    return Fact(False)


def _unit_fact(unit: UnitFile, key: str) -> Fact:
    section, _, name = key.partition(".")
    value, line = unit.get(section, name)
    if line is None:
        return Fact(True, None, Evidence(unit.path, [f"({name} not set)"]))
    return Fact(True, value, Evidence(unit.path, [f"{line}: {unit.line(line)}"]))


def _config_fact(document: Document, key: str) -> Fact:
    try:
        value = document.get(key)
        position = document.locate(key)
    except (ConfigEditError, ValueError):
        return Fact(True, None, Evidence(document.path, [f"({key} not set)"]))
    if position is None:
        return Fact(True, value, Evidence(document.path, [f"({key} not set)"]))
    line = document.dumps().splitlines()[position[0] - 1]
    return Fact(True, value, Evidence(document.path, [f"{position[0]}: {line}"]))


def evaluate(signature: Signature, subjects: Subjects) -> list[Evidence] | None:
    """Return the evidence when one clause group holds, else None."""
    for group in signature.when_any:
        evidence = _group(group, subjects)
        if evidence is not None:
            return evidence
    return None


def _group(group: tuple[Clause, ...], subjects: Subjects) -> list[Evidence] | None:
    evidence: list[Evidence] = []
    for clause in group:
        fact = resolve(subjects, clause.fact)
        if not fact.known:
            if clause.if_known:
                continue
            return None
        other = resolve(subjects, clause.other) if clause.other else None
        if other is not None and not other.known:
            return None
        expected = other.value if other is not None else clause.value
        if not _holds(clause, fact.value, expected):
            return None
        for item in (fact.evidence, other.evidence if other else None):
            if item is not None:
                evidence.append(item)
    return evidence


def _holds(clause: Clause, value: Any, expected: Any) -> bool:
    op = clause.op
    if op == "set":
        return value is not None
    if op == "unset":
        return value is None
    if op in ("in", "not_in"):
        inside = bool(("" if value is None else value) in expected)
        return inside if op == "in" else not inside
    if op == "matches":
        text = value if isinstance(value, str) else json.dumps(value)
        return value is not None and re.search(str(expected), text) is not None
    if op in ("==", "!="):
        return bool(value == expected) == (op == "==")
    return _ordered(clause, value, expected)


def _ordered(clause: Clause, value: Any, expected: Any) -> bool:
    if value is None or expected is None:
        return False
    if clause.fact.startswith("versions."):
        left = version_tuple(str(value), clause.precision)
        right = version_tuple(str(expected), clause.precision)
        if left is None or right is None:
            return False
        return _compare(clause.op, left, right)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return _compare(clause.op, value, expected)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)
