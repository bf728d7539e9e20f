"""The deterministic safety layer between the model's answer and the clinician.

Everything here is plain rules: no model, no randomness, the same input gives
the same output. It runs on every answer, so it is kept fast.

What it guarantees
------------------
* **No diagnosis stated as fact** (`reframe`). A sentence that asserts a
  diagnosis ("The patient has pneumonia.", "Diagnosis: sepsis",
  "This confirms appendicitis", "X is confirmed", "diagnosed with X",
  "is suffering from X", "definitely X", "consistent with a diagnosis of X")
  is rewritten as "Findings may be consistent with X; requires clinical
  assessment." A sentence that definitively excludes one ("Appendicitis is
  ruled out", "this rules out X", "does not have X") becomes "X cannot be
  excluded on this information; requires clinical assessment." Each rewrite
  is flagged ``diagnostic-language`` with the original sentence as the flag's
  text. Sentences that are already hedged ("may be consistent with",
  "possible", "likely", "suggests", "differential includes", "consider",
  "cannot be excluded", a question) are left untouched. A hedge only counts
  when it stands in the same clause as the diagnostic statement, before its
  end: in "Findings may be consistent with pneumonia and she has sepsis" the
  second clause is still caught.

  The possessive form ("he has X", "the patient has X") is only diagnostic
  when X names a disease: a curated lexicon (`DISEASE_TERMS`, abbreviations
  in `DISEASE_ABBREVIATIONS`) plus the suffixes -itis, -oma, -emia/-aemia,
  -osis (minus a few signs and non-diseases such as "cyanosis",
  "diagnosis"). "Has a fever", "has pain", "has a cough for 2 weeks" are
  findings and stay. Reported history is not an assertion by the model:
  "has a history of asthma", "has known asthma", "has had a stroke" stay.
  But the model writing "The patient has asthma" is reframed even when the
  note says "known asthma": the rule reads the model's sentence alone, and a
  bare "has <disease>" in model output is always an assertion.

* **Medication statements flagged** (`flag_medications`): sentences naming a
  drug (curated list) or a dose pattern (mg, mcg, g, mL, units, IU, mg/kg,
  frequencies such as bd/tds/qds/prn/stat/"twice daily", routes IV/IM/PO/SC)
  get a ``medication`` flag for review.

* **The disclaimer, exactly once** (`ensure_disclaimer`).

* **Every finding traced to its basis** (`check_findings`): the quoted
  evidence is located in the note (exact span, else the best matching note
  sentence by TF-IDF over character 3-5-grams), numbers and units are
  compared, negations are compared NegEx-style, content words must appear.
  Findings that fail are flagged ``unsupported-finding`` or
  ``contradicted-finding``.

* **Prompt injection shown** (`detect_injection`) and model turn markers in
  the note neutralised (`strip_control_tokens`): the ASCII brackets of a
  marker are swapped for look-alike characters, ``<start_of_turn>`` becomes
  ``‹start_of_turn›`` (U+2039/U+203A) and ``[INST]`` becomes ``［INST］``
  (U+FF3B/U+FF3D). The text stays readable but can no longer be tokenised as
  a control token, so it cannot break the prompt's framing.

`review` runs all of it on one `ModelAnswer`. The confidence formula lives in
`engine.confidence` and is re-exported here as `compute_confidence`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from engine.confidence import compute_confidence  # noqa: F401  (re-exported)
from engine.schema import DISCLAIMER, Finding, ImageFinding, ModelAnswer, ModelFinding, SafetyFlag

__all__ = [
    "Review",
    "check_findings",
    "compute_confidence",
    "detect_injection",
    "diagnostic_statements",
    "ensure_disclaimer",
    "flag_medications",
    "reframe",
    "review",
    "sentence_spans",
    "split_sentences",
    "strip_control_tokens",
]

# --------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------

# Tokens that end with a period without ending a sentence (compared lowercase,
# inner dots kept: "e.g", "i.e").
ABBREVIATIONS = frozenset(
    """
    e.g eg i.e ie approx appx dr mr mrs ms prof vs etc no nos fig st cf al wt ht temp resp
    hx dx tx rx sx fx pt pts yo y.o mins min hrs hr sec secs mo mos wk wks yr yrs ca c.f
    b.d t.d.s q.d.s o.d p.o i.v i.m s.c p.r.n mg ml max est abd ext neg pos dept ref vol pp
    inc ltd jr sr sq sats obs rr bp o.e o/e c/o h/o
    """.split()
)
# Titles and "e.g."/"i.e." never end a sentence; other abbreviations do when a capital follows.
TITLES = frozenset("dr mr mrs ms prof st jr sr e.g eg i.e ie vs cf viz".split())

_BOUNDARY = re.compile(r"[.!?]+|\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.group() == "\n":
            before = text[start : m.start()].rstrip()
            after = text[end:].lstrip(" \t")
            blank = after.startswith("\n") or not after
            starts_new = bool(after) and (after[0].isupper() or after[0].isdigit() or after[0] in "-*•#>[(")
            ends_stop = bool(before) and before[-1] in ".!?:;"
            if not (blank or starts_new or ends_stop or not before):
                continue
            _add_span(text, start, m.start(), spans)
            start = end
            continue
        # a run of . ! ?
        nxt = text[end] if end < n else ""
        if nxt and not nxt.isspace() and nxt not in "\"')]”’":
            continue  # "38.5", "e.g.fever", "U.K."
        if nxt and nxt in "\"')]”’":
            end += 1
        rest = text[end:].lstrip()
        if m.group().endswith(".") and m.group() == "." and rest:
            word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[start : m.start()])
            token = word.group(1).lower() if word else ""
            if token in TITLES or (len(token) == 1 and token.isalpha() and m.start() - start > 1):
                continue
            if token in ABBREVIATIONS and not rest[0].isupper():
                continue
            if rest[0].islower():
                continue  # "approx. five", "e.g. fever"
        _add_span(text, start, end, spans)
        start = end
    _add_span(text, start, n, spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, robust to "e.g.", "approx.", "Dr.", "38.5"."""
    return [text[a:b] for a, b in sentence_spans(text)]


