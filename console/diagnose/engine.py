"""Run every kind of signature over collected files or a probed node's facts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from nydus_console.configedit.document import Document, load_document
from nydus_console.configedit.validate import (
    Problem,
    ValidationContext,
    syntax_problem,
    validate,
)
from nydus_console.configs import ConfigError, parse_snapshotter_config
from nydus_console.diagnose.catalogue import Catalogue, ProblemMatch, Signature
from nydus_console.diagnose.conditions import Subjects, Version, evaluate, variants
from nydus_console.diagnose.fold import Detections, Hit
from nydus_console.diagnose.inputs import InputFile, Line, load_input
from nydus_console.diagnose.lines import shown_line
from nydus_console.diagnose.matcher import (
    SignatureMatcher,
    default_matcher,
    record_text,
)
from nydus_console.diagnose.units import UnitFile
from nydus_console.facts import NodeFacts
from nydus_console.findings import Evidence, Finding, Status
from nydus_console.inventory import NodePaths


@dataclass
class Diagnosis:
    """The findings of one diagnose run and what it read."""

    inputs: list[InputFile]
    findings: list[Finding]
    versions: dict[str, Version] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 without findings, 1 with warnings only, 2 with a failure."""
        if any(f.status == Status.FAIL for f in self.findings):
            return 2
        return 1 if self.findings else 0


def diagnose_texts(
    texts: list[tuple[str, str]], matcher: SignatureMatcher | None = None
) -> Diagnosis:
    """Diagnose (name, text) pairs, such as the files an operator collected."""
    matcher = matcher or default_matcher()
    inputs = [load_input(name, text, matcher.classifier) for name, text in texts]
    detections = Detections(matcher.catalogue)
    versions: dict[str, Version] = {}
    documents: dict[str, list[Document]] = {}
    units: dict[str, list[UnitFile]] = {}
    for item in inputs:
        _match_lines(matcher, item, detections)
        _match_absent(matcher.catalogue, item, detections)
        _collect_versions(matcher.catalogue, item.lines, item.name, versions)
        if item.document is not None:
            documents.setdefault(item.config_kind, []).append(item.document)
        if item.unit is not None:
            units.setdefault(item.unit.role, []).append(item.unit)
    _match_problems(matcher.catalogue, inputs, detections)
    for subjects in variants(documents, units, versions):
        _match_conditions(matcher.catalogue, subjects, detections)
    return Diagnosis(inputs, detections.findings(), versions)


def _match_lines(
    matcher: SignatureMatcher, item: InputFile, detections: Detections
) -> None:
    for line in item.lines:
        for match in matcher.match_line(
            record_text(line.record),
            line.source,
            shown=shown_line(line.text, line.record),
            location=item.name,
            line_number=line.number,
        ):
            detections.add_match(match)


def _match_absent(
    catalogue: Catalogue, item: InputFile, detections: Detections
) -> None:
    for signature in catalogue.signatures:
        if not signature.absent or item.source not in signature.sources:
            continue
        assert signature.pattern is not None
        if not any(signature.pattern.search(line.text) for line in item.lines):
            note = f"(no line matches {signature.pattern.pattern})"
            detections.add_hit(signature, Hit(item.name, None, note))


def _collect_versions(
    catalogue: Catalogue, lines: list[Line], where: str, versions: dict[str, Version]
) -> None:
    """Record the first version of each component that the lines show."""
    for line in lines:
        for rule in catalogue.versions:
            if rule.component in versions:
                continue
            if rule.sources and line.source not in rule.sources:
                continue
            found = rule.pattern.search(record_text(line.record))
            if found is not None:
                place = f"{where}:{line.number}"
                versions[rule.component] = Version(found["version"], place)


def _match_problems(
    catalogue: Catalogue, inputs: list[InputFile], detections: Detections
) -> None:
    """Validate the configs together and give each problem to one signature."""
    texts = {
        item.config_kind: item.text for item in inputs if item.document is not None
    }
    takers = [s for s in catalogue.signatures if s.problem is not None]
    for item in inputs:
        for problem in _problems(item, texts):
            taker = next(
                (s for s in takers if _takes(s, item.config_kind, problem)), None
            )
            if taker is not None:
                detections.add_hit(taker, _problem_hit(problem))


def _problems(item: InputFile, texts: dict[str, str]) -> list[Problem]:
    if item.syntax_error is not None:
        return [syntax_problem(item.syntax_error)]
    if item.document is None:
        return []
    others = {k: v for k, v in texts.items() if k != item.config_kind}
    context = ValidationContext(
        snapshotter_text=others.get("snapshotter"),
        containerd_text=others.get("containerd"),
        nydusd_text=others.get("nydusd"),
        # A nydusd config given with a snapshotter config is its template,
        # which gets the registry host and repo from the snapshotter.
        nydusd_template=True if "snapshotter" in others else None,
    )
    return validate(item.document, context)


