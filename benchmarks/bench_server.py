"""The engine on a real llama-server against the local worker, measured side by side.

Same GGUF (the demo model), note, thread count and greedy decoding. Three ratios:

- server-backed ÷ local-worker decode tok/s (what HTTP and SSE cost per token);
- aggregate decode tok/s of 2 concurrent clients ÷ 1 client (what the server's
  parallel slots give a clinic);
- warm ÷ cold time to first token: the same request again, its prompt in the
  slot's cache, against the first one with every slot erased (the server runs with
  `--cache-ram 0`, so an erased slot really starts from nothing).

Needs llama-server from scripts/build_llama_server.sh.

    python benchmarks/bench_server.py [--rounds 3] [--tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llama_server import LlamaServer, llama_server_binary  # noqa: E402

from benchmarks._common import demo_model_path, median, report_ratio  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.events import AnalysisRequest, Finished, Token  # noqa: E402
from engine.server_backend import ServerBackend  # noqa: E402

NOTE = (
    "67-year-old woman, 3 days of productive cough and pleuritic chest pain. "
    "RR 23, SpO2 94% on air, BP 118/74, HR 102, T 38.4, alert. "
    "Write a long, detailed discussion of the assessment and the next steps."
)


async def timed_run(engine: Engine, tokens: int) -> tuple[float, list[float]]:
    """When the request started, and when each token reached the event loop."""
    started = time.perf_counter()
    stamps: list[float] = []
    async for event in engine.run(AnalysisRequest(note=NOTE, mode="text", max_tokens=tokens)):
        if isinstance(event, Token):
            stamps.append(time.perf_counter())
        elif isinstance(event, Finished):
            break
    return started, stamps


def decode_speed(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one short round, to check the benchmark runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.tokens = 1, 16
    binary = llama_server_binary()
    if binary is None:
        sys.exit("llama-server is not built: run scripts/build_llama_server.sh")
    path = demo_model_path()
    slot_dir = tempfile.mkdtemp(prefix="bench-server-slots-")  # llama-server erases slots only with one
    server = LlamaServer(
        binary, path, threads=args.threads, extra_args=("--cache-ram", "0", "--slot-save-path", slot_dir)
    ).wait_ready()
    settings = Settings.resolve(model=str(path), threads=args.threads, ctx=4096)
    local = Engine(settings)
    clients = [Engine(settings, backend=ServerBackend(server.url)) for _ in range(2)]
    print(f"model {path.name} · {args.threads} threads · {args.tokens} tokens · server {server.url}, 2 slots")
    try:
        for engine in (local, *clients):  # load, and warm up both paths once
            await timed_run(engine, 8)
        local_speeds, server_speeds, one_client, two_clients, cold_ttft, warm_ttft = [], [], [], [], [], []
        for round_index in range(args.rounds):
            _, local_stamps = await timed_run(local, args.tokens)
            _, server_stamps = await timed_run(clients[0], args.tokens)
            local_speeds.append(decode_speed(local_stamps))
            server_speeds.append(decode_speed(server_stamps))
            one_client.append(server_speeds[-1])
            both = await asyncio.gather(*(timed_run(client, args.tokens) for client in clients))
            first = min(stamps[0] for _, stamps in both)
            last = max(stamps[-1] for _, stamps in both)
            two_clients.append(sum(len(stamps) - 1 for _, stamps in both) / (last - first))
            server.erase_slots()
            started, stamps = await timed_run(clients[0], 4)
            cold_ttft.append(stamps[0] - started)
            started, stamps = await timed_run(clients[0], 4)
            warm_ttft.append(stamps[0] - started)
            print(
                f"round {round_index + 1}: local {local_speeds[-1]:.1f} tok/s · server {server_speeds[-1]:.1f} tok/s"
                f" · 2 clients {two_clients[-1]:.1f} tok/s together"
                f" · TTFT cold {cold_ttft[-1] * 1000:.0f} ms, warm {warm_ttft[-1] * 1000:.0f} ms"
            )
    finally:
        for engine in (local, *clients):
            await engine.close()
        server.stop()
    print(f"median local {median(local_speeds):.1f} tok/s · median server {median(server_speeds):.1f} tok/s")
    report_ratio("server ÷ local worker decode tok/s", server_speeds, local_speeds, "≈ 1")
    report_ratio("2 concurrent clients ÷ 1 client aggregate tok/s", two_clients, one_client, "> 1")
    report_ratio("server warm ÷ cold time to first token", warm_ttft, cold_ttft, "< 1")


if __name__ == "__main__":
    asyncio.run(main())
