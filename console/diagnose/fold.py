"""Fold signature matches into findings: one finding per signature, with evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nydus_console.configs import mask_secrets, may_contain_secret
from nydus_console.diagnose.catalogue import Catalogue, Signature
from nydus_console.diagnose.matcher import SignatureMatch
from nydus_console.findings import SEVERITY_ORDER, Evidence, Finding, Status

# Evidence lines kept per file and signature, and characters kept per line.
MAX_EVIDENCE_LINES = 5
MAX_EVIDENCE_CHARS = 400
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Hit:
    """A line that supports a signature, with its file and line number.

    `clip` is False for text the console wrote itself (a config problem),
    which is never hostile and loses its fix when cut.
    """

    location: str
    line: int | None
    text: str
    groups: dict[str, str] = field(default_factory=dict)
    clip: bool = True


@dataclass
class Detection:
    signature: Signature
    hits: list[Hit] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)


class Detections:
    """Everything one input matched, by signature, in catalogue order."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._found: dict[str, Detection] = {}

    def _detection(self, signature: Signature) -> Detection:
        return self._found.setdefault(signature.id, Detection(signature))

    def add_match(self, match: SignatureMatch) -> None:
        hit = Hit(match.location, match.line_number, match.text, match.groups)
        self._detection(match.signature).hits.append(hit)

    def add_hit(self, signature: Signature, hit: Hit) -> None:
        self._detection(signature).hits.append(hit)

    def add_evidence(self, signature: Signature, evidence: list[Evidence]) -> None:
        self._detection(signature).evidence += evidence

    def detected(self) -> list[Detection]:
        """Return the detections that hold, with `min_count` applied."""
        detected: list[Detection] = []
        for signature in self.catalogue.signatures:
            found = self._found.get(signature.id)
            if found is None:
                continue
            if signature.min_count > 1:
                found.hits = _counted(signature, found.hits)
            if found.hits or found.evidence:
                detected.append(found)
        return detected

    def findings(self) -> list[Finding]:
        """Return one finding per detected signature, failures first."""
        detected = self.detected()
        present = {d.signature.id for d in detected}
        findings = [
            _finding(
                d,
                [
                    self.catalogue.by_id(i)
                    for i in d.signature.explained_by
                    if i in present
                ],
            )
            for d in detected
        ]
        return sorted(findings, key=lambda f: -SEVERITY_ORDER[f.status])


def _counted(signature: Signature, hits: list[Hit]) -> list[Hit]:
    """Keep the hits of files (and `count_by` values) with `min_count` lines."""
    groups: dict[tuple[str, str], list[Hit]] = {}
    for hit in hits:
        key = (hit.location, hit.groups.get(signature.count_by, ""))
        groups.setdefault(key, []).append(hit)
    enough = [g for g in groups.values() if len(g) >= signature.min_count]
    return [hit for group in enough for hit in group]


def fill(text: str, groups: dict[str, str]) -> str:
    """Replace {name} with the matched group, or <name> when it did not match."""
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), f"<{m.group(1)}>"), text)


def _finding(detection: Detection, explainers: list[Signature]) -> Finding:
    signature = detection.signature
    groups = detection.hits[0].groups if detection.hits else {}
    message = fill(signature.explanation, groups)
    next_step = fill(signature.next_step, groups)
    runbook = signature.runbook
    if explainers:
        names = ", ".join(f"{s.title} ({s.check_id})" for s in explainers)
        message += f" The same input shows a cause: {names}."
        next_step = f"fix {names} first; if this failure remains: {next_step}"
        runbook = ""
    evidence = hit_evidence(detection.hits) + detection.evidence
    return Finding(
        check=signature.check_id,
        title=signature.title,
        status=Status(signature.severity),
        message=message,
        evidence=evidence,
        next_step=next_step,
        runbook=runbook,
    )


def hit_evidence(hits: list[Hit]) -> list[Evidence]:
    """Group hits by file into evidence: `LINE: text`, at most a few per file."""
    by_location: dict[str, list[Hit]] = {}
    for hit in hits:
        by_location.setdefault(hit.location, []).append(hit)
    evidence: list[Evidence] = []
    for location, located in by_location.items():
        lines = [_shown(hit) for hit in located[:MAX_EVIDENCE_LINES]]
        extra = len(located) - MAX_EVIDENCE_LINES
        if extra > 0:
            lines.append(f"({extra} more matching lines)")
        evidence.append(Evidence(location, lines))
    return evidence


def _shown(hit: Hit) -> str:
    text = hit.text
    if hit.clip and len(text) > MAX_EVIDENCE_CHARS:
        text = f"{text[:MAX_EVIDENCE_CHARS]}… ({len(text) - MAX_EVIDENCE_CHARS} more)"
    if may_contain_secret(text):
        text = mask_secrets(text)
    return f"{hit.line}: {text}" if hit.line is not None else text