# --------------------------------------------------------------------------
# Diagnostic language
# --------------------------------------------------------------------------

DISEASE_TERMS = frozenset(
    """
    pneumonia; sepsis; septic shock; septicaemia; septicemia; appendicitis; asthma; asthma exacerbation;
    acute asthma; copd; copd exacerbation; chronic obstructive pulmonary disease; malaria; tuberculosis;
    meningitis; encephalitis; myocardial infarction; heart attack; acute coronary syndrome; angina;
    stroke; cerebrovascular accident; transient ischaemic attack; transient ischemic attack; cellulitis;
    dermatitis; eczema; psoriasis; melanoma; carcinoma; cancer; malignancy; tumour; tumor; lymphoma;
    leukaemia; leukemia; heart failure; cardiac failure; congestive heart failure; pulmonary embolism;
    pulmonary embolus; deep vein thrombosis; thrombosis; diabetic ketoacidosis; ketoacidosis; diabetes;
    diabetes mellitus; hypertension; urinary tract infection; pyelonephritis; cystitis; cholecystitis;
    pancreatitis; bronchiolitis; bronchitis; influenza; flu; covid; covid-19; dengue; typhoid;
    typhoid fever; cholera; measles; hepatitis; gastroenteritis; anaemia; anemia; fracture; pneumothorax;
    ectopic pregnancy; pre-eclampsia; preeclampsia; eclampsia; sickle cell crisis; anaphylaxis;
    infection; chest infection; viral infection; bacterial infection; sinusitis; otitis media;
    tonsillitis; pharyngitis; croup; epiglottitis; peritonitis; diverticulitis; bowel obstruction;
    intestinal obstruction; aortic dissection; atrial fibrillation; arrhythmia; cardiomyopathy;
    endocarditis; pericarditis; myocarditis; acute kidney injury; kidney injury; chronic kidney disease;
    renal failure; kidney failure; respiratory failure; hypothyroidism; hyperthyroidism; shock;
    osteomyelitis; septic arthritis; arthritis; gout; lupus; scabies; impetigo; ringworm; tinea;
    herpes zoster; shingles; chickenpox; varicella; urticaria; acne; rosacea; vitiligo; basal cell
    carcinoma; squamous cell carcinoma; keratosis; naevus; nevus; abscess; ulcer; peptic ulcer;
    gastritis; colitis; crohn's disease; ulcerative colitis; hernia; intussusception; volvulus;
    torsion; testicular torsion; ovarian torsion; miscarriage; placental abruption; hyperemesis;
    hypoglycaemia; hypoglycemia; hyperglycaemia; hyperglycemia; dehydration; malnutrition; kwashiorkor;
    marasmus; hiv; aids; syphilis; gonorrhoea; gonorrhea; chlamydia; leprosy; schistosomiasis;
    leptospirosis; rabies; tetanus; diphtheria; pertussis; whooping cough; mumps; rubella; ebola;
    lyme disease; pleural effusion; empyema; pulmonary oedema; pulmonary edema; bronchiectasis;
    cystic fibrosis; interstitial lung disease; lung cancer; breast cancer; epilepsy; seizure disorder;
    status epilepticus; migraine; subarachnoid haemorrhage; subarachnoid hemorrhage; haemorrhage;
    hemorrhage; intracranial haemorrhage; intracranial hemorrhage; dementia; delirium; depression;
    psychosis; schizophrenia; bipolar disorder; anxiety disorder; panic disorder; parkinson's disease;
    alzheimer's disease; multiple sclerosis; guillain-barre syndrome; kawasaki disease; glaucoma;
    conjunctivitis; cataract; retinal detachment; sickle cell disease; thalassaemia; thalassemia;
    disease; syndrome; disorder
    """.replace("\n", " ").split(";")
)
DISEASE_TERMS = frozenset(t.strip() for t in DISEASE_TERMS if t.strip())

# Case-sensitive: short upper-case abbreviations.
DISEASE_ABBREVIATIONS = frozenset(
    "MI STEMI NSTEMI ACS TIA CVA PE DVT DKA HHS UTI COPD TB CHF CCF AKI CKD AF ARDS CAP HAP "
    "HIV AIDS SAH ICH GBS IBD BCC SCC RTI URTI LRTI SBP".split()
)

# Words with a disease suffix that are signs, procedures or not diseases.
_SUFFIX_EXCEPTIONS = frozenset(
    """diagnosis diagnoses prognosis prognoses stoma stomas aroma coma diploma hypnosis osmosis mitosis
    meiosis symbiosis cyanosis diaphoresis hypoxemia hypoxaemia leukocytosis leucocytosis
    anastomosis stenosis""".split()
)

