"""Drafts, history and exports: what keeps the clinician's work on disk."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from engine.config import data_dir
from engine.files import atomic_write_text
from engine.history import MIGRATIONS, History, export_assessment, handoff_markdown, migrate
from engine.schema import DISCLAIMER, Assessment, Finding
from tui.drafts import Draft, draft_path, load_draft, save_draft


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
