"""The disclaimer, exactly once in a result's clinical notes."""

from __future__ import annotations

from engine.schema import DISCLAIMER


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
