"""Past assessments in SQLite, and the files exported for a handoff.

The database lives in the data dir (`history.sqlite3`), in WAL mode so a
reader never waits for the writer. Its schema version is `PRAGMA user_version`;
each entry of `MIGRATIONS` moves it one step up, inside one transaction.

`export_assessment` writes a JSON file (the whole checked assessment) and a
Markdown handoff note (what a colleague reads, in SBAR order, rendered by
`engine.report` like the terminal report, disclaimer included) under
`<data dir>/exports/` and returns both paths so the front end can show them.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from engine.config import data_dir
from engine.events import Vitals
from engine.files import atomic_write_text
from engine.report import Case, form_vitals, to_markdown
from engine.schema import DISCLAIMER, Assessment

HISTORY_FILE = "history.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    # 1: one row per finished assessment
    """
    CREATE TABLE assessments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        note TEXT NOT NULL,
        image_path TEXT,
        vitals_json TEXT NOT NULL DEFAULT '{}',
        risk_level TEXT NOT NULL,
        summary TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        assessment_json TEXT NOT NULL
    );
    """,
    # 2: timings kept apart for benchmarks and audits; newest-first listing
    """
    ALTER TABLE assessments ADD COLUMN timings_json TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX assessments_created ON assessments (created_at DESC);
    """,
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    created_at: str
    note: str
    image_path: str | None
    vitals: dict[str, Any]
    risk_level: str
    summary: str
    model: str
    assessment: Assessment
    timings: dict[str, Any]

    @property
    def title(self) -> str:
        first_line = self.note.strip().splitlines()[0] if self.note.strip() else "(empty note)"
        return first_line[:60]


def history_path() -> Path:
    return data_dir() / HISTORY_FILE


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version reached."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with connection:
            for statement in filter(str.strip, script.split(";")):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = NORMAL")
        migrate(self._connection)

    @property
    def version(self) -> int:
        return cast(int, self._connection.execute("PRAGMA user_version").fetchone()[0])

    def add(
        self,
        note: str,
        assessment: Assessment,
        image_path: str | None = None,
        vitals: dict[str, Any] | None = None,
        model: str = "",
        timings: dict[str, Any] | None = None,
    ) -> int:
        with self._connection:
            cursor = self._connection.execute(
                "INSERT INTO assessments (created_at, note, image_path, vitals_json, risk_level, summary,"
                " model, assessment_json, timings_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now().astimezone().isoformat(timespec="seconds"),
                    note,
                    image_path,
                    json.dumps(vitals or {}),
                    assessment.risk_level,
                    assessment.summary,
                    model,
                    assessment.model_dump_json(),
                    json.dumps(timings or {}),
                ),
            )
        row_id = cursor.lastrowid
        assert row_id is not None  # set by the INSERT
        return row_id

    def recent(self, limit: int = 100) -> list[HistoryEntry]:
        rows = self._connection.execute(
            "SELECT id, created_at, note, image_path, vitals_json, risk_level, summary, model,"
            " assessment_json, timings_json FROM assessments ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [entry for entry in map(_entry, rows) if entry is not None]

    def get(self, entry_id: int) -> HistoryEntry | None:
        row = self._connection.execute(
            "SELECT id, created_at, note, image_path, vitals_json, risk_level, summary, model,"
            " assessment_json, timings_json FROM assessments WHERE id = ?",
            (entry_id,),
        ).fetchone()
        return _entry(row) if row else None

    def close(self) -> None:
        self._connection.close()


def _entry(row: tuple[Any, ...]) -> HistoryEntry | None:
    try:
        assessment = Assessment.model_validate_json(row[8])
    except ValueError:
        return None  # a row written by a newer, incompatible version
    return HistoryEntry(
        id=row[0],
        created_at=row[1],
        note=row[2],
        image_path=row[3],
        vitals=json.loads(row[4] or "{}"),
        risk_level=row[5],
        summary=row[6],
        model=row[7],
        assessment=assessment,
        timings=json.loads(row[9] or "{}"),
    )


# --- export -------------------------------------------------------------------


def handoff_markdown(
    assessment: Assessment,
    note: str = "",
    when: str | None = None,
    *,
    image_path: str | None = None,
    vitals: Vitals | Mapping[str, Any] | None = None,
    image_error: str | None = None,
) -> str:
    """The Markdown handoff note a colleague reads, in SBAR order; it always carries the disclaimer."""
    case = Case(note=note, image_path=image_path, vitals=form_vitals(vitals), image_error=image_error)
    return to_markdown(assessment, case, when)


def export_assessment(
    assessment: Assessment,
    note: str,
    image_path: str | None = None,
    vitals: Vitals | Mapping[str, Any] | None = None,
    directory: Path | None = None,
    image_error: str | None = None,
) -> tuple[Path, Path]:
    """Write `<stamp>.json` and `<stamp>.md` under `exports/`; returns both paths."""
    directory = directory or data_dir() / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = directory / f"assessment-{stamp}"
    suffix = 1
    while base.with_suffix(".json").exists() or base.with_suffix(".md").exists():
        suffix += 1
        base = directory / f"assessment-{stamp}-{suffix}"
    payload = {
        "disclaimer": DISCLAIMER,
        "note": note,
        "image_path": image_path,
        "vitals": _vitals_dict(vitals),
        "assessment": assessment.model_dump(mode="json"),
    }
    json_path, markdown_path = base.with_suffix(".json"), base.with_suffix(".md")
    atomic_write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False))
    handoff = handoff_markdown(
        assessment, note, image_path=image_path, vitals=vitals, image_error=image_error
    )
    atomic_write_text(markdown_path, handoff)
    return json_path, markdown_path


def _vitals_dict(vitals: Vitals | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(vitals, Vitals):
        return dataclasses.asdict(vitals)
    return dict(vitals or {})