_DISEASE_LEXICON_RE = re.compile(
    r"(?<![\w-])(?:"
    + "|".join(re.escape(t) for t in sorted(DISEASE_TERMS, key=len, reverse=True))
    + r")(?![\w-])",
    re.IGNORECASE,
)
_DISEASE_ABBR_RE = re.compile(
    r"(?<![\w-])(?:" + "|".join(sorted(DISEASE_ABBREVIATIONS, key=len, reverse=True)) + r")s?(?![\w-])"
)
_DISEASE_SUFFIX_RE = re.compile(r"(?<![\w-])[a-z]{3,}(?:itis|omas?|a?emias?|os[ie]s)(?![\w-])", re.IGNORECASE)


def _disease_terms_in(text: str) -> list[re.Match[str]]:
    found = list(_DISEASE_LEXICON_RE.finditer(text)) + list(_DISEASE_ABBR_RE.finditer(text))
    found += [m for m in _DISEASE_SUFFIX_RE.finditer(text) if m.group().lower() not in _SUFFIX_EXCEPTIONS]
    return sorted(found, key=lambda m: m.start())


def mentions_disease(text: str) -> bool:
    """True when `text` names a disease from the lexicon or by suffix."""
    return bool(_disease_terms_in(text))


_HEDGE_RE = re.compile(
    r"\?|\b(?:may|might|could|can't|cannot|can\s+not|possible|possibly|probable|probably|likely|unlikely|"
    r"suspect(?:s|ed)?|suspicion|suspicious|suggest(?:s|ed|ive|ing)?|consider(?:s|ed|ing)?|differentials?|"
    r"query|queried|presum(?:ed|ptive|ably)|provisional|working|impression\s+of|concern(?:ing)?\s+for|"
    r"rule\s+out|to\s+exclude|to\s+be|evaluate|evaluation|assess(?:ed|ment)?\s+for|screen(?:ing)?\s+for|"
    r"risk\s+of|if|whether|not|n't|should|would|needs?|requires?\s+clinical|uncertain|unclear|apparent|"
    r"appears?|seems?|potential(?:ly)?|doubtful|versus|vs|perhaps|maybe|indeterminate|equivocal)\b",
    re.IGNORECASE,
)

_CLAUSE_DELIM_RE = re.compile(
    r"[,;:()\[\]]|\b(?:and|but|while|whereas|although|though|however|because|so)\b", re.IGNORECASE
)

# Where a noun phrase after a trigger ends.
_NP_STOP = frozenset(
    """and but or which who that because since so as requiring requires needing needs given due with
    secondary for from after on in at following causing caused leading likely suggesting suggested
    while whereas although though than until is are was were has have had can will would should may might
    could must does did""".split()
)
_NP_EXCLUDED_LEAD = re.compile(
    r"^(?:(?:a|an|the)\s+)?(?:(?:past|previous|prior|family|known|documented|medical|long|longstanding|"
    r"long-standing)\s+)*(?:history\s+of|hx\s+of|known|previous|prior|past|background\s+of|risk\s+of|"
    r"risk\s+factors?|signs?\s+of|symptoms?\s+of|features?\s+of|findings?\b|no\b|not\b|never\b|had\b|been\b|"
    r"a\s+family|family|test|tests|results?|appointment|referral)",
    re.IGNORECASE,
)
_NOT_A_NAME = re.compile(
    r"(?:confirmed|made|based|established|pending|unknown|unclear|uncertain|not|yet|still|awaiting|difficult|"
    r"challenging|complex|important|often|usually|typically|clinical|a\s+clinical|supported|reached|by|that|"
    r"to|as\s+follows)\b",
    re.IGNORECASE,
)
_CERTAINTY = r"(?:definitely|certainly|clearly|undoubtedly|unequivocally|conclusively|obviously|absolutely)"
_ADV = r"(?:(?:\w+ly|most|also|now|still|already|indeed|in\s+fact)\s+)*"
_SUBJ = (
    r"(?:(?:the|this|our|a|an|his|her|their)\s+)?"
    r"(?:(?!(?:that|and|but|if|when|because|so|as|given|since|then|thus|therefore|hence|which|who)\b)[\w-]+\s+){0,2}?"
    r"(?:patient|pt|child|infant|baby|neonate|toddler|man|woman|boy|girl|gentleman|lady|male|female|person|"
    r"individual|adult|adolescent|mother|father)"
    r"|\b(?:he|she|they)"
)


