"""The assessment a clinician reads, and the smaller answer the model writes.

`ModelAnswer` is what the language model is constrained to produce (its JSON
schema becomes a llama.cpp grammar). `Assessment` is the checked result that
front ends show and `analyze --json` prints: the seed's fields with the seed's
types, plus evidence, rule-based risk, safety flags and provenance.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DISCLAIMER = "ASSISTIVE ONLY - requires clinical validation"

RiskLevel = Literal["Low", "Moderate", "High"]
RISK_ORDER: dict[str, int] = {"Low": 0, "Moderate": 1, "High": 2}

# Bounds that keep a looping model finite; the grammar enforces them.
MAX_REASONING_CHARS = 900
MAX_SUMMARY_CHARS = 320
MAX_FINDINGS = 6
MAX_FINDING_CHARS = 140
MAX_EVIDENCE_CHARS = 160
MAX_RECOMMENDATIONS = 5
MAX_RECOMMENDATION_CHARS = 180


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelFinding(_Strict):
    finding: str = Field(max_length=MAX_FINDING_CHARS)
    evidence: str = Field(max_length=MAX_EVIDENCE_CHARS)


class ModelAnswer(_Strict):
    """The model's raw answer. Field order is generation order: reasoning streams first."""

    reasoning: str = Field(max_length=MAX_REASONING_CHARS)
    summary: str = Field(max_length=MAX_SUMMARY_CHARS)
    key_findings: list[ModelFinding] = Field(max_length=MAX_FINDINGS)
    risk_level: RiskLevel
    recommendations: list[str] = Field(max_length=MAX_RECOMMENDATIONS)

    @classmethod
    def generation_schema(cls) -> dict[str, Any]:
        """JSON schema for the grammar: every string and array bounded."""

        def text(max_chars: int) -> dict[str, Any]:
            return {"type": "string", "minLength": 1, "maxLength": max_chars}

        return {
            "type": "object",
            "properties": {
                "reasoning": text(MAX_REASONING_CHARS),
                "summary": text(MAX_SUMMARY_CHARS),
                "key_findings": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_FINDINGS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "finding": text(MAX_FINDING_CHARS),
                            "evidence": text(MAX_EVIDENCE_CHARS),
                        },
                        "required": ["finding", "evidence"],
                        "additionalProperties": False,
                    },
                },
                "risk_level": {"type": "string", "enum": list(RISK_ORDER)},
                "recommendations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_RECOMMENDATIONS,
                    "items": text(MAX_RECOMMENDATION_CHARS),
                },
            },
            "required": ["reasoning", "summary", "key_findings", "risk_level", "recommendations"],
            "additionalProperties": False,
        }


class Finding(BaseModel):
    text: str
    evidence: str  # the exact span of the note (or the image finding) it rests on
    supported: bool
    source: Literal["note", "image", "none"] = "note"
    support_score: float = Field(default=0.0, ge=0.0, le=1.0)
    span: tuple[int, int] | None = None  # character offsets of the evidence in the note
    reason: str = ""


class News2(BaseModel):
    score: int | None = None
    band: RiskLevel | None = None
    points: dict[str, int] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)


class Qsofa(BaseModel):
    score: int | None = None
    points: dict[str, int] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)


class FormNoteConflict(BaseModel):
    """A vital sign, age or sex typed in the form that differs from the note."""

    parameter: str  # "respiratory_rate", ..., "age", "sex"
    label: str  # as a clinician reads it: "RR", "age"
    form: str  # the form's value, as shown
    note: str  # the note's value, as shown (its text)
    used: Literal["note", "form"] | None = None  # the reading scored; None for age and sex
    reason: str = ""


class Risk(BaseModel):
    news2: News2 = Field(default_factory=News2)
    qsofa: Qsofa = Field(default_factory=Qsofa)
    vitals: dict[str, Any] = Field(default_factory=dict)  # the values scored, with their source
    rule_level: RiskLevel | None = None
    model_level: RiskLevel | None = None
    reasons: list[str] = Field(default_factory=list)
    conflicts: list[FormNoteConflict] = Field(default_factory=list)  # form and note disagree


SafetyKind = Literal[
    "diagnostic-language",
    "medication",
    "unsupported-finding",
    "contradicted-finding",
    "prompt-injection",
    "risk-raised",
    "incomplete",
    "note-truncated",
    "demo-model",
    "unsupported-result",
    "advice-contradicts-risk",
    "form-note-conflict",
    # what the result leaves out, and how the output was kept in bounds
    "image-refused",
    "news2-incomplete",
    "repetition",
    "unsupported-claim",
]


class SafetyFlag(BaseModel):
    kind: SafetyKind
    text: str  # the text the flag concerns
    detail: str = ""


class Safety(BaseModel):
    flags: list[SafetyFlag] = Field(default_factory=list)


class ImageFinding(BaseModel):
    label: str
    probability: float = Field(ge=0.0, le=1.0)
    method: str = "image-text similarity (zero-shot), not a diagnosis"


class Assessment(BaseModel):
    # the seed's fields, the seed's types
    summary: str
    key_findings: list[str]
    risk_level: RiskLevel
    confidence: float = Field(ge=0.0, le=1.0)
    recommendations: list[str]
    clinical_notes: str
    # added
    reasoning: str = ""
    findings: list[Finding] = Field(default_factory=list)
    risk: Risk = Field(default_factory=Risk)
    safety: Safety = Field(default_factory=Safety)
    image_findings: list[ImageFinding] = Field(default_factory=list)
    confidence_basis: dict[str, Any] = Field(default_factory=dict)
    complete: bool = True
    prompt_version: str = ""
    model: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("clinical_notes")
    @classmethod
    def _carries_disclaimer(cls, value: str) -> str:
        if DISCLAIMER not in value:
            raise ValueError(f"clinical_notes must contain the disclaimer {DISCLAIMER!r}")
        return value
