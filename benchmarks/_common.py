"""Helpers shared by the benchmarks: the demo model and a robust summary."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path


def demo_model_path() -> Path:
    """The embedded demo GGUF, assembled into this machine's cache once."""
    from engine.config import cache_dir
    from models.embedded import embedded_model_path

    os.environ.setdefault("MEDGEMMA_TUI_DATA_DIR", str(Path(tempfile.gettempdir()) / "medgemma-tui-bench"))
    return embedded_model_path(cache_dir())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio_line(label: str, numerator: list[float], denominator: list[float], goal: str) -> str:
    paired = [a / b for a, b in zip(numerator, denominator, strict=True) if b]
    return (
        f"{label}: median of paired ratios {median(paired):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in paired)}; goal {goal})"
    )
