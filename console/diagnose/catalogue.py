"""The signature catalogue: assets/signatures.toml read into typed, compiled data."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from nydus_console.findings import Status

# The recovery runbooks a signature may name. The runbook engine defines
# runbooks under exactly these ids, so the loader rejects any other.
RUNBOOK_IDS = frozenset(
    {
        "bypassed-snapshotter",
        "stale-snapshot",
        "duplicate-snapshotter",
        "bad-config",
        "root-outside-containerd",
        "cri-snapshotter-toggle",
        "missing-parent-sandbox",
        "mount-callback-eio",
        "leftover-cgroup",
        "snapshotter-not-running",
        "daemon-socket-missing",
    }
)

# Source kinds of a line or file. Log sources come from journal identifiers,
# units and file names, and the others from the shape of a file.
SOURCE_KINDS = frozenset(
    {
        "snapshotter",
        "containerd",
        "kubelet",
        "nydusd",
        "systemd",
        "events",
        "ctr",
        "nydusify",
        "buildctl",
        "ps",
        "lsof",
        "snapshotter-config",
        "containerd-config",
        "nydusd-config",
        "unit",
    }
)

CLAUSE_OPS = frozenset(
    {"set", "unset", "==", "!=", "<", "<=", ">", ">=", "in", "not_in", "matches"}
)


class CatalogueError(ValueError):
    """A signature catalogue entry that is malformed, named by its id."""


@dataclass(frozen=True)
class Clause:
    """One test of a fact: `fact op value`, or `fact op other-fact`.

    `precision` limits a version comparison to that many parts (2 compares
    major.minor). `if_known` lets the clause pass when the fact is unknown.
    """

    fact: str
    op: str
    value: Any = None
    other: str = ""
    precision: int = 3
    if_known: bool = False


@dataclass(frozen=True)
class ProblemMatch:
    """A filter of `config validate` problems; every field given must match."""

    kinds: tuple[str, ...] = ()
    severity: str = ""
    message: re.Pattern[str] | None = None
    key: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Signature:
    id: str
    title: str
    severity: Status
    explanation: str
    next_step: str
    runbook: str
    pattern: re.Pattern[str] | None = None
    keywords: tuple[str, ...] = ()
    sources: frozenset[str] = frozenset()
    absent: bool = False
    min_count: int = 1
    count_by: str = ""
    when_any: tuple[tuple[Clause, ...], ...] = ()
    problem: ProblemMatch | None = None
    supersedes: tuple[str, ...] = ()
    explained_by: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    counterexamples: tuple[str, ...] = ()

    @property
    def check_id(self) -> str:
        """The id its findings carry, `sig.<id>`."""
        return f"sig.{self.id}"

    @property
    def kind(self) -> str:
        """`pattern`, `condition` or `problem`."""
        if self.pattern is not None:
            return "pattern"
        return "condition" if self.when_any else "problem"

    def applies_to(self, source: str) -> bool:
        """Return whether a line from `source` ("" when unknown) may match."""
        return not self.sources or not source or source in self.sources


@dataclass(frozen=True)
class SourceRule:
    """A rule that maps names and file contents to a source kind."""

    kind: str
    names: re.Pattern[str]
    content: re.Pattern[str] | None = None


@dataclass(frozen=True)
class VersionRule:
    """A regex that finds a component's version in a line of one of `sources`."""

    component: str
    pattern: re.Pattern[str]
    sources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Catalogue:
    signatures: tuple[Signature, ...]
    sources: tuple[SourceRule, ...]
    versions: tuple[VersionRule, ...] = field(default_factory=tuple)

    def by_id(self, signature_id: str) -> Signature:
        """Return the signature with this id (without the `sig.` prefix)."""
        for signature in self.signatures:
            if signature.id == signature_id:
                return signature
        raise KeyError(signature_id)

    def for_runbook(self, runbook: str) -> tuple[Signature, ...]:
        """Return the signatures whose findings lead to `runbook`."""
        return tuple(s for s in self.signatures if s.runbook == runbook)


@cache
def load_catalogue() -> Catalogue:
    """Read and check the catalogue shipped in the package."""
    text = resources.files("nydus_console.assets").joinpath("signatures.toml")
    return parse_catalogue(text.read_text())


def parse_catalogue(text: str) -> Catalogue:
    """Build a catalogue from TOML text; raise CatalogueError on a bad entry."""
    data = tomllib.loads(text)
    signatures = tuple(_signature(entry) for entry in data.get("signature", []))
    _check_references(signatures)
    return Catalogue(
        signatures,
        tuple(_source(entry) for entry in data.get("source", [])),
        tuple(_version(entry) for entry in data.get("version", [])),
    )


