"""Evidence checks: is each finding supported by the note (or the image)?

What it does (`check_findings`): the quoted evidence is located in the note
(exact span, else the best matching note sentence by TF-IDF over character
3-5-grams and shared clinical words), numbers and units are compared,
negations are compared NegEx-style, content words must appear, and a vital
sign named in a finding is compared with the reading the note gives.
Findings that fail are flagged ``unsupported-finding`` or
``contradicted-finding``; a finding that states a result of an investigation
the note never mentions is replaced and flagged ``unsupported-result``
(`engine.safety.results`). A finding whose evidence lies in text the prompt
guard marked as instruction-like (an injected answer, say) is unsupported,
however well it matches: such text cannot buy credibility.

What it does not catch: a finding that paraphrases the note with different
words and no shared stems is judged unsupported even when a clinician would
accept it; a finding that quotes the note correctly but draws a wrong
conclusion from it is judged supported.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from engine.notefacts import NoteFacts, read_note
from engine.safety.diagnostic import reframe
from engine.safety.results import invented_results, not_in_note, result_flag
from engine.schema import Finding, ImageFinding, ModelFinding, SafetyFlag
from engine.vitals import VitalSigns, extract_vitals

STOPWORDS = frozenset(
    """
    a an the and or but of in on at to for from by with without into onto over under as is are was were be been
    being am has have had having do does did this that these those it its their there here his her he she they
    them we our you your i me my which who whom whose what when where while also very more most less least
    some any all both each other such than then so too can could may might will would should shall must
    patient patients pt pts presents presenting presentation reports reported reporting report history
    noted note notes shows showing shown show evidence finding findings consistent likely possible possibly
    probable suggest suggests suggestive suggesting sign signs symptom symptoms present documented
    elevated raised high higher increased low lower reduced decreased significant marked new ongoing
    current currently recent recently per approximately approx about around since ago currently today
    yesterday please due level levels value values reading readings measured measurement recorded
    complains complaint complaining c/o states stated describes described examination exam on_exam
    clinical clinically given including include includes indicates indicate indicating
    """.split()
)
_NEGATION_WORDS = frozenset(
    "no not denies denied deny denying without nil never negative absent absence free none neither nor".split()
)

# Phrase normalisation applied to both note and finding (lowercase text).
_SYNONYMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rx), rep)
    for rx, rep in (
        (r"\blow\s+(?:oxygen\s+saturations?|o2\s+sats?|spo2|sats|saturations?|oxygen)\b", " hypoxia "),
        (r"\b(?:high|raised|elevated|fast|rapid)\s+(?:heart\s+rate|hr|pulse)\b", " tachycardia "),
        (r"\b(?:high|raised|elevated)\s+(?:temperature|temp)\b", " fever "),
        (r"\blow\s+(?:blood\s+pressure|bp)\b", " hypotension "),
        (r"\b(?:high|raised|elevated|fast|rapid)\s+(?:respiratory\s+rate|rr|breathing)\b", " tachypnea "),
        (
            r"\b(?:beats?|breaths?)\s+(?:per|a|/)\s*min(?:ute)?\b|\bbpm\b|\bper\s+min(?:ute)?\b|\bdegrees?\s+(?:celsius|c)\b",
            " ",
        ),
        (r"\b(?:afebrile|apyrexial)\b", " no fever "),
        (r"\bnon-?tender\b", " no tender "),
        (r"\b(?:febrile|pyrexi(?:a|al|c))\b", " fever "),
        (r"\bfevers\b", " fever "),
        (r"\bheart\s+rate\b|\bpulse(?:\s+rate)?\b", " hr "),
        (r"\brespiratory\s+rate\b|\bresp(?:iratory)?\s+rate\b|\bresps\b", " rr "),
        (r"\b(?:oxygen\s+saturations?|o2\s+sats?|sao2|saturations?|sats)\b", " spo2 "),
        (r"\bblood\s+pressure\b", " bp "),
        (r"\btemperature\b|\btemp\b", " t "),
        (
            r"\bshortness\s+of\s+breath\b|\bsob\b|\bbreathless(?:ness)?\b|\bdyspno?ea\b|\bdyspnoeic\b|\bdyspneic\b",
            " dyspnea ",
        ),
        (r"\btachycardi(?:a|c)\b", " tachycardia "),
        (r"\bbradycardi(?:a|c)\b", " bradycardia "),
        (r"\btachypno?e(?:a|ic)\b", " tachypnea "),
        (r"\bhypox(?:ia|ic|aemia|emia|aemic|emic)\b|\bdesaturat(?:ion|ing|ed)\b", " hypoxia "),
        (r"\bhypotensi(?:on|ve)\b", " hypotension "),
        (r"\b(?:crepitations|creps|rales|crackles)\b", " crackles "),
        (r"\b(?:vomiting|vomited|vomits|emesis)\b", " vomit "),
        (r"\b(?:abdo|abdominal)\b", " abdomen "),
        (r"\b(?:right\s+iliac\s+fossa|right\s+lower\s+quadrant|rlq)\b", " rif "),
        (r"\bwheez(?:e|es|ing|y)\b", " wheeze "),
        (r"\bcoughing\b", " cough "),
        (r"\bconfus(?:ed|ion)\b", " confusion "),
    )
)
_STEM_SUFFIXES = ("ically", "ical", "ness", "ings", "ing", "ful", "ed", "es", "s", "ly")


@functools.lru_cache(maxsize=8192)
def _stem(token: str) -> str:
    t = token.replace("ae", "e").replace("oe", "e")
    for suffix in _STEM_SUFFIXES:
        if len(t) > len(suffix) + 3 and t.endswith(suffix):
            return t[: -len(suffix)]
    return t


def _stems_match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 5 and long_.startswith(short):
        return True
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common >= 6 and common >= 0.75 * len(short)


def _normalise(text: str) -> str:
    t = text.lower()
    for rx, rep in _SYNONYMS:
        t = rx.sub(rep, t)
    return t


_TOKEN_RE = re.compile(r"[a-z][a-z0-9'’-]*|[.;:!?\n]|,|\x00")
_TERMINATORS = frozenset(
    """but however although though except apart aside yet which who presents presenting reports reporting
    complains complaining has had is are was were admits admitted states""".split()
)
_PRE_NEG = frozenset("no not denies denied deny denying without nil never".split())
_POST_NEG = frozenset("absent negative neg nil none".split())


@dataclass
class _Concepts:
    """Content stems of a text with their polarity (True = asserted, False = negated)."""

    items: list[tuple[str, bool]] = field(default_factory=list)

    def stems(self) -> list[str]:
        return [s for s, _ in self.items]


def _concepts(text: str) -> _Concepts:
    return _concepts_many([text])[0]


def _concepts_many(texts: list[str]) -> list[_Concepts]:
    """`_concepts` of several texts with one normalisation pass (texts joined by a NUL separator)."""
    tokens = _TOKEN_RE.findall(_normalise("\n\x00\n".join(t.replace("\x00", " ") for t in texts)))
    outs = [_Concepts()]
    out = outs[0]
    scope = 0
    content_since_clause: list[int] = []
    for i, tok in enumerate(tokens):
        if tok == "\x00":
            out = _Concepts()
            outs.append(out)
            scope = 0
            content_since_clause = []
            continue
        if tok in ".;:!?\n":
            scope = 0
            if tok != ":":  # "Leg swelling: absent" keeps its subject for the post-negation
                content_since_clause = []
            continue
        if tok == ",":
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if (
            tok in _PRE_NEG
            or (tok == "negative" and nxt == "for")
            or (tok in ("absence", "free") and nxt == "of")
        ):
            scope = 6
            continue
        if tok in _POST_NEG and nxt != "for" and content_since_clause:
            for idx in content_since_clause[-3:]:
                stem, _ = out.items[idx]
                out.items[idx] = (stem, False)
            continue
        if tok in _TERMINATORS:
            scope = 0
            continue
        if tok in STOPWORDS or tok in _NEGATION_WORDS or len(tok) < 2 and tok not in ("t",):
            if scope:
                scope -= 1
            continue
        out.items.append((_stem(tok), scope == 0))
        content_since_clause.append(len(out.items) - 1)
        if scope:
            scope -= 1
    return outs


# Numbers and units ---------------------------------------------------------

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_NUM_RE = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d])\s*(%|°\s*[cf]\b|[a-zA-Zµ/]+(?:/[a-zA-Z]+)?)?"
    r"|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b\s*([a-zA-Z]+)?",
    re.IGNORECASE,
)
_UNITS = {
    "c": "c",
    "°c": "c",
    "degc": "c",
    "celsius": "c",
    "f": "f",
    "°f": "f",
    "%": "%",
    "bpm": "/min",
    "/min": "/min",
    "breaths/min": "/min",
    "beats/min": "/min",
    "mmhg": "mmhg",
    "kg": "kg",
    "g": "g",
    "mg": "mg",
    "mcg": "mcg",
    "ug": "mcg",
    "µg": "mcg",
    "ml": "ml",
    "l": "l",
    "mmol/l": "mmol/l",
    "mmol": "mmol",
    "mg/dl": "mg/dl",
    "g/dl": "g/dl",
    "g/l": "g/l",
    "day": "day",
    "days": "day",
    "d": "day",
    "week": "week",
    "weeks": "week",
    "wk": "week",
    "wks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
    "yrs": "year",
    "yr": "year",
    "y": "year",
    "hour": "hour",
    "hours": "hour",
    "hrs": "hour",
    "h": "hour",
    "cm": "cm",
    "mm": "mm",
    "units": "units",
    "iu": "iu",
    "minutes": "minute",
    "mins": "minute",
    "min": "minute",
}


def _numbers(text: str) -> list[tuple[float, str | None]]:
    """Numbers with their normalised unit (None if none or unknown); identifiers like SpO2 skipped."""
    out: list[tuple[float, str | None]] = []
    for m in _NUM_RE.finditer(text):
        if m.group(1) is not None:
            start = m.start(1)
            j = start
            while j > 0 and text[j - 1].isalpha():
                j -= 1
            letters = text[j:start]
            if len(letters) >= 2 and letters.lower() not in ("x",):
                continue  # SpO2, FiO2, B12-like identifiers
            if start > 0 and text[start - 1] == "-" and start > 1 and text[start - 2].isalpha():
                continue  # COVID-19
            value = float(m.group(1))
            unit = m.group(2)
        else:
            value = float(_NUMBER_WORDS[m.group(3).lower()])
            unit = m.group(4)
        norm = None
        if unit:
            u = re.sub(r"\s+", "", unit.lower())
            norm = _UNITS.get(u)
        out.append((value, norm))
    return out


# The vital signs a finding may name, as `engine.vitals` reads them, with the labels reasons use.
_VITAL_NAMES = {
    "heart_rate": "HR",
    "respiratory_rate": "RR",
    "spo2": "SpO2",
    "temperature_c": "temperature",
    "systolic_bp": "systolic BP",
    "diastolic_bp": "diastolic BP",
}


def _vital_values(vitals: VitalSigns) -> dict[str, list[float]]:
    """The numeric readings of `vitals`, by parameter."""
    readings = vitals.readings()
    return {name: [float(readings[name].value)] for name in _VITAL_NAMES if name in readings}


# concept stem -> (vital, predicate for "present", predicate for "absent")
_VitalTest = Callable[[float], bool]
_VITAL_CONCEPTS: dict[str, tuple[str, _VitalTest, _VitalTest]] = {
    "fever": ("temperature_c", lambda v: v >= 38.0, lambda v: v < 37.5),
    "tachycardia": ("heart_rate", lambda v: v > 100, lambda v: v <= 90),
    "bradycardia": ("heart_rate", lambda v: v < 60, lambda v: v >= 60),
    "hypoxia": ("spo2", lambda v: v < 94, lambda v: v >= 96),
    "tachypnea": ("respiratory_rate", lambda v: v > 20, lambda v: v <= 18),
    "hypotension": ("systolic_bp", lambda v: v < 90, lambda v: v >= 110),
}
_VITAL_CONCEPT_STEMS = {_stem(k): v for k, v in _VITAL_CONCEPTS.items()}


# Matching the quoted evidence ---------------------------------------------


def _normalised_with_map(text: str) -> tuple[str, list[int]]:
    """Lowercase, whitespace runs collapsed to one space; index map back to `text`."""
    chars: list[str] = []
    index: list[int] = []
    pos = 0
    for m in re.finditer(r"\s+", text):
        chunk = text[pos : m.start()]
        chars.append(chunk.lower())
        index.extend(range(pos, m.start()))
        chars.append(" ")
        index.append(m.start())
        pos = m.end()
    chars.append(text[pos:].lower())
    index.extend(range(pos, len(text)))
    norm = "".join(chars)
    if len(norm) != len(index):  # lowercasing changed a length (rare Unicode): character by character
        norm = "".join(text[i].lower()[:1] or " " for i in index)
    return norm, index


def _clean_quote(evidence: str) -> str:
    e = re.sub(r"\s+", " ", evidence or "").strip()
    e = e.strip(" \"'“”‘’`")
    e = re.sub(r"^(?:\.\.\.|…)\s*|\s*(?:\.\.\.|…)$", "", e)
    return e.strip()


def _exact_span(norm_note: str, index: list[int], quote: str) -> tuple[int, int] | None:
    q = quote.lower()
    if len(q) < 3:
        return None
    pos = norm_note.find(q)
    if pos < 0:
        q2 = q.rstrip(".;,")
        pos = norm_note.find(q2) if len(q2) >= 3 else -1
        q = q2
    if pos < 0:
        return None
    return index[pos], index[pos + len(q) - 1] + 1


IMAGE_SUPPORT_MIN_PROBABILITY = 0.5
CONTENT_SUPPORT_MIN = 0.6
SIMILARITY_FLOOR = 0.12  # below this no note sentence is taken as the basis
_IMAGE_WORDS = re.compile(
    r"\b(?:image|photo(?:graph)?|picture|x-?ray|cxr|radiograph|scan|dermoscop\w*)\b", re.IGNORECASE
)


def load_text_similarity() -> None:
    """Import the TF-IDF machinery (about a second) ahead of the first check.

    The checks run on the event loop that draws the app; the engine calls this
    in a thread, so the first checked sentence does not freeze the screen.
    """
    _char_ngrams()


@functools.cache
def _char_ngrams() -> Callable[[str], list[str]]:
    """scikit-learn's lower-cased character 3-5-grams within word boundaries."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return cast(
        Callable[[str], list[str]],
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True).build_analyzer(),
    )


