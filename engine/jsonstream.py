"""Incremental parsing of the model's streamed JSON object.

The model writes one JSON object token by token. This parser reports each
top-level field as soon as its value is complete, and the decoded text of a
top-level string while it is still being written (the reasoning streams live).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(slots=True)
class FieldUpdate:
    name: str
    delta: str = ""  # new decoded text of a string value still being written
    value: Any = None
    complete: bool = False


@dataclass(slots=True)
class JsonFieldStream:
    buffer: list[str] = field(default_factory=list)
    depth: int = 0
    in_string: bool = False
    escape: str | None = None  # pending escape sequence, e.g. "\\" or "\\u00"
    expecting_key: bool = False
    key: str | None = None
    key_chars: list[str] = field(default_factory=list)
    value_start: int | None = None
    string_value: bool = False  # the current top-level value is a string
    finished: bool = False
    fields: dict[str, Any] = field(default_factory=dict)

    def feed(self, text: str) -> list[FieldUpdate]:
        updates: list[FieldUpdate] = []
        delta: list[str] = []
        for char in text:
            position = len(self.buffer)
            self.buffer.append(char)
            if self.finished:
                continue
            if self.in_string:
                decoded = self._string_char(char)
                if decoded is None:
                    continue
                if isinstance(decoded, _EndOfString):
                    self.in_string = False
                    if self.depth == 1 and self.expecting_key:
                        self.key = "".join(self.key_chars)
                        self.key_chars.clear()
                        self.expecting_key = False
                    continue
                if self.depth == 1 and self.expecting_key:
                    self.key_chars.append(decoded)
                elif self.depth == 1 and self.string_value:
                    delta.append(decoded)
                continue
            if char == '"':
                self.in_string = True
                if self.depth == 1 and not self.expecting_key and self.key and self.value_start is None:
                    self.value_start, self.string_value = position, True
                continue
            if char in "{[":
                if self.depth == 1 and self.value_start is None and not self.expecting_key:
                    self.value_start, self.string_value = position, False
                self.depth += 1
                if self.depth == 1:
                    self.expecting_key = True
                continue
            if char in "}]":
                if self.depth == 1:
                    self._flush(position, delta, updates)
                    self.finished = True
                self.depth -= 1
                continue
            if self.depth == 1:
                if char == ",":
                    self._flush(position, delta, updates)
                    self.expecting_key = True
                elif char == ":":
                    self.expecting_key = False
                elif not char.isspace() and self.value_start is None and self.key:
                    self.value_start, self.string_value = position, False
        if delta and self.key:
            updates.append(FieldUpdate(self.key, delta="".join(delta)))
        return updates

    def _flush(self, end: int, delta: list[str], updates: list[FieldUpdate]) -> None:
        if self.key is None or self.value_start is None:
            return
        if delta:
            updates.append(FieldUpdate(self.key, delta="".join(delta)))
            delta.clear()
        raw = "".join(self.buffer[self.value_start : end])
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        else:
            self.fields[self.key] = value
            updates.append(FieldUpdate(self.key, value=value, complete=True))
        self.key, self.value_start, self.string_value = None, None, False

    def _string_char(self, char: str) -> str | _EndOfString | None:
        """Decode one character inside a string: text, None (pending) or _END."""
        if self.escape is None:
            if char == "\\":
                self.escape = "\\"
                return None
            if char == '"':
                return _END
            return char
        self.escape += char
        if self.escape[1] == "u":
            if len(self.escape) < 6:
                return None
            sequence, self.escape = self.escape, None
            try:
                return chr(int(sequence[2:], 16))
            except ValueError:
                return ""
        sequence, self.escape = self.escape, None
        return _ESCAPES.get(sequence[1], "")

    @property
    def text(self) -> str:
        return "".join(self.buffer)


class _EndOfString:
    pass


_END = _EndOfString()
