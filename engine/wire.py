"""The messages between the engine and the model worker process.

Every message is a small frozen dataclass, pickled over a multiprocessing pipe,
and both sides dispatch on them with `match`.

To the worker:   Load, Run, Cancel, Stop
From the worker: Loaded, LoadFailed, PromptReady, Tokens, Done, Cancelled, Error

`WorkerDied` is never sent: the engine's side makes it when the pipe closes.
This module stays light to import (no llama.cpp): the worker's `LoadSpec` is
named for the type checker only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from engine.prompts import PromptContext
from models.info import ModelInfo

if TYPE_CHECKING:
    from models.llm import LoadSpec

ErrorKind = Literal["bad-model", "bad-input", "internal"]
StopReason = Literal["stop", "length"]
CancelPoint = Literal["prompt", "decode"]


@dataclass(frozen=True, slots=True)
class Job:
    """One generation: the note, how to prompt for it, and how to sample."""

    id: str
    note: str
    mode: str
    context: PromptContext
    max_tokens: int
    temperature: float
    seed: int
    grammar_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DecodeTimings:
    """The worker's clock for one job."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    prompt_s: float = 0.0  # job start to first generated piece
    decode_s: float = 0.0  # first to last generated piece


# --- to the worker ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    spec: LoadSpec


@dataclass(frozen=True, slots=True)
class Run:
    job: Job


@dataclass(frozen=True, slots=True)
class Cancel:
    job_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command: TypeAlias = Load | Run | Cancel | Stop


# --- from the worker ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    info: ModelInfo
    load_s: float


@dataclass(frozen=True, slots=True)
class LoadFailed:
    message: str


@dataclass(frozen=True, slots=True)
class PromptReady:
    job_id: str
    prompt_tokens: int
    n_ctx: int
    note_tokens: int
    dropped_note_tokens: int


@dataclass(frozen=True, slots=True)
class Tokens:
    """Generated text pieces in order: one, or several when they were ready together."""

    job_id: str
    pieces: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Done:
    job_id: str
    timings: DecodeTimings
    stop_reason: StopReason
    mean_logprob: float | None


@dataclass(frozen=True, slots=True)
class Cancelled:
    job_id: str
    timings: DecodeTimings
    during: CancelPoint
    tokens_after_cancel: int | None  # generated after the worker saw the cancel


@dataclass(frozen=True, slots=True)
class Error:
    job_id: str | None  # None: the command was not a job's (e.g. one the worker does not know)
    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class WorkerDied:
    exit_code: int | None


Reply: TypeAlias = Loaded | LoadFailed | PromptReady | Tokens | Done | Cancelled | Error | WorkerDied
JobReply: TypeAlias = PromptReady | Tokens | Done | Cancelled | Error | WorkerDied