@dataclass(frozen=True)
class _Pattern:
    name: str
    regex: re.Pattern[str]
    kind: str  # "assert" or "exclude"
    x_after: bool = True  # the disease follows the trigger
    needs_disease: bool = True
    region_from_clause: bool = False  # the rewrite replaces from the clause start
    possessive: bool = False  # subject-less fallback: "<name> may have findings consistent with X"


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_PATTERNS: tuple[_Pattern, ...] = (
    # exclusions first: "does not have X", "has no X"
    _Pattern(
        "not-have",
        _p(
            rf"(?:(?P<subj>{_SUBJ})\s*)?(?P<adv>{_ADV})(?P<trig>(?:does\s+not|doesn't|did\s+not|didn't)\s+have|"
            r"has\s+no|have\s+no|is\s+not\s+suffering\s+from)\b"
        ),
        "exclude",
        region_from_clause=True,
    ),
    _Pattern(
        "rules-out",
        _p(r"(?P<trig>\b(?:rules|ruled|has\s+ruled|have\s+ruled)\s+out|\bexcludes|\bexcluded)\b"),
        "exclude",
        region_from_clause=True,
    ),
    _Pattern(
        "is-ruled-out",
        _p(
            r"(?P<trig>\b(?:is|are|was|were|has\s+been|have\s+been|can\s+be|now)\s+(?:\w+ly\s+)?(?:ruled\s+out|excluded))\b"
        ),
        "exclude",
        x_after=False,
    ),
    _Pattern(
        "is-confirmed",
        _p(
            r"(?P<trig>\b(?:is|are|was|were|has\s+been|have\s+been)\s+(?:\w+ly\s+)?(?:confirmed|proven|established|diagnosed))\b"
        ),
        "assert",
        x_after=False,
    ),
    _Pattern(
        "is-the-diagnosis",
        _p(r"(?P<trig>\b(?:is|are|was)\s+the\s+(?:\w+\s+){0,2}?diagnosis)\b"),
        "assert",
        x_after=False,
        needs_disease=False,
    ),
    _Pattern(
        "diagnosis-of",
        _p(r"(?P<trig>\bconsistent\s+with\s+(?:a|the)\s+diagnosis\s+of)\b"),
        "assert",
        needs_disease=False,
        region_from_clause=True,
    ),
    _Pattern(
        "diagnosis-is",
        _p(
            r"(?P<trig>\bdiagnos[ie]s\s*(?:(?:is|are|was|has\s+been)\s+(?:confirmed|established|made)\s+as\b|"
            r"(?:is|are|was|of)\b\s*[:=\-–]?|[:=\-–]))"
        ),
        "assert",
        needs_disease=False,
        region_from_clause=True,
    ),
    _Pattern(
        "has",
        _p(
            rf"(?:(?P<subj>{_SUBJ})\s*)?(?P<adv>{_ADV})(?P<trig>(?:has|have)(?:\s+(?:got|developed|now\s+got))?|['’]s\s+got|"
            r"(?:is|are|was|were)\s+(?:\w+ly\s+)?suffering\s+from|suffers\s+from|suffered\s+from|"
            r"(?:is|are)\s+(?:\w+ly\s+)?(?:experiencing|having|developing)|"
            r"(?:is|are|was|were|has\s+been|have\s+been)\s+(?:\w+ly\s+)?diagnosed\s+(?:with|as(?:\s+having)?)|"
            r"diagnosed\s+with|(?:is|are)\s+in|(?:(?:is|are|was|were)\s+)?(?:presents|presenting|presented)\s+with)\b"
        ),
        "assert",
        possessive=True,
    ),
    _Pattern(
        "this-is",
        _p(
            r"(?P<subj>\b(?:this|it|that|which|the\s+(?:clinical\s+)?(?:picture|presentation|cause|problem|condition|"
            r"illness|underlying\s+cause))\s+)(?P<adv>" + _ADV + r")"
            r"(?P<trig>is|represents|indicates|confirms|shows|proves|reflects|means)\b(?:\s+(?:a\s+case\s+of|an?)\b)?"
        ),
        "assert",
    ),
    _Pattern(
        "consistent",
        _p(
            r"(?:(?P<subj>\b(?:the\s+)?(?:findings|features|picture|presentation|symptoms|signs|results?|x-ray|cxr|"
            r"imaging|exam|examination|history|image|lesion)\s+))?(?P<trig>\b(?:is|are|was|were)\s+"
            + _ADV
            + r"(?:consistent\s+with|diagnostic\s+(?:of|for)|indicative\s+of|in\s+keeping\s+with|typical\s+of|"
            r"characteristic\s+of|pathognomonic\s+(?:of|for)|compatible\s+with))\b(?:\s+(?:a|the)\s+diagnosis\s+of)?"
        ),
        "assert",
    ),
    _Pattern(
        "confirms", _p(r"(?P<trig>\b(?:confirms|confirmed|confirming|proves|proved|establishes)\b)"), "assert"
    ),
    _Pattern(
        "certainty",
        _p(rf"(?P<trig>\b{_CERTAINTY}\b|\bwithout\s+(?:a\s+|any\s+)?doubt\b)"),
        "assert",
        region_from_clause=True,
    ),
)


@dataclass(frozen=True)
class _Hit:
    pattern: _Pattern
    start: int  # where the rewrite starts
    end: int  # where the rewritten noun phrase ends
    x: str  # the diagnosis named


def _clause_start(s: str, pos: int) -> int:
    start = 0
    for m in _CLAUSE_DELIM_RE.finditer(s, 0, pos):
        if m.end() <= pos:
            start = m.end()
    return start


def _clause_end(s: str, pos: int) -> int:
    m = _CLAUSE_DELIM_RE.search(s, pos)
    stop = re.compile(r"[.!?\n]").search(s, pos)
    ends = [x.start() for x in (m, stop) if x]
    return min(ends) if ends else len(s)


_WORD_RE = re.compile(r"[\w'’/-]+")


def _np_after(s: str, pos: int) -> tuple[int, int] | None:
    """Noun phrase starting at `pos`: up to punctuation, a stop word, or six words."""
    m = re.compile(r"[^.,;:!?()\[\]\n]*").match(s, pos)
    segment_end = m.end() if m else pos
    first = last = None
    count = 0
    for w in _WORD_RE.finditer(s, pos, segment_end):
        word = w.group().lower()
        if word in _NP_STOP and first is not None:
            # "has fever and pneumonia": a coordinated phrase continues until a disease is named
            if word in ("and", "or") and last is not None and not mentions_disease(s[first:last]):
                count += 1
                continue
            break
        if first is None:
            first = w.start()
        last = w.end()
        count += 1
        if count >= 6:
            break
    if first is None or last is None:
        return None
    return first, last


