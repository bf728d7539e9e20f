"""The clinician's current draft, kept on disk so that a crash never costs typed text.

A draft is the note, the image path and the raw text of every form field
(kept as typed, so a half-written "9" survives). It is written atomically, so
a reader only ever sees a whole old or a whole new draft.
A draft that cannot be read is moved aside, never overwritten, so whatever it
held can still be recovered by hand.

On a shared clinic PC the next person to start the app may not be the one who
typed the draft: a restored draft says how old it is (`age_text`) and what it
holds (`contents`), so the app can announce it and offer to discard it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import atomic_write_text, data_dir

DRAFT_FILE = "draft.json"
DRAFT_VERSION = 1


@dataclass(slots=True)
class Draft:
    note: str = ""
    image_path: str = ""
    form: dict[str, str] = field(default_factory=dict)  # field id -> text as typed
    saved_at: float | None = field(default=None, compare=False)  # seconds since the epoch

    def is_empty(self) -> bool:
        return not (self.note or self.image_path or any(self.form.values()))

    def contents(self) -> list[str]:
        """What the draft holds, in words: "the note (3 lines)", "the image path", "2 vital signs"."""
        parts = []
        if self.note.strip():
            lines = len(self.note.strip().splitlines())
            parts.append(f"the note ({lines} line{'s' if lines != 1 else ''})")
        if self.image_path:
            parts.append("the image path")
        filled = sum(bool(value.strip()) for value in self.form.values())
        if filled:
            parts.append(f"{filled} vital sign{'s' if filled != 1 else ''}")
        return parts

    def age_text(self, now: float | None = None) -> str:
        """How long ago the draft was saved, in words ("just now", "5 minutes ago", "2 days ago")."""
        if self.saved_at is None:
            return "at an unknown time"
        seconds = max(0.0, (now if now is not None else time.time()) - self.saved_at)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                count = int(seconds // size)
                return f"{count} {unit}{'s' if count != 1 else ''} ago"
        return "just now"

    def to_json(self) -> str:
        payload = {
            "version": DRAFT_VERSION,
            "saved_at": time.time(),
            "note": self.note,
            "image_path": self.image_path,
            "form": self.form,
        }
        return json.dumps(payload, ensure_ascii=False)


def draft_path() -> Path:
    return data_dir() / DRAFT_FILE


def save_draft(draft: Draft, path: Path | None = None) -> Path:
    path = path or draft_path()
    atomic_write_text(path, draft.to_json())
    return path


def load_draft(path: Path | None = None) -> Draft:
    """The saved draft, or an empty one. A damaged file is moved aside, not lost."""
    path = path or draft_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Draft()
    except OSError:
        return Draft()
    try:
        payload = json.loads(raw)
        form = payload.get("form") or {}
        saved_at = payload.get("saved_at")
        return Draft(
            note=str(payload.get("note") or ""),
            image_path=str(payload.get("image_path") or ""),
            form={str(key): str(value) for key, value in form.items() if value is not None},
            saved_at=float(saved_at) if isinstance(saved_at, int | float) else _file_time(path),
        )
    except (ValueError, AttributeError, TypeError):
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError:
            pass
        return Draft()


def _file_time(path: Path) -> float | None:
    """A draft written before drafts carried their time: the file's own time will do."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def clear_draft(path: Path | None = None) -> None:
    save_draft(Draft(), path)
