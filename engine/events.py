"""The one event protocol between the engine and every front end.

A request is answered by a stream of small frozen dataclasses. Every stream
ends with exactly one terminal event: `Finished`, `Failed` or `Cancelled`.
Front ends draw these events and send `AnalysisRequest`s; they never reach
into the engine's internals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from engine.jsonstream import JsonValue
from engine.schema import DISCLAIMER, Assessment, ImageFinding, Risk, SafetyFlag
from models.info import ModelInfo

Phase = Literal[
    "queued",  # waiting behind another request
    "loading",  # the model is being loaded
    "image",  # the image encoder is running
    "prompt",  # the model reads the prompt
    "reasoning",  # the model writes free reasoning
    "structuring",  # the model writes the structured answer
    "checking",  # safety layer and risk rules
]

Mode = Literal["assessment", "text"]
FailureKind = Literal["bad-model", "bad-input", "worker-died", "internal"]
CancelPoint = Literal["", "prompt", "decode"]  # "": before the model started on it


@dataclass(frozen=True, slots=True)
class Vitals:
    """Vital signs as typed into form fields. None means not given."""

    respiratory_rate: float | None = None
    spo2: float | None = None
    on_oxygen: bool | None = None
    systolic_bp: float | None = None
    heart_rate: float | None = None
    temperature_c: float | None = None
    consciousness: str | None = None  # ACVPU letter or word: A, C, V, P, U
    age: int | None = None
    sex: str | None = None


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    note: str
    image_path: str | None = None
    vitals: Vitals | None = None
    mode: Mode = "assessment"
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass(frozen=True, slots=True)
class Timings:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prompt_s: float = 0.0  # request start to first generated token
    decode_s: float = 0.0  # first to last generated token
    total_s: float = 0.0

    @property
    def ttft_s(self) -> float:
        return self.prompt_s

    @property
    def tokens_per_s(self) -> float:
        if self.generated_tokens < 2 or self.decode_s <= 0:
            return 0.0
        return (self.generated_tokens - 1) / self.decode_s

    def to_dict(self) -> dict[str, int | float]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "time_to_first_token_s": round(self.prompt_s, 4),
            "decode_s": round(self.decode_s, 4),
            "total_s": round(self.total_s, 4),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelLoading:
    path: str
    demo: bool


@dataclass(frozen=True, slots=True)
class ModelLoaded:
    info: ModelInfo
    load_s: float


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    phase: Phase


@dataclass(frozen=True, slots=True)
class PromptPrepared:
    prompt_tokens: int
    n_ctx: int
    note_tokens: int
    note_truncated: bool = False
    dropped_note_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of generated text, already safe to print to a terminal."""

    text: str
    index: int


@dataclass(frozen=True, slots=True)
class FieldDelta:
    """Decoded text of a string field still being written: the reasoning streams live."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class SentenceChecked:
    """A finished sentence of streamed text, through the safety layer: what the clinician reads.

    `raw` is what the model wrote and `before` the spacing before it, both exactly
    as streamed, so a front end can replace the draft it showed with `text`.
    """

    text: str
    raw: str
    changed: bool
    flags: tuple[SafetyFlag, ...] = ()
    field: str = ""  # "" in text mode; "reasoning" or "summary" in an assessment
    before: str = ""


@dataclass(frozen=True, slots=True)
class FieldCompleted:
    """A top-level field of the structured answer finished streaming."""

    name: str
    value: JsonValue


@dataclass(frozen=True, slots=True)
class NoteScreened:
    """Text in the note that reads like instructions to the model, found before it runs.

    The note is still treated as data; these flags also travel into the result.
    """

    flags: tuple[SafetyFlag, ...]


@dataclass(frozen=True, slots=True)
class RiskScored:
    """Rule-based risk, known before the model says anything."""

    risk: Risk


@dataclass(frozen=True, slots=True)
class ImageAnalysed:
    findings: list[ImageFinding]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedText:
    """Text mode's result: the checked text the clinician read, its flags and notes."""

    text: str
    raw_text: str
    flags: tuple[SafetyFlag, ...]
    clinical_notes: str

    def __post_init__(self) -> None:
        if DISCLAIMER not in self.clinical_notes:
            raise ValueError(f"clinical_notes must contain the disclaimer {DISCLAIMER!r}")

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "raw_text": self.raw_text,
            "safety": {"flags": [flag.model_dump(mode="json") for flag in self.flags]},
            "clinical_notes": self.clinical_notes,
        }


@dataclass(frozen=True, slots=True)
class Finished:
    text: str  # as the model wrote it; the checked forms are below
    timings: Timings
    model: ModelInfo
    assessment: Assessment | None = None  # in assessment mode
    checked: CheckedText | None = None  # in text mode


@dataclass(frozen=True, slots=True)
class Failed:
    message: str
    kind: FailureKind
    partial_text: str = ""
    timings: Timings | None = None


@dataclass(frozen=True, slots=True)
class Cancelled:
    partial_text: str
    timings: Timings | None = None
    during: CancelPoint = ""  # where the model was when it stopped
    tokens_after_cancel: int | None = None  # generated after the worker saw the cancel


Event = (
    ModelLoading
    | ModelLoaded
    | PhaseChanged
    | PromptPrepared
    | Token
    | FieldDelta
    | FieldCompleted
    | SentenceChecked
    | NoteScreened
    | RiskScored
    | ImageAnalysed
    | Finished
    | Failed
    | Cancelled
)