class SentenceTfidf:
    """Cosine similarity of queries to a note's sentences, TF-IDF over character 3-5-grams.

    The figures are those of scikit-learn's `TfidfVectorizer` (sublinear tf,
    smooth idf, l2 norm) fit on the sentences and the queries together. The
    note's n-grams are counted once; each check then costs a few array passes,
    where fitting a vectorizer per streamed sentence re-read the whole note.
    """

    def __init__(self, sentences: list[str]) -> None:
        analyze = _char_ngrams()
        self.vocabulary: dict[str, int] = {}
        owners: list[int] = []
        grams: list[int] = []
        counts: list[int] = []
        for i, sentence in enumerate(sentences):
            for gram, count in Counter(analyze(sentence)).items():
                owners.append(i)
                grams.append(self.vocabulary.setdefault(gram, len(self.vocabulary)))
                counts.append(count)
        self.n_sentences = len(sentences)
        self.owner = np.array(owners, dtype=np.intp)  # the sentence each (sentence, gram) entry belongs to
        self.gram = np.array(grams, dtype=np.intp)
        self.tf = 1.0 + np.log(np.array(counts, dtype=np.float64))
        self.df = np.bincount(self.gram, minlength=len(self.vocabulary)).astype(np.float64)

    def similarities(self, queries: list[str]) -> np.ndarray:
        """(queries x sentences)."""
        analyze = _char_ngrams()
        out = np.zeros((len(queries), self.n_sentences))
        if not queries or not self.n_sentences:
            return out
        query_grams = [Counter(analyze(query)) for query in queries]
        n_documents = self.n_sentences + len(queries)
        df = self.df.copy()
        unseen_df: Counter[str] = Counter()  # query grams the note lacks
        for grams in query_grams:
            for gram in grams:
                index = self.vocabulary.get(gram)
                if index is None:
                    unseen_df[gram] += 1
                else:
                    df[index] += 1
        idf = np.log((1 + n_documents) / (1 + df)) + 1
        weight = self.tf * idf[self.gram]
        sentence_norm = np.sqrt(np.bincount(self.owner, weight**2, minlength=self.n_sentences))
        for row, grams in enumerate(query_grams):
            query = np.zeros(len(self.vocabulary))
            norm_sq = 0.0
            for gram, count in grams.items():
                index = self.vocabulary.get(gram)
                gram_idf = (
                    idf[index] if index is not None else np.log((1 + n_documents) / (1 + unseen_df[gram])) + 1
                )
                value = (1.0 + np.log(count)) * gram_idf
                norm_sq += value * value
                if index is not None:
                    query[index] = value
            dots = np.bincount(self.owner, weight * query[self.gram], minlength=self.n_sentences)
            norms = np.sqrt(norm_sq) * sentence_norm
            np.divide(dots, norms, out=out[row], where=norms > 0)
        return out


