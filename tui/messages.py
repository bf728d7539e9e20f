"""Messages between widgets and the app: small dataclasses, handled with `@on`.

Widgets post these upward and never reach into each other; the case view
(or, for the status bar, the app) decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine import ModelLoaded


@dataclass
class FindingSelected(Message):
    """A finding was highlighted: show its evidence in the note."""

    text: str
    span: tuple[int, int] | None
    supported: bool


@dataclass
class FormChanged(Message):
    """A field of the case form changed: re-score live risk, save the draft."""

    field_id: str


@dataclass
class ImagePathChecked(Message):
    """The image path was validated as typed; error is None when usable or empty."""

    path: str
    error: str | None


@dataclass
class NoteLocked(Message):
    """A key was typed into the note while it is being analysed (it is read-only then)."""


@dataclass
class ModelReady(Message):
    """The model finished loading while a run waited for it: the status bar shows it."""

    event: ModelLoaded
