"""A scrolling view of log rows that renders only the lines on screen.

Appending a row formats it once to measure it. It is rendered to segments only
when it scrolls into sight, and the last rendered rows are cached. So the cost
of a burst of lines does not grow with the rendering of every line, as it does
with RichLog, which renders each line when it is written.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nydus_console.logs.records import LogRecord

# Rendered rows kept for redraws and scrolling; a screen shows far fewer.
STRIP_CACHE_ROWS = 2000


@dataclass(frozen=True)
class LogRow:
    """A record as shown: `seq` orders rows, `context` marks a context line."""

    seq: int
    record: LogRecord
    context: bool = False


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
        self._widest = 0
        # First line of each row while wrapping, and the total line count.
        self._starts: list[int] = []
        self._lines = 0
        self._wrap_width = 0
        self._cache: OrderedDict[int, Strip] = OrderedDict()

    # -- content ----------------------------------------------------------------

    def append(self, rows: Sequence[LogRow]) -> None:
        """Add rows at the end; the caller scrolls if it follows the end."""
        for row in rows:
            self.rows.append(row)
            width = self.formatter(row).cell_len
            self._widest = max(self._widest, width)
            if self.wrap:
                self._starts.append(self._lines)
                self._lines += self._height(width)
        if not self.wrap:
            self._lines = len(self.rows)
        self._update_size()

    def replace(self, rows: Sequence[LogRow]) -> None:
        """Show `rows` in place of every current row, rendering them afresh."""
        self.rows = []
        self._widest = 0
        self._starts = []
        self._lines = 0
        self._cache.clear()
        self.append(rows)
        self.refresh()

    def trim_before(self, seq: int) -> int:
        """Remove rows older than `seq`; return how many lines the view lost."""
        cut = bisect.bisect_left(self.rows, seq, key=lambda row: row.seq)
        if cut == 0:
            return 0
        lines_before = self._lines
        del self.rows[:cut]
        self._relayout()
        return lines_before - self._lines

    def redraw(self) -> None:
        """Render every row again, after the formatting changed."""
        self._cache.clear()
        self._relayout()
        self.refresh()

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self._relayout()
        self.refresh()

    def row_at(self, line: int) -> int:
        """Return the index of the row on screen line `line`, clamped to the rows."""
        located = self._locate(min(max(0, line), self._lines - 1))
        return located[0] if located else 0

    def line_of(self, index: int) -> int:
        """Return the first screen line of row `index`."""
        return self._starts[index] if self.wrap else index

    # -- layout -----------------------------------------------------------------

    def _relayout(self) -> None:
        self._starts = []
        self._lines = 0
        self._wrap_width = self._width()
        if self.wrap:
            for row in self.rows:
                self._starts.append(self._lines)
                self._lines += self._height(self.formatter(row).cell_len)
        else:
            self._lines = len(self.rows)
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
            self._relayout()
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
        line = self.scroll_offset.y + y
        located = self._locate(line)
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
