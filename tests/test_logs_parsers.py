"""Parsers of every log format on real-format lines, malformed ones and huge ones."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_console.logs.parsers import (
    MAX_MESSAGE,
    masked,
    parse_journal_json,
    parse_klog,
    parse_text,
)
from nydus_console.logs.records import Level, LogRecord

FATAL = (
    'time="2023-11-13T09:05:19.123456789Z" level=fatal msg="failed to start '
    'nydus-snapshotter" error="failed to initialize snapshotter: load daemon '
    "configuration: read FUSE configuration file /etc/nydus/x.json: open "
    '/etc/nydus/x.json: no such file or directory"'
)
NYDUSD = (
    "[2025-09-10 02:47:34.123456 +00:00] WARN [/src/backend/mod.rs:132] Read from "
    "backend failed: Registry(Transport(reqwest::Error { kind: Decode })), retry "
    "count 1"
)
KLOG = (
    'E1212 11:34:51.360778     601 cri_stats_provider.go:455] "Failed to get the '
    'info of the filesystem with mountpoint" err="failed to get device for dir '
    '\\"/var/lib/containerd/io.containerd.snapshotter.v1.nydus\\": stat failed" '
    'mountpoint="/var/lib/containerd/io.containerd.snapshotter.v1.nydus"'
)


def test_logrus_fatal() -> None:
    record = parse_text("n1", "snapshotter", FATAL)
    assert record.level is Level.FATAL
    assert record.message == "failed to start nydus-snapshotter"
    assert record.fields["error"].endswith("no such file or directory")
    assert record.timestamp == pytest.approx(1699866319.123456)


def test_logrus_warning_and_escaped_quotes() -> None:
    line = 'time="2024-07-11T18:00:00Z" level=warning msg="said \\"hi\\"" id=cq81pj'
    record = parse_text("n1", "s", line)
    assert record.level is Level.WARNING
    assert record.message == 'said "hi"'
    assert record.fields["id"] == "cq81pj"


def test_nydusd_line() -> None:
    record = parse_text("n1", "nydusd", NYDUSD)
    assert record.level is Level.WARNING
    assert record.message.startswith("Read from backend failed")
    assert record.fields["location"] == "/src/backend/mod.rs:132"
    assert record.timestamp == pytest.approx(1757472454.123456)


def test_nydusd_info_without_location() -> None:
    record = parse_text(
        "n1", "nydusd", "[2021-08-21 19:08:12 +08:00] INFO rafs mounted at /"
    )
    assert record.level is Level.INFO
    assert record.message == "rafs mounted at /"


def test_klog_structured() -> None:
    record = parse_klog("n1", "kubelet", KLOG, year=2022)
    assert record is not None
    assert record.level is Level.ERROR
    assert record.message == "Failed to get the info of the filesystem with mountpoint"
    assert "stat failed" in record.fields["err"]
    assert record.fields["pid"] == "601"


def test_unknown_line_kept_raw() -> None:
    record = parse_text("n1", "x", "Error: Failed to start singleton daemon: Invalid")
    assert record.level is Level.ERROR
    assert record.message == "Error: Failed to start singleton daemon: Invalid"
    plain = parse_text("n1", "x", "something else entirely")
    assert plain.level is Level.INFO
    assert plain.raw == "something else entirely"


def journal_line(**fields: object) -> str:
    entry: dict[str, object] = {
        "__CURSOR": "s=abc;i=4",
        "__REALTIME_TIMESTAMP": "1796397601967949",
        "_SYSTEMD_UNIT": "nydus-snapshotter.service",
        "PRIORITY": "6",
        "_PID": "42",
    }
    entry.update(fields)
    return json.dumps(entry)


def test_journal_json_with_inner_logrus() -> None:
    record = parse_journal_json("n1", "unit", journal_line(MESSAGE=FATAL))
    assert record.level is Level.FATAL
    assert record.message == "failed to start nydus-snapshotter"
    assert record.cursor == "s=abc;i=4"
    assert record.timestamp == pytest.approx(1796397601.967949)
    assert record.fields["unit"] == "nydus-snapshotter.service"


def test_journal_priority_for_plain_messages() -> None:
    record = parse_journal_json(
        "n1", "u", journal_line(MESSAGE="Start failed", PRIORITY="3")
    )
    assert record.level is Level.ERROR
    assert record.message == "Start failed"


def test_journal_binary_message() -> None:
    data = list("naïve\x00bytes".encode()) + [255]
    record = parse_journal_json("n1", "u", journal_line(MESSAGE=data))
    assert record.message.startswith("naïve\x00bytes")
    assert record.message.endswith("\ufffd")


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", "", '{"MESSAGE": null}'])
def test_journal_malformed_lines_survive(line: str) -> None:
    record = parse_journal_json("n1", "u", line)
    assert isinstance(record, LogRecord)


def test_megabyte_line_is_cut_quickly() -> None:
    line = 'time="2024-01-01T00:00:00Z" level=info msg="' + "x" * 1_000_000 + '"'
    started = time.perf_counter()
    record = parse_text("n1", "s", line)
    elapsed = time.perf_counter() - started
    assert len(record.message) < MAX_MESSAGE + 100
    assert "more characters cut" in record.message
    assert elapsed < 5, "a 1 MB line must not stall the parser"
    raw = parse_text("n1", "s", "y" * 1_000_000)
    assert len(raw.message) < MAX_MESSAGE + 100


def test_masked_record_hides_credentials() -> None:
    record = masked(parse_text("n1", "s", 'level=info msg="login" auth="dXNlcjpwYXNz"'))
    assert "dXNlcjpwYXNz" not in record.raw
    assert "dXNlcjpwYXNz" not in str(record.fields)


def test_masked_journal_binary_message() -> None:
    # The raw JSON holds the message as numbers, so only the decoded text
    # shows the credential key.
    data = list(b'level=info msg="pull" token="c2VjcmV0"')
    record = masked(parse_journal_json("n1", "u", journal_line(MESSAGE=data)))
    assert record.fields["token"] == '"***"'
    assert "c2VjcmV0" not in str(record.fields)


def test_masked_journal_plain_message() -> None:
    line = journal_line(MESSAGE='registry login password="hunter2" failed')
    record = masked(parse_journal_json("n1", "u", line))
    assert record.message == 'registry login password="***" failed'
    assert "hunter2" not in record.raw


def test_logrus_value_without_escapes() -> None:
    record = parse_text("n1", "s", 'level=info msg="a\tb" path="/x y"')
    assert record.message == "a\tb"
    assert record.fields["path"] == "/x y"


def test_text_quoting_logrus_is_not_logrus() -> None:
    line = "Started x.service - /usr/bin/sh -c echo 'level=info msg=\"entry 1\"'."
    record = parse_text("n1", "u", line)
    assert record.message == line
    assert parse_text("n1", "u", 'level=warning msg="bare"').message == "bare"


PREFIXES = st.sampled_from(
    [
        "",
        'time="',
        "level=",
        'time="2024-01-01T00:00:00Z" level=',
        "[2024-01-01 ",
        "E1212 ",
        '{"MESSAGE": ',
        '{"__REALTIME_TIMESTAMP": ',
    ]
)


@settings(max_examples=300, deadline=None)
@given(PREFIXES, st.text(max_size=200))
def test_parsers_accept_any_text(prefix: str, rest: str) -> None:
    line = prefix + rest
    assert isinstance(parse_text("n", "s", line), LogRecord)
    assert isinstance(parse_journal_json("n", "s", line), LogRecord)
