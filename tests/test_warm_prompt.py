"""Warm prompts stay correct: a reused prompt prefix gives the same tokens as a fresh model.

Gemma 3 attends within a sliding window in five of every six layers. After a
long prompt, a cache that keeps only the window has lost the positions a
reused prefix needs; the runtime must notice and read the prompt again.
"""

from __future__ import annotations

import threading

import pytest

from engine.prompts import PromptContext, build_messages
from models.llm import LlamaRuntime, LoadSpec

pytestmark = pytest.mark.timeout(600)

LONG_NOTE = " ".join(
    f"Day {day}: cough persists, RR {18 + day % 5}, HR {80 + day % 20}, temp 37.{day % 9}, "
    f"SpO2 {92 + day % 5}% on air, eating less."
    for day in range(90)
)
SHORT_NOTE = "72-year-old man, fever and cough for 2 days. RR 26, SpO2 91% on air, BP 92/58, HR 118."
RULES = PromptContext(risk_lines=("NEWS2 11 (High)", "qSOFA 2"))
WITH_IMAGE = PromptContext(
    risk_lines=("NEWS2 11 (High)",), image_lines=("consolidation: 41%", "pleural effusion: 12%")
)


def prompt_tokens(runtime: LlamaRuntime, note: str, context: PromptContext) -> list[int]:
    return runtime.tokenize(runtime.format_prompt(build_messages(note, context, "assessment")))


def greedy(runtime: LlamaRuntime, tokens: list[int], count: int = 24) -> list[int]:
    pieces = runtime.stream(tokens, max_tokens=count, cancel=threading.Event(), temperature=0.0)
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
        short_prompt = prompt_tokens(runtime, SHORT_NOTE, context)
        fresh = greedy(runtime, short_prompt)  # nothing cached yet
        long_prompt = prompt_tokens(runtime, LONG_NOTE, context)
        assert len(long_prompt) > 2000
        greedy(runtime, long_prompt, count=4)
        shared = next(i for i, (a, b) in enumerate(zip(long_prompt, short_prompt, strict=False)) if a != b)
        assert shared > 200, "the fixed instructions come first and are shared"
        kept = runtime._reusable_prefix(short_prompt)
        if full_window_cache:
            assert kept == shared, "the full cache serves the whole shared prefix"
        else:
            assert kept == 0, "the window cache lost the prefix's positions: read the prompt again"
        assert greedy(runtime, short_prompt) == fresh
    finally:
        runtime.close()
