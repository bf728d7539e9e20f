"""One line about the engine: model, where it runs, phase, speed and memory.

Each part is its own label. A part is shown whole or not at all: when the line
is too narrow, the least useful parts are hidden first (see PARTS_BY_IMPORTANCE).
A new figure of the same length repaints only its own cells, not the whole line
(this matters over slow SSH links); the layout is redone only when a length changes.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from engine import ModelInfo

# Most useful first. When the line is too narrow, parts are hidden from the end of this list.
PARTS_BY_IMPORTANCE = ("model", "demo", "phase", "speed", "ttft", "placement", "memory")
# Left to right on the line.
PARTS_ON_LINE = ("model", "demo", "placement", "phase", "speed", "ttft", "memory")
MODEL_MAX_WIDTH = 40
PART_PADDING = 2  # one cell either side of each part
# Memory is shown again only when it moves this much: resident memory wobbles by a
# few MB while idle, and an idle app must write nothing to the terminal.
MEMORY_STEP_MB = 16


def part_width(part: str, text: str) -> int:
    """Cells the part takes on the line; 0 for a part with nothing to say."""
    if not text:
        return 0
    width = cell_len(text) + PART_PADDING
    return min(width, MODEL_MAX_WIDTH) if part == "model" else width


def parts_that_fit(texts: dict[str, str], available: int) -> set[str]:
    """The parts to show on a line `available` cells wide, most useful first, each one whole."""
    shown: set[str] = set()
    for part in PARTS_BY_IMPORTANCE:
        width = part_width(part, texts.get(part, ""))
        if width and width <= available:
            shown.add(part)
            available -= width
    return shown


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


def placement_text(info: ModelInfo) -> str:
    """Where the model runs: this machine's threads and GPU layers, or the model server."""
    if info.server:
        return f"server {urlsplit(info.server).netloc}"
    return f"{info.threads} threads · GPU {info.gpu_layers} layers"


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
        width: auto;
    }
    StatusBar #status-model {
        text-style: bold;
        color: $text;
        max-width: 40;
    }
    StatusBar #status-demo {
        text-style: bold reverse;
        color: $warning;
    }
    StatusBar #status-phase { width: 1fr; }
    StatusBar.-failed {
        background: $error 40%;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_text = "model: not started"
        self.speed = ""
        self.ttft = ""
        self.memory = ""
        self._memory_shown_mb: float | None = None
        self.phase = ""
        self._texts = dict.fromkeys(PARTS_ON_LINE, "")
        self._texts["model"] = self.model_text

    def compose(self) -> ComposeResult:
        for part in PARTS_ON_LINE:
            label = Label(self._texts[part], id=f"status-{part}", markup=False)
            label.display = bool(self._texts[part]) or part == "phase"
            yield label

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _label(self, part: str) -> Label:
        return self.query_one(f"#status-{part}", Label)

    def _set(self, part: str, text: str) -> None:
        old = self._texts[part]
        if old == text:
            return
        self._texts[part] = text
        if not self.is_mounted:
            return
        same_width = part_width(part, old) == part_width(part, text)
        # Same width: only the part's own cells are repainted, no layout pass.
        self._label(part).update(text, layout=not same_width)
        if not same_width:
            self._fit()

    def _fit(self) -> None:
        """Show the parts that fit whole, most useful first; hide the rest."""
        available = self.size.width
        if not available:
            return
        shown = parts_that_fit(self._texts, available)
        for part in PARTS_ON_LINE:
            # The phase stays on the line even when empty: it is the gap that keeps the figures right.
            visible = part in shown or (part == "phase" and not self._texts["phase"])
            label = self._label(part)
            if label.display != visible:
                label.display = visible

    @property
    def text(self) -> str:
        """The line as a reader sees it (for tests and screen readers)."""
        parts = [
            self._texts[part] for part in PARTS_ON_LINE if self._label(part).display and self._texts[part]
        ]
        return " │ ".join(parts)

    def set_loading_text(self, text: str) -> None:
        self.model_text = text
        self._set("model", text)

    def set_model(self, info: ModelInfo, load_s: float | None = None) -> None:
        self.model_text = info.name or info.file_name
        self._set("model", self.model_text)
        self._set("demo", "DEMO" if info.demo else "")
        self._set("placement", placement_text(info))
        self.remove_class("-failed")

    def set_failed(self, message: str) -> None:
        self.model_text = f"model failed: {message}"
        self._set("model", self.model_text)
        self.add_class("-failed")

    def set_speed(self, tokens: int, tokens_per_s: float, ttft_s: float | None) -> None:
        self.speed = f"{tokens} tok {tokens_per_s:.1f} tok/s"
        self.ttft = f"TTFT {ttft_s:.2f}s" if ttft_s is not None else ""
        self._set("speed", self.speed)
        self._set("ttft", self.ttft)

    def set_memory(self, megabytes: float | None) -> None:
        shown = self._memory_shown_mb
        if megabytes is not None and shown is not None and abs(megabytes - shown) < MEMORY_STEP_MB:
            return
        self._memory_shown_mb = megabytes
        self.memory = f"{megabytes:5.0f} MB" if megabytes is not None else ""
        self._set("memory", self.memory)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._set("phase", phase)
