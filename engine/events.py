"""The one event protocol between the engine and every front end.

A request is answered by a stream of small frozen dataclasses. Every stream
ends with exactly one terminal event: `Finished`, `Failed` or `Cancelled`.
Front ends draw these events and send `AnalysisRequest`s; they never reach
into the engine's internals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

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
class ModelInfo:
    """What the runtime knows about the loaded model and where it runs."""

    path: str
    file_name: str
    file_size: int
    architecture: str
    name: str
    size_label: str
    quantization: str
    context_length: int  # trained context from the GGUF metadata
    n_ctx: int  # context the runtime was configured with
    chat_template: bool  # the GGUF carries its own template
    prompt_format: str  # "embedded-template" or "gemma-turns"
    demo: bool  # the embedded non-medical demo model is in use
    threads: int
    gpu_layers: int
    gpu_offload_supported: bool
    gpu_layers_reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "path": self.path,
            "architecture": self.architecture,
            "name": self.name,
            "size_label": self.size_label,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "n_ctx": self.n_ctx,
            "prompt_format": self.prompt_format,
            "demo": self.demo,
            "threads": self.threads,
            "gpu_layers": self.gpu_layers,
            "gpu_offload_supported": self.gpu_offload_supported,
        }


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

    def to_dict(self) -> dict[str, Any]:
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
class FieldCompleted:
    """A top-level field of the structured answer finished streaming."""

    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class RiskScored:
    """Rule-based risk, known before the model says anything."""

    risk: Any  # engine.risk.RiskAssessment


@dataclass(frozen=True, slots=True)
class ImageAnalysed:
    findings: list[Any]  # engine-side image findings (dicts)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    text: str
    timings: Timings
    model: ModelInfo
    assessment: Any = None  # engine.schema.Assessment in assessment mode


@dataclass(frozen=True, slots=True)
class Failed:
    message: str
    kind: str  # "bad-model", "bad-input", "worker-died", "internal"
    partial_text: str = ""
    timings: Timings | None = None


@dataclass(frozen=True, slots=True)
class Cancelled:
    partial_text: str
    timings: Timings | None = None


Event = (
    ModelLoading
    | ModelLoaded
    | PhaseChanged
    | PromptPrepared
    | Token
    | FieldCompleted
    | RiskScored
    | ImageAnalysed
    | Finished
    | Failed
    | Cancelled
)

TERMINAL_EVENTS = (Finished, Failed, Cancelled)
