"""The signature catalogue and its matcher: examples, other formats and paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nydus_console.diagnose import (
    RUNBOOK_IDS,
    CatalogueError,
    Signature,
    default_matcher,
    load_catalogue,
    match_record,
    match_text,
)
from nydus_console.diagnose.catalogue import parse_catalogue
from nydus_console.diagnose.conditions import Subjects, Version, evaluate
from nydus_console.diagnose.lines import journal_short_parts
from nydus_console.diagnose.reference import signature_reference
from nydus_console.logs.parsers import parse_journal_json, parse_text

CATALOGUE = load_catalogue()
PATTERNS = [s for s in CATALOGUE.signatures if s.pattern is not None]
# Sources whose lines also reach the journal, so a line of theirs may come
# as journald JSON or a journalctl short line.
JOURNAL_SOURCES = {"snapshotter", "containerd", "kubelet", "nydusd", "systemd"}
UNIT_OF_SOURCE = {
    "snapshotter": "nydus-snapshotter.service",
    "containerd": "containerd.service",
    "kubelet": "kubelet.service",
    "nydusd": "nydus-snapshotter.service",
    "systemd": "init.scope",
}
# Snapshotter roots in the examples, and roots of other installs to try in
# their place. CRI names the image filesystem <containerd root>/
# io.containerd.snapshotter.v1.nydus, so the default root varies with
# containerd's root (k3s, rke2, a custom one); older releases used another.
ROOTS = {
    "/var/lib/containerd/io.containerd.snapshotter.v1.nydus": (
        "/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.nydus",
        "/var/lib/rancher/rke2/agent/containerd/io.containerd.snapshotter.v1.nydus",
        "/data/containerd/io.containerd.snapshotter.v1.nydus",
    ),
    "/var/lib/containerd-nydus": (
        "/data/nydus",
        "/var/lib/containerd/io.containerd.snapshotter.v1.nydus",
    ),
}


def matched_ids(text: str, source: str = "") -> set[str]:
    return {m.signature.id for m in match_text(text, source)}


def example_cases() -> list[tuple[str, str]]:
    return [(s.id, example) for s in PATTERNS for example in s.examples]


def first_source(signature: Signature) -> str:
    return sorted(signature.sources)[0] if signature.sources else ""


def test_catalogue_loads_every_kind() -> None:
    kinds = {s.kind for s in CATALOGUE.signatures}
    assert kinds == {"pattern", "condition", "problem"}
    assert len(CATALOGUE.signatures) >= 50


def test_catalogue_runbooks_known() -> None:
    used = {s.runbook for s in CATALOGUE.signatures if s.runbook}
    assert used <= RUNBOOK_IDS
    # Every recovery runbook is reachable from at least one signature.
    assert used == RUNBOOK_IDS


def test_runbooks_exist_for_each_id() -> None:
    runbooks = Path(__file__).parent.parent / "assets" / "runbooks"
    if not runbooks.is_dir():
        pytest.skip("no runbook files in this tree")
    names = {p.stem for p in runbooks.glob("*.toml")}
    assert RUNBOOK_IDS <= names


def test_patterns_have_two_examples() -> None:
    few = [s.id for s in PATTERNS if len(s.examples) < 2]
    assert few == []


@pytest.mark.parametrize(("signature_id", "example"), example_cases())
def test_example_matches(signature_id: str, example: str) -> None:
    signature = CATALOGUE.by_id(signature_id)
    assert signature.pattern is not None
    if signature.absent:
        # The example is a line whose presence keeps the signature quiet.
        assert signature.pattern.search(example) is not None
        return
    assert signature_id in matched_ids(example, "")
    assert signature_id in matched_ids(example, first_source(signature))


@pytest.mark.parametrize(
    ("signature_id", "example"),
    [(s.id, c) for s in PATTERNS for c in s.counterexamples],
)
def test_counterexample_does_not_match(signature_id: str, example: str) -> None:
    signature = CATALOGUE.by_id(signature_id)
    assert signature_id not in matched_ids(example, first_source(signature))


def _is_plain_log_line(example: str) -> bool:
    return not example.startswith("{") and journal_short_parts(example) is None


def journal_cases() -> list[tuple[str, str]]:
    return [
        (signature_id, example)
        for signature_id, example in example_cases()
        if _is_plain_log_line(example)
        and (
            not CATALOGUE.by_id(signature_id).sources
            or CATALOGUE.by_id(signature_id).sources & JOURNAL_SOURCES
        )
    ]


def _journal_source(signature: Signature) -> str:
    journal = sorted(signature.sources & JOURNAL_SOURCES)
    return journal[0] if journal else "snapshotter"


@pytest.mark.parametrize(("signature_id", "example"), journal_cases())
def test_example_matches_as_journal_json(signature_id: str, example: str) -> None:
    signature = CATALOGUE.by_id(signature_id)
    entry = {
        "__REALTIME_TIMESTAMP": "1700000000000000",
        "_SYSTEMD_UNIT": UNIT_OF_SOURCE[_journal_source(signature)],
        "PRIORITY": "3",
        "MESSAGE": example.strip(),
    }
    assert signature_id in matched_ids(json.dumps(entry))


@pytest.mark.parametrize(("signature_id", "example"), journal_cases())
def test_example_matches_as_journal_short(signature_id: str, example: str) -> None:
    signature = CATALOGUE.by_id(signature_id)
    source = _journal_source(signature)
    ident = {"snapshotter": "containerd-nydus-grpc[1314]", "systemd": "systemd[1]"}
    name = ident.get(source, f"{source}[702]")
    short = f"Nov 13 09:05:19 node-1 {name}: {example.strip()}"
    iso = f"2023-11-13T09:05:19+0000 node-1 {name}: {example.strip()}"
    assert signature_id in matched_ids(short)
    assert signature_id in matched_ids(iso)


def root_cases() -> list[tuple[str, str, str]]:
    return [
        (signature_id, example, root)
        for signature_id, example in example_cases()
        for root in ROOTS
        if root in example and not CATALOGUE.by_id(signature_id).absent
    ]


@pytest.mark.parametrize(("signature_id", "example", "root"), root_cases())
def test_example_matches_under_other_roots(
    signature_id: str, example: str, root: str
) -> None:
    signature = CATALOGUE.by_id(signature_id)
    for other in ROOTS[root]:
        moved = example.replace(root, other)
        assert signature_id in matched_ids(moved, first_source(signature)), other


def test_root_cases_cover_path_signatures() -> None:
    covered = {case[0] for case in root_cases()}
    for signature_id in (
        "imagefs-stat-failed",
        "wait-running-socket-missing",
        "nydusd-died-socket-missing",
        "failover-mount-enosys",
    ):
        assert signature_id in covered


def test_match_record_from_log_view() -> None:
    line = json.dumps(
        {
            "__REALTIME_TIMESTAMP": "1700000000000000",
            "_SYSTEMD_UNIT": "nydus-snapshotter.service",
            "MESSAGE": 'time="2025-05-20T10:00:00Z" level=error msg="failed to '
            "destroy cgroup, err rmdir /sys/fs/cgroup/memory/system.slice/nydusd: "
            'device or resource busy"',
        }
    )
    record = parse_journal_json("node-1", "nydus-snapshotter.service", line)
    matches = match_record(record)
    assert [m.check for m in matches] == ["sig.leftover-cgroup"]
    assert matches[0].signature.runbook == "leftover-cgroup"
    assert matches[0].source == "snapshotter"


def test_match_record_ignores_healthy_lines() -> None:
    lines = (
        'time="2026-03-02T08:00:00Z" level=info msg="Start nydus-snapshotter. '
        'Version: v0.15.15, PID: 1187, FsDriver: fusedev, DaemonMode: dedicated"',
        "[2026-03-02 08:01:12.300100 +00:00] INFO Fuse daemon started!",
        'I0302 08:00:05.100100     601 server.go:487] "Kubelet version" '
        'kubeletVersion="v1.30.2"',
    )
    for line in lines:
        assert match_record(parse_text("node-1", "nydusd.log", line)) == []


def test_match_record_skips_counted_signatures() -> None:
    line = "   1314 /usr/local/bin/containerd-nydus-grpc --config /etc/nydus/c.toml"
    assert "duplicate-snapshotter-process" in matched_ids(line, "ps")
    assert match_record(parse_text("node-1", "", line)) == []


def test_supersedes_drops_general_signature() -> None:
    line = (
        "Warning FailedCreatePodSandBox kubelet Failed to create pod sandbox: "
        'create snapshot: missing parent "k8s.io/2/sha256:59b1" bucket: not found'
    )
    found = matched_ids(line, "events")
    assert "missing-parent-sandbox" in found
    assert "missing-parent-on-pull" not in found


def test_groups_fill_next_step() -> None:
    line = (
        'level=fatal msg="failed to start nydus-snapshotter" error="load daemon '
        "configuration: read FUSE configuration file /opt/n.json: open /opt/n.json: "
        'no such file or directory"'
    )
    (match,) = [
        m for m in match_text(line) if m.signature.id == "nydusd-config-missing"
    ]
    assert match.groups["path"] == "/opt/n.json"


def test_catalogue_rejects_unknown_runbook() -> None:
    text = """
