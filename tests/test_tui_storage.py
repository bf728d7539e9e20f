"""Drafts, history and exports: what keeps the clinician's work on disk, and what keeps it
from the next person at a shared clinic PC."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time

import pytest
from textual.widgets import Input

from engine.config import ConfigError, Settings, data_dir
from engine.files import atomic_write_text
from engine.history import MIGRATIONS, History, export_assessment, handoff_markdown, migrate
from engine.schema import DISCLAIMER, Assessment, Finding
from tests.tui_helpers import wait_until
from tui.app import IDLE_CHECK_S, MedGemmaApp
from tui.drafts import Draft, draft_path, load_draft, save_draft
from tui.preferences import Preferences, load_preferences
from tui.screens import LockScreen
from tui.widgets.note_editor import NoteEditor
from tui.widgets.vitals_form import VitalsForm


def _assessment() -> Assessment:
    return Assessment(
        summary="Febrile adult with raised respiratory rate.",
        key_findings=["RR 28"],
        risk_level="High",
        confidence=0.5,
        recommendations=["Senior review"],
        clinical_notes=DISCLAIMER,
        findings=[Finding(text="Raised RR", evidence="RR 28", supported=True, span=(0, 5))],
    )


def test_draft_round_trip_is_atomic_and_in_the_data_dir():
    draft = Draft(note="RR 28\nconfused ␛ text", image_path="/tmp/x.png", form={"rr": "28", "o2": "1"})
    path = save_draft(draft)
    assert path == draft_path() and path.parent == data_dir()
    assert load_draft() == draft
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unreadable_draft_is_moved_aside_not_lost():
    draft_path().write_text("{not json")
    assert load_draft() == Draft()
    aside = [p for p in data_dir().iterdir() if p.name.startswith("draft.json.unreadable")]
    assert len(aside) == 1 and aside[0].read_text() == "{not json"


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    folder = tmp_path / "drafts"
    folder.mkdir()
    target = folder / "draft.json"
    target.write_text("old")

    def broken_replace(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("engine.files.os.replace", broken_replace)
    try:
        atomic_write_text(target, "new")
    except OSError:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in folder.iterdir()] == ["draft.json"]


def test_history_migrates_uses_wal_and_lists_newest_first():
    history = History()
    assert history.version == len(MIGRATIONS)
    mode = sqlite3.connect(history.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    first = history.add(
        "note one", _assessment(), vitals={"rr": 28}, model="demo", timings={"tokens_per_s": 9.0}
    )
    second = history.add("note two", _assessment())
    entries = history.recent()
    assert [entry.id for entry in entries] == [second, first]
    assert history.get(first).timings == {"tokens_per_s": 9.0}
    assert entries[1].title == "note one"
    history.close()


def test_history_migrates_from_version_one(tmp_path):
    connection = sqlite3.connect(tmp_path / "old.sqlite3")
    connection.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    connection.execute(
        "INSERT INTO assessments (created_at, note, risk_level, summary, assessment_json) VALUES (?, ?, ?, ?, ?)",
        ("2025-01-01T00:00:00", "old note", "High", "s", _assessment().model_dump_json()),
    )
    connection.commit()
    assert migrate(connection) == len(MIGRATIONS)
    history = History(tmp_path / "old.sqlite3")
    assert history.recent()[0].note == "old note" and history.recent()[0].timings == {}
    # the assessment kept before the audit trail is now a sealed, completed run with its note's hash
    run = history.runs()[0]
    assert run.status == "completed" and run.seq == 1
    assert run.note_sha256 == hashlib.sha256(b"old note").hexdigest()
    assert history.verify().intact


def test_export_writes_json_and_markdown_with_the_disclaimer():
    json_path, markdown_path = export_assessment(_assessment(), "RR 28, confused", None, {"rr": 28})
    assert json_path.parent == data_dir() / "exports" == markdown_path.parent
    payload = json.loads(json_path.read_text())
    assert payload["disclaimer"] == DISCLAIMER and payload["assessment"]["risk_level"] == "High"
    markdown = markdown_path.read_text()
    assert markdown.count(DISCLAIMER) >= 2 and "[supported] Raised RR" in markdown
    again = export_assessment(_assessment(), "RR 28")
    assert again[0] != json_path  # a second export in the same second gets its own name


def test_handoff_note_keeps_a_fenced_note_intact():
    markdown = handoff_markdown(_assessment(), "```\nRR 28")
    assert markdown.count("```") == 2


# --- a shared clinic PC: the restored draft, the idle lock, what Ctrl+N discards ---------------


def _app(preferences: Preferences | None = None) -> MedGemmaApp:
    return MedGemmaApp(
        Settings.resolve(), start_engine=False, show_memory=False, preferences=preferences or Preferences()
    )


def _notices(app: MedGemmaApp) -> list[str]:
    return [notification.message for notification in app._notifications]


def test_draft_says_how_old_it_is_and_what_it_holds():
    saved = Draft(note="RR 30\nconfused", image_path="/tmp/x.png", form={"hr": "125", "rr": ""})
    path = save_draft(saved)
    payload = json.loads(path.read_text())
    payload["saved_at"] -= 2 * 3600 + 60
    path.write_text(json.dumps(payload))
    draft = load_draft()
    assert draft.age_text() == "2 hours ago" and Draft(saved_at=time.time()).age_text() == "just now"
    assert draft.contents() == ["the note (2 lines)", "the image path", "1 vital sign"]


async def test_a_restored_draft_is_announced_with_its_age_and_f4_discards_it():
    save_draft(Draft(note="someone else's patient\nRR 30", form={"hr": "125"}))
    app = _app()
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        await wait_until(pilot, lambda: editor.text.startswith("someone else's patient"))
        notice = next(text for text in _notices(app) if "Restored the draft" in text)
        assert "saved just now" in notice and "the note (2 lines), 1 vital sign" in notice
        assert "F4 discards it" in notice and app.check_action("discard_draft", ())
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.text == "")
        assert app.query_one(VitalsForm).values()["hr"] == "" and not app.check_action("discard_draft", ())
        await wait_until(pilot, lambda: load_draft().is_empty(), timeout=5)


async def test_editing_the_restored_draft_makes_it_yours_and_f4_does_nothing():
    save_draft(Draft(note="fever"))
    app = _app()
    async with app.run_test() as pilot:
        editor = app.query_one(NoteEditor)
        await wait_until(pilot, lambda: editor.text == "fever")
        editor.focus()
        await pilot.press("end", *" RR 28")
        await wait_until(pilot, lambda: not app.check_action("discard_draft", ()))
        await pilot.press("f4")
        await pilot.pause()
        assert editor.text == "fever RR 28"


async def test_no_draft_no_announcement():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.pause()
        assert not any("Restored" in text for text in _notices(app))
        assert not app.check_action("discard_draft", ())


async def test_ctrl_n_names_what_it_would_discard():
    app = _app()
    async with app.run_test() as pilot:
        await pilot.press(*"chest pain")
        app.query_one("#vital-hr", Input).focus()
        await pilot.press("1", "2", "0")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: any("Ctrl+N again" in text for text in _notices(app)))
        notice = next(text for text in _notices(app) if "Ctrl+N again" in text)
        assert "discard the note (1 line) and 1 vital sign" in notice
        assert app.query_one(NoteEditor).text == "chest pain"


async def test_idle_lock_hides_the_case_until_a_key_is_pressed():
    app = _app(Preferences(idle_lock_minutes=1))
    async with app.run_test() as pilot:
        await pilot.press(*"RR 30 confidential")
        await wait_until(pilot, lambda: "confidential" in app.export_screenshot())
        assert not isinstance(app.screen, LockScreen)
        app._last_input_at -= 61  # a minute without a key
        await wait_until(pilot, lambda: isinstance(app.screen, LockScreen), timeout=IDLE_CHECK_S * 3)
        await wait_until(pilot, lambda: "Locked" in app.export_screenshot())
        assert "confidential" not in app.export_screenshot()
        await pilot.press("x")  # unlocks; does not type into the note
        await wait_until(pilot, lambda: not isinstance(app.screen, LockScreen))
        assert app.query_one(NoteEditor).text == "RR 30 confidential"
        await wait_until(pilot, lambda: "confidential" in app.export_screenshot())


async def test_idle_lock_is_off_unless_configured(tmp_path):
    assert load_preferences().idle_lock_minutes is None
    (tmp_path / "config.toml").write_text("idle_lock_minutes = 0\n")
    with pytest.raises(ConfigError, match="idle_lock_minutes"):
        load_preferences()
    app = _app()
    async with app.run_test() as pilot:
        app._last_input_at -= 3600
        await asyncio.sleep(IDLE_CHECK_S + 1)
        assert not isinstance(app.screen, LockScreen)
        await pilot.press("f9")  # the lock key works whether or not the timeout is set
        await wait_until(pilot, lambda: isinstance(app.screen, LockScreen))
