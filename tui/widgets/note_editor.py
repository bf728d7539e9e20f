"""The patient-note editor: soft-wrapped, safe to paste into, and able to show evidence."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from textual import events
from textual.binding import Binding
from textual.document._edit import Edit
from textual.geometry import Region, Size
from textual.reactive import Reactive, reactive
from textual.widgets import TextArea
from textual.widgets.text_area import EditResult, Location, Selection

from engine import neutralise
from tui.messages import NoteLocked


def clean_pasted_text(text: str) -> str:
    """Line endings unified and control characters made visible (an ESC must not reach the terminal)."""
    return neutralise(text.replace("\r\n", "\n").replace("\r", "\n"))


def offset_to_location(text: str, offset: int) -> tuple[int, int]:
    """(row, column) in `text` of a character offset, clamped to the text."""
    offset = max(0, min(offset, len(text)))
    row = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return row, offset - line_start


class NoteEditor(TextArea, inherit_bindings=False):
    """The note as typed or pasted. Locked while the model reads it, so evidence offsets stay true."""

    # Ctrl+Y is the app's Copy key, so redo moves to Ctrl+Shift+Z (as in most editors); the
    # editor's own keys are otherwise TextArea's. (Not inherited: a key cannot be unbound otherwise.)
    BINDINGS = [
        *(
            binding
            for binding in TextArea.BINDINGS
            if isinstance(binding, Binding) and binding.action != "redo"
        ),
        Binding("ctrl+shift+z,super+shift+z", "redo", "Redo", show=False),
    ]

    # TextArea repaints all of itself whenever the selection (the cursor) moves: every row,
    # blank ones included, about 4 KB per typed letter at 120x40. Here the selection repaints
    # nothing by itself; the rows an edit or a cursor move touches are refreshed line by line
    # (see `edit` and `_watch_selection`), so a keystroke costs a few cells.
    selection: Reactive[Selection] = reactive(Selection(), init=False, always_update=True, repaint=False)
    # Likewise a new virtual size (a typed line wrapped onto a new row) repaints nothing by
    # itself (Textual would repaint every row, about 6 KB); it still lays the editor out, for
    # the scrollbar, and `edit` refreshes the rows that moved.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=True, repaint=False)

    DEFAULT_CSS = """
    NoteEditor {
        height: 1fr;
        min-height: 4;
        border: round $primary 50%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    NoteEditor:focus {
        border: round $primary;
    }
    NoteEditor.-evidence .text-area--selection {
        background: $warning 40%;
    }
    """

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(
            clean_pasted_text(text),
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder="Type or paste the patient note here…",
            **kwargs,
        )
        self.border_title = "Patient note"
        # A blinking cursor repaints its row twice a second, forever: over a slow link
        # "idle" must mean silent. Bracket matching would need rows beyond the cursor's.
        self.cursor_blink = False
        self.match_cursor_bracket = False
        self.locked = False  # while the model reads the note: evidence offsets must stay true

    async def _on_paste(self, event: events.Paste) -> None:
        if self.read_only or self._refuse_edit():
            event.prevent_default()
            event.stop()
            return
        event.prevent_default()
        event.stop()
        # Insert cleaned text in place of the raw paste: same undo step, no terminal control codes.
        text = clean_pasted_text(event.text)
        if result := self._replace_via_keyboard(text, *self.selection):
            self.move_cursor(result.end_location)

    def set_running(self, running: bool) -> None:
        # Locked rather than read_only: toggling read_only restyles the editor and
        # repaints every cell of it twice a run; a lock changes nothing on screen.
        self.locked = running
        # Stop the cursor blinking while the model needs the CPU. Setting the
        # cursor_blink reactive would repaint the whole screen, so the blink
        # timer is paused directly (one line repaints at most).
        if running:
            self._pause_blink(visible=self.has_focus)
        elif self.has_focus:
            self._restart_blink()

    def _refuse_edit(self) -> bool:
        if self.locked:
            self.post_message(NoteLocked())
        return self.locked

    def _replace_via_keyboard(self, insert: str, start: Location, end: Location) -> EditResult | None:
        return None if self._refuse_edit() else super()._replace_via_keyboard(insert, start, end)

    def _delete_via_keyboard(self, start: Location, end: Location) -> EditResult | None:
        return None if self._refuse_edit() else super()._delete_via_keyboard(start, end)

    def undo(self) -> None:
        if not self._refuse_edit():
            super().undo()
            self.refresh()  # an undo batch may touch any rows

    def redo(self) -> None:
        if not self._refuse_edit():
            super().redo()
            self.refresh()

    def load_text(self, text: str) -> None:
        super().load_text(text)
        self.refresh()

    # --- line-level repaint -------------------------------------------------------

    def edit(self, edit: Edit) -> EditResult:
        document, wrapped = self.document, self.wrapped_document
        lines_before, rows_before = document.line_count, wrapped.height
        line = edit.top[0]
        within_line = edit.bottom[0] == line and "\n" not in edit.text and bool(self.text)
        wraps_before = wrapped.get_offsets(line) if within_line else []
        length_before = len(document[line]) if within_line else 0
        result = super().edit(edit)
        if document.line_count != lines_before or wrapped.height != rows_before:
            # Rows below the edit moved up or down: repaint from the edit's row to the last
            # row the text covered before or covers now; the blank rows below stay as they are.
            top = wrapped.location_to_offset((line, 0)).y
            self.refresh_lines(top, max(rows_before, wrapped.height) - top)
        elif within_line and self.text and wrapped.get_offsets(line) == wraps_before:
            self._refresh_line_from(edit.top, max(length_before, len(document[line])))
        else:
            self._refresh_document_lines(line, max(edit.bottom[0], result.end_location[0]))
        return result

    def _watch_selection(self, previous_selection: Selection, selection: Selection) -> None:
        super()._watch_selection(previous_selection, selection)
        if not self.is_mounted:
            return
        if not (previous_selection.is_empty and selection.is_empty):
            self.refresh()  # a highlighted range may span many rows
            return
        for location in {previous_selection.end, selection.end}:
            self._refresh_cursor_cell(location)

    def _refresh_line_from(self, start: Location, longest: int) -> None:
        """Refresh a line from `start` on: the cells the rest of its row may have moved through,
        and its later rows (an edit within a line shifts the text after it)."""
        line, column = start
        wraps = self.wrapped_document.get_offsets(line)
        row_index = bisect_right(wraps, column)
        row_end = wraps[row_index] if row_index < len(wraps) else longest
        x, y = self.wrapped_document.location_to_offset(start)
        # Two cells a character covers wide ones; one more for the cursor after the text.
        width = 2 * max(0, row_end - column) + 2
        self.refresh(Region(x, y - self.scroll_offset.y, width, 1))
        if later_rows := len(wraps) - row_index:
            self.refresh_lines(y + 1, later_rows)

    def _refresh_document_lines(self, first_line: int, last_line: int) -> None:
        """Refresh the screen rows that document lines first_line..last_line wrap onto."""
        last_line = min(last_line, self.document.line_count - 1)
        if last_line < first_line:
            self.refresh()
            return
        top = self.wrapped_document.location_to_offset((first_line, 0)).y
        bottom = top + sum(
            len(self.wrapped_document.get_offsets(line)) + 1 for line in range(first_line, last_line + 1)
        )
        self.refresh_lines(top, bottom - top)

    def _refresh_cursor_cell(self, location: Location) -> None:
        try:
            x, y = self.wrapped_document.location_to_offset(location)
        except (ValueError, IndexError):
            self.refresh()  # the location left the document (a shorter text was loaded)
            return
        self.refresh(Region(x, y - self.scroll_offset.y, 2, 1))  # two cells: a wide character

    def show_evidence(self, span: tuple[int, int] | None) -> bool:
        """Select the evidence span (offsets into the note); False when there is none to show."""
        text = self.text
        if span is None or not (0 <= span[0] < span[1] <= len(text)):
            self.remove_class("-evidence")
            return False
        start, end = offset_to_location(text, span[0]), offset_to_location(text, span[1])
        self.selection = Selection(start, end)
        self.add_class("-evidence")
        self.scroll_cursor_visible(center=True)
        return True
