"""Wait for a node to go down and come back after a reboot.

The node is back when it responds with a boot id other than the one read
before the reboot, or when it responds again after it was seen down (a
connection refused, timed out or dropped). Reconnection attempts back off
from 1 to 15 seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nydus_console.transport.base import Transport, TransportError

BOOT_ID_ARGV = ("cat", "/proc/sys/kernel/random/boot_id")
BOOT_ID_TIMEOUT = 10.0
FIRST_DELAY = 1.0
MAX_DELAY = 15.0
# While the node still reports the old boot id, poll this often.
UP_POLL_SECONDS = 1.0


async def read_boot_id(transport: Transport) -> str:
    """Return the node's boot id; raise TransportError when it does not respond."""
    result = await transport.run(list(BOOT_ID_ARGV), timeout=BOOT_ID_TIMEOUT)
    return result.stdout.strip() if result.ok else ""


def _reset_backoff(transport: Transport) -> None:
    reset = getattr(transport, "reset_backoff", None)
    if reset is not None:
        reset()


@dataclass
class RebootWatch:
    """Polls one node until it is back, calling `on_down` once it is seen down."""

    transport: Transport
    old_boot_id: str
    down_seen: bool = False
    on_down: Callable[[], None] = field(default=lambda: None)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic

    async def wait(self, timeout: float) -> str:
        """Return "" once the node is back, else why it is not within `timeout`."""
        deadline = self.clock() + timeout
        delay = FIRST_DELAY
        last = "no answer yet"
        while self.clock() < deadline:
            _reset_backoff(self.transport)
            try:
                boot_id = await read_boot_id(self.transport)
            except TransportError as exc:
                last = f"{exc.kind}: {exc.message}"
                self._mark_down()
                await self.sleep(delay)
                delay = min(MAX_DELAY, delay * 2)
                continue
            if self._is_back(boot_id):
                return ""
            last = "still up with the boot id from before the reboot"
            await self.sleep(UP_POLL_SECONDS)
        return f"the node was not back within {timeout:g} s (last: {last})"

    def _mark_down(self) -> None:
        if not self.down_seen:
            self.down_seen = True
            self.on_down()

    def _is_back(self, boot_id: str) -> bool:
        if boot_id and self.old_boot_id and boot_id != self.old_boot_id:
            return True
        return self.down_seen
