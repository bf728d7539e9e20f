"""Main screen snapshots at 80x24 and 120x40: no model, no draft, fixed status text."""

from __future__ import annotations

import pytest

from engine.config import Settings
from tui.app import MedGemmaApp


@pytest.fixture(autouse=True)
def fixed_data_dir(monkeypatch, tmp_path_factory):
    # The help screen shows the export folder; keep it the same in every run.
    monkeypatch.setenv("MEDGEMMA_TUI_DATA_DIR", "/tmp/medgemma-tui-snapshots")


def _app() -> MedGemmaApp:
    return MedGemmaApp(Settings.resolve(), start_engine=False, show_memory=False, restore_draft=False)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size)


def test_main_screen_light_theme(snap_compare):
    app = _app()

    async def light(pilot):
        app.theme = "textual-light"
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=light)


def test_help_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=(80, 24), press=["f1"])