def _strip_certainty(text: str) -> str:
    return re.sub(rf"\b{_CERTAINTY}\s+", "", text, flags=re.IGNORECASE).strip()


def _hits(s: str) -> list[_Hit]:
    """Unhedged diagnostic statements in sentence `s`."""
    hits: list[_Hit] = []
    for pat in _PATTERNS:
        for m in pat.regex.finditer(s):
            trig_start, trig_end = m.span("trig")
            subj_start = m.start("subj") if "subj" in pat.regex.groupindex and m.group("subj") else None
            anchor = subj_start if subj_start is not None else m.start()
            cstart = _clause_start(s, anchor)
            if pat.name == "certainty":
                cend = _clause_end(s, trig_end)
                terms = [d for d in _disease_terms_in(s[trig_end:cend])]
                if not terms:
                    continue
                x_start, x_end = trig_end + terms[0].start(), trig_end + terms[0].end()
            elif pat.x_after:
                np_span = _np_after(s, m.end())
                if np_span is None:
                    continue
                x_start, x_end = np_span
            else:
                x_start, x_end = cstart, trig_start
                while x_start < x_end and s[x_start].isspace():
                    x_start += 1
                while x_end > x_start and s[x_end - 1].isspace():
                    x_end -= 1
                if x_end <= x_start:
                    continue
            x = s[x_start:x_end]
            if pat.name == "diagnosis-is" and _NOT_A_NAME.match(x):
                continue  # "the diagnosis is confirmed by ...", "diagnosis is unclear": no diagnosis named
            if (
                pat.x_after
                and pat.name != "certainty"
                and pat.needs_disease
                and _NP_EXCLUDED_LEAD.search(_strip_certainty(x))
            ):
                continue
            if pat.needs_disease and not mentions_disease(x):
                continue
            if not x.strip(" -–:"):
                continue
            # hedge region: clause start .. end of the diagnosis
            region_end = x_end if pat.x_after else trig_end
            region = s[cstart:region_end]
            if pat.name == "not-have":  # its own "not" is the statement, not a hedge
                region = s[cstart:trig_start] + " " + s[trig_end:region_end]
            if _HEDGE_RE.search(region) or "?" in s:
                continue
            if pat.x_after:
                start, end = (cstart if pat.region_from_clause else anchor), x_end
                while start < end and s[start].isspace():
                    start += 1
            else:
                start, end = x_start, trig_end
            hits.append(_Hit(pat, start, end, _strip_certainty(x)))
    hits.sort(key=lambda h: (h.start, -h.end))
    return hits


def diagnostic_statements(text: str) -> list[str]:
    """Sentences of `text` that state a diagnosis (or its exclusion) as fact."""
    return [sentence for sentence in split_sentences(text) if _hits(sentence)]


REQUIRES_ASSESSMENT = "requires clinical assessment"


def _rewrite(s: str) -> str:
    """Rewrite every unhedged diagnostic statement in sentence `s`."""
    out = s
    changed = False
    for _ in range(6):
        hits = _hits(out)
        if not hits:
            break
        hit = hits[0]
        prefix = out[: hit.start]
        rest = out[hit.end :]
        # "the diagnosis of X is confirmed by ...": the certainty claim goes with the rewrite
        rest = re.sub(
            r"^\s*(?:is|was|has\s+been)\s+(?:\w+ly\s+)?(?:confirmed|established|made|proven)\b",
            "",
            rest,
            flags=re.IGNORECASE,
        )
        x = hit.x.strip(" -–:")
        x = re.sub(r"^(?:a|an|the)\s+", "", x, flags=re.IGNORECASE) if hit.pattern.kind == "assert" else x
        x = re.sub(r"^(?:[\w'’]+\s+)?diagnos[ie]s\s+of\s+(?:a\s+|an\s+)?", "", x, flags=re.IGNORECASE)
        at_start = not prefix.strip()
        if prefix and not at_start and not prefix[-1].isspace():
            prefix += " "  # "No, the patient ..." -> "No, pneumonia ..."
        if hit.pattern.kind == "exclude":
            x = re.sub(r"^(?:a|an|the)\s+", "", x, flags=re.IGNORECASE)
            x = (x[0].upper() + x[1:]) if at_start else x
            replacement = f"{x} cannot be excluded on this information"
        else:
            if not hit.pattern.x_after and len(x) > 1 and x[0].isupper() and x[1].islower():
                x = x[0].lower() + x[1:]
            subject_less = (
                hit.pattern.possessive and not at_start and not _starts_with_subject(out, hit.start)
            )
            if subject_less:
                replacement = f"may have findings consistent with {x}"
            else:
                replacement = f"{'F' if at_start else 'f'}indings may be consistent with {x}"
        out = prefix + replacement + rest
        changed = True
    if not changed:
        return s
    body = out.rstrip()
    body = re.sub(r"[.!]+$", "", body).rstrip()
    if REQUIRES_ASSESSMENT not in body.lower():
        body += f"; {REQUIRES_ASSESSMENT}"
    return body + "."


def _starts_with_subject(s: str, pos: int) -> bool:
    return bool(re.compile(_SUBJ, re.IGNORECASE).match(s, pos))


