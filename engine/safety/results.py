"""Invented results: a test, imaging or lab result the note does not contain.

What it catches. A sentence that states the result of an investigation
("Chest X-ray confirms pneumonia", "CXR shows consolidation", "WBC 12.5",
"a white blood cell count of 12.5%", "troponin raised", "elevated CRP",
"blood cultures were positive") when the note never mentions that
investigation, or mentions it only negated ("no X-ray done"). A result is the
investigation's name with, in the same clause, a result verb (shows,
confirms, reveals, demonstrates), a value, or a result word (raised,
elevated, high, low, positive, negative, normal, abnormal). Such a sentence
is flagged ``unsupported-result`` and replaced by a statement that the note
records no such result; a finding becomes unsupported.

What it leaves alone. Plans and requests ("Order a chest X-ray", "consider
checking troponin", "repeat the lactate if ..."), and results of an
investigation the note does mention: whether the value matches is the
evidence check's job (`engine.safety.evidence` compares numbers).

What it does not catch. Investigations outside the list below (rare tests,
local names and brand names of assays), results stated without naming the
investigation ("the bloods are reassuring", "imaging was clear"), and a
result of a test the note mentions but attributes to another time or
another patient.
"""

from __future__ import annotations

import re

from engine.notefacts import NoteFacts, read_note
from engine.safety.sentences import sentence_spans
from engine.schema import SafetyFlag

# investigation -> how it is written; the name is what a flag shows
INVESTIGATIONS: dict[str, str] = {
    "chest X-ray": r"chest\s*x-?rays?|cxr|chest\s+(?:film|radiograph)s?",
    "X-ray": r"x-?rays?|radiographs?|plain\s+films?",
    "CT scan": r"ct(?:\s+scans?)?|computed\s+tomography|cat\s+scan",
    "MRI": r"mri(?:\s+scans?)?|magnetic\s+resonance",
    "ultrasound": r"ultrasound(?:\s+scans?)?|usg|sonograph\w*|echocardiogra\w*|echo",
    "ECG": r"ecg|ekg|electrocardiogra\w*",
    "white cell count": r"wbc|white\s+(?:blood\s+)?cell(?:s|\s+count)?|white\s+count|wcc|leu[ck]ocytes?",
    "haemoglobin": r"ha?emoglobin|hb|hgb",
    "platelets": r"platelets?(?:\s+count)?|plt",
    "CRP": r"crp|c-reactive\s+protein",
    "procalcitonin": r"procalcitonin|pct",
    "troponin": r"troponins?|trop",
    "lactate": r"lactates?|lactic\s+acid",
    "creatinine": r"creatinine|egfr|urea|renal\s+function",
    "electrolytes": r"sodium|potassium|electrolytes|u\s*&\s*es?",
    "D-dimer": r"d-?dimer",
    "liver tests": r"bilirubin|alt|ast|liver\s+function(?:\s+tests?)?|lfts?",
    "INR": r"inr|clotting|coagulation",
    "blood gas": r"blood\s+gas|abg|vbg|pco2|po2",
    "blood culture": r"blood\s+cultures?|cultures?",
    "urine test": r"urinalysis|urine\s+(?:dip(?:stick)?|culture|test|microscopy)|msu",
    "malaria test": r"malaria\s+(?:rdt|film|smear|test)|rdt|thick\s+film",
    "biopsy": r"biops(?:y|ies)|histology|cytology",
    "PCR or swab": r"pcr|swabs?|antigen\s+test",
}
_NAME_RES = {
    name: re.compile(rf"(?<![\w-])(?:{rx})(?![\w-])", re.IGNORECASE) for name, rx in INVESTIGATIONS.items()
}
# a chest X-ray is an X-ray: a note that mentions one supports a statement about the other
_ALSO_ACCEPTS = {"chest X-ray": ("X-ray",), "X-ray": ("chest X-ray",)}

