"""Prompt reading: warm against cold time to first token, and the thread and batch settings.

Cold: the cache is empty. Warm, two ways:
- the next patient: another note was assessed just before, so only the fixed
  instructions at the start of the prompt are cached; the rule lines (from the
  note's own vital signs, as the engine builds them) and the note are read;
- the same patient, note edited: the rule lines are the same, only the note is read.
Rounds interleave, so the ratios hold on a noisy machine.

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
EDITED_NOTE = NOTE.replace("No calf swelling.", "No calf swelling. Sputum green.")


def prompt_for(runtime, note: str):
    """The prompt as the engine builds it, with the starts of its parts."""
    from engine.preview import preview_risk
    from engine.prompts import PromptContext, prepare_prompt

    context = PromptContext(tuple(preview_risk(note, None).reasons))
    return prepare_prompt(
        note, context, "assessment", n_ctx=runtime.info.n_ctx, max_tokens=256, model=runtime
    )


def first_token_s(runtime, prompt) -> float:
    start = time.perf_counter()
    for _ in runtime.stream(
        prompt.tokens, part_starts=prompt.part_starts, max_tokens=1, cancel=threading.Event()
    ):
        break
    return time.perf_counter() - start


def forget(runtime) -> None:
    runtime.llm.n_tokens = 0
    runtime.llm._ctx.kv_cache_clear()


def warm_against_cold(rounds: int, threads: int) -> None:
    from models.llm import LlamaRuntime, LoadSpec

    runtime = LlamaRuntime(LoadSpec(str(demo_model_path()), threads=threads, n_ctx=4096))
    target, earlier, edited = (prompt_for(runtime, note) for note in (NOTE, EARLIER_NOTE, EDITED_NOTE))
    instructions, note_start = target.part_starts
    print(
        f"prompt {len(target.tokens)} tokens: instructions {instructions}, "
        f"rule lines {note_start - instructions}, note {len(target.tokens) - note_start}"
    )
    cold, next_patient, same_patient = [], [], []
    for round_index in range(rounds):
        forget(runtime)
        cold.append(first_token_s(runtime, target))
        forget(runtime)
        first_token_s(runtime, earlier)
        next_patient.append(first_token_s(runtime, target))
        forget(runtime)
        first_token_s(runtime, edited)
        same_patient.append(first_token_s(runtime, target))
        print(
            f"round {round_index + 1}: cold {cold[-1] * 1000:7.1f} ms · next patient "
            f"{next_patient[-1] * 1000:7.1f} ms · same patient, note edited {same_patient[-1] * 1000:7.1f} ms"
        )
    runtime.close()
    total = len(target.tokens)
    for label, warm, read_again in (
        ("warm ÷ cold time to first token, the next patient", next_patient, total - instructions),
        ("warm ÷ cold time to first token, the same patient's edited note", same_patient, total - note_start),
    ):
        print(ratio_line(label, warm, cold, "≤ 0.3"))
        print(f"  floor: the {read_again} of {total} tokens a warm run must read, {read_again / total:.3f}")
        record(label, paired_ratio(warm, cold), "≤ 0.3")


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
            prompt = prompt_for(runtime, long_note)
            prompt_rates, decode_rates = [], []
            for _ in range(1 if quick else 3):
                forget(runtime)
                start = time.perf_counter()
                stamps = []
                for _piece in runtime.stream(
                    prompt.tokens,
                    part_starts=prompt.part_starts,
                    max_tokens=8 if quick else 64,
                    cancel=threading.Event(),
                ):
                    stamps.append(time.perf_counter())
                prompt_rates.append(len(prompt.tokens) / (stamps[0] - start))
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
