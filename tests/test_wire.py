"""The worker protocol: typed messages through real pipes, and a real worker process."""

from __future__ import annotations

import dataclasses
import multiprocessing
import typing

import pytest
from samples import sample_model_info

from engine import wire
from engine.prompts import PromptContext
from engine.worker import _TokenBatcher, worker_main
from models.llm import LoadSpec

pytestmark = pytest.mark.timeout(120)

JOB = wire.Job(
    id="job-1",
    note="Cough for 3 days. RR 22.",
    mode="assessment",
    context=PromptContext(risk_lines=("NEWS2 2",), image_lines=("consolidation: 40%",)),
    max_tokens=64,
    temperature=0.7,
    seed=3,
    grammar_schema={"type": "object", "properties": {"summary": {"type": "string"}}},
)
INFO = sample_model_info(name="m", file_name="m.gguf", file_size=123)
TIMINGS = wire.DecodeTimings(prompt_tokens=40, generated_tokens=12, prompt_s=0.25, decode_s=0.5)

# One of every message, in both directions.
EVERY_MESSAGE: list[object] = [
    wire.Load(LoadSpec(path="/models/m.gguf", threads=2, n_ctx=2048, gpu_layers="auto", demo=True)),
    wire.Run(JOB),
    wire.Cancel("job-1"),
    wire.Stop(),
    wire.Loaded(INFO, 1.5),
    wire.LoadFailed("not a GGUF file"),
    wire.PromptReady("job-1", prompt_tokens=40, n_ctx=4096, note_tokens=9, dropped_note_tokens=0),
    wire.Tokens("job-1", ("Hello", " \x1b[2J", "é")),
    wire.Done("job-1", TIMINGS, "length", -0.42),
    wire.Cancelled("job-1", TIMINGS, "decode", 1),
    wire.Error("job-1", "bad-input", "the note does not fit"),
    wire.Error(None, "internal", "unknown command"),
    wire.WorkerDied(-9),
]


def test_every_message_type_is_covered():
    commands = set(typing.get_args(wire.Command))
    replies = set(typing.get_args(wire.Reply))
    assert {type(message) for message in EVERY_MESSAGE} == commands | replies


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_message_round_trips_through_a_pipe(message):
    sender, receiver = multiprocessing.Pipe()
    try:
        sender.send(message)
        received = receiver.recv()
    finally:
        sender.close()
        receiver.close()
    assert type(received) is type(message)
    assert received == message
    assert dataclasses.is_dataclass(received) and type(received).__dataclass_params__.frozen


def test_worker_flags_unknown_commands_and_keeps_working():
    """The real worker process, without a model: it answers what it can and stops on request."""
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    process = context.Process(target=worker_main, args=(child_conn,), daemon=True)
    process.start()
    child_conn.close()
    try:
        conn.send(("run", JOB))  # the old tuple form is not a command any more
        assert conn.poll(30)
        assert conn.recv() == wire.Error(None, "internal", "unknown command tuple")
        conn.send(wire.Cancel("no-such-job"))  # nothing to cancel: no reply
        conn.send(wire.Run(JOB))
        assert conn.poll(30)
        assert conn.recv() == wire.Error("job-1", "bad-model", "no model is loaded")
        conn.send(wire.Stop())
        process.join(30)
        assert process.exitcode == 0
        assert not conn.poll(0.1) or _eof(conn), "nothing but the end of the pipe after stop"
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
        conn.close()


def _eof(conn) -> bool:
    try:
        conn.recv()
    except EOFError:
        return True
    return False


class _Recorder:
    """Stands in for the worker's pipe, so the batching can be checked without timing a model."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)


def test_pieces_decoded_within_the_window_travel_together_in_order():
    outbox = _Recorder()
    batch = _TokenBatcher(outbox, "job-1", window=3600)  # nothing is ever a window late
    for piece in ["The", " patient", " is", " febrile"]:
        batch.add(piece)
    batch.flush()
    batch.flush()  # nothing pending: nothing sent
    assert outbox.sent == [
        wire.Tokens("job-1", ("The",)),
        wire.Tokens("job-1", (" patient", " is", " febrile")),
    ]


def test_a_model_slower_than_the_window_sends_every_piece_at_once():
    outbox = _Recorder()
    batch = _TokenBatcher(outbox, "job-1", window=0)
    for piece in ["RR", " 26"]:
        batch.add(piece)
        assert outbox.sent[-1] == wire.Tokens("job-1", (piece,)), "sent the moment it was decoded"
    batch.flush()
    assert len(outbox.sent) == 2
