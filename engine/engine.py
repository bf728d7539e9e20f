"""The async engine that every front end shares.

    engine = Engine(Settings.resolve())
    async for event in engine.run(AnalysisRequest(note=...)):
        ...

The engine reaches the model through a `ModelBackend` (engine.backend); by
default llama.cpp runs in a child worker process, so inference never blocks
this process, which keeps the clinician's note and the event loop.
Requests are served one at a time, in order; cancel takes effect within one
token. If the worker dies, the stream ends with `Failed` holding the partial
text, and the next request starts a fresh worker.

Each generated piece is handled once: neutralised on arrival, then fed to the
JSON field parser, whose fields become the assessment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from engine import assessment as assessment_builder
from engine import wire
from engine.backend import LocalWorkerBackend, ModelBackend
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
from engine.schema import ImageFinding, ModelAnswer, Risk
from engine.text import neutralise
from engine.vitals import extract_vitals, merge_vitals
from models.info import ModelInfo

MAX_NOTE_CHARS = 200_000


def _default_backend(settings: Settings) -> ModelBackend:
    """The model server when one is configured, else llama.cpp in a local worker process."""
    if settings.server is None:
        return LocalWorkerBackend()
    from engine.server_backend import ServerBackend

    server = settings.server
    return ServerBackend(
        server.url, api_key=server.api_key, model=server.model, stall_timeout=server.stall_timeout
    )


class Engine:
    def __init__(self, settings: Settings | None = None, backend: ModelBackend | None = None) -> None:
        self.settings = settings or Settings.resolve()
        self._backend: ModelBackend = backend if backend is not None else _default_backend(self.settings)
        self._load_lock = asyncio.Lock()
        self._run_lock = asyncio.Lock()
        self._active_job: str | None = None
        self._open_requests: set[str] = set()  # queued or being served
        self._cancelled_requests: set[str] = set()

    # --- model ----------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        """The loaded model, or None while there is none."""
        return self._backend.info

    @property
    def worker_pid(self) -> int | None:
        """The local worker process, when the model runs in one."""
        return self._backend.pid if isinstance(self._backend, LocalWorkerBackend) else None

    async def load(self) -> AsyncIterator[Event]:
        """Load the model, unless that is already done."""
        async with self._load_lock:
            if self._backend.info is not None:
                return
            try:
                path, demo = await asyncio.to_thread(self._model_path)
            except (OSError, ValueError) as exc:
                yield Failed(f"the embedded demo model could not be prepared: {exc}", "bad-model")
                return
            yield ModelLoading(str(path), demo)
            from models.llm import LoadSpec

            spec = LoadSpec(
                path=str(path),
                threads=self.settings.threads,
                n_ctx=self.settings.ctx,
                gpu_layers=self.settings.gpu_layers,
                demo=demo,
            )
            match await self._backend.load(spec):
                case wire.Loaded(info=info, load_s=load_s):
                    yield ModelLoaded(info, load_s)
                case wire.LoadFailed(message=message):
                    yield Failed(message, "bad-model")
                case wire.WorkerDied(exit_code=exit_code):
                    yield Failed(
                        f"the model process ended while loading {path.name} (exit code {exit_code})",
                        "bad-model",
                    )

    def _model_path(self) -> tuple[Path, bool]:
        if self.settings.model_path is not None:
            return self.settings.model_path, False
        from models.embedded import embedded_model_path

        return embedded_model_path(cache_dir()), True

    # --- requests -------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the request being served and any queued behind it; each ends with `Cancelled`."""
        self._cancelled_requests |= self._open_requests
        if self._active_job:
            self._backend.cancel(self._active_job)

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
        scored: tuple[Risk, list[ImageFinding]] | None = None
        if request.mode == "assessment":
            risk = score_risk(merge_vitals(extract_vitals(note), request.vitals))
            yield RiskScored(risk)
            image_findings, image_event = await self._analyse_image(request)
            if image_event:
                yield PhaseChanged("image")
                yield image_event
            scored = risk, image_findings
            context = PromptContext(
                risk_lines=tuple(risk.reasons),
                image_lines=tuple(f"{f.label}: {f.probability:.0%}" for f in image_findings),
            )
        if self._backend.info is None:
            yield PhaseChanged("loading")
            async for event in self.load():
                yield event
                if isinstance(event, Failed):
                    return
        job = wire.Job(
            id=request.id,
            note=note,
            mode=request.mode,
            context=context,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
            grammar_schema=ModelAnswer.generation_schema() if scored else None,
        )
        if request.id in self._cancelled_requests:  # cancelled while the model was loading
            yield Cancelled("", _timings(None, started))
            return
        model_info = self._backend.info
        if model_info is None:  # lost between loading and now
            yield Failed(
                "the model process is not running; the next request starts a fresh one", "worker-died"
            )
            return
        self._active_job = job.id
        yield PhaseChanged("prompt")
        pieces: list[str] = []
        fields = JsonFieldStream() if scored else None
        note_truncated = False
        replies = self._backend.generate(job)
        try:
            async for reply in replies:
                match reply:
                    case wire.Tokens(pieces=new_pieces):
                        for piece in new_pieces:
                            text = neutralise(piece)
                            if not pieces:
                                yield PhaseChanged("reasoning")
                            pieces.append(text)
                            yield Token(text, len(pieces) - 1)
                            if fields is not None:
                                for event in _field_events(fields, text):
                                    yield event
                    case wire.PromptReady() as prompt:
                        note_truncated = prompt.dropped_note_tokens > 0
                        yield PromptPrepared(
                            prompt_tokens=prompt.prompt_tokens,
                            n_ctx=prompt.n_ctx,
                            note_tokens=prompt.note_tokens,
                            note_truncated=note_truncated,
                            dropped_note_tokens=prompt.dropped_note_tokens,
                        )
                    case wire.Cancelled(timings=timings, during=during, tokens_after_cancel=after):
                        yield Cancelled("".join(pieces), _timings(timings, started), during, after)
                    case wire.Error(kind=kind, message=message):
                        yield Failed(message, kind, "".join(pieces), _timings(None, started))
                    case wire.WorkerDied(exit_code=exit_code):
                        kept = (
                            "the text so far is kept" if pieces else "it stopped before generating any text"
                        )
                        yield Failed(
                            f"the model process stopped unexpectedly (exit code {exit_code}); "
                            f"{kept}, and the next request starts a fresh one",
                            "worker-died",
                            partial_text="".join(pieces),
                            timings=_timings(None, started),
                        )
                    case wire.Done() as done:
                        timings_ = _timings(done.timings, started)
                        result = None
                        if fields is not None and scored is not None:
                            yield PhaseChanged("checking")
                            result = assessment_builder.build(
                                stream=fields,
                                note=note,
                                risk=scored[0],
                                image_findings=scored[1],
                                model=model_info,
                                timings=timings_,
                                mean_logprob=done.mean_logprob,
                                hit_token_limit=done.stop_reason == "length",
                                note_truncated=note_truncated,
                            )
                        yield Finished("".join(pieces), timings_, model_info, result)
        finally:
            self._active_job = None
            await replies.aclose()  # cancels the job if the consumer stopped reading early

    async def _analyse_image(
        self, request: AnalysisRequest
    ) -> tuple[list[ImageFinding], ImageAnalysed | None]:
        if not request.image_path:
            return [], None
        from engine import imaging

        findings, error = await asyncio.to_thread(imaging.analyse, request.image_path, self.settings)
        return findings, ImageAnalysed(findings, error)

    async def close(self) -> None:
        await self._backend.close()


def _field_events(fields: JsonFieldStream, text: str) -> list[Event]:
    """What one already neutralised piece of the answer adds to the structured fields."""
    events: list[Event] = []
    for update in fields.feed(text):
        if update.complete:
            events.append(FieldCompleted(update.name, update.value))
            if update.name == "reasoning":
                events.append(PhaseChanged("structuring"))
        elif update.delta:
            events.append(FieldDelta(update.name, update.delta))
    return events


def _check_request(request: AnalysisRequest) -> str | None:
    if not request.note or not request.note.strip():
        return "the note is empty: type or paste the patient note first"
    if len(request.note) > MAX_NOTE_CHARS:
        return f"the note is too long ({len(request.note):,} characters; the limit is {MAX_NOTE_CHARS:,})"
    if request.max_tokens < 1:
        return "max_tokens must be at least 1"
    return None


def _timings(worker_timings: wire.DecodeTimings | None, started: float) -> Timings:
    measured = worker_timings or wire.DecodeTimings()
    return Timings(
        prompt_tokens=measured.prompt_tokens,
        generated_tokens=measured.generated_tokens,
        prompt_s=measured.prompt_s,
        decode_s=measured.decode_s,
        total_s=time.perf_counter() - started,
    )
