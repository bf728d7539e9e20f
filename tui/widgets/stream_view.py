"""The live pane where the model's reasoning streams.

Built for slow SSH links and 2-core machines: text is buffered and drawn at
most `MAX_REDRAWS_PER_S` times a second (one trailing redraw picks up the
rest), lines are wrapped here and only the lines that changed are repainted,
so a new token costs the terminal roughly the width of one line, not a pane.

Checked text and the draft: the sentence the model is writing is shown dimmed
(`set_draft`) until the engine has checked it; `commit_sentence` then puts the
checked form in its place, marked with `CHANGED_MARK` when the safety layer
changed it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

if TYPE_CHECKING:
    from rich.console import Console

MAX_REDRAWS_PER_S = 20
HEADING_PREFIX = "▸ "
CHANGED_MARK = "✎ "  # before a sentence the safety layer changed


def wrap_text(text: str, width: int) -> list[str]:
    """Word-wrap `text` to `width` cells; explicit newlines kept."""
    width = max(8, width)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if not paragraph:
            lines.append("")
            continue
        lines.extend(line.plain for line in Text(paragraph).wrap(_console(), width, no_wrap=False))
    return lines


def first_difference(old_lines: list[str], new_lines: list[str]) -> int:
    """Index of the first line that differs; the shorter length when one list starts the other."""
    for index, (old, new) in enumerate(zip(old_lines, new_lines, strict=False)):
        if old != new:
            return index
    return min(len(old_lines), len(new_lines))


_CONSOLE: Console | None = None


def _console() -> Console:
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console(width=1000, color_system=None, legacy_windows=False)
    return _CONSOLE


class StreamView(ScrollView, can_focus=True):
    """Append-only text pane with throttled, line-precise redraws."""

    COMPONENT_CLASSES = {
        "stream-view--heading",
        "stream-view--placeholder",
        "stream-view--draft",
        "stream-view--changed",
    }

    DEFAULT_CSS = """
    StreamView {
        height: 1fr;
        min-height: 3;
        border: round $secondary 50%;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    StreamView:focus {
        border: round $secondary;
    }
    StreamView > .stream-view--heading {
        text-style: bold;
        color: $accent;
    }
    StreamView > .stream-view--placeholder {
        color: $text-muted;
        text-style: italic;
    }
    StreamView > .stream-view--draft {
        color: $text-muted;
        text-style: italic;
    }
    StreamView > .stream-view--changed {
        color: $warning;
        text-style: bold;
    }
    StreamView.-streaming {
        border: round $warning;
    }
    StreamView.-error {
        border: round $error;
        border-title-color: $error;
    }
    """

    # A new virtual size (the text grew past the pane) only lays the pane out again, for the
    # scrollbar. Textual would also repaint the whole pane, border and blank rows included;
    # here the lines that changed are refreshed by `_redraw`, and a scroll repaints the text.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=True, repaint=False)

    def __init__(self, placeholder: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.placeholder = placeholder
        self.border_title = "Reasoning"
        self._parts: list[str] = []
        self._draft = ""  # the sentence being written, not yet checked
        self._lines: list[str] = []
        self._draft_at = (0, 0)  # (line, cell) where the draft begins on screen
        self._committed_wrap: tuple[int, int, list[str]] = (-1, 0, [])  # (parts, width, lines)
        self._replaced = False
        self._wrap_width = 0
        self._redraw_pending = False
        self._last_redraw = 0.0
        self.redraw_count = 0
        self.max_redraws_per_s = MAX_REDRAWS_PER_S  # fewer over slow links

    @property
    def text(self) -> str:
        """Everything appended so far, drawn or not yet, the draft included."""
        return "".join(self._parts) + self._draft

    @property
    def draft(self) -> str:
        return self._draft

    @property
    def shown_text(self) -> str:
        """What is on screen now (wrapped lines joined)."""
        return "\n".join(self._lines)

    def append(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._schedule_redraw()

    def set_draft(self, text: str) -> None:
        """Show `text` dimmed after the checked text: the sentence being written."""
        if text != self._draft:
            self._draft = text
            self._schedule_redraw()

    def commit_sentence(self, before: str, raw: str, text: str, changed: bool) -> None:
        """The draft's first sentence (`before` + `raw`) is replaced by its checked form `text`."""
        consumed = len(before) + len(raw)
        self._draft = self._draft[consumed:] if self._draft.startswith(before + raw) else ""
        self.append(before + (CHANGED_MARK + text if changed else text))

    def heading(self, title: str) -> None:
        """Start a titled section, e.g. the next field the model writes."""
        prefix = "\n\n" if self._parts else ""
        self.append(f"{prefix}{HEADING_PREFIX}{title}\n")

    def clear(self) -> None:
        if not self._parts and not self._lines:
            return  # already empty: no repaint
        self._parts.clear()
        self._draft = ""
        self._lines = []
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def show_message(self, text: str) -> None:
        """Replace the content with one message, drawn at once."""
        self._parts = [text]
        self._draft = ""
        self._replaced = True
        self._redraw()

    def _schedule_redraw(self) -> None:
        if self._redraw_pending:
            return
        self._redraw_pending = True
        wait = self._last_redraw + 1 / self.max_redraws_per_s - time.monotonic()
        self.set_timer(max(0.001, wait), self._redraw)

    def flush(self) -> None:
        """Draw what is buffered now (the end of a stream)."""
        self._redraw()

    def _redraw(self) -> None:
        self._redraw_pending = False
        self._last_redraw = time.monotonic()
        width = self.scrollable_content_region.width or self.size.width
        if width <= 0:
            return
        new_lines = wrap_text(self.text, width - 1) if self.text else []
        old_lines = self._lines
        old_draft_at = self._draft_at
        self._draft_at = self._draft_start(width - 1, new_lines)
        self._lines = new_lines
        self._wrap_width = width
        self.redraw_count += 1
        viewport = max(1, self.scrollable_content_region.height)
        top = self.scroll_offset.y
        replaced, self._replaced = self._replaced, False
        if len(new_lines) < len(old_lines) and (replaced or not new_lines):
            # replaced or cleared: start again from the top
            self.virtual_size = Size(width, len(new_lines))
            self.scroll_to(0, 0, animate=False, immediate=True, force=True)
            self.refresh()
            return
        if len(new_lines) < len(old_lines):  # a checked sentence shorter than its draft
            self.virtual_size = Size(width, max(len(new_lines), viewport))
            # Repaint from the first line that changed or lost its dimming, to the old end.
            first_changed = min(first_difference(old_lines, new_lines), old_draft_at[0], self._draft_at[0])
            self.refresh_lines(first_changed, len(old_lines) - first_changed)
            return
        following = not old_lines or len(old_lines) - 1 < top + viewport
        if following and len(new_lines) - 1 >= top + viewport:
            # Jump half a page at a time: a scroll repaints the whole pane, so
            # doing it once per half page instead of once per line saves most of it.
            half = max(1, viewport // 2)
            self.virtual_size = Size(width, len(new_lines) + half)
            self.scroll_to(y=len(new_lines) + half - viewport, animate=False, immediate=True, force=True)
            return
        if len(new_lines) > max(self.virtual_size.height, viewport):
            self.virtual_size = Size(width, len(new_lines))
        first_changed = first_difference(old_lines, new_lines)
        if self._draft_at != old_draft_at:
            # the draft moved on: the lines it covered lose their dimming
            row = min(old_draft_at[0], self._draft_at[0])
            if row < first_changed:
                self.refresh_lines(row, min(first_changed, len(new_lines)) - row)
        if first_changed >= len(new_lines):
            return
        if first_changed < len(old_lines):
            # The usual case: the last line grew. Repaint only its new cells.
            old, new = old_lines[first_changed], new_lines[first_changed]
            same = len(os.path.commonprefix([old, new]))
            start = cell_len(new[:same])
            self.refresh(Region(start, first_changed - top, max(1, width - start), 1))
            first_changed += 1
        if first_changed < len(new_lines):
            self.refresh_lines(first_changed, len(new_lines) - first_changed)

    def _draft_start(self, width: int, lines: list[str]) -> tuple[int, int]:
        """(line, cell) of the first draft character: where the checked text ends when wrapped alone."""
        if not self._draft:
            return (len(lines), 0)
        parts, wrapped_width, committed = self._committed_wrap
        if (parts, wrapped_width) != (len(self._parts), width):
            committed = wrap_text("".join(self._parts), width) if self._parts else []
            self._committed_wrap = (len(self._parts), width, committed)
        if not committed:
            return (0, 0)
        return (len(committed) - 1, cell_len(committed[-1]))

    def on_resize(self) -> None:
        if self._parts and self.size.width != self._wrap_width:
            self._lines = []
            self._redraw()
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        base = self.rich_style
        if not self._lines:
            if y == 0 and self.placeholder:
                style = base + self.get_component_rich_style("stream-view--placeholder")
                return Strip([Segment(self.placeholder, style)]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(self._lines):
            return Strip.blank(width, base)
        line = self._lines[index]
        style = base
        if line.startswith(HEADING_PREFIX):
            style = base + self.get_component_rich_style("stream-view--heading")
        draft_line, draft_cell = self._draft_at
        split = len(line) if index < draft_line else 0 if index > draft_line else draft_cell
        checked, draft = line[:split], line[split:]
        segments = []
        while CHANGED_MARK in checked:
            before, checked = checked.split(CHANGED_MARK, 1)
            mark = base + self.get_component_rich_style("stream-view--changed")
            segments += [Segment(before, style), Segment(CHANGED_MARK, mark)]
        segments.append(Segment(checked, style))
        if draft:
            segments.append(Segment(draft, base + self.get_component_rich_style("stream-view--draft")))
        return Strip(segments, cell_len(line)).adjust_cell_length(width, base)