[[signature]]
id = "x"
title = "x"
severity = "fail"
keywords = ["x"]
pattern = 'x'
explanation = "x"
next_step = "x"
runbook = "reboot-everything"
"""
    with pytest.raises(CatalogueError, match="unknown runbook"):
        parse_catalogue(text)


def test_catalogue_rejects_bad_regex() -> None:
    text = """
[[signature]]
id = "x"
title = "x"
severity = "warn"
keywords = ["x"]
pattern = '(unclosed'
explanation = "x"
next_step = "x"
"""
    with pytest.raises(CatalogueError, match="invalid regex"):
        parse_catalogue(text)


def test_catalogue_needs_keywords() -> None:
    text = """
[[signature]]
id = "x"
title = "x"
severity = "warn"
pattern = 'x'
explanation = "x"
next_step = "x"
"""
    with pytest.raises(CatalogueError, match="needs keywords"):
        parse_catalogue(text)


def test_skew_old_nydusd_newer_builder() -> None:
    signature = CATALOGUE.by_id("skew-nydusd-older-than-builder")
    subjects = Subjects(
        versions={
            "nydusd": Version("v2.1.5", "nydusd.log:1"),
            "builder": Version("v2.2.2", "nydus-image --version"),
        }
    )
    evidence = evaluate(signature, subjects)
    assert evidence is not None
    assert [e.source for e in evidence] == ["nydusd.log:1", "nydus-image --version"]


def test_skew_same_minor_passes() -> None:
    signature = CATALOGUE.by_id("skew-nydusd-older-than-builder")
    subjects = Subjects(
        versions={
            "nydusd": Version("2.2.0", "a"),
            "builder": Version("v2.2.5", "b"),
        }
    )
    assert evaluate(signature, subjects) is None


def test_skew_unknown_version_undecided() -> None:
    signature = CATALOGUE.by_id("skew-containerd-too-old")
    assert evaluate(signature, Subjects()) is None
    old = Subjects(versions={"containerd": Version("1.3.9", "containerd --version")})
    assert evaluate(signature, old) is not None
    new = Subjects(versions={"containerd": Version("1.6.20~ds1", "x")})
    assert evaluate(signature, new) is None


def test_matcher_keyword_index_complete() -> None:
    # Every example line contains a keyword of its signature, or the
    # prefilter would hide it from the regex.
    for signature in PATTERNS:
        for example in signature.examples:
            lowered = example.lower()
            assert any(k in lowered for k in signature.keywords), signature.id


def test_matcher_built_once() -> None:
    assert default_matcher() is default_matcher()


def test_signature_reference_is_current() -> None:
    page = Path(__file__).parent.parent / "docs" / "signatures.md"
    assert page.read_text() == signature_reference(), (
        "docs/signatures.md is stale: run scripts/gen-signature-reference"
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "Nov 13 09:05:19.123456 node-1 containerd-nydus-grpc[1314]: ",
        "Mon 2023-11-13 09:05:19 UTC node-1 containerd-nydus-grpc[1314]: ",
        "[  123.456789] node-1 containerd-nydus-grpc[1314]: ",
        "2023-11-13T09:05:19.123456+00:00 node-1 containerd-nydus-grpc[1314]: ",
    ],
)
def test_journal_output_formats_parsed(prefix: str) -> None:
    line = f'{prefix}time="2023-11-13T09:05:19Z" level=warning msg="Daemon d34 died"'
    matches = match_text(line)
    assert [m.check for m in matches] == ["sig.nydusd-died"]
    assert matches[0].source == "snapshotter"
    assert matches[0].groups == {"daemon": "d34"}
