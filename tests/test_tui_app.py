"""The whole app without the model: keys, help, palette, drafts, bad input."""

from __future__ import annotations

from textual import events
from textual.command import CommandPalette
from textual.widgets import Input, Markdown

from engine.config import Settings
from engine.drafts import Draft, load_draft, save_draft
from tests.tui_helpers import wait_until
from tui.app import MedGemmaApp
from tui.preferences import Preferences
from tui.screens import HelpScreen
from tui.widgets.image_field import ImageField
from tui.widgets.note_editor import NoteEditor
from tui.widgets.result_card import RiskBadge
from tui.widgets.stream_view import StreamView
from tui.widgets.vitals_form import VitalsForm


def _app(preferences: Preferences | None = None) -> MedGemmaApp:
    return MedGemmaApp(Settings.resolve(), start_engine=False, show_memory=False, preferences=preferences)


async def test_empty_note_gives_a_clear_message():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.press("ctrl+r")
        stream = app.query_one(StreamView)
        await wait_until(pilot, lambda: "note is empty" in stream.shown_text)
        assert not app.case.running


async def test_help_is_a_modal_with_the_keys_and_escape_closes_it():
    app = _app()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        markdown = app.screen.markdown
        assert "ctrl+r" in markdown.lower() and "ASSISTIVE ONLY" in markdown
        assert app.screen.query_one(Markdown)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_command_palette_lists_the_app_commands():
    app = _app()
    async with app.run_test(size=(100, 40)) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Run assessment", "Export", "Copy result", "History", "New case", "Help"} <= set(titles)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"history")
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")


async def test_keys_can_be_remapped_from_the_config():
    app = _app(Preferences(keys={"run": "f5", "help": "f9"}))
    async with app.run_test() as pilot:
        await pilot.press("f5")
        await wait_until(pilot, lambda: "note is empty" in app.query_one(StreamView).shown_text)
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "f5" in app.screen.markdown


async def test_draft_is_saved_as_you_type_and_restored_on_start():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.press(*"RR 30 confused")
        app.query_one("#vital-hr", Input).focus()
        await pilot.press("1", "2", "5")
        await wait_until(pilot, lambda: load_draft().form.get("hr") == "125", timeout=5)
        assert load_draft().note == "RR 30 confused"
    restored = _app()
    async with restored.run_test() as pilot:
        await wait_until(pilot, lambda: restored.query_one(NoteEditor).text == "RR 30 confused")
        assert restored.query_one(VitalsForm).values()["hr"] == "125"


async def test_quit_flushes_the_draft_at_once():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.press(*"SpO2 85%")
        await pilot.press("ctrl+q")
    assert load_draft().note == "SpO2 85%"


async def test_live_rule_risk_follows_note_and_form():
    app = _app()
    async with app.run_test() as pilot:
        badge = app.query_one(RiskBadge)
        await pilot.press(*"RR 30, SpO2 89%, BP 88/50, HR 135, confused")
        await wait_until(pilot, lambda: "HIGH" in str(badge.render()))
        assert badge.has_class("-provisional")


async def test_bad_image_path_is_shown_inline_and_blocks_the_run(tmp_path):
    save_draft(Draft(note="fever", image_path=str(tmp_path / "nope.jpg")))
    app = _app()
    async with app.run_test() as pilot:
        field = app.query_one(ImageField)
        await wait_until(pilot, lambda: field.has_class("-invalid"))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.case.running
        assert app.query_one(NoteEditor).text == "fever"


async def test_huge_paste_with_escape_sequences_is_kept():
    app = _app()
    note = ("HR 120 \x1b[31mred\x1b[0m BP 90/60. " * 9000)[:300_000]
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        editor.post_message(events.Paste(note))
        await wait_until(pilot, lambda: len(editor.text) == len(note), timeout=20)
        assert "\x1b" not in editor.text and "␛[31mred" in editor.text
        await wait_until(pilot, lambda: len(load_draft().note) == len(note), timeout=10)


async def test_new_case_asks_before_clearing_an_unassessed_note():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.press(*"chest pain")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.query_one(NoteEditor).text == "chest pain"
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.query_one(NoteEditor).text == "")


async def test_tab_cycles_focus_through_the_form():
    app = _app()
    async with app.run_test() as pilot:
        seen = []
        for _ in range(14):
            await pilot.press("tab")
            seen.append(app.focused.id if app.focused else None)
        assert "image-path" in seen and "vital-rr" in seen and "vital-o2" in seen and "note" in seen


async def test_image_preview_shows_only_when_the_terminal_is_tall(tmp_path):
    from PIL import Image

    image = tmp_path / "lesion.png"
    Image.new("RGB", (64, 48), (180, 120, 90)).save(image)
    save_draft(Draft(note="skin lesion", image_path=str(image)))
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        preview = app.query_one("#image-preview")
        await wait_until(pilot, lambda: preview.display and preview.size.height > 0)
    small = _app()
    async with small.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: small.query_one(ImageField).has_class("-valid"))
        assert small.query_one("#image-preview").size.height == 0
