"""The log buffer: capacity, time order across sources, and the reorder window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_console.logs.buffer import LogBuffer
from nydus_console.logs.records import LogRecord


def line(node: str, message: str, timestamp: float | None) -> LogRecord:
    return LogRecord(node, "journal", message, timestamp=timestamp)


def messages(buffer: LogBuffer) -> list[str]:
    return [entry.record.message for entry in buffer]


def test_buffer_counts_dropped() -> None:
    buffer = LogBuffer(capacity=3)
    records = [LogRecord("n", "s", str(i)) for i in range(5)]
    placed = buffer.extend(records)
    assert [entry.seq for entry in placed] == [0, 1, 2, 3, 4]
    assert messages(buffer) == ["2", "3", "4"]
    assert buffer.dropped == 2
    assert buffer.received == 5
    with pytest.raises(ValueError, match="at least 1"):
        LogBuffer(0)


def test_nodes_merge_by_timestamp() -> None:
    buffer = LogBuffer()
    buffer.extend([line("a", "a1", 10.0), line("a", "a3", 30.0)])
    buffer.extend([line("b", "b2", 20.0), line("b", "b4", 40.0)])
    assert messages(buffer) == ["a1", "b2", "a3", "b4"]
    assert buffer.late == 0


def test_equal_timestamps_keep_arrival_order() -> None:
    buffer = LogBuffer()
    buffer.extend([line("a", "first", 5.0)])
    buffer.extend([line("b", "second", 5.0), line("a", "third", 5.0)])
    assert messages(buffer) == ["first", "second", "third"]


def test_line_without_time_follows_its_source() -> None:
    buffer = LogBuffer()
    buffer.extend([line("a", "a1", 10.0), line("a", "a5", 50.0)])
    late = [line("b", "panic", 20.0), line("b", "  goroutine 1", None)]
    buffer.extend(late)
    assert messages(buffer) == ["a1", "panic", "  goroutine 1", "a5"]


def test_line_without_time_goes_to_end() -> None:
    buffer = LogBuffer()
    buffer.extend([line("a", "a1", 10.0), line("a", "a5", 50.0)])
    buffer.extend([line("b", "plain", None)])
    buffer.extend([line("b", "b3", 30.0)])
    assert messages(buffer) == ["a1", "b3", "a5", "plain"]


def test_marker_stays_at_arrival() -> None:
    buffer = LogBuffer()
    buffer.extend([line("a", "a1", 10.0), line("a", "a5", 50.0)])
    gap = LogRecord("b", "journal", "-- gap --", timestamp=99999.0, marker=True)
    buffer.extend([gap])
    assert messages(buffer) == ["a1", "a5", "-- gap --"]


def test_late_line_beyond_window_goes_to_end() -> None:
    buffer = LogBuffer(window=3)
    buffer.extend([line("a", f"a{i}", float(i)) for i in range(10, 20)])
    buffer.extend([line("b", "inside", 17.5), line("b", "outside", 12.5)])
    got = messages(buffer)
    assert got[-5:] == ["a17", "inside", "a18", "a19", "outside"]
    assert buffer.late == 1


def test_window_of_zero_keeps_arrival_order() -> None:
    buffer = LogBuffer(window=0)
    buffer.extend([line("a", "a2", 2.0)])
    buffer.extend([line("b", "b1", 1.0)])
    assert messages(buffer) == ["a2", "b1"]
    assert buffer.late == 1


def test_overflow_drops_oldest_by_time() -> None:
    buffer = LogBuffer(capacity=3)
    buffer.extend([line("a", "a2", 2.0), line("a", "a4", 4.0), line("a", "a5", 5.0)])
    buffer.extend([line("b", "b3", 3.0)])
    assert messages(buffer) == ["b3", "a4", "a5"]
    assert buffer.dropped == 1
    oldest = buffer.oldest
    assert oldest is not None
    assert oldest.record.message == "b3"


def test_late_line_older_than_everything_is_dropped() -> None:
    buffer = LogBuffer(capacity=2)
    buffer.extend([line("a", "a2", 2.0), line("a", "a3", 3.0)])
    placed = buffer.extend([line("b", "b1", 1.0)])
    assert [entry.record.message for entry in placed] == ["b1"]
    assert messages(buffer) == ["a2", "a3"]
    assert buffer.dropped == 1


timestamps = st.one_of(st.none(), st.integers(0, 50).map(float))
batches = st.lists(
    st.lists(st.tuples(st.sampled_from("abc"), timestamps), max_size=20),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(batches, st.integers(1, 40), st.integers(0, 30))
def test_buffer_stays_sorted(
    batches: list[list[tuple[str, float | None]]], capacity: int, window: int
) -> None:
    buffer = LogBuffer(capacity=capacity, window=window)
    total = 0
    for batch in batches:
        records = [
            line(node, str(total + i), stamp) for i, (node, stamp) in enumerate(batch)
        ]
        placed = buffer.extend(records)
        total += len(batch)
        assert placed == sorted(placed)
    entries = list(buffer)
    assert entries == sorted(entries), "entries are in (key, seq) order"
    assert len(entries) == min(total, capacity)
    assert buffer.received == total
    assert buffer.dropped == total - len(entries)
    assert len({entry.seq for entry in entries}) == len(entries)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1000), max_size=30), max_size=10))
def test_wide_window_sorts_fully(batches: list[list[int]]) -> None:
    buffer = LogBuffer(capacity=1000, window=1000)
    arrived: list[tuple[float, int]] = []
    for batch in batches:
        records = []
        for stamp in batch:
            records.append(line("n", str(len(arrived)), float(stamp)))
            arrived.append((float(stamp), len(arrived)))
        buffer.extend(records)
    expected = [str(seq) for _, seq in sorted(arrived)]
    assert messages(buffer) == expected
    assert buffer.late == 0
