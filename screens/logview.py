"""A scrolling view of log rows that renders only the lines on screen.

Adding a row formats it once to measure it. It is rendered to segments only
when it scrolls into sight, and the last rendered rows are cached. So the cost
of a burst of lines does not grow with the rendering of every line, as it does
with RichLog, which renders each line when it is written.

Rows stay sorted by time (`key`, then `seq`), so a late row is inserted in its
place.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import NamedTuple

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nydus_console.logs.records import LogRecord

# Rendered rows kept for redraws and scrolling; a screen shows far fewer.
STRIP_CACHE_ROWS = 2000


class LogRow(NamedTuple):
    """A record as shown, ordered by `key` (time), then `seq` (arrival).

    `seq` is unique among the rows of a view, so rows never compare equal and
    their records are never compared. `context` marks a context line.
    """

    key: float
    seq: int
    record: LogRecord
    context: bool = False


def row_order(row: LogRow) -> tuple[float, int]:
    return row.key, row.seq


class LogView(ScrollView, can_focus=True):
    """Rows of log records, one line each, or wrapped at the view's width."""

    def __init__(
        self,
        formatter: Callable[[LogRow], Text],
        *,
        id: str | None = None,  # noqa: A002 (Textual's widget keyword)
    ) -> None:
        super().__init__(id=id)
        self.formatter = formatter
        self.rows: list[LogRow] = []
        self.wrap = False
        # Cell width of each row, in step with `rows`.
        self._widths: list[int] = []
        self._widest = 0
        # First line of each row while wrapping, and the total line count.
        self._starts: list[int] = []
        self._lines = 0
        self._wrap_width = 0
        self._cache: OrderedDict[int, Strip] = OrderedDict()

    # -- content ----------------------------------------------------------------

    def merge(self, rows: Sequence[LogRow]) -> None:
        """Insert rows, sorted by time, in their places; the caller scrolls."""
        if not rows:
            return
        widths = [self.formatter(row).cell_len for row in rows]
        self._widest = max(self._widest, *widths)
        start = bisect.bisect_right(self.rows, row_order(rows[0]), key=row_order)
        if start == len(self.rows):
            self.rows.extend(rows)
            self._widths.extend(widths)
        else:
            moved = self.rows[start:] + list(rows)
            tail = sorted(zip(moved, self._widths[start:] + widths, strict=True))
            del self.rows[start:], self._widths[start:]
            self.rows.extend(row for row, _ in tail)
            self._widths.extend(width for _, width in tail)
        self._layout_from(start)

    def replace(self, rows: Sequence[LogRow]) -> None:
        """Show `rows` in place of every current row, rendering them afresh."""
        self.rows = []
        self._widths = []
        self._widest = 0
        self._starts = []
        self._lines = 0
        self._cache.clear()
        self.merge(rows)
        self._layout_from(0)
        self.refresh()

    def trim_before(self, order: tuple[float, int]) -> None:
        """Remove the rows that sort before `order` (key, seq)."""
        cut = bisect.bisect_left(self.rows, order, key=row_order)
        if cut == 0:
            return
        del self.rows[:cut], self._widths[:cut]
        self._starts = []
        self._layout_from(0)

    def redraw(self, width_change: int = 0) -> None:
        """Render every row again, after the formatting changed.

        `width_change` is the number of cells the change added to every row
        (negative when it removed some), so rows need not be measured again.
        """
        self._cache.clear()
        if width_change:
            self._widths = [width + width_change for width in self._widths]
            self._widest = max(self._widths, default=0)
            self._layout_from(0)
        self.refresh()

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self._layout_from(0)
        self.refresh()

    def row_at(self, line: int) -> int:
        """Return the index of the row on screen line `line`, clamped to the rows."""
        located = self._locate(min(max(0, line), self._lines - 1))
        return located[0] if located else 0

    def line_of(self, index: int) -> int:
        """Return the first screen line of row `index`."""
        return self._starts[index] if self.wrap else index

    def index_of(self, row: LogRow) -> int | None:
        """Return the index of `row`, or None when it is no longer shown."""
        index = bisect.bisect_left(self.rows, row_order(row), key=row_order)
        if index < len(self.rows) and self.rows[index].seq == row.seq:
            return index
        return None

    # -- scroll anchor ----------------------------------------------------------

    def top_anchor(self) -> tuple[LogRow, int] | None:
        """Return the row at the top of the view and its line shown there."""
        located = self._locate(self.scroll_offset.y)
        if located is None:
            return None
        index, part = located
        return self.rows[index], part

    def scroll_to_anchor(self, anchor: tuple[LogRow, int] | None) -> None:
        """Scroll so that the anchor row is at the top again, or to the top."""
        if anchor is None:
            return
        row, part = anchor
        index = self.index_of(row)
        line = 0 if index is None else self.line_of(index) + part
        self.scroll_to(y=line, animate=False)

    # -- layout -----------------------------------------------------------------

    def _layout_from(self, start: int) -> None:
        """Recompute line positions from row `start` on, after rows changed there."""
        if not self.wrap:
            self._starts = []
            self._lines = len(self.rows)
            self._update_size()
            return
        width = self._width()
        if width != self._wrap_width or len(self._starts) < start:
            self._wrap_width = width
            start = 0
        del self._starts[start:]
        first = self._starts[-1] + self._height(self._widths[start - 1]) if start else 0
        heights = [self._height(cells) for cells in self._widths[start:]]
        starts = list(accumulate(heights, initial=first))
        self._starts.extend(starts[:-1])
        self._lines = starts[-1]
        self._update_size()

    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _height(self, cells: int) -> int:
        return max(1, -(-cells // self._wrap_width))

    def _update_size(self) -> None:
        width = self._wrap_width if self.wrap else self._widest
        self.virtual_size = Size(width, self._lines)

    def on_resize(self) -> None:
        if self.wrap and self._width() != self._wrap_width:
            self._layout_from(0)
            self.refresh()

    # -- rendering ----------------------------------------------------------------

    def _strip(self, row: LogRow) -> Strip:
        strip = self._cache.get(row.seq)
        if strip is not None:
            self._cache.move_to_end(row.seq)
            return strip
        text = self.formatter(row)
        text.end = ""
        strip = Strip(list(text.render(self.app.console)))
        self._cache[row.seq] = strip
        if len(self._cache) > STRIP_CACHE_ROWS:
            self._cache.popitem(last=False)
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        located = self._locate(self.scroll_offset.y + y)
        if located is None:
            return Strip.blank(width, self.rich_style)
        index, part = located
        strip = self._strip(self.rows[index])
        if self.wrap:
            start = part * self._wrap_width
            strip = strip.crop(start, start + self._wrap_width)
        else:
            start = self.scroll_offset.x
            strip = strip.crop(start, start + width)
        return strip.extend_cell_length(width).apply_style(self.rich_style)

    def _locate(self, line: int) -> tuple[int, int] | None:
        """Return (row index, wrapped line within the row) of a screen line."""
        if line < 0 or line >= self._lines:
            return None
        if not self.wrap:
            return line, 0
        index = bisect.bisect_right(self._starts, line) - 1
        return index, line - self._starts[index]
