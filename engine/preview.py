"""The risk preview a front end shows while the note is typed.

It is the engine's own risk step on the part of the note the engine would
accept, so the preview and the run never disagree.
"""

from __future__ import annotations

from engine.engine import MAX_NOTE_CHARS
from engine.events import Vitals
from engine.notefacts import read_note
from engine.risk import risk_from_note
from engine.schema import Risk


def preview_risk(note: str, vitals: Vitals | None) -> Risk:
    """NEWS2 and qSOFA from the note and the form, as the next run will score them.

    The note is read with `read_note`, the same cached reading the run uses.
    """
    return risk_from_note(read_note(note[:MAX_NOTE_CHARS]), vitals)