def _compile(where: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CatalogueError(f"{where}: invalid regex {pattern!r}: {exc}") from None


def _signature(entry: dict[str, Any]) -> Signature:
    sid = str(entry.get("id", ""))
    if not sid:
        raise CatalogueError(f"a signature has no id: {entry.get('title', entry)!r}")
    where = f"signature {sid}"
    _check_fields(where, entry)
    signature = Signature(
        id=sid,
        title=entry["title"],
        severity=Status(entry["severity"]),
        explanation=entry["explanation"],
        next_step=entry["next_step"],
        runbook=entry.get("runbook", ""),
        pattern=_compile(where, entry["pattern"]) if "pattern" in entry else None,
        keywords=tuple(k.lower() for k in entry.get("keywords", ())),
        sources=frozenset(entry.get("sources", ())),
        absent=bool(entry.get("absent", False)),
        min_count=int(entry.get("min_count", 1)),
        count_by=entry.get("count_by", ""),
        when_any=_when_any(where, entry),
        problem=_problem_match(where, entry.get("problem")),
        supersedes=tuple(entry.get("supersedes", ())),
        explained_by=tuple(entry.get("explained_by", ())),
        checks=tuple(entry.get("checks", ())),
        examples=tuple(entry.get("examples", ())),
        counterexamples=tuple(entry.get("counterexamples", ())),
    )
    _check_shape(where, signature)
    return signature


def _check_fields(where: str, entry: dict[str, Any]) -> None:
    severity = entry.get("severity")
    if severity not in ("fail", "warn"):
        raise CatalogueError(
            f"{where}: severity must be fail or warn, not {severity!r}"
        )
    runbook = entry.get("runbook", "")
    if runbook and runbook not in RUNBOOK_IDS:
        raise CatalogueError(f"{where}: unknown runbook {runbook!r}")
    sources = frozenset(entry.get("sources", ()))
    if not sources <= SOURCE_KINDS:
        raise CatalogueError(
            f"{where}: unknown sources {sorted(sources - SOURCE_KINDS)}"
        )


def _check_shape(where: str, signature: Signature) -> None:
    kinds = [
        signature.pattern is not None,
        bool(signature.when_any),
        signature.problem is not None,
    ]
    if sum(kinds) != 1:
        raise CatalogueError(f"{where}: needs exactly one of pattern, when, problem")
    if signature.pattern is not None and not signature.keywords:
        raise CatalogueError(f"{where}: a pattern needs keywords")
    if signature.count_by and signature.pattern is not None:
        if signature.count_by not in signature.pattern.groupindex:
            raise CatalogueError(f"{where}: count_by names no group of the pattern")


def _when_any(where: str, entry: dict[str, Any]) -> tuple[tuple[Clause, ...], ...]:
    groups: list[list[dict[str, Any]]] = list(entry.get("when_any", []))
    if "when" in entry:
        groups.append(entry["when"])
    return tuple(tuple(_clause(where, c) for c in group) for group in groups)


def _clause(where: str, data: dict[str, Any]) -> Clause:
    op = data.get("op", "")
    if op not in CLAUSE_OPS:
        raise CatalogueError(f"{where}: unknown operator {op!r} on {data.get('fact')}")
    if op == "matches":
        _compile(where, str(data.get("value", "")))
    return Clause(
        fact=data["fact"],
        op=op,
        value=data.get("value"),
        other=data.get("other", ""),
        precision=int(data.get("precision", 3)),
        if_known=bool(data.get("if_known", False)),
    )


def _problem_match(where: str, data: dict[str, Any] | None) -> ProblemMatch | None:
    if data is None:
        return None
    message = data.get("message")
    key = data.get("key")
    return ProblemMatch(
        kinds=tuple(data.get("kinds", ())),
        severity=data.get("severity", ""),
        message=_compile(where, message) if message else None,
        key=_compile(where, key) if key else None,
    )


def _check_references(signatures: tuple[Signature, ...]) -> None:
    ids = [s.id for s in signatures]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise CatalogueError(f"duplicate signature ids: {sorted(duplicates)}")
    known = set(ids)
    for signature in signatures:
        named = set(signature.supersedes) | set(signature.explained_by)
        if not named <= known:
            raise CatalogueError(
                f"signature {signature.id}: names unknown signatures "
                f"{sorted(named - known)}"
            )


def _source(entry: dict[str, Any]) -> SourceRule:
    where = f"source {entry.get('kind')}"
    if entry.get("kind") not in SOURCE_KINDS:
        raise CatalogueError(f"{where}: unknown source kind")
    content = entry.get("content")
    return SourceRule(
        entry["kind"],
        _compile(where, entry["names"]),
        _compile(where, content) if content else None,
    )


def _version(entry: dict[str, Any]) -> VersionRule:
    where = f"version rule of {entry.get('component')}"
    pattern = _compile(where, entry["pattern"])
    if "version" not in pattern.groupindex:
        raise CatalogueError(f"{where}: the pattern needs a group named version")
    return VersionRule(entry["component"], pattern, frozenset(entry.get("sources", ())))