def reframe(text: str) -> tuple[str, list[SafetyFlag]]:
    """Rewrite definitive diagnostic sentences as assistive ones; flag each.

    Everything outside the rewritten sentences (other sentences, whitespace,
    line breaks) is kept byte for byte.
    """
    if not text:
        return text, []
    flags: list[SafetyFlag] = []
    pieces: list[str] = []
    last = 0
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        new = _rewrite(sentence)
        if new != sentence:
            pieces.append(text[last:a])
            pieces.append(new)
            last = b
            flags.append(
                SafetyFlag(
                    kind="diagnostic-language",
                    text=sentence,
                    detail=f"Definitive diagnostic statement reframed as assistive: {new}",
                )
            )
    if not flags:
        return text, []
    pieces.append(text[last:])
    return "".join(pieces), flags


# --------------------------------------------------------------------------
# Medications
# --------------------------------------------------------------------------

DRUG_NAMES = frozenset(
    """
    paracetamol acetaminophen ibuprofen aspirin diclofenac naproxen amoxicillin amoxycillin co-amoxiclav
    augmentin ampicillin flucloxacillin penicillin benzylpenicillin phenoxymethylpenicillin ceftriaxone
    cefotaxime cefuroxime cefalexin cephalexin cefixime azithromycin clarithromycin erythromycin
    doxycycline ciprofloxacin levofloxacin metronidazole gentamicin vancomycin piperacillin tazobactam
    tazocin meropenem trimethoprim nitrofurantoin co-trimoxazole cotrimoxazole clindamycin artemether
    lumefantrine artesunate quinine chloroquine primaquine isoniazid rifampicin rifampin pyrazinamide
    ethambutol salbutamol albuterol ipratropium budesonide beclometasone fluticasone montelukast
    prednisolone prednisone hydrocortisone dexamethasone methylprednisolone adrenaline epinephrine
    noradrenaline norepinephrine metformin insulin gliclazide glibenclamide dextrose morphine codeine
    tramadol fentanyl oxycodone naloxone ondansetron metoclopramide omeprazole lansoprazole pantoprazole
    ranitidine furosemide frusemide bumetanide spironolactone ramipril lisinopril enalapril amlodipine
    bisoprolol atenolol metoprolol propranolol digoxin amiodarone warfarin heparin enoxaparin apixaban
    rivaroxaban clopidogrel atorvastatin simvastatin levothyroxine lorazepam diazepam midazolam
    haloperidol phenytoin levetiracetam phenobarbital carbamazepine valproate chlorphenamine cetirizine
    loratadine hydroxyzine betamethasone clobetasol mupirocin permethrin ivermectin albendazole
    mebendazole aciclovir acyclovir valaciclovir oseltamivir fluconazole clotrimazole terbinafine
    miconazole nystatin tenofovir lamivudine dolutegravir zidovudine nevirapine efavirenz
    magnesium potassium saline hartmann's ors zinc ferrous folic thiamine glucagon nitroglycerin gtn
    tranexamic oxytocin misoprostol methotrexate allopurinol colchicine lidocaine lignocaine ketamine
    propofol antibiotic antibiotics antipyretic antipyretics analgesic analgesics analgesia antimalarial
    antimalarials steroid steroids corticosteroid corticosteroids bronchodilator bronchodilators
    nebuliser nebulizer nebulised nebulized anticoagulant anticoagulants anticoagulation antiviral
    antivirals antifungal antifungals antihistamine antihistamines opioid opioids diuretic diuretics
    antiemetic antiemetics inhaler inhalers
    """.split()
)
_DRUG_RE = re.compile(
    r"(?<![\w-])(?:"
    + "|".join(re.escape(d) for d in sorted(DRUG_NAMES, key=len, reverse=True))
    + r")(?![\w-])",
    re.IGNORECASE,
)
_DOSE_RE = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?\s*(?:-\s*\d+(?:\.\d+)?\s*)?"
    r"(?:mg/kg(?:/(?:day|dose|h|hr))?|mcg/kg(?:/min)?|micrograms?/kg|ml/kg(?:/h)?|mg|mcg|µg|ug|micrograms?|"
    r"milligrams?|grams?|g(?!/d?l)|ml|millilitres?|milliliters?|units?|iu|mmol(?!/l))(?![\w])",
    re.IGNORECASE,
)
_FREQ_RE = re.compile(
    r"\b(?:once|twice|three\s+times|four\s+times|1x|2x|3x|4x)\s+(?:a\s+|per\s+)?(?:daily|day)\b|"
    r"\bevery\s+\d+\s*(?:hours?|hrs?|h)\b|\bq\d+h\b|\b(?:od|bd|bid|tds|tid|qds|qid|prn|stat|nocte|mane|"
    r"qhs|sos)\b|\bas\s+required\b|\bas\s+needed\b",
    re.IGNORECASE,
)
_ROUTE_RE = re.compile(
    r"\b(?:IV|IM|PO|SC|SL|NG|IO)\b|\b(?:intravenous(?:ly)?|intramuscular(?:ly)?|subcutaneous(?:ly)?|"
    r"orally|by\s+mouth|per\s+os|sublingual(?:ly)?|nebuli[sz]ed|inhaled|topical(?:ly)?)\b"
)


def _medication_terms(sentence: str) -> list[str]:
    terms: list[str] = []
    for label, rx in (("drug", _DRUG_RE), ("dose", _DOSE_RE), ("frequency", _FREQ_RE), ("route", _ROUTE_RE)):
        for m in rx.finditer(sentence):
            terms.append(f"{label}: {m.group().strip()}")
    return terms


