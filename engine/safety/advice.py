"""Advice that contradicts the rule-based risk: discharge or reassurance under a Moderate or High band.

What it catches. Under a NEWS2 band of Moderate or High, a sentence that
advises discharge ("Discharge home", "can be discharged", "send home", "safe
to go home", "manage at home"), no action ("no further action", "no further
investigation needed", "no need for admission"), routine follow-up ("routine
follow-up", "follow up with the GP in two weeks") or reassurance ("reassure
the patient", "reassurance") is flagged ``advice-contradicts-risk``. The flag
is shown first, and the sentence is replaced where it would be read as the
answer (summary, reasoning, recommendations).

What it leaves alone. Negated advice ("do not discharge", "not safe for
discharge", "before discharge", "avoid reassurance"), the noun "discharge"
as a sign ("nasal discharge", "purulent discharge"), and every sentence when
the rule band is Low or unknown.

What it does not catch. Advice that lowers the level of care without these
words ("observe overnight on the ward" under High), and advice spread over
two sentences.
"""

from __future__ import annotations

import re

from engine.safety.sentences import replace_sentences
from engine.schema import RiskLevel, SafetyFlag

CONTRADICTED_BANDS = frozenset({"Moderate", "High"})

_DISCHARGE_SIGN = (
    r"(?:nasal|vaginal|purulent|ear|eye|nipple|penile|urethral|wound|green|yellow|clear|bloody|watery|mucoid|"
    r"mucopurulent|offensive|foul|ocular|aural|post-?nasal)"
)
_ADVICE = re.compile(
    r"\bdischarg(?:e|ed|ing)\b(?!\s+from\s+the\s+(?:ear|eye|nose|wound|penis|vagina))"
    r"|\bsen[dt]\s+(?:(?:the\s+)?patient\s+|him\s+|her\s+|them\s+)?home\b"
    r"|\b(?:safe|fit|well\s+enough)\s+(?:to\s+go|for)\s+home\b|\b(?:can|could|may)\s+go\s+home\b"
    r"|\bmanage(?:d)?\s+(?:at\s+home|as\s+an?\s+outpatient|in\s+the\s+community)\b"
    r"|\bno\s+further\s+(?:action|investigations?|treatment|management|tests?|review|follow-?up)\b"
    r"|\bno\s+need\s+for\s+(?:admission|review|hospital\w*|further\s+\w+)\b"
    r"|\broutine\s+(?:follow-?up|review|appointment|outpatient)\b"
    r"|\bfollow[\s-]?up\s+(?:with\s+(?:the\s+|their\s+|a\s+)?(?:gp|general\s+practitioner|family\s+doctor|clinic)\s+)?in\s+"
    r"(?:\d+|one|two|three|four|a\s+few|several)\s+(?:days?|weeks?|months?)\b"
    r"|\breassur(?:e|ed|ing|ance)\b",
    re.IGNORECASE,
)
_SIGN_BEFORE = re.compile(_DISCHARGE_SIGN + r"\s+$", re.IGNORECASE)
_NEGATED = re.compile(
    r"\b(?:not|no|never|avoid|before|until|against|unsafe|inappropriate|cannot|can't|don't|do\s+not|"
    r"should\s+not|must\s+not|without)\b[^.;,]*$",
    re.IGNORECASE,
)
_NOT_SAFE_AFTER = re.compile(r"^\W*(?:is|would\s+be)\s+(?:not|un)\w*", re.IGNORECASE)


def contradicting_advice(sentence: str) -> str | None:
    """The advice in `sentence` that lowers care (discharge, no action, routine follow-up, reassurance), if any."""
    for m in _ADVICE.finditer(sentence):
        before = sentence[: m.start()]
        if _NEGATED.search(before) or _NOT_SAFE_AFTER.match(sentence[m.end() :]):
            continue
        if m.group().lower().startswith("discharg") and _SIGN_BEFORE.search(before):
            continue  # "purulent discharge" is a sign, not advice
        return m.group()
    return None


WITHHELD = (
    "Advice that lowers the level of care was withheld: it contradicts the rule-based risk "
    "(NEWS2 band {band}); requires clinical review."
)


def flag_contradicting_advice(text: str, rule_band: RiskLevel | None) -> tuple[str, list[SafetyFlag]]:
    """`text` with each sentence of advice that contradicts `rule_band` replaced, and a flag each.

    Under a Low or unknown band nothing changes. Other sentences are kept byte for byte.
    """
    if not text or rule_band not in CONTRADICTED_BANDS:
        return text, []

    def withhold(sentence: str) -> tuple[str, SafetyFlag] | None:
        advice = contradicting_advice(sentence)
        if advice is None:
            return None
        detail = f"'{advice}' under a {rule_band} NEWS2 band; the advice was withheld from the answer."
        return WITHHELD.format(band=rule_band), SafetyFlag(
            kind="advice-contradicts-risk", text=sentence, detail=detail
        )

    return replace_sentences(text, withhold)
