"""Free text checked sentence by sentence, as it streams, and stopped when it loops.

The model's free text (text mode, and the reasoning and summary an assessment
streams) reaches the clinician one finished sentence at a time, each already
through the safety layer:

* advice that contradicts the NEWS2 band withheld, results the note never
  mentions replaced, diagnostic statements reframed and medication statements
  flagged (`engine.safety.check_text`);
* claims about the patient (a sentence with a number, or one that reports a
  test or imaging result) checked against the note with
  `engine.safety.check_findings`; a claim the note does not support is flagged
  and marked in the text, so it cannot read as a fact from the note.

`SentenceStream` cuts a growing text into sentences. A sentence counts as
finished once the next one has begun (or the text ends): only then is it
certain that "Dr." or "38." did not end it.

`RepetitionGuard` watches the same text for a model that has started to repeat
itself: the same sentence a third time (compared without case, spacing and
punctuation), or the last stretch of text made of one short unit three times
over ("no no no", a phrase without a full stop). What it does not catch: a
loop whose unit is longer than `MAX_LOOP_UNIT` characters and never ends a
sentence, and paraphrases that share no exact wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.events import SentenceChecked
from engine.notefacts import NoteFacts
from engine.safety import check_findings, check_text, sentence_spans
from engine.schema import ImageFinding, ModelFinding, RiskLevel, SafetyFlag

NOT_IN_NOTE = "[not in the note] "
# Sentences worth checking against the note: they state a value or a result.
_CLAIM_RE = re.compile(
    r"\d|\b(?:shows?|showed|shown|confirms?|confirmed|reveals?|revealed|demonstrates?|demonstrated|"
    r"x-?ray|ct|mri|ultrasound|scan|count|level|culture|test(?:s|ed)?|result)\b",
    re.IGNORECASE,
)
# Advice and questions are not claims about what the note says.
_ADVICE_RE = re.compile(
    r"^\s*(?:consider|recommend|suggest|monitor|check|repeat|obtain|arrange|request|order|perform|"
    r"assess|reassess|review|if|should|could|would|may|might|further|please)\b",
    re.IGNORECASE,
)
MIN_CLAIM_WORDS = 3
MAX_SENTENCE_REPEATS = 2
MAX_LOOP_UNIT = 80
MIN_LOOP_CHARS = 24


def check_sentence(
    sentence: str,
    note: str | NoteFacts,
    image_findings: list[ImageFinding] | None = None,
    rule_band: RiskLevel | None = None,
) -> tuple[str, list[SafetyFlag]]:
    """The checked form of one sentence and the flags it raised."""
    text, flags = check_text(sentence, note, rule_band)
    is_claim = (
        len(sentence.split()) >= MIN_CLAIM_WORDS  # not a list number ("2.") or a heading
        and _CLAIM_RE.search(sentence)
        and not _ADVICE_RE.match(sentence)
        and not sentence.rstrip().endswith("?")
    )
    if is_claim:
        facts = note if isinstance(note, NoteFacts) else None
        findings, _ = check_findings(
            [ModelFinding.model_construct(finding=sentence, evidence=sentence)],
            facts.note if facts else str(note),
            image_findings or [],
            facts,
        )
        if not findings[0].supported:
            flags.append(SafetyFlag(kind="unsupported-claim", text=sentence, detail=findings[0].reason))
            text = NOT_IN_NOTE + text
    return text, flags


class SentenceStream:
    """Pieces of text in, finished sentences out."""

    def __init__(self) -> None:
        self._pending = ""

    @property
    def draft(self) -> str:
        """The sentence being written, not yet finished."""
        return self._pending.strip()

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """(spacing before, sentence) for each sentence this piece finished."""
        self._pending += piece
        spans = sentence_spans(self._pending)
        if len(spans) < 2:
            return []
        finished = []
        last_end = 0
        for start, end in spans[:-1]:
            finished.append((self._pending[last_end:start], self._pending[start:end]))
            last_end = end
        self._pending = self._pending[last_end:]
        return finished

    def finish(self) -> list[tuple[str, str]]:
        """Whatever is left when the text ends."""
        rest, self._pending = self._pending, ""
        out: list[tuple[str, str]] = []
        last_end = 0
        for start, end in sentence_spans(rest):
            out.append((rest[last_end:start], rest[start:end]))
            last_end = end
        return out


@dataclass
class RepetitionGuard:
    """Says when the text has started repeating itself."""

    seen: dict[str, int] = field(default_factory=dict)
    tail: str = ""
    reason: str = ""

    def sentence(self, sentence: str) -> bool:
        """True when this finished sentence is one repeat too many."""
        key = _sentence_key(sentence)
        if len(key.split()) < MIN_CLAIM_WORDS:
            return False  # list numbers and one-word headings recur in any long answer
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] > MAX_SENTENCE_REPEATS:
            self.reason = f"the same sentence a {_ordinal(self.seen[key])} time: {sentence[:120]}"
            return True
        return False

    def text(self, piece: str) -> bool:
        """True when the text so far ends in one short unit repeated three times."""
        self.tail = tail = (self.tail + piece)[-3 * MAX_LOOP_UNIT :]
        if not tail:
            return False
        # a unit repeated three times has the last character at one and two units back: try only those
        last = len(tail) - 1
        position = tail.rfind(tail[last], 0, last)
        while position >= 0 and 3 * (last - position) <= len(tail):
            unit = last - position
            if 3 * unit >= MIN_LOOP_CHARS and tail[last - 2 * unit] == tail[last]:
                end = tail[-unit:]
                if tail[-3 * unit :] == end * 3 and any(char.isalpha() for char in end):
                    self.reason = f"the same text three times over: {end.strip()[:80]}"
                    return True
            position = tail.rfind(tail[last], 0, position)
        return False


def _sentence_key(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", sentence.lower()).split())


def _ordinal(n: int) -> str:
    return {3: "third", 4: "fourth"}.get(n, f"{n}th")


class StreamChecks:
    """The free text of one answer, checked as it streams: one `SentenceStream` per field."""

    def __init__(
        self,
        note: str | NoteFacts,
        image_findings: list[ImageFinding] | None = None,
        rule_band: RiskLevel | None = None,
    ) -> None:
        self.note = note
        self.image_findings = image_findings or []
        self.rule_band = rule_band
        self.guard = RepetitionGuard()
        self.sentences: dict[str, list[SentenceChecked]] = {}
        self._streams: dict[str, SentenceStream] = {}

    @property
    def note_text(self) -> str:
        return self.note.note if isinstance(self.note, NoteFacts) else self.note

    @property
    def looping(self) -> bool:
        return bool(self.guard.reason)

    def feed(self, field_name: str, piece: str) -> list[SentenceChecked]:
        """Checked sentences that `piece` finished; none once the text has started to loop."""
        if self.looping:
            return []
        stream = self._streams.setdefault(field_name, SentenceStream())
        checked = self._check(field_name, stream.feed(piece))
        self.guard.text(piece)
        return checked

    def finish(self, field_name: str) -> list[SentenceChecked]:
        """The field has ended: its last sentence is finished too."""
        stream = self._streams.pop(field_name, None)
        if stream is None or self.looping:
            return []
        return self._check(field_name, stream.finish())

    def finish_all(self) -> list[SentenceChecked]:
        return [checked for name in list(self._streams) for checked in self.finish(name)]

    def _check(self, field_name: str, finished: list[tuple[str, str]]) -> list[SentenceChecked]:
        out: list[SentenceChecked] = []
        for before, sentence in finished:
            if self.guard.sentence(sentence):
                break  # the repeat is not shown; generation is stopped
            text, flags = check_sentence(sentence, self.note, self.image_findings, self.rule_band)
            checked = SentenceChecked(text, sentence, text != sentence, tuple(flags), field_name, before)
            self.sentences.setdefault(field_name, []).append(checked)
            out.append(checked)
        return out

    def text(self, field_name: str) -> str:
        """The checked text of a field, spacing kept."""
        return "".join(s.before + s.text for s in self.sentences.get(field_name, [])).strip()

    def flags(self) -> list[SafetyFlag]:
        """Every flag raised, once each; the repetition that stopped the text last."""
        flags = [flag for sentences in self.sentences.values() for s in sentences for flag in s.flags]
        if self.looping:
            flags.append(
                SafetyFlag(
                    kind="repetition",
                    text="model output",
                    detail=f"generation stopped: the model began repeating itself ({self.guard.reason})",
                )
            )
        unique: dict[tuple[str, str], SafetyFlag] = {}
        for flag in flags:
            unique.setdefault((flag.kind, flag.text), flag)
        return list(unique.values())
