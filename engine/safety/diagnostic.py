"""Diagnostic statements: a diagnosis stated (or excluded) as fact is reframed.

What it catches. A sentence that asserts a diagnosis ("The patient has
pneumonia.", "Diagnosis: sepsis", "This confirms appendicitis", "X is
confirmed", "diagnosed with X", "is suffering from X", "definitely X",
"consistent with a diagnosis of X") is rewritten as "Findings may be
consistent with X; requires clinical assessment." A sentence that
definitively excludes one ("Appendicitis is ruled out", "this rules out X",
"does not have X") becomes "X cannot be excluded on this information;
requires clinical assessment." Each rewrite is flagged ``diagnostic-language``
with the original sentence as the flag's text.

The possessive form ("he has X", "the patient has X") is only diagnostic when
X names a disease: a curated lexicon (`DISEASE_TERMS`, abbreviations in
`DISEASE_ABBREVIATIONS`) plus the suffixes -itis, -oma, -emia/-aemia, -osis
(minus a few signs and non-diseases such as "cyanosis", "diagnosis"). "Has a
fever", "has pain", "has a cough for 2 weeks" are findings and stay. Reported
history is not an assertion by the model: "has a history of asthma", "has
known asthma", "has had a stroke" stay. But the model writing "The patient
has asthma" is reframed even when the note says "known asthma": the rule reads
the model's sentence alone.

What it leaves alone. Sentences already hedged ("may be consistent with",
"possible", "likely", "suggests", "differential includes", "consider",
"cannot be excluded", a question). A hedge only counts when it stands in the
same clause as the diagnostic statement, before its end: in "Findings may be
consistent with pneumonia and she has sepsis" the second clause is still
caught.

What it does not catch. A disease outside the lexicon without one of the
suffixes ("has Lassa"), diagnoses implied without a naming verb ("Treat as
pneumonia."), and statements spread over two sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.safety.sentences import replace_sentences, split_sentences
from engine.schema import SafetyFlag

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
    common cold; viral cold; head cold; chest cold; viral illness; viral syndrome; respiratory tract infection;
    upper respiratory tract infection; lower respiratory tract infection; respiratory infection;
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


# "a cold" is the illness; "cold hands", "cold peripheries" are signs.
_A_COLD_RE = re.compile(
    r"(?<![\w-])(?:a|the)\s+cold(?![\w-])(?!\s+(?:hands?|feet|foot|fingers?|toes?|peripher\w*|extremit\w*|skin|"
    r"sweats?|sweaty|compress\w*|room|weather|water|drinks?|and\s+clammy))",
    re.IGNORECASE,
)


def _disease_terms_in(text: str) -> list[re.Match[str]]:
    found = list(_DISEASE_LEXICON_RE.finditer(text)) + list(_DISEASE_ABBR_RE.finditer(text))
    found += list(_A_COLD_RE.finditer(text))
    found += [m for m in _DISEASE_SUFFIX_RE.finditer(text) if m.group().lower() not in _SUFFIX_EXCEPTIONS]
    return sorted(found, key=lambda m: m.start())


def _names_disease(s: str, start: int, end: int) -> bool:
    """A disease name starts within s[start:end]; what follows is read too ("a cold" vs "a cold and clammy")."""
    return any(m.start() < end - start for m in _disease_terms_in(s[start:]))


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
        "is-present",
        _p(
            r"(?P<trig>\b(?:is|are|was|were)\s+(?:\w+ly\s+)?(?:present|evident|seen|noted|visible|"
            r"demonstrated|identified|detected))\b"
        ),
        "assert",
        x_after=False,
    ),
    _Pattern(
        "there-is",
        _p(
            r"(?P<trig>\bthere\s+(?:is|are|was|were)\s+(?:\w+ly\s+)?(?:(?:clear|definite)\s+)?(?:evidence\s+of\s+)?)"
        ),
        "assert",
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
            r"(?P<subj>\b(?:this|it|that|which|(?:the|his|her)\s+(?:patient['’]s\s+)?(?:clinical\s+)?(?:picture|presentation|cause|problem|condition|"
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


# A sentence that is only a condition's name ("Sepsis.", "Severe community-acquired pneumonia!")
# states it as fact. These words may stand beside the name without changing that.
_BARE_MODIFIERS = frozenset(
    """a an the acute chronic severe mild moderate early late bilateral unilateral left right lower upper lobar
    community-acquired hospital-acquired community hospital acquired bacterial viral fungal septic
    complicated uncomplicated new recurrent active primary secondary with""".split()
)
_BARE_RE = re.compile(r"^\s*(?:[-*•]\s*)?(?P<x>[^.!?:;,]+?)\s*[.!]*\s*$")


def _bare_condition(s: str) -> _Hit | None:
    """The whole sentence is a condition's name: a hit over all of it."""
    m = _BARE_RE.match(s)
    if m is None:
        return None
    x = m.group("x")
    terms = _disease_terms_in(x)
    if not terms:
        return None
    rest = x
    for term in sorted(terms, key=lambda t: t.start(), reverse=True):
        rest = rest[: term.start()] + " " + rest[term.end() :]
    if any(word not in _BARE_MODIFIERS for word in rest.lower().split()):
        return None
    pattern = _Pattern("bare-condition", m.re, "assert", x_after=False)
    return _Hit(pattern, m.start("x"), m.end("x"), x)


def _hits(s: str) -> list[_Hit]:
    """Unhedged diagnostic statements in sentence `s`."""
    bare = _bare_condition(s)
    if bare is not None:
        return [bare]
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
            if pat.needs_disease and not _names_disease(s, x_start, x_end):
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
        if hit.pattern.kind == "assert" and not re.fullmatch(r"(?:a|the)\s+cold", x, flags=re.IGNORECASE):
            x = re.sub(r"^(?:a|an|the)\s+", "", x, flags=re.IGNORECASE)  # "a cold" keeps its article
        x = re.sub(r"^(?:[\w'’]+\s+)?diagnos[ie]s\s+of\s+(?:a\s+|an\s+)?", "", x, flags=re.IGNORECASE)
        at_start = not prefix.strip(" \t-*•")  # a list item starts a sentence too
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

    def reframed(sentence: str) -> tuple[str, SafetyFlag] | None:
        new = _rewrite(sentence)
        if new == sentence:
            return None
        detail = f"Definitive diagnostic statement reframed as assistive: {new}"
        return new, SafetyFlag(kind="diagnostic-language", text=sentence, detail=detail)

    return replace_sentences(text, reframed)
