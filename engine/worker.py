"""The child process that holds the language model.

llama.cpp can end a process from C++ (std::terminate on a grammar error, a
segfault, an out-of-memory kill). Running the model here keeps the process
that holds the UI and the clinician's note alive whatever happens; the engine
notices the death, reports it and starts a fresh worker.

Messages are plain tuples over a multiprocessing pipe:
  to the worker:   ("load", LoadSpec) ("run", Job) ("cancel", job_id) ("stop",)
  from the worker: ("loaded", ModelInfo, load_s) ("load-failed", message)
                   ("prompt", job_id, dict) ("token", job_id, text, logprob)
                   ("done", job_id, dict) ("cancelled", job_id, dict)
                   ("error", job_id, kind, message)
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict

from engine.prompts import FittedNote, PromptContext, build_messages, fit_note

if TYPE_CHECKING:
    from models.info import ModelInfo
    from models.llm import LlamaRuntime, LoadSpec

# The messages above, as types. Quoted so that models.llm is still imported only inside the worker.
WorkerCommand: TypeAlias = (
    "tuple[Literal['load'], LoadSpec]"
    " | tuple[Literal['run'], Job]"
    " | tuple[Literal['cancel'], str]"
    " | tuple[Literal['stop']]"
)
WorkerReply: TypeAlias = (
    "tuple[Literal['loaded'], ModelInfo, float]"
    " | tuple[Literal['load-failed'], str]"
    " | tuple[Literal['prompt'], str, dict[str, int]]"
    " | tuple[Literal['token'], str, str, float | None]"
    " | tuple[Literal['done', 'cancelled'], str, dict[str, Any]]"
    " | tuple[Literal['error'], str, str, str]"
)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    note: str
    mode: str
    context: PromptContext
    max_tokens: int
    temperature: float
    seed: int
    grammar_schema: dict[str, Any] | None = None


class _Progress(TypedDict):
    """What the reader thread needs to see of the job being decoded."""

    id: str | None
    event: threading.Event
    generated: int
    generated_at_cancel: int | None


class _DecodeStats(TypedDict):
    prompt_tokens: int
    generated_tokens: int
    first_token_at: float | None
    last_token_at: float | None


def worker_main(conn: Connection) -> None:
    """Entry point of the worker process."""
    inbox: queue.Queue[WorkerCommand] = queue.Queue()
    cancelled: set[str] = set()
    current: _Progress = {"id": None, "event": threading.Event(), "generated": 0, "generated_at_cancel": None}
    lock = threading.Lock()

    def read_commands() -> None:
        # A separate reader lets a cancel arrive while the main thread decodes.
        while True:
            try:
                message: WorkerCommand = conn.recv()
            except (EOFError, OSError):
                inbox.put(("stop",))
                return
            if message[0] == "cancel":
                with lock:
                    cancelled.add(message[1])
                    if current["id"] == message[1] and not current["event"].is_set():
                        current["generated_at_cancel"] = current["generated"]
                        current["event"].set()
            else:
                inbox.put(message)

    threading.Thread(target=read_commands, daemon=True).start()
    runtime: LlamaRuntime | None = None
    while True:
        message = inbox.get()
        if message[0] == "stop":
            break
        if message[0] == "load":
            runtime = _load(conn, message[1])
            continue
        if message[0] == "run":
            job = message[1]
            with lock:
                event = threading.Event()
                if job.id in cancelled:
                    event.set()
                current.update(
                    {
                        "id": job.id,
                        "event": event,
                        "generated": 0,
                        "generated_at_cancel": 0 if event.is_set() else None,
                    }
                )
            if runtime is None:
                conn.send(("error", job.id, "bad-model", "no model is loaded"))
                continue
            _run(conn, runtime, job, event, current)
            with lock:
                current["id"] = None
                cancelled.discard(job.id)
    if runtime is not None:
        runtime.close()


def _load(conn: Connection, spec: LoadSpec) -> LlamaRuntime | None:
    from models.llm import LlamaRuntime, ModelLoadError

    start = time.perf_counter()
    try:
        runtime = LlamaRuntime(spec)
    except (ModelLoadError, ValueError, OSError) as exc:
        conn.send(("load-failed", str(exc)))
        return None
    conn.send(("loaded", runtime.info, time.perf_counter() - start))
    return runtime


def _run(
    conn: Connection, runtime: LlamaRuntime, job: Job, cancel: threading.Event, progress: _Progress
) -> None:
    from models.llm import GenerationAborted, GrammarError, build_grammar

    start = time.perf_counter()
    stats: _DecodeStats = {
        "prompt_tokens": 0,
        "generated_tokens": 0,
        "first_token_at": None,
        "last_token_at": None,
    }

    def timings() -> dict[str, Any]:
        first, last = stats["first_token_at"], stats["last_token_at"]
        return {
            "prompt_tokens": stats["prompt_tokens"],
            "generated_tokens": stats["generated_tokens"],
            "prompt_s": (first - start) if first else time.perf_counter() - start,
            "decode_s": (last - first) if first and last else 0.0,
        }

    try:
        grammar = build_grammar(job.grammar_schema) if job.grammar_schema else None
        prompt_tokens, fitted = _prepare_prompt(runtime, job)
    except (GrammarError, ValueError) as exc:
        conn.send(("error", job.id, "bad-input", str(exc)))
        return
    stats["prompt_tokens"] = len(prompt_tokens)
    conn.send(
        (
            "prompt",
            job.id,
            {
                "prompt_tokens": len(prompt_tokens),
                "n_ctx": runtime.info.n_ctx,
                "note_tokens": fitted.note_tokens,
                "dropped_note_tokens": fitted.dropped_tokens,
            },
        )
    )
    logprobs: list[float] = []
    try:
        for piece in runtime.stream(
            prompt_tokens,
            max_tokens=job.max_tokens,
            cancel=cancel,
            temperature=job.temperature,
            seed=job.seed,
            grammar=grammar,
            want_logprobs=grammar is not None,
        ):
            now = time.perf_counter()
            if stats["first_token_at"] is None:
                stats["first_token_at"] = now
            stats["last_token_at"] = now
            if piece.token >= 0:
                stats["generated_tokens"] += 1
                progress["generated"] = stats["generated_tokens"]
            if piece.logprob is not None:
                logprobs.append(piece.logprob)
            conn.send(("token", job.id, piece.text, piece.logprob))
    except GenerationAborted as aborted:
        at_cancel = progress["generated_at_cancel"]
        after = None if at_cancel is None else stats["generated_tokens"] - at_cancel
        conn.send(("cancelled", job.id, {**timings(), "phase": aborted.phase, "tokens_after_cancel": after}))
        return
    except (GrammarError, RuntimeError, ValueError) as exc:
        conn.send(("error", job.id, "internal", str(exc)))
        return
    result = timings()
    result["stop_reason"] = "length" if stats["generated_tokens"] >= job.max_tokens else "stop"
    result["mean_logprob"] = sum(logprobs) / len(logprobs) if logprobs else None
    conn.send(("done", job.id, result))


def _prepare_prompt(runtime: LlamaRuntime, job: Job) -> tuple[list[int], FittedNote]:
    """Build the prompt, fitting the note into what the context leaves free."""
    frame = runtime.format_prompt(build_messages("", job.context, job.mode))
    frame_tokens = len(runtime.tokenize(frame))
    budget = runtime.info.n_ctx - job.max_tokens - frame_tokens - 8
    if budget < 64:
        raise ValueError(
            f"the model's context ({runtime.info.n_ctx} tokens) leaves no room for the note "
            f"after the instructions ({frame_tokens}) and the answer ({job.max_tokens}); raise --ctx"
        )
    fitted = fit_note(
        job.note,
        budget,
        lambda text: runtime.tokenize(text, special=False, add_bos=False),
        runtime.detokenize,
    )
    prompt = runtime.format_prompt(build_messages(fitted.text, job.context, job.mode))
    return runtime.tokenize(prompt), fitted
