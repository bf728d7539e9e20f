"""The review of one whole model answer: every check of the safety layer, in one pure call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.notefacts import NoteFacts, read_note
from engine.safety import prompt_guard
from engine.safety.advice import flag_contradicting_advice
from engine.safety.diagnostic import reframe
from engine.safety.duplicates import unique_indices
from engine.safety.evidence import check_findings
from engine.safety.medications import flag_medications
from engine.safety.results import flag_invented_results
from engine.schema import Finding, ImageFinding, ModelAnswer, RiskLevel, SafetyFlag


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


def _repetition_flag(dropped_findings: int, dropped_recommendations: int) -> list[SafetyFlag]:
    """A `repetition` flag with the counts of what was dropped; none when nothing was."""
    counts = [
        f"{count} {what}{'' if count == 1 else 's'}"
        for count, what in ((dropped_findings, "finding"), (dropped_recommendations, "recommendation"))
        if count
    ]
    if not counts:
        return []
    return [
        SafetyFlag(
            kind="repetition",
            text="findings and recommendations",
            detail=f"The model repeated itself: {' and '.join(counts)} that repeated an earlier one "
            "(exactly or nearly) were dropped.",
        )
    ]


def check_text(
    text: str, note: str | NoteFacts, rule_band: RiskLevel | None = None
) -> tuple[str, list[SafetyFlag]]:
    """One piece of model text (a sentence, a field, a paragraph) checked against the note.

    In order: advice that contradicts `rule_band` (the NEWS2 band) is withheld, a
    sentence stating a result the note does not contain is replaced, diagnostic
    statements are reframed; medication statements are flagged. Returns the
    checked text and its flags. Text outside the changed sentences is kept byte
    for byte, so a stream can be checked sentence by sentence.
    """
    facts = note if isinstance(note, NoteFacts) else read_note(note or "")
    without_advice, advice_flags = flag_contradicting_advice(text, rule_band)
    without_invented, result_flags = flag_invented_results(without_advice, facts)
    reframed, diagnostic_flags = reframe(without_invented)
    return reframed, [*advice_flags, *result_flags, *diagnostic_flags, *flag_medications(text)]


def review(
    answer: ModelAnswer,
    note: str,
    image_findings: list[ImageFinding],
    facts: NoteFacts | None = None,
    rule_band: RiskLevel | None = None,
) -> Review:
    """Reframe, flag and check one model answer against its note. Pure.

    `facts` is the request's reading of the note; without it the note is read here.
    `rule_band` is the NEWS2 band: advice that contradicts it is withheld and flagged first.
    """
    if facts is None:
        facts = read_note(note or "")
    summary, summary_flags = check_text(answer.summary, facts, rule_band)
    reasoning, reasoning_flags = check_text(answer.reasoning, facts, rule_band)
    recommendations: list[str] = []
    recommendation_flags: list[SafetyFlag] = []
    for recommendation in answer.recommendations:
        checked, flags = check_text(recommendation, facts, rule_band)
        recommendations.append(checked)
        recommendation_flags.extend(flags)
    findings, finding_flags = check_findings(answer.key_findings, note, image_findings, facts)
    # repeats are dropped as the clinician would read them: after the checks
    kept_findings = [findings[i] for i in unique_indices([finding.text for finding in findings])]
    kept_recommendations = [recommendations[i] for i in unique_indices(recommendations)]
    repetition_flags = _repetition_flag(
        len(findings) - len(kept_findings), len(recommendations) - len(kept_recommendations)
    )
    findings, recommendations = kept_findings, kept_recommendations
    injection = [prompt_guard.flag(marker) for marker in facts.injections]
    share = (sum(1 for f in findings if f.supported) / len(findings)) if findings else None
    ordered = [
        *injection,
        *repetition_flags,
        *summary_flags,
        *reasoning_flags,
        *recommendation_flags,
        *finding_flags,
    ]
    # advice that contradicts the risk first, medication flags last (stable otherwise)
    ordered.sort(key=lambda flag: (flag.kind != "advice-contradicts-risk", flag.kind == "medication"))
    return Review(
        summary=summary,
        reasoning=reasoning,
        recommendations=recommendations,
        findings=findings,
        flags=_dedupe(ordered),
        supported_share=share,
    )
