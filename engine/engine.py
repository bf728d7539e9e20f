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
JSON field parser, whose fields become the assessment. Free text (text mode,
and an assessment's reasoning and summary) is also cut into sentences, and each
finished sentence goes through the safety layer before it is sent on as
`SentenceChecked`. When the text starts repeating itself, generation is
stopped and the result carries a `repetition` flag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from engine import assessment as assessment_builder
from engine import wire
from engine.audit import AuditTrail
from engine.backend import LocalWorkerBackend, ModelBackend
from engine.config import Settings, cache_dir
from engine.events import (
    AnalysisRequest,
    Cancelled,
    CheckedText,
    Event,
    Failed,
    FieldCompleted,
    FieldDelta,
    Finished,
    ImageAnalysed,
    ModelLoaded,
    ModelLoading,
    NoteScreened,
    PhaseChanged,
    PromptPrepared,
    RiskScored,
    SentenceChecked,
    Timings,
    Token,
)
from engine.jsonstream import JsonFieldStream
from engine.notefacts import read_note
from engine.prompts import PromptContext
from engine.risk import NEWS2_PARAMETERS, risk_from_note
from engine.safety import ensure_disclaimer
from engine.safety.evidence import load_text_similarity
from engine.safety.prompt_guard import scan_note
from engine.schema import Assessment, ImageFinding, ModelAnswer, Risk, SafetyFlag
from engine.text import neutralise
from engine.textcheck import StreamChecks
from models.embedded import DEMO_MODEL_WARNING
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
    def __init__(
        self,
        settings: Settings | None = None,
        backend: ModelBackend | None = None,
        *,
        origin: str = "engine",
        record: bool = True,
    ) -> None:
        self.settings = settings or Settings.resolve()
        # every run is recorded in the history store; `origin` names the front end in the record
        self.audit = AuditTrail(self.settings, origin, enabled=record)
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
                n_batch=self.settings.batch,
                n_ubatch=self.settings.ubatch,
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
            # the lock is taken in arrival order, before anything else is awaited
            if self._run_lock.locked():
                yield PhaseChanged("queued")
            async with self._run_lock:
                async for event in self._recorded(request):
                    yield event
        finally:
            self._open_requests.discard(request.id)
            self._cancelled_requests.discard(request.id)

    async def _recorded(self, request: AnalysisRequest) -> AsyncIterator[Event]:
        """Serve one request in its turn, each event also written to the audit trail."""
        record = await self.audit.begin(request, self._backend.info)
        try:
            if request.id in self._cancelled_requests:
                cancelled = Cancelled("", None)
                record.see(cancelled)
                yield cancelled
                return
            async for event in self._serve(request):
                record.see(event)
                yield event
        finally:
            record.close()

    async def _serve(self, request: AnalysisRequest) -> AsyncIterator[Event]:
        started = time.perf_counter()
        note = neutralise(request.note)
        context = PromptContext()
        scored: tuple[Risk, list[ImageFinding]] | None = None
        image_refusal: str | None = None
        checks_ready = asyncio.ensure_future(asyncio.to_thread(load_text_similarity))
        facts = read_note(note)
        screened = tuple(scan_note(note))
        if screened:
            yield NoteScreened(screened)
        risk = risk_from_note(facts, request.vitals)
        if request.mode == "assessment":
            yield RiskScored(risk)
            image_findings, image_event = await self._analyse_image(request)
            if image_event:
                yield PhaseChanged("image")
                yield image_event
                image_refusal = image_event.error
            scored = risk, image_findings
            context = PromptContext(
                risk_lines=tuple(risk.reasons),
                image_lines=tuple(f"{f.label}: {f.probability:.0%}" for f in image_findings),
            )
        elif request.image_path:
            image_refusal = TEXT_MODE_IMAGE
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
        await checks_ready  # started with the request, so it overlapped loading the model
        self._active_job = job.id
        yield PhaseChanged("prompt")
        pieces: list[str] = []
        fields = JsonFieldStream() if scored else None
        checks = StreamChecks(facts, scored[1] if scored else None, risk.rule_level)
        prompt: wire.PromptReady | None = None
        replies = self._backend.generate(job)
        try:
            async for reply in replies:
                looped = checks.looping and request.id not in self._cancelled_requests
                if isinstance(reply, wire.Cancelled) and looped:  # the loop detector stopped it: a result
                    reply = wire.Done(job.id, reply.timings, "stop", None)
                match reply:
                    case wire.Tokens() if checks.looping:
                        pass  # generation is being stopped: what the model wrote after the loop is dropped
                    case wire.Tokens(pieces=new_pieces):
                        for piece in new_pieces:
                            text = neutralise(piece)
                            if not pieces:
                                yield PhaseChanged("reasoning")
                            pieces.append(text)
                            yield Token(text, len(pieces) - 1)
                            if fields is None:
                                for event in checks.feed("", text):
                                    yield event
                            else:
                                for event in _field_events(fields, text):
                                    yield event
                                    for checked in _checked_field_text(checks, event):
                                        yield checked
                            if checks.looping:
                                self._backend.cancel(job.id)
                                break
                    case wire.PromptReady() as prompt:
                        yield PromptPrepared(
                            prompt_tokens=prompt.prompt_tokens,
                            n_ctx=prompt.n_ctx,
                            note_tokens=prompt.note_tokens,
                            note_truncated=prompt.dropped_note_tokens > 0,
                            dropped_note_tokens=prompt.dropped_note_tokens,
                        )
                    case wire.Cancelled(timings=timings, during=during, tokens_after_cancel=after):
                        for checked in checks.finish_all():  # what is kept on screen is checked too
                            yield checked
                        yield Cancelled("".join(pieces), _timings(timings, started), during, after)
                    case wire.Error(kind=kind, message=message):
                        for checked in checks.finish_all():
                            yield checked
                        yield Failed(message, kind, "".join(pieces), _timings(None, started))
                    case wire.WorkerDied(exit_code=exit_code):
                        for checked in checks.finish_all():
                            yield checked
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
                        async for event in self._finish(
                            request,
                            done,
                            started,
                            pieces,
                            fields,
                            checks,
                            scored,
                            model_info,
                            prompt,
                            image_refusal,
                        ):
                            yield event
        finally:
            if self._active_job == job.id:  # a later request may already be running
                self._active_job = None
            await replies.aclose()  # cancels the job if the consumer stopped reading early

    async def _finish(
        self,
        request: AnalysisRequest,
        done: wire.Done,
        started: float,
        pieces: list[str],
        fields: JsonFieldStream | None,
        checks: StreamChecks,
        scored: tuple[Risk, list[ImageFinding]] | None,
        model_info: ModelInfo,
        prompt: wire.PromptReady | None,
        image_refusal: str | None,
    ) -> AsyncIterator[Event]:
        """The end of a generation: the last sentences, then the checked result in `Finished`."""
        for checked in checks.finish_all():
            yield checked
        timings_ = _timings(done.timings, started)
        raw_text = "".join(pieces)
        limits = _limit_flags(prompt, image_refusal)
        if fields is None or scored is None:
            flags = [*scan_note(checks.note_text), *checks.flags(), *limits]
            if model_info.demo:
                flags.append(
                    SafetyFlag(kind="demo-model", text=model_info.file_name, detail=DEMO_MODEL_WARNING)
                )
            notes = [f"Generated by {model_info.name} ({model_info.quantization}, {model_info.file_name})."]
            if model_info.demo:
                notes.append(DEMO_MODEL_WARNING)
            checked_text = CheckedText(
                text=checks.text(""),
                raw_text=raw_text,
                flags=tuple(flags),
                clinical_notes=ensure_disclaimer(" ".join(notes)),
            )
            yield Finished(raw_text, timings_, model_info, checked=checked_text)
            return
        yield PhaseChanged("checking")
        result = assessment_builder.build(
            stream=fields,
            note=neutralise(request.note),
            risk=scored[0],
            image_findings=scored[1],
            model=model_info,
            timings=timings_,
            mean_logprob=done.mean_logprob,
            hit_token_limit=done.stop_reason == "length",
            note_truncated=prompt is not None and prompt.dropped_note_tokens > 0,
        )
        _add_flags(result, [*limits, *checks.flags(), *_news2_flags(result.risk)])
        yield Finished(raw_text, timings_, model_info, result)

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
        self.audit.close()


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


CHECKED_FIELDS = ("reasoning", "summary")  # the answer's free text, streamed sentence by sentence
TEXT_MODE_IMAGE = "free-text mode does not analyse images; run an assessment to include the image"


def _checked_field_text(checks: StreamChecks, event: Event) -> list[SentenceChecked]:
    """The checked sentences a structured-answer event finished, for the free-text fields."""
    match event:
        case FieldDelta(name=name, text=text) if name in CHECKED_FIELDS:
            return checks.feed(name, text)
        case FieldCompleted(name=name) if name in CHECKED_FIELDS:
            return checks.finish(name)
    return []


def _limit_flags(prompt: wire.PromptReady | None, image_refusal: str | None) -> list[SafetyFlag]:
    """What the result leaves out: an image not analysed, a note cut to fit the context."""
    flags: list[SafetyFlag] = []
    if image_refusal:
        flags.append(SafetyFlag(kind="image-refused", text="image not analysed", detail=image_refusal))
    if prompt is not None and prompt.dropped_note_tokens > 0:
        flags.append(
            SafetyFlag(
                kind="note-truncated",
                text="patient note cut to fit the model's context",
                detail=(
                    f"{prompt.dropped_note_tokens} of {prompt.note_tokens} note tokens were left out "
                    f"(context {prompt.n_ctx} tokens); the model did not read the middle of the note"
                ),
            )
        )
    return flags


def _news2_flags(risk: Risk) -> list[SafetyFlag]:
    """A NEWS2 from some of its parameters is a lower bound, never reassurance."""
    missing = risk.news2.missing
    if risk.news2.score is None or not missing:
        return []
    labels = ", ".join(NEWS2_PARAMETERS.get(name, name) for name in missing)
    scored = len(NEWS2_PARAMETERS) - len(missing)
    return [
        SafetyFlag(
            kind="news2-incomplete",
            text=f"NEWS2 {risk.news2.score} from {scored} of {len(NEWS2_PARAMETERS)} parameters",
            detail=f"incomplete, a lower bound: missing {labels}; each could only add points",
        )
    ]


def _add_flags(result: Assessment, flags: list[SafetyFlag]) -> None:
    """Put `flags` on the assessment; one of a kind already there about the same thing is replaced."""
    replaced = {flag.kind for flag in flags if flag.kind in ("note-truncated", "image-refused")}
    kept = [flag for flag in result.safety.flags if flag.kind not in replaced]
    seen = {(flag.kind, flag.text) for flag in kept}
    kept += [flag for flag in flags if (flag.kind, flag.text) not in seen]
    result.safety.flags = kept


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
