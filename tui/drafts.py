"""The clinician's current draft, kept on disk so that a crash never costs typed text.

A draft is the note, the image path and the raw text of every form field
(kept as typed, so a half-written "9" survives). It is written atomically, so
a reader only ever sees a whole old or a whole new draft.
A draft that cannot be read is moved aside, never overwritten, so whatever it
held can still be recovered by hand.
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

    def is_empty(self) -> bool:
        return not (self.note or self.image_path or any(self.form.values()))

    def to_json(self) -> str:
        payload = {
            "version": DRAFT_VERSION,
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
        return Draft(
            note=str(payload.get("note") or ""),
            image_path=str(payload.get("image_path") or ""),
            form={str(key): str(value) for key, value in form.items() if value is not None},
        )
    except (ValueError, AttributeError, TypeError):
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError:
            pass
        return Draft()


def clear_draft(path: Path | None = None) -> None:
    save_draft(Draft(), path)
