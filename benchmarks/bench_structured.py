"""Structured (grammar-constrained) decoding against free decoding, one run.

Three ways to decode the same prompt on the same model and threads:
  free       the engine's sampler, no grammar
  lazy       the engine's grammar path: the sampled token is checked alone,
             the grammar filters candidates only when it rejects that token
  eager      llama-cpp-python's own grammar sampling (grammar first in the
             chain, run over the whole 262k vocabulary every step)
Rounds are interleaved; the ratios are what matter on a noisy machine.

    python benchmarks/bench_structured.py [--rounds 3] [--tokens 160]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import demo_model_path, median, paired_ratio, ratio_line, record  # noqa: E402

NOTE = (
    "45-year-old man with right lower abdominal pain for 1 day, nausea, anorexia. "
    "RR 22, SpO2 95% on air, BP 105/70, HR 104, T 38.3, alert and oriented."
)


def timed_stream(pieces) -> tuple[float, int]:
    stamps = [time.perf_counter() for _ in pieces]
    if len(stamps) < 2:
        return 0.0, len(stamps)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--skip-eager", action="store_true", help="leave out llama-cpp-python's own grammar path"
    )
    args = parser.parse_args()

    from llama_cpp import LlamaGrammar

    from engine.prompts import PromptContext, build_messages
    from engine.schema import ModelAnswer
    from models.llm import LlamaRuntime, LoadSpec, build_grammar

    runtime = LlamaRuntime(LoadSpec(str(demo_model_path()), threads=args.threads, n_ctx=2048))
    prompt = runtime.format_prompt(build_messages(NOTE, PromptContext(), "assessment"))
    tokens = runtime.tokenize(prompt)
    grammar = build_grammar(ModelAnswer.generation_schema())
    never = threading.Event()
    print(
        f"{runtime.info.file_name} · {args.threads} threads · up to {args.tokens} tokens · prompt {len(tokens)} tokens"
    )

    free, lazy, eager = [], [], []
    for round_index in range(args.rounds):
        speed, n_free = timed_stream(runtime.stream(tokens, max_tokens=args.tokens, cancel=never))
        free.append(speed)
        speed, n_lazy = timed_stream(
            runtime.stream(tokens, max_tokens=args.tokens, cancel=never, grammar=grammar, want_logprobs=True)
        )
        lazy.append(speed)
        line = f"round {round_index + 1}: free {free[-1]:6.1f} tok/s ({n_free}) · lazy grammar {lazy[-1]:6.1f} tok/s ({n_lazy})"
        if not args.skip_eager:
            runtime.llm.reset()
            stream = runtime.llm.create_completion(
                prompt,
                max_tokens=args.tokens,
                temperature=0.0,
                stream=True,
                grammar=LlamaGrammar.from_string(grammar, verbose=False),
            )
            speed, n_eager = timed_stream(stream)
            eager.append(speed)
            line += f" · eager grammar {eager[-1]:6.1f} tok/s ({n_eager})"
        print(line)
    print(
        f"median free {median(free):.1f} · lazy {median(lazy):.1f}"
        + ("" if args.skip_eager else f" · eager {median(eager):.1f} tok/s")
    )
    print(ratio_line("structured (lazy grammar) ÷ free decode tok/s", lazy, free, "≥ 0.80"))
    record("structured (lazy grammar) ÷ free decode tok/s", paired_ratio(lazy, free), "≥ 0.80")
    if eager:
        print(ratio_line("llama-cpp-python eager grammar ÷ free", eager, free, "for reference"))
    runtime.close()


if __name__ == "__main__":
    main()
