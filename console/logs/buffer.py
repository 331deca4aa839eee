"""Bounded store of log records that counts what it had to drop."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from nydus_console.logs.records import LogRecord

DEFAULT_CAPACITY = 50_000


class LogBuffer:
    """Keeps the newest `capacity` records; `dropped` counts the older ones lost."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"log buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._records: deque[LogRecord] = deque(maxlen=capacity)
        self.dropped = 0
        self.received = 0

    def extend(self, records: Iterable[LogRecord]) -> int:
        """Add records; return how many older records this pushed out."""
        before = len(self._records)
        added = 0
        for record in records:
            self._records.append(record)
            added += 1
        overflow = max(0, before + added - self.capacity)
        self.dropped += overflow
        self.received += added
        return overflow

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[LogRecord]:
        return iter(self._records)

    def clear(self) -> None:
        self._records.clear()
