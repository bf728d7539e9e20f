"""Run every benchmark and write BENCHMARKS.md: one table of ratios, each with its goal.

    python -m benchmarks [--quick] [--only engine,prompt] [--out BENCHMARKS.md]

Each benchmark runs as its own process, one after another, and records its
headline figures (`benchmarks._common.record`). The machine is described
beside the table, because these figures only mean something on the machine
that made them. `--quick` runs each for a moment, to prove it still works;
its figures are not measurements.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import RESULTS_ENV

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)


BENCHMARKS = [
    Benchmark("engine", "engine ÷ raw llama-cpp-python decode", ("--rounds", "7")),
    Benchmark(
        "structured",
        "grammar-constrained ÷ free decode",
        quick=("--rounds", "1", "--tokens", "16", "--skip-eager"),
    ),
    Benchmark("prompt", "warm ÷ cold time to first token; threads and batch", ("--sweep",)),
    Benchmark("tui", "TUI ÷ headless, bytes per token, keypress latency"),
    Benchmark("link", "bytes over a slow link, echo latency"),
    Benchmark("vision", "INT8 ÷ FP32 image model, file to findings ÷ bare model", ("--iters", "30")),
    Benchmark("memory", "RSS over file size, decode against the bandwidth bound"),
    Benchmark("repetition", "decode cost of the DRY sampler against repetition"),
    Benchmark("server", "model server ÷ local worker, 2 clients ÷ 1"),
    Benchmark("safety", "safety review cost by note size", quick=()),
    Benchmark("vitals", "vital-sign reading cost by note size", quick=()),
]


def machine() -> list[str]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import llama_cpp

    build = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    return [
        f"- CPU: {cpu}; {psutil.cpu_count(logical=False)} physical cores, {os.cpu_count()} logical",
        f"- RAM: {psutil.virtual_memory().total / 2**30:.1f} GiB",
        f"- llama-cpp-python {llama_cpp.__version__}; llama.cpp build: `{build}`",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
    ]


def run(benchmark: Benchmark, quick: bool) -> tuple[list[dict[str, object]], str, float]:
    script = HERE / f"bench_{benchmark.name}.py"
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as results:
        env = {**os.environ, RESULTS_ENV: results.name}
        args = benchmark.quick if quick else benchmark.full
        start = time.perf_counter()
        finished = subprocess.run(
            [sys.executable, str(script), *args], env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        figures = [json.loads(line) for line in results.read().splitlines() if line.strip()]
    problem = ""
    if finished.returncode != 0:
        tail = (finished.stderr or finished.stdout).strip().splitlines()[-1:] or ["no output"]
        problem = f"exit {finished.returncode}: {tail[0]}"
    return figures, problem, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="run each benchmark for a moment (no real figures)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated names: " + ", ".join(b.name for b in BENCHMARKS)
    )
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    chosen = [b for b in BENCHMARKS if not wanted or b.name in wanted]
    rows, problems = [], []
    for benchmark in chosen:
        if not (HERE / f"bench_{benchmark.name}.py").exists():
            continue
        print(f"{benchmark.name}: {benchmark.what} ...", flush=True)
        figures, problem, elapsed = run(benchmark, args.quick)
        print(
            f"  {len(figures)} figures in {elapsed:.0f} s" + (f"; {problem}" if problem else ""), flush=True
        )
        if problem:
            problems.append(f"- `{benchmark.name}`: {problem}")
        for figure in figures:
            value = float(figure["value"])  # type: ignore[arg-type]
            unit = f" {figure['unit']}" if figure.get("unit") else ""
            rows.append(
                f"| {benchmark.name} | {figure['label']} | {value:,.3g}{unit} | {figure['goal'] or '—'} |"
            )
    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m benchmarks{' --quick' if args.quick else ''}` on {today}."
        + (" Quick mode: these figures only show that each benchmark runs." if args.quick else ""),
        "Ratios are measured side by side in one run; absolute times on a shared machine mean little.",
        "",
        *machine(),
        "",
        "| benchmark | figure | value | goal |",
        "|---|---|---|---|",
        *rows,
    ]
    if problems:
        lines += ["", "Benchmarks that failed:", *problems]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
