"""Screens over the case: help and the history of past assessments (both scroll from the
keyboard), and the lock screen that hides the case on a shared PC."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Markdown, OptionList
from textual.widgets.option_list import Option

from engine import HistoryEntry, handoff_markdown

HELP_INTRO = """\
# Clinical decision support — help

Type or paste the patient note, optionally give an image path and vital signs,
then run. The model's reasoning streams in the middle pane; the checked result
fills the card. **Every statement must be checked against the note**: move to the
findings (F3) and each one's evidence is selected in the note.

The risk level never drops below the NEWS2 band computed from the vital signs
(from the note and the form). Findings marked ✗ could not be traced to the note.

> **ASSISTIVE ONLY - requires clinical validation**

## Keys
"""

HELP_OUTRO = """
Tab and Shift+Tab move between fields. In the image field Tab completes the path.
Keys can be changed in the config file under `[keys]` (binding id = "keys").

## Where things are kept
The draft (note, image path, vitals) is saved as you type and restored on the
next start. Exports (JSON and a Markdown handoff note) go to `{exports}`.
"""


class ScrollingMarkdown(VerticalScroll):
    """A Markdown document that takes focus and scrolls with ↑↓, PgUp/PgDn, Home and End."""

    DEFAULT_CSS = """
    ScrollingMarkdown {
        height: 1fr;
    }
    ScrollingMarkdown > Markdown {
        height: auto;
    }
    """

    def __init__(self, markdown: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._initial = markdown

    def compose(self) -> ComposeResult:
        yield Markdown(self._initial)

    def update(self, markdown: str) -> None:
        self.query_one(Markdown).update(markdown)
        self.scroll_home(animate=False)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: thick $primary;
        background: $surface;
    }
    HelpScreen #help-hint {
        dock: bottom;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield ScrollingMarkdown(self.markdown, id="help-text")
            yield Label("↑↓ PgUp PgDn Home End scroll · Esc closes help", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-text").focus()


def history_prompt(entry: HistoryEntry) -> Text:
    return Text.assemble(
        (entry.created_at[:16].replace("T", " "), "dim"),
        "  ",
        (f"{entry.risk_level:<8}", "bold"),
        " ",
        entry.title,
    )


class HistoryScreen(ModalScreen[HistoryEntry | None]):
    """Past assessments, newest first; the highlighted one is shown as its handoff note.

    Enter reopens the highlighted entry: the screen is dismissed with it, and the
    caller puts it back into the editor. Esc dismisses with None.
    """

    BINDINGS = [
        Binding("escape,f2", "dismiss", "Close", id="history.close"),
        Binding("enter", "reopen", "Reopen", id="history.reopen"),
        Binding("right", "read_detail", "Read the note", show=False),
        Binding("left", "choose_entry", "Back to the list", show=False),
    ]

    DEFAULT_CSS = """
    HistoryScreen {
        align: center middle;
    }
    HistoryScreen > Vertical {
        width: 95%;
        height: 90%;
        border: thick $primary;
        background: $surface;
    }
    HistoryScreen Horizontal {
        height: 1fr;
    }
    HistoryScreen OptionList {
        width: 2fr;
        height: 1fr;
    }
    HistoryScreen #history-detail {
        width: 3fr;
    }
    HistoryScreen #history-detail:focus {
        background-tint: $foreground 5%;
    }
    HistoryScreen #history-hint {
        color: $text-muted;
        padding: 0 1;
    }
    """

    HINT = "History — ↑↓ choose · Enter reopens · →/Tab read the note · Esc close"

    def __init__(self, entries: list[HistoryEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.HINT, id="history-hint")
            with Horizontal():
                yield OptionList(
                    *(Option(history_prompt(entry)) for entry in self.entries), id="history-list"
                )
                yield ScrollingMarkdown(id="history-detail")

    def on_mount(self) -> None:
        listing = self.query_one(OptionList)
        if not self.entries:
            self.query_one(ScrollingMarkdown).update(
                "No assessments yet. Finished assessments are kept here."
            )
        else:
            listing.highlighted = 0
        listing.focus()

    @property
    def highlighted_entry(self) -> HistoryEntry | None:
        index = self.query_one(OptionList).highlighted
        return self.entries[index] if index is not None and index < len(self.entries) else None

    @on(OptionList.OptionHighlighted)
    def _show(self, event: OptionList.OptionHighlighted) -> None:
        entry = self.entries[event.option_index]
        self.query_one(ScrollingMarkdown).update(
            handoff_markdown(entry.assessment, entry.note, when=entry.created_at)
        )

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.entries[event.option_index])

    def action_reopen(self) -> None:
        """Enter while reading the note reopens the entry it belongs to."""
        if (entry := self.highlighted_entry) is not None:
            self.dismiss(entry)

    def action_read_detail(self) -> None:
        self.query_one(ScrollingMarkdown).focus()

    def action_choose_entry(self) -> None:
        self.query_one(OptionList).focus()


class LockScreen(Screen[None]):
    """The case hidden, after the idle timeout or F9: a full screen, nothing of the note shows.

    Any key or click returns to the case exactly as it was.
    """

    DEFAULT_CSS = """
    LockScreen {
        align: center middle;
        background: $background;
    }
    LockScreen > Label {
        width: auto;
        padding: 1 2;
        border: round $primary;
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("Locked: the case is hidden.\nPress any key to continue.", id="lock-message")

    def on_key(self, event: Any) -> None:
        event.stop()
        event.prevent_default()
        self.dismiss()

    def on_click(self) -> None:
        self.dismiss()
