"""Modal screens: help and the history of past assessments."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Markdown, OptionList
from textual.widgets.option_list import Option

from engine.history import HistoryEntry, handoff_markdown

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
    HelpScreen Markdown {
        height: 1fr;
        overflow-y: auto;
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
            yield Markdown(self.markdown, id="help-text")
            yield Label("Esc closes help", id="help-hint")

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


class HistoryScreen(ModalScreen[None]):
    """Past assessments, newest first; the selected one is shown as its handoff note."""

    BINDINGS = [Binding("escape,f2", "dismiss", "Close", id="history.close")]

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
    HistoryScreen Markdown {
        width: 3fr;
        height: 1fr;
        overflow-y: auto;
    }
    HistoryScreen #history-hint {
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, entries: list[HistoryEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("History — ↑↓ choose · Esc close", id="history-hint")
            with Horizontal():
                yield OptionList(
                    *(Option(history_prompt(entry)) for entry in self.entries), id="history-list"
                )
                yield Markdown(id="history-detail")

    def on_mount(self) -> None:
        listing = self.query_one(OptionList)
        if not self.entries:
            self.query_one(Markdown).update("No assessments yet. Finished assessments are kept here.")
        else:
            listing.highlighted = 0
        listing.focus()

    @on(OptionList.OptionHighlighted)
    def _show(self, event: OptionList.OptionHighlighted) -> None:
        entry = self.entries[event.option_index]
        self.query_one(Markdown).update(handoff_markdown(entry.assessment, entry.note, when=entry.created_at))
