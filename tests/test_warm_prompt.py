"""Warm prompts stay correct: a reused prompt prefix gives the same tokens as a fresh model.

Gemma 3 attends within a sliding window in five of every six layers. After a
long prompt, a cache that keeps only the window has lost the positions a
reused prefix needs; the runtime must notice and read the prompt again.

llama.cpp's numbers for a position also depend on the shape of the batch it was
read in, so the runtime reuses the cache only at the start of a prompt part,
read in the same batches as before. The answers compared here are whole answers
(greedy, with the DRY sampler on), long enough for a drift to show.
"""

from __future__ import annotations

import threading

import pytest

from engine.prompts import PreparedPrompt, PromptContext, prepare_prompt
from models.llm import LlamaRuntime, LoadSpec, batch_ends

pytestmark = pytest.mark.timeout(600)

LONG_NOTE = " ".join(
    f"Day {day}: cough persists, RR {18 + day % 5}, HR {80 + day % 20}, temp 37.{day % 9}, "
    f"SpO2 {92 + day % 5}% on air, eating less."
    for day in range(90)
)
# Read the same way twice, this note's greedy text answer drifted when the second reading
# reused the cache up to its last token (a batch of one): the case that made this rule.
DRIFTING_NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning. Crackles at the right base."
)
SHORT_NOTE = "72-year-old man, fever and cough for 2 days. RR 26, SpO2 91% on air, BP 92/58, HR 118."
RULES = PromptContext(risk_lines=("NEWS2 11 (High)", "qSOFA 2"))
WITH_IMAGE = PromptContext(
    risk_lines=("NEWS2 11 (High)",), image_lines=("consolidation: 41%", "pleural effusion: 12%")
)


def prepared(
    runtime: LlamaRuntime, note: str, context: PromptContext, mode: str = "assessment"
) -> PreparedPrompt:
    return prepare_prompt(note, context, mode, n_ctx=runtime.info.n_ctx, max_tokens=256, model=runtime)


def greedy(runtime: LlamaRuntime, prompt: PreparedPrompt, count: int = 160) -> list[int]:
    pieces = runtime.stream(
        prompt.tokens, part_starts=prompt.part_starts, max_tokens=count, cancel=threading.Event()
    )
    return [piece.token for piece in pieces]


@pytest.mark.parametrize(
    ("context", "full_window_cache"),
    [(RULES, True), (WITH_IMAGE, True), (RULES, False)],
    ids=["rules", "image-findings", "rules-window-cache"],
)
def test_a_short_note_after_a_long_one_matches_a_fresh_model(gemma_path, context, full_window_cache):
    runtime = LlamaRuntime(
        LoadSpec(str(gemma_path), threads=2, n_ctx=4096, full_window_cache=full_window_cache)
    )
    try:
        short_prompt = prepared(runtime, SHORT_NOTE, context)
        fresh = greedy(runtime, short_prompt)  # nothing cached yet
        long_prompt = prepared(runtime, LONG_NOTE, context)
        assert len(long_prompt.tokens) > 2000
        greedy(runtime, long_prompt, count=4)
        note_start = short_prompt.part_starts[-1]
        assert note_start == long_prompt.part_starts[-1] > 200, "the same instructions and rules come first"
        kept = runtime._reusable_prefix(
            short_prompt.tokens, batch_ends(len(short_prompt.tokens), short_prompt.part_starts)
        )
        if full_window_cache:
            assert kept == note_start, "the full cache serves everything before the note"
        else:
            assert kept == 0, "the window cache lost the prefix's positions: read the prompt again"
        assert greedy(runtime, short_prompt) == fresh
    finally:
        runtime.close()


def test_warm_answers_equal_fresh_ones_whatever_was_read_before(gemma_path):
    """The same note again, after other rules, after another note: each answer is the fresh one."""
    runtime = LlamaRuntime(LoadSpec(str(gemma_path), threads=2, n_ctx=4096))
    other_rules = PromptContext(risk_lines=("NEWS2 3 (Low)",))
    try:
        cases = [
            prepared(runtime, SHORT_NOTE, RULES),
            prepared(runtime, SHORT_NOTE, RULES),  # the same prompt twice
            prepared(runtime, SHORT_NOTE, other_rules),  # the instructions are reused, not the rules
            prepared(runtime, LONG_NOTE[:600], other_rules),  # the rules are reused too
            prepared(runtime, SHORT_NOTE, RULES, mode="text"),  # other instructions: nothing reused
            prepared(runtime, SHORT_NOTE, RULES),
            prepared(runtime, DRIFTING_NOTE, PromptContext(), mode="text"),
            prepared(runtime, DRIFTING_NOTE, PromptContext(), mode="text"),
        ]
        warm, kept = [], []
        for case in cases:
            kept.append(runtime._reusable_prefix(case.tokens, batch_ends(len(case.tokens), case.part_starts)))
            warm.append(greedy(runtime, case, count=200))
        fresh = []
        for case in cases:
            runtime.llm.n_tokens = 0  # forget the cache
            fresh.append(greedy(runtime, case, count=200))
    finally:
        runtime.close()
    assert warm == fresh
    instructions, note_start = cases[0].part_starts
    assert kept == [0, note_start, instructions, cases[2].part_starts[1], 0, 0, 0, cases[7].part_starts[1]]
