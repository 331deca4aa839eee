"""A scrolling view of log rows that renders only the lines on screen.

Adding a row measures its width without rendering it. It is rendered to
segments only when it scrolls into sight, and the last rendered rows are
cached. So the cost of a burst of lines does not grow with the rendering of
every line, as it does with RichLog, which renders each line when it is
written.

Rows stay sorted by time (`key`, then `seq`), so a late row is inserted in its
place. Text selected with the mouse uses the row index as its line, and is
moved along when rows are inserted or trimmed above it.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import NamedTuple

from rich.text import Text
from textual import events
from textual.geometry import Offset, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.selection import Selection
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

    class RowClicked(Message):
        """Message that a row was clicked."""

        def __init__(self, row: LogRow) -> None:
            super().__init__()
            self.row = row

    def __init__(
        self,
        formatter: Callable[[LogRow], Text],
        measure: Callable[[LogRow], int],
        *,
        id: str | None = None,  # noqa: A002 (Textual's widget keyword)
    ) -> None:
        """`measure` returns the cells of `formatter(row)` without rendering it."""
        super().__init__(id=id)
        self.formatter = formatter
        self.measure = measure
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
        saved = self._save_selection()
        widths = [self.measure(row) for row in rows]
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
        self._restore_selection(saved)

    def replace(self, rows: Sequence[LogRow]) -> None:
        """Show `rows` in place of every current row, rendering them afresh."""
        self.rows = []
        self._widths = []
        self._widest = 0
        self._starts = []
        self._lines = 0
        self._cache.clear()
        self._clear_selection()
        self.merge(rows)
        self._layout_from(0)
        self.refresh()

    def trim_before(self, order: tuple[float, int]) -> None:
        """Remove the rows that sort before `order` (key, seq)."""
        cut = bisect.bisect_left(self.rows, order, key=row_order)
        if cut == 0:
            return
        saved = self._save_selection()
        del self.rows[:cut], self._widths[:cut]
        self._starts = []
        self._layout_from(0)
        self._restore_selection(saved)

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

    def visible_rows(self) -> range:
        """Return the indexes of the rows on screen, top to bottom."""
        if not self.rows:
            return range(0)
        top = self.scroll_offset.y
        bottom = top + max(1, self.scrollable_content_region.height) - 1
        return range(self.row_at(top), self.row_at(bottom) + 1)

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

    def _strip(self, row: LogRow, index: int) -> Strip:
        span = self._selected_span(index)
        if span is not None:
            return self._render_selected(row, span)
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

    def _render_selected(self, row: LogRow, span: tuple[int, int]) -> Strip:
        text = self.formatter(row)
        text.end = ""
        start, end = span
        style = self.screen.get_component_rich_style("screen--selection")
        text.stylize(style, start, len(text) if end == -1 else end)
        return Strip(list(text.render(self.app.console)))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        located = self._locate(self.scroll_offset.y + y)
        if located is None:
            return Strip.blank(width, self.rich_style)
        index, part = located
        strip = self._strip(self.rows[index], index)
        if self.wrap:
            start = part * self._wrap_width
            strip = strip.crop(start, start + self._wrap_width)
        else:
            start = self.scroll_offset.x
            strip = strip.crop(start, start + width)
        strip = strip.extend_cell_length(width).apply_style(self.rich_style)
        # The offsets tell Textual's text selection which row and column a
        # cell shows: the row index and the character offset in that row.
        return strip.apply_offsets(start, index)

    def _locate(self, line: int) -> tuple[int, int] | None:
        """Return (row index, wrapped line within the row) of a screen line."""
        if line < 0 or line >= self._lines:
            return None
        if not self.wrap:
            return line, 0
        index = bisect.bisect_right(self._starts, line) - 1
        return index, line - self._starts[index]

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        located = self._locate(self.scroll_offset.y + offset.y)
        if located is not None:
            self.post_message(self.RowClicked(self.rows[located[0]]))

    # -- selection ----------------------------------------------------------------

    def selected_row_count(self) -> int:
        """Return how many rows the text selection touches (0 without one)."""
        selection = self.text_selection
        if selection is None or not self.rows:
            return 0
        first, last = self._selection_bounds(selection)
        return max(0, last - first + 1)

    def selected_lines(self) -> list[str]:
        """Return the selected text of each row the selection touches."""
        selection = self.text_selection
        if selection is None or not self.rows:
            return []
        first, last = self._selection_bounds(selection)
        lines: list[str] = []
        for index in range(first, last + 1):
            span = selection.get_span(index)
            if span is None:
                continue
            text = self.formatter(self.rows[index]).plain
            start, end = span
            lines.append(text[start:] if end == -1 else text[start:end])
        return lines

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """Return the selected text for Textual's copy (ctrl+c)."""
        lines = self.selected_lines()
        return ("\n".join(lines), "\n") if lines else None

    def _selection_bounds(self, selection: Selection) -> tuple[int, int]:
        last_row = len(self.rows) - 1
        first = 0 if selection.start is None else max(0, selection.start.y)
        last = last_row if selection.end is None else min(last_row, selection.end.y)
        return first, last

    def _selected_span(self, index: int) -> tuple[int, int] | None:
        selection = self.text_selection
        return None if selection is None else selection.get_span(index)

    def _save_selection(self) -> tuple[Selection, LogRow | None, LogRow | None] | None:
        """Return the selection and the rows at its ends, before rows move."""
        selection = self.text_selection
        if selection is None:
            return None
        return selection, self._row_at(selection.start), self._row_at(selection.end)

    def _row_at(self, offset: Offset | None) -> LogRow | None:
        if offset is None or not 0 <= offset.y < len(self.rows):
            return None
        return self.rows[offset.y]

    def _restore_selection(
        self, saved: tuple[Selection, LogRow | None, LogRow | None] | None
    ) -> None:
        """Move the selection to the new indexes of its rows, or clear it."""
        if saved is None:
            return
        selection, start_row, end_row = saved
        end = selection.end
        if end_row is not None:
            end_index = self.index_of(end_row)
            if end_index is None:
                self._clear_selection()
                return
            end = Offset(end.x if end else 0, end_index)
        start = selection.start
        if start_row is not None:
            start_index = self.index_of(start_row)
            if start_index is None:
                start = Offset(0, 0)
            else:
                start = Offset(start.x if start else 0, start_index)
        selections = self.screen.selections
        self.screen.selections = {**selections, self: Selection(start, end)}

    def _clear_selection(self) -> None:
        if self.is_attached and self.text_selection is not None:
            remaining = dict(self.screen.selections)
            del remaining[self]
            self.screen.selections = remaining
