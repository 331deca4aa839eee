"""Typed values of schema keys: parsing command-line text and checking values."""

from __future__ import annotations

import json
import re
from typing import Any

from nydus_console.configedit.schema import KeyEntry
from nydus_console.configs import is_secret_name

# Go's time.ParseDuration: a sequence of decimal numbers, each with a unit.
DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")
_INTEGER = re.compile(r"[-+]?\d+")
_TYPE_NAMES = {
    "string": "a string",
    "int": "a whole number",
    "bool": "true or false",
    "duration": 'a duration such as "30s", "5m" or "24h"',
    "enum": "one of the allowed values",
    "list": "a list",
    "table": "a table",
}


class ValueParseError(ValueError):
    """A value that does not fit its key; the message names key, value and fix."""

    def __init__(self, entry: KeyEntry, text: str, reason: str) -> None:
        self.key = entry.name
        self.value = "***" if entry.secret else text
        self.reason = reason
        super().__init__(f"invalid value {self.value!r} for {self.key}: {reason}")


def parse_value(entry: KeyEntry, text: str) -> Any:
    """Turn command-line text into the typed value of `entry`.

    bool takes true or false, int a decimal whole number, list a JSON array
    (`["a", "b"]`), and duration stays a Go duration string. Raises
    ValueParseError naming the key, the value and what is allowed.
    """
    value = _convert(entry, text)
    problem = check_value(entry, value)
    if problem:
        raise ValueParseError(entry, text, problem)
    return value


def _convert(entry: KeyEntry, text: str) -> Any:
    kind = entry.type
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueParseError(entry, text, "expected true or false")
        return text == "true"
    if kind == "int" or (kind == "enum" and _is_int_enum(entry)):
        if not _INTEGER.fullmatch(text):
            raise ValueParseError(entry, text, "expected a whole number")
        return int(text)
    if kind == "list":
        return _convert_list(entry, text)
    if kind == "table":
        raise ValueParseError(
            entry, text, "this is a table; set the keys inside it one by one"
        )
    return text


def _is_int_enum(entry: KeyEntry) -> bool:
    return bool(entry.allowed) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in entry.allowed
    )


def _convert_list(entry: KeyEntry, text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list):
        raise ValueParseError(
            entry, text, 'expected a JSON array such as ["/etc/ssl/certs/ca.pem"]'
        )
    return value


def check_value(entry: KeyEntry, value: Any) -> str:
    """Return why `value` does not fit `entry`, or "" when it fits."""
    wrong_type = type_problem(entry, value)
    if wrong_type:
        return wrong_type
    if entry.allowed and value not in entry.allowed:
        return f"allowed values: {allowed_text(entry)}"
    if isinstance(value, int) and not isinstance(value, bool):
        return _range_problem(entry, value)
    if isinstance(value, str):
        return _string_problem(entry, value)
    if isinstance(value, list) and entry.items:
        return _items_problem(entry, value)
    return ""


def allowed_text(entry: KeyEntry) -> str:
    return ", ".join(
        json.dumps(v) if isinstance(v, str) else str(v) for v in entry.allowed
    )


def type_problem(entry: KeyEntry, value: Any) -> str:
    """Return why `value` has the wrong type for `entry`, or "" when it fits."""
    if _fits_type(entry.type, value) or (
        entry.type == "enum" and _fits_enum_type(entry, value)
    ):
        return ""
    return f"expected {_TYPE_NAMES[entry.type]}, found {describe_type(value)}"


def _fits_type(kind: str, value: Any) -> bool:
    if kind in ("string", "duration"):
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "table":
        return isinstance(value, dict)
    return False


def _fits_enum_type(entry: KeyEntry, value: Any) -> bool:
    if _is_int_enum(entry):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def describe_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "null" if value is None else type(value).__name__


def _range_problem(entry: KeyEntry, value: int) -> str:
    if entry.minimum is not None and value < entry.minimum:
        return f"must be at least {entry.minimum}"
    if entry.maximum is not None and value > entry.maximum:
        return f"must be at most {entry.maximum}"
    return ""


def _string_problem(entry: KeyEntry, value: str) -> str:
    if entry.type == "duration" and not DURATION.fullmatch(value):
        return 'expected a Go duration such as "30s", "5m" or "24h"'
    size = len(value.encode())
    if entry.max_bytes is not None and size > entry.max_bytes:
        return f"{size} bytes long, max is {entry.max_bytes} bytes"
    if entry.pattern and not re.fullmatch(entry.pattern, value):
        return "does not have the expected form"
    return ""


def _items_problem(entry: KeyEntry, value: list[Any]) -> str:
    for index, item in enumerate(value):
        if not _fits_type(entry.items, item):
            return (
                f"item {index + 1} is {describe_type(item)}, expected "
                f"{_TYPE_NAMES[entry.items]}"
            )
    return ""


def display_value(
    entry: KeyEntry | None, name: str, value: Any, *, secret: bool = False
) -> str:
    """Render a value for messages, with *** in place of any secret.

    A value is secret when its entry says so or `secret` is set (an unknown
    key close to a secret one), and a string also when its key's name
    contains a credential word. A table renders as "".
    """
    if isinstance(value, dict) or value in ("", None):
        return "" if isinstance(value, dict) else json.dumps(value)
    if secret or (entry is not None and entry.secret):
        return "***"
    if isinstance(value, str) and is_secret_name(name):
        return "***"
    return json.dumps(value, ensure_ascii=False)
