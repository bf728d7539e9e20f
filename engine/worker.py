"""The child process that holds the language model.

llama.cpp can end a process from C++ (std::terminate on a grammar error, a
segfault, an out-of-memory kill). Running the model here keeps the process
that holds the UI and the clinician's note alive whatever happens; the engine
notices the death, reports it and starts a fresh worker.

The messages in both directions are the dataclasses of `engine.wire`.

The worker never outlives the process that started it: on Linux the kernel
kills it when its parent dies (PR_SET_PDEATHSIG), and everywhere the command
reader ends the process the moment the pipe to the parent closes, even while
llama.cpp is busy reading a long prompt. Ctrl+C and hang-ups from the terminal
reach the whole process group; the worker leaves them to its parent, which
cancels the job and stops the worker itself.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from engine import wire
from engine.prompts import PreparedPrompt, prepare_prompt

if TYPE_CHECKING:
    from models.llm import LlamaRuntime, LoadSpec


@dataclass(slots=True)
class _Progress:
    """What the command reader sees of the job being decoded, under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    job_id: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    generated: int = 0
    generated_at_cancel: int | None = None
    cancelled_ids: set[str] = field(default_factory=set)

    def start(self, job_id: str) -> threading.Event:
        with self.lock:
            self.job_id, self.cancel, self.generated = job_id, threading.Event(), 0
            self.generated_at_cancel = None
            if job_id in self.cancelled_ids:  # cancelled before it started
                self.cancel.set()
                self.generated_at_cancel = 0
            return self.cancel

    def request_cancel(self, job_id: str) -> None:
        with self.lock:
            self.cancelled_ids.add(job_id)
            if self.job_id == job_id and not self.cancel.is_set():
                self.generated_at_cancel = self.generated
                self.cancel.set()

    def finish(self, job_id: str) -> None:
        with self.lock:
            self.job_id = None
            self.cancelled_ids.discard(job_id)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class _Outbox:
    """The pipe to the engine; both the decode thread and the command reader write to it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: wire.Reply) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except OSError:  # BrokenPipeError included: nobody is left to read the reply
                _parent_gone()


class _TokenBatcher:
    """Pieces decoded less than `window` seconds after the last send travel together.

    Each message costs the engine a wake-up, a read and an unpickle, CPU time
    taken from decoding on a small machine. A slow model (slower than one token
    per window) still sends every piece the moment it is decoded.
    """

    def __init__(self, outbox: _Outbox, job_id: str, window: float = 0.1) -> None:
        self._outbox = outbox
        self._job_id = job_id
        self._window = window
        self._pending: list[str] = []
        self._sent_at = float("-inf")

    def add(self, text: str) -> None:
        self._pending.append(text)
        now = time.perf_counter()
        if now - self._sent_at >= self._window:
            self._sent_at = now
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._outbox.send(wire.Tokens(self._job_id, tuple(self._pending)))
            self._pending.clear()


def worker_main(conn: Connection, parent_pid: int | None = None) -> None:
    """Entry point of the worker process; `parent_pid` is the process that started it."""
    _end_with_parent(parent_pid)
    outbox = _Outbox(conn)
    inbox: queue.Queue[wire.Load | wire.Run | wire.Stop] = queue.Queue()
    progress = _Progress()

    def read_commands() -> None:
        # A separate reader lets a cancel arrive while the main thread decodes.
        while True:
            try:
                message: object = conn.recv()
            except (EOFError, OSError):
                _parent_gone()  # the engine stops the worker with Stop, never by closing the pipe
            match message:
                case wire.Cancel(job_id=job_id):
                    progress.request_cancel(job_id)
                case wire.Load() | wire.Run() | wire.Stop():
                    inbox.put(message)
                case _:
                    outbox.send(wire.Error(None, "internal", f"unknown command {type(message).__name__}"))

    threading.Thread(target=read_commands, daemon=True).start()
    runtime: LlamaRuntime | None = None
    while True:
        match inbox.get():
            case wire.Stop():
                break
            case wire.Load(spec=spec):
                if runtime is not None:
                    runtime.close()
                runtime = _load(outbox, spec)
            case wire.Run(job=job):
                cancel = progress.start(job.id)
                if runtime is None:
                    outbox.send(wire.Error(job.id, "bad-model", "no model is loaded"))
                else:
                    _run(outbox, runtime, job, cancel, progress)
                progress.finish(job.id)
    if runtime is not None:
        runtime.close()


def _end_with_parent(parent_pid: int | None) -> None:
    for terminal_signal in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if terminal_signal is not None:
            signal.signal(terminal_signal, signal.SIG_IGN)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        _parent_gone()  # it died before the kernel was told to watch it


def _parent_gone() -> None:
    """The parent has died or let go of the pipe: stop at once, whatever thread is busy."""
    os._exit(0)


def _load(outbox: _Outbox, spec: LoadSpec) -> LlamaRuntime | None:
    from models.llm import LlamaRuntime, ModelLoadError

    start = time.perf_counter()
    try:
        runtime = LlamaRuntime(spec)
    except (ModelLoadError, ValueError, OSError) as exc:
        outbox.send(wire.LoadFailed(str(exc)))
        return None
    outbox.send(wire.Loaded(runtime.info, time.perf_counter() - start))
    return runtime


def _run(
    outbox: _Outbox, runtime: LlamaRuntime, job: wire.Job, cancel: threading.Event, progress: _Progress
) -> None:
    from models.llm import GenerationAborted, GrammarError, build_grammar

    start = time.perf_counter()
    try:
        grammar = build_grammar(job.grammar_schema) if job.grammar_schema else None
        prepared = _prepare_prompt(runtime, job)
    except (GrammarError, ValueError) as exc:
        outbox.send(wire.Error(job.id, "bad-input", str(exc)))
        return
    outbox.send(
        wire.PromptReady(
            job_id=job.id,
            prompt_tokens=len(prepared.tokens),
            n_ctx=runtime.info.n_ctx,
            note_tokens=prepared.note.note_tokens,
            dropped_note_tokens=prepared.note.dropped_tokens,
        )
    )
    generated = 0
    first_at: float | None = None
    last_at: float | None = None
    logprob_sum, logprob_count = 0.0, 0
    batch = _TokenBatcher(outbox, job.id)

    def timings() -> wire.DecodeTimings:
        return wire.DecodeTimings(
            prompt_tokens=len(prepared.tokens),
            generated_tokens=generated,
            prompt_s=(first_at - start) if first_at else time.perf_counter() - start,
            decode_s=(last_at - first_at) if first_at and last_at else 0.0,
        )

    try:
        for piece in runtime.stream(
            prepared.tokens,
            part_starts=prepared.part_starts,
            max_tokens=job.max_tokens,
            cancel=cancel,
            temperature=job.temperature,
            seed=job.seed,
            grammar=grammar,
            want_logprobs=grammar is not None,
        ):
            last_at = time.perf_counter()
            if first_at is None:
                first_at = last_at
            if piece.token >= 0:
                generated += 1
                progress.generated = generated
            if piece.logprob is not None:
                logprob_sum += piece.logprob
                logprob_count += 1
            batch.add(piece.text)
    except GenerationAborted as aborted:
        batch.flush()
        at_cancel = progress.generated_at_cancel
        during: wire.CancelPoint = "prompt" if aborted.phase == "prompt" else "decode"
        after = None if at_cancel is None else generated - at_cancel
        outbox.send(wire.Cancelled(job.id, timings(), during, after))
        return
    except (GrammarError, RuntimeError, ValueError) as exc:
        batch.flush()
        outbox.send(wire.Error(job.id, "internal", str(exc)))
        return
    batch.flush()
    outbox.send(
        wire.Done(
            job_id=job.id,
            timings=timings(),
            stop_reason="length" if generated >= job.max_tokens else "stop",
            mean_logprob=logprob_sum / logprob_count if logprob_count else None,
        )
    )


def _prepare_prompt(runtime: LlamaRuntime, job: wire.Job) -> PreparedPrompt:
    """Build the prompt with the engine's shared rules (engine.prompts.prepare_prompt)."""
    return prepare_prompt(
        job.note, job.context, job.mode, n_ctx=runtime.info.n_ctx, max_tokens=job.max_tokens, model=runtime
    )
