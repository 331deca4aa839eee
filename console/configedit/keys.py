"""Dotted key paths in TOML syntax: `plugins."io.containerd.grpc.v1.cri".snapshotter`.

A path is a tuple of segments. Segments are bare (`A-Za-z0-9_-`), basic-quoted
with TOML escapes (`"a.b"`) or literal-quoted (`'a.b'`), as in TOML keys.
"""

from __future__ import annotations

import re

KeyPath = tuple[str, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
}


class KeySyntaxError(ValueError):
    """A dotted key that is not valid TOML key syntax."""


def parse_key(text: str) -> KeyPath:
    """Split a dotted key into its segments, unquoting quoted ones."""
    segments: list[str] = []
    position = 0
    while True:
        position = _skip_blanks(text, position)
        segment, position = _read_segment(text, position)
        segments.append(segment)
        position = _skip_blanks(text, position)
        if position == len(text):
            return tuple(segments)
        if text[position] != ".":
            raise KeySyntaxError(
                f"invalid key {text!r}: expected '.' at column {position + 1}"
            )
        position += 1


def _skip_blanks(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t":
        position += 1
    return position


def _read_segment(text: str, position: int) -> tuple[str, int]:
    if position >= len(text):
        raise KeySyntaxError(f"invalid key {text!r}: a segment is empty")
    if text[position] == "'":
        end = text.find("'", position + 1)
        if end < 0:
            raise KeySyntaxError(f"invalid key {text!r}: unterminated ' quote")
        return text[position + 1 : end], end + 1
    if text[position] == '"':
        return _read_basic(text, position + 1)
    match = _BARE.match(text, position)
    if match is None:
        raise KeySyntaxError(
            f"invalid key {text!r}: unexpected {text[position]!r} at column "
            f"{position + 1}; quote segments that contain other characters"
        )
    return match.group(), match.end()


def _read_basic(text: str, position: int) -> tuple[str, int]:
    out: list[str] = []
    while position < len(text):
        char = text[position]
        if char == '"':
            return "".join(out), position + 1
        if char != "\\":
            out.append(char)
            position += 1
            continue
        escape = text[position + 1 : position + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            position += 2
        elif escape in ("u", "U"):
            width = 4 if escape == "u" else 8
            digits = text[position + 2 : position + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise KeySyntaxError(f"invalid key {text!r}: bad \\{escape} escape")
            out.append(chr(int(digits, 16)))
            position += 2 + width
        else:
            raise KeySyntaxError(f"invalid key {text!r}: unknown escape \\{escape}")
    raise KeySyntaxError(f'invalid key {text!r}: unterminated " quote')


def format_key(path: KeyPath) -> str:
    """Join segments into a dotted key, quoting those that are not bare."""
    return ".".join(_format_segment(segment) for segment in path)


def _format_segment(segment: str) -> str:
    if _BARE.fullmatch(segment):
        return segment
    return toml_basic_string(segment)


def toml_basic_string(value: str) -> str:
    """Quote a value as a TOML basic string that reads back as `value`.

    JSON escaping is close but not enough: TOML forbids DEL unescaped and
    rejects the surrogate pairs JSON writes for characters beyond U+FFFF.
    """
    out = ['"']
    for char in value:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
