"""The whole app without the model: keys, help, palette, preferences, drafts, history, bad input."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from pathlib import Path

import pytest
from textual import events
from textual.command import CommandPalette
from textual.widgets import Input, Markdown

from engine.config import FRONT_END_KEYS, ConfigError, Settings
from engine.events import Vitals
from engine.history import History, HistoryEntry
from engine.schema import DISCLAIMER, Assessment, Finding
from tests.tui_helpers import wait_until
from tui import actions
from tui.actions import ACTIONS
from tui.app import MedGemmaApp
from tui.drafts import Draft, load_draft, save_draft
from tui.preferences import Preferences, load_preferences
from tui.screens import HelpScreen, HistoryScreen
from tui.widgets.image_field import ImageField
from tui.widgets.note_editor import NoteEditor
from tui.widgets.result_card import ResultCard, RiskBadge
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


# --- one action table -----------------------------------------------------------------


async def test_bindings_help_and_palette_all_come_from_the_action_table():
    app = _app(Preferences(keys={"run": "f5"}))
    async with app.run_test(size=(100, 40)):
        bound = {binding.id: binding for binding in MedGemmaApp.BINDINGS}
        assert list(bound) == [action.id for action in ACTIONS]
        help_text = app.help_markdown()
        palette = {command.title: command for command in app.get_system_commands(app.screen)}
        for action in ACTIONS:
            assert bound[action.id].key == action.key and bound[action.id].description == action.footer
            assert action.help in help_text
            if action.palette_title:
                assert palette[action.palette_title].help == action.palette_help
        assert "| `f5` | Run the assessment" in help_text  # the remapped key, not ctrl+r
        assert bound["copy"].priority  # copy works whatever has focus


async def test_a_changed_table_entry_changes_help_and_palette(monkeypatch):
    changed = tuple(
        dataclasses.replace(action, help="Stop it now", palette_title="Stop")
        if action.id == "cancel"
        else action
        for action in ACTIONS
    )
    monkeypatch.setattr(actions, "ACTIONS", changed)
    app = _app()
    async with app.run_test(size=(100, 40)):
        assert "| `escape` | Stop it now |" in app.help_markdown()
        assert "Stop" in [command.title for command in app.get_system_commands(app.screen)]


# --- preferences: theme and keys from the config file ----------------------------------


def test_theme_and_keys_are_read_from_the_config_file_the_engine_shares(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('threads = 2\ntheme = "light"\n[keys]\nrun = "f5"\n', encoding="utf-8")
    monkeypatch.setenv("MEDGEMMA_TUI_CONFIG", str(config))
    assert Settings.resolve().threads == 2  # the engine accepts the front end's keys
    preferences = load_preferences()
    assert preferences == Preferences(theme="light", keys={"run": "f5"})
    assert preferences.theme_name({"textual-light", "textual-dark"}) == "textual-light"
    assert set(Preferences.model_fields) == FRONT_END_KEYS


def test_unknown_or_bad_config_keys_are_still_rejected(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("MEDGEMMA_TUI_CONFIG", str(config))
    config.write_text('colour = "red"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="colour"):
        Settings.resolve()
    config.write_text("[keys]\nrun = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="keys.run"):
        load_preferences()


async def test_theme_from_the_preferences_is_applied():
    app = _app(Preferences(theme="light"))
    async with app.run_test():
        assert app.theme == "textual-light"


# --- a result on the card: copy, new case, history ----------------------------------------


def _stored_case() -> HistoryEntry:
    note = "Cough and fever. RR 28, SpO2 94%, HR 120."
    start = note.index("RR 28")
    assessment = Assessment(
        summary="Febrile, tachypnoeic adult.",
        key_findings=["Raised respiratory rate"],
        risk_level="High",
        confidence=0.6,
        recommendations=["Senior review"],
        clinical_notes=f"Notes. {DISCLAIMER}",
        findings=[
            Finding(text="Raised respiratory rate", evidence="RR 28", supported=True, span=(start, start + 5))
        ],
    )
    history = History()
    vitals = asdict(Vitals(systolic_bp=95.0, temperature_c=38.9, on_oxygen=True, age=72, sex="M"))
    history.add(note, assessment, image_path="/tmp/chest.png", vitals=vitals, model="test")
    entry = history.recent()[0]
    history.close()
    return entry


async def _reopen_from_history(app: MedGemmaApp, pilot) -> HistoryEntry:
    await pilot.press("f2")
    await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
    entry = app.screen.entries[0]
    app.screen.dismiss(entry)  # what the history screen does when Enter is pressed on an entry
    await wait_until(pilot, lambda: app.case.result is not None)
    return entry


async def test_history_entry_reopens_into_the_editor_form_and_card():
    stored = _stored_case()
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        entry = await _reopen_from_history(app, pilot)
        assert entry.id == stored.id
        case = app.case
        assert app.query_one(NoteEditor).text == stored.note
        assert app.query_one(ImageField).path == "/tmp/chest.png"
        form = app.query_one(VitalsForm).values()
        assert (form["sbp"], form["temp"], form["o2"], form["age"], form["sex"]) == (
            "95",
            "38.9",
            "1",
            "72",
            "M",
        )
        assert app.query_one(ResultCard).assessment == stored.assessment
        assert "HIGH" in str(app.query_one(RiskBadge).render())
        assert case.result.request.note == stored.note and case.result.request.vitals.age == 72
        assert app.check_action("export", ()) and app.check_action("copy_result", ())
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: case.exported, timeout=10)
        markdown = Path(case.exported[1]).read_text(encoding="utf-8")
        assert "Febrile, tachypnoeic adult." in markdown and stored.note in markdown


async def test_copy_works_while_the_note_has_focus():
    _stored_case()
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _reopen_from_history(app, pilot)
        editor = app.query_one(NoteEditor)
        editor.focus()
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: app.clipboard)
        assert app.clipboard.startswith("# Clinical decision support") and "Senior review" in app.clipboard
        assert app.focused is editor


async def test_new_case_clears_the_card_and_its_border_text():
    _stored_case()
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _reopen_from_history(app, pilot)
        card, stream = app.query_one(ResultCard), app.query_one(StreamView)
        await pilot.press("f3")  # the finding selects its evidence and says so on the card's border
        await wait_until(pilot, lambda: card.border_subtitle == "evidence selected in the note")
        assert stream.border_subtitle == "reopened"
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.query_one(NoteEditor).text == "")
        assert card.assessment is None and app.case.result is None
        assert card.border_subtitle == "" and card.border_title == "Assessment"
        assert stream.border_subtitle == "" and stream.shown_text == ""
        assert "not scored" in str(app.query_one(RiskBadge).render())
        assert not app.check_action("export", ()) and not app.check_action("copy_result", ())