# the token a vital's label normalises to in the note ("heart rate" -> "hr")
_VITAL_TOKEN = {
    "temperature_c": "t",
    "heart_rate": "hr",
    "spo2": "spo2",
    "respiratory_rate": "rr",
    "systolic_bp": "bp",
}


class _NoteIndex:
    """What check_findings needs from the note, computed once per call on top of its `NoteFacts`."""

    def __init__(self, facts: NoteFacts) -> None:
        note = facts.note
        self.facts = facts
        self.note = note
        self.spans = list(facts.sentences)
        self.sentences = [note[a:b] for a, b in self.spans]
        self.norm, self.index = _normalised_with_map(note)
        self.sentence_concepts = _concepts_many(self.sentences) if self.sentences else []
        self.sentence_stems = [set(c.stems()) for c in self.sentence_concepts]
        # stem -> polarities of its mentions anywhere in the note
        self.polarity: dict[str, list[bool]] = {}
        for c in self.sentence_concepts:
            for stem, positive in c.items:
                self.polarity.setdefault(stem, []).append(positive)
        self.numbers = _numbers(note)
        self.vitals = _vital_values(facts.vitals)
        self.tfidf = SentenceTfidf(self.sentences)
        self._matches: dict[str, frozenset[str]] = {}

    def matching(self, stem: str) -> frozenset[str]:
        """The note's stems that match `stem` (a vital concept also matches its reading's label)."""
        found = self._matches.get(stem)
        if found is None:
            vital = _VITAL_CONCEPT_STEMS.get(stem)
            token = _VITAL_TOKEN[vital[0]] if vital else None
            found = frozenset(v for v in self.polarity if _stems_match(stem, v) or v == token)
            self._matches[stem] = found
        return found

    def note_polarity(self, stem: str) -> list[bool]:
        out: list[bool] = []
        for v in self.matching(stem):
            if _stems_match(stem, v):
                out.extend(self.polarity[v])
        return out

    def overlaps(self, claim_stems: list[str]) -> np.ndarray:
        """Per sentence, the share of the claim's stems it contains."""
        if not claim_stems or not self.sentences:
            return np.zeros(len(self.sentences))
        sets = [self.matching(c) for c in claim_stems]
        return np.array([sum(1 for m in sets if m & st) / len(sets) for st in self.sentence_stems])