def _takes(signature: Signature, kind: str, problem: Problem) -> bool:
    expected: ProblemMatch | None = signature.problem
    if expected is None:
        return False
    if expected.kinds and kind not in expected.kinds:
        return False
    if expected.severity and problem.severity != expected.severity:
        return False
    if expected.message is not None and not expected.message.search(problem.message):
        return False
    return expected.key is None or expected.key.search(problem.key) is not None


def _problem_hit(problem: Problem) -> Hit:
    subject = f"{problem.key} = {problem.value}: " if problem.value else ""
    if problem.key and not problem.value:
        subject = f"{problem.key}: "
    text = f"{problem.severity}: {subject}{problem.message}"
    if problem.fix:
        text += f" (fix: {problem.fix})"
    return Hit(problem.file, problem.line, text, clip=False)


def _match_conditions(
    catalogue: Catalogue, subjects: Subjects, detections: Detections
) -> None:
    for signature in catalogue.signatures:
        if not signature.when_any:
            continue
        evidence = evaluate(signature, subjects)
        if evidence is not None:
            detections.add_evidence(signature, evidence)


# -- a probed node -----------------------------------------------------------------


def node_findings(
    facts: NodeFacts,
    paths: NodePaths,
    checks: list[Finding],
    matcher: SignatureMatcher | None = None,
) -> list[Finding]:
    """Return the signature findings of a probed node, beside its check findings.

    The journal lines the probe read and the node's configs and versions are
    matched. A signature that names a check which already reports a problem
    adds its evidence to that check's finding (changing `checks` in place)
    instead of adding a finding of its own.
    """
    matcher = matcher or default_matcher()
    detections = Detections(matcher.catalogue)
    journal = f"journalctl -u {paths.snapshotter_unit}"
    for match in matcher.match_text(facts.snapshotter_journal):
        detections.add_match(replace(match, location=journal))
    _match_conditions(matcher.catalogue, _node_subjects(facts, paths), detections)
    return _fold_into_checks(detections, checks)


def _node_subjects(facts: NodeFacts, paths: NodePaths) -> Subjects:
    subjects = Subjects()
    for component, (path, version) in facts.versions.items():
        if version:
            subjects.versions[component] = Version(version, f"{path} --version")
    kinds = {
        "snapshotter": paths.snapshotter_config,
        "containerd": paths.containerd_config,
    }
    read = facts.file(paths.snapshotter_config)
    if read.status == "ok":
        try:
            kinds["nydusd"] = parse_snapshotter_config(read.text).nydusd_config
        except ConfigError:
            pass
    for kind, path in kinds.items():
        document = _node_document(facts, kind, path)
        if document is not None:
            subjects.documents[kind] = document
    return subjects


def _node_document(facts: NodeFacts, kind: str, path: str) -> Document | None:
    read = facts.file(path)
    if read.status != "ok":
        return None
    try:
        return load_document(kind, read.text, path)
    except ValueError:
        return None


def _fold_into_checks(detections: Detections, checks: list[Finding]) -> list[Finding]:
    return fold_findings(detections.findings(), checks, detections.catalogue)


def fold_findings(
    found: list[Finding], checks: list[Finding], catalogue: Catalogue | None = None
) -> list[Finding]:
    """Add signature findings to the failing checks they name; return the rest.

    `checks` changes in place: a check that fails or warns gets the lines of
    the first signature that names it, as evidence it does not quote yet.
    """
    catalogue = catalogue or default_matcher().catalogue
    by_check = {f.check: f for f in checks}
    extra: list[Finding] = []
    for finding in found:
        signature = catalogue.by_id(finding.check.removeprefix("sig."))
        failing = [
            by_check[c]
            for c in signature.checks
            if c in by_check and by_check[c].status in (Status.FAIL, Status.WARN)
        ]
        if failing:
            failing[0].evidence += _new_evidence(finding, failing[0])
        else:
            extra.append(finding)
    return extra


def _new_evidence(finding: Finding, check: Finding) -> list[Evidence]:
    """Return the finding's evidence that the check does not quote yet."""
    quoted = "\n".join(line for item in check.evidence for line in item.lines)
    added: list[Evidence] = []
    for item in finding.evidence:
        lines = [x for x in item.lines if x.partition(": ")[2] not in quoted]
        if lines:
            added.append(Evidence(f"{item.source} ({finding.title})", lines))
    return added
