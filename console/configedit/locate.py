"""Line and column of each key in TOML and JSON text, for messages.

Neither tomlkit nor the json module reports where a key sits, so these scan
the text of a document that already parsed.
"""

from __future__ import annotations

import json
import re

from nydus_console.configedit.keys import KeyPath, KeySyntaxError, parse_key

_SEGMENT = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_SEGMENT}(?:[ \t]*\.[ \t]*{_SEGMENT})*"
_HEADER = re.compile(rf"^[ \t]*\[\[?[ \t]*({_DOTTED})[ \t]*\]\]?")
_ASSIGNMENT = re.compile(rf"^[ \t]*({_DOTTED})[ \t]*=[ \t]*(.*)$")

Position = tuple[int, int]
_DECODER = json.JSONDecoder()


def toml_key_positions(text: str) -> dict[KeyPath, Position]:
    """Map each table header and `key =` line to its 1-based line and column.

    NOTE: keys inside inline tables are not found; they get no position.
    """
    found: dict[KeyPath, Position] = {}
    table: KeyPath = ()
    closing = ""
    for number, line in enumerate(text.splitlines(), 1):
        if closing:
            if closing in line:
                closing = ""
            continue
        column = len(line) - len(line.lstrip(" \t")) + 1
        header = _HEADER.match(line)
        if header:
            table = _parse(header.group(1))
            _record(found, table, (number, column))
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment is None:
            continue
        _record(found, table + _parse(assignment.group(1)), (number, column))
        closing = _open_multiline(assignment.group(2))
    return found


def _record(found: dict[KeyPath, Position], path: KeyPath, at: Position) -> None:
    """Record `path` and, where not yet seen, the parents it implies."""
    for depth in range(1, len(path) + 1):
        found.setdefault(path[:depth], at)


def next_header_line(lines: list[str], after: int) -> int | None:
    """Return the 1-based number of the first table header below line `after`."""
    for number in range(after + 1, len(lines) + 1):
        if _HEADER.match(lines[number - 1]):
            return number
    return None


def _parse(dotted: str) -> KeyPath:
    try:
        return parse_key(dotted)
    except KeySyntaxError:
        return ()


def _open_multiline(value: str) -> str:
    """Return the delimiter of a multi-line string left open on this line."""
    for delimiter in ('"""', "'''"):
        if value.startswith(delimiter) and delimiter not in value[3:]:
            return delimiter
    return ""


def json_key_positions(text: str) -> dict[KeyPath, Position]:
    """Map the path of every object member to its key's line and column.

    Members of objects inside arrays are left out: a path has no index.
    """
    scanner = _JsonScanner(text)
    try:
        scanner.value(())
    except (IndexError, ValueError):
        # The text did not parse; the positions found so far still hold.
        pass
    return scanner.found


class _JsonScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.found: dict[KeyPath, Position] = {}

    def value(self, path: KeyPath | None) -> None:
        self._skip_blanks()
        char = self.text[self.position]
        if char == "{":
            self._object(path)
        elif char == "[":
            self._array()
        elif char == '"':
            self._string()
        else:
            match = re.compile(r"[^,\]}\s]+").match(self.text, self.position)
            if match is None:
                raise ValueError(f"unexpected {char!r}")
            self.position = match.end()

    def _object(self, path: KeyPath | None) -> None:
        self.position += 1
        self._skip_blanks()
        if self.text[self.position] == "}":
            self.position += 1
            return
        while True:
            self._skip_blanks()
            start = self.position
            key = self._string()
            member = None if path is None else (*path, key)
            if member is not None:
                self.found.setdefault(member, self._line_column(start))
            self._skip_blanks()
            self.position += 1  # the colon
            self.value(member)
            if self._after_member("}"):
                return

    def _array(self) -> None:
        self.position += 1
        self._skip_blanks()
        if self.text[self.position] == "]":
            self.position += 1
            return
        while True:
            self.value(None)
            if self._after_member("]"):
                return

    def _after_member(self, closing: str) -> bool:
        self._skip_blanks()
        char = self.text[self.position]
        self.position += 1
        if char == closing:
            return True
        if char != ",":
            raise ValueError(f"expected , or {closing}")
        return False

    def _string(self) -> str:
        value, end = _DECODER.raw_decode(self.text, self.position)
        self.position = end
        return str(value)

    def _skip_blanks(self) -> None:
        while self.text[self.position] in " \t\r\n":
            self.position += 1

    def _line_column(self, offset: int) -> Position:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, column