_last_index: tuple[NoteFacts, _NoteIndex] | None = None


def _note_index(facts: NoteFacts) -> _NoteIndex:
    """The index of the note being checked; a streamed answer checks one note sentence after sentence."""
    global _last_index
    last = _last_index
    if last is not None and last[0] is facts:
        return last[1]
    index = _NoteIndex(facts)
    _last_index = (facts, index)
    return index


@dataclass
class _Support:
    coverage: float
    contradicted: list[str]
    missing: list[str]
    number_problems: list[str]


def _assess(claim: str, window: str, ix: _NoteIndex, check_numbers_of: str) -> _Support:
    claim_c = _concepts(claim)
    window_c = _concepts(window)
    contradicted: list[str] = []
    negated_in_note: list[str] = []
    recorded_in_note: list[str] = []
    missing: list[str] = []
    supported = 0
    seen: set[str] = set()
    for stem, positive in claim_c.items:
        if stem in seen:
            continue
        seen.add(stem)
        pol_window = [p for s, p in window_c.items if _stems_match(s, stem)]
        pol_note = pol_window or ix.note_polarity(stem)
        if pol_note:
            supported += 1
            if positive and not any(pol_note):
                negated_in_note.append(stem)
            elif not positive and all(pol_note):
                recorded_in_note.append(stem)
            continue
        vital = _VITAL_CONCEPT_STEMS.get(stem)
        if vital and ix.vitals.get(vital[0]):
            supported += 1
            values = ix.vitals[vital[0]]
            present = any(vital[1](v) for v in values)
            absent = all(vital[2](v) for v in values)
            label = _VITAL_NAMES[vital[0]]
            shown = ", ".join(f"{v:g}" for v in values)
            if positive and absent:
                contradicted.append(f"the finding states '{stem}' but the note records {label} {shown}")
            elif not positive and present:
                contradicted.append(f"the finding negates '{stem}' but the note records {label} {shown}")
            continue
        missing.append(stem)
    if negated_in_note:
        contradicted.insert(0, f"the finding states {', '.join(negated_in_note)} but the note negates it")
    if recorded_in_note:
        contradicted.insert(0, f"the finding negates {', '.join(recorded_in_note)} but the note records it")
    total = len(seen)
    coverage = supported / total if total else 1.0

    problems: list[str] = []
    note_numbers = ix.numbers
    for value, unit in _numbers(check_numbers_of):
        matches = [u for v, u in note_numbers if abs(v - value) < 1e-9]
        if not matches:
            msg = f"{value:g} does not appear in the note"
            if msg not in problems:
                problems.append(msg)
        elif unit and all(u is not None and u != unit for u in matches):
            problems.append(
                f"{value:g} {unit} does not match the note's units ({', '.join(sorted(set(u for u in matches if u)))})"
            )
    claim_vitals = _vital_values(extract_vitals(check_numbers_of))
    for name, values in claim_vitals.items():
        if name in ix.vitals:
            for v in values:
                if all(abs(v - nv) > 1e-9 for nv in ix.vitals[name]):
                    msg = (
                        f"{_VITAL_NAMES[name]} {v:g} in the finding, the note records {_VITAL_NAMES[name]} "
                        + ", ".join(f"{nv:g}" for nv in ix.vitals[name])
                    )
                    if msg not in problems:
                        problems.append(msg)
    window_stems = window_c.stems()
    for side in ("left", "right", "bilateral"):
        if side in claim_c.stems() and window and side not in window_stems:
            problems.append(f"laterality '{side}' is not in the note's text for this finding")
    return _Support(coverage, contradicted, missing, problems)


