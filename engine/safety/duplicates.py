"""Repeated findings and recommendations: exact and near duplicates are dropped and counted.

What it catches: the same text again after case, spacing and punctuation are
set aside ("Fever." and "fever"), and near duplicates whose characters agree
at least `NEAR_DUPLICATE_RATIO` (difflib's ratio over the normalised text:
"Monitor vital signs closely" and "Monitor the vital signs closely"). The first
occurrence is kept.

What it does not catch: the same point made in different words ("Admit to
hospital" and "Arrange inpatient care"), and repetition inside one long text
(the loop detector of the generation stops that).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

NEAR_DUPLICATE_RATIO = 0.9

_NOT_WORD = re.compile(r"[\W_]+")


def _normalised(text: str) -> str:
    return _NOT_WORD.sub(" ", text.lower()).strip()


def is_duplicate(text: str, earlier: list[str]) -> bool:
    """`text` repeats one of `earlier`, exactly or nearly (both normalised)."""
    key = _normalised(text)
    for other in earlier:
        if key == other:
            return True
        matcher = SequenceMatcher(None, key, other, autojunk=False)
        if matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO and matcher.ratio() >= NEAR_DUPLICATE_RATIO:
            return True
    return False


def unique_indices(texts: list[str]) -> list[int]:
    """Indices of the texts to keep: each one that does not repeat an earlier one."""
    kept: list[int] = []
    seen: list[str] = []
    for i, text in enumerate(texts):
        if not is_duplicate(text, seen):
            kept.append(i)
        seen.append(_normalised(text))
    return kept
