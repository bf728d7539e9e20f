"""Incremental parsing of the model's streamed JSON object.

The model writes one JSON object token by token. This parser reports each
top-level field as soon as its value is complete, and the decoded text of a
top-level string while it is still being written (the reasoning streams live).
Its `fields` are the answer: nothing parses the text a second time.

Decoding is where escapes become characters, so it is also where they are made
safe to print: `"\\u001b"` decodes to "␛", never to ESC. The text fed in must
already be neutralised (the engine neutralises every piece once, on arrival).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypeAlias

from engine.text import neutralise

JsonValue: TypeAlias = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    name: str
    delta: str = ""  # new decoded text of a string value still being written
    value: JsonValue = None
    complete: bool = False


@dataclass(slots=True)
class JsonFieldStream:
    depth: int = 0
    in_string: bool = False
    escape: str | None = None  # pending escape sequence, e.g. "\\" or "\\u00"
    high_surrogate: str | None = None  # first half of a \\uXXXX\\uXXXX pair
    expecting_key: bool = False
    key: str | None = None
    key_chars: list[str] = field(default_factory=list)
    in_value: bool = False  # a top-level value has started
    string_value: bool = False  # ... and it is a string
    value_chars: list[str] = field(default_factory=list)  # decoded string, or raw JSON of another value
    started: bool = False
    finished: bool = False
    stray_text: bool = False  # something other than one object and whitespace was written
    fields: dict[str, JsonValue] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """One whole JSON object, every field of it readable, and nothing around it."""
        return self.finished and not self.stray_text

    def feed(self, text: str) -> list[FieldUpdate]:
        updates: list[FieldUpdate] = []
        delta: list[str] = []
        for char in text:
            if self.finished:
                self.stray_text = self.stray_text or not char.isspace()
                continue
            raw_value = self.in_value and not self.string_value
            if raw_value:
                self.value_chars.append(char)
            if self.in_string:
                if self.escape is None and char == '"':
                    self._keep(self._lone_surrogate(), delta)
                    self._end_string()
                else:
                    self._keep(self._string_char(char), delta)
                continue
            if char == '"':
                self.in_string = True
                if self.depth == 0:
                    self.stray_text = True
                elif self.depth == 1 and not self.expecting_key and self.key and not self.in_value:
                    self.in_value, self.string_value = True, True
                continue
            if char in "{[":
                if self.depth == 0:
                    self.stray_text = self.stray_text or self.started or char == "["
                    self.started = True
                    self.expecting_key = True
                elif self.depth == 1 and not self.in_value and not self.expecting_key:
                    self.in_value, self.string_value = True, False
                    self.value_chars.append(char)
                self.depth += 1
                continue
            if char in "}]":
                if self.depth == 1:
                    self._flush(delta, updates, closing=raw_value)
                    self.finished = True
                self.depth -= 1
                continue
            if self.depth == 0:
                self.stray_text = self.stray_text or not char.isspace()
            elif self.depth == 1:
                if char == ",":
                    self._flush(delta, updates, closing=raw_value)
                    self.expecting_key = True
                elif char == ":":
                    self.expecting_key = False
                elif not char.isspace() and not self.in_value and self.key:
                    self.in_value, self.string_value = True, False
                    self.value_chars.append(char)
        if delta and self.key:
            updates.append(FieldUpdate(self.key, delta="".join(delta)))
        return updates

    def _keep(self, decoded: str, delta: list[str]) -> None:
        """Decoded string text counts only in a top-level key or a top-level string value."""
        if not decoded or self.depth != 1:
            return
        if self.expecting_key:
            self.key_chars.append(decoded)
        elif self.string_value:
            self.value_chars.append(decoded)
            delta.append(decoded)

    def _end_string(self) -> None:
        self.in_string = False
        if self.depth == 1 and self.expecting_key:
            self.key = "".join(self.key_chars)
            self.key_chars.clear()
            self.expecting_key = False

    def _flush(self, delta: list[str], updates: list[FieldUpdate], closing: bool) -> None:
        """The top-level value has ended: store it and report it complete."""
        if self.key is not None and self.in_value:
            if delta:
                updates.append(FieldUpdate(self.key, delta="".join(delta)))
                delta.clear()
            value: JsonValue | _Unreadable
            if self.string_value:
                value = "".join(self.value_chars)
            else:
                if closing:
                    self.value_chars.pop()  # the "," or "}" that ended the value is not part of it
                value = _decode_raw("".join(self.value_chars))
            if isinstance(value, _Unreadable):
                self.stray_text = True
            else:
                self.fields[self.key] = value
                updates.append(FieldUpdate(self.key, value=value, complete=True))
        self.key, self.in_value, self.string_value = None, False, False
        self.value_chars.clear()

    def _string_char(self, char: str) -> str:
        """Decode one character inside a string (not its closing quote); "" while an escape is pending."""
        if self.escape is None:
            if char == "\\":
                self.escape = "\\"
                return ""
            return self._lone_surrogate() + char
        self.escape += char
        if self.escape[1] == "u":
            if len(self.escape) < 6:
                return ""
            sequence, self.escape = self.escape, None
            try:
                code = int(sequence[2:], 16)
            except ValueError:
                return self._lone_surrogate() + _REPLACEMENT
            return self._code_point(code)
        sequence, self.escape = self.escape, None
        return self._lone_surrogate() + neutralise(_ESCAPES.get(sequence[1], ""))

    def _code_point(self, code: int) -> str:
        if 0xD800 <= code < 0xDC00:  # first half of a pair: wait for the second
            pending = self._lone_surrogate()
            self.high_surrogate = chr(code)
            return pending
        if 0xDC00 <= code < 0xE000:
            if self.high_surrogate is None:
                return _REPLACEMENT
            high, self.high_surrogate = ord(self.high_surrogate), None
            return chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
        return self._lone_surrogate() + neutralise(chr(code))

    def _lone_surrogate(self) -> str:
        """A first half not followed by its second is not text: show the replacement character."""
        if self.high_surrogate is None:
            return ""
        self.high_surrogate = None
        return _REPLACEMENT


class _Unreadable:
    pass


def _decode_raw(raw: str) -> JsonValue | _Unreadable:
    """A nested value (list, object, number, literal), its strings made safe to print."""
    try:
        value: JsonValue = json.loads(raw)
    except json.JSONDecodeError:
        return _Unreadable()
    return _neutralise_tree(value)


def _neutralise_tree(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, list):
        return [_neutralise_tree(item) for item in value]
    if isinstance(value, dict):
        return {neutralise(key): _neutralise_tree(item) for key, item in value.items()}
    return value
