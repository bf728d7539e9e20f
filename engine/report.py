"""A plain-text form of an assessment for the terminal (the Markdown handoff is in engine.history)."""

from __future__ import annotations

from collections.abc import Callable

from engine.schema import Assessment

SUPPORTED, UNSUPPORTED = "supported", "NOT SUPPORTED by the note"


def to_text(assessment: Assessment) -> str:
    return _render(assessment, heading=lambda title: f"\n{title.upper()}\n", bullet="  - ")


def _render(a: Assessment, heading: Callable[[str], str], bullet: str) -> str:
    lines: list[str] = []
    add = lines.append
    add(heading(f"Risk: {a.risk_level}"))
    news2, qsofa = a.risk.news2, a.risk.qsofa
    add(
        f"{bullet}NEWS2: {news2.score if news2.score is not None else 'not scored'}"
        f"{f' ({news2.band})' if news2.band else ''}"
        f"{'; missing: ' + ', '.join(news2.missing) if news2.missing and news2.score is not None else ''}"
    )
    add(f"{bullet}qSOFA: {qsofa.score if qsofa.score is not None else 'not scored'}")
    for reason in a.risk.reasons:
        add(f"{bullet}{reason}")
    add(heading("Summary"))
    add(a.summary)
    add(heading("Key findings (with the evidence each rests on)"))
    for finding in a.findings:
        mark = SUPPORTED if finding.supported else UNSUPPORTED
        add(f"{bullet}{finding.text} [{mark}]")
        add(f'{" " * len(bullet)}evidence ({finding.source}): "{finding.evidence}"')
    if not a.findings:
        add(f"{bullet}(none)")
    if a.image_findings:
        add(heading("Image (image-text similarity, not a diagnosis)"))
        for image_finding in a.image_findings:
            add(f"{bullet}{image_finding.label}: {image_finding.probability:.0%}")
    add(heading("Recommendations"))
    for recommendation in a.recommendations or ["(none)"]:
        add(f"{bullet}{recommendation}")
    add(heading(f"Confidence: {a.confidence:.2f}"))
    explanation = a.confidence_basis.get("explanation")
    if explanation:
        add(explanation)
    if a.safety.flags:
        add(heading("Safety flags"))
        for flag in a.safety.flags:
            add(f"{bullet}{flag.kind}: {flag.text}{f' ({flag.detail})' if flag.detail else ''}")
    add(heading("Notes"))
    add(a.clinical_notes)
    return "\n".join(lines) + "\n"
