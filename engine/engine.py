"""The async engine that every front end shares.

    engine = Engine(Settings.resolve())
    async for event in engine.run(AnalysisRequest(note=...)):
        ...

The model lives in a child worker process (see engine.worker). This process
keeps the clinician's note and the event loop; it reads the worker's messages
on a thread and hands them to the loop, so inference never blocks it.
Requests are served one at a time, in order; cancel takes effect within one
token. If the worker dies, the stream ends with `Failed` holding the partial
text, and the next request starts a fresh worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from engine import assessment as assessment_builder
from engine.config import Settings, cache_dir
from engine.events import (
    AnalysisRequest,
    Cancelled,
    Event,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    ModelLoading,
    PhaseChanged,
    PromptPrepared,
    RiskScored,
    Timings,
    Token,
)
from engine.jsonstream import JsonFieldStream
from engine.prompts import PromptContext
from engine.risk import score_risk
from engine.schema import ImageFinding, ModelAnswer
from engine.text import neutralise, neutralise_tree
from engine.vitals import extract_vitals, merge_vitals
from engine.worker import Job, WorkerCommand, WorkerReply, worker_main
from models.info import ModelInfo

MAX_NOTE_CHARS = 200_000
_WORKER_DIED: Final = "worker-died"
# What the reader thread puts in the inbox when the worker's pipe closes: the exit code.
_WorkerDied: TypeAlias = tuple[Literal["worker-died"], int | None]


class _Worker:
    """One worker process and the thread that forwards its messages to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        _start_resource_tracker()
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=worker_main, args=(child_conn,), daemon=True, name="medgemma-worker"
        )
        self.process.start()
        child_conn.close()
        self.inbox: asyncio.Queue[WorkerReply | _WorkerDied] = asyncio.Queue()
        self._loop = loop
        self._send_lock = threading.Lock()
        threading.Thread(target=self._forward, daemon=True, name="medgemma-worker-reader").start()

    def _forward(self) -> None:
        while True:
            try:
                message: WorkerReply = self.conn.recv()
            except (EOFError, OSError):
                self.process.join(timeout=5)
                self._put((_WORKER_DIED, self.process.exitcode))
                return
            self._put(message)

    def _put(self, message: WorkerReply | _WorkerDied) -> None:
        try:
            self._loop.call_soon_threadsafe(self.inbox.put_nowait, message)
        except RuntimeError:  # the loop has closed
            pass

    def send(self, message: WorkerCommand) -> bool:
        with self._send_lock:
            try:
                self.conn.send(message)
                return True
            except (BrokenPipeError, OSError):
                return False

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, timeout: float = 3.0) -> None:
        self.send(("stop",))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


def _start_resource_tracker() -> None:
    """Start multiprocessing's helper with the real stderr.

    Full-screen front ends (Textual) replace sys.stderr with an object whose
    fileno() is -1, and the helper would otherwise be started with it.
    """
    from multiprocessing import resource_tracker

    saved = sys.stderr
    try:
        if sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = saved


