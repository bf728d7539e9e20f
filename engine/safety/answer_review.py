"""The review of one whole model answer: every check of the safety layer, in one pure call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.notefacts import NoteFacts, read_note
from engine.safety import prompt_guard
from engine.safety.diagnostic import reframe
from engine.safety.evidence import check_findings
from engine.safety.medications import flag_medications
from engine.schema import Finding, ImageFinding, ModelAnswer, SafetyFlag


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


def review(
    answer: ModelAnswer, note: str, image_findings: list[ImageFinding], facts: NoteFacts | None = None
) -> Review:
    """Reframe, flag and check one model answer against its note. Pure.

    `facts` is the request's reading of the note; without it the note is read here.
    """
    if facts is None:
        facts = read_note(note or "")
    summary, f1 = reframe(answer.summary)
    reasoning, f2 = reframe(answer.reasoning)
    recommendations: list[str] = []
    f3: list[SafetyFlag] = []
    for rec in answer.recommendations:
        new, fl = reframe(rec)
        recommendations.append(new)
        f3.extend(fl)
    findings, f4 = check_findings(answer.key_findings, note, image_findings, facts)
    meds: list[SafetyFlag] = []
    for text in (answer.summary, answer.reasoning, *answer.recommendations):
        meds.extend(flag_medications(text))
    injection = [prompt_guard.flag(marker) for marker in facts.injections]
    share = (sum(1 for f in findings if f.supported) / len(findings)) if findings else None
    return Review(
        summary=summary,
        reasoning=reasoning,
        recommendations=recommendations,
        findings=findings,
        flags=_dedupe([*injection, *f1, *f2, *f3, *f4, *meds]),
        supported_share=share,
    )
