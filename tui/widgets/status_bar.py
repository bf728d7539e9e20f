"""One line about the engine: model, where it runs, speed and memory."""

from __future__ import annotations

import os

from rich.text import Text
from textual.widgets import Static

from models.info import ModelInfo


def process_tree_rss_mb() -> float | None:
    """Resident memory of this process and its children (the model worker), in MB."""
    try:
        import psutil

        me = psutil.Process(os.getpid())
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / 1e6
    except Exception:  # noqa: BLE001 - a figure on the status bar is never worth a crash
        return None


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text-muted;
        padding: 0 1;
    }
    StatusBar.-failed {
        background: $error 40%;
        color: $text;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.model_text = "model: not started"
        self.demo = False
        self.placement = ""
        self.speed = ""
        self.memory = ""
        self.phase = ""

    def set_loading(self, text: str) -> None:
        self.model_text = text
        self._render_line()

    def set_model(self, info: ModelInfo, load_s: float | None = None) -> None:
        self.model_text = info.name or info.file_name
        self.demo = info.demo
        gpu = f"GPU {info.gpu_layers} layers" if info.gpu_layers else "CPU only"
        self.placement = f"{info.threads} threads · {gpu}"
        self.remove_class("-failed")
        self._render_line()

    def set_failed(self, message: str) -> None:
        self.model_text = f"model failed: {message}"
        self.add_class("-failed")
        self._render_line()

    def set_speed(self, tokens: int, tokens_per_s: float, ttft_s: float | None) -> None:
        ttft = f" · TTFT {ttft_s:.2f}s" if ttft_s is not None else ""
        self.speed = f"{tokens} tok · {tokens_per_s:.1f} tok/s{ttft}"
        self._render_line()

    def set_memory(self, megabytes: float | None) -> None:
        self.memory = f"{megabytes:.0f} MB" if megabytes is not None else ""
        self._render_line()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._render_line()

    def _render_line(self) -> None:
        line = Text()
        line.append(self.model_text, style="bold")
        if self.demo:
            line.append(" DEMO", style="bold reverse")
        for part in (self.placement, self.phase, self.speed, self.memory):
            if part:
                line.append(" │ ")
                line.append(part)
        self.update(line)