class Engine:
    def __init__(self, settings: Settings | None = None, vision: object = None) -> None:
        self.settings = settings or Settings.resolve()
        self.info: ModelInfo | None = None
        self._vision = vision  # engine.imaging.ImageAssist, loaded lazily
        self._worker: _Worker | None = None
        self._load_lock = asyncio.Lock()
        self._run_lock = asyncio.Lock()
        self._active_job: str | None = None
        self._open_requests: set[str] = set()  # queued or being served
        self._cancelled_requests: set[str] = set()

    # --- model ----------------------------------------------------------------

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    async def load(self) -> AsyncIterator[Event]:
        """Start the worker and load the model, unless that is already done."""
        async with self._load_lock:
            if self._worker and self._worker.alive and self.info:
                return
            try:
                path, demo = await asyncio.to_thread(self._model_path)
            except (OSError, ValueError) as exc:
                yield Failed(f"the embedded demo model could not be prepared: {exc}", "bad-model")
                return
            yield ModelLoading(str(path), demo)
            if self._worker is None or not self._worker.alive:
                self._worker = _Worker(asyncio.get_running_loop())
            worker = self._worker
            from models.llm import LoadSpec

            spec = LoadSpec(
                path=str(path),
                threads=self.settings.threads,
                n_ctx=self.settings.ctx,
                gpu_layers=self.settings.gpu_layers,
                demo=demo,
            )
            self.info = None
            worker.send(("load", spec))
            while True:
                message = await worker.inbox.get()
                if message[0] == "loaded":
                    self.info = message[1]
                    yield ModelLoaded(message[1], message[2])
                    return
                if message[0] == "load-failed":
                    yield Failed(message[1], "bad-model")
                    return
                if message[0] == _WORKER_DIED:
                    self._worker = None
                    yield Failed(
                        f"the model process ended while loading {path.name} (exit code {message[1]})",
                        "bad-model",
                    )
                    return

    def _model_path(self) -> tuple[Path, bool]:
        if self.settings.model_path is not None:
            return self.settings.model_path, False
        from models.embedded import embedded_model_path

        return embedded_model_path(cache_dir()), True

    # --- requests -------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the request being served and any queued behind it; each ends with `Cancelled`."""
        self._cancelled_requests |= self._open_requests
        if self._active_job and self._worker:
            self._worker.send(("cancel", self._active_job))

    async def run(self, request: AnalysisRequest) -> AsyncIterator[Event]:
        problem = _check_request(request)
        if problem:
            yield Failed(problem, "bad-input")
            return
        self._open_requests.add(request.id)
        try:
            if self._run_lock.locked():
                yield PhaseChanged("queued")
            async with self._run_lock:
                if request.id in self._cancelled_requests:
                    yield Cancelled("", None)
                    return
                async for event in self._serve(request):
                    yield event
        finally:
            self._open_requests.discard(request.id)
            self._cancelled_requests.discard(request.id)

    async def _serve(self, request: AnalysisRequest) -> AsyncIterator[Event]:
        started = time.perf_counter()
        note = neutralise(request.note)
        context = PromptContext()
        risk = image_findings = None
        if request.mode == "assessment":
            risk = score_risk(merge_vitals(extract_vitals(note), request.vitals))
            yield RiskScored(risk)
            image_findings, image_event = await self._analyse_image(request)
            if image_event:
                yield PhaseChanged("image")
                yield image_event
            context = PromptContext(
                risk_lines=tuple(risk.reasons),
                image_lines=tuple(f"{f.label}: {f.probability:.0%}" for f in image_findings),
            )
        if not (self._worker and self._worker.alive and self.info):
            yield PhaseChanged("loading")
            async for event in self.load():
                yield event
                if isinstance(event, Failed):
                    return
        job = Job(
            id=request.id,
            note=note,
            mode=request.mode,
            context=context,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
            grammar_schema=ModelAnswer.generation_schema() if request.mode == "assessment" else None,
        )
        if request.id in self._cancelled_requests:  # cancelled while the model was loading
            yield Cancelled("", _timings(None, started))
            return
        worker, model_info = self._worker, self.info
        assert worker is not None and model_info is not None  # ready, or loaded just above
        self._active_job = job.id
        yield PhaseChanged("prompt")
        if not worker.send(("run", job)):
            self._worker = None
            yield Failed(
                "the model process is not running; it will be restarted on the next request", _WORKER_DIED
            )
            return
        pieces: list[str] = []
        fields = JsonFieldStream() if request.mode == "assessment" else None
        note_truncated = False
        ended = False
        try:
            while True:
                message = await worker.inbox.get()
                if message[0] == _WORKER_DIED:
                    ended = True
                    self._worker, self.info = None, None
                    yield Failed(
                        f"the model process stopped unexpectedly (exit code {message[1]}); "
                        "the text so far is kept and the next request starts a fresh one",
                        _WORKER_DIED,
                        partial_text="".join(pieces),
                        timings=_timings(None, started),
                    )
                    return
                if len(message) < 2 or message[1] != job.id:
                    continue  # left over from a cancelled request
                ended = message[0] in ("cancelled", "error", "done")
                if message[0] == "token":
                    text = neutralise(message[2])
                    if not pieces:
                        yield PhaseChanged("reasoning")
                    pieces.append(text)
                    yield Token(text, len(pieces) - 1)
                    if fields is not None:
                        for update in fields.feed(text):
                            if update.complete:
                                yield FieldCompleted(update.name, neutralise_tree(update.value))
                                if update.name == "reasoning":
                                    yield PhaseChanged("structuring")
                            elif update.delta:
                                yield FieldDelta(update.name, neutralise(update.delta))
                elif message[0] == "prompt":
                    prompt = message[2]
                    note_truncated = prompt["dropped_note_tokens"] > 0
                    yield PromptPrepared(
                        prompt_tokens=prompt["prompt_tokens"],
                        n_ctx=prompt["n_ctx"],
                        note_tokens=prompt["note_tokens"],
                        note_truncated=note_truncated,
                        dropped_note_tokens=prompt["dropped_note_tokens"],
                    )
                elif message[0] == "cancelled":
                    yield Cancelled(
                        "".join(pieces),
                        _timings(message[2], started),
                        during=message[2].get("phase", ""),
                        tokens_after_cancel=message[2].get("tokens_after_cancel"),
                    )
                    return
                elif message[0] == "error":
                    yield Failed(message[3], message[2], "".join(pieces), _timings(None, started))
                    return
                elif message[0] == "done":
                    timings = _timings(message[2], started)
                    text = "".join(pieces)
                    result = None
                    if fields is not None:
                        assert risk is not None and image_findings is not None  # assessment mode sets them
                        yield PhaseChanged("checking")
                        result = assessment_builder.build(
                            text=text,
                            note=note,
                            risk=risk,
                            image_findings=image_findings,
                            model=model_info,
                            timings=timings,
                            mean_logprob=message[2].get("mean_logprob"),
                            hit_token_limit=message[2].get("stop_reason") == "length",
                            note_truncated=note_truncated,
                        )
                    yield Finished(text, timings, model_info, result)
                    return
        finally:
            self._active_job = None
            if not ended and worker.alive:
                worker.send(("cancel", job.id))  # the consumer stopped reading early

    async def _analyse_image(
        self, request: AnalysisRequest
    ) -> tuple[list[ImageFinding], ImageAnalysed | None]:
        if not request.image_path:
            return [], None
        from engine import imaging

        findings, error = await asyncio.to_thread(imaging.analyse, request.image_path, self.settings)
        return findings, ImageAnalysed(findings, error)

    async def close(self) -> None:
        if self._worker:
            worker, self._worker = self._worker, None
            await asyncio.to_thread(worker.stop)


def _check_request(request: AnalysisRequest) -> str | None:
    if not request.note or not request.note.strip():
        return "the note is empty: type or paste the patient note first"
    if len(request.note) > MAX_NOTE_CHARS:
        return f"the note is too long ({len(request.note):,} characters; the limit is {MAX_NOTE_CHARS:,})"
    if request.max_tokens < 1:
        return "max_tokens must be at least 1"
    return None


def _timings(worker_timings: dict[str, Any] | None, started: float) -> Timings:
    worker_timings = worker_timings or {}
    return Timings(
        prompt_tokens=worker_timings.get("prompt_tokens", 0),
        generated_tokens=worker_timings.get("generated_tokens", 0),
        prompt_s=worker_timings.get("prompt_s", 0.0),
        decode_s=worker_timings.get("decode_s", 0.0),
        total_s=time.perf_counter() - started,
    )
