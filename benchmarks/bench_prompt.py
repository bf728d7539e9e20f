"""Prompt reading: warm against cold time to first token, and the thread and batch settings.

Warm: another note was assessed just before, so the fixed instructions at the
start of the prompt are already in the cache and only the case-specific part
(rule lines and note) is read. Cold: the cache is empty. Rounds interleave, so
the ratio holds on a noisy machine.

The sweep loads the model with each thread count and batch size and reports
prompt tok/s and decode tok/s separately: they are bound by different things
(arithmetic for the prompt, memory bandwidth for decoding).

    python benchmarks/bench_prompt.py [--rounds 5] [--sweep] [--quick]
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
    "67-year-old woman, 3 days of productive cough, pleuritic chest pain on the right and fever. "
    "Lives alone, COPD on inhalers, ex-smoker 30 pack-years. Reduced appetite, no vomiting.\n"
    "Obs: RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert.\n"
    "Exam: crackles right base, dull to percussion. No calf swelling."
)
EARLIER_NOTE = (
    "45-year-old man, right lower abdominal pain for 1 day. RR 18, HR 96, BP 128/80, T 37.9, alert."
)
RULES = ("NEWS2 5 (Moderate): RR 23 (2), SpO2 94% (1), HR 102 (1), T 38.4 (1)", "qSOFA 1: RR ≥ 22")


def prompt_for(runtime, note: str) -> list[int]:
    from engine.prompts import PromptContext, build_messages

    return runtime.tokenize(runtime.format_prompt(build_messages(note, PromptContext(RULES), "assessment")))


def first_token_s(runtime, tokens: list[int]) -> float:
    start = time.perf_counter()
    for _ in runtime.stream(tokens, max_tokens=1, cancel=threading.Event()):
        break
    return time.perf_counter() - start


def forget(runtime) -> None:
    runtime.llm.n_tokens = 0
    runtime.llm._ctx.kv_cache_clear()


def warm_against_cold(rounds: int, threads: int) -> None:
    from models.llm import LlamaRuntime, LoadSpec

    runtime = LlamaRuntime(LoadSpec(str(demo_model_path()), threads=threads, n_ctx=4096))
    target, earlier = prompt_for(runtime, NOTE), prompt_for(runtime, EARLIER_NOTE)
    shared = next(i for i, (a, b) in enumerate(zip(target, earlier, strict=False)) if a != b)
    print(f"prompt {len(target)} tokens, {shared} of them the fixed part shared with any other note")
    warm, cold = [], []
    for round_index in range(rounds):
        forget(runtime)
        cold.append(first_token_s(runtime, target))
        forget(runtime)
        first_token_s(runtime, earlier)  # the clinician's previous case
        warm.append(first_token_s(runtime, target))
        print(f"round {round_index + 1}: cold {cold[-1] * 1000:7.1f} ms · warm {warm[-1] * 1000:7.1f} ms")
    runtime.close()
    print(ratio_line("warm ÷ cold time to first token", warm, cold, "≤ 0.3"))
    record("warm ÷ cold time to first token", paired_ratio(warm, cold), "≤ 0.3")


def sweep(quick: bool) -> None:
    import os

    from models.hardware import physical_cores
    from models.llm import LlamaRuntime, LoadSpec

    cores = physical_cores()
    thread_counts = sorted({1, cores, os.cpu_count() or cores})
    batches = [(512, 512)] if quick else [(256, 256), (512, 256), (512, 512), (1024, 512)]
    long_note = " ".join([NOTE] * (1 if quick else 6))
    print(f"\n{'threads':>7} {'n_batch':>7} {'n_ubatch':>8} {'prompt tok/s':>13} {'decode tok/s':>13}")
    for threads in thread_counts:
        for n_batch, n_ubatch in batches:
            spec = LoadSpec(
                str(demo_model_path()), threads=threads, n_ctx=4096, n_batch=n_batch, n_ubatch=n_ubatch
            )
            runtime = LlamaRuntime(spec)
            tokens = prompt_for(runtime, long_note)
            prompt_rates, decode_rates = [], []
            for _ in range(1 if quick else 3):
                forget(runtime)
                start = time.perf_counter()
                stamps = []
                for _piece in runtime.stream(tokens, max_tokens=8 if quick else 64, cancel=threading.Event()):
                    stamps.append(time.perf_counter())
                prompt_rates.append(len(tokens) / (stamps[0] - start))
                if len(stamps) > 1:
                    decode_rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            runtime.close()
            print(
                f"{threads:>7} {n_batch:>7} {n_ubatch:>8} {median(prompt_rates):>13.1f} {median(decode_rates):>13.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="also compare thread counts and batch sizes")
    parser.add_argument("--quick", action="store_true", help="one short round, to check the benchmark runs")
    args = parser.parse_args()
    warm_against_cold(1 if args.quick else args.rounds, args.threads)
    if args.sweep or args.quick:
        sweep(args.quick)


if __name__ == "__main__":
    main()
