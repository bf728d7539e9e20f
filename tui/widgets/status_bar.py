"""One line about the engine: model, where it runs, phase, speed and memory.

Each part is its own fixed-width label, so a new tokens/s figure repaints a
few dozen cells, not the whole line (this matters over slow SSH links).
"""

from __future__ import annotations

import os
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from engine import ModelInfo


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


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text-muted;
    }
    StatusBar Label {
        padding: 0 1;
        height: 1;
    }
    StatusBar #status-model {
        text-style: bold;
        color: $text;
        width: auto;
        max-width: 40;
    }
    StatusBar #status-demo {
        width: auto;
        text-style: bold reverse;
        color: $warning;
        display: none;
    }
    StatusBar.-demo #status-demo {
        display: block;
    }
    StatusBar #status-placement { width: auto; }
    StatusBar #status-phase { width: 1fr; }
    StatusBar #status-speed { width: 30; }
    StatusBar #status-memory { width: 9; }
    StatusBar.-failed {
        background: $error 40%;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_text = "model: not started"
        self.speed = ""
        self.memory = ""
        self.phase = ""

    def compose(self) -> ComposeResult:
        yield Label(self.model_text, id="status-model", markup=False)
        yield Label("DEMO", id="status-demo")
        yield Label("", id="status-placement", markup=False)
        yield Label("", id="status-phase", markup=False)
        yield Label("", id="status-speed", markup=False)
        yield Label("", id="status-memory", markup=False)

    def _set(self, part: str, text: str) -> None:
        label = self.query_one(f"#status-{part}", Label)
        if str(label.content) != text:
            # Fixed-width parts need no layout pass: only their own cells are repainted.
            label.update(text, layout=part in ("model", "placement"))

    @property
    def text(self) -> str:
        """The line as a reader sees it (for tests and screen readers)."""
        parts = [str(label.content) for label in self.query(Label) if label.display and str(label.content)]
        return " │ ".join(parts)

    def set_loading_text(self, text: str) -> None:
        self.model_text = text
        self._set("model", text)

    def set_model(self, info: ModelInfo, load_s: float | None = None) -> None:
        self.model_text = info.name or info.file_name
        self._set("model", self.model_text)
        self.set_class(info.demo, "-demo")
        self._set("placement", f"{info.threads} threads · GPU {info.gpu_layers} layers")
        self.remove_class("-failed")

    def set_failed(self, message: str) -> None:
        self.model_text = f"model failed: {message}"
        self._set("model", self.model_text)
        self.add_class("-failed")

    def set_speed(self, tokens: int, tokens_per_s: float, ttft_s: float | None) -> None:
        ttft = f"TTFT {ttft_s:.2f}s" if ttft_s is not None else ""
        self.speed = f"{tokens} tok {tokens_per_s:.1f} tok/s {ttft}".strip()
        self._set("speed", self.speed)

    def set_memory(self, megabytes: float | None) -> None:
        self.memory = f"{megabytes:5.0f} MB" if megabytes is not None else ""
        self._set("memory", self.memory)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._set("phase", phase)
