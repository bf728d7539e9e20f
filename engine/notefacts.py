"""One reading of the note: what the code reads from it, read once per request.

`read_note` builds a `NoteFacts`: the vital signs with their spans (from
`engine.vitals`), age and sex, the sentence index, the negation cues, and the
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
from engine.vitals import Reading, VitalSigns, extract_vitals

# Words that negate what follows them in the same clause ("no fever", "denies pain", "nil chest X-ray").
_NEGATION_CUE = re.compile(
    r"\b(?:no|not|denies|denied|denying|without|negative\s+for|nil|absence\s+of|free\s+of|never|not\s+done)\b",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.;!?\n]|\b(?:but|however)\b", re.IGNORECASE)

# "72M", "72 F", "72yo M", "72-year-old man", "45 year old female"
_SEX_WORD = r"(?P<sex>[MF]\b|(?i:male|female|man|woman|boy|girl|gentleman|lady)\b)"
_AGE_SEX = re.compile(
    r"(?<![\w.])(?P<age>\d{1,3})\s*(?:-?\s*(?i:years?|yrs?)[-\s]*(?i:old)?|(?i:yo|y/o|y\.o\.|y))?[-\s]*"
    + _SEX_WORD
)
_AGE_ALONE = re.compile(r"\b(?i:aged?|age:)\s*(?P<age>\d{1,3})\b")
_SEX_ALONE = re.compile(r"\b(?i:sex|gender)\s*[:=]?\s*" + _SEX_WORD)
_SEX_LETTER = {"m": "M", "male": "M", "man": "M", "boy": "M", "gentleman": "M",
               "f": "F", "female": "F", "woman": "F", "girl": "F", "lady": "F"}  # fmt: skip


def sex_letter(text: str) -> str | None:
    """ "M" or "F" for the ways a note or a form writes sex; None otherwise."""
    return _SEX_LETTER.get(text.strip().lower())


def _age_and_sex(note: str) -> tuple[Reading | None, Reading | None]:
    age = sex = None
    m = _AGE_SEX.search(note)
    if m is not None and int(m.group("age")) <= 120:
        age = Reading(float(m.group("age")), "note", m.span(), m.group())
        sex = Reading(_SEX_LETTER[m.group("sex").lower()], "note", m.span(), m.group())
    if age is None and (m := _AGE_ALONE.search(note)) is not None and int(m.group("age")) <= 120:
        age = Reading(float(m.group("age")), "note", m.span(), m.group())
    if sex is None and (m := _SEX_ALONE.search(note)) is not None:
        sex = Reading(_SEX_LETTER[m.group("sex").lower()], "note", m.span(), m.group())
    return age, sex


@dataclass(frozen=True, slots=True)
class NoteFacts:
    """What the engine reads from one note. Spans are character offsets in `note`."""

    note: str
    vitals: VitalSigns
    sentences: tuple[tuple[int, int], ...]
    negations: tuple[tuple[int, int], ...]
    injections: tuple[InjectionMarker, ...]
    age: Reading | None = None  # years
    sex: Reading | None = None  # "M" or "F"

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
    age, sex = _age_and_sex(text)
    return NoteFacts(
        note=text,
        vitals=extract_vitals(text),
        sentences=tuple(sentence_spans(text)),
        negations=tuple(m.span() for m in _NEGATION_CUE.finditer(text)),
        injections=tuple(injection_markers(text)),
        age=age,
        sex=sex,
    )
