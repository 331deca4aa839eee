"""Bounded store of log records in time order that counts what it had to drop.

Records from several sources (and nodes) arrive in batches, each source in its
own order and with its own delay. The buffer keeps them sorted by timestamp,
then by arrival, and keeps only the newest `capacity` of them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from nydus_console.logs.records import LogRecord

DEFAULT_CAPACITY = 50_000
# A late record is put in its place only when that place is among the newest
# REORDER_WINDOW records. An older one is added at the end, because the work
# per batch grows with how far back a record goes.
REORDER_WINDOW = 5_000


class OrderedRecord(NamedTuple):
    """A buffered record and its place: ordered by `key`, then by `seq`.

    `key` is the record's timestamp, or the key it inherits when it has none.
    `seq` numbers the records in arrival order and is unique in a buffer, so
    two entries never compare equal and their records are never compared.
    """

    key: float
    seq: int
    record: LogRecord


class LogBuffer:
    """Store of the newest `capacity` records in time order, with counts of the rest.

    `received` counts every record added, `dropped` the oldest ones pushed out,
    and `late` the ones that arrived too late for their place (more than
    `window` records back) and were added at the end instead.
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, window: int = REORDER_WINDOW
    ) -> None:
        if capacity < 1:
            raise ValueError(f"log buffer capacity must be at least 1, got {capacity}")
        if window < 0:
            raise ValueError(f"reorder window must not be negative, got {window}")
        self.capacity = capacity
        self.window = window
        self._entries: deque[OrderedRecord] = deque(maxlen=capacity)
        self.dropped = 0
        self.received = 0
        self.late = 0
        self.newest_key = -math.inf

    def extend(self, records: Iterable[LogRecord]) -> list[OrderedRecord]:
        """Add records in arrival order; return their entries in time order.

        The returned entries may already have been pushed out again when the
        batch is larger than the capacity.
        """
        entries = self._keyed(records)
        if not entries:
            return []
        entries.sort()
        newer = self._pop_newer(entries[0].key)
        if self._entries and self._entries[-1].key > entries[0].key:
            entries = self._defer_late(entries, self._entries[-1].key)
        before = len(self._entries)
        self._entries.extend(sorted(newer + entries))
        self.dropped += max(0, before + len(newer) + len(entries) - self.capacity)
        self.received += len(entries)
        return entries

    def _keyed(self, records: Iterable[LogRecord]) -> list[OrderedRecord]:
        """Number records in arrival order and give each its sort key.

        A record without a timestamp, and a marker the console inserted, takes
        the key of the record before it from the same source in this batch, so
        a continuation line stays under its first line. Without one it takes
        the newest key so far, which puts it at the end in arrival order.
        """
        entries: list[OrderedRecord] = []
        previous: dict[tuple[str, str], float] = {}
        seq = self.received
        for record in records:
            origin = (record.node, record.source)
            if record.timestamp is not None and not record.marker:
                key = record.timestamp
                self.newest_key = max(self.newest_key, key)
            else:
                key = previous.get(origin, self.newest_key)
            previous[origin] = key
            entries.append(OrderedRecord(key, seq, record))
            seq += 1
        return entries

    def _pop_newer(self, key: float) -> list[OrderedRecord]:
        """Take up to `window` entries newer than `key` off the end, oldest first."""
        newer: list[OrderedRecord] = []
        entries = self._entries
        while entries and entries[-1].key > key and len(newer) < self.window:
            newer.append(entries.pop())
        newer.reverse()
        return newer

    def _defer_late(
        self, entries: list[OrderedRecord], boundary: float
    ) -> list[OrderedRecord]:
        """Move entries older than the window's `boundary` to the end."""
        deferred = 0
        moved: list[OrderedRecord] = []
        for entry in entries:
            if entry.key < boundary:
                entry = entry._replace(key=self.newest_key)
                deferred += 1
            moved.append(entry)
        self.late += deferred
        moved.sort()
        return moved

    @property
    def oldest(self) -> OrderedRecord | None:
        """The first entry in time order, or None when the buffer is empty."""
        return self._entries[0] if self._entries else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[OrderedRecord]:
        return iter(self._entries)

    def clear(self) -> None:
        self._entries.clear()
