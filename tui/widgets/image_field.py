"""Image-path field: Tab completes paths, the path is checked as it is typed, and a
small half-block preview (plain text cells, so it works over any SSH link) is shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich_pixels import HalfcellRenderer, Pixels
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from engine import check_image, preview_thumbnail
from tui.messages import ImagePathChecked

PREVIEW_CELLS = (24, 8)  # columns x rows; half-blocks give two pixel rows per cell


class PathSuggester(Suggester):
    """Suggests the longest unambiguous completion of a file-system path."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


def complete_path(value: str) -> str | None:
    if not value.strip():
        return None
    expanded = os.path.expanduser(value)
    folder, partial = os.path.split(expanded)
    try:
        names = [entry for entry in os.scandir(folder or ".") if entry.name.startswith(partial)]
    except OSError:
        return None
    if not partial:
        names = [entry for entry in names if not entry.name.startswith(".")]
    if not names:
        return None
    common = os.path.commonprefix([entry.name for entry in names])
    if len(names) == 1 and names[0].is_dir():
        common += os.sep
    if len(common) <= len(partial):
        return None
    return value + common[len(partial) :]


class ImagePathInput(Input):
    BINDINGS = [Binding("tab", "complete_or_next", "Complete path", show=False)]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_blink = False  # a blinking cursor writes to the terminal twice a second

    def action_complete_or_next(self) -> None:
        if self.cursor_at_end and self._suggestion and self._suggestion != self.value:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()


class ImageField(Vertical):
    """The optional image path, its verdict, and a preview when there is room."""

    DEFAULT_CSS = """
    ImageField {
        height: auto;
    }
    ImageField #image-row {
        height: 1;
    }
    ImageField #image-label {
        width: 7;
        color: $text-muted;
    }
    ImageField Input {
        width: 1fr;
        background: $boost;
        /* The field's extent shows without colour too (16-colour and NO_COLOR terminals). */
        text-style: underline;
    }
    ImageField Input:focus {
        background: $primary 30%;
    }
    ImageField #image-status {
        height: 1;
        color: $text-muted;
        padding-left: 7;
    }
    ImageField.-invalid #image-status {
        color: $error;
        text-style: bold;
    }
    ImageField.-valid #image-status {
        color: $success;
    }
    ImageField #image-preview {
        height: auto;
        max-height: 8;
        padding-left: 7;
        display: none;
    }
    ImageField.-valid.-preview #image-preview {
        display: block;
    }
    """

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._initial = value
        self.error: str | None = None
        self.show_preview = True  # off over slow links: a preview is hundreds of coloured cells

    def compose(self) -> ComposeResult:
        with Horizontal(id="image-row"):
            yield Label("Image", id="image-label")
            yield ImagePathInput(
                self._initial,
                placeholder="optional path (Tab completes)",
                suggester=PathSuggester(),
                compact=True,
                id="image-path",
            )
        yield Static("no image (optional)", id="image-status", markup=False)
        yield Static(id="image-preview")

    def on_mount(self) -> None:
        self._check(self._initial)

    @property
    def path(self) -> str:
        return self.query_one(ImagePathInput).value.strip()

    @path.setter
    def path(self, value: str) -> None:
        self.query_one(ImagePathInput).value = value

    @on(Input.Changed, "#image-path")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check(event.value)

    def _check(self, value: str) -> None:
        value = value.strip()
        status = self.query_one("#image-status", Static)
        self.error = None if not value else check_image(value)
        self.set_class(bool(value) and self.error is not None, "-invalid")
        self.set_class(bool(value) and self.error is None, "-valid")
        if not value:
            status.update("no image (optional)")
        elif self.error:
            status.update(f"✗ {self.error}")
        else:
            status.update(f"✓ {Path(value).name}")
            if self.show_preview:
                self._load_preview(value)
        self.post_message(ImagePathChecked(value, self.error))

    @work(thread=True, exclusive=True, group="image-preview")
    def _load_preview(self, path: str) -> None:
        try:
            image = preview_thumbnail(path, (PREVIEW_CELLS[0], PREVIEW_CELLS[1] * 2))
            pixels = Pixels.from_image(image, renderer=HalfcellRenderer())
        except Exception as exc:  # noqa: BLE001 - a preview must never take the app down
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._preview_failed, path, str(exc) or type(exc).__name__)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_preview, path, pixels)

    def _show_preview(self, path: str, pixels: Pixels) -> None:
        if path == self.path:
            self.query_one("#image-preview", Static).update(pixels)

    def _preview_failed(self, path: str, reason: str) -> None:
        if path != self.path:
            return
        self.error = reason.splitlines()[0] if reason else "cannot read image"
        self.set_class(False, "-valid")
        self.set_class(True, "-invalid")
        self.query_one("#image-status", Static).update(f"✗ {self.error}")
        self.post_message(ImagePathChecked(path, self.error))
