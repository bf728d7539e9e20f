"""The engine on the real gemma-3-270m model, in its real worker process."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import pytest
from conftest import collect

from engine.config import Settings
from engine.engine import Engine
from engine.events import (
    AnalysisRequest,
    Cancelled,
    Failed,
    Finished,
    ModelLoaded,
    ModelLoading,
    PhaseChanged,
    PromptPrepared,
    SentenceChecked,
    Token,
)
from engine.safety import split_sentences
from engine.schema import DISCLAIMER

pytestmark = pytest.mark.timeout(600)

PNEUMONIA_NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning. Crackles at the right base."
)
NOTE = (
    "58-year-old woman with a dry cough for 2 weeks. No fever. Uses cetirizine. "
    "RR 16, SpO2 97% on room air, BP 128/82, HR 78, temp 36.8 C, alert."
)


def text_request(note: str = NOTE, max_tokens: int = 48, **kwargs) -> AnalysisRequest:
    return AnalysisRequest(note=note, mode="text", max_tokens=max_tokens, **kwargs)


@pytest.fixture
async def engine():
    engine = Engine(Settings.resolve(threads=2, ctx=4096))
    yield engine
    await engine.close()


async def test_streams_many_tokens_in_order(engine):
    events = await collect(engine.run(text_request(max_tokens=40)))
    assert isinstance(events[0], PhaseChanged)
    loading = [e for e in events if isinstance(e, ModelLoading)]
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert loading and loading[0].demo is True
    assert loaded and loaded[0].info.architecture == "gemma3" and loaded[0].info.demo
    assert loaded[0].info.prompt_format == "gemma-turns"
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) >= 20
    assert [t.index for t in tokens] == list(range(len(tokens)))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.text == "".join(t.text for t in tokens)
    assert finished.timings.generated_tokens >= len(tokens) - 1
    assert finished.timings.tokens_per_s > 0 and finished.timings.ttft_s > 0
    assert sum(isinstance(e, (Finished, Failed, Cancelled)) for e in events) == 1


async def test_model_loads_once_and_is_reused(engine):
    first = await collect(engine.run(text_request(max_tokens=4)))
    second = await collect(engine.run(text_request(max_tokens=4)))
    assert any(isinstance(e, ModelLoaded) for e in first)
    assert not any(isinstance(e, (ModelLoading, ModelLoaded)) for e in second)
    assert isinstance(second[-1], Finished)


async def test_cancel_mid_stream_then_next_request_succeeds(engine):
    seen: list[Token] = []
    async for event in engine.run(text_request(max_tokens=400)):
        if isinstance(event, Token):
            seen.append(event)
            if len(seen) == 5:
                engine.cancel()
        last = event
    assert isinstance(last, Cancelled)
    assert last.during == "decode"
    # cancel takes effect within one token: at most the token already in flight follows
    assert last.tokens_after_cancel is not None and last.tokens_after_cancel <= 1
    assert len(seen) >= 5 and last.timings.generated_tokens < 400
    assert last.partial_text == "".join(t.text for t in seen)
    after = await collect(engine.run(text_request(max_tokens=8)))
    assert isinstance(after[-1], Finished) and after[-1].timings.generated_tokens >= 1


async def test_cancel_during_a_long_prompt_stops_it(engine):
    await collect(engine.load())
    long_note = " ".join(
        f"Day {i}: observations stable, patient comfortable, eating well." for i in range(260)
    )
    events = []
    async for event in engine.run(text_request(note=long_note, max_tokens=8)):
        events.append(event)
        if isinstance(event, PromptPrepared):
            assert event.prompt_tokens > 3000
            await asyncio.sleep(0.3)
            engine.cancel()
    assert isinstance(events[-1], Cancelled)
    assert events[-1].during == "prompt"  # llama.cpp's abort callback stopped the prompt pass
    assert not any(isinstance(e, Token) for e in events)
    after = await collect(engine.run(text_request(max_tokens=4)))
    assert isinstance(after[-1], Finished)


async def test_consumer_that_stops_reading_cancels_its_request(engine):
    stream = engine.run(text_request(max_tokens=400))
    count = 0
    async for event in stream:
        count += isinstance(event, Token)
        if count == 3:
            break
    await stream.aclose()
    after = await collect(engine.run(text_request(max_tokens=6)))
    assert isinstance(after[-1], Finished)
    assert after[-1].timings.generated_tokens <= 6


async def test_concurrent_requests_are_serialised(engine):
    order: list[str] = []

    async def consume(name: str) -> list:
        events = []
        async for event in engine.run(text_request(max_tokens=12)):
            events.append(event)
            if isinstance(event, Token):
                order.append(name)
        return events

    first, second = await asyncio.gather(consume("a"), consume("b"))
    assert isinstance(first[-1], Finished) and isinstance(second[-1], Finished)
    assert PhaseChanged("queued") in second
    assert order == sorted(order), "tokens of the two requests interleaved"
    assert order.count("a") >= 5 and order.count("b") >= 5


async def test_killed_worker_gives_error_with_partial_text_then_recovers(engine):
    seen: list[str] = []
    async for event in engine.run(text_request(max_tokens=400)):
        if isinstance(event, Token):
            seen.append(event.text)
            if len(seen) == 4:
                os.kill(engine.worker_pid, signal.SIGKILL)
        last = event
    assert isinstance(last, Failed)
    assert last.kind == "worker-died"
    assert "stopped unexpectedly" in last.message
    assert last.partial_text.startswith("".join(seen[:4]))
    after = await collect(engine.run(text_request(max_tokens=6)))
    assert any(isinstance(e, ModelLoaded) for e in after), "a fresh worker loads the model again"
    assert isinstance(after[-1], Finished)


@pytest.mark.parametrize("note", ["", "   \n\t "])
async def test_empty_note_is_refused_clearly(engine, note):
    events = await collect(engine.run(AnalysisRequest(note=note)))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].kind == "bad-input" and "empty" in events[0].message


async def test_huge_note_is_refused_with_its_size(engine):
    events = await collect(engine.run(AnalysisRequest(note="x" * 200_001)))
    assert isinstance(events[-1], Failed) and "200,001" in events[-1].message


async def test_note_longer_than_the_context_is_truncated_and_says_so(engine):
    note = "Start: fever. " + "Ward round note, nothing new. " * 900 + "End: SpO2 91%."
    events = await collect(engine.run(text_request(note=note, max_tokens=4)))
    prepared = next(e for e in events if isinstance(e, PromptPrepared))
    assert prepared.note_truncated
    assert prepared.dropped_note_tokens > 0 and prepared.note_tokens > prepared.dropped_note_tokens
    assert prepared.prompt_tokens + 4 <= prepared.n_ctx
    assert isinstance(events[-1], Finished)
    truncated = [flag for flag in events[-1].checked.flags if flag.kind == "note-truncated"]
    assert truncated and f"{prepared.dropped_note_tokens} of {prepared.note_tokens} note tokens" in (
        truncated[0].detail
    )


async def test_text_mode_sends_checked_sentences_and_a_checked_result(engine):
    events = await collect(engine.run(text_request(max_tokens=80)))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.checked is not None
    sentences = [e for e in events if isinstance(e, SentenceChecked)]
    assert sentences and all(s.field == "" for s in sentences)
    assert finished.checked.text == "".join(s.before + s.text for s in sentences).strip()
    assert finished.checked.raw_text == finished.text
    assert DISCLAIMER in finished.checked.clinical_notes
    assert "demo-model" in {flag.kind for flag in finished.checked.flags}


async def test_an_image_the_engine_refuses_is_a_flag_on_the_assessment(engine, tmp_path):
    from PIL import Image

    image = tmp_path / "chest.png"
    Image.new("L", (64, 64), 128).save(image)  # a real image; no image model is installed here
    request = AnalysisRequest(note=NOTE, image_path=str(image), max_tokens=48)
    events = await collect(engine.run(request))
    assessment = events[-1].assessment
    refused = [flag for flag in assessment.safety.flags if flag.kind == "image-refused"]
    assert refused and "no image model is installed" in refused[0].detail


async def test_a_looping_model_is_stopped_and_no_sentence_shows_more_than_twice(smollm2_path):
    """SmolLM2 in text mode on a pneumonia note loops on one sentence at temperature 0."""
    engine = Engine(Settings.resolve(model=str(smollm2_path), threads=1, ctx=2048))
    try:
        events = await collect(engine.run(text_request(note=PNEUMONIA_NOTE, max_tokens=400)), limit=560)
    finally:
        await engine.close()
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.checked is not None
    shown = [e.raw for e in events if isinstance(e, SentenceChecked)]
    counts = Counter(" ".join(s.lower().split()) for s in shown)
    assert shown and max(counts.values()) <= 2, counts.most_common(3)
    for sentence in split_sentences(finished.checked.text):
        assert finished.checked.text.count(sentence) <= 2, sentence


def _bad_model(tmp_path, kind: str):
    path = tmp_path / f"{kind}.gguf"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "truncated":
        with open(path, "wb") as out, open(_gemma(), "rb") as source:
            out.write(source.read(50_000_000))
    elif kind == "garbage-header":
        path.write_bytes(b"GGUF" + os.urandom(4096))
    return path


def _gemma():
    from engine.config import cache_dir
    from models.embedded import embedded_model_path

    return embedded_model_path(cache_dir())


@pytest.mark.parametrize(
    "kind, words",
    [
        ("missing", "not found"),
        ("directory", "directory"),
        ("empty", "empty"),
        ("text", "not a GGUF"),
        ("truncated", "truncated"),
        ("garbage-header", "GGUF"),
    ],
)
async def test_bad_model_file_gives_a_clear_error_and_the_engine_survives(tmp_path, kind, words):
    engine = Engine(Settings.resolve(model=str(_bad_model(tmp_path, kind))))
    try:
        events = await collect(engine.run(text_request(max_tokens=4)))
        assert isinstance(events[-1], Failed)
        assert events[-1].kind == "bad-model"
        assert words in events[-1].message
        # the engine keeps working: the same request is answered again, just as clearly
        again = await collect(engine.run(text_request(max_tokens=4)))
        assert isinstance(again[-1], Failed) and again[-1].kind == "bad-model"
    finally:
        await engine.close()


async def test_cancel_also_stops_requests_waiting_in_the_queue(engine):
    await collect(engine.load())

    async def consume(request, cancel_after: int | None = None):
        events, tokens = [], 0
        async for event in engine.run(request):
            events.append(event)
            tokens += isinstance(event, Token)
            if cancel_after is not None and tokens == cancel_after:
                engine.cancel()
        return events

    running, queued = await asyncio.gather(
        consume(text_request(max_tokens=300), cancel_after=3),
        consume(text_request(max_tokens=300)),
    )
    assert isinstance(running[-1], Cancelled)
    assert PhaseChanged("queued") in queued and isinstance(queued[-1], Cancelled)
    assert not any(isinstance(e, Token) for e in queued)
    after = await collect(engine.run(text_request(max_tokens=4)))
    assert isinstance(after[-1], Finished)
