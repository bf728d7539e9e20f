"""One reading of the note: what the code reads from it, read once per request.

`read_note` builds a `NoteFacts`: the vital signs with their spans (from
`engine.vitals`), the sentence index, the negation cues, and the
instruction-like text (from the prompt guard). The risk rules, the evidence
checks and the live risk preview all take their facts from here, so the
score and the checks can never disagree about what the note says. The result
is cached by note text: the preview, the risk step and the review of one
request share one reading.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from engine.safety.prompt_guard import InjectionMarker, injection_markers
from engine.safety.sentences import sentence_spans
from engine.text import neutralise
from engine.vitals import VitalSigns, extract_vitals

# Words that negate what follows them in the same clause ("no fever", "denies pain", "nil chest X-ray").
_NEGATION_CUE = re.compile(
    r"\b(?:no|not|denies|denied|denying|without|negative\s+for|nil|absence\s+of|free\s+of|never|not\s+done)\b",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.;!?\n]|\b(?:but|however)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NoteFacts:
    """What the engine reads from one note. Spans are character offsets in `note`."""

    note: str
    vitals: VitalSigns
    sentences: tuple[tuple[int, int], ...]
    negations: tuple[tuple[int, int], ...]
    injections: tuple[InjectionMarker, ...]

    def sentence_texts(self) -> list[str]:
        return [self.note[a:b] for a, b in self.sentences]

    def is_negated(self, position: int) -> bool:
        """A negation cue stands earlier in the clause that holds `position`."""
        return any(
            end <= position and not _CLAUSE_END.search(self.note, end, position) for _, end in self.negations
        )

    def is_injected(self, span: tuple[int, int]) -> bool:
        """`span` lies inside text the prompt guard marked as instruction-like."""
        start, end = span
        return any(a <= start and end <= b for a, b in (marker.region for marker in self.injections))


@functools.lru_cache(maxsize=16)
def read_note(note: str) -> NoteFacts:
    """The facts of `note`. Control characters are neutralised first, as everywhere the note enters."""
    text = neutralise(note or "")
    return NoteFacts(
        note=text,
        vitals=extract_vitals(text),
        sentences=tuple(sentence_spans(text)),
        negations=tuple(m.span() for m in _NEGATION_CUE.finditer(text)),
        injections=tuple(injection_markers(text)),
    )
