"""Helpers shared by the benchmarks: the demo model, a robust summary, and the figures they report."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

RESULTS_ENV = "BENCHMARK_RESULTS"  # `python -m benchmarks` collects the recorded figures from this file


def demo_model_path() -> Path:
    """The embedded demo GGUF, assembled into this machine's cache once."""
    from engine.config import cache_dir
    from models.embedded import embedded_model_path

    os.environ.setdefault("MEDGEMMA_TUI_DATA_DIR", str(Path(tempfile.gettempdir()) / "medgemma-tui-bench"))
    return embedded_model_path(cache_dir())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    return median([a / b for a, b in zip(numerator, denominator, strict=True) if b])


def ratio_line(label: str, numerator: list[float], denominator: list[float], goal: str) -> str:
    paired = [a / b for a, b in zip(numerator, denominator, strict=True) if b]
    return (
        f"{label}: median of paired ratios {median(paired):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in paired)}; goal {goal})"
    )


def record(label: str, value: float, goal: str = "", unit: str = "") -> None:
    """Keep a headline figure for the benchmark report; a no-op when run on its own."""
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as results:
            entry = {"label": label, "value": value, "goal": goal, "unit": unit}
            results.write(json.dumps(entry) + "\n")


def report_ratio(
    label: str, numerator: list[float], denominator: list[float], goal: str, indent: str = ""
) -> None:
    """Print the paired ratio and keep it for the benchmark report."""
    print(indent + ratio_line(label, numerator, denominator, goal))
    record(label, paired_ratio(numerator, denominator), goal)