_RESULT_VERB = re.compile(
    r"\b(?:shows?|showed|showing|shown|confirm(?:s|ed|ing)?|reveal(?:s|ed|ing)?|demonstrat(?:es|ed|ing)|"
    r"indicat(?:es|ed|ing)|found|finds|came\s+back|returned|was|were|is|are|of)\b"
)
_RESULT_WORD = re.compile(
    r"\b(?:raised|elevated|high|low|increased|decreased|reduced|positive|negative|normal|abnormal|"
    r"deranged|significant|consistent\s+with|in\s+keeping\s+with)\b",
    re.IGNORECASE,
)
_VALUE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:%|[a-zA-Zµ/]+(?:/[a-zA-Z]+)?)?")
_PLAN = re.compile(
    r"\b(?:order|ordered|request|requested|obtain|perform|arrange|consider|check|checking|repeat|send|"
    r"if|pending|awaiting|await|should|recommend(?:ed)?|needs?|get|do|take|measure|plan|planned|"
    r"monitor|follow|review|to\s+assess|to\s+look|to\s+rule|sent|taken|drawn|collected)\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[;:,()]|\b(?:and|but|while|which)\b", re.IGNORECASE)

NOT_IN_NOTE = (
    "The note records no {name} result; the result stated here has no source and requires confirmation."
)


def _clause_around(sentence: str, start: int, end: int) -> str:
    before = [m.end() for m in _CLAUSE.finditer(sentence, 0, start)]
    after = _CLAUSE.search(sentence, end)
    return sentence[before[-1] if before else 0 : after.start() if after else len(sentence)]


def _note_mentions(facts: NoteFacts, name: str) -> bool:
    for accepted in (name, *_ALSO_ACCEPTS.get(name, ())):
        if any(not facts.is_negated(m.start()) for m in _NAME_RES[accepted].finditer(facts.note)):
            return True
    return False


def invented_results(sentence: str, facts: NoteFacts) -> list[str]:
    """The investigations whose result `sentence` states and the note does not contain."""
    found: list[str] = []
    for name, rx in _NAME_RES.items():
        for m in rx.finditer(sentence):
            clause = _clause_around(sentence, m.start(), m.end())
            after = sentence[m.end() : m.end() + len(clause)]
            states_result = bool(
                _RESULT_WORD.search(clause)
                or re.match(r"\s*[:=]\s*\w", after)  # "CXR: bilateral infiltrates"
                or _VALUE.match(after.lstrip(" :=-"))
                or (_RESULT_VERB.search(after) and not re.match(r"\s+(?:is|was)\s+(?:not|pending)", after))
            )
            if states_result and not _PLAN.search(clause) and not _note_mentions(facts, name):
                if name not in found and not any(name in _ALSO_ACCEPTS.get(f, ()) for f in found):
                    found.append(name)
                break
    return found


def not_in_note(names: list[str]) -> str:
    """What replaces a statement of invented results."""
    return " ".join(NOT_IN_NOTE.format(name=name) for name in names)


def result_flag(text: str, names: list[str]) -> SafetyFlag:
    return SafetyFlag(
        kind="unsupported-result",
        text=text,
        detail=f"States a {', '.join(names)} result that the note does not contain; kept out of "
        "the assessment and replaced by a statement that the note records no such result.",
    )


def flag_invented_results(text: str, note: str | NoteFacts) -> tuple[str, list[SafetyFlag]]:
    """`text` with each sentence stating an invented result replaced, and an `unsupported-result` flag each.

    Everything outside the replaced sentences is kept byte for byte.
    """
    facts = note if isinstance(note, NoteFacts) else read_note(note)
    if not text:
        return text, []
    flags: list[SafetyFlag] = []
    pieces: list[str] = []
    last = 0
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        names = invented_results(sentence, facts)
        if not names:
            continue
        pieces.extend([text[last:a], not_in_note(names)])
        last = b
        flags.append(result_flag(sentence, names))
    if not flags:
        return text, []
    pieces.append(text[last:])
    return "".join(pieces), flags
