"""Confidence of an assessment: one documented, deterministic formula.

    confidence = clamp01( completeness * ( W_TOKEN     * token_probability
                                         + W_SUPPORT   * supported_share
                                         + W_AGREEMENT * risk_agreement ) )

where

* ``token_probability = exp(mean_token_logprob)``: the geometric mean of the
  probabilities the model gave its own generated tokens (0..1). Missing
  (no log-probabilities available) -> ``NEUTRAL_TOKEN_PROBABILITY``.
* ``supported_share``: the share of key findings that the safety layer could
  trace to the note or the image (0..1). Every unsupported or contradicted
  finding lowers it; so does a finding whose evidence lies in instruction-like
  text in the note (an injected answer cannot vouch for itself), and one that
  states a result the note does not contain. Repeated findings are dropped
  before the share is taken. No findings -> ``NEUTRAL_SUPPORTED_SHARE``.
* ``risk_agreement``: agreement between the model's risk level and the
  rule-based (NEWS2/qSOFA) level: same level ``1.0``, one step apart ``0.6``,
  two steps apart ``0.2``. No rule level or no model level ->
  ``NEUTRAL_RISK_AGREEMENT``.
* ``completeness``: ``1.0`` for a complete answer, ``INCOMPLETE_FACTOR`` when
  the answer was cut short (token limit, cancel, invalid JSON repaired).

The weights sum to 1, so the figure stays in [0, 1] before the clamp; the
clamp only guards against odd inputs (a positive mean log-probability, NaN).
The figure is a transparent heuristic for ranking how much checking an answer
needs, not a calibrated probability that the answer is right.
"""

from __future__ import annotations

import math
from typing import Any

from engine.schema import RISK_ORDER

W_TOKEN = 0.40
W_SUPPORT = 0.35
W_AGREEMENT = 0.25

NEUTRAL_TOKEN_PROBABILITY = 0.5
NEUTRAL_SUPPORTED_SHARE = 0.5
NEUTRAL_RISK_AGREEMENT = 0.7
INCOMPLETE_FACTOR = 0.5

AGREEMENT_BY_DISTANCE = {0: 1.0, 1: 0.6, 2: 0.2}


def _clamp01(value: float) -> float:
    if value != value:  # NaN
        return 0.0
    return max(0.0, min(1.0, value))


def token_probability(mean_token_logprob: float | None) -> float | None:
    """exp(mean log-probability), clamped to [0, 1]; None when unknown."""
    if mean_token_logprob is None or mean_token_logprob != mean_token_logprob:
        return None
    if mean_token_logprob >= 0:
        return 1.0
    return _clamp01(math.exp(max(mean_token_logprob, -700.0)))


def risk_agreement(model_level: str | None, rule_level: str | None) -> float | None:
    """1.0 same level, 0.6 one step apart, 0.2 two apart; None when a level is missing."""
    if model_level not in RISK_ORDER or rule_level not in RISK_ORDER:
        return None
    distance = abs(RISK_ORDER[model_level] - RISK_ORDER[rule_level])
    return AGREEMENT_BY_DISTANCE[distance]


def compute_confidence(
    mean_token_logprob: float | None,
    supported_share: float | None,
    model_level: str | None,
    rule_level: str | None,
    complete: bool,
) -> tuple[float, dict[str, Any]]:
    """The confidence figure and its explanation (see the module docstring)."""
    tok = token_probability(mean_token_logprob)
    share = None if supported_share is None else _clamp01(float(supported_share))
    agree = risk_agreement(model_level, rule_level)

    tok_used = NEUTRAL_TOKEN_PROBABILITY if tok is None else tok
    share_used = NEUTRAL_SUPPORTED_SHARE if share is None else share
    agree_used = NEUTRAL_RISK_AGREEMENT if agree is None else agree
    completeness = 1.0 if complete else INCOMPLETE_FACTOR

    raw = W_TOKEN * tok_used + W_SUPPORT * share_used + W_AGREEMENT * agree_used
    value = round(_clamp01(completeness * raw), 4)

    def part(name: str, used: float, given: float | None) -> str:
        return f"{name} {used:.2f}" + (" (not available, neutral value)" if given is None else "")

    if agree is None:
        levels = "no rule level to compare" if rule_level not in RISK_ORDER else "no model level"
    else:
        levels = f"model {model_level} vs rule {rule_level}"
    explanation = (
        f"Confidence {value:.2f} = "
        f"{W_TOKEN:.2f} x {part('token probability', tok_used, tok)} + "
        f"{W_SUPPORT:.2f} x {part('supported-finding share', share_used, share)} + "
        f"{W_AGREEMENT:.2f} x {part('risk agreement', agree_used, agree)} ({levels})"
        + ("" if complete else f", multiplied by {INCOMPLETE_FACTOR:.2f} because the answer is incomplete")
        + "."
    )
    basis: dict[str, Any] = {
        "token_probability": None if tok is None else round(tok, 4),
        "supported_share": None if share is None else round(share, 4),
        "risk_agreement": agree,
        "weights": {
            "token_probability": W_TOKEN,
            "supported_share": W_SUPPORT,
            "risk_agreement": W_AGREEMENT,
        },
        "values_used": {
            "token_probability": round(tok_used, 4),
            "supported_share": round(share_used, 4),
            "risk_agreement": agree_used,
        },
        "complete": bool(complete),
        "incomplete_factor": 1.0 if complete else INCOMPLETE_FACTOR,
        "explanation": explanation,
    }
    return value, basis
