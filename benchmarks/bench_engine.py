"""Engine decode speed against raw llama-cpp-python, interleaved in one run.

Same GGUF, prompt, thread count and seed, greedy decoding. The engine runs the
model in its worker process and sends tokens across a pipe to the asyncio loop.
Two baselines run in this process, interleaved with it, the engine going
first in every other round:

- in-process: the engine's own runtime (`LlamaRuntime.stream`, the same sampler
  chain with DRY against repetition). Engine ÷ in-process is what the process
  boundary and the event protocol cost: the goal.
- raw: `Llama.create_completion(stream=True)`, llama-cpp-python's own loop,
  whose sampler has no DRY. For reference.

It also prints the CPU time this (the parent) process spends per engine token:
on a machine whose cores llama.cpp keeps busy, that time is taken from decoding,
and unlike tok/s it hardly depends on what else the machine is doing.

    python benchmarks/bench_engine.py [--rounds 6] [--tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import demo_model_path, median, paired_ratio, ratio_line, record  # noqa: E402

PROMPT_NOTE = (
    "67-year-old woman, 3 days of productive cough and pleuritic chest pain. "
    "RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert. "
    "Write a long, detailed discussion of the assessment and the next steps."
)


def in_process_round(runtime, prompt_tokens: list[int], tokens: int, seed: int) -> float:
    import threading

    runtime.llm.n_tokens = 0
    stamps = [
        time.perf_counter()
        for _ in runtime.stream(prompt_tokens, max_tokens=tokens, cancel=threading.Event(), seed=seed)
    ]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def raw_round(llm, prompt: str, tokens: int, seed: int) -> tuple[float, int]:
    stamps = []
    llm.reset()
    for _ in llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, seed=seed, stream=True):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


async def engine_round(engine, tokens: int, seed: int) -> tuple[float, int, float]:
    """Decode tok/s, tokens, and this process's CPU seconds per token while decoding."""
    from engine.events import AnalysisRequest, Finished, Token

    stamps = []
    cpu_at_first = cpu_at_last = 0.0
    async for event in engine.run(
        AnalysisRequest(note=PROMPT_NOTE, mode="text", max_tokens=tokens, seed=seed)
    ):
        if isinstance(event, Token):
            stamps.append(time.perf_counter())  # when the token reached the event loop
            cpu_at_last = time.process_time()
            if len(stamps) == 1:
                cpu_at_first = cpu_at_last
        elif isinstance(event, Finished):
            break
    span = len(stamps) - 1
    return span / (stamps[-1] - stamps[0]), len(stamps), (cpu_at_last - cpu_at_first) / span


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one short round, to check the benchmark runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.tokens = 1, 16

    import llama_cpp

    from engine.config import Settings
    from engine.engine import Engine
    from engine.prompts import PromptContext, build_messages
    from models.llm import LlamaRuntime, LoadSpec

    path = demo_model_path()
    engine = Engine(Settings.resolve(model=str(path), threads=args.threads, ctx=2048))
    async for _ in engine.load():
        pass
    # The same prompt text the engine builds, and the same loader settings.
    runtime = LlamaRuntime(LoadSpec(str(path), threads=args.threads, n_ctx=2048))
    prompt = runtime.format_prompt(build_messages(PROMPT_NOTE, PromptContext(), "text"))
    llm = runtime.llm
    print(
        f"model {path.name} · {args.threads} threads · {args.tokens} tokens · llama-cpp-python {llama_cpp.__version__}"
    )
    prompt_tokens = runtime.tokenize(prompt)
    raw_speeds, in_process_speeds, engine_speeds, parent_cpu = [], [], [], []
    for round_index in range(args.rounds):
        # Odd rounds run the engine first: drift on the machine (clock speed, other
        # jobs) then cancels out instead of always falling on the same side.
        if round_index % 2:
            eng, eng_n, cpu_per_token = await engine_round(engine, args.tokens, seed=round_index)
            local = in_process_round(runtime, prompt_tokens, args.tokens, seed=round_index)
            raw, raw_n = raw_round(llm, prompt, args.tokens, seed=round_index)
        else:
            raw, raw_n = raw_round(llm, prompt, args.tokens, seed=round_index)
            local = in_process_round(runtime, prompt_tokens, args.tokens, seed=round_index)
            eng, eng_n, cpu_per_token = await engine_round(engine, args.tokens, seed=round_index)
        raw_speeds.append(raw)
        in_process_speeds.append(local)
        engine_speeds.append(eng)
        parent_cpu.append(cpu_per_token)
        print(
            f"round {round_index + 1}: raw {raw:6.1f} tok/s ({raw_n} tokens) · in-process {local:6.1f} · "
            f"engine {eng:6.1f} tok/s ({eng_n} tokens, parent CPU {cpu_per_token * 1e6:.0f} µs/token)"
        )
    await engine.close()
    print(f"median raw {median(raw_speeds):.1f} tok/s · median engine {median(engine_speeds):.1f} tok/s")
    print(f"median parent CPU per engine token: {median(parent_cpu) * 1e6:.0f} µs")
    print(ratio_line("engine ÷ in-process runtime decode tok/s", engine_speeds, in_process_speeds, "≥ 0.99"))
    print(
        ratio_line("engine ÷ raw create_completion decode tok/s", engine_speeds, raw_speeds, "for reference")
    )
    record(
        "engine ÷ in-process runtime decode tok/s", paired_ratio(engine_speeds, in_process_speeds), "≥ 0.99"
    )
    record(
        "engine ÷ raw create_completion decode tok/s",
        paired_ratio(engine_speeds, raw_speeds),
        "for reference",
    )
    record("parent CPU per engine token", median(parent_cpu) * 1e6, "for reference", "µs")


if __name__ == "__main__":
    asyncio.run(main())
