"""Main screen snapshots: no model, no draft, fixed status text.

Besides the default dark theme at 80x24 and 120x40, the main screen is kept in the
light theme, on a 16-colour terminal (TERM=linux) and under NO_COLOR, where the form
fields must stay visible.
"""

from __future__ import annotations

import pytest
from rich.color import ColorSystem
from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.color import Color
from textual.filter import LineFilter

from engine.config import Settings
from tui.app import MedGemmaApp
from tui.widgets.note_editor import NoteEditor


class SixteenColours(LineFilter):
    """Reduces every colour to the 16 standard ones, as Rich does for a 16-colour terminal.

    Textual chooses its colour system once, from TEXTUAL_COLOR_SYSTEM when textual is
    imported (else Rich's guess from TERM and COLORTERM: TERM=linux gives "standard"),
    and the reduction happens only as the screen is written to the terminal. Screenshots
    are always taken in truecolor, so this filter applies the same reduction on screen.
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, _reduced(style), control) for text, style, control in segments]


def _reduced(style: Style | None) -> Style | None:
    if style is None:
        return None
    color = style.color.downgrade(ColorSystem.STANDARD) if style.color else None
    bgcolor = style.bgcolor.downgrade(ColorSystem.STANDARD) if style.bgcolor else None
    return style + Style.from_color(color, bgcolor)


def show_in_sixteen_colours(app: App) -> None:
    """From now on the app draws as a 16-colour terminal would show it."""
    filters = app.get_line_filters
    app.get_line_filters = lambda: [*filters(), SixteenColours()]


@pytest.fixture(autouse=True)
def fixed_data_dir(monkeypatch, tmp_path_factory):
    # The help screen shows the export folder; keep it the same in every run.
    monkeypatch.setenv("MEDGEMMA_TUI_DATA_DIR", "/tmp/medgemma-tui-snapshots")
    # The app reads NO_COLOR when it is built; a developer's own setting must not leak in.
    monkeypatch.delenv("NO_COLOR", raising=False)


def _app() -> MedGemmaApp:
    return MedGemmaApp(Settings.resolve(), start_engine=False, show_memory=False, restore_draft=False)


async def steady_cursor(pilot) -> None:
    """The note's cursor blinks even in a headless run; a snapshot must not catch it half-way."""
    pilot.app.query_one(NoteEditor).cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=steady_cursor)


def test_main_screen_light_theme(snap_compare):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await steady_cursor(pilot)

    assert snap_compare(_app(), terminal_size=(80, 24), run_before=light)


def test_main_screen_sixteen_colours(snap_compare):
    app = _app()
    show_in_sixteen_colours(app)
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady_cursor)


def test_main_screen_no_color(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = _app()
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady_cursor)


def test_help_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=(80, 24), press=["f1"], run_before=steady_cursor)
