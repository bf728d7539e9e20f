"""The deterministic safety layer between the model's answer and the clinician.

Everything here is plain rules: no model, no randomness, the same input gives
the same output. It runs on every answer, so it is kept fast. Each module
says what it catches and what it does not:

* `engine.safety.sentences`: sentence boundaries in clinical text.
* `engine.safety.diagnostic`: a diagnosis stated as fact is reframed
  (`reframe`, `diagnostic_statements`).
* `engine.safety.medications`: drug and dose statements flagged
  (`flag_medications`).
* `engine.safety.disclaimer`: the disclaimer exactly once (`ensure_disclaimer`).
* `engine.safety.prompt_guard`: instruction-like text in a note flagged and
  model control tokens neutralised (`detect_injection`,
  `strip_control_tokens`).
* `engine.safety.evidence`: every finding traced to the note or the image
  (`check_findings`).
* `engine.safety.answer_review`: all of it on one `ModelAnswer` (`review`).

The confidence formula lives in `engine.confidence` and is re-exported here
as `compute_confidence`.

Names load lazily (PEP 562): importing one module of the package, such as
the prompt guard, does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.confidence import compute_confidence
    from engine.safety.advice import flag_contradicting_advice
    from engine.safety.answer_review import Review, check_text, review
    from engine.safety.diagnostic import diagnostic_statements, mentions_disease, reframe
    from engine.safety.disclaimer import ensure_disclaimer
    from engine.safety.evidence import check_findings
    from engine.safety.medications import flag_medications
    from engine.safety.prompt_guard import CONTROL_TOKENS, detect_injection, scan_note, strip_control_tokens
    from engine.safety.results import flag_invented_results
    from engine.safety.sentences import sentence_spans, split_sentences

# public name -> the module that defines it
_SOURCES: dict[str, str] = {
    "sentence_spans": "engine.safety.sentences",
    "split_sentences": "engine.safety.sentences",
    "reframe": "engine.safety.diagnostic",
    "diagnostic_statements": "engine.safety.diagnostic",
    "mentions_disease": "engine.safety.diagnostic",
    "flag_medications": "engine.safety.medications",
    "ensure_disclaimer": "engine.safety.disclaimer",
    "CONTROL_TOKENS": "engine.safety.prompt_guard",
    "detect_injection": "engine.safety.prompt_guard",
    "strip_control_tokens": "engine.safety.prompt_guard",
    "check_findings": "engine.safety.evidence",
    "Review": "engine.safety.answer_review",
    "check_text": "engine.safety.answer_review",
    "flag_contradicting_advice": "engine.safety.advice",
    "flag_invented_results": "engine.safety.results",
    "scan_note": "engine.safety.prompt_guard",
    "review": "engine.safety.answer_review",
    "compute_confidence": "engine.confidence",
}

__all__ = [
    "CONTROL_TOKENS",
    "Review",
    "check_findings",
    "check_text",
    "compute_confidence",
    "detect_injection",
    "diagnostic_statements",
    "ensure_disclaimer",
    "flag_contradicting_advice",
    "flag_invented_results",
    "flag_medications",
    "mentions_disease",
    "reframe",
    "review",
    "scan_note",
    "sentence_spans",
    "split_sentences",
    "strip_control_tokens",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'engine.safety' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