def check_findings(
    findings: list[ModelFinding],
    note: str,
    image_findings: list[ImageFinding],
    facts: NoteFacts | None = None,
) -> tuple[list[Finding], list[SafetyFlag]]:
    """Trace every model finding to the note (or the image); flag what fails.

    Returns one `Finding` per model finding, in order, and the flags
    (`unsupported-finding`, `contradicted-finding`, `diagnostic-language`).
    `facts` is the request's reading of the note; without it the note is read here.
    """
    if facts is None:
        facts = read_note(note or "")
    note = facts.note
    image_findings = list(image_findings or [])
    ix = _note_index(facts)
    spans, sentences = ix.spans, ix.sentences

    exact: list[tuple[int, int] | None] = []
    for f in findings:
        span = _exact_span(ix.norm, ix.index, _clean_quote(f.evidence))
        if span is None:
            span = _exact_span(ix.norm, ix.index, _clean_quote(f.finding))
        exact.append(span)
    need_fuzzy = [i for i, s in enumerate(exact) if s is None]
    best_idx = np.zeros(len(findings), dtype=int)
    best_sim = np.zeros(len(findings))
    best_overlap = np.zeros(len(findings))
    if need_fuzzy and sentences:
        # the window: best by character similarity and shared clinical words together
        queries = [f"{findings[i].finding} {findings[i].evidence}" for i in need_fuzzy]
        sims = ix.tfidf.similarities(queries)
        for row, i in enumerate(need_fuzzy):
            claim_stems = list(dict.fromkeys(_concepts(queries[row]).stems()))
            overlaps = ix.overlaps(claim_stems)
            j = int(np.argmax(0.5 * sims[row] + 0.5 * overlaps))
            best_idx[i], best_sim[i], best_overlap[i] = j, sims[row, j], overlaps[j]

    results: list[Finding] = []
    flags: list[SafetyFlag] = []
    for i, f in enumerate(findings):
        invented = invented_results(f.finding, facts)
        if invented:  # the finding itself states the result: it is replaced
            results.append(
                Finding(
                    text=not_in_note(invented),
                    evidence="",
                    supported=False,
                    source="none",
                    support_score=0.0,
                    span=None,
                    reason=f"states a {', '.join(invented)} result that the note does not contain",
                )
            )
            flags.append(result_flag(f.finding, invented))
            continue
        text, dx_flags = reframe(f.finding)
        flags.extend(dx_flags)
        claim = f.finding
        span = exact[i]
        similarity = 1.0 if exact[i] is not None else float(best_sim[i])
        if span is not None:
            # the window for content checks: the sentence(s) around the exact span
            window_spans = [(a, b) for a, b in spans if a < span[1] and b > span[0]] or [span]
            window = note[window_spans[0][0] : window_spans[-1][1]]
            evidence = note[span[0] : span[1]]
            source = "note"
            numbers_of = claim
        elif sentences and (similarity >= SIMILARITY_FLOOR or best_overlap[i] > 0):
            a, b = spans[int(best_idx[i])]
            span, window, evidence, source = (a, b), note[a:b], note[a:b], "note"
            numbers_of = f"{claim} {f.evidence}"
        else:
            span, window, evidence, source = None, "", "", "none"
            numbers_of = f"{claim} {f.evidence}"

        support = _assess(claim, window, ix, numbers_of)

        # image: the finding names an image label and the note does not carry it
        image_match = _image_match(f, image_findings)
        if (
            image_match is not None
            and (exact[i] is None)
            and (
                support.coverage < CONTENT_SUPPORT_MIN
                or _IMAGE_WORDS.search(f"{f.finding} {f.evidence}")
                or source == "none"
            )
        ):
            img = image_match
            negated = _negated_label(claim, img.label)
            ok = (
                img.probability < IMAGE_SUPPORT_MIN_PROBABILITY
                if negated
                else img.probability >= IMAGE_SUPPORT_MIN_PROBABILITY
            )
            reason = (
                f"matches image finding '{img.label}' (probability {img.probability:.2f}; {img.method})"
                if ok
                else f"image finding '{img.label}' has probability {img.probability:.2f}, "
                + (
                    "too high for the negated finding"
                    if negated
                    else f"below {IMAGE_SUPPORT_MIN_PROBABILITY:.2f}"
                )
            )
            score = img.probability if not negated else 1.0 - img.probability
            results.append(
                Finding(
                    text=text,
                    evidence=f"image: {img.label} (probability {img.probability:.2f}; {img.method})",
                    supported=ok,
                    source="image",
                    support_score=round(max(0.0, min(1.0, score)), 4),
                    span=None,
                    reason=reason,
                )
            )
            if not ok:
                flags.append(SafetyFlag(kind="unsupported-finding", text=f.finding, detail=reason))
            continue

        exact_bonus = 1.0 if exact[i] is not None else 0.0
        score = 0.5 * support.coverage + 0.3 * min(1.0, similarity / 0.6) + 0.2 * exact_bonus
        reasons: list[str] = []
        contradicted = bool(support.contradicted)
        if contradicted:
            score = min(score, 0.1)
            reasons.extend(support.contradicted)
        if support.number_problems:
            score = min(score, 0.2)
            reasons.extend(support.number_problems)
        if support.coverage < CONTENT_SUPPORT_MIN:
            score = min(score, 0.4)
            reasons.append("not found in the note: " + ", ".join(support.missing))
        if source == "none":
            score = min(score, 0.1)
            reasons.append("no part of the note matches the finding or its quoted evidence")
        invented_evidence = invented_results(f.evidence, facts)
        if invented_evidence:  # only the quoted "evidence" states it: the finding stays, unsupported
            score = min(score, 0.1)
            reasons.append(
                f"its quoted evidence states a {', '.join(invented_evidence)} result the note does not contain"
            )
        if span is not None and facts.is_injected(span):
            score = 0.0
            reasons.append(
                "its evidence lies in instruction-like text in the note, which is not patient data"
            )
        supported = not reasons
        if supported:
            if exact[i] is not None:
                reason = "quoted evidence found verbatim in the note"
            else:
                reason = (
                    f"quoted evidence not verbatim; closest note sentence used (similarity {similarity:.2f})"
                )
            if support.missing:
                reason += "; words without support: " + ", ".join(support.missing)
        else:
            if exact[i] is None and source == "note":
                reasons.append(
                    f"quoted evidence not verbatim in the note (closest sentence similarity {similarity:.2f})"
                )
            reason = "; ".join(reasons)
        results.append(
            Finding(
                text=text,
                evidence=evidence,
                supported=supported,
                source=source,
                support_score=round(max(0.0, min(1.0, score)), 4),
                span=span,
                reason=reason,
            )
        )
        if contradicted:
            flags.append(SafetyFlag(kind="contradicted-finding", text=f.finding, detail=reason))
        elif invented_evidence:
            flags.append(SafetyFlag(kind="unsupported-result", text=f.finding, detail=reason))
        elif not supported:
            flags.append(SafetyFlag(kind="unsupported-finding", text=f.finding, detail=reason))
    return results, flags


def _content_words(text: str) -> list[str]:
    return [s for s, _ in _concepts(text).items]


def _negated_label(claim: str, label: str) -> bool:
    label_stems = _content_words(label)
    items = _concepts(claim).items
    hits = [p for s, p in items if any(_stems_match(s, ls) for ls in label_stems)]
    return bool(hits) and not any(hits)


def _image_match(f: ModelFinding, image_findings: Iterable[ImageFinding]) -> ImageFinding | None:
    """The image finding whose label words all appear in the finding or its evidence."""
    text_stems = _content_words(f"{f.finding} {f.evidence}")
    best: ImageFinding | None = None
    for img in image_findings:
        label_stems = _content_words(img.label)
        if not label_stems:
            continue
        matches = all(any(_stems_match(ls, ts) for ts in text_stems) for ls in label_stems)
        if matches and (best is None or img.probability > best.probability):
            best = img
    return best