def flag_medications(text: str) -> list[SafetyFlag]:
    """One `medication` flag per sentence that names a drug, dose, frequency or route."""
    flags: list[SafetyFlag] = []
    for sentence in split_sentences(text or ""):
        terms = _medication_terms(sentence)
        if terms:
            flags.append(
                SafetyFlag(
                    kind="medication",
                    text=sentence,
                    detail="Medication or dose statement; check against local guidance before acting ("
                    + "; ".join(dict.fromkeys(terms))
                    + ")",
                )
            )
    return flags


# --------------------------------------------------------------------------
# Disclaimer
# --------------------------------------------------------------------------


def ensure_disclaimer(clinical_notes: str) -> str:
    """`clinical_notes` with `DISCLAIMER` in it exactly once.

    Present once: unchanged. Missing: appended on its own line. Repeated: the
    first kept, the others removed.
    """
    text = clinical_notes or ""
    while text.count(DISCLAIMER) > 1:
        i = text.rfind(DISCLAIMER)
        text = text[:i] + text[i + len(DISCLAIMER) :]
    if text.count(DISCLAIMER) == 1:
        return text
    body = text.rstrip()
    return f"{body}\n\n{DISCLAIMER}" if body else DISCLAIMER


# --------------------------------------------------------------------------
# Prompt injection
# --------------------------------------------------------------------------

CONTROL_TOKENS = (
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "[INST]",
    "[/INST]",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<s>",
    "</s>",
)
_CONTROL_RE = re.compile(
    r"<\s*/?\s*(?:start_of_turn|end_of_turn|bos|eos|s)\s*>|\[\s*/?\s*INST\s*\]|<\|[a-z_]{1,40}\|>",
    re.IGNORECASE,
)
_LOOKALIKE = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\uff3b", "]": "\uff3d"})

_INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx, re.IGNORECASE))
    for label, rx in (
        (
            "instruction override",
            r"\b(?:ignore|disregard|forget|override|skip)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+the\s+)*(?:previous|prior|above|earlier|preceding|system|original|safety)?\s*(?:instructions?|prompts?|rules?|guidelines?|directions?|context|messages?)\b",
        ),
        ("instruction override", r"\bdisregard\s+(?:the\s+|everything\s+|all\s+)?(?:above|previous|prior)\b"),
        ("instruction override", r"\bforget\s+(?:everything|all)\b"),
        (
            "role change",
            r"\byou\s+are\s+now\b|\bact\s+as\s+(?:a|an)\b|\bpretend\s+(?:to\s+be|you\s+are)\b|\bfrom\s+now\s+on\b",
        ),
        ("role header", r"(?:^|\n|[\[<|#])\s*(?:system|assistant|developer)\s*:"),
        ("new instructions", r"\bnew\s+instructions?\s*:|###\s*instruction"),
        (
            "asks for a definitive diagnosis",
            r"\bstate\s+(?:the|a|your)\s+(?:final\s+|definitive\s+)?diagnosis\b|\bgive\s+(?:a|the)\s+definitive\s+diagnosis\b",
        ),
        (
            "asks to drop safety text",
            r"\b(?:do\s+not|don't|never)\s+(?:include|add|show|print|mention)\s+(?:the\s+|any\s+)?(?:disclaimer|warning|safety)|\bwithout\s+(?:the\s+|any\s+)?disclaimer\b|\b(?:omit|remove|drop)\s+(?:the\s+)?disclaimer\b",
        ),
        (
            "asks to reveal the prompt",
            r"\b(?:reveal|print|show|repeat)\s+(?:your|the)\s+(?:system\s+)?prompt\b",
        ),
        ("model control token", _CONTROL_RE.pattern),
    )
)


def detect_injection(note: str) -> list[SafetyFlag]:
    """`prompt-injection` flags for instruction-like text in the note (one per match)."""
    flags: list[SafetyFlag] = []
    seen: set[tuple[int, int]] = set()
    for label, rx in _INJECTION_PATTERNS:
        for m in rx.finditer(note or ""):
            if any(a <= m.start() < b for a, b in seen):
                continue
            seen.add(m.span())
            flags.append(
                SafetyFlag(
                    kind="prompt-injection",
                    text=m.group().strip(),
                    detail=f"Instruction-like text in the note ({label}) at characters {m.start()}-{m.end()}; "
                    "treated as note content only, not as an instruction.",
                )
            )
    return flags


def strip_control_tokens(note: str) -> str:
    """Neutralise model turn markers: ASCII brackets swapped for look-alikes (‹ › ［ ］)."""
    return _CONTROL_RE.sub(lambda m: m.group().translate(_LOOKALIKE), note or "")


# --------------------------------------------------------------------------
# Findings: is each one supported by the note (or the image)?
# --------------------------------------------------------------------------

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


