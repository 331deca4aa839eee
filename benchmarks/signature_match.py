"""Micro benchmark: the cost of matching signatures on every log line.

Usage: python benchmarks/signature_match.py [--lines 200000] [--repeat 5]

The log view calls `match_record` for each parsed record. This script parses
a mix of lines once (the healthy snapshotter, containerd, kubelet and nydusd
lines under tests/samples/healthy, and every signature example), then times
three loops over the same records, best of REPEAT runs:

- baseline: `record_text(record)` alone, the text every match builds;
- healthy: `match_record` on the healthy records, which match nothing;
- failing: `match_record` on the example lines, which match a signature.

It prints microseconds per record for each loop and the share of healthy
records that pass the keyword prefilter and run a regex.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from nydus_console.diagnose import default_matcher, load_catalogue
from nydus_console.diagnose.inputs import load_input, read_path
from nydus_console.diagnose.matcher import record_text
from nydus_console.logs.records import LogRecord

HEALTHY = Path(__file__).resolve().parent.parent / "tests" / "samples" / "healthy"
LOG_FORMATS = ("journal", "log")


def healthy_records() -> list[LogRecord]:
    matcher = default_matcher()
    records: list[LogRecord] = []
    for name, text in read_path(str(HEALTHY)):
        item = load_input(name, text, matcher.classifier)
        if item.format in LOG_FORMATS:
            records += [line.record for line in item.lines]
    return records


def failing_records() -> list[LogRecord]:
    matcher = default_matcher()
    records: list[LogRecord] = []
    for signature in load_catalogue().signatures:
        for example in signature.examples:
            item = load_input("example.log", example, matcher.classifier)
            records += [line.record for line in item.lines]
    return records


def per_record(
    work: Callable[[LogRecord], object], records: list[LogRecord], count: int
) -> float:
    """Return microseconds per call of `work` over `count` records."""
    batch = (records * (count // len(records) + 1))[:count]
    started = time.perf_counter()
    for record in batch:
        work(record)
    return (time.perf_counter() - started) / count * 1e6


def prefiltered_share(records: list[LogRecord]) -> float:
    keywords = {k for s in load_catalogue().signatures for k in s.keywords}
    passed = sum(
        1 for r in records if any(k in record_text(r).lower() for k in keywords)
    )
    return passed / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    matcher = default_matcher()
    healthy = healthy_records()
    failing = failing_records()
    loops = {
        "baseline (record_text)": (record_text, healthy),
        "healthy (match_record)": (matcher.match_record, healthy),
        "failing (match_record)": (matcher.match_record, failing),
    }
    print(f"{len(healthy)} healthy and {len(failing)} failing records")
    for label, (work, records) in loops.items():
        best = min(
            per_record(work, records, args.lines) for _ in range(args.repeat)
        )
        print(f"{label:<24} {best:6.2f} µs per record")
    share = prefiltered_share(healthy)
    print(f"healthy records that pass the keyword prefilter: {share:.0%}")


if __name__ == "__main__":
    main()
