"""Every action of the app, described once.

The key bindings, the help screen's key table and the command palette are all
generated from `ACTIONS`, so they cannot disagree. A clinician remaps keys in
the config file by action id (`[keys]` run = "f5").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Action:
    id: str  # the binding id, used under [keys] in the config file
    method: str  # the app's `action_<method>`
    key: str  # default key(s), comma separated
    footer: str  # short label in the footer
    help: str  # a sentence in the help screen's key table
    palette_title: str | None = None  # None: not offered in the command palette
    palette_help: str = ""
    # Priority keys work whatever has focus: no widget's own key (e.g. the
    # note editor's redo on ctrl+y) can take them first.
    priority: bool = False
    in_footer: bool = True  # False: in the help and the palette only


ACTIONS: tuple[Action, ...] = (
    Action(
        "run",
        "run",
        "ctrl+r",
        "Run",
        "Run the assessment (waits for the model if it is still loading)",
        "Run assessment",
        "Analyse the note, image and vitals",
    ),
    Action(
        "cancel",
        "cancel",
        "escape",
        "Cancel",
        "Cancel the running assessment; what it wrote stays on screen, the note as it was",
        "Cancel assessment",
        "Stop the running assessment",
    ),
    Action(
        "export",
        "export",
        "ctrl+s",
        "Export",
        "Export JSON and a Markdown handoff note under exports/ (path shown)",
        "Export",
        "Write JSON and a Markdown handoff note under exports/",
    ),
    Action(
        "copy",
        "copy_result",
        "ctrl+y",
        "Copy",
        "Copy the handoff note to the clipboard (OSC 52, works over SSH)",
        "Copy result",
        "Copy the handoff note to the clipboard (OSC 52)",
        priority=True,
    ),
    Action(
        "history",
        "history",
        "f2",
        "History",
        "Past assessments; Enter reopens one with its result",
        "History",
        "Past assessments; Enter reopens one",
    ),
    Action(
        "new_case",
        "new_case",
        "ctrl+n",
        "New",
        "New case: clear note, image and vitals (asks first if not assessed)",
        "New case",
        "Clear the note, image and vitals",
    ),
    Action(
        "findings",
        "findings",
        "f3",
        "Evidence",
        "Move to the findings: each one selects its evidence in the note",
        "Show evidence",
        "Move to the findings; each selects its evidence",
    ),
    Action(
        "discard_draft",
        "discard_draft",
        "f4",
        "Discard draft",
        "Discard the draft restored at start (someone else's note on a shared PC), without asking",
        "Discard restored draft",
        "Clear the note, image and vitals restored from the last session",
    ),
    Action(
        "lock",
        "lock",
        "f9",
        "Lock",
        "Lock the screen now: the case is hidden until a key is pressed",
        "Lock screen",
        "Hide the case until a key is pressed",
        in_footer=False,
    ),
    Action("help", "help", "f1", "Help", "This help", "Help", "Keys and how to read the result"),
    # Textual's palette already offers quitting.
    Action("quit", "quit", "ctrl+q", "Quit", "Quit (the draft is kept)", priority=True),
)

PALETTE_HELP_ROW = "| `ctrl+p` | Command palette: every action by name, themes |"


def bindings() -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    """The app's BINDINGS (typed as Textual's `App.BINDINGS`)."""
    return [
        Binding(
            action.key,
            action.method,
            action.footer,
            show=action.in_footer,
            id=action.id,
            priority=action.priority,
        )
        for action in ACTIONS
    ]


def help_key_table(keymap: Mapping[str, str]) -> str:
    """The help screen's key table, with the keys as remapped by the config file."""
    rows = ["| Key | Action |", "|---|---|"]
    for action in ACTIONS:
        keys = keymap.get(action.id, action.key)
        rows.append(f"| `{keys.replace(',', '` or `')}` | {action.help} |")
    rows.append(PALETTE_HELP_ROW)
    return "\n".join(rows) + "\n"


def palette_actions() -> list[Action]:
    return [action for action in ACTIONS if action.palette_title]