_VITAL_RES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx, re.IGNORECASE))
    for name, rx in (
        ("hr", r"\b(?:hr|heart\s+rate|pulse(?:\s+rate)?)\b\s*(?:of|is|was|at|=|:|~)?\s*(\d{2,3})(?![\d.])"),
        ("rr", r"\b(?:rr|resp(?:iratory)?\s+rate|resps)\b\s*(?:of|is|was|at|=|:|~)?\s*(\d{1,2})(?![\d.])"),
        (
            "spo2",
            r"\b(?:spo2|sao2|o2\s+sats?|sats?|saturations?|oxygen\s+saturations?)\b\s*(?:of|is|was|at|=|:|~)?\s*(\d{2,3})(?![\d.])",
        ),
        ("t", r"\b(?:t|temp|temperature)\b\s*(?:of|is|was|at|=|:|~)?\s*(\d{2}(?:\.\d+)?)(?![\d])"),
        ("t", r"(?<![\d.])(\d{2}(?:\.\d+)?)\s*°\s*c\b"),
        ("sbp", r"\b(?:bp|blood\s+pressure)\b\s*(?:of|is|was|at|=|:|~)?\s*(\d{2,3})\s*/\s*\d{2,3}"),
        ("dbp", r"\b(?:bp|blood\s+pressure)\b\s*(?:of|is|was|at|=|:|~)?\s*\d{2,3}\s*/\s*(\d{2,3})"),
    )
)
_VITAL_NAMES = {
    "hr": "HR",
    "rr": "RR",
    "spo2": "SpO2",
    "t": "temperature",
    "sbp": "systolic BP",
    "dbp": "diastolic BP",
}


def _vitals(text: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for name, rx in _VITAL_RES:
        for m in rx.finditer(text):
            found.setdefault(name, []).append(float(m.group(1)))
    return found


# concept stem -> (vital, predicate for "present", predicate for "absent")
_VitalTest = Callable[[float], bool]
_VITAL_CONCEPTS: dict[str, tuple[str, _VitalTest, _VitalTest]] = {
    "fever": ("t", lambda v: v >= 38.0, lambda v: v < 37.5),
    "tachycardia": ("hr", lambda v: v > 100, lambda v: v <= 90),
    "bradycardia": ("hr", lambda v: v < 60, lambda v: v >= 60),
    "hypoxia": ("spo2", lambda v: v < 94, lambda v: v >= 96),
    "tachypnea": ("rr", lambda v: v > 20, lambda v: v <= 18),
    "hypotension": ("sbp", lambda v: v < 90, lambda v: v >= 110),
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


def _tfidf_similarities(sentences: list[str], queries: list[str]) -> np.ndarray:
    """Cosine similarity (queries x sentences), TF-IDF over character 3-5-grams fit on this call's text."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not sentences or not queries:
        return np.zeros((len(queries), len(sentences)))
    vec = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True, dtype=np.float32
    )
    matrix = vec.fit_transform(sentences + queries)
    return cast(np.ndarray, (matrix[len(sentences) :] @ matrix[: len(sentences)].T).toarray())


_VITAL_TOKEN = {"t": "t", "hr": "hr", "spo2": "spo2", "rr": "rr", "sbp": "bp"}


class _NoteIndex:
    """What check_findings needs from the note, computed once per call."""

    def __init__(self, note: str) -> None:
        self.note = note
        self.spans = sentence_spans(note)
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
        self.vitals = _vitals(note)
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
    claim_vitals = _vitals(check_numbers_of)
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
    findings: list[ModelFinding], note: str, image_findings: list[ImageFinding]
) -> tuple[list[Finding], list[SafetyFlag]]:
    """Trace every model finding to the note (or the image); flag what fails.

    Returns one `Finding` per model finding, in order, and the flags
    (`unsupported-finding`, `contradicted-finding`, `diagnostic-language`).
    """
    note = note or ""
    image_findings = list(image_findings or [])
    ix = _NoteIndex(note)
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
        sims = _tfidf_similarities(sentences, queries)
        for row, i in enumerate(need_fuzzy):
            claim_stems = list(dict.fromkeys(_concepts(queries[row]).stems()))
            overlaps = ix.overlaps(claim_stems)
            j = int(np.argmax(0.5 * sims[row] + 0.5 * overlaps))
            best_idx[i], best_sim[i], best_overlap[i] = j, sims[row, j], overlaps[j]

    results: list[Finding] = []
    flags: list[SafetyFlag] = []
    for i, f in enumerate(findings):
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


# --------------------------------------------------------------------------
# Review of a whole answer
# --------------------------------------------------------------------------


@dataclass
class Review:
    summary: str
    reasoning: str
    recommendations: list[str]
    findings: list[Finding]
    flags: list[SafetyFlag]
    supported_share: float | None  # None when the answer has no findings


def _dedupe(flags: Iterable[SafetyFlag]) -> list[SafetyFlag]:
    seen: set[tuple[str, str]] = set()
    out: list[SafetyFlag] = []
    for flag in flags:
        key = (flag.kind, flag.text)
        if key not in seen:
            seen.add(key)
            out.append(flag)
    return out


def review(answer: ModelAnswer, note: str, image_findings: list[ImageFinding]) -> Review:
    """Reframe, flag and check one model answer against its note. Pure."""
    summary, f1 = reframe(answer.summary)
    reasoning, f2 = reframe(answer.reasoning)
    recommendations: list[str] = []
    f3: list[SafetyFlag] = []
    for rec in answer.recommendations:
        new, fl = reframe(rec)
        recommendations.append(new)
        f3.extend(fl)
    findings, f4 = check_findings(answer.key_findings, note, image_findings)
    meds: list[SafetyFlag] = []
    for text in (answer.summary, answer.reasoning, *answer.recommendations):
        meds.extend(flag_medications(text))
    injection = detect_injection(note)
    share = (sum(1 for f in findings if f.supported) / len(findings)) if findings else None
    return Review(
        summary=summary,
        reasoning=reasoning,
        recommendations=recommendations,
        findings=findings,
        flags=_dedupe([*injection, *f1, *f2, *f3, *f4, *meds]),
        supported_share=share,
    )
